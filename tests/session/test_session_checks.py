"""What a session checks before its workload runs, how it fails while running, and output hygiene."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sessionsupport import TINY, ReportClient, with_clients, write_session

from pageext_core import hookimpl
from pageext_core.cli import main
from pageext_core.session.config import SessionError, load_session
from pageext_core.session.runner import EXIT_FAILED, RunOptions, run_session

WITH_PAGE_OWNER = TINY.replace("[plugins]\nautoload = false\n", '[boot]\ncmdline = "page_owner=on"\n')
LONG = "operations = 400"


def cli(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def ran_workload(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record whether the workload started (checks must fail before it)."""
    import pageext_core.session.runner as r

    started: list[int] = []
    real = r.run_workload

    def spy(*a: Any, **k: Any) -> Any:
        started.append(1)
        return real(*a, **k)

    monkeypatch.setattr(r, "run_workload", spy)
    return started


# -- found before the workload ---------------------------------------------------------------------------


def test_bad_report_parameter_value_is_found_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = ran_workload(monkeypatch)
    text = WITH_PAGE_OWNER + '\n[report.params."page_owner_stacks/show_stacks"]\ncount_threshold = -4\n'
    p = write_session(tmp_path, text)
    with pytest.raises(SessionError, match=r"report 'page_owner_stacks/show_stacks': count_threshold: expected a "
                                           r"non-negative integer, got -4"):
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    assert started == [] and not (tmp_path / "out").exists()


