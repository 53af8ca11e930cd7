"""Session files: one TOML file describing an experiment, checked before anything runs.

Every mistake is reported with ``file:line:col``, the key path and, for a
misspelt key, the closest valid one::

    session.toml:3:1: [machine] memroy: unknown key; did you mean 'memory'?

Precedence for boot parameters (later wins): the file's
``[boot.<client>]`` tables, then its ``[boot] cmdline``, then the CLI's
``--boot``.  ``--set KEY=VALUE`` changes any key before validation, as if
it were written in the file.
"""
from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from pageext_core.mm.errors import ConfigError, GfpParseError
from pageext_core.mm.geometry import MachineConfig, parse_size
from pageext_core.mm.gfp import parse_gfp
from pageext_core.session.sourcemap import SourceMap

DEFAULT_SESSION = Path(__file__).with_name("default.toml")
BUILTIN_NAME = "<built-in session>"  # how errors name the default session (pageext run --print-default shows it)

FAULT_KINDS = ("use_after_free", "stray_write", "bit_flip", "corruption", "overrun", "underrun")


class SessionError(ValueError):
    """A session file (or an override) that cannot be used; the message says where and how to fix it."""


@dataclass
class HotplugEvent:
    at: int  # operation index
    action: str  # "online" or "offline"
    block: int | None  # memory block index; None: the first hot-pluggable block
    migrate: bool = False  # offline: migrate movable pages out first, as the kernel does


@dataclass
class WorkloadSpec:
    kind: str = "synthetic"
    seed: int = 0
    operations: int = 20000
    orders: dict[int, float] | None = None
    gfp: dict[int, float] | None = None
    lifetime: float = 2000.0
    leak_fraction: float = 0.01
    max_live_pages: int | None = None
    think_time_ns: int = 20000
    tasks: list[dict[str, Any]] | None = None
    call_sites: int | None = None
    hotplug: list[HotplugEvent] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    function: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    base_dir: str | None = None  # a function's module may live next to the session file
    # kind = "replay": a real kernel trace (pageext_core.session.replay)
    trace: str | None = None
    mode: str = "exact"  # or "what-if"
    trace_format: str = "auto"
    zoneinfo: str | None = None  # /proc/zoneinfo of the traced box: its nodes, sizes and CPUs
    infer_memory: bool = False  # size the machine from the trace's highest pfn
    strict: bool = False  # set by the runner from --strict / [plugins] strict: a malformed line is an error


@dataclass
class ReportSpec:
    out: str | None = None
    reports: list[str] | None = None  # None: every available report
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    pictures: list[str] = field(default_factory=lambda: ["index"])  # memmap, fragmentation, flamegraph, index
    sample_every: int | None = None  # None: operations / 50
    picture_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # [report.params.memmap] stack = "..."


@dataclass
class PluginsSpec:
    disable: list[str] = field(default_factory=list)
    strict: bool = False
    autoload: bool = True


@dataclass
class Session:
    name: str
    path: Path | None
    machine: MachineConfig
    cmdline: str
    boot_tables: dict[str, dict[str, Any]]
    plugins: PluginsSpec
    workload: WorkloadSpec
    report: ReportSpec
    source: SourceMap
    description: str = ""


