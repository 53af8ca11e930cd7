"""``run_session``: outputs, ``summary.json``, ``dmesg.log``, atomic writes, safe report paths,
boot precedence, report selection, determinism, findings and Ctrl-C.

Plugin-independent tests boot with ``[plugins] autoload = false`` and, when
they need a client, one of ``sessionsupport``'s, handed to the runner's boot.
"""
from __future__ import annotations

import json
import os
import re
import signal
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sessionsupport import (
    TINY,
    FindingClient,
    KnobClient,
    ReportClient,
    load_summary,
    tree,
    with_clients,
    without_timing,
    write_session,
)

import pageext_core
from pageext_core import hookimpl
from pageext_core.mm.invariants import check_invariants
from pageext_core.reports import ReportError, atomic_write, check_report_name, report_path
from pageext_core.session.config import SessionError, load_session
from pageext_core.session.runner import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, RunOptions, run_session

SUMMARY_KEYS = ["schema", "pageext_version", "session", "machine", "boot", "plugins", "plugin_problems", "page_ext",
                "workload", "free_pages", "findings", "planted", "clients", "log", "reports", "timing"]
KERNEL_LINE = re.compile(r"^\[ *\d+\.\d{6}\] ")


def run_tiny(tmp_path: Path, text: str = TINY, **opts: Any) -> Any:
    sess = load_session(write_session(tmp_path, text))
    return run_session(sess, RunOptions(out=str(tmp_path / "out"), **opts))


# -- outputs ------------------------------------------------------------------------------------------------


def test_one_file_per_report_plus_dmesg_and_summary(tmp_path: Path) -> None:
    out = run_tiny(tmp_path)
    assert out.exit_code == EXIT_OK
    files = tree(tmp_path / "out")
    assert sorted(files) == ["buddyinfo", "dmesg.log", "index.html", "meminfo", "summary.json"]
    assert out.files == ["buddyinfo", "meminfo", "dmesg.log", "summary.json", "index.html"]
    assert files["buddyinfo"].decode() == out.page_ext.report("buddyinfo")
    assert files["meminfo"].decode() == out.page_ext.report("meminfo")
    assert json.loads(files["summary.json"]) == out.summary


def test_all_reports_when_none_listed(tmp_path: Path) -> None:
    out = run_tiny(tmp_path, TINY.replace('reports = ["buddyinfo", "meminfo"]', 'reports = ["all"]'))
    assert sorted(tree(tmp_path / "out")) == sorted(
        ["buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo", "unusable_index", "extfrag_index", "zoneinfo", "pageext_meminfo",
         "dmesg.log", "summary.json", "index.html"])
    assert out.summary["reports"] == ["buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo", "unusable_index",
                                      "extfrag_index", "zoneinfo", "pageext_meminfo", "dmesg.log", "summary.json", "index.html"]


def test_nested_report_names_become_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_clients(monkeypatch, ReportClient({"deep/er/report": lambda: "nested\n", "flat": lambda: ["a", "b\n"]}))
    out = run_tiny(tmp_path, TINY.replace('["buddyinfo", "meminfo"]', '["deep/er/report", "flat"]'))
    files = tree(tmp_path / "out")
    assert files["deep/er/report"] == b"nested\n"
    assert files["flat"] == b"ab\n"  # text chunks are joined
    assert (tmp_path / "out" / "deep" / "er").is_dir()
    assert out.summary["reports"] == ["deep/er/report", "flat", "dmesg.log", "summary.json", "index.html"]


def test_page_owner_stacks_show_stacks_is_written_in_a_subfolder(tmp_path: Path) -> None:
    text = TINY.replace("[plugins]\nautoload = false\n", '[boot]\ncmdline = "page_owner=on"\n').replace(
        '["buddyinfo", "meminfo"]', '["page_owner_stacks/show_stacks"]')
    out = run_tiny(tmp_path, text)
    f = tmp_path / "out" / "page_owner_stacks" / "show_stacks"
    assert f.is_file() and f.read_text() == out.page_ext.report("page_owner_stacks/show_stacks")
    assert f.read_text().strip()  # 400 operations leave stacks to show


