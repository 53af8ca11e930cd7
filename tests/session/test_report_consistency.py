"""Reports describe one moment and never change the machine (issue 11, "Trust", section 2).

- No report, listing, summary or findings call changes the simulated machine:
  a fingerprint of everything reachable from the booted ``PageExt`` (every
  numpy array by its bytes, free lists, per-CPU lists, counters, the log, the
  page_ext tables, the clients' own state) is the same before and after
  producing every report the session offers, in three boots.
- So a seeded session writes the same reports and ``summary.json`` whichever
  reports are asked for, in whatever order.
- The figures agree with each other: the guard count in the guard report,
  ``summary.json`` and meminfo; buddyinfo's (and pagetypeinfo's) free pages
  and MemFree.
- page_owner's figures that the kernel reads after draining the per-CPU lists
  (the dump, the mixed-block count) are what the kernel prints after its
  drain: the test drains on purpose and finds them unchanged, in a state where
  the drain changes other figures (guard pages, pageblock types).
"""
from __future__ import annotations

import collections
import enum
import functools
import hashlib
import json
import random
import re
import types
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pytest
from sessionsupport import load_summary

import pageext_core as pc
from pageext_core.mm import MiB, stats
from pageext_core.mm.buddy import ALLOCM_K
from pageext_core.mm.constants import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from pageext_core.mm.gfp import __GFP_NOWARN, GFP_HIGHUSER_MOVABLE, GFP_KERNEL
from pageext_core.session.config import load_session
from pageext_core.session.runner import RunOptions, RunOutcome, build_summary, run_session
from pageext_core.session.workload import declared_finding_kinds, match_planted

ALL_ON = ""  # the default session's own boot line: page_owner, debug_pagealloc, guard
BOOTS = {
    "all plugins": ALL_ON,
    "page_owner only": "debug_pagealloc=off debug_guardpage_minorder=0",
    "no plugin": "page_owner=off debug_pagealloc=off debug_guardpage_minorder=0",
}
TWO_NODES = 'machine.memory=["512MiB", "512MiB"]'

# Attributes that are caches filled on first use, not machine state: formatted
# stack texts (page_owner's Dumper) and the report table PageExt collects lazily.
CACHES = frozenset({"_stacks", "_stacks2014", "_reports"})
_SKIP = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.BuiltinMethodType,
         types.ModuleType, type, functools.partial, memoryview)  # memoryviews alias arrays seen anyway


def fingerprint(root: Any) -> dict[str, Any]:
    """Everything reachable from ``root``, as path → value (arrays as dtype, shape and a hash of their bytes).

    Walked breadth first, so a path is the shortest way to reach the object
    (``pe.machine.state``); an object reached again is recorded by the path it
    was first seen at.  Code, pluggy's machinery and memoryviews are skipped.
    """
    out: dict[str, Any] = {}
    seen: dict[int, str] = {}
    queue: collections.deque[tuple[str, Any]] = collections.deque([("pe", root)])
    while queue:
        path, obj = queue.popleft()
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
            out[path] = obj
            continue
        if isinstance(obj, _SKIP) or type(obj).__module__.split(".")[0] in ("pluggy", "threading", "_thread"):
            continue
        if id(obj) in seen:
            out[path] = ("same object as", seen[id(obj)])
            continue
        seen[id(obj)] = path
        if isinstance(obj, np.ndarray):
            data = hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()
            out[path] = ("ndarray", obj.dtype.str, obj.shape, data)
        elif isinstance(obj, np.generic):
            out[path] = obj.item()
        elif isinstance(obj, bytearray):
            out[path] = bytes(obj)
        elif isinstance(obj, (enum.Enum, PurePath)):
            out[path] = repr(obj)
        elif isinstance(obj, random.Random):
            out[path] = obj.getstate()
        elif isinstance(obj, dict):
            out[path] = ("dict", len(obj))
            queue.extend((f"{path}[{k!r}]", v) for k, v in obj.items())
        elif isinstance(obj, (list, tuple, collections.deque)):
            out[path] = (type(obj).__name__, len(obj))
            queue.extend((f"{path}[{i}]", v) for i, v in enumerate(obj))
        elif isinstance(obj, (set, frozenset)):
            out[path] = sorted(map(repr, obj))
        else:
            attrs = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
            for cls in type(obj).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    if hasattr(obj, name):
                        attrs[name] = getattr(obj, name)
            # an object with state is its type plus its attributes; one with an empty __dict__ (a
            # stateless client such as the built-in core reports) is its type alone, not its address
            stateful = attrs or hasattr(obj, "__dict__")
            out[path] = ("object", type(obj).__qualname__) if stateful else repr(obj)
            queue.extend((f"{path}.{k}", v) for k, v in attrs.items() if k not in CACHES)
    return out


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def run(boot: str = ALL_ON, reports: list[str] | None = None, out: Path | None = None,
        overrides: tuple[str, ...] = ()) -> RunOutcome:
    """The default session (seed 42), optionally with another boot line, reports or --set overrides."""
    sess = load_session(overrides=list(overrides))
    return run_session(sess, RunOptions(boot=boot, reports=reports, out=str(out) if out else None,
                                        write_files=out is not None))


