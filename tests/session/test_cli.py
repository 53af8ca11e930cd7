"""The ``pageext`` command line through click's CliRunner (in-process).

Configuration errors: exit code 2, one ``pageext: error: ...`` line on
stderr, nothing on stdout and nothing written.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sessionsupport import EXAMPLES, PLUGINS, TINY, load_summary, tree, without_timing, write_session

from pageext_core.cli import main
from pageext_core.session.config import DEFAULT_SESSION, load_session


def cli(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


WITH_PAGE_OWNER = TINY.replace("[plugins]\nautoload = false\n", '[boot]\ncmdline = "page_owner=on"\n')


# -- configuration errors ----------------------------------------------------------------------------------------

# (session text, extra arguments, line of the error or None, message after "file:line:col: ")
ERRORS = [
    pytest.param('[machine]\nmemroy = "64MiB"\n', [], 2, "[machine] memroy: unknown key; did you mean 'memory'?",
                 id="unknown-key"),
    pytest.param('[machine]\nmemory = "64MiB"\ncpus = "2"\n', [], 3, "[machine] cpus: expected an integer, got '2'",
                 id="string-for-int"),
    pytest.param('[machine]\nmemory = "64MiB"\nreserve_memmap = 0\n', [], 3,
                 "[machine] reserve_memmap: expected true or false, got int 0", id="int-for-bool"),
    pytest.param('[plugins]\ndisable = { guard = true }\n', [], 2,
                 "[plugins] disable: expected a list of strings, got a table", id="table-for-list"),
    pytest.param('[machine]\nmemory = "4GB5"\n', [], 2, "[machine] memory: cannot read size '4GB5'; write a number "
                 "with a unit: B, KiB, MiB, GiB or TiB (e.g. '4GiB', '512MiB')", id="unit-4GB5"),
    pytest.param('[machine]\nmemory = "4XiB"\n', [], 2, "[machine] memory: cannot read size '4XiB'; write a number "
                 "with a unit: B, KiB, MiB, GiB or TiB (e.g. '4GiB', '512MiB')", id="unit-unknown"),
    pytest.param('[machine]\nmemory = "-1GiB"\n', [], 2, "[machine] memory: size '-1GiB' is negative", id="unit-neg"),
    pytest.param('[machine]\nmemory = "1.5B"\n', [], 2, "[machine] memory: '1.5B' is not a whole number of bytes",
                 id="unit-fraction"),
    pytest.param('[machine]\nmemory = "66MiB"\n', [], 2,
                 "[machine]: node 0 memory 66MiB: must be a positive multiple of 4MiB (one max-order block)",
                 id="geometry"),
    pytest.param(TINY.replace('"meminfo"]', '"memnfo"]'), [], TINY.count("\n", 0, TINY.index("reports =")) + 1,
                 "no report 'memnfo'; did you mean 'meminfo'? "
                 "(this session offers: buddyinfo, meminfo, vmstat, page_ext, pagetypeinfo, unusable_index, extfrag_index, zoneinfo, pageext_meminfo)", id="unknown-report"),
    pytest.param(TINY + '\n[report.params.vmstats]\nx = 1\n', [], len(TINY.splitlines()) + 2,
                 "[report.params] no report 'vmstats'; did you mean 'vmstat'?", id="unknown-report-params"),
    pytest.param('[machine]\nmemory = "64MiB"\n\n[boot.page_owner]\nenabld = true\n', [], 5,
                 "[boot.page_owner] enabld: unknown key; did you mean 'enabled'?", id="boot-table-key"),
    pytest.param('[machine]\nmemory = "64MiB"\n\n[boot.page_owner]\nenabled = 1\n', [], 5,
                 "[boot.page_owner] enabled: page_owner: expected true or false, got 1", id="boot-table-type"),
    pytest.param('[machine]\nmemory = "64MiB"\n\n[boot.page_ownr]\nenabled = true\n', [], 4,
                 "[boot.page_ownr]: no installed client 'page_ownr' owns boot parameters "
                 "(clients with parameters: debug_pagealloc, guard, page_owner)", id="boot-table-client"),
    pytest.param('[machine]\nmemory = "64MiB"\n[workload]\nfunction = "pageext_no_such_mod:run"\n', [], 4,
                 "[workload] function 'pageext_no_such_mod:run': cannot import 'pageext_no_such_mod': "
                 "No module named 'pageext_no_such_mod'", id="function-import"),
]


def test_option_errors_name_the_option_not_a_file_line(tmp_path: Path) -> None:
    # A value given on the command line is reported as that option, not as a line of the file.
    p = write_session(tmp_path, '[machine]\nmemory = "64MiB"\ncpus = 1\n')
    r = cli("run", p, "--out", tmp_path / "out", "--memory", "3XB")
    assert (r.exit_code, r.stderr) == (2, "pageext: error: --memory 3XB: [machine] memory: cannot read size '3XB'; "
                                          "write a number with a unit: B, KiB, MiB, GiB or TiB (e.g. '4GiB', '512MiB')\n")
    r = cli("run", p, "--out", tmp_path / "out", "--set", "machine.cpus=abc")
    assert (r.exit_code, r.stderr) == (2, "pageext: error: --set machine.cpus=abc: [machine] cpus: "
                                          "expected an integer, got 'abc'\n")
    r = cli("run", "--out", tmp_path / "out", "--set", "workload.operatons=5")
    assert r.exit_code == 2 and r.stderr.startswith(
        "pageext: error: --set workload.operatons=5: [workload] operatons: unknown key; did you mean 'operations'?")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, args, line, message", ERRORS)
def test_configuration_errors_exit_2(tmp_path: Path, text: str, args: list[str], line: int, message: str) -> None:
    p = write_session(tmp_path, text)
    out = tmp_path / "out"
    r = cli("run", p, "--out", out, *args)
    assert r.exit_code == 2
    assert r.stderr == f"pageext: error: {p}:{line}:1: {message}\n"
    assert r.stdout == ""
    assert not out.exists()


def test_toml_syntax_error_exit_2(tmp_path: Path) -> None:
    p = write_session(tmp_path, '[machine]\nmemory = "64MiB"\ncpus = = 2\n')
    r = cli("run", p, "--out", tmp_path / "out")
    assert r.exit_code == 2 and r.stdout == ""
    assert re.fullmatch(rf"pageext: error: {re.escape(str(p))}: TOML syntax error: .*\(at line 3, column \d+\)\n",
                        r.stderr)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "workload.operations"], "--set 'workload.operations': expected KEY=VALUE, e.g. --set "
                                       "workload.operations=5000"),
    (["--set", "=3"], "--set '=3': expected KEY=VALUE, e.g. --set workload.operations=5000"),
    (["--report", "../evil"], "report name '../evil' has an empty, '.' or '..' part; it could escape the output "
                              "directory"),
    (["--report", "vmstats"], "--report: no report 'vmstats'; did you mean 'vmstat'? "
                              "(this session offers: buddyinfo, meminfo, vmstat, page_ext, pagetypeinfo, unusable_index, extfrag_index, zoneinfo, pageext_meminfo)"),
    (["--boot", 'page_owner="on'], "--boot: boot line: unterminated quote in 'page_owner=\"on' (column 1)"),
])
def test_option_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", tmp_path / "out", *args)
    assert (r.exit_code, r.stderr, r.stdout) == (2, f"pageext: error: {message}\n", "")
    assert not (tmp_path / "out").exists()


def test_output_directory_that_is_a_file(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    (tmp_path / "taken").write_text("x")
    r = cli("run", p, "--out", tmp_path / "taken" / "sub")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == (f"pageext: error: --out: cannot write reports to {tmp_path / 'taken' / 'sub'}: "
                        f"{tmp_path / 'taken'} is not a directory\n")
    p = write_session(tmp_path, TINY + f'out = "{tmp_path / "taken"}"\n')
    r = cli("run", p)
    line = len(TINY.splitlines()) + 1
    assert r.exit_code == 2 and r.stderr.startswith(f"pageext: error: {p}:{line}:1: cannot write reports to ")
    assert (tmp_path / "taken").read_text() == "x"


def test_missing_session_file(tmp_path: Path) -> None:
    r = cli("run", tmp_path / "nope.toml")
    assert (r.exit_code, r.stderr) == (2, f"pageext: error: {tmp_path / 'nope.toml'}: no such session file\n")


# -- run ---------------------------------------------------------------------------------------------------------------


def test_run_prints_a_text_summary(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    out = tmp_path / "out"
    r = cli("run", p, "--out", out)
    assert r.exit_code == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == "session   tiny"
    assert lines[1] == "machine   64MiB, 1 node(s), SPARSEMEM, " \
                       f"{load_summary(out)['machine']['present_pages']} present pages"
    assert "boot      (empty)" in lines and "findings  none" in lines
    assert f"reports   {out}/: buddyinfo, meminfo, dmesg.log, summary.json, index.html" in lines
    assert re.fullmatch(r"time      \d+\.\d\d s", lines[-1])


def test_json_prints_summary_json(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", tmp_path / "out", "--json")
    assert r.exit_code == 0
    printed = json.loads(r.stdout)
    assert without_timing(printed) == without_timing(load_summary(tmp_path / "out"))
    assert set(printed["timing"]) == {"boot_seconds", "workload_seconds", "elapsed_seconds"}


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", tmp_path / "out", "--quiet")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    assert (tmp_path / "out" / "summary.json").is_file()


def test_memory_seed_set_and_report_options(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", tmp_path / "out", "-q", "--memory", "128MiB", "--seed", "9",
            "--set", "workload.operations=123", "--report", "vmstat")
    assert r.exit_code == 0
    s = load_summary(tmp_path / "out")
    assert s["machine"]["memory_bytes"] == 128 << 20
    assert (s["workload"]["seed"], s["workload"]["operations"]) == (9, 123)
    assert sorted(tree(tmp_path / "out")) == ["dmesg.log", "index.html", "summary.json", "vmstat"]


def test_zoneinfo_is_a_core_report(tmp_path: Path) -> None:
    r = cli("run", write_session(tmp_path, TINY), "--out", tmp_path / "out", "-q", "--report", "zoneinfo")
    assert r.exit_code == 0, r.stderr
    text = (tmp_path / "out" / "zoneinfo").read_text()
    assert text.startswith("Node 0, zone      DMA\n  pages free     ") and "        protection: (" in text
    assert load_summary(tmp_path / "out")["reports"][0] == "zoneinfo"


def test_dmesg_option_echoes_the_log(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", tmp_path / "out", "-q", "--dmesg")
    assert r.exit_code == 0 and r.stdout == ""
    assert r.stderr == (tmp_path / "out" / "dmesg.log").read_text()


def test_boot_option_is_added_after_the_session_line(tmp_path: Path) -> None:
    p = write_session(tmp_path, WITH_PAGE_OWNER)
    r = cli("run", p, "--out", tmp_path / "out", "--json", "--boot", "page_owner=off")
    s = json.loads(r.stdout)
    assert s["boot"]["cmdline"] == "page_owner=on page_owner=off"
    assert not any(pl["enabled"] for pl in s["plugins"]) and s["page_ext"]["bytes"] == 0


def test_print_default(tmp_path: Path) -> None:
    r = cli("run", "--print-default")
    assert r.exit_code == 0 and r.stdout == DEFAULT_SESSION.read_text()
    p = write_session(tmp_path, r.stdout, "my.toml")
    s = load_session(p)  # no name in the printed default: the copy is named after its file
    assert s.name == "my" and s.cmdline == "page_owner=on debug_pagealloc=on page_poison=on debug_guardpage_minorder=1"


def test_fail_on_findings_with_guard_pages(tmp_path: Path) -> None:
    session = EXAMPLES / "guard_overrun.toml"
    r = cli("run", session, "--out", tmp_path / "a", "--json")
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["findings"]["count"] > 0 and set(s["findings"]["by_kind"]) == {"guard-hit"}
    r = cli("run", session, "--out", tmp_path / "b", "-q", "--fail-on-findings")
    assert r.exit_code == 1 and r.stdout == ""
    assert load_summary(tmp_path / "b")["findings"]["count"] == s["findings"]["count"]  # still written


# -- plugins -------------------------------------------------------------------------------------------------------------


def test_plugins_lists_the_three_plugins() -> None:
    r = cli("plugins")
    assert r.exit_code == 0
    for name, dist in zip(PLUGINS, ("pageext-debug-pagealloc", "pageext-guard", "pageext-page-owner")):
        assert re.search(rf"^{name} +{dist} \d+\.\d+\.\d+\S*  \[disabled\]$", r.stdout, re.M), name
    assert "    boot:   page_owner (bool, default False; TOML [boot.page_owner] enabled)" in r.stdout
    assert r.stdout.splitlines()[-1] == "record size 0 bytes; page_ext 0 bytes on a 1GiB machine (boot line: (empty))"


def test_plugins_json_with_a_boot_line() -> None:
    r = cli("plugins", "--json", "--boot", "page_owner=on")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["boot"] == "page_owner=on" and d["machine_memory"] == "1GiB"
    plugins = {p["name"]: p for p in d["plugins"]}
    assert sorted(plugins) == list(PLUGINS)
    for p in plugins.values():
        assert p["distribution"] == "pageext-" + p["name"].replace("_", "-")
        assert re.fullmatch(r"\d+\.\d+\.\d+\S*", p["version"])
        assert p["source"] == "entry point" and p["hooks"] and all(h.startswith("pageext_") for h in p["hooks"])
        assert p["boot_params"] and all({"name", "type", "default", "doc", "toml_key"} == set(b)
                                        for b in p["boot_params"])
    assert plugins["page_owner"]["enabled"] is True and plugins["page_owner"]["size"] > 0
    assert plugins["guard"]["enabled"] is False and "fields_if_enabled" in plugins["guard"]
    assert d["record_size"] == plugins["page_owner"]["offset"] + plugins["page_owner"]["size"] > 0
    assert d["page_ext_bytes"] > 0 and d["blocked"] == [] and d["problems"] == []


def test_plugins_disable_and_errors() -> None:
    r = cli("plugins", "--json", "--disable-plugin", "guard")
    d = json.loads(r.stdout)
    assert [p["name"] for p in d["plugins"]] == ["debug_pagealloc", "page_owner"]
    assert [b["name"] for b in d["blocked"]] == ["guard"]
    r = cli("plugins", "--memory", "12XB")
    assert r.exit_code == 2 and r.stderr.startswith("pageext: error: --memory: cannot read size '12XB'")


# -- report ----------------------------------------------------------------------------------------------------------------


def test_report_list(tmp_path: Path) -> None:
    r = cli("report", "--list", write_session(tmp_path, WITH_PAGE_OWNER))
    assert r.exit_code == 0
    listed = [line.split() for line in r.stdout.splitlines()]
    assert listed[:5] == [[n, "core"] for n in ("buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo")]
    assert ["page_owner_stacks/show_stacks", "page_owner"] in listed and ["page_owner", "page_owner"] in listed


def test_report_list_and_report_of_the_default_session() -> None:
    r = cli("report", "--list")
    assert r.exit_code == 0
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert names[:5] == ["buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo"]
    assert {"page_owner", "page_owner_leaks", "page_owner_stacks/show_stacks", "debug_pagealloc", "guard"} <= set(names)
    r = cli("report", "buddyinfo")
    assert r.exit_code == 0 and r.stderr == ""
    # The default machine: 1 GiB in DMA and DMA32; every line is one zone's free blocks of orders 0..10.
    lines = r.stdout.splitlines()
    assert [line.split()[3] for line in lines] == ["DMA", "DMA32"]
    assert all(re.fullmatch(r"Node 0, zone +\w+( +\d+){11} ?", line) for line in lines), lines


def test_report_prints_what_run_writes(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    assert cli("run", p, "--out", tmp_path / "out", "-q").exit_code == 0
    r = cli("report", "buddyinfo", p)
    assert r.exit_code == 0
    assert r.stdout == (tmp_path / "out" / "buddyinfo").read_text()
    assert r.stdout.startswith("Node 0, zone      DMA ")
    assert not (tmp_path / "out2").exists()
    r = cli("report", "buddyinfo", p, "--out", tmp_path / "out2")
    assert (tmp_path / "out2" / "buddyinfo").read_text() == r.stdout


def test_report_uses_the_sessions_report_params(tmp_path: Path) -> None:
    name = "page_owner_stacks/show_stacks"
    text = WITH_PAGE_OWNER.replace('["buddyinfo", "meminfo"]', f'["{name}"]').replace("400", "3000")
    p = write_session(tmp_path, text + f'\n[report.params."{name}"]\ncount_threshold = 64\n')
    assert cli("run", p, "--out", tmp_path / "out", "-q").exit_code == 0
    written = (tmp_path / "out" / name).read_text()
    r = cli("report", name, p)
    assert r.exit_code == 0 and r.stdout == written
    everything = cli("report", name, p, "--param", "count_threshold=0").stdout
    assert len(everything) > len(written)  # the threshold hid some stacks


def test_report_errors(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("report", "buddyinf", p)
    assert r.exit_code == 2 and r.stderr.startswith("pageext: error: pageext report: no report 'buddyinf'; did you mean "
                                                    "'buddyinfo'?")
    r = cli("report", "buddyinfo", p, "--param", "x")
    assert (r.exit_code, r.stderr) == (2, "pageext: error: --param 'x': expected KEY=VALUE\n")


# -- version ------------------------------------------------------------------------------------------------------------------


def test_version_lists_core_and_plugins() -> None:
    from importlib.metadata import version

    r = cli("--version")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == f"pageext-core {version('pageext-core')}"
    for name in PLUGINS:
        dist = "pageext-" + name.replace("_", "-")
        assert f"  {name}: {dist} {version(dist)}" in lines
    assert re.fullmatch(r"Python \d+\.\d+\.\d+\S*", lines[-1])