def test_out_directory_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sess = load_session(write_session(tmp_path, TINY))
    out = run_session(sess)
    assert out.out_dir == Path("out/tiny") and (tmp_path / "out" / "tiny" / "summary.json").is_file()
    sess = load_session(write_session(tmp_path, TINY + 'out = "elsewhere/x"\n'))
    assert run_session(sess).out_dir == Path("elsewhere/x")
    assert run_session(sess, RunOptions(out="cli_wins")).out_dir == Path("cli_wins")
    assert (tmp_path / "cli_wins" / "summary.json").is_file()


def test_write_files_false_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sess = load_session(write_session(tmp_path, TINY))
    out = run_session(sess, RunOptions(write_files=False))
    assert out.out_dir is None and out.files == [] and out.summary["reports"] == []
    assert sorted(os.listdir(tmp_path)) == ["s.toml"]


# -- summary.json -----------------------------------------------------------------------------------------


def test_summary_has_every_documented_key(tmp_path: Path) -> None:
    out = run_tiny(tmp_path)
    s = load_summary(tmp_path / "out")
    assert list(s) == SUMMARY_KEYS
    assert s["schema"] == "pageext.summary/1" and s["pageext_version"] == pageext_core.__version__
    assert s["session"] == {"name": "tiny", "file": str(tmp_path / "s.toml"), "description": ""}
    m = s["machine"]
    assert set(m) == {"memory_bytes", "hotplug_bytes", "spanned_bytes", "pages", "present_pages", "memory_model",
                      "nodes", "cpus", "zones"}
    assert (m["memory_model"], m["nodes"], m["cpus"]) == ("SPARSEMEM", 1, 1)
    assert m["present_pages"] == out.page_ext.machine.nr_present_pages <= m["memory_bytes"] // 4096
    assert [z["zone"] for z in m["zones"]] == ["DMA", "DMA32"]
    assert set(m["zones"][0]) == {"node", "zone", "start_pfn", "end_pfn", "present_pages"}
    assert s["boot"] == {"cmdline": "", "warnings": []}
    assert s["plugins"] == [] and s["plugin_problems"] == []
    assert s["page_ext"] == {"record_size": 0, "bytes": 0, "tables": 0, "simulated_pages": 0}
    w = s["workload"]
    assert set(w) == {"kind", "seed", "operations", "allocations", "frees", "failures", "leaked_blocks", "live_blocks",
                      "live_pages", "interrupted", "error", "hotplug", "hotplug_failures",
                      "allocator_failures"}
    assert (w["kind"], w["seed"], w["operations"], w["interrupted"]) == ("synthetic", 1, 400, False)
    assert w["allocations"] + w["frees"] == 400
    fp = s["free_pages"]
    assert {"free_pages", "pcp_pages", "allocated_pages", "reserved_pages", "held_pages", "zones"} <= set(fp)
    assert fp["free_pages"] + fp["pcp_pages"] + fp["allocated_pages"] + fp["reserved_pages"] + fp["held_pages"] \
        == m["present_pages"]
    assert s["findings"] == {"count": 0, "by_kind": {}, "items": []}
    assert s["planted"] == {"planted": 0, "detected": 0, "missed": 0, "undetectable": 0, "items": []}
    assert s["clients"] == {}
    assert s["log"]["lines"] == len(out.page_ext.machine.log.lines)
    assert s["reports"] == ["buddyinfo", "meminfo", "dmesg.log", "summary.json", "index.html"]
    t = s["timing"]
    assert set(t) == {"boot_seconds", "workload_seconds", "elapsed_seconds"}
    assert 0 <= t["boot_seconds"] <= t["elapsed_seconds"] and 0 <= t["workload_seconds"] <= t["elapsed_seconds"]