class _Checker:
    """Walks the parsed TOML and turns every mistake into a located SessionError."""

    def __init__(self, smap: SourceMap, overrides: Sequence[tuple[list[str], str]] = ()) -> None:
        self.smap = smap
        self.overrides = list(overrides)  # (key path, option as given: --set/--memory/--seed)

    def where_keys(self, table: str, keys: Sequence[str]) -> str:
        """Where a check that involves several keys of ``[table]`` failed.

        The options that set any of them (``--memory 63MiB, --set
        machine.nodes=3``) when the user gave some; else the first of them
        written in the file; else the table.  The built-in session is never
        pointed into: it is named by the options that changed it.
        """
        rank = {k: i for i, k in enumerate(keys)}
        mine = [(path, lbl) for path, lbl in self.overrides
                if path[0] == table and (len(path) == 1 or path[1] in rank)]
        involved = [lbl for path, lbl in sorted(mine, key=lambda o: rank.get(o[0][1], -1) if len(o[0]) > 1 else -1)]
        if involved:
            return ", ".join(dict.fromkeys(involved))
        if self.smap.filename == BUILTIN_NAME:
            touching = [lbl for path, lbl in self.overrides if path[0] == table] or [lbl for _, lbl in self.overrides]
            return ", ".join(dict.fromkeys(touching)) or BUILTIN_NAME
        head = self.smap.where([table])
        return next((w for w in (self.smap.where([table, k]) for k in keys) if w != head), head)

    def fail(self, path: Sequence[Any], msg: str) -> SessionError:
        table = ".".join(str(p) for p in path[:-1] if not isinstance(p, int))
        key = path[-1] if path else ""
        label = f"[{table}] {key}" if table else f"[{key}]"
        if len(path) >= 2 and isinstance(path[-2], int):
            label = f"[{'.'.join(str(p) for p in path[:-2])}] entry {path[-2] + 1}: {key}"
        return SessionError(f"{self.smap.where([p for p in path if not isinstance(p, int)])}: {label}: {msg}")

    def table(self, data: Any, path: Sequence[Any], allowed: Mapping[str, str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(path, f"expected a table, got {_show(data)}")
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(allowed)}"
                raise self.fail([*path, key], "unknown key" + hint)
        return data

    def typed(self, data: Mapping[str, Any], path: Sequence[Any], key: str, types: tuple[type, ...],
              what: str, default: Any) -> Any:
        if key not in data:
            return default
        v = data[key]
        if isinstance(v, bool) and bool not in types:
            raise self.fail([*path, key], f"expected {what}, got {_show(v)}")
        if not isinstance(v, types):
            raise self.fail([*path, key], f"expected {what}, got {_show(v)}")
        return v

    def int_(self, data: Mapping[str, Any], path: Sequence[Any], key: str, default: int,
             lo: int | None = None, hi: int | None = None) -> int:
        v = self.typed(data, path, key, (int,), "an integer", default)
        if key in data and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            rng = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise self.fail([*path, key], f"{v} is out of range ({rng})")
        return int(v)

    def float_(self, data: Mapping[str, Any], path: Sequence[Any], key: str, default: float,
               lo: float | None = None, hi: float | None = None) -> float:
        v = self.typed(data, path, key, (int, float), "a number", default)
        if key in data and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            bound = f"at least {lo}" if hi is None else f"at most {hi}" if lo is None else f"{lo}..{hi}"
            raise self.fail([*path, key], f"{v} is out of range: expected {bound}")
        return float(v)

    def bool_(self, data: Mapping[str, Any], path: Sequence[Any], key: str, default: bool) -> bool:
        return bool(self.typed(data, path, key, (bool,), "true or false", default))

    def str_(self, data: Mapping[str, Any], path: Sequence[Any], key: str, default: str | None) -> str | None:
        v = self.typed(data, path, key, (str,), "a string", default)
        return None if v is None else str(v)

    def size(self, data: Mapping[str, Any], path: Sequence[Any], key: str, default: int) -> int:
        if key not in data:
            return default
        v = data[key]
        try:
            return _size(v, key)
        except ConfigError as exc:
            raise self.fail([*path, key], str(exc).split(": ", 1)[-1]) from None

    def strlist(self, data: Mapping[str, Any], path: Sequence[Any], key: str) -> list[str]:
        v = self.typed(data, path, key, (list,), "a list of strings", [])
        for i, item in enumerate(v):
            if not isinstance(item, str):
                raise self.fail([*path, key], f"item {i + 1} should be a string, got {_show(item)}")
        return list(v)


def _size(v: Any, what: str) -> int:
    """``parse_size``, refusing negative sizes (it accepts ``"-1GiB"``)."""
    n = parse_size(v, what)
    if n < 0:
        raise ConfigError(f"{what}: size {v!r} is negative")
    return n


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "a list"
    return f"{type(v).__name__} {v!r}"


TOP = {
    "session": "name and description",
    "machine": "the simulated machine",
    "boot": "boot parameters: cmdline and per-client tables",
    "plugins": "which clients to load",
    "workload": "what the session does",
    "report": "which reports to write, and where",
}
MACHINE = {
    "memory": "RAM, e.g. \"4GiB\", or one size per node", "nodes": "NUMA nodes", "memory_model": "SPARSEMEM or FLATMEM",
    "cpus": "CPUs (each has per-CPU lists)", "movablecore": "bytes of ZONE_MOVABLE", "hotplug": "hot-pluggable memory, offline at boot",
    "hotplug_movable": "online hot-plugged memory into ZONE_MOVABLE", "memory_block_size": "hotplug unit",
    "kernel_image": "reserved at 16 MiB", "reserve_memmap": "reserve 64 bytes per page for struct page",
    "x86_holes": "legacy and PCI holes", "holes": "extra holes: [[start, end], ...]", "max_order": "MAX_PAGE_ORDER",
    "pageblock_order": "pageblock order", "section_size_bits": "log2 of the section size in bytes",
    "dma_limit": "end of ZONE_DMA", "dma32_limit": "end of ZONE_DMA32",
}
PLUGINS = {"disable": "clients not to load", "strict": "a client that fails to load, or a boot word no client owns, is an error",
           "autoload": "load installed clients"}
WORKLOAD = {
    "kind": "synthetic or function", "seed": "random seed", "operations": "allocations + frees",
    "orders": "order weights, e.g. {0 = 70, 3 = 10}", "gfp": "gfp mask weights, e.g. {GFP_KERNEL = 3}",
    "lifetime": "mean lifetime of an allocation, in operations", "leak_fraction": "fraction never freed",
    "max_live_pages": "stop allocating (free instead) above this many live pages",
    "think_time_ns": "mean simulated time between operations", "tasks": "[{pid, tgid, comm, user}]",
    "call_sites": "distinct allocation stacks", "hotplug": "[{at, action, block}]", "faults": "bugs to plant",
    "function": "\"module:function\" to run instead", "params": "a table passed to the function",
    "trace": "kind = \"replay\": the kernel trace file (ftrace, trace-cmd report or perf script)",
    "mode": "replay mode: \"exact\" (the traced pfns) or \"what-if\" (the allocator chooses)",
    "format": "trace format: auto, ftrace, trace-cmd or perf", "zoneinfo": "/proc/zoneinfo of the traced machine",
    "infer_memory": "size the machine from the trace's highest pfn",
}
REPLAY_KEYS = ("trace", "mode", "format", "zoneinfo", "infer_memory")
REPLAY_MODES = ("exact", "what-if")
TRACE_FORMATS = ("auto", "ftrace", "trace-cmd", "perf")
REPORT = {"out": "output directory", "reports": "report names, or [\"all\"]", "params": "per-report parameters",
          "pictures": "memmap, fragmentation, flamegraph, index, or \"all\"",
          "sample_every": "operations between two samples for the fragmentation picture"}
SESSION = {"name": "session name", "description": "what it is for"}


def load_session(path: str | Path | None = None, *, overrides: Sequence[str | tuple[str, str]] = (),
                 text: str | None = None) -> Session:
    """Read and check a session file (the embedded default when ``path`` is None).

    ``overrides`` are ``KEY=VALUE`` strings (``--set``), or ``(KEY=VALUE,
    label)`` pairs whose label names the option in errors (``--memory 4XB``).
    """
    builtin = path is None and text is None
    p: Path | None
    if text is None:
        p = Path(path) if path is not None else DEFAULT_SESSION
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SessionError(f"{p}: no such session file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SessionError(f"{p}: cannot read it: {exc}") from None
    else:
        p = Path(path) if path is not None else None
    # Errors in the built-in session name the session, never a file inside the package.
    filename = BUILTIN_NAME if builtin else str(p) if p is not None else "<session>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SessionError(f"{filename}: TOML syntax error: {exc}") from None
    smap = SourceMap(text, filename)
    given_options = []
    for ov in overrides:
        item, label = (ov, f"--set {ov}") if isinstance(ov, str) else ov
        key_path = _apply_override(data, item)
        smap.override(key_path, label)
        given_options.append((key_path, label))
    given = None if builtin else p
    # A file without [session] name takes its own name: my.toml writes to out/my.
    name = given.stem if given is not None else "default"
    sess = _check(data, smap, name, given, given_options)
    if given is not None:
        sess.workload.base_dir = str(given.resolve().parent)
    return sess


def _apply_override(data: dict[str, Any], item: str) -> list[str]:
    key, eq, raw = item.partition("=")
    if not eq or not key.strip():
        raise SessionError(f"--set {item!r}: expected KEY=VALUE, e.g. --set workload.operations=5000")
    try:  # a TOML key path, so quoted parts work: report.params."a/b".x
        node: Any = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:
        raise SessionError(f"--set {item!r}: {key.strip()!r} is not a key path like workload.operations") from None
    path = []
    while isinstance(node, dict):
        (k, node), = node.items()
        path.append(k)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: take it as a string
    cur = data
    for k in path[:-1]:
        nxt = cur.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise SessionError(f"--set {item!r}: {k!r} is not a table")
        cur = nxt
    cur[path[-1]] = value
    return path


def _check(data: dict[str, Any], smap: SourceMap, name: str, path: Path | None,
           overrides: Sequence[tuple[list[str], str]] = ()) -> Session:
    c = _Checker(smap, overrides)
    c.table(data, [], TOP)
    sess = c.table(data.get("session", {}), ["session"], SESSION)
    machine = _check_machine(c, data.get("machine", {}))
    boot = data.get("boot", {})
    if not isinstance(boot, dict):
        raise c.fail(["boot"], "expected a table")
    cmdline = ""
    tables: dict[str, dict[str, Any]] = {}
    for key, value in boot.items():
        if key == "cmdline":
            if not isinstance(value, str):
                raise c.fail(["boot", "cmdline"], f"expected a string, got {_show(value)}")
            cmdline = value
        elif isinstance(value, dict):
            tables[key] = value
        else:
            raise c.fail(["boot", key], "unknown key; [boot] takes cmdline = \"...\" and [boot.<client>] tables")
    plugins = c.table(data.get("plugins", {}), ["plugins"], PLUGINS)
    ps = PluginsSpec(
        disable=c.strlist(plugins, ["plugins"], "disable"),
        strict=c.bool_(plugins, ["plugins"], "strict", False),
        autoload=c.bool_(plugins, ["plugins"], "autoload", True),
    )
    workload = _check_workload(c, data.get("workload", {}))
    for o in workload.orders or {}:
        if o > machine.max_order:
            raise c.fail(["workload", "orders", str(o)], f"order {o} is above the machine's max_order {machine.max_order}")
    rep = c.table(data.get("report", {}), ["report"], REPORT)
    reports = c.strlist(rep, ["report"], "reports") if "reports" in rep else None
    if reports is not None and "all" in reports:
        reports = None
    params = rep.get("params", {})
    if not isinstance(params, dict) or any(not isinstance(v, dict) for v in params.values()):
        raise c.fail(["report", "params"], "expected a table of tables: [report.params.\"name\"] key = value")
    pictures = _check_pictures(c, rep)
    params, picture_params = _picture_params(c, params)
    sample_every = c.int_(rep, ["report"], "sample_every", 0, lo=1) if "sample_every" in rep else None
    sname = c.str_(sess, ["session"], "name", None) or name
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", sname) or ".." in sname:
        raise c.fail(["session", "name"], f"{sname!r} must be a plain name (letters, digits, '.', '_', '-'): "
                                          "it names the default output directory out/<name>")
    return Session(
        name=sname,
        path=path,
        machine=machine,
        cmdline=cmdline,
        boot_tables=tables,
        plugins=ps,
        workload=workload,
        report=ReportSpec(out=c.str_(rep, ["report"], "out", None), reports=reports, params=params,
                          pictures=pictures, sample_every=sample_every, picture_params=picture_params),
        source=smap,
        description=c.str_(sess, ["session"], "description", "") or "",
    )


def _check_pictures(c: _Checker, rep: Mapping[str, Any]) -> list[str]:
    """``[report] pictures``: a list of picture names, or "all" (a string or in the list); checked with a hint."""
    from pageext_core.pictures.outputs import DEFAULT_PICTURES, DRAWN, PICTURES, expand

    if "pictures" not in rep:
        return list(DEFAULT_PICTURES)  # plain HTML: no matplotlib needed
    raw = rep["pictures"]
    names = [raw] if isinstance(raw, str) else c.strlist(rep, ["report"], "pictures")
    for n in names:
        if n != "all" and n not in PICTURES:
            close = difflib.get_close_matches(n, [*PICTURES, "all"], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise c.fail(["report", "pictures"], f"no picture {n!r}; {hint}(pictures: {', '.join(PICTURES)}, or \"all\")")
    got = expand(names)
    if any(p in DRAWN for p in got):
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise c.fail(["report", "pictures"], "pictures need matplotlib, which is not installed: "
                                                 "pip install 'pageext-core[pictures]' (make install does)")
    return got


PICTURE_PARAMS = {"memmap": {"stack": "overlay the pages allocated from stacks with a frame containing this text"}}


def _picture_params(c: _Checker, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split ``[report.params]`` into the reports' and the pictures' (``memmap``: ``stack``), checking the latter."""
    from pageext_core.pictures.outputs import PICTURES

    reports = {k: v for k, v in params.items() if k not in PICTURES}
    pictures = {k: dict(v) for k, v in params.items() if k in PICTURES}
    for name, given in pictures.items():
        known = PICTURE_PARAMS.get(name, {})
        for key, value in given.items():
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f"did you mean {close[0]!r}?" if close else (
                    f"it takes {', '.join(known)}" if known else "it takes no parameters")
                raise c.fail(["report", "params", name, key], f"picture {name!r} has no parameter {key!r}; {hint}")
            if not isinstance(value, str) or not value:
                raise c.fail(["report", "params", name, key], f"expected a non-empty string, got {_show(value)}")
    return reports, pictures


def _check_machine(c: _Checker, m: Any) -> MachineConfig:
    P = ["machine"]
    c.table(m, P, MACHINE)
    d = MachineConfig()
    if "memory" in m and isinstance(m["memory"], list):
        sizes = []
        for i, v in enumerate(m["memory"]):
            try:
                sizes.append(_size(v, "memory"))
            except ConfigError as exc:
                raise c.fail([*P, "memory"], f"node {i}: {str(exc).split(': ', 1)[-1]}") from None
        memory: int | tuple[int, ...] = tuple(sizes)
        nodes_default = len(sizes)
    else:
        memory = c.size(m, P, "memory", d.memory)  # type: ignore[arg-type]
        nodes_default = 1
    holes = []
    for i, h in enumerate(m.get("holes", [])):
        if not (isinstance(h, list) and len(h) == 2):
            raise c.fail([*P, "holes"], f"hole {i + 1}: expected [start, end], e.g. [\"2GiB\", \"2176MiB\"]")
        try:
            holes.append((parse_size(h[0], "hole start"), parse_size(h[1], "hole end")))
        except ConfigError as exc:
            raise c.fail([*P, "holes"], f"hole {i + 1}: {exc}") from None
    model = c.str_(m, P, "memory_model", d.memory_model)
    if model is not None and model.upper() not in ("SPARSEMEM", "FLATMEM"):
        raise c.fail([*P, "memory_model"], f"{model!r}: expected \"SPARSEMEM\" or \"FLATMEM\"")
    cfg = MachineConfig(
        memory=memory,
        nodes=c.int_(m, P, "nodes", nodes_default, 1, 64),
        memory_model=(model or d.memory_model).upper(),
        cpus=c.int_(m, P, "cpus", d.cpus, 1, 4096),
        max_order=c.int_(m, P, "max_order", d.max_order, 1, 14),
        pageblock_order=c.int_(m, P, "pageblock_order", d.pageblock_order, 0, 14),
        section_size_bits=c.int_(m, P, "section_size_bits", d.section_size_bits, 13, 40),
        x86_holes=c.bool_(m, P, "x86_holes", d.x86_holes),
        holes=tuple(holes),
        movablecore=c.size(m, P, "movablecore", 0),
        kernel_image=c.size(m, P, "kernel_image", d.kernel_image),
        reserve_memmap=c.bool_(m, P, "reserve_memmap", d.reserve_memmap),
        hotplug=c.size(m, P, "hotplug", 0),
        hotplug_movable=c.bool_(m, P, "hotplug_movable", False),
        memory_block_size=c.size(m, P, "memory_block_size", 0),
        dma_limit=c.size(m, P, "dma_limit", d.dma_limit),
        dma32_limit=c.size(m, P, "dma32_limit", d.dma32_limit),
    )
    from pageext_core.mm.geometry import build_geometry

    try:
        build_geometry(cfg)
    except ConfigError as exc:
        raise SessionError(f"{c.where_keys('machine', _machine_keys(str(exc)))}: [machine]: {exc}") from None
    return cfg


# Words of a machine-layout error that name the keys it involves ("node 0 memory 63MiB: must be
# a multiple of 4MiB" involves memory and nodes), so it can point at the options that set them.
_KEY_HINTS = (
    (r"\bnodes?\b", ("memory", "nodes")), (r"\bSPARSEMEM\b|\bFLATMEM\b", ("memory_model",)),
    (r"\bkernel image\b", ("kernel_image",)), (r"\bholes?\b", ("holes", "x86_holes")),
    (r"\bmemory block size\b", ("memory_block_size",)), (r"\bsection size\b", ("section_size_bits",)),
)


def _machine_keys(message: str) -> list[str]:
    """The ``[machine]`` keys a layout error is about, in the order it names them."""
    found: list[tuple[int, str]] = []
    for pattern, keys in _KEY_HINTS:  # phrases first, then blanked: "memory block size" is not memory
        for m in re.finditer(pattern, message):
            found += [(m.start(), k) for k in keys]
            message = message[:m.start()] + " " * (m.end() - m.start()) + message[m.end():]
    for key in MACHINE:
        hit = re.search(rf"(?<!\w){re.escape(key)}(?!\w)", message)
        if hit:
            found.append((hit.start(), key))
    return list(dict.fromkeys(k for _, k in sorted(found)))


def _weights(c: _Checker, w: Mapping[str, Any], path: list[Any], key: str, parse: Any) -> dict[int, float] | None:
    if key not in w:
        return None
    table = w[key]
    if not isinstance(table, dict) or not table:
        raise c.fail([*path, key], "expected a non-empty table of weights, e.g. {0 = 70, 1 = 20}")
    out: dict[int, float] = {}
    for k, v in table.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise c.fail([*path, key, k], f"weight must be a non-negative number, got {_show(v)}")
        try:
            out[parse(k)] = out.get(parse(k), 0.0) + float(v)
        except (ValueError, GfpParseError) as exc:
            raise c.fail([*path, key, k], str(exc)) from None
    if sum(out.values()) <= 0:
        raise c.fail([*path, key], "weights add up to zero")
    return out


def _order(k: str) -> int:
    try:
        o = int(k)
    except ValueError:
        raise ValueError(f"{k!r} is not an order (a whole number, 0..max_order)") from None
    if not 0 <= o <= 14:
        raise ValueError(f"order {o} is outside 0..14")
    return o


def _check_workload(c: _Checker, w: Any) -> WorkloadSpec:
    P = ["workload"]
    c.table(w, P, WORKLOAD)
    kind = c.str_(w, P, "kind", None) or ("function" if "function" in w else "replay" if "trace" in w else "synthetic")
    if kind not in ("synthetic", "function", "replay"):
        raise c.fail([*P, "kind"], f"{kind!r}: expected \"synthetic\", \"function\" or \"replay\"")
    trace = c.str_(w, P, "trace", None)
    if kind == "replay":
        if not trace:
            raise c.fail([*P, "trace"], "a replay workload needs trace = \"path/to/trace.txt\"")
    else:
        for key in REPLAY_KEYS:
            if key in w:
                raise c.fail([*P, key], f"only for kind = \"replay\" (this workload is {kind!r})")
    mode = c.str_(w, P, "mode", "exact")
    if mode not in REPLAY_MODES:
        close = difflib.get_close_matches(str(mode), REPLAY_MODES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise c.fail([*P, "mode"], f"{mode!r}: expected \"exact\" or \"what-if\"{hint}")
    trace_format = c.str_(w, P, "format", "auto")
    if trace_format not in TRACE_FORMATS:
        close = difflib.get_close_matches(str(trace_format), TRACE_FORMATS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise c.fail([*P, "format"], f"{trace_format!r}: expected one of {', '.join(TRACE_FORMATS)}{hint}")
    zoneinfo = c.str_(w, P, "zoneinfo", None)
    infer_memory = c.bool_(w, P, "infer_memory", False)
    if zoneinfo and infer_memory:
        raise c.fail([*P, "infer_memory"], "give zoneinfo or infer_memory, not both: zoneinfo already sizes the machine")
    function = c.str_(w, P, "function", None)
    if kind == "function":
        if not function or ":" not in function:
            raise c.fail([*P, "function"], "a function workload needs function = \"package.module:function\"")
    elif function is not None:
        raise c.fail([*P, "function"], "set kind = \"function\" (or drop kind) to run a function workload")
    faults_t = w.get("faults", {})
    c.table(faults_t, [*P, "faults"], {k: "how many to plant" for k in FAULT_KINDS})
    faults = {k: c.int_(faults_t, [*P, "faults"], k, 0, 0, 1_000_000) for k in FAULT_KINDS if k in faults_t}
    events = []
    hot = w.get("hotplug", [])
    if not isinstance(hot, list):
        raise c.fail([*P, "hotplug"], "expected a list of tables: hotplug = [{at = 1000, action = \"online\"}]")
    for i, ev in enumerate(hot):
        EP = [*P, "hotplug", i]
        c.table(ev, EP, {"at": "operation index", "action": "online or offline", "block": "memory block index",
                         "migrate": "offline: migrate movable pages out first"})
        if "at" not in ev or "action" not in ev:
            raise c.fail([*P, "hotplug"], f"entry {i + 1} needs at = <operation> and action = \"online\"|\"offline\"")
        action = c.str_(ev, EP, "action", None)
        if action not in ("online", "offline"):
            raise c.fail([*EP, "action"], f"{action!r}: expected \"online\" or \"offline\"")
        migrate = c.bool_(ev, EP, "migrate", False)
        if migrate and action != "offline":
            raise c.fail([*EP, "migrate"], "migrate applies to action = \"offline\" only")
        events.append(HotplugEvent(at=c.int_(ev, EP, "at", 0, 0), action=action,
                                   block=c.int_(ev, EP, "block", -1, 0) if "block" in ev else None,
                                   migrate=migrate))
    tasks = w.get("tasks")
    if tasks is not None:
        if not isinstance(tasks, list) or not tasks:
            raise c.fail([*P, "tasks"], "expected a non-empty list of {pid = 1, comm = \"systemd\"} tables")
        for i, t in enumerate(tasks):
            TP = [*P, "tasks", i]
            c.table(t, TP, {"pid": "process id", "tgid": "thread group id", "comm": "command name",
                            "user": "a user-space task (allocates movable pages)", "weight": "share of allocations"})
            c.int_(t, TP, "pid", 0, 0)
            c.int_(t, TP, "tgid", 0, 0)
            if not isinstance(t.get("comm", ""), str):
                raise c.fail([*TP, "comm"], "expected a string")
            c.bool_(t, TP, "user", False)
            c.float_(t, TP, "weight", 1.0, 0.0)
            if "pid" not in t or "comm" not in t:
                raise c.fail([*P, "tasks"], f"task {i + 1} needs pid and comm")
    params = w.get("params", {})
    if not isinstance(params, dict):
        raise c.fail([*P, "params"], "expected a table")
    return WorkloadSpec(
        kind=kind,
        seed=c.int_(w, P, "seed", 0, 0),
        operations=c.int_(w, P, "operations", 20000, 0, 10**9),
        orders=_weights(c, w, P, "orders", _order),
        gfp=_weights(c, w, P, "gfp", parse_gfp),
        lifetime=c.float_(w, P, "lifetime", 2000.0, 1.0),
        leak_fraction=c.float_(w, P, "leak_fraction", 0.01, 0.0, 1.0),
        max_live_pages=c.int_(w, P, "max_live_pages", 0, 1) or None,
        think_time_ns=c.int_(w, P, "think_time_ns", 20000, 0),
        tasks=tasks,
        call_sites=c.int_(w, P, "call_sites", 0, 1, 10000) or None,
        hotplug=events,
        faults=faults,
        function=function,
        params=params,
        trace=trace,
        mode=mode or "exact",
        trace_format=trace_format or "auto",
        zoneinfo=zoneinfo,
        infer_memory=infer_memory,
    )
