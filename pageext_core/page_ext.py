"""The page_ext framework: boot a machine with its clients, in the kernel's order.

Data flows one way::

    discover (entry points) → register + validate (pluggy) → boot parameters
    → need (per client) → layout → tables → free_all → clients' init
    → event hooks resolved into call lists → reports on demand

``boot()`` does all of it and returns a ``PageExt``: the machine, the boot
configuration, the layout, the clients and their reports.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import pluggy

from pageext_core import hookspecs
from pageext_core.bootparams import BootConfig, BootParam, describe, parse_boot
from pageext_core.callouts import install_callouts
from pageext_core.dispatch import EVENT_HOOKS, call_each, ordered_impls
from pageext_core.layout import ClientLayout, Layout, compute_layout
from pageext_core.mm import stats
from pageext_core.mm.errors import ConfigError
from pageext_core.mm.geometry import MachineConfig
from pageext_core.mm.machine import Machine
from pageext_core.registry import PluginInfo, PluginLoadError, direct, discover, env_strict
from pageext_core.reports import Finding, ReportError, check_report_name, join_text
from pageext_core.storage import PageExtAllocError, PageExtTables, PageExtView

# Reading a report never changes the machine (no report drains the per-CPU
# lists), so this order is only the order in which they are listed.
CORE_REPORTS = ("buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo")
SECTIONED_REPORTS = ("pagetypeinfo",)  # core reports that print clients' per-node sections


@dataclass
class Client:
    """One registered client and what it contributes this boot."""

    info: PluginInfo
    obj: Any
    hooks: list[str] = field(default_factory=list)
    params: list[BootParam] = field(default_factory=list)
    need: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)
    flags: Sequence[str] = ()
    layout: ClientLayout | None = None
    view: PageExtView | None = None

    @property
    def name(self) -> str:
        return self.info.name

    def describe(self, record_size: int) -> dict[str, Any]:
        lay = self.layout
        return {
            "name": self.name,
            "distribution": self.info.dist,
            "version": self.info.version,
            "source": self.info.source,
            "entry_point": self.info.value or None,
            "hooks": sorted(self.hooks),
            "boot_params": describe(self.params),
            "enabled": self.need,
            "offset": lay.offset if lay else None,
            "size": lay.size if lay else 0,
            "fields": {f.name: f.dtype.str if not f.shape else [f.dtype.str, list(f.shape)] for f in lay.fields} if lay else {},
            "flag_bits": dict(lay.flag_bits) if lay else {},
        }


class PageExt:
    """A booted machine with its page_ext clients."""

    def __init__(self, machine: Machine, boot: BootConfig, clients: list[Client], layout: Layout,
                 tables: PageExtTables | None, pm: pluggy.PluginManager, problems: list[str]) -> None:
        self.machine = machine
        self.boot = boot
        self.clients = clients
        self.layout = layout
        self.tables = tables
        self.pm = pm
        self.problems = problems
        self._report_fns: dict[str, tuple[str, Callable[..., Any]]] = {}
        self._sections: dict[str, list[Callable[[Machine, int], str]]] = {}

    # -- facts ----------------------------------------------------------------------

    @property
    def enabled(self) -> list[str]:
        """Names of the clients needed this boot, in layout order."""
        return [c.name for c in self.layout.clients]

    @property
    def record_size(self) -> int:
        return self.layout.record_size

    @property
    def nbytes(self) -> int:
        """Host bytes in page_ext tables (0 when no client is needed)."""
        return self.tables.nbytes if self.tables else 0

    def client(self, name: str) -> Client:
        for c in self.clients:
            if c.name == name:
                return c
        raise KeyError(f"no client {name!r}; installed: {', '.join(c.name for c in self.clients) or 'none'}")

    def plugin(self, name: str) -> Any:
        """The registered client object (e.g. to call a plugin's own API)."""
        return self.client(name).obj

    # -- services for clients -----------------------------------------------------------

    def owner_dump(self, pfn: int) -> str | None:
        """page_owner's account of a page, or None when no enabled client gives one."""
        for _, impl in ordered_impls(self.pm, "pageext_owner_dump", self.enabled):
            text = impl.function(*[{"pfn": pfn}[a] for a in impl.argnames])
            if text is not None:
                return text
        return None

    # -- reports ------------------------------------------------------------------------------

    def _collect_reports(self) -> None:
        if self._report_fns:
            return
        for name, mapping in call_each(self.pm, "pageext_report", self.enabled).items():
            for rname, fn in (mapping or {}).items():
                check_report_name(rname)
                if rname in CORE_REPORTS or rname in self._report_fns:
                    owner = "the core" if rname in CORE_REPORTS else repr(self._report_fns[rname][0])
                    raise ReportError(f"client {name!r} offers report {rname!r}, which {owner} already offers")
                self._report_fns[rname] = (name, fn)
        for name, mapping in call_each(self.pm, "pageext_report_sections", self.enabled).items():
            for rname, fn in (mapping or {}).items():
                if rname not in SECTIONED_REPORTS:
                    raise ReportError(f"client {name!r} adds a section to {rname!r}; only "
                                      f"{', '.join(SECTIONED_REPORTS)} takes sections from clients")
                self._sections.setdefault(rname, []).append(fn)

    def report_names(self) -> list[str]:
        """Core reports first, then clients' in name order."""
        self._collect_reports()
        return list(CORE_REPORTS) + sorted(self._report_fns)

    def report_owner(self, name: str) -> str:
        self._collect_reports()
        return "core" if name in CORE_REPORTS else self._report_fns[name][0]

    def report_params(self, name: str) -> tuple[list[str], bool]:
        """(parameter names a report takes, whether it takes any keyword): for checking before a run."""
        self._collect_reports()
        if name in CORE_REPORTS:
            return [], False
        import inspect

        sig = inspect.signature(self._report_fns[name][1])
        names = [p.name for p in sig.parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return names, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())

    def report(self, name: str, **params: Any) -> str:
        """Produce one report's text, like reading its file."""
        self._collect_reports()
        m = self.machine
        if params and name in CORE_REPORTS:
            raise TypeError(f"{name} takes no parameters, got {', '.join(sorted(params))}")
        if name == "buddyinfo":
            return stats.buddyinfo(m)
        if name == "pagetypeinfo":
            return stats.pagetypeinfo(m, self._sections.get("pagetypeinfo", ()))
        if name == "meminfo":
            return stats.meminfo(m)
        if name == "vmstat":
            return stats.vmstat(m)
        if name == "page_ext":
            return self._layout_text()
        entry = self._report_fns.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, self.report_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ReportError(f"no report {name!r}{hint} (available: {', '.join(self.report_names())})")
        return join_text(entry[1](**params))

    def _layout_text(self) -> str:
        lay = self.layout
        lines = [f"record size: {lay.record_size} bytes", f"page_ext bytes: {self.nbytes}"]
        if self.tables is not None:
            lines.append(f"tables: {len(self.tables.tables)} ({'per section' if self.tables.sparse else 'per node'}), "
                         f"{self.tables.sim_pages} simulated pages")
        if lay.has_flags:
            lines.append("offset 0: flags word (8 bytes)")
        for c in lay.clients:
            bits = ", ".join(f"{n}=bit{b}" for n, b in c.flag_bits.items())
            lines.append(f"offset {c.offset}: {c.name} ({c.size} bytes)" + (f", flags {bits}" if bits else ""))
            for f in c.fields:
                shape = f"[{','.join(map(str, f.shape))}]" if f.shape else ""
                lines.append(f"    +{f.offset - c.offset:<4d} {f.name} {f.dtype.str}{shape}")
        return "\n".join(lines) + "\n"

    # -- results ----------------------------------------------------------------------------------

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for name, items in call_each(self.pm, "pageext_findings", self.enabled).items():
            for f in items or ():
                out.append(f if f.client else Finding(**{**f.__dict__, "client": name}))
        out.sort(key=lambda f: (f.time_ns, f.pfn, f.kind))
        return out

    def client_summaries(self) -> dict[str, Any]:
        return {name: dict(s or {}) for name, s in call_each(self.pm, "pageext_summary", self.enabled).items()}

    def describe(self) -> dict[str, Any]:
        """Plugins and page_ext layout as plain data (``pageext plugins --json``, summary.json)."""
        return {
            "record_size": self.record_size,
            "page_ext_bytes": self.nbytes,
            "plugins": [c.describe(self.record_size) for c in self.clients],
            "problems": list(self.problems),
        }


# -- boot ----------------------------------------------------------------------------------------


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
    wrapped = [h for h in hooks if h in EVENT_HOOKS and any(
        i.plugin is obj and (i.wrapper or i.hookwrapper) for i in getattr(pm.hook, h).get_hookimpls())]
    if wrapped:
        pm.unregister(obj)
        raise PluginLoadError(
            f"{info.describe()}: hot-path hook(s) {', '.join(wrapped)} cannot be wrappers: event hooks are "
            "called directly, not through pluggy; implement them as plain hooks")
    unknown = [h for h in hooks if not getattr(pm.hook, h).has_spec()]
    if unknown:
        pm.unregister(obj)
        known = [n for n in dir(hookspecs) if n.startswith("pageext_")]
        hints = []
        for h in unknown:
            close = difflib.get_close_matches(h, known, n=1)
            hints.append(f"{h!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise PluginLoadError(f"{info.describe()} implements unknown hook(s) {', '.join(hints)}")
    return Client(info=info, obj=obj, hooks=hooks)


def boot(config: MachineConfig | None = None, cmdline: str = "", *,
         boot_tables: Mapping[str, Mapping[str, Any]] | None = None,
         plugins: Iterable[Any] = (), blocked: Iterable[str] = (), autoload: bool | None = None,
         strict: bool | None = None, log_sink: Callable[[str], None] | None = None,
         fail_table_allocation: Callable[[int], bool] | None = None,
         preflight: Callable[[Machine, Layout], None] | None = None, plan_only: bool = False) -> PageExt:
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
    ``plan_only`` stops there: the ``PageExt`` has a layout but no tables
    and an unbooted machine (``pageext plugins`` computes its figures from it).
    """
    config = config or MachineConfig()
    if strict is None:
        strict = env_strict()
    infos = discover(blocked=blocked, autoload=autoload)
    for p in plugins:
        infos.append(direct(p[1], p[0]) if isinstance(p, tuple) else direct(p))
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    problems: list[str] = []

    def trouble(msg: str, exc: BaseException | None = None) -> None:
        if strict:
            raise PluginLoadError(msg + " (strict mode: a plugin that cannot be loaded is an error)") from exc
        problems.append(msg + "; booting without it")

    clients: list[Client] = []
    for info in infos:
        if info.blocked:
            continue
        if info.error is not None:
            trouble(f"{info.describe()} failed to import: {info.error}")
            continue
        try:
            clients.append(_register(pm, info))
        except PluginLoadError as exc:
            trouble(str(exc), exc)

    # Boot parameters: each owned by exactly one client.
    owners: dict[str, str] = {}
    params: list[BootParam] = []
    for c in list(clients):
        try:
            got = call_each(pm, "pageext_params", [c.name]).get(c.name) or []
            mine = []
            for p in got:
                if not isinstance(p, BootParam):
                    raise PluginLoadError(f"{c.info.describe()}: pageext_params returned {p!r}, not a BootParam")
                if p.name in owners:
                    raise PluginLoadError(
                        f"{c.info.describe()}: boot parameter {p.name!r} is already owned by {owners[p.name]!r}")
                mine.append(BootParam(**{**p.__dict__, "owner": c.name}))
        except Exception as exc:
            pm.unregister(c.obj)
            clients.remove(c)
            trouble(f"{exc}" if isinstance(exc, PluginLoadError) else
                    f"{c.info.describe()} raised in pageext_params: {type(exc).__name__}: {exc}", exc)
            continue
        for p in mine:
            owners[p.name] = c.name
        c.params = mine
        params.extend(mine)

    machine = Machine(config, memblock_only=True, log_sink=log_sink)
    for msg in problems:
        machine.log.warn(f"pageext: {msg}")
    cfg = parse_boot(params, cmdline, boot_tables)
    machine.log.info(f"Command line: {cfg.cmdline}")
    for w in cfg.warnings:
        machine.log.warn(w)

    # A client's own frames are not part of "who allocated" when it captures a stack.
    machine.depot.skip_modules(*{(getattr(c.obj, "__module__", None) or getattr(c.obj, "__name__", "")).split(".")[0]
                                 for c in clients} - {"__main__", "builtins"})
    def ask(hook: str, who: list[Client], **kwargs: Any) -> dict[str, Any]:
        """Call a boot-time hook client by client; a client that raises is named, and dropped unless strict."""
        out: dict[str, Any] = {}
        for c in list(who):
            try:
                out.update(call_each(pm, hook, [c.name], **kwargs))
            except Exception as exc:
                trouble(f"{c.info.describe()} raised in {hook}: {type(exc).__name__}: {exc}", exc)
                machine.log.warn(f"pageext: {problems[-1]}")
                pm.unregister(c.obj)
                clients.remove(c)
                who.remove(c)
        return out

    needs = ask("pageext_need", list(clients), boot=cfg, log=machine.log, machine=machine)
    for c in clients:
        c.need = bool(needs.get(c.name, False))
    needed = [c for c in clients if c.need]
    fields = ask("pageext_fields", needed, boot=cfg)
    flags = ask("pageext_flags", needed, boot=cfg)
    needed = [c for c in needed if c in clients]
    needed_names = [c.name for c in needed]
    for c in needed:
        c.fields = dict(fields.get(c.name) or {})
        c.flags = tuple(flags.get(c.name) or ())
    layout = compute_layout([(c.name, c.fields, c.flags) for c in needed])
    for c in needed:
        c.layout = layout.client(c.name)
    if preflight is not None:
        preflight(machine, layout)
    if plan_only:
        return PageExt(machine, cfg, clients, layout, None, pm, problems)

    tables: PageExtTables | None = None
    if layout.record_size:
        tables = PageExtTables(machine, layout)
        tables.fail_allocation = fail_table_allocation
        if config.memory_model == "FLATMEM":
            tables.allocate_flatmem()
    machine.free_all()
    if tables is not None:
        if tables.sparse:
            try:
                tables.allocate_sections(machine.present_sections())
            except PageExtAllocError as exc:
                raise ConfigError(f"{exc}: the machine is too small for the page_ext record "
                                  f"({layout.record_size} bytes per page); give it more memory") from exc
        machine.log.info(f"allocated {tables.nbytes} bytes of page_ext")
        machine.memory_notifiers.append(tables.memory_notifier)
    else:
        machine.log.info("page_ext: no client is needed, nothing allocated")

    pe = PageExt(machine, cfg, clients, layout, tables, pm, problems)
    for c in needed:
        if tables is not None:
            c.view = PageExtView(tables, c.layout)  # type: ignore[arg-type]
    for name, impl in ordered_impls(pm, "pageext_init", needed_names):
        c = pe.client(name)
        kwargs = {"view": c.view, "machine": machine, "boot": cfg, "page_ext": pe, "log": machine.log}
        try:
            impl.function(*[kwargs[a] for a in impl.argnames])
        except Exception as exc:  # its memory is laid out by now: this one cannot be skipped
            raise PluginLoadError(f"{c.info.describe()} raised in pageext_init: {type(exc).__name__}: {exc}") from exc
    install_callouts(pe)
    return pe