def test_summary_describes_enabled_plugins(tmp_path: Path) -> None:
    text = TINY.replace("[plugins]\nautoload = false\n", '[boot]\ncmdline = "page_owner=on"\n')
    run_tiny(tmp_path, text)
    s = load_summary(tmp_path / "out")
    plugins = {p["name"]: p for p in s["plugins"]}
    assert set(plugins) >= {"page_owner", "debug_pagealloc", "guard"}
    po = plugins["page_owner"]
    assert po["enabled"] is True and po["distribution"] == "pageext-page-owner" and po["size"] > 0
    assert {"name", "distribution", "version", "source", "entry_point", "hooks", "boot_params", "enabled", "offset",
            "size", "fields", "flag_bits"} == set(po)
    assert plugins["guard"]["enabled"] is False and plugins["guard"]["size"] == 0
    # The only enabled client ends the record (its size is padded to its alignment).
    assert s["page_ext"]["record_size"] == po["offset"] + po["size"]
    assert po["offset"] == (8 if po["flag_bits"] else 0)  # after the shared flags word, if any
    assert s["page_ext"]["bytes"] > 0 and "page_owner" in s["clients"]


# -- dmesg.log --------------------------------------------------------------------------------------------


def test_dmesg_lines_are_kernel_style(tmp_path: Path) -> None:
    run_tiny(tmp_path)
    lines = (tmp_path / "out" / "dmesg.log").read_text().splitlines()
    assert lines and all(KERNEL_LINE.match(line) for line in lines)
    assert lines[0].startswith("[    0.000000] Linux version ")
    assert "pageext: page_ext: no client is enabled, nothing allocated" in [KERNEL_LINE.sub("", x) for x in lines]
    assert not any("allocated" in x and "bytes of page_ext" in x for x in lines)


def test_lines_the_kernel_never_prints_start_with_pageext(tmp_path: Path) -> None:
    """Issue 13: dmesg.log reads as a 6.12 kernel's; pageext's own lines say so with a ``pageext:`` prefix."""
    run_tiny(tmp_path)
    lines = [KERNEL_LINE.sub("", x) for x in (tmp_path / "out" / "dmesg.log").read_text().splitlines()]
    assert any(x.startswith("pageext: memory model: ") for x in lines)
    assert not any(x.startswith(("Memory model:", "page_ext: no client")) for x in lines)


def test_dmesg_says_how_much_page_ext_was_allocated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_clients(monkeypatch, ReportClient({}))
    out = run_tiny(tmp_path)
    text = (tmp_path / "out" / "dmesg.log").read_text()
    n = out.summary["page_ext"]["bytes"]
    assert n > 0 and re.search(rf"^\[ *\d+\.\d{{6}}\] allocated {n} bytes of page_ext$", text, re.M)
    assert "no client is enabled" not in text


def test_dmesg_records_boot_warnings_and_interruptions_in_order(tmp_path: Path) -> None:
    out = run_tiny(tmp_path, TINY.replace("[plugins]", '[boot]\ncmdline = "nosuchparam=1"\n[plugins]'))
    lines = [KERNEL_LINE.sub("", x) for x in (tmp_path / "out" / "dmesg.log").read_text().splitlines()]
    warning = 'Unknown kernel command line parameters "nosuchparam=1", will be passed to user space.'
    assert "Command line: nosuchparam=1" in lines and warning in lines
    assert out.summary["boot"]["warnings"] == [warning]


# -- atomic writes -----------------------------------------------------------------------------------------


def _fail_on_call(monkeypatch: pytest.MonkeyPatch, name: str, n: int) -> list[str]:
    """Make ``os.<name>`` raise OSError on its n-th call (1-based); returns the calls' first arguments."""
    real = getattr(os, name)
    calls: list[str] = []

    def fake(*args: Any, **kw: Any) -> Any:
        calls.append(str(args[0]))
        if len(calls) == n:
            raise OSError(28, "No space left on device")
        return real(*args, **kw)

    monkeypatch.setattr(os, name, fake)
    return calls