def read_everything(outcome: RunOutcome) -> dict[str, str]:
    """Every report (forwards, then backwards, with parameters too), listings, findings, summaries.

    Returns the texts of the forward pass; the backward pass must give the
    same texts.
    """
    pe = outcome.page_ext
    names = pe.report_names()
    texts = {n: pe.report(n) for n in names}
    assert {n: pe.report(n) for n in reversed(names)} == texts
    for n in names:
        pe.report_owner(n)
        pe.report_params(n)
    if "page_owner" in pe.enabled:
        texts["page_owner format=2014"] = pe.report("page_owner", format="2014")
        texts["show_stacks count_threshold=4"] = pe.report("page_owner_stacks/show_stacks", count_threshold=4)
        po = pe.plugin("page_owner")
        first, nxt = po.read_record(0)
        assert first and po.read_record(nxt)[0]
    findings = pe.findings()
    pe.client_summaries()
    pe.describe()
    stats.free_summary(pe.machine)
    build_summary(outcome.session, pe, outcome.workload, findings, match_planted(outcome.workload.planted, findings, declared_finding_kinds(pe)),
                  [], {})
    return texts


# -- the fingerprint itself -------------------------------------------------------------------------


def test_the_fingerprint_sees_a_drain_and_a_page_ext_byte() -> None:
    """The guard below is only worth something if it notices the changes a report must not make."""
    outcome = run(reports=[])
    pe, m = outcome.page_ext, outcome.page_ext.machine
    before = fingerprint(pe)
    assert fingerprint(pe) == before
    assert m.drain_all_pages() > 0
    diff = changed(before, fingerprint(pe))
    assert "pe.machine.state" in diff
    for counts in ("zone_pcp", "zone_held", "zone_free"):
        assert any(p.startswith(f"pe.machine.buddy.{counts}[") for p in diff), counts
    before = fingerprint(pe)
    table = next(iter(pe.tables.tables.values()))
    table.records.view(np.uint8)[-1] ^= 1
    assert any(p.endswith(".records") for p in changed(before, fingerprint(pe)))


# -- reading never changes the machine -------------------------------------------------------------


@pytest.mark.parametrize("boot", list(BOOTS.values()), ids=list(BOOTS))
def test_no_report_changes_the_machine(boot: str) -> None:
    outcome = run(boot, reports=[])
    pe, m = outcome.page_ext, outcome.page_ext.machine
    # Preconditions: there is something a drain would change.
    assert m.nr_pcp_pages > 0
    assert "zoneinfo" in pe.report_names()  # read below with every other report
    if "guard" in pe.enabled:
        assert m.nr_held_pages > 0
    before = fingerprint(pe)
    texts = read_everything(outcome)
    assert changed(before, fingerprint(pe)) == []
    assert texts == read_everything(outcome)  # and a second reading says the same


def test_no_report_changes_a_two_node_machine() -> None:
    outcome = run(reports=[], overrides=(TWO_NODES,))
    pe = outcome.page_ext
    assert len(pe.machine.geometry.nodes) == 2 and pe.machine.nr_pcp_pages > 0
    before = fingerprint(pe)
    read_everything(outcome)
    assert changed(before, fingerprint(pe)) == []


