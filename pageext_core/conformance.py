"""The conformance check: does a page_ext client keep the framework's promises?

``check_conformance(MyClient, boot_on="my_param=on")`` boots small machines
and checks that the client

1. needs no memory and gets no call-outs when its ``need`` says no;
2. writes only the bytes of the fields it declared (never padding, never
   another client's bytes, never another client's flag bits) — verified by
   booting it next to a sentinel client, switching off every other
   client's event hooks, and comparing every table byte before and after a
   busy workload;
3. produces each of its reports without error on a fresh and on a busy machine;
4. rejects bad boot-parameter values with a message (the value is ignored);
5. leaves the allocator's invariants intact.

It returns a ``ConformanceReport`` and raises ``ConformanceError`` when a check
fails (``raise_on_failure=False`` to just get the report).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pageext_core.hookspecs import hookimpl
from pageext_core.layout import FLAGS_FIELD
from pageext_core.mm.geometry import MachineConfig
from pageext_core.mm.invariants import InvariantError, check_invariants
from pageext_core.page_ext import PageExt, boot

SENTINEL = "_conformance_sentinel"
SENTINEL_PATTERN = 0x5A5A5A5A5A5A5A5A
BAD_VALUES = {"bool": "maybe", "int": "not-a-number", "flag": "maybe"}


class ConformanceError(AssertionError):
    """A client broke a framework promise; the message lists every failed check."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class ConformanceReport:
    client: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, ok, detail))

    def __str__(self) -> str:
        lines = [f"conformance of {self.client!r}: {'PASS' if self.ok else 'FAIL'}"]
        for c in self.checks:
            lines.append(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail else ""))
        return "\n".join(lines)


class _Sentinel:
    """A client that fills its bytes and a flag bit at init and never writes again."""

    name = SENTINEL

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_fields(self) -> dict[str, str]:
        return {"pattern": "u8"}

    @hookimpl
    def pageext_flags(self) -> list[str]:
        return ["SENTINEL"]

    @hookimpl
    def pageext_init(self, view: Any) -> None:
        for base, records, _ in view.scan():
            records["pattern"] = SENTINEL_PATTERN
            view.set_flags(base, view.flag("SENTINEL"), len(records))


def _client_name(pe: PageExt, plugin: Any, name: str | None) -> str:
    if name:
        return name
    for c in pe.clients:
        if c.obj is plugin or c.info.target is plugin:
            return c.name
    raise ConformanceError(f"client {plugin!r} was not registered; pass name= for an installed plugin")


