"""Resources are checked before they are spent (issue 11, section 4).

- the host-memory estimate against what a boot really allocates;
- a machine the host cannot hold: exit 2 with the estimate, what is
  available and what would fit, before anything is allocated or written
  (simulated host with ``PAGEEXT_HOST_MEMORY``, and a real ``ulimit -v``);
- ``pageext plugins --memory SIZE`` by arithmetic, never booting;
- outputs that cannot be written, ``MemoryError``: one line, exit code 3;
- Ctrl-C while booting: exit code 130, nothing written.
"""
from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sessionsupport import PAGEEXT, TINY, clean_env, tree, write_session

import pageext_core.reports as reports_mod
import pageext_core.session.runner as runner_mod
from pageext_core import resources
from pageext_core.cli import main
from pageext_core.mm.constants import PAGE_SIZE, GiB, MiB
from pageext_core.mm.geometry import MachineConfig, build_geometry, parse_size
from pageext_core.mm.machine import Machine
from pageext_core.page_ext import boot
from pageext_core.session.config import load_session
from pageext_core.session.runner import RunOptions, run_session
from pageext_core.storage import PageExtTables

ALL_ON = "page_owner=on debug_pagealloc=on debug_guardpage_minorder=1"


def cli(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


def _actual_arrays(pe: Any) -> dict[str, int]:
    """Bytes of every numpy array the booted machine holds, by the estimate's parts."""
    m = pe.machine
    c = m.contents
    return {
        "allocator_fixed": m.state.nbytes + m.pflags.nbytes + m.pb_mt.nbytes + m.pb_zone.nbytes,
        "free_lists": m.host_bytes()["free_lists"],
        "page_ext": pe.nbytes,
        "contents_side": sum(a.nbytes for a in (c._slot, c._fill, c._unmapped) if a is not None),
        "contents_rows": c._pool.nbytes,
    }


# -- the estimate against reality ---------------------------------------------------------------------------------

CONFIGS = [
    pytest.param(MachineConfig(memory=256 * MiB), "", id="256MiB-no-client"),
    pytest.param(MachineConfig(memory=256 * MiB), "page_owner=on", id="256MiB-page_owner"),
    pytest.param(MachineConfig(memory=1 * GiB), ALL_ON, id="1GiB-all"),
    pytest.param(MachineConfig(memory=4 * GiB, nodes=2), ALL_ON, id="4GiB-2-nodes-pci-hole"),
    pytest.param(MachineConfig(memory=512 * MiB, memory_model="FLATMEM"), "page_owner=on debug_pagealloc=on",
                 id="512MiB-flatmem"),
    pytest.param(MachineConfig(memory=512 * MiB, hotplug=512 * MiB), ALL_ON, id="512MiB-hotplug"),
]


@pytest.mark.parametrize("config, line", CONFIGS)
def test_estimate_covers_every_array_a_boot_and_workload_allocate(config: MachineConfig, line: str) -> None:
    pe = boot(config, line)
    m = pe.machine
    g = m.geometry
    est = resources.estimate(build_geometry(config), pe.layout)
    for b in m.memory_blocks:  # hot-pluggable memory online: its tables exist too
        if not b.online:
            m.online_memory_block(b.index)
    # some work, so free lists, contents and the clients' state grow as in a run
    held = [p for p in (m.alloc_pages(0xCC0, o) for o in [0, 1, 3, 0, 2] * 200) if p is not None]
    for p in held[::2]:
        m.write(p, 0, b"x" * 64)
    actual = _actual_arrays(pe)

    # derived from the real dtypes: state u1 + pflags u4 per spanned pfn, two u1 per pageblock
    nblocks = -(-g.max_pfn // (1 << g.pageblock_order))
    assert actual["allocator_fixed"] == 5 * g.max_pfn + 2 * nblocks
    assert actual["allocator_fixed"] + actual["free_lists"] <= est.parts["allocator"]
    assert est.parts["allocator"] - actual["allocator_fixed"] <= 1 * MiB  # free lists: small, bounded
    # page_ext tables: exactly the record size times the pages covered (boot, then hotplug)
    assert est.page_ext_bytes + est.record_size * est.hotplug_table_pages == actual["page_ext"] == est.parts["page_ext"]
    assert est.page_ext_bytes == pe.record_size * resources.table_pages(g)
    assert sum(est.clients.values()) == est.page_ext_bytes
    assert actual["contents_side"] <= est.parts["contents"] == 6 * g.max_pfn
    assert actual["contents_rows"] <= resources.WORKING_ALLOWANCE
    arrays = sum(actual.values())
    assert arrays <= est.total
    # and not wildly above: the array parts stay within 25% of reality when every side array exists
    if "debug_pagealloc=on" in line:
        assert est.total - est.parts["working"] <= 1.25 * arrays


@pytest.mark.parametrize("memory, line", [("256MiB", ""), ("512MiB", "page_owner=on"), ("2GiB", ALL_ON)])
def test_estimate_covers_the_traced_peak_of_a_whole_run(memory: str, line: str) -> None:
    """tracemalloc sees every numpy buffer, temporaries included: the peak of boot, workload and reports."""
    sess = load_session(None, overrides=[f'machine.memory="{memory}"', "workload.operations=2000",
                                         f'boot.cmdline="{line}"'])
    tracemalloc.start()
    try:
        outcome = run_session(sess, RunOptions(write_files=False))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.exit_code == 0
    est = resources.estimate(outcome.page_ext.machine.geometry, outcome.page_ext.layout)
    per_pfn = est.total - resources.WORKING_ALLOWANCE  # the parts that grow with the machine
    assert peak <= per_pfn + 4 * MiB  # a few MiB of Python objects are what the fixed allowance is for
    assert per_pfn <= 1.6 * peak + 1 * MiB  # and the per-pfn figures are not padded beyond reason


def test_table_pages_follow_the_memory_model() -> None:
    # SPARSEMEM: whole present sections (the 3-4 GiB PCI hole has none); FLATMEM: the node's span
    g = build_geometry(MachineConfig(memory=4 * GiB))
    per = g.pages_per_section
    assert resources.table_pages(g) == (3 * GiB // PAGE_SIZE // per + 1 * GiB // PAGE_SIZE // per) * per
    assert g.max_pfn == 5 * GiB // PAGE_SIZE
    flat = build_geometry(MachineConfig(memory=4 * GiB, memory_model="FLATMEM"))
    assert resources.table_pages(flat) == flat.max_pfn


# -- what the host has ---------------------------------------------------------------------------------------------


def test_host_memory_is_the_smaller_of_free_ram_and_address_space_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "_meminfo_available", lambda: 8 * GiB)
    monkeypatch.setattr(resources, "_address_space_used", lambda: 1 * GiB)
    monkeypatch.setattr(resources, "_as_limit", lambda: None)
    h = resources.host_memory({})
    assert h.available == 8 * GiB and "ulimit -v unlimited" in h.describe()
    monkeypatch.setattr(resources, "_as_limit", lambda: 4 * GiB)
    h = resources.host_memory({})
    assert h.available == 3 * GiB
    assert "ulimit -v 4.0 GiB, 1.0 GiB of it in use" in h.describe() and "MemAvailable 8.0 GiB" in h.describe()
    h = resources.host_memory({"PAGEEXT_HOST_MEMORY": "300MiB"})
    assert h.available == 300 * MiB and h.describe().startswith("PAGEEXT_HOST_MEMORY=300MiB says")


def test_a_bad_override_is_a_usage_error(tmp_path: Path) -> None:
    r = cli("run", write_session(tmp_path, TINY), "--out", tmp_path / "out", env={"PAGEEXT_HOST_MEMORY": "lots"})
    assert r.exit_code == 2
    assert r.stderr.startswith("pageext: error: PAGEEXT_HOST_MEMORY: cannot read size 'lots'")
    assert "unset the environment variable to measure the host" in r.stderr and not (tmp_path / "out").exists()


# -- a machine the host cannot hold ----------------------------------------------------------------------------------


@pytest.fixture
def no_table_allocated(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a page_ext table was allocated")

    monkeypatch.setattr(PageExtTables, "__init__", refuse)
    monkeypatch.setattr(Machine, "free_all", refuse)


def test_too_big_for_the_host_is_refused_before_any_table(tmp_path: Path, no_table_allocated: None) -> None:
    out = tmp_path / "out"
    session = write_session(tmp_path, TINY.replace("[plugins]\nautoload = false\n", '[boot]\ncmdline = "page_owner=on"\n'))
    r = cli("run", session, "--memory", "64GiB", "--out", out, env={"PAGEEXT_HOST_MEMORY": "1GiB"})
    assert r.exit_code == 2 and r.stdout == ""
    [line] = r.stderr.splitlines()
    g = build_geometry(MachineConfig(memory=64 * GiB))
    est = resources.estimate(g, boot(MachineConfig(memory=64 * MiB), "page_owner=on", plan_only=True).layout)
    assert line.startswith(f"pageext: error: --memory 64GiB: a 64GiB machine needs about {resources.human(est.total)} "
                           "of host memory (allocator arrays ")
    assert f"page_ext tables {resources.human(est.parts['page_ext'])} at {est.record_size} bytes/page" in line
    assert "page_owner " in line and "but PAGEEXT_HOST_MEMORY=1GiB says 1.0 GiB is available" in line
    m = re.search(r"use --memory (\S+) or less, or enable fewer page_ext clients \(with none it needs (.+)\)$", line)
    assert m, line
    # the suggestion is right: it fits, and twice as much does not
    fit = parse_size(m.group(1))
    host = resources.HostMemory(available=1 * GiB)
    lay = boot(MachineConfig(memory=64 * MiB), "page_owner=on", plan_only=True).layout
    resources.check(build_geometry(MachineConfig(memory=fit)), lay, host)
    with pytest.raises(resources.ResourceError):
        resources.check(build_geometry(MachineConfig(memory=2 * fit)), lay, host)
    assert m.group(2) == resources.human(resources.estimate(g, None).total)
    assert not out.exists()


def test_too_big_even_for_the_allocator_is_refused_before_the_machine_exists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_machine(*_a: Any, **_k: Any) -> None:
        raise AssertionError("the machine was built")

    monkeypatch.setattr("pageext_core.mm.machine.Machine", no_machine)  # page_ext imports it when it boots one
    out = tmp_path / "out"
    r = cli("run", write_session(tmp_path, TINY.replace('"64MiB"', '"1TiB"')), "--out", out,
            env={"PAGEEXT_HOST_MEMORY": "512MiB"})
    assert r.exit_code == 2
    [line] = r.stderr.splitlines()
    assert re.match(r"pageext: error: .*s\.toml:\d+:\d+: a 1TiB machine needs about [\d.]+ GiB of host memory "
                    r"\(allocator arrays 1\.3 GiB, page contents 1\.5 GiB, working memory [\d.]+ MiB, page_ext tables "
                    r"for the clients the boot line enables come on top\) but PAGEEXT_HOST_MEMORY=512MiB says "
                    r"512\.0 MiB is available; use --memory \d+GiB or less$", line), line
    assert not out.exists()


def test_what_fits_still_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = cli("run", write_session(tmp_path, TINY), "--out", out, "-q", env={"PAGEEXT_HOST_MEMORY": "200MiB"})
    assert r.exit_code == 0, r.stderr
    assert (out / "summary.json").is_file()


def _limit_address_space(limit: int) -> Any:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    return preexec


def test_a_real_ulimit_v_is_refused_with_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = clean_env()
    env.pop("PAGEEXT_HOST_MEMORY", None)
    proc = subprocess.run([str(PAGEEXT), "run", "--memory", "1TiB", "--boot", "page_owner=on", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=120,
                          preexec_fn=_limit_address_space(2 * GiB))
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("pageext: error: --memory 1TiB: a 1TiB machine needs about ")
    assert re.search(r"ulimit -v 2\.0 GiB, [\d.]+ MiB of it in use\); use --memory \d+GiB or less", line), line
    assert proc.stdout == "" and not out.exists()


def test_a_memory_error_that_still_happens_is_one_line_and_exit_3(tmp_path: Path) -> None:
    """The override claims a huge host; the real ulimit makes numpy fail: no traceback, exit 3."""
    out = tmp_path / "out"
    proc = subprocess.run([str(PAGEEXT), "run", "--memory", "1TiB", "--out", str(out), "-q"],
                          capture_output=True, text=True, env=clean_env(PAGEEXT_HOST_MEMORY="1TiB"), timeout=120,
                          preexec_fn=_limit_address_space(1 * GiB))
    assert proc.returncode == 3, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("pageext: error: the host ran out of memory (")
    assert line.endswith("give the machine less memory (--memory) or enable fewer page_ext clients")
    assert "Traceback" not in proc.stderr and not out.exists()


def test_memory_error_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def oom(*_a: Any, **_k: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(runner_mod, "boot", oom)
    r = cli("run", write_session(tmp_path, TINY), "--out", tmp_path / "out")
    assert r.exit_code == 3
    assert r.stderr == ("pageext: error: the host ran out of memory; give the machine less memory (--memory) "
                        "or enable fewer page_ext clients\n")


# -- pageext plugins by arithmetic ----------------------------------------------------------------------------------


def test_plugins_figures_equal_a_real_boot() -> None:
    r = cli("plugins", "--json", "--boot", ALL_ON, "--memory", "1GiB")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    pe = boot(MachineConfig(memory=1 * GiB), ALL_ON)
    real = pe.describe()
    assert d["record_size"] == real["record_size"] == 72  # flags word + page_owner; guard keeps no field
    assert d["page_ext_bytes"] == real["page_ext_bytes"] == pe.nbytes
    pages = pe.nbytes // pe.record_size
    for got, want in zip(d["plugins"], real["plugins"], strict=True):
        for key in ("name", "enabled", "offset", "size", "fields", "flag_bits", "hooks", "boot_params"):
            assert got[key] == want[key], (got["name"], key)
        assert got["page_ext_bytes"] == want["size"] * pages
    host = d["host_memory_estimate"]
    assert host["page_ext"] == pe.nbytes and host["total"] == sum(v for k, v in host.items() if k != "total")


def test_plugins_at_1tib_never_boots(no_table_allocated: None) -> None:
    r = cli("plugins", "--json", "--boot", "page_owner=on", "--memory", "1TiB")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    record = d["record_size"]
    g = build_geometry(MachineConfig(memory=1 << 40))
    assert record == 72 and d["page_ext_bytes"] == record * resources.table_pages(g) == 72 << 28
    owner = next(p for p in d["plugins"] if p["name"] == "page_owner")
    assert owner["page_ext_bytes"] == owner["size"] << 28
    assert d["host_memory_estimate"]["total"] > d["page_ext_bytes"]
    text = cli("plugins", "--boot", "page_owner=on", "--memory", "1TiB").stdout.splitlines()
    assert text[-1] == ("record size 72 bytes; page_ext 19327352832 bytes on a 1TiB machine "
                        "(boot line: page_owner=on)")
    assert text[-2].startswith("host memory estimate ") and "page_ext 18.0 GiB" in text[-2]


# -- outputs that cannot be written -----------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_naming_the_output_and_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    session = write_session(tmp_path, TINY)
    assert cli("run", session, "--out", out, "-q").exit_code == 0  # an earlier, complete run
    old = tree(out)
    real_fsync = os.fsync
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the second file: the first is written whole, the second not at all
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(reports_mod.os, "fsync", fsync)
    r = cli("run", session, "--out", out, "-q", "--seed", "2")
    assert r.exit_code == 3
    assert r.stderr == f"pageext: error: cannot write {out.resolve() / 'meminfo'}: No space left on device\n"
    now = tree(out)
    assert sorted(now) == sorted(old)  # no temporary file left
    for name in ("meminfo", "dmesg.log", "summary.json"):  # the failed one and those after it: the old, whole
        assert now[name] == old[name]
    assert now["buddyinfo"] != old["buddyinfo"]  # the new one, written whole before the disk filled


def test_a_read_only_output_is_one_line_and_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"

    def replace(src: str, dst: str) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), src)

    monkeypatch.setattr(reports_mod.os, "replace", replace)
    r = cli("report", "meminfo", write_session(tmp_path, TINY), "--out", out)
    assert r.exit_code == 3
    assert r.stderr == f"pageext: error: cannot write {out.resolve() / 'meminfo'}: Permission denied\n"
    assert list(out.iterdir()) == []


def test_a_stale_report_that_cannot_be_removed_is_one_line_and_exit_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    three = TINY.replace('["buddyinfo", "meminfo"]', '["buddyinfo", "meminfo", "vmstat"]')
    assert cli("run", write_session(tmp_path, three), "--out", out, "-q").exit_code == 0
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.name == "vmstat":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    r = cli("run", write_session(tmp_path, TINY), "--out", out, "-q")  # vmstat is stale now
    assert r.exit_code == 3
    assert r.stderr == f"pageext: error: cannot remove {out.resolve() / 'vmstat'}: Permission denied\n"


# -- Ctrl-C while booting ------------------------------------------------------------------------------------------------


def test_ctrl_c_while_booting_exits_130_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_mod, "boot", interrupted)
    out = tmp_path / "out"
    r = cli("run", write_session(tmp_path, TINY), "--out", out)
    assert r.exit_code == 130
    assert r.stderr == "pageext: interrupted while booting; nothing was written\n" and r.stdout == ""
    assert not out.exists()


SLOW_NEED = textwrap.dedent("""
    import functools, sys, time
    import pageext_core.session.runner as runner
    from pageext_core import hookimpl
    from pageext_core.cli import main
    from pageext_core.page_ext import boot

    class Slow:
        name = "slow"

        @hookimpl
        def pageext_need(self):
            print("in pageext_need", file=sys.stderr, flush=True)
            time.sleep(60)
            return False

    runner.boot = functools.partial(boot, plugins=[Slow()])
    main()
""")


def _reset_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_real_ctrl_c_while_booting(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_NEED, "run", str(write_session(tmp_path, TINY)),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(), preexec_fn=_reset_sigint)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline() == "in pageext_need\n"  # inside boot, before any table
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr == "pageext: interrupted while booting; nothing was written\n" and stdout == ""
    assert not out.exists()