@pytest.mark.parametrize("fail", ["replace", "fsync"])
def test_a_failed_write_leaves_no_partial_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str) -> None:
    text = TINY.replace('["buddyinfo", "meminfo"]', '["buddyinfo", "meminfo", "vmstat"]')
    run_tiny(tmp_path, text)  # a first run: every file exists
    before = tree(tmp_path / "out")
    _fail_on_call(monkeypatch, fail, 2)  # the second file: meminfo
    with pytest.raises(OSError, match="No space left"):
        run_tiny(tmp_path, text.replace("seed = 1", "seed = 2"))
    monkeypatch.undo()
    after = tree(tmp_path / "out")
    assert sorted(after) == sorted(before)  # no temporary file left behind
    assert after["buddyinfo"] != before["buddyinfo"]  # written in full before the failure
    assert after["meminfo"] == before["meminfo"]  # the failed one: the old file, untouched
    for name in ("vmstat", "dmesg.log", "summary.json"):  # never reached: untouched
        assert after[name] == before[name]


def test_a_failed_write_in_a_fresh_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fail_on_call(monkeypatch, "replace", 2)
    with pytest.raises(OSError):
        run_tiny(tmp_path)
    monkeypatch.undo()
    assert [Path(c).name.startswith(".") for c in calls] == [True, True]  # temp files, renamed into place
    assert sorted(tree(tmp_path / "out")) == ["buddyinfo"]


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.txt"
    atomic_write(target, "one\n")
    atomic_write(target, b"two\n")
    assert target.read_bytes() == b"two\n" and os.listdir(target.parent) == ["b.txt"]


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    # mkstemp creates 0600 files; a report must be readable like any file this umask allows.
    old = os.umask(0o022)
    try:
        run_tiny(tmp_path)
        atomic_write(tmp_path / "x", "x")
    finally:
        os.umask(old)
    for p in [tmp_path / "x", *(tmp_path / "out").iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


# -- report names cannot escape ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil", "/abs/path", "a/../../b", "a//b", "./x", "x/", "", "~root/x", "a\\b",
                                  "nul\x00"])
def test_check_report_name_refuses_escapes(name: str) -> None:
    with pytest.raises(ReportError):
        check_report_name(name)