# -- the same files whichever reports are asked for ---------------------------------------------------


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_reports_and_summary_are_the_same_whichever_reports_are_asked_for(tmp_path: Path) -> None:
    # index.html lists the files a run wrote, so it differs by design: the text reports are compared
    no_page = ("report.pictures=[]",)
    full = run(out=tmp_path / "all", overrides=no_page)
    names = full.page_ext.report_names()
    want = files(tmp_path / "all")
    assert set(want) == {*names, "dmesg.log", "summary.json"}
    summary = load_summary(tmp_path / "all")
    subsets = {
        "meminfo-guard": ["meminfo", "guard"],
        "guard-meminfo": ["guard", "meminfo"],
        "own-meminfo": ["pageext_meminfo", "meminfo"],
        "dump-first": ["page_owner", "pagetypeinfo", "guard", "buddyinfo"],
        "pagetypeinfo": ["pagetypeinfo"],
        "reversed": list(reversed(names)),
        "none": [],
    }
    got_summaries = {}
    for label, subset in subsets.items():
        out = tmp_path / label
        run(reports=subset, out=out, overrides=no_page)
        got = files(out)
        assert set(got) == {*subset, "dmesg.log", "summary.json"}, label
        for name, data in got.items():
            if name != "summary.json":
                assert data == want[name], f"{label}: {name} differs from the run with every report"
        s = load_summary(out)
        # Reports are listed in the session's order, whatever order they were asked in.
        assert s["reports"] == [n for n in names if n in subset] + ["dmesg.log", "summary.json"], label
        strip = lambda d: {k: v for k, v in d.items() if k not in ("timing", "reports")}  # noqa: E731
        assert strip(s) == strip(summary), f"{label}: summary.json figures differ"
        got_summaries[label] = {k: v for k, v in s.items() if k != "timing"}
    assert got_summaries["meminfo-guard"] == got_summaries["guard-meminfo"]


# -- the figures agree -------------------------------------------------------------------------------


def meminfo_kb(text: str, key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+) kB$", text, re.M)
    assert m, f"no {key} in meminfo"
    return int(m.group(1))


def buddyinfo_pages(text: str) -> dict[str, int]:
    """Free pages per "Node n, zone Z": Σ count × 2^order of each line."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"(Node \d+), zone\s+(\S+)((?:\s+\d+)+)\s*$", line)
        assert m, line
        out[f"{m.group(1)} {m.group(2)}"] = sum(int(c) << o for o, c in enumerate(m.group(3).split()))
    return out


def pagetypeinfo_pages(text: str) -> dict[str, int]:
    """Free pages per node and zone from pagetypeinfo's per-migratetype lines."""
    out: dict[str, int] = {}
    for m in re.finditer(r"^Node\s+(\d+), zone\s+(\S+), type\s+\S+((?:\s+\d+)+)\s*$", text, re.M):
        key = f"Node {m.group(1)} {m.group(2)}"
        out[key] = out.get(key, 0) + sum(int(c) << o for o, c in enumerate(m.group(3).split()))
    return out


