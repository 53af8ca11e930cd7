"""The page_ext framework: boot a machine with its clients, in the kernel's order.

``boot()`` is a sequence of named phases, each a small function over a
``Booting`` record (what the boot has gathered so far)::

    discover_clients → register_clients → collect_params → start_machine
    → parse_params → ask_need → lay_out → (preflight) → allocate
    → init_clients → install_callouts

and returns a ``PageExt``: the machine, the boot configuration, the layout,
the clients and their reports.  How each hook is called (through pluggy, or
resolved into call lists for the hot path) is in ``pageext_core.dispatch``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from pageext_core import hookspecs
from pageext_core.bootparams import BootConfig, BootParam, describe, parse_boot
from pageext_core.callouts import install_callouts
from pageext_core.discovery import PluginInfo, PluginLoadError, builtins, direct, discover, env_strict
from pageext_core.dispatch import ask, ask_each, call_order, caller_for, env_trace, trace_hook_calls
from pageext_core.layout import ClientLayout, Layout, compute_layout
from pageext_core.mm.errors import ConfigError
from pageext_core.mm.geometry import Geometry, MachineConfig, build_geometry
from pageext_core.mm.printk import KernelLog
from pageext_core.reports import Finding, ReportError, check_report_name, join_text

if TYPE_CHECKING:  # the machine and the tables import numpy: a plan (``pageext plugins``) needs neither
    from pageext_core.mm.machine import Machine
    from pageext_core.storage import PageExtTables, PageExtView


@dataclass
class Client:
    """One registered client and what it contributes this boot."""

    info: PluginInfo
    obj: Any
    hooks: list[str] = field(default_factory=list)
    params: list[BootParam] = field(default_factory=list)
    enabled: bool = False  # its pageext_need said yes this boot
    fields: Mapping[str, Any] = field(default_factory=dict)
    flags: Sequence[str] = ()
    layout: ClientLayout | None = None
    view: PageExtView | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def builtin(self) -> bool:
        """Part of pageext-core (the core reports): always enabled, owns no page_ext bytes."""
        return self.info.source == "built-in"

    def describe(self) -> dict[str, Any]:
        """What `pageext plugins` and `summary.json` say of this client."""
        lay = self.layout
        return {
            "name": self.name,
            "distribution": self.info.dist,
            "version": self.info.version,
            "source": self.info.source,
            "entry_point": self.info.value or None,
            "hooks": sorted(self.hooks),
            "boot_params": describe(self.params),
            "enabled": self.enabled,
            "offset": lay.offset if lay else None,
            "size": lay.size if lay else 0,
            "fields": {f.name: f.dtype_str if not f.shape else [f.dtype_str, list(f.shape)] for f in lay.fields} if lay else {},
            "flag_bits": dict(lay.flag_bits) if lay else {},
        }


class PageExt:
    """A booted machine with its page_ext clients."""

    def __init__(self, machine: Machine, boot: BootConfig, clients: list[Client], layout: Layout,
                 tables: PageExtTables | None, pm: pluggy.PluginManager, problems: list[str],
                 builtin: Sequence[Client] = ()) -> None:
        self.machine = machine
        self.boot = boot
        self.clients = clients
        self.builtin = list(builtin)
        self.layout = layout
        self.tables = tables
        self.pm = pm
        self.problems = problems
        self._reports: dict[str, tuple[Client, Callable[..., Any]]] | None = None

    # -- facts ----------------------------------------------------------------------

    @property
    def enabled(self) -> list[str]:
        """Names of the clients enabled this boot, in layout order."""
        return [c.name for c in self.layout.clients]

    def _asked(self) -> list[str]:
        """The clients on-demand hooks are asked of: the built-in ones (always on), then the enabled ones."""
        return [c.name for c in self.builtin] + self.enabled

    @property
    def record_size(self) -> int:
        return self.layout.record_size

    @property
    def nbytes(self) -> int:
        """Host bytes in page_ext tables (0 when no client is enabled)."""
        return self.tables.nbytes if self.tables else 0

    def client(self, name: str) -> Client:
        """What the framework knows of one installed client (its layout, view, boot parameters)."""
        for c in self.clients:
            if c.name == name:
                return c
        raise KeyError(f"no client {name!r}; installed: {', '.join(c.name for c in self.clients) or 'none'}")

    def plugin(self, name: str) -> Any:
        """The client's own object, as its author wrote it (e.g. to call a plugin's own API)."""
        return self.client(name).obj

    # -- calling hooks (never on the hot path) ---------------------------------------------

    def ask(self, hook: str, name: str, **kwargs: Any) -> Any:
        """One client's answer to a hook, through pluggy (None when it gives none)."""
        return ask(self.pm, hook, name, **kwargs)

    def caller(self, hook: str) -> Any:
        """A pluggy caller of ``hook`` over the enabled (and built-in) clients: ``caller(**kwargs)`` is
        their results in call order, None dropped."""
        return caller_for(self.pm, hook, self._asked())

    # -- services for clients -----------------------------------------------------------

    def dump_page(self, pfn: int) -> str | None:
        """What the enabled clients add to a bad page's report (``pageext_dump_page``), or None.

        Each client's text is one block of lines; they are joined in call order.
        """
        texts = self.caller("pageext_dump_page")(pfn=pfn)
        if not texts:
            return None
        return texts[0] if len(texts) == 1 else "\n".join(t.rstrip("\n") for t in texts)

    # -- reports ------------------------------------------------------------------------------

    def _collected(self) -> dict[str, tuple[Client, Callable[..., Any]]]:
        """Every report by name, asked once: built-in clients' in their order, then the enabled clients'."""
        if self._reports is not None:
            return self._reports
        reports: dict[str, tuple[Client, Callable[..., Any]]] = {}
        order = [c.name for c in self.builtin] + call_order(self.pm, "pageext_report", self.enabled)
        for name in order:
            c = self._any_client(name)
            for rname, fn in (self.ask("pageext_report", name, page_ext=self) or {}).items():
                check_report_name(rname)
                if rname in reports:
                    other = reports[rname][0]
                    owner = "the core" if other.builtin else repr(other.name)
                    raise ReportError(f"client {name!r} offers report {rname!r}, which {owner} already offers")
                reports[rname] = (c, fn)
        self._reports = reports
        return reports

    def _any_client(self, name: str) -> Client:
        return next((c for c in self.builtin if c.name == name), None) or self.client(name)

    def report_names(self) -> list[str]:
        """The built-in (core) reports first, in their order; then the clients' in name order."""
        reports = self._collected()
        core = [n for n, (c, _) in reports.items() if c.builtin]
        return core + sorted(n for n, (c, _) in reports.items() if not c.builtin)

    def report_owner(self, name: str) -> str:
        return self._collected()[name][0].name

    def report_params(self, name: str) -> tuple[list[str], bool]:
        """(parameter names a report takes, whether it takes any keyword): for checking before a run."""
        sig = inspect.signature(self._collected()[name][1])
        names = [p.name for p in sig.parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return names, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())

    def report(self, name: str, **params: Any) -> str:
        """Produce one report's text, like reading its file."""
        entry = self._collected().get(name)
        if entry is None:
            import difflib  # here: only a bad name pays for it

            close = difflib.get_close_matches(name, self.report_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ReportError(f"no report {name!r}{hint} (available: {', '.join(self.report_names())})")
        if params and self.report_params(name) == ([], False):
            raise TypeError(f"{name} takes no parameters, got {', '.join(sorted(params))}")
        return join_text(entry[1](**params))

    # -- results ----------------------------------------------------------------------------------

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for name, items in ask_each(self.pm, "pageext_findings", self._asked()).items():
            for f in items or ():
                out.append(f if f.client else Finding(**{**f.__dict__, "client": name}))
        out.sort(key=lambda f: (f.time_ns, f.pfn, f.kind))
        return out

    def client_summaries(self) -> dict[str, Any]:
        return {name: dict(s or {}) for name, s in ask_each(self.pm, "pageext_summary", self._asked()).items()}

    def describe(self) -> dict[str, Any]:
        """Plugins and page_ext layout as plain data (``pageext plugins --json``, summary.json)."""
        return {
            "record_size": self.record_size,
            "page_ext_bytes": self.nbytes,
            "plugins": [c.describe() for c in self.clients],
            "problems": list(self.problems),
        }


# -- boot, phase by phase -------------------------------------------------------------------------


@dataclass
class Booting:
    """What a boot has gathered so far; each phase reads it and adds its part."""

    pm: pluggy.PluginManager
    strict: bool
    clients: list[Client] = field(default_factory=list)  # installed and direct clients still in this boot
    builtin: list[Client] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    params: list[BootParam] = field(default_factory=list)
    machine: Machine | None = None
    cfg: BootConfig | None = None
    layout: Layout | None = None
    tables: PageExtTables | None = None

    def trouble(self, msg: str, exc: BaseException | None = None) -> None:
        """A client cannot take part: an error in strict mode, else a logged problem."""
        if self.strict:
            raise PluginLoadError(msg + " (strict mode: a plugin that cannot be loaded is an error)") from exc
        self.problems.append(msg + "; booting without it")
        if self.machine is not None:
            self.machine.log.warn(f"pageext: {self.problems[-1]}")

    def drop(self, c: Client, msg: str, exc: BaseException | None = None) -> None:
        """Name a client that failed at boot and take it out (unless strict)."""
        self.trouble(msg, exc)
        self.pm.unregister(c.obj)
        self.clients.remove(c)

    def ask_each(self, hook: str, who: Sequence[Client], **kwargs: Any) -> dict[str, Any]:
        """A boot hook, one client at a time in call order; a client that raises is named and dropped."""
        by_name = {c.name: c for c in who}
        out: dict[str, Any] = {}
        for name in call_order(self.pm, hook, by_name):
            try:
                out[name] = ask(self.pm, hook, name, **kwargs)
            except Exception as exc:
                c = by_name[name]
                self.drop(c, f"{c.info.describe()} raised in {hook}: {type(exc).__name__}: {exc}", exc)
        return out

    @property
    def enabled(self) -> list[Client]:
        return [c for c in self.clients if c.enabled]


def new_plugin_manager() -> pluggy.PluginManager:
    """A pluggy manager with the contract's hooks; traced when ``PAGEEXT_TRACE_PLUGINS`` is set."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if env_trace():
        trace_hook_calls(pm)
    return pm


def discover_clients(plugins: Iterable[Any] = (), blocked: Iterable[str] = (),
                     autoload: bool | None = None) -> list[PluginInfo]:
    """Installed clients (entry points, in name order), then the ones handed to ``boot(plugins=...)``."""
    infos = discover(blocked=blocked, autoload=autoload)
    for p in plugins:
        infos.append(direct(p[1], p[0]) if isinstance(p, tuple) else direct(p))
    return infos


def _instantiate(info: PluginInfo) -> Any:
    t = info.target
    return t() if isinstance(t, type) else t


def _register(pm: pluggy.PluginManager, info: PluginInfo) -> Client:
    """Register one client; every problem is a ``PluginLoadError`` naming it."""
    try:
        obj = _instantiate(info)
    except Exception as exc:
        raise PluginLoadError(f"{info.describe()} could not be created: {type(exc).__name__}: {exc}") from exc
    try:
        pm.register(obj, name=info.name)
    except ValueError as exc:  # pluggy: duplicate name or object
        raise PluginLoadError(f"{info.describe()}: {exc}") from exc
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"{info.describe()}: {exc}") from exc
    hooks = [h.name for h in (pm.get_hookcallers(obj) or [])]
    wrapped = [h for h in hooks if any(
        i.plugin is obj and (i.wrapper or i.hookwrapper) for i in getattr(pm.hook, h).get_hookimpls())]
    if wrapped:
        pm.unregister(obj)
        raise PluginLoadError(
            f"{info.describe()}: hook(s) {', '.join(wrapped)} cannot be wrappers: event hooks are called "
            "directly, not through pluggy, and the others one client at a time, so a wrapper would wrap "
            "nothing but itself; implement them as plain hooks")
    unknown = [h for h in hooks if not getattr(pm.hook, h).has_spec()]
    if unknown:
        pm.unregister(obj)
        import difflib  # here: only a bad hook name pays for it

        known = [n for n in dir(hookspecs) if n.startswith("pageext_")]
        hints = []
        for h in unknown:
            close = difflib.get_close_matches(h, known, n=1)
            hints.append(f"{h!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise PluginLoadError(f"{info.describe()} implements unknown hook(s) {', '.join(hints)}")
    return Client(info=info, obj=obj, hooks=hooks)


def register_clients(st: Booting, infos: Sequence[PluginInfo]) -> None:
    """Register the built-in clients, then the others in reverse name order (pluggy calls the last first).

    ``st.clients`` keeps the order of ``infos``; a client that cannot be
    imported or registered is named (and left out unless strict).  Of two
    clients with one name, the first given stays.
    """
    st.builtin = [_register(st.pm, info) for info in builtins()]
    registered: dict[int, Client] = {}
    for k, info in sorted(enumerate(infos), key=lambda ki: ki[1].name, reverse=True):
        if info.blocked:
            continue
        if info.error is not None:
            st.trouble(f"{info.describe()} failed to import: {info.error}")
            continue
        try:
            registered[k] = _register(st.pm, info)
        except PluginLoadError as exc:
            st.trouble(str(exc), exc)
    st.clients = [registered[k] for k in sorted(registered)]


def collect_params(st: Booting) -> None:
    """Ask every client for its boot parameters; each parameter is owned by exactly one client."""
    owners: dict[str, str] = {}
    for c in list(st.clients):
        try:
            got = ask(st.pm, "pageext_params", c.name) or []
            mine = []
            for p in got:
                if not isinstance(p, BootParam):
                    raise PluginLoadError(f"{c.info.describe()}: pageext_params returned {p!r}, not a BootParam")
                if p.name in owners:
                    raise PluginLoadError(
                        f"{c.info.describe()}: boot parameter {p.name!r} is already owned by {owners[p.name]!r}")
                mine.append(BootParam(**{**p.__dict__, "owner": c.name}))
        except Exception as exc:
            st.drop(c, f"{exc}" if isinstance(exc, PluginLoadError) else
                    f"{c.info.describe()} raised in pageext_params: {type(exc).__name__}: {exc}", exc)
            continue
        for p in mine:
            owners[p.name] = c.name
        c.params = mine
        st.params.extend(mine)


class PlannedMachine:
    """The machine as ``boot(plan_only=True)`` shows it to ``pageext_need``: memblock-stage facts only.

    Its config, geometry, ``max_order``, ``pageblock_order`` and kernel log,
    worked out from the configuration with no allocator behind it, so that a
    plan (``pageext plugins``) allocates nothing and imports no numpy.
    """

    def __init__(self, config: MachineConfig, log_sink: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.geometry: Geometry = build_geometry(config)
        self.max_order = self.geometry.max_order
        self.pageblock_order = self.geometry.pageblock_order
        self.nr_orders = self.max_order + 1
        self.log = KernelLog(lambda: 0)
        self.log.sink = log_sink


def start_machine(st: Booting, config: MachineConfig, log_sink: Callable[[str], None] | None = None) -> Machine:
    """The machine at memblock stage (geometry known, nothing freed), with the problems so far logged."""
    from pageext_core.mm.machine import Machine

    st.machine = Machine(config, memblock_only=True, log_sink=log_sink)
    for msg in st.problems:
        st.machine.log.warn(f"pageext: {msg}")
    # A client's own frames are not part of "who allocated" when it captures a stack.
    st.machine.depot.skip_modules(*{str(getattr(c.obj, "__module__", None) or getattr(c.obj, "__name__", "")).split(".")[0]
                                    for c in st.clients} - {"__main__", "builtins"})
    return st.machine


def parse_params(st: Booting, cmdline: str = "", boot_tables: Mapping[str, Mapping[str, Any]] | None = None) -> BootConfig:
    """Parse the boot line (and the TOML tables) against the clients' parameters, logging as the kernel does."""
    assert st.machine is not None
    st.cfg = cfg = parse_boot(st.params, cmdline, boot_tables)
    st.machine.log.info(f"Command line: {cfg.cmdline}")
    for w in cfg.warnings:
        st.machine.log.warn(w)
    return cfg


def ask_need(st: Booting) -> list[Client]:
    """Ask every client whether it is enabled this boot (``pageext_need``); returns the enabled ones."""
    needs = st.ask_each("pageext_need", list(st.clients), boot=st.cfg, log=st.machine.log if st.machine else None,
                        machine=st.machine)
    for c in st.clients:
        c.enabled = bool(needs.get(c.name, False))
    return st.enabled


def lay_out(st: Booting) -> Layout:
    """The enabled clients' fields and flag bits, and the record layout they make."""
    fields = st.ask_each("pageext_fields", st.enabled, boot=st.cfg)
    flags = st.ask_each("pageext_flags", st.enabled, boot=st.cfg)
    for c in st.enabled:
        c.fields = dict(fields.get(c.name) or {})
        c.flags = tuple(flags.get(c.name) or ())
    st.layout = compute_layout([(c.name, c.fields, c.flags) for c in st.enabled])
    for c in st.enabled:
        c.layout = st.layout.client(c.name)
    return st.layout


def allocate(st: Booting, fail_table_allocation: Callable[[int], bool] | None = None) -> PageExtTables | None:
    """The page_ext tables (FLATMEM before ``free_all``, SPARSEMEM from the buddy allocator after it)."""
    from pageext_core.storage import PageExtAllocError, PageExtTables

    m, layout = st.machine, st.layout
    assert m is not None and layout is not None
    tables: PageExtTables | None = None
    if layout.record_size:
        tables = PageExtTables(m, layout)
        tables.fail_allocation = fail_table_allocation
        if m.config.memory_model == "FLATMEM":
            tables.allocate_flatmem()
            # page_ext_init_flatmem logs before mem_init_print_info's "Memory:" (6.12's mm_core_init)
            m.log.info(f"allocated {tables.nbytes} bytes of page_ext")
    m.free_all()
    if tables is not None:
        if tables.sparse:
            try:
                tables.allocate_sections(m.present_sections())
            except PageExtAllocError as exc:
                raise ConfigError(f"{exc}: the machine is too small for the page_ext record "
                                  f"({layout.record_size} bytes per page); give it more memory") from exc
            m.log.info(f"allocated {tables.nbytes} bytes of page_ext")
        m.memory_notifiers.append(tables.memory_notifier)
    else:
        m.log.info("pageext: page_ext: no client is enabled, nothing allocated")  # the kernel says nothing
    st.tables = tables
    return tables


def init_clients(st: Booting, pe: PageExt) -> None:
    """Give each enabled client its view and call ``pageext_init``; a raise stops the boot."""
    from pageext_core.storage import PageExtView

    enabled = {c.name: c for c in st.enabled}
    for c in enabled.values():
        if st.tables is not None:
            c.view = PageExtView(st.tables, c.layout)  # type: ignore[arg-type]
    for name in call_order(st.pm, "pageext_init", enabled):
        c = enabled[name]
        try:
            ask(st.pm, "pageext_init", name, view=c.view, machine=pe.machine, boot=pe.boot, page_ext=pe,
                log=pe.machine.log)
        except Exception as exc:  # its memory is laid out by now: this one cannot be skipped
            raise PluginLoadError(f"{c.info.describe()} raised in pageext_init: {type(exc).__name__}: {exc}") from exc


def boot(config: MachineConfig | None = None, cmdline: str = "", *,
         boot_tables: Mapping[str, Mapping[str, Any]] | None = None,
         plugins: Iterable[Any] = (), blocked: Iterable[str] = (), autoload: bool | None = None,
         strict: bool | None = None, log_sink: Callable[[str], None] | None = None,
         fail_table_allocation: Callable[[int], bool] | None = None,
         preflight: Callable[[Machine, Layout], object] | None = None, plan_only: bool = False) -> PageExt:
    """Boot a machine with every installed (and given) client; see the module docstring.

    ``cmdline`` is a kernel-style boot line; ``boot_tables`` the TOML
    ``[boot.<client>]`` tables (applied first, the line wins).  ``plugins``
    are extra clients (classes, instances or modules); a ``(name, obj)``
    pair names one.  ``strict`` turns a plugin that cannot be loaded into an
    error instead of a logged warning; by default it follows the
    ``PAGEEXT_STRICT`` environment variable (the test suite sets it).
    ``preflight`` sees the machine (memblock stage: geometry known, its
    arrays not yet touched) and the layout before any table exists or any
    page is freed; it may raise to stop the boot (the host-memory check).
    ``plan_only`` stops there: the ``PageExt`` has a layout but no tables,
    and its machine is a ``PlannedMachine`` (geometry, ``max_order``, log:
    no allocator, no numpy), which ``pageext_need`` sees too; ``pageext
    plugins`` computes its figures from it.
    """
    st = Booting(pm=new_plugin_manager(), strict=env_strict() if strict is None else strict)
    register_clients(st, discover_clients(plugins, blocked, autoload))
    collect_params(st)
    if plan_only:
        planned = PlannedMachine(config or MachineConfig(), log_sink)
        st.machine = planned  # type: ignore[assignment]  # duck-typed: the memblock-stage subset of Machine
        machine: Machine = planned  # type: ignore[assignment]  # same
    else:
        machine = start_machine(st, config or MachineConfig(), log_sink)
    parse_params(st, cmdline, boot_tables)
    ask_need(st)
    layout = lay_out(st)
    if preflight is not None:
        preflight(machine, layout)
    if not plan_only:
        allocate(st, fail_table_allocation)
    pe = PageExt(machine, st.cfg, st.clients, layout, st.tables, st.pm, st.problems, st.builtin)  # type: ignore[arg-type]
    if plan_only:
        return pe
    init_clients(st, pe)
    install_callouts(pe)
    return pe

