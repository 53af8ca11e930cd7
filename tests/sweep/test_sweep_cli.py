"""``pageext sweep`` on the command line: mistakes exit 2 before anything runs, with the message
``pageext run --set`` would give; a sweep on a scheduler by address prints where its table is."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from pageext_core.cli import main


def cli(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


@pytest.mark.parametrize("args, message", [
    (["--grid", "machine.nodez=2"], "--grid machine.nodez=2: [machine] nodez: unknown key; did you mean 'nodes'?"),
    (["--grid", "machine.cpus=2,x"], "--grid machine.cpus=x: [machine] cpus: expected an integer, got 'x'"),
    (["--grid", "machine.memory=64MiB,63MiB"],
     "--grid machine.memory=63MiB: [machine]: node 0 memory 63MiB: must be a positive multiple of 4MiB "
     "(one max-order block)"),
    (["--set", "workload.operationz=3"],
     "--set workload.operationz=3: [workload] operationz: unknown key; did you mean 'operations'?"),
    (["--seeds", "9-1"], "--seeds 9-1: range '9-1' runs backwards; write 1-9"),
    (["--grid", "workload.seed=1,2"], "--grid workload.seed=1,2: seeds are given with --seeds, e.g. --seeds 1,2"),
    (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
     "--workers sets the size of the local cluster; with --scheduler the cluster's own workers run the sweep "
     "(drop --workers)"),
])
def test_mistakes_exit_2_with_one_line_and_nothing_written(tiny: Path, tmp_path: Path, args: list[str],
                                                           message: str) -> None:
    out = tmp_path / "out"
    r = cli("sweep", tiny, "--seeds", "1-2", *args, "--out", out)
    assert r.exit_code == 2, r.output
    assert r.stderr == f"pageext: error: {message}\n"
    assert r.stdout == ""
    assert not out.exists()


def test_a_scheduler_address_dask_cannot_read_exit_2(tiny: Path, tmp_path: Path) -> None:
    r = cli("sweep", tiny, "--seeds", "1-2", "--scheduler", "bogus://", "--out", tmp_path / "out")
    assert r.exit_code == 2
    assert r.stderr.startswith("pageext: error: --scheduler bogus://: not a scheduler address (unknown address scheme")
    assert r.stderr.endswith("; give one like tcp://HOST:8786\n") and r.stderr.count("\n") == 1


def test_a_missing_session_file_exit_2(tmp_path: Path) -> None:
    r = cli("sweep", tmp_path / "nope.toml", "--out", tmp_path / "out")
    assert r.exit_code == 2 and r.stderr == f"pageext: error: {tmp_path / 'nope.toml'}: no such session file\n"


def test_runs_that_cannot_fit_in_host_memory_are_refused_before_a_cluster_starts(tiny: Path, tmp_path: Path) -> None:
    # a 64 MiB run is estimated at about 67 MiB of host memory: one fits in 100 MiB, two at once do not
    r = cli("sweep", tiny, "--seeds", "1-4", "--workers", "2", "--out", tmp_path / "out",
            env={"PAGEEXT_HOST_MEMORY": "100MiB"})
    assert r.exit_code == 2
    assert r.stderr.startswith("pageext: error: the session: one run needs about ")
    assert "this host runs 2 at once" in r.stderr and r.stderr.endswith("use --workers 1 or fewer\n")
    assert not (tmp_path / "out").exists()


def test_a_sweep_on_a_scheduler_by_address(tiny: Path, cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = cli("sweep", tiny, "--seeds", "1-3", "--grid", "workload.operations=100,200", "--scheduler",
            cluster.scheduler_address, "--out", out)
    assert r.exit_code == 0, r.output
    assert r.stdout == (f"sweep     6 runs: 6 run now, 0 already in the table; 0 not ok\n"
                        f"results   {out}/results.parquet, results.csv\n"
                        f"report    {out}/report.md, report.json\n")
    assert r.stderr == ""
    assert pq.read_table(out / "results.parquet").num_rows == 6
    again = cli("sweep", tiny, "--seeds", "1-3", "--grid", "workload.operations=100,200", "--scheduler",
                cluster.scheduler_address, "--out", out, "--quiet")
    assert again.exit_code == 0 and again.output == ""


def test_failed_runs_are_a_warning_not_a_lost_sweep(function_session: Path, cluster: Any, tmp_path: Path) -> None:
    r = cli("sweep", function_session, "--seeds", "1-2", "--grid", "workload.params.fail=false,true", "--scheduler",
            cluster.scheduler_address, "--out", tmp_path / "out")
    assert r.exit_code == 0
    assert "4 runs: 4 run now, 0 already in the table; 2 not ok" in r.stdout
    assert r.stderr == ("pageext: warning: 2 of 4 runs did not finish cleanly: see the status and error columns "
                        "(--retry-failed runs them again)\n")


def test_an_unreachable_scheduler_is_a_cluster_failure_exit_3(tiny: Path, tmp_path: Path) -> None:
    """The environment, not the input: exit 3 with one line, as ``page_owner_fleet`` says it; nothing written."""
    from pageext_core.sweep import SweepClusterError, SweepSpec, run_sweep

    # nothing listens on port 9: refused at once, said as such (Dask alone would retry until the timeout)
    message = ("--scheduler tcp://127.0.0.1:9: cannot reach the scheduler: "
               "connection refused by 127.0.0.1:9 (is a scheduler running there?)")
    with pytest.raises(SweepClusterError, match=f"^{re.escape(message)}$"):
        run_sweep(SweepSpec(str(tiny), seeds="1", scheduler="tcp://127.0.0.1:9", out=str(tmp_path / "out"),
                            connect_timeout=30))
    assert not (tmp_path / "out").exists()
    r = cli("sweep", tiny, "--seeds", "1", "--scheduler", "tcp://127.0.0.1:9", "--out", tmp_path / "out")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "", f"pageext: error: {message}\n")
    assert not (tmp_path / "out").exists()


def test_without_the_extra_the_sweep_says_what_to_install(tiny: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if not installed
    r = cli("sweep", tiny, "--seeds", "1", "--out", tmp_path / "out")
    assert r.exit_code == 2
    assert r.stderr.startswith("pageext: error: pageext sweep needs the sweep extra: pip install "
                               "'pageext-core[sweep]' (make install has it) (")
    assert not (tmp_path / "out").exists()


def test_dask_and_pyarrow_load_only_for_a_sweep() -> None:
    import subprocess
    import sys

    code = ("import sys, pageext_core.cli, pageext_core.sweep; "
            "print(sorted(m for m in ('dask', 'distributed', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