@pytest.mark.parametrize("overrides", [(), (TWO_NODES,)], ids=["one node", "two nodes"])
def test_free_pages_and_guard_pages_agree_across_reports_and_summary(tmp_path: Path,
                                                                      overrides: tuple[str, ...]) -> None:
    outcome = run(out=tmp_path, overrides=overrides)
    assert outcome.exit_code == 0
    got = {n: (tmp_path / n).read_text() for n in ("buddyinfo", "pagetypeinfo", "meminfo", "pageext_meminfo", "guard")}
    s = json.loads((tmp_path / "summary.json").read_text())
    fp = s["free_pages"]
    per_zone = {f"Node {z['node']} {z['zone']}": z["free_pages"] for z in fp["zones"]}
    assert len(per_zone) >= (3 if overrides else 2)
    # Free pages: buddyinfo, pagetypeinfo, MemFree, vmstat and summary.json say the same.
    memfree = meminfo_kb(got["meminfo"], "MemFree") // 4
    assert buddyinfo_pages(got["buddyinfo"]) == per_zone
    assert pagetypeinfo_pages(got["pagetypeinfo"]) == per_zone
    assert sum(per_zone.values()) == memfree == fp["free_pages"]
    assert f"nr_free_pages {memfree}\n" in (tmp_path / "vmstat").read_text()
    # Per-CPU pages are neither free nor allocated in any of them, and there are some.
    assert meminfo_kb(got["pageext_meminfo"], "PerCPULists") // 4 == fp["pcp_pages"] > 0
    # pageext_meminfo adds up: present = MemFree + reserved + allocated + per-CPU + guard + isolated free
    own = {k: meminfo_kb(got["pageext_meminfo"], k) // 4
           for k in ("Present", "Reserved", "Allocated", "PerCPULists", "GuardPages", "IsolatedFree")}
    assert own["Present"] == memfree + sum(v for k, v in own.items() if k != "Present")
    assert (own["Allocated"], own["Reserved"]) == (fp["allocated_pages"], fp["reserved_pages"])
    assert meminfo_kb(got["meminfo"], "MemTotal") // 4 == own["Present"] - own["Reserved"]
    # Guard pages: the guard report, both places in summary.json, meminfo.
    m = re.search(r"^Guard pages:\s+(\d+) \((\d+) kB\)$", got["guard"], re.M)
    assert m
    guard_pages = int(m.group(1))
    assert guard_pages > 0 and int(m.group(2)) == guard_pages * 4
    assert guard_pages == s["clients"]["guard"]["guard_pages"] == fp["held_pages"]
    assert meminfo_kb(got["pageext_meminfo"], "GuardPages") == guard_pages * 4
    blocks = int(re.search(r"^Guard blocks:\s+(\d+)$", got["guard"], re.M).group(1))
    assert blocks == s["clients"]["guard"]["guard_blocks"]
    # The per-zone lines of the guard report are summary.json's guard_blocks_by_zone.
    by_zone = {f"{a} {b}": [int(x) for x in c.split()]
               for a, b, c in re.findall(r"^(Node \d+), zone\s+(\S+)((?:\s+\d+)+)\s*$", got["guard"], re.M)}
    assert by_zone == s["clients"]["guard"]["guard_blocks_by_zone"]


# -- page_owner: what the kernel prints after its drain ------------------------------------------------


def mixed_section(pagetypeinfo: str) -> str:
    return pagetypeinfo[pagetypeinfo.index("Number of mixed blocks"):]


def test_page_owner_dump_and_mixed_blocks_are_the_kernels_after_drain_in_the_default_session() -> None:
    """The kernel drains before reading; we do not, and print what it prints after the drain.

    In the default session a drain returns a few hundred pages and clears
    their guards (pageext_meminfo's GuardPages drops), yet the dump and the mixed
    counts it would print are the ones read without the drain.
    """
    pe = run(reports=[]).page_ext
    m = pe.machine
    dump, dump2014, pti, mem = (pe.report("page_owner"), pe.report("page_owner", format="2014"),
                                pe.report("pagetypeinfo"), pe.report("pageext_meminfo"))
    assert m.drain_all_pages() > 0  # the kernel's drain, done here on purpose
    assert meminfo_kb(pe.report("pageext_meminfo"), "GuardPages") < meminfo_kb(mem, "GuardPages")
    assert pe.report("page_owner") == dump
    assert pe.report("page_owner", format="2014") == dump2014
    assert mixed_section(pe.report("pagetypeinfo")) == mixed_section(pti)


KER = GFP_KERNEL | __GFP_NOWARN
MOV = GFP_HIGHUSER_MOVABLE | __GFP_NOWARN
TINY = pc.MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False, cpus=1)


def order9_movable_blocks(m: pc.Machine) -> list[int]:
    """Pageblocks (DMA32) wholly covered by one allocated order-9 movable block of a Movable pageblock."""
    pbo = m.pageblock_order
    heads = np.flatnonzero(m.state == (ALLOCM_K | pbo))
    pbs = heads >> pbo
    dma32 = m.geometry.zones[1].index
    return [int(b) for b in pbs if m.pb_mt[b] == MIGRATE_MOVABLE and m.pb_zone[b] == dma32]


