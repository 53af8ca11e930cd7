"""A plugin that is not there is named: boot words, reports, guard's dependency, strict mode.

"Not installed" is simulated in-process by hiding the plugin's entry point
from discovery (``discovery._entry_points``): discovery and
``installed_names`` then see exactly what a machine without that
distribution would.
"""
from __future__ import annotations

import json
import sys
from importlib.metadata import requires
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest
from click.testing import CliRunner, Result
from sessionsupport import REPO, TINY, write_session

import pageext_core as pc
from pageext_core import discovery
from pageext_core.cli import main
from pageext_core.discovery import SHIPPED, install_command, shipped
from pageext_core.mm import MiB

UNKNOWN = 'Unknown kernel command line parameters "{}", will be passed to user space.'

# TINY with the installed plugins loaded, a machine big enough for guard pages.
LOADED = TINY.replace("[plugins]\nautoload = false\n", "")


def cli(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch):
    """hide("page_owner", ...): discovery no longer sees these entry points, as if not installed."""
    real = discovery._entry_points

    def apply(*names: str) -> None:
        monkeypatch.setattr(discovery, "_entry_points", lambda: [ep for ep in real() if ep.name not in names])

    return apply


def warnings_of(r: Result) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("pageext: warning: ")]


# -- the shipped-plugins table ------------------------------------------------------------------------------------


def test_shipped_table_says_what_the_installed_plugins_really_own() -> None:
    pe = pc.boot(pc.MachineConfig(memory=256 * MiB),
                 "page_owner=on debug_pagealloc=on debug_guardpage_minorder=1")
    assert sorted(p.name for p in SHIPPED) == sorted(c.name for c in pe.clients)
    for p in SHIPPED:
        c = pe.client(p.name)
        assert c.info.dist == p.dist
        assert sorted(p.boot_words) == sorted(bp.name for bp in c.params)
        assert sorted(p.reports) == sorted(n for n in pe.report_names() if pe.report_owner(n) == p.name)
        project = tomllib.loads((REPO / p.folder / "pyproject.toml").read_text())["project"]
        assert project["name"] == p.dist


def test_install_command_points_at_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    cmd = install_command(shipped("page_owner"))
    assert cmd.endswith(" install ./plugins/page_owner")
    assert cmd.split(" install ")[0] in ("pip", f"{Path(sys.executable).relative_to(REPO)} -m pip")
    monkeypatch.chdir(tmp_path)  # elsewhere: an absolute path to the same folder
    assert install_command(shipped("guard")).endswith(f" install {REPO / 'plugins' / 'guard'}")


# -- boot words of a plugin that is not installed --------------------------------------------------------------------


@pytest.mark.parametrize("word, plugin", [
    ("page_owner=on", "page_owner"),
    ("debug_pagealloc=on", "debug_pagealloc"),
    ("page_poison=on", "debug_pagealloc"),
    ("debug_guardpage_minorder=1", "guard"),
])
def test_word_of_a_missing_plugin_names_the_distribution_and_the_command(tmp_path: Path, hide, word: str,
                                                                        plugin: str) -> None:
    hide(plugin)
    p = write_session(tmp_path, LOADED)
    out = tmp_path / "out"
    r = cli("run", p, "--out", out, "--boot", word)
    assert r.exit_code == 0, r.stderr
    name, dist = word.split("=")[0], shipped(plugin).dist
    assert (f"pageext: warning: boot parameter {word}: {name} belongs to the {dist} plugin, which is not installed: "
            f"{install_command(shipped(plugin))}") in warnings_of(r)
    assert "warning" not in r.stdout
    # dmesg keeps the kernel's own line for the word.
    assert UNKNOWN.format(word) in (out / "dmesg.log").read_text()


def test_boot_table_of_a_missing_plugin_names_it(tmp_path: Path, hide) -> None:
    hide("page_owner")
    p = write_session(tmp_path, LOADED + "\n[boot.page_owner]\nenabled = true\n")
    line = len(LOADED.splitlines()) + 2
    r = cli("run", p, "--out", tmp_path / "out")
    assert r.exit_code == 2
    assert r.stderr == (f"pageext: error: {p}:{line}:1: [boot.page_owner]: page_owner is the pageext-page-owner "
                        f"plugin, which is not installed: {install_command(shipped('page_owner'))}\n")
    p = write_session(tmp_path, LOADED)  # the same table from an option: the option is named
    r = cli("run", p, "--out", tmp_path / "out", "--set", "boot.page_owner.enabled=true")
    assert r.exit_code == 2 and r.stderr.startswith(
        "pageext: error: --set boot.page_owner.enabled=true: [boot.page_owner]: page_owner is the pageext-page-owner "
        "plugin, which is not installed: ")
    assert not (tmp_path / "out").exists()