@pytest.mark.parametrize("name", ["../evil", "/abs"])
def test_a_client_offering_an_escaping_name_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       name: str) -> None:
    with_clients(monkeypatch, ReportClient({name: lambda: "pwned\n"}))
    sess = load_session(write_session(tmp_path, TINY.replace('["buddyinfo", "meminfo"]', '["all"]')))
    existed = Path(name).exists()
    with pytest.raises(ReportError, match="report name"):
        run_session(sess, RunOptions(out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()
    assert Path(name).exists() == existed


def test_report_path_follows_no_symlink_out_of_the_directory(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "link").symlink_to(outside)
    (out / "trap").symlink_to(outside / "file")
    with pytest.raises(ReportError, match="resolves outside the output directory"):
        report_path(out, "link/report")
    with pytest.raises(ReportError, match="resolves outside the output directory"):
        report_path(out, "trap")
    inside = out / "sub"
    inside.mkdir()
    (out / "alias").symlink_to(inside)
    assert report_path(out, "alias/r") == (inside / "r").resolve()
    assert report_path(out, "a/b") == out.resolve() / "a" / "b"


def test_a_symlinked_report_file_is_not_written_through(tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.write_text("precious\n")
    (out / "buddyinfo").symlink_to(victim)
    sess = load_session(write_session(tmp_path, TINY))
    with pytest.raises(ReportError):
        run_session(sess, RunOptions(out=str(out)))
    assert victim.read_text() == "precious\n"


# -- boot precedence ----------------------------------------------------------------------------------------


def test_boot_precedence_tables_then_cmdline_then_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    knob = KnobClient()
    with_clients(monkeypatch, knob)
    base = TINY + "\n[boot.knob]\nlevel = 1\non = true\n"
    sess = load_session(write_session(tmp_path, base))
    out = run_session(sess, RunOptions(write_files=False))
    assert out.summary["boot"]["cmdline"] == "knob=1 knob_on=on"
    assert knob.seen == {"knob": 1, "knob_on": True} and out.page_ext.enabled == ["knob"]

    sess = load_session(write_session(tmp_path, base.replace("[boot.knob]", '[boot]\ncmdline = "knob=2 knob_on=off"\n'
                                                                            "[boot.knob]")))
    out = run_session(sess, RunOptions(write_files=False))
    assert out.summary["boot"]["cmdline"] == "knob=1 knob_on=on knob=2 knob_on=off"
    assert knob.seen == {"knob": 2, "knob_on": False} and out.page_ext.enabled == []

    out = run_session(sess, RunOptions(write_files=False, boot="knob=3 knob_on=1"))
    assert out.summary["boot"]["cmdline"] == "knob=1 knob_on=on knob=2 knob_on=off knob=3 knob_on=1"
    assert knob.seen == {"knob": 3, "knob_on": True} and out.page_ext.enabled == ["knob"]
    assert out.summary["page_ext"]["bytes"] > 0


def test_boot_precedence_with_page_owner(tmp_path: Path) -> None:
    text = TINY.replace("[plugins]\nautoload = false\n", '[boot]\ncmdline = "page_owner=off"\n[boot.page_owner]\n'
                        'enabled = true\n')
    sess = load_session(write_session(tmp_path, text))
    out = run_session(sess, RunOptions(write_files=False))
    assert out.summary["boot"]["cmdline"] == "page_owner=on page_owner=off"
    assert "page_owner" not in out.page_ext.enabled
    out = run_session(sess, RunOptions(write_files=False, boot="page_owner=on"))
    assert out.summary["boot"]["cmdline"] == "page_owner=on page_owner=off page_owner=on"
    assert "page_owner" in out.page_ext.enabled


# -- boot-table errors are located --------------------------------------------------------------------------


@pytest.mark.parametrize("table, line, expected", [
    ("[boot.knob]\nlevl = 3\n", 2, "[boot.knob] levl: unknown key; did you mean 'level'?"),
    ("[boot.knob]\non = true\nlevel = \"3\"\n", 3, "[boot.knob] level: knob: expected an integer, got '3'"),
    ("[boot.knob]\non = 1\n", 2, "[boot.knob] on: knob_on: expected true or false, got 1"),
    ("[boot.knb]\non = true\n", 1, "[boot.knb]: no installed client 'knb' owns boot parameters "
                                   "(clients with parameters: knob)"),
])
def test_bad_boot_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, line: int,
                         expected: str) -> None:
    with_clients(monkeypatch, KnobClient())
    head = TINY + "\n"
    p = write_session(tmp_path, head + table)
    first = len(head.splitlines()) + 1
    with pytest.raises(SessionError) as ei:
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    assert str(ei.value) == f"{p}:{first + line - 1}:1: {expected}"
    assert not (tmp_path / "out").exists()


def test_bad_boot_line_quoting(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY + '\n[boot]\ncmdline = "page_owner=\\"on"\n')
    with pytest.raises(SessionError) as ei:
        run_session(load_session(p), RunOptions(write_files=False))
    line = len(TINY.splitlines()) + 3
    assert str(ei.value) == f"{p}:{line}:1: boot line: unterminated quote in 'page_owner=\"on' (column 1)"
    with pytest.raises(SessionError, match=r"^--boot: boot line: unterminated quote"):
        run_session(load_session(write_session(tmp_path, TINY)), RunOptions(write_files=False, boot='a="b'))


# -- report selection and parameters -----------------------------------------------------------------------


def test_unknown_report_name_with_suggestion(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY.replace('["buddyinfo", "meminfo"]', '["buddyinfo", "memnfo"]'))
    with pytest.raises(SessionError) as ei:
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    line = TINY.splitlines().index('reports = ["buddyinfo", "meminfo"]') + 1
    assert str(ei.value) == (f"{p}:{line}:1: no report 'memnfo'; did you mean 'meminfo'? "
                             "(this session offers: buddyinfo, meminfo, vmstat, page_ext, pagetypeinfo, unusable_index, extfrag_index, zoneinfo, pageext_meminfo)")
    assert not (tmp_path / "out").exists()
    with pytest.raises(SessionError, match=r"^--report: no report 'vmstats'; did you mean 'vmstat'\?"):
        run_session(load_session(p), RunOptions(write_files=False, reports=["vmstats"]))


def test_report_override_and_duplicates(tmp_path: Path) -> None:
    out = run_tiny(tmp_path, reports=["vmstat", "vmstat", "page_ext"])
    assert sorted(tree(tmp_path / "out")) == ["dmesg.log", "index.html", "page_ext", "summary.json", "vmstat"]
    assert out.files == ["vmstat", "page_ext", "dmesg.log", "summary.json", "index.html"]


def test_report_params_reach_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[dict] = []

    def rep(**kw: Any) -> str:
        got.append(kw)
        return f"{kw}\n"

    with_clients(monkeypatch, ReportClient({"r/x": rep}))
    text = TINY.replace('["buddyinfo", "meminfo"]', '["r/x"]') + '\n[report.params."r/x"]\nlimit = 4\nmode = "a"\n'
    run_tiny(tmp_path, text)
    # Once on the fresh machine before the workload (to catch bad values early), once for the file.
    assert got == [{"limit": 4, "mode": "a"}, {"limit": 4, "mode": "a"}]


def test_report_params_for_unknown_reports_are_errors_even_with_all(tmp_path: Path) -> None:
    for reports in ('["buddyinfo"]', '["all"]'):
        text = TINY.replace('["buddyinfo", "meminfo"]', reports) + '\n[report.params.buddyinf]\nx = 1\n'
        p = write_session(tmp_path, text)
        with pytest.raises(SessionError) as ei:
            run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
        line = len(text.splitlines()) - 1
        assert str(ei.value) == f"{p}:{line}:1: [report.params] no report 'buddyinf'; did you mean 'buddyinfo'?"
        assert not (tmp_path / "out").exists()


def test_report_params_a_report_does_not_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_clients(monkeypatch, ReportClient({"plain": lambda: "x\n"}))
    text = TINY.replace('["buddyinfo", "meminfo"]', '["plain"]') + '\n[report.params.plain]\nbogus = 1\n'
    p = write_session(tmp_path, text)
    with pytest.raises(SessionError) as ei:
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    line = len(text.splitlines())  # the key's own line
    assert str(ei.value) == f"{p}:{line}:1: report 'plain' has no parameter 'bogus'; it takes no parameters"
    assert not (tmp_path / "out").exists()


def test_function_that_cannot_be_imported_fails_before_anything_runs(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    booted: list[int] = []
    import pageext_core.session.runner as r

    real = r.boot_session
    monkeypatch.setattr(r, "boot_session", lambda *a, **k: booted.append(1) or real(*a, **k))
    text = TINY.replace("operations = 400", 'function = "no_such_module_pageext:go"')
    p = write_session(tmp_path, text)
    with pytest.raises(SessionError) as ei:
        run_session(load_session(p), RunOptions(out=str(tmp_path / "out")))
    line = text.splitlines().index('function = "no_such_module_pageext:go"') + 1
    assert str(ei.value) == (f"{p}:{line}:1: [workload] function 'no_such_module_pageext:go': cannot import "
                             "'no_such_module_pageext': No module named 'no_such_module_pageext'")
    assert booted == [] and not (tmp_path / "out").exists()


# -- determinism ----------------------------------------------------------------------------------------------


def test_same_file_and_seed_give_identical_bytes(tmp_path: Path) -> None:
    text = TINY.replace("[plugins]\nautoload = false\n", '[boot]\ncmdline = "page_owner=on"\n').replace(
        '["buddyinfo", "meminfo"]', '["all"]').replace("operations = 400", "operations = 1500")
    p = write_session(tmp_path, text)
    runs = []
    for i, seed in enumerate((1, 1, 2)):
        run_session(load_session(p, overrides=[f"workload.seed={seed}"]), RunOptions(out=str(tmp_path / f"o{i}")))
        files = tree(tmp_path / f"o{i}")
        summary = json.loads(files.pop("summary.json"))
        assert summary["timing"]
        runs.append((files, without_timing(summary)))
    assert runs[0] == runs[1]
    assert "page_owner_stacks/show_stacks" in runs[0][0]
    changed = [n for n in runs[0][0] if runs[0][0][n] != runs[2][0][n]]
    assert {"buddyinfo", "page_owner"} <= set(changed)
    assert runs[0][1]["workload"] != runs[2][1]["workload"]


# -- findings and exit codes ---------------------------------------------------------------------------------


def test_findings_give_exit_code_1_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_clients(monkeypatch, FindingClient(order=2))
    text = TINY.replace("operations = 400", "operations = 400\norders = { 0 = 3, 2 = 1 }")
    out = run_tiny(tmp_path, text)
    f = out.summary["findings"]
    assert out.exit_code == EXIT_OK and f["count"] > 0 and f["by_kind"] == {"bad-page-state": f["count"]}
    assert {i["client"] for i in f["items"]} == {"finder"}
    assert [i["time_ns"] for i in f["items"]] == sorted(i["time_ns"] for i in f["items"])
    assert set(f["items"][0]) == {"kind", "pfn", "pfn_hex", "time_ns", "message", "offset", "length", "client",
                                  "detail"}
    with_clients(monkeypatch, FindingClient(order=2))
    assert run_tiny(tmp_path, text, fail_on_findings=True).exit_code == EXIT_FINDINGS
    with_clients(monkeypatch, FindingClient(order=9))  # no order-9 allocation: no finding
    assert run_tiny(tmp_path, text, fail_on_findings=True).exit_code == EXIT_OK


# -- Ctrl-C ----------------------------------------------------------------------------------------------------


class CtrlC:
    """Sends this process SIGINT from inside the allocator, on the n-th allocation."""

    name = "ctrlc"

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.m: Any = None
        self.baseline = 0

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_fields(self) -> Mapping[str, Any]:
        return {"x": "u1"}

    @hookimpl
    def pageext_init(self, machine: Any) -> None:
        self.m = machine
        self.baseline = machine.nr_allocated_pages

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int) -> None:
        self.count += 1
        if self.count == self.n:
            signal.raise_signal(signal.SIGINT)


def test_ctrl_c_stops_between_operations_and_reports_are_written(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client = CtrlC(n=1500)
    with_clients(monkeypatch, client)
    text = TINY.replace("operations = 400", "operations = 1000000")
    out = run_tiny(tmp_path, text)
    w = out.workload
    assert out.exit_code == EXIT_INTERRUPTED and w.interrupted
    # The allocation that was running when Ctrl-C came completed; the workload
    # stopped at its next check, between two operations (every 1024).
    assert 1500 < w.operations < 1_000_000 and w.operations % 1024 == 1
    m = out.page_ext.machine
    check_invariants(m)
    assert m.nr_allocated_pages - client.baseline == w.live_pages  # every allocation accounted for
    s = load_summary(tmp_path / "out")
    assert s["workload"]["interrupted"] is True and s["workload"]["operations"] == w.operations
    assert sorted(tree(tmp_path / "out")) == ["buddyinfo", "dmesg.log", "index.html", "meminfo", "summary.json"]
    assert "pageext: workload interrupted; reports show the state reached" in (tmp_path / "out" / "dmesg.log").read_text()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
