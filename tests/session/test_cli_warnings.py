"""Warnings go to stderr, always (``--quiet`` and ``--json`` too); failed hotplug events are logged and counted.

CliRunner (click 8.2+) keeps stdout and stderr apart; one test runs the real
console script, where the two streams are real file descriptors.
"""
from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sessionsupport import TINY, load_summary, run_pageext, write_session

import pageext_core as pc
from pageext_core import discovery
from pageext_core.cli import main
from pageext_core.hookspecs import ENTRY_POINT_GROUP
from pageext_core.mm import MiB
from pageext_core.session.config import HotplugEvent, WorkloadSpec
from pageext_core.session.workload import run_workload

WARN = "pageext: warning: boot parameter nosuchword=1: no plugin owns 'nosuchword' " \
       "(it is passed to user space, as the kernel does)"

# 256 MiB of RAM (blocks 0 and 1 of 128 MiB) and one hot-pluggable block, 32, at 4 GiB.
HOTPLUG = TINY.replace('memory = "64MiB"', 'memory = "256MiB"\nhotplug = "128MiB"').replace(
    "operations = 400",
    'operations = 3000\nhotplug = [{at = 10, action = "online"}, {at = 2000, action = "offline"}, '
    '{at = 2500, action = "online", block = 0}]')


def cli(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("mode", [[], ["--quiet"], ["--json"]], ids=["plain", "quiet", "json"])
def test_boot_warning_is_on_stderr_in_every_mode(tmp_path: Path, mode: list[str]) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", tmp_path / "out", "--boot", "nosuchword=1", *mode)
    assert r.exit_code == 0
    assert r.stderr.splitlines() == [WARN]
    if mode == ["--json"]:  # stdout is pure JSON: the summary, which keeps the kernel's boot warnings
        s = json.loads(r.stdout)
        assert s["boot"]["warnings"] == ['Unknown kernel command line parameters "nosuchword=1", will be passed '
                                         'to user space.']
        return
    assert "warning" not in r.stdout and "Unknown kernel command line" not in r.stdout
    if mode == []:
        assert "boot      nosuchword=1" in r.stdout.splitlines()  # the effective line, as always
    if mode == ["--quiet"]:
        assert r.stdout == ""


def test_quiet_still_prints_errors(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = cli("run", p, "--out", tmp_path / "out", "--quiet", "--report", "nosuch")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.startswith("pageext: error: --report: no report 'nosuch'")


def test_plugin_that_fails_to_load_is_a_warning_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEEXT_STRICT", "0")  # lenient, as a user's run is by default
    broken = EntryPoint(name="pageext_test_broken", value="pageext_no_such_module_here:Client", group=ENTRY_POINT_GROUP)
    real = discovery._entry_points
    monkeypatch.setattr(discovery, "_entry_points", lambda: [*real(), broken])
    p = write_session(tmp_path, TINY.replace("[plugins]\nautoload = false\n", ""))
    r = cli("run", p, "--out", tmp_path / "out", "-q")
    assert r.exit_code == 0 and r.stdout == ""
    [w] = r.stderr.splitlines()
    assert w.startswith("pageext: warning: plugin 'pageext_test_broken' (no distribution, entry point "
                        "pageext_test_broken = pageext_no_such_module_here:Client) failed to import: "
                        "ModuleNotFoundError")
    assert w.endswith("; booting without it")
    r = cli("run", p, "--out", tmp_path / "out2")
    assert "pageext_test_broken" not in r.stdout and "pageext_test_broken" in r.stderr


def test_real_process_keeps_warnings_off_stdout(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = run_pageext(["run", p, "--out", tmp_path / "out", "--boot", "nosuchword=1"])
    assert r.returncode == 0
    assert r.stderr.splitlines() == [WARN]
    assert r.stdout.startswith("session   tiny\n") and "nosuchword=1" in r.stdout  # the boot line, not a warning
    assert "warning" not in r.stdout


# -- hotplug events that fail ------------------------------------------------------------------------------------------


def test_failed_hotplug_events_are_logged_counted_and_shown(tmp_path: Path) -> None:
    p = write_session(tmp_path, HOTPLUG)
    out = tmp_path / "out"
    r = cli("run", p, "--out", out)
    assert r.exit_code == 0, r.stderr
    s = load_summary(out)
    events = s["workload"]["hotplug"]
    assert [e["ok"] for e in events] == [True, False, False]
    assert s["workload"]["hotplug_failures"] == 2
    assert "hotplug   3 event(s), 2 failed" in r.stdout.splitlines()
    assert r.stderr.splitlines() == [
        f"pageext: warning: hotplug event at operation 2000 failed: {events[1]['error']}",
        f"pageext: warning: hotplug event at operation 2500 failed: {events[2]['error']}",
    ]
    assert "(-EBUSY)" in events[1]["error"]
    dmesg = [line.split("] ", 1)[1] for line in (out / "dmesg.log").read_text().splitlines()]
    # Block 32 is [4 GiB, 4 GiB + 128 MiB): the kernel's offline_pages line, in its format (%#010llx).
    assert "memory offlining [mem 0x100000000-0x107ffffff] failed due to failure to isolate range" in dmesg
    # Onlining a block that is online never reaches online_pages: the kernel prints nothing, pageext says it.
    assert f"pageext: hotplug: online of memory block 0 failed: {events[2]['error']}" in dmesg


def test_quiet_keeps_hotplug_warnings(tmp_path: Path) -> None:
    p = write_session(tmp_path, HOTPLUG)
    r = cli("run", p, "--out", tmp_path / "out", "-q")
    assert r.stdout == "" and len(r.stderr.splitlines()) == 2


def test_failed_online_gets_the_kernels_online_pages_line() -> None:
    # page_ext's table for the hot-added section cannot be allocated: the online is rolled back.
    cfg = pc.MachineConfig(memory=256 * MiB, hotplug=128 * MiB, cpus=1)
    pe = pc.boot(cfg, "page_owner=on", fail_table_allocation=lambda section: section >= 32)
    spec = WorkloadSpec(seed=1, operations=50, hotplug=[HotplugEvent(at=5, action="online", block=None)])
    res = run_workload(pe, spec)
    assert res.hotplug_failures == 1 and res.hotplug[0]["ok"] is False
    texts = [t for _, _, t in pe.machine.log.lines]
    assert "online_pages [mem 0x100000000-0x107ffffff] failed" in texts


def test_plugins_listing_warns_on_stderr() -> None:
    r = cli("plugins", "--boot", "nosuchword=1")
    assert r.exit_code == 0
    assert "nosuchword" not in r.stdout.replace("(boot line: nosuchword=1)", "")
    assert r.stderr.splitlines() == ['pageext: warning: boot: Unknown kernel command line parameters "nosuchword=1", '
                                     'will be passed to user space.']