def check_conformance(plugin: Any = None, boot_on: str = "", *, name: str | None = None, boot_off: str = "",
                      config: MachineConfig | None = None, operations: int = 3000, seed: int = 0,
                      autoload: bool = False, others: Sequence[Any] = (),
                      raise_on_failure: bool = True) -> ConformanceReport:
    """Run every check for one client; see the module docstring.

    ``plugin`` is a client class/instance/module (or None with ``name`` of an
    installed plugin and ``autoload=True``); ``boot_on`` is a boot line that
    enables it; ``others`` are extra clients it needs.
    """
    from pageext_core.session.config import WorkloadSpec
    from pageext_core.session.workload import run_workload

    cfg = config or MachineConfig(memory=128 << 20, kernel_image=0)
    given = ([plugin] if plugin is not None else []) + list(others)

    def boot_with(line: str, extra: Iterable[Any] = ()) -> PageExt:
        return boot(cfg, line, plugins=[*given, *extra], autoload=autoload, strict=True)

    pe_on = boot_with(boot_on)
    cname = _client_name(pe_on, plugin, name)
    report = ConformanceReport(cname)
    client_on = pe_on.client(cname)
    report.add("enabled by boot_on", client_on.enabled, "" if client_on.enabled else f"need() said no for {boot_on!r}")

    # 1. off costs nothing
    pe_off = boot_with(boot_off)
    c_off = pe_off.client(cname)
    problems = []
    if c_off.enabled:
        problems.append(f"need() said yes for boot_off {boot_off!r}")
    if c_off.layout is not None or c_off.view is not None:
        problems.append("it has page_ext space while not enabled")
    if cname in pe_off.machine.callouts.clients():
        problems.append("it has hot-path call-outs while not enabled")
    report.add("no memory and no calls when not enabled", not problems, "; ".join(problems))

    # 2. writes only its own bytes (next to a sentinel; other clients' event hooks
    #    switched off, so every byte that changes was written by this client)
    pe = boot_with(boot_on, [_Sentinel()])
    _only_calls_of(pe, cname)
    spec = WorkloadSpec(seed=seed, operations=operations, lifetime=200, leak_fraction=0.05)
    if pe.client(cname).layout is None:
        report.add("writes only its own fields", True, "declares no page_ext bytes")
        before = None
    else:
        before = {k: t.records.view(np.uint8).copy() for k, t in pe.tables.tables.items()}  # type: ignore[union-attr]
    try:
        for rname in _own_reports(pe, cname):
            pe.report(rname)
        report.add("reports on a fresh machine", True, ", ".join(_own_reports(pe, cname)) or "offers none")
    except Exception as exc:  # a report failing is exactly what this checks
        report.add("reports on a fresh machine", False, f"{type(exc).__name__}: {exc}")
    run_workload(pe, spec)
    if before is not None:
        report.add("writes only its own fields", *_diff_tables(pe, cname, before))
    try:
        for rname in _own_reports(pe, cname):
            pe.report(rname)
        report.add("reports on a busy machine", True)
    except Exception as exc:
        report.add("reports on a busy machine", False, f"{type(exc).__name__}: {exc}")
    try:
        check_invariants(pe.machine)
        report.add("allocator invariants after a busy workload", True)
    except InvariantError as exc:
        report.add("allocator invariants after a busy workload", False, str(exc))

    # 4. bad boot values rejected with a message
    for p in client_on.params:
        bad = BAD_VALUES.get(p.type)
        if bad is None:
            continue
        # On its own (after boot_off): a rejected value keeps an earlier good one, as in the kernel.
        pe_bad = boot_with(f"{boot_off} {p.name}={bad}")
        said = [w for w in pe_bad.boot.warnings if p.name in w or bad in w]
        ok = bool(said) and not pe_bad.boot.is_set(p.name)
        report.add(f"boot parameter {p.name}={bad} rejected", ok,
                   said[0] if said else "no warning names the parameter or the value")
    if raise_on_failure and not report.ok:
        raise ConformanceError(str(report))
    return report


def _only_calls_of(pe: PageExt, cname: str) -> None:
    """Keep the machine's call-outs of one client; drop every other client's."""
    pe.machine.install(pe.machine.callouts.only(cname))


def _own_reports(pe: PageExt, cname: str) -> list[str]:
    return [n for n in pe.report_names() if pe.report_owner(n) == cname]


def _diff_tables(pe: PageExt, cname: str, before: dict[int, np.ndarray]) -> tuple[bool, str]:
    lay = pe.client(cname).layout
    assert lay is not None and pe.tables is not None
    rs = pe.record_size
    allowed = np.zeros(rs, np.bool_)
    for f in lay.fields:
        allowed[f.offset : f.offset + f.size] = True
    own_bits = sum(1 << b for b in lay.flag_bits.values())
    changed = np.zeros(rs, np.bool_)
    flag_bits = 0
    for key, t in pe.tables.tables.items():
        after = t.records.view(np.uint8).reshape(-1, rs)
        prev = before[key].reshape(-1, rs)
        changed |= (after != prev).any(axis=0)
        if pe.layout.has_flags:
            fa = t.records[FLAGS_FIELD]
            fb = prev[:, :8].copy().view("<u8").ravel()
            flag_bits |= int(np.bitwise_or.reduce(fa ^ fb)) if len(fa) else 0
    if pe.layout.has_flags:
        changed[:8] = False
    bad = np.flatnonzero(changed & ~allowed)
    problems = []
    if bad.size:
        where = []
        for off in bad.tolist():
            owner = next((c.name for c in pe.layout.clients if c.offset <= off < c.offset + c.size), None)
            where.append(f"{off} ({'padding of ' + cname if owner == cname else owner or 'padding'})")
        problems.append(f"bytes written outside its fields at record offsets {', '.join(where[:8])}")
    if flag_bits & ~own_bits:
        problems.append(f"flag bits changed that are not its own: {flag_bits & ~own_bits:#x}")
    wrote = bool(changed.any()) or bool(flag_bits)
    return (not problems, "; ".join(problems) or ("wrote only its own bytes" if wrote else "wrote nothing"))
