"""Sweeps on a real Dask cluster (2 worker processes): the same figures as running in-process,
failed runs as rows, resuming, kept runs, the table on disk."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sweepsupport import write

from pageext_core.session.config import load_session
from pageext_core.session.runner import RunOptions, run_session
from pageext_core.sweep import SweepSpec, flatten, mixed_blocks, run_sweep

TIMING = ("timing.boot_seconds", "timing.workload_seconds", "timing.elapsed_seconds")


def in_process(session: Path, *overrides: str) -> dict[str, Any]:
    """The figures of one run done here, as `pageext run SESSION --set ...` would do it."""
    out = run_session(load_session(session, overrides=list(overrides)), RunOptions(write_files=False))
    got = {**flatten(out.summary), **mixed_blocks(out.page_ext)}
    return {k: v for k, v in got.items() if k not in TIMING}


def figures(row: dict[str, Any]) -> dict[str, Any]:
    skip = {"run_id", "seed", "status", "exit_code", "error", "warnings", "worker", *TIMING}
    return {k: v for k, v in row.items() if k not in skip and not k.startswith("param.")}


def test_a_grid_times_seeds_gives_the_figures_of_each_run_in_process(tiny: Path, client: Any,
                                                                      tmp_path: Path) -> None:
    spec = SweepSpec(str(tiny), seeds="1-3", grid=["workload.operations=200,600", "boot.cmdline=page_owner=on,"
                     '"page_owner=on debug_pagealloc=on"'], out=str(tmp_path / "out"))
    res = run_sweep(spec, client=client)
    assert (res.total, res.executed, res.resumed, res.errors) == (12, 12, 0, 0)
    seen = set()
    for row in res.rows:
        ops, cmd, seed = row["param.workload.operations"], row["param.boot.cmdline"], row["seed"]
        seen.add((ops, cmd, seed))
        want = in_process(tiny, f"workload.operations={ops}", f"boot.cmdline={json.dumps(cmd)}",
                          f"workload.seed={seed}")
        assert figures(row) == want
        assert row["status"] == "ok" and row["exit_code"] == 0 and row["error"] is None
        assert row["workload.operations"] == ops
        assert int(row["worker"].rsplit(":", 1)[1]) != os.getpid()  # ran in a worker process
    assert seen == {(o, c, s) for o in (200, 600) for c in ("page_owner=on", "page_owner=on debug_pagealloc=on")
                    for s in (1, 2, 3)}
    # page_owner's mixed-block count is there; debug_pagealloc's figures only where it was on
    assert all(r["mixed_blocks.total"] is not None for r in res.rows)
    assert {r["param.boot.cmdline"] for r in res.rows if "clients.debug_pagealloc.pages_poisoned" in r} == \
        {"page_owner=on debug_pagealloc=on"}


def test_the_table_on_disk_is_the_rows_in_parquet_and_csv(tiny: Path, client: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_sweep(SweepSpec(str(tiny), seeds="4-5", grid=["machine.memory=64MiB,128MiB"], out=str(out)),
                    client=client)
    table = pq.read_table(out / "results.parquet").to_pylist()
    columns = list(table[0])
    assert set().union(*res.rows) == set(columns)  # a figure one run lacks is null in its row
    assert sorted(table, key=lambda r: r["run_id"]) == \
        sorted(({c: r.get(c) for c in columns} for r in res.rows), key=lambda r: r["run_id"])
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in table]
    for c, p in zip(rows, table):
        assert c["param.machine.memory"] == p["param.machine.memory"]
        assert int(c["page_ext.bytes"]) == p["page_ext.bytes"]
        assert float(c["timing.elapsed_seconds"]) == p["timing.elapsed_seconds"]
        assert c["error"] == ""  # null in Parquet, empty in CSV
    assert {r["machine.memory_bytes"] for r in table} == {64 << 20, 128 << 20}
    report = json.loads((out / "report.json").read_text())
    points = {g["params"]["machine.memory"]: g for g in report["grid_points"]}
    assert set(points) == {"64MiB", "128MiB"}
    for mem, g in points.items():
        mine = [r for r in table if r["param.machine.memory"] == mem]
        live = [r["workload.live_pages"] for r in mine]
        assert g["runs"] == g["ok"] == 2
        assert g["figures"]["workload.live_pages"]["mean"] == sum(live) / 2
    md = (out / "report.md").read_text()
    assert "## machine.memory = \"64MiB\"" in md and "| page_ext.bytes | 2 |" in md


def test_a_failed_run_is_a_row_with_its_error(function_session: Path, client: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_sweep(SweepSpec(str(function_session), seeds="1-2", grid=["workload.params.fail=false,true",
                              'report.reports=["buddyinfo"],["buddyinfo", "nope"]'], out=str(out)), client=client)
    assert res.total == 8 and res.executed == 8
    by = {(r["param.workload.params.fail"], tuple(json.loads(r["param.report.reports"])
                                                 if isinstance(r["param.report.reports"], str)
                                                 else r["param.report.reports"]), r["seed"]): r for r in res.rows}
    for seed in (1, 2):
        ok = by[(False, ("buddyinfo",), seed)]
        assert ok["status"] == "ok" and ok["workload.result.blocks"] == 20
        failed = by[(True, ("buddyinfo",), seed)]
        # the run stopped on the workload's error (pageext run: exit 3); the state reached is in the row
        assert failed["status"] == "failed" and failed["exit_code"] == 3
        assert failed["error"] == "RuntimeError: the workload gave up"
        assert failed["workload.allocations"] == 20 and failed["page_ext.bytes"] > 0
        for fail in (False, True):
            rejected = by[(fail, ("buddyinfo", "nope"), seed)]
            # rejected before the workload (pageext run: exit 2), with the message pageext run prints
            assert rejected["status"] == "error" and rejected["exit_code"] == 2
            assert rejected["error"].startswith('--grid report.reports=["buddyinfo", "nope"]: no report \'nope\'')
            assert rejected.get("page_ext.bytes") is None
    assert res.errors == 6
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 8 and sum(r["error"] is not None for r in table) == 6


def test_rerunning_resumes_only_what_is_missing(tiny: Path, client: Any, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    first = run_sweep(SweepSpec(str(tiny), seeds="1-3", out=out), client=client)
    assert first.executed == 3
    before = {r["run_id"]: r for r in pq.read_table(Path(out) / "results.parquet").to_pylist()}
    more = run_sweep(SweepSpec(str(tiny), seeds="1-5", out=out), client=client)
    assert (more.total, more.executed, more.resumed) == (5, 2, 3)
    after = {r["run_id"]: r for r in pq.read_table(Path(out) / "results.parquet").to_pylist()}
    assert len(after) == 5
    for rid, row in before.items():  # not run again: even the wall-clock figures are the first run's
        assert after[rid] == row
    again = run_sweep(SweepSpec(str(tiny), seeds="1-5", out=out), client=None)  # nothing to run: no cluster started
    assert (again.executed, again.resumed) == (0, 5)


def test_retry_failed_runs_the_error_rows_again(function_session: Path, client: Any, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    run_sweep(SweepSpec(str(function_session), seeds="1-2", grid=['report.reports=["buddyinfo"],["nope"]'],
                        out=out), client=client)
    plain = run_sweep(SweepSpec(str(function_session), seeds="1-2", grid=['report.reports=["buddyinfo"],["nope"]'],
                                out=out), client=client)
    assert plain.executed == 0 and plain.errors == 2
    retried = run_sweep(SweepSpec(str(function_session), seeds="1-2", grid=['report.reports=["buddyinfo"],["nope"]'],
                                  out=out, retry_failed=True), client=client)
    assert (retried.executed, retried.resumed, retried.errors) == (2, 2, 2)


def test_keep_runs_writes_each_runs_outputs(tiny: Path, client: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_sweep(SweepSpec(str(tiny), seeds="1-2", out=str(out), keep_runs=True), client=client)
    for row in res.rows:
        d = out / "runs" / row["run_id"]
        summary = json.loads((d / "summary.json").read_text())
        assert summary["workload"]["seed"] == row["seed"]
        assert {**flatten(summary), **{k: v for k, v in row.items() if k.startswith("mixed_blocks.")}} == \
            {k: v for k, v in row.items() if k in flatten(summary) or k.startswith("mixed_blocks.")}
        assert sorted(p.name for p in d.iterdir()) == ["buddyinfo", "dmesg.log", "index.html", "pagetypeinfo",
                                                       "summary.json"]
    plain = tmp_path / "plain"
    run_sweep(SweepSpec(str(tiny), seeds="1-2", out=str(plain)), client=client)
    assert not (plain / "runs").exists()


def test_ctrl_c_keeps_what_finished(tiny: Path, client: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    res = run_sweep(SweepSpec(str(tiny), seeds="1-8", out=str(out)), client=client, progress=stop_after_two)
    assert res.interrupted and res.executed == 2
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 2 and all(r["status"] == "ok" for r in table)
    rest = run_sweep(SweepSpec(str(tiny), seeds="1-8", out=str(out)), client=client)
    assert (rest.executed, rest.resumed) == (6, 2)


def test_a_session_edited_since_refuses_to_mix_results(tiny: Path, client: Any, tmp_path: Path) -> None:
    from pageext_core.sweep import SweepError

    out = str(tmp_path / "out")
    run_sweep(SweepSpec(str(tiny), seeds="1", out=out), client=client)
    write(tiny.parent, tiny.name, tiny.read_text().replace("operations = 300", "operations = 301"))
    with pytest.raises(SweepError, match="the session file has changed since"):
        run_sweep(SweepSpec(str(tiny), seeds="1", out=out), client=client)
    other = str(tmp_path / "out2")
    run_sweep(SweepSpec(str(tiny), seeds="1", out=other), client=client)
    with pytest.raises(SweepError, match="--set, --memory, --boot, --disable-plugin or --strict differ"):
        run_sweep(SweepSpec(str(tiny), seeds="1", out=other, sets=["workload.operations=5"]), client=client)


def test_short_runs_go_several_to_a_task_with_one_row_each(tiny: Path, client: Any, tmp_path: Path) -> None:
    from dask.distributed import get_task_stream

    # a tiny run takes a tenth of a second (more on a busy machine): up to 5 s a task, batches it surely
    with get_task_stream(client) as stream:
        res = run_sweep(SweepSpec(str(tiny), seeds="1-24", out=str(tmp_path / "out")), client=client,
                        batch_seconds=5.0)
    tasks = [t for t in stream.data if "execute_batch" in str(t["key"])]
    assert (res.total, res.executed, res.errors) == (24, 24, 0)
    assert 4 < len(tasks) < 24  # the first 4 (2 workers, 2 tasks each) alone, then batches, none of them huge
    assert sorted(r["seed"] for r in res.rows) == list(range(1, 25))
    assert len({r["run_id"] for r in res.rows}) == 24
    for row in res.rows[::7]:  # batched or not, each row is its own run's
        assert figures(row) == in_process(tiny, f"workload.seed={row['seed']}")
    with get_task_stream(client) as stream:
        alone = run_sweep(SweepSpec(str(tiny), seeds="1-6", out=str(tmp_path / "alone")), client=client,
                          batch_seconds=0)
    assert alone.executed == 6 == len([t for t in stream.data if "execute_batch" in str(t["key"])])