def test_misspelt_report_parameter_gets_a_suggestion_before_the_run(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    started = ran_workload(monkeypatch)
    text = WITH_PAGE_OWNER + '\n[report.params."page_owner_stacks/show_stacks"]\ncount_treshold = 4\n'
    p = write_session(tmp_path, text)
    with pytest.raises(SessionError) as ei:
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    line = len(text.splitlines())
    assert str(ei.value) == (f"{p}:{line}:1: report 'page_owner_stacks/show_stacks' has no parameter "
                             "'count_treshold'; did you mean 'count_threshold'?")
    assert started == []


def test_cli_param_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    r = cli("report", "page_owner_stacks/show_stacks", "--boot", "page_owner=on",
            "--set", "workload.operations=50", "--param", "count_threshold=abc")
    assert r.exit_code == 2
    assert r.stderr.startswith("pageext: error: --param: report 'page_owner_stacks/show_stacks': count_threshold")
    assert "Traceback" not in r.stderr


def test_param_values_are_read_as_toml_so_the_2014_format_is_reachable() -> None:
    r = cli("report", "page_owner", "--boot", "page_owner=on", "--set", "workload.operations=300",
            "--param", "format=2014")
    assert r.exit_code == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("Page allocated via order ") and ", mask 0x" in first and "(" not in first
    r2 = cli("report", "page_owner", "--boot", "page_owner=on", "--set", "workload.operations=300",
             "--param", 'format="2014"')
    assert r2.stdout == r.stdout


def test_impossible_hotplug_events_are_found_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = ran_workload(monkeypatch)
    p = write_session(tmp_path, TINY.replace(LONG, LONG + '\nhotplug = [{ at = 5, action = "online" }]'))
    with pytest.raises(SessionError, match=r"entry 1: the machine has no hot-pluggable memory; add \[machine\] hotplug"):
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    p = write_session(tmp_path, TINY.replace(LONG, LONG + '\nhotplug = [{ at = 5, action = "online", block = 99 }]'))
    with pytest.raises(SessionError, match=r"entry 1: block 99: this machine's memory blocks are 0"):
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    assert started == []


def test_unwritable_output_directory_is_found_before_the_run(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", "/proc/pageext-cannot-be-here")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("pageext: error: --out: cannot write reports to /proc/pageext-cannot-be-here: ")


def test_session_names_cannot_leave_the_output_folder(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY.replace('name = "tiny"', 'name = "../../escaped"'))
    with pytest.raises(SessionError, match=r"\[session\] name: '../../escaped' must be a plain name"):
        load_session(p)


def test_misspelt_disable_plugin_is_an_error(tmp_path: Path) -> None:
    r = cli("run", "--disable-plugin", "page_ownr", "--set", "workload.operations=10", "--out", tmp_path / "o")
    assert r.exit_code == 2
    assert r.stderr.startswith("pageext: error: --disable-plugin: no installed plugin is called 'page_ownr'; "
                               "did you mean 'page_owner'?")


def test_report_of_a_plugin_that_is_off_says_so() -> None:
    r = cli("run", "--boot", "page_owner=off", "--report", "page_owner", "--set", "workload.operations=10")
    assert r.exit_code == 2
    assert "no report 'page_owner'; it comes from 'page_owner', which is installed but not enabled" in r.stderr
    assert "did you mean 'page_ext'" not in r.stderr


def test_report_list_takes_the_session_file(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("report", "--list", p)
    assert r.exit_code == 0
    assert [line.split()[0] for line in r.stdout.splitlines()] == [
        "buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo", "unusable_index", "extfrag_index", "zoneinfo", "pageext_meminfo"]


# -- failing while running --------------------------------------------------------------------------------


class Explodes:
    """Fine at boot; raises on the 50th allocation."""

    name = "explodes"

    def __init__(self) -> None:
        self.n = 0

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_on_alloc(self, pfn: int) -> None:
        self.n += 1
        if self.n == 50:
            raise RuntimeError("probe exploded")


def test_a_plugin_raising_mid_run_stops_the_session_with_exit_3_and_the_state_reached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_clients(monkeypatch, Explodes())
    out = tmp_path / "out"
    outcome = run_session(load_session(write_session(tmp_path, TINY)), RunOptions(out=str(out)))
    assert outcome.exit_code == EXIT_FAILED == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workload"]["error"].startswith("HookError: page_ext client 'explodes' raised in pageext_on_alloc")
    assert 0 < summary["workload"]["operations"] < 400
    assert (out / "buddyinfo").exists()
    assert "pageext: the session stopped: HookError" in (out / "dmesg.log").read_text()


def test_cli_exit_3_says_why_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_clients(monkeypatch, Explodes())
    r = cli("run", write_session(tmp_path, TINY), "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 3 and "Traceback" not in r.stderr
    assert r.stderr.startswith("pageext: error: the session stopped: HookError: page_ext client 'explodes'")
    assert r.stderr.rstrip().endswith(f"reports of the state reached are in {tmp_path / 'out'}")


# -- output hygiene -----------------------------------------------------------------------------------------


def test_reports_of_an_earlier_run_are_removed_not_left_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    with_clients(monkeypatch, ReportClient({"nested/one": lambda: "1\n", "two": lambda: "2\n"}))
    text = TINY.replace('["buddyinfo", "meminfo"]', '["all"]')
    run_session(load_session(write_session(tmp_path, text)), RunOptions(out=str(out)))
    assert (out / "nested" / "one").exists() and (out / "two").exists()
    (out / "mine.txt").write_text("a user's own file")
    monkeypatch.undo()  # the next run has no such client
    run_session(load_session(write_session(tmp_path, text)), RunOptions(out=str(out)))
    assert not (out / "two").exists() and not (out / "nested").exists()
    assert (out / "mine.txt").read_text() == "a user's own file"  # only files a run wrote are removed
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo", "unusable_index", "extfrag_index", "zoneinfo", "pageext_meminfo",
         "dmesg.log", "summary.json", "index.html", "mine.txt"])


class Misspelt:
    name = "typo"

    @hookimpl
    def pageext_report(self) -> dict[str, Any]:
        return {"typo": lambda: "x\n"}

    def pageext_on_aloc(self, pfn: int) -> None:  # marked below: a hook no spec has
        pass


Misspelt.pageext_on_aloc = hookimpl(Misspelt.pageext_on_aloc)  # type: ignore[method-assign]


def test_missing_report_mentions_a_plugin_that_failed_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGEEXT_STRICT", raising=False)  # lenient loading: the broken plugin is skipped
    with_clients(monkeypatch, Misspelt())
    p = write_session(tmp_path, TINY.replace('["buddyinfo", "meminfo"]', '["typo"]'))
    with pytest.raises(SessionError) as ei:
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    msg = str(ei.value)
    assert "no report 'typo'" in msg
    assert "(a plugin failed to load: plugin 'typo'" in msg and "'pageext_on_aloc'" in msg
