"""Replaying hand-written kernel traces: exact placement, each anomaly rule, pageblock types, what-if.

Every trace here is written by hand in ftrace's format (the readers' own
rules are tested in tests/trace); each test checks the machine state or the
page_owner dump the replay left, not just counters.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pageext_core.cli import main
from pageext_core.mm import buddy as _b
from pageext_core.mm.invariants import check_invariants
from pageext_core.session.config import SessionError, load_session
from pageext_core.session.runner import RunOptions, run_session
from pageext_core.session.workload import WorkloadResult, run_workload

STACK = ("__alloc_pages_noprof+0x17c/0x360", "my_driver_alloc+0x2e/0x90 [my_drv]", "process_one_work+0x17c/0x3a0")
FREE_STACK = ("free_unref_page+0x1f/0x40", "my_driver_free+0x10/0x50 [my_drv]")


def line(kind: str, ts_us: int, pfn: int, order: int, *, comm: str = "my task-x", pid: int = 321, tgid: int = 300,
         cpu: int = 1, gfp: str = "GFP_KERNEL", mt: int = 0, stack: tuple[str, ...] | None = None,
         extra: str = "") -> str:
    head = f"{comm:>16}-{pid:<7} ({tgid:>7}) [{cpu:03d}] ..... {ts_us // 1_000_000:5d}.{ts_us % 1_000_000:06d}: "
    page = "0000000000000000" if pfn == 0 else "00000000deadbeef"
    if kind == "alloc":
        text = f"mm_page_alloc: page={page} pfn={pfn:#x} order={order} migratetype={mt} gfp_flags={gfp}"
        stack = STACK if stack is None else stack
    elif kind == "free":
        text = f"mm_page_free: page={page} pfn={pfn:#x} order={order}"
        stack = FREE_STACK if stack is None else stack
    else:
        text = f"mm_page_alloc_extfrag: page={page} pfn={pfn:#x} {extra}"
        stack = ()
    out = head + text + "\n"
    if stack:
        out += head + "<stack trace>\n" + "".join(f" => {f}\n" for f in stack)
    return out


def replay(tmp: Path, trace: str, *, mode: str = "exact", boot: str = "page_owner=on", memory: str = "64MiB",
           extra: str = "", **opts: object):
    (tmp / "t.txt").write_text(trace)
    (tmp / "s.toml").write_text(
        f'[machine]\nmemory = "{memory}"\ncpus = 2\n[boot]\ncmdline = "{boot}"\n'
        f'[workload]\nkind = "replay"\ntrace = "t.txt"\nmode = "{mode}"\n{extra}')
    sess = load_session(tmp / "s.toml")
    return run_session(sess, RunOptions(out=str(tmp / "out"), **opts))  # type: ignore[arg-type]


def records(text: str) -> dict[int, str]:
    """page_owner dump records by PFN (without the early records of pages in use at page_owner's init)."""
    out = {}
    for rec in text.split("\n\n"):
        if " register_early_stack+" in rec:
            continue
        for ln in rec.splitlines():
            if ln.startswith("PFN "):
                out[int(ln.split()[1], 16)] = rec
    return out


P = 0x3C00  # free in a fresh 64 MiB machine (boot's tables sit low)


def test_exact_places_blocks_with_the_traced_task_time_and_stack(tmp_path):
    trace = (line("alloc", 5_000_123, P, 2) + line("alloc", 5_000_200, P + 8, 0, comm="kworker/0:1", pid=7, tgid=7)
             + line("free", 5_000_300, P + 8, 0))
    o = replay(tmp_path, trace)
    assert o.exit_code == 0
    m = o.page_ext.machine
    assert m.state[P] == _b.ALLOC_K | 2 and m.is_free(P + 8)
    rec = records(o.page_ext.report("page_owner"))[P]
    assert rec.startswith("Page allocated via order 2, mask 0xcc0(GFP_KERNEL), pid 321, tgid 300 (my task-x), "
                          "ts 5000123000 ns\n")
    assert rec.splitlines()[2:] == [f" {f}" for f in STACK]
    assert P + 8 not in records(o.page_ext.report("page_owner"))
    r = o.summary["replay"]
    assert r["events"] == 3 and r["format"] == "ftrace" and r["mode"] == "exact"
    assert r["events_by_kind"]["mm_page_alloc"] == 2 and r["events_by_kind"]["mm_page_free"] == 1
    assert sum(r["anomalies"].values()) == 0 and r["failures"] == 0
    assert o.workload.live_pages == 4
    for name in ("kmem", "kmem_caller", "kmem_live", "replay"):
        assert (tmp_path / "out" / name).is_file()
    assert "my_driver_alloc" in (tmp_path / "out" / "kmem_caller").read_text()  # first frame outside the allocator
    check_invariants(m)


def test_free_before_trace_is_counted_and_changes_nothing(tmp_path):
    o = replay(tmp_path, line("free", 1_000_000, P, 0))
    assert o.summary["replay"]["anomalies"]["free-before-trace"] == 1
    assert o.page_ext.machine.is_free(P)
    assert "free-before-trace" in (tmp_path / "out" / "replay").read_text()


def test_lost_free_frees_the_old_block_then_places_the_new(tmp_path):
    trace = line("alloc", 1_000_000, P, 1, pid=10) + line("alloc", 2_000_000, P, 0, pid=20)
    o = replay(tmp_path, trace)
    m = o.page_ext.machine
    assert o.summary["replay"]["anomalies"]["lost-free"] == 1
    assert m.state[P] == _b.ALLOC_K | 0 and m.is_free(P + 1)
    assert ", pid 20, " in records(o.page_ext.report("page_owner"))[P]
    check_invariants(m)


def test_a_smaller_free_splits_the_block_and_keeps_the_rest(tmp_path):
    trace = line("alloc", 1_000_000, P, 2) + line("free", 2_000_000, P + 3, 0)
    o = replay(tmp_path, trace)
    m = o.page_ext.machine
    assert o.summary["replay"]["anomalies"]["order-mismatch"] == 1
    assert [m.state[P + i] for i in range(3)] == [_b.ALLOC_K] * 3 and m.is_free(P + 3)
    recs = records(o.page_ext.report("page_owner"))
    assert sorted(recs) == [P, P + 1, P + 2] and all("pid 321" in r for r in recs.values())
    check_invariants(m)


def test_a_larger_free_releases_every_block_it_covers(tmp_path):
    trace = line("alloc", 1_000_000, P, 0) + line("alloc", 1_000_001, P + 1, 0) + line("free", 2_000_000, P, 1)
    o = replay(tmp_path, trace)
    m = o.page_ext.machine
    assert o.summary["replay"]["anomalies"]["order-mismatch"] == 1
    assert m.is_free(P) and m.is_free(P + 1)
    check_invariants(m)


def test_overlap_with_a_block_at_another_head_frees_that_block(tmp_path):
    trace = line("alloc", 1_000_000, P, 2, pid=10) + line("alloc", 2_000_000, P + 2, 1, pid=20)
    o = replay(tmp_path, trace)
    m = o.page_ext.machine
    assert o.summary["replay"]["anomalies"]["overlap"] == 1
    assert m.state[P + 2] == _b.ALLOC_K | 1 and m.is_free(P) and m.is_free(P + 1)
    check_invariants(m)


def test_refused_placements_keep_the_reason_and_a_later_free_changes_nothing(tmp_path):
    trace = line("alloc", 1_000_000, 0x1000, 0) + line("free", 2_000_000, 0x1000, 0)  # the kernel image
    o = replay(tmp_path, trace)
    r = o.summary["replay"]
    assert r["failures"] == 1 and r["anomalies"]["refused"] == 1
    assert "page 0x1000 is reserved" in r["anomaly_examples"]["refused"][0]
    assert o.page_ext.machine.state[0x1000] >> 4 == _b.K_RESERVED
    assert o.exit_code == 0


def test_a_boot_allocation_is_never_freed_by_the_trace(tmp_path):
    probe = replay(tmp_path, line("alloc", 1, P, 0))
    heads, _ = probe.page_ext.machine.allocated_blocks()
    boot_pfn = int(heads[0])
    o = replay(tmp_path, line("free", 1_000_000, boot_pfn, 0) + line("alloc", 2_000_000, boot_pfn, 0))
    r = o.summary["replay"]
    assert r["anomalies"]["free-before-trace"] == 1 and r["anomalies"]["refused"] == 1
    assert o.page_ext.machine.is_allocated(boot_pfn)


def test_failed_allocations_in_the_trace_are_counted(tmp_path):
    o = replay(tmp_path, line("alloc", 1_000_000, 0, 3))
    assert o.summary["replay"]["traced_failures"] == 1
    assert o.summary["replay"]["events_by_kind"]["mm_page_alloc"] == 1


def test_extfrag_change_ownership_retypes_the_pageblock(tmp_path):
    extfrag = ("alloc_order=0 fallback_order=10 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 "
               "fragmenting=0 change_ownership=1")
    trace = line("extfrag", 1_000_000, P, 0, extra=extfrag) + line("alloc", 1_000_000, P, 0)
    o = replay(tmp_path, trace)
    m = o.page_ext.machine
    assert m.pageblock_migratetype(P) == 0
    r = o.summary["replay"]
    assert r["extfrag_applied"] == 1 and r["pageblocks_inferred"] == 0
    check_invariants(m)


def test_without_extfrag_events_a_free_pageblock_is_claimed_by_inference(tmp_path):
    o = replay(tmp_path, line("alloc", 1_000_000, P, 0) + line("alloc", 1_000_001, P + 512, 0, gfp="GFP_HIGHUSER_MOVABLE", mt=1))
    m = o.page_ext.machine
    assert m.pageblock_migratetype(P) == 0  # unmovable allocation in a wholly free movable pageblock
    assert m.pageblock_migratetype(P + 512) == 1
    assert o.summary["replay"]["pageblocks_inferred"] == 1
    check_invariants(m)


def test_clock_follows_the_trace_and_cpus_wrap(tmp_path):
    o = replay(tmp_path, line("alloc", 7_123_456, P, 0, cpu=5))
    assert "ts 7123456000 ns" in records(o.page_ext.report("page_owner"))[P]


def test_what_if_lets_the_allocator_choose_and_frees_follow_identity(tmp_path):
    # the traced box put these at pfns inside the simulated kernel image: what-if does not care
    trace = "".join(line("alloc", 1_000_000 + i, 0x1000 + i, 0) for i in range(8))
    trace += "".join(line("free", 2_000_000 + i, 0x1000 + i, 0) for i in range(0, 8, 2))
    o = replay(tmp_path, trace, mode="what-if", boot="page_owner=on debug_pagealloc=on debug_guardpage_minorder=1")
    m = o.page_ext.machine
    r = o.summary["replay"]
    assert r["failures"] == 0 and r["mode"] == "what-if"
    assert o.workload.live_pages == 4
    recs = records(o.page_ext.report("page_owner"))
    mine = {p: rec for p, rec in recs.items() if "pid 321" in rec}
    assert len(mine) == 4 and all(p < 0x1000 or p >= 0x2000 for p in mine)
    assert all("order 0" in rec for rec in mine.values())
    c = r["comparison"]
    assert c["guard_pages_held"]["what_if"] == m.nr_held_pages > 0 and c["guard_pages_held"]["traced"] == 0
    assert c["page_ext_bytes"]["what_if"] == o.page_ext.nbytes > 0
    assert c["allocation_failures"] == {"traced": 0, "what_if": 0}
    text = (tmp_path / "out" / "replay").read_text()
    assert "guard pages held" in text and "free blocks per order" in text
    check_invariants(m, allow_held_buddies=True)


def test_what_if_order_mismatch_follows_the_simulated_block(tmp_path):
    trace = line("alloc", 1_000_000, 0x1000, 2) + line("free", 2_000_000, 0x1003, 0) + line("free", 3_000_000, 0x1000, 1)
    o = replay(tmp_path, trace, mode="what-if")
    assert o.workload.live_pages == 1
    recs = [r for r in records(o.page_ext.report("page_owner")).values() if "pid 321" in r]
    assert len(recs) == 1 and "order 0" in recs[0]
    check_invariants(o.page_ext.machine)


def test_ctrl_c_keeps_what_was_reached(tmp_path):
    trace = "".join(line("alloc", 1_000 + i, P + i, 0) + line("free", 1_000 + i, P + i, 0) for i in range(2100))
    (tmp_path / "t.txt").write_text(trace)
    (tmp_path / "s.toml").write_text('[machine]\nmemory = "64MiB"\n[workload]\nkind = "replay"\ntrace = "t.txt"\n')
    from pageext_core.session.replay import prepare_replay
    from pageext_core.session.runner import boot_session

    sess = prepare_replay(load_session(tmp_path / "s.toml"))
    pe = boot_session(sess, RunOptions())
    res = WorkloadResult(kind="replay", seed=0)

    def progress(n: int) -> None:
        if n >= 4096:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_workload(pe, sess.workload, progress, res)
    assert res.interrupted and res.replay is not None and res.replay["stopped_at_event"] == 4096
    assert res.operations == 4096 and "kmem" in res.reports
    check_invariants(pe.machine)


# -- session keys and the command line -------------------------------------------------------------------------

@pytest.mark.parametrize("workload, msg", [
    ('kind = "replay"\n', ":1:1: [workload] trace: a replay workload needs trace"),
    ('trace = "t.txt"\nmode = "exakt"\n', ":3:1: [workload] mode: 'exakt': expected \"exact\" or \"what-if\"; did you mean 'exact'?"),
    ('trace = "t.txt"\nformat = "ftrce"\n', "[workload] format: 'ftrce': expected one of auto, ftrace, trace-cmd, perf; did you mean 'ftrace'?"),
    ('mode = "exact"\n', ":2:1: [workload] mode: only for kind = \"replay\""),
    ('trace = "t.txt"\nzoneinfo = "z"\ninfer_memory = true\n', "[workload] infer_memory: give zoneinfo or infer_memory, not both"),
    ('trace = "t.txt"\ntrce = 1\n', "[workload] trce: unknown key; did you mean 'trace'?"),
])
def test_session_key_errors_are_located(tmp_path, workload, msg):
    (tmp_path / "s.toml").write_text("[workload]\n" + workload)
    with pytest.raises(SessionError) as e:
        load_session(tmp_path / "s.toml")
    assert msg in str(e.value)
    assert str(e.value).startswith(str(tmp_path / "s.toml"))


def test_a_missing_trace_is_a_usage_error_before_boot(tmp_path):
    (tmp_path / "s.toml").write_text('[workload]\nkind = "replay"\ntrace = "nope.txt"\n')
    with pytest.raises(SessionError, match=r"s\.toml:3:1: \[workload\] trace: no such file"):
        run_session(load_session(tmp_path / "s.toml"), RunOptions(out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_replay_sizes_the_machine_from_the_trace(tmp_path):
    (tmp_path / "t.txt").write_text(line("alloc", 1_000_000, 0x30000, 3) + line("alloc", 1_000_001, 0x100, 0))
    r = cli("replay", tmp_path / "t.txt", "--out", tmp_path / "out", "--boot", "page_owner=on")
    assert r.exit_code == 0, r.output
    assert "replay    2 events (2 alloc), 0 anomalies, 0 failures (exact, ftrace)" in r.output
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["replay"]["events"] == 2 and s["workload"]["kind"] == "replay"
    assert s["replay"]["machine_from"] == "the trace's highest pfn"
    # just enough: the pfns plus pageext's memmap reservation at the top (64 bytes a page), in 4 MiB steps
    assert s["machine"]["pages"] >= 0x30008
    assert s["machine"]["memory_bytes"] <= 0x30008 * 4096 * 65 // 64 + (8 << 20)
    assert "PFN 0x30000 " in (tmp_path / "out" / "page_owner").read_text()


def test_cli_replay_with_zoneinfo_and_errors(tmp_path):
    fix = Path(__file__).resolve().parents[1] / "fixtures" / "trace"
    (tmp_path / "t.txt").write_text(line("alloc", 1_000_000, 0x30000, 0))
    r = cli("replay", tmp_path / "t.txt", "--zoneinfo", fix / "zoneinfo_2node.txt", "--out", tmp_path / "out",
            "--json", "--mode", "what-if")
    assert r.exit_code == 0
    s = json.loads(r.output)
    assert s["machine"]["nodes"] == 2 and s["machine"]["cpus"] == 2 and s["replay"]["mode"] == "what-if"
    assert s["replay"]["machine_from"].startswith("zoneinfo ") and s["replay"]["machine_from"].endswith("zoneinfo_2node.txt")
    bad = CliRunner().invoke(main, ["replay", str(tmp_path / "none.txt")])
    assert bad.exit_code == 2 and "trace: no such file" in bad.output
    bad = CliRunner().invoke(main, ["replay", str(tmp_path / "t.txt"), "--zoneinfo", str(tmp_path / "t.txt")])
    assert bad.exit_code == 2 and "zoneinfo" in bad.output and "no 'Node N, zone NAME' line" in bad.output


def test_strict_stops_at_a_malformed_line_with_the_state_reached(tmp_path):
    trace = line("alloc", 1_000_000, P, 0) + "this is not a trace line\n" + line("alloc", 2_000_000, P + 1, 0)
    o = replay(tmp_path, trace)
    assert o.exit_code == 0 and o.summary["replay"]["malformed"] == 1
    assert o.summary["replay"]["malformed_examples"][0]["line"] == 6  # after the event line and its 4-line stack
    o = replay(tmp_path, trace, strict=True)
    assert o.exit_code == 3
    assert "t.txt:6: not a trace event line" in o.workload.error
    assert o.page_ext.machine.is_allocated(P) and not o.page_ext.machine.is_allocated(P + 1)
    assert (tmp_path / "out" / "page_owner").is_file()


def test_cli_record_trace_then_replay_it(tmp_path):
    (tmp_path / "s.toml").write_text('[machine]\nmemory = "64MiB"\ncpus = 1\n[boot]\ncmdline = "page_owner=on"\n'
                                     '[workload]\noperations = 400\n')
    r = cli("run", tmp_path / "s.toml", "--out", tmp_path / "a", "--record-trace", tmp_path / "t.perf.xz",
            "--trace-format", "perf", "-q")
    assert r.exit_code == 0 and (tmp_path / "t.perf.xz").is_file()
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert s["record_trace"]["format"] == "perf" and s["record_trace"]["events"] > 300
    r = cli("replay", tmp_path / "t.perf.xz", tmp_path / "s.toml", "--out", tmp_path / "b", "--json")
    assert r.exit_code == 0
    got = json.loads(r.output)["replay"]
    assert got["format"] == "perf" and got["events"] == s["record_trace"]["events"] and got["failures"] == 0
    bad = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--record-trace", str(tmp_path)])
    assert bad.exit_code == 2 and "--record-trace" in bad.output and "is a directory" in bad.output


@pytest.mark.parametrize("name", ["ftrace_stacktrace.txt", "perf_script_callchain.txt"])
def test_the_fixture_samples_replay_and_page_owner_lists_what_they_leave_allocated(tmp_path, name):
    from pageext_core.trace import LiveSet, read_trace

    fix = Path(__file__).resolve().parents[1] / "fixtures" / "trace" / name
    r = read_trace(fix)
    live = LiveSet()
    live.feed(r)
    out = cli("replay", fix, "--out", tmp_path / "out", "--boot", "page_owner=on", "--json")
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)["replay"]
    assert s["events"] == sum(r.stats.events) and s["malformed"] == 0
    assert s["anomalies"]["free-before-trace"] == live.counts["free-before-trace"]
    recs = records((tmp_path / "out" / "page_owner").read_text())
    refused = {int(x.split("pfn ")[1].split()[0], 16) for x in s["anomaly_examples"].get("refused", [])}
    assert live.live and all(pfn in recs for pfn in live.live if pfn not in refused)