def test_a_disabled_plugin_is_not_called_missing(tmp_path: Path) -> None:
    p = write_session(tmp_path, LOADED)
    r = cli("run", p, "--out", tmp_path / "out", "--boot", "page_owner=on", "--disable-plugin", "page_owner")
    assert r.exit_code == 0
    [w] = [w for w in warnings_of(r) if "page_owner=on" in w]
    assert "pageext-page-owner plugin, which is installed but disabled" in w and "pip" not in w


def test_misspelt_word_gets_a_did_you_mean(tmp_path: Path, hide) -> None:
    p = write_session(tmp_path, LOADED)
    r = cli("run", p, "--out", tmp_path / "a", "--boot", "page_ownr=on")
    assert r.exit_code == 0
    assert warnings_of(r) == ["pageext: warning: boot parameter page_ownr=on: no plugin owns 'page_ownr'; "
                              "did you mean 'page_owner'?"]
    hide("page_owner")  # the shipped plugins' words are candidates too
    r = cli("run", p, "--out", tmp_path / "b", "--boot", "debug_guardpage_minordr=1 page-ownr=on")
    assert "did you mean 'debug_guardpage_minorder'?" in r.stderr and "did you mean 'page_owner'?" in r.stderr


def test_a_word_nobody_knows_is_still_named(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", tmp_path / "out", "--boot", "quiet")
    assert r.exit_code == 0
    assert warnings_of(r) == ["pageext: warning: boot parameter quiet: no plugin owns 'quiet' "
                              "(it is passed to user space, as the kernel does)"]


# -- strict mode ----------------------------------------------------------------------------------------------------------


def test_strict_option_makes_an_unknown_word_exit_2(tmp_path: Path, hide) -> None:
    hide("page_owner")
    p = write_session(tmp_path, LOADED)
    out = tmp_path / "out"
    r = cli("run", p, "--out", out, "--boot", "page_owner=on", "--strict")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == (f"pageext: error: --boot: boot parameter page_owner=on: page_owner belongs to the "
                        f"pageext-page-owner plugin, which is not installed: {install_command(shipped('page_owner'))} "
                        "(strict mode: an unknown boot parameter is an error)\n")
    assert not out.exists()


def test_strict_in_the_file_points_at_its_cmdline(tmp_path: Path) -> None:
    text = LOADED.replace("[workload]", '[boot]\ncmdline = "page_owner=on pageowner=on"\n\n[plugins]\n'
                                        'strict = true\n\n[workload]')
    p = write_session(tmp_path, text)
    line = text.splitlines().index('cmdline = "page_owner=on pageowner=on"') + 1
    r = cli("run", p, "--out", tmp_path / "out")
    assert r.exit_code == 2
    assert r.stderr == (f"pageext: error: {p}:{line}:1: boot parameter pageowner=on: no plugin owns 'pageowner'; "
                        "did you mean 'page_owner'? (strict mode: an unknown boot parameter is an error)\n")
    assert not (tmp_path / "out").exists()


def test_strict_does_not_mind_known_words(tmp_path: Path) -> None:
    p = write_session(tmp_path, LOADED)
    r = cli("run", p, "--out", tmp_path / "out", "--boot", "page_owner=on", "--strict", "-q")
    assert (r.exit_code, r.stderr) == (0, "")


# -- reports of a plugin that is not there ---------------------------------------------------------------------------------


@pytest.mark.parametrize("report", ["page_owner", "page_owner_stacks/show_stacks"])
def test_report_of_a_missing_plugin_says_it_is_not_installed(tmp_path: Path, hide, report: str) -> None:
    hide("page_owner")
    p = write_session(tmp_path, LOADED)
    r = cli("report", report, p)
    assert r.exit_code == 2 and r.stdout == ""
    assert (f"pageext: error: pageext report: no report {report!r}: {report} is a report of the pageext-page-owner "
            f"plugin, which is not installed: {install_command(shipped('page_owner'))} ") in r.stderr


# -- guard needs debug_pagealloc -------------------------------------------------------------------------------------------


def test_guard_declares_its_dependency() -> None:
    project = tomllib.loads((REPO / "plugins" / "guard" / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("pageext-debug-pagealloc") for d in project["dependencies"])
    assert any(d.startswith("pageext-debug-pagealloc") for d in requires("pageext-guard") or [])


def test_guard_without_debug_pagealloc_installed_says_so(tmp_path: Path, hide) -> None:
    hide("debug_pagealloc")
    p = write_session(tmp_path, LOADED)
    out = tmp_path / "out"
    r = cli("run", p, "--out", out, "--boot", "debug_guardpage_minorder=1")
    line = (f"debug_guardpage_minorder=1 ignored: debug_pagealloc is not installed "
            f"({install_command(shipped('debug_pagealloc'))}), no guard pages")
    assert r.exit_code == 0
    assert f"pageext: warning: {line}" in warnings_of(r)
    assert line in (out / "dmesg.log").read_text()
    r = cli("report", "guard", p, "--boot", "debug_guardpage_minorder=1")
    assert r.exit_code == 2
    assert f"no report 'guard'; it comes from 'guard', which is installed but off: {line} (" in r.stderr
    assert "not enabled by this boot line" not in r.stderr


def test_guard_with_debug_pagealloc_off_says_how_to_turn_it_on(tmp_path: Path) -> None:
    p = write_session(tmp_path, LOADED)
    line = "debug_guardpage_minorder=2 ignored: debug_pagealloc is off (add debug_pagealloc=on), no guard pages"
    r = cli("run", p, "--out", tmp_path / "out", "--boot", "debug_guardpage_minorder=2")
    assert f"pageext: warning: {line}" in warnings_of(r)
    r = cli("report", "guard", p, "--boot", "debug_pagealloc=on disable_debug_pagealloc debug_guardpage_minorder=2")
    assert r.exit_code == 2
    assert ("it comes from 'guard', which is installed but off: debug_guardpage_minorder=2 ignored: "
            "debug_pagealloc is off (disable_debug_pagealloc is given), no guard pages") in r.stderr
    # Not asked for at all: the plain reason stays.
    r = cli("report", "guard", p)
    assert "which is installed but not enabled by this boot line" in r.stderr
    # guard's line names debug_pagealloc, but it is guard's reason, not debug_pagealloc's.
    r = cli("report", "debug_pagealloc", p, "--boot", "debug_guardpage_minorder=2")
    assert r.exit_code == 2
    assert "it comes from 'debug_pagealloc', which is installed but not enabled by this boot line" in r.stderr


# -- options are named, never a file inside the package -------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--memory", "0"], "--memory 0: [machine]: node 0 memory 0B: must be a positive multiple of 4MiB "
                        "(one max-order block)"),
    (["--memory", "63MiB"], "--memory 63MiB: [machine]: node 0 memory 63MiB: must be a positive multiple of 4MiB "
                            "(one max-order block)"),
    (["--set", "machine.nodes=3"], "--set machine.nodes=3: [machine]: memory 1GiB does not split evenly over 3 nodes"),
    (["--set", "machine.nodes=3", "--memory", "1GiB"],
     "--memory 1GiB, --set machine.nodes=3: [machine]: memory 1GiB does not split evenly over 3 nodes"),
    (["--set", "machine.max_order=5"], "--set machine.max_order=5: [machine]: pageblock_order 9: expected "
                                       "0..max_order (5)"),
])
def test_errors_from_options_name_the_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                              message: str) -> None:
    monkeypatch.chdir(tmp_path)
    r = cli("run", *args)
    assert (r.exit_code, r.stderr, r.stdout) == (2, f"pageext: error: {message}\n", "")
    assert not (tmp_path / "out").exists()