def test_mixed_blocks_and_dump_do_not_depend_on_a_drain_that_retypes_a_pageblock() -> None:
    """A drain can re-type a pageblock; never one with an allocated page, so page_owner's figures hold.

    Built by hand: pageblock C is claimed by an unmovable request while 256
    movable pages stay in it (a mixed block).  Pageblocks A and B are buddies:
    B is claimed Unmovable the same way, then emptied so that only pages on
    the per-CPU list are left in it; A is freed whole, as Movable.  The drain
    merges B's pages into a free order-9 block whose buddy is A: the two merge
    and A becomes Unmovable (pagetypeinfo's block counts change), while the
    mixed counts and the dump stay as they were read before the drain.
    """
    pe = pc.boot(TINY, "page_owner=on", autoload=True)
    m = pe.machine
    pbo, per = m.pageblock_order, 1 << m.pageblock_order
    m.set_min_free_kbytes(0)  # no watermark floors: every page can be allocated
    m.set_lowmem_reserve_ratio([0, 0, 0, 0])
    with m.context(stack=["fill+0x0/0x10"]):
        while True:
            for order in range(pbo, -1, -1):
                while m.alloc_pages(MOV, order) is not None:
                    pass
            if not m.drain_all_pages():  # what per-CPU refills left behind, too
                break
    assert m.nr_free_pages == 0 and m.nr_pcp_pages == 0
    blocks = set(order9_movable_blocks(m))
    pair = max(b for b in blocks if b % 2 == 0 and b + 1 in blocks)
    a, b = pair, pair + 1
    c = max(blocks - {a, b})

    def claim_unmovable(pb: int) -> list[int]:
        """Free the upper half of the pageblock, then allocate unmovable pages until one comes from it."""
        start = pb << pbo
        m.split_page(start, pbo)
        for p in range(start + per // 2, start + per):
            m.free_pages(p, 0)
        m.drain_all_pages()
        got = []
        with m.context(stack=["claim+0x0/0x10"]):
            while True:
                p = m.alloc_pages(KER, 0)
                assert p is not None
                got.append(p)
                if p >> pbo == pb:
                    return got

    claim_unmovable(c)
    assert m.pb_mt[c] == MIGRATE_UNMOVABLE
    taken = claim_unmovable(b)
    assert m.pb_mt[b] == MIGRATE_UNMOVABLE and m.pb_mt[a] == MIGRATE_MOVABLE
    # Empty B: its movable half and the unmovable pages taken from it.
    start_b = b << pbo
    for p in [*range(start_b, start_b + per // 2), *(p for p in taken if p >> pbo == b)]:
        m.free_pages(p, 0)
    m.drain_all_pages()
    # One more unmovable page comes from B through the per-CPU list, and goes back to it.
    with m.context(stack=["last+0x0/0x10"]):
        v = m.alloc_pages(KER, 0)
    assert v >> pbo == b
    m.free_pages(v, 0)
    m.free_pages(a << pbo, pbo)  # A: free whole, Movable; its buddy B is not whole yet
    assert m.pb_mt[a] == MIGRATE_MOVABLE and m.nr_pcp_pages > 0

    before = fingerprint(pe)
    dump, pti = pe.report("page_owner"), pe.report("pagetypeinfo")
    assert changed(before, fingerprint(pe)) == []
    assert re.search(r"^Node 0, zone    DMA32\s+[1-9]", mixed_section(pti), re.M)  # C is counted
    m.drain_all_pages()
    assert m.pb_mt[a] == MIGRATE_UNMOVABLE  # the drain re-typed A ...
    after = pe.report("pagetypeinfo")
    blocks_line = lambda t: re.search(r"Number of blocks type.*?zone    DMA32[^\n]*", t, re.S).group(0)  # noqa: E731
    assert blocks_line(after) != blocks_line(pti)  # ... which pagetypeinfo's block counts show
    assert mixed_section(after) == mixed_section(pti)
    assert pe.report("page_owner") == dump