def test_an_option_over_a_file_is_named_with_the_files_other_key(tmp_path: Path) -> None:
    p = write_session(tmp_path, '[machine]\nmemory = "1GiB"\n')
    r = cli("run", p, "--out", tmp_path / "out", "--set", "machine.nodes=3")
    assert r.stderr == "pageext: error: --set machine.nodes=3: [machine]: memory 1GiB does not split evenly over 3 nodes\n"


def test_built_in_session_is_never_pointed_into(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hide) -> None:
    hide("page_owner")
    monkeypatch.chdir(tmp_path)
    r = cli("run", "--strict", "--set", "workload.operations=10")
    assert r.exit_code == 2
    assert r.stderr.startswith("pageext: error: <built-in session>:")
    assert "default.toml" not in r.stderr


# -- a session file's name ------------------------------------------------------------------------------------------------------


def test_printed_default_names_the_session_after_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    printed = cli("run", "--print-default").stdout
    assert "name" not in tomllib.loads(printed).get("session", {})
    Path("my.toml").write_text(printed)
    r = cli("run", "my.toml", "-q", "--memory", "256MiB", "--set", "workload.operations=200")
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["my"]
    assert json.loads((tmp_path / "out" / "my" / "summary.json").read_text())["session"]["name"] == "my"
    r = cli("run", "--json", "--memory", "256MiB", "--set", "workload.operations=200", "--out", "x")
    assert json.loads(r.stdout)["session"] == {"name": "default", "file": None,
                                               "description": tomllib.loads(printed)["session"]["description"]}
