"""Core reports, client report names, and writing reports safely (``pageext_core.reports``).

The machine is ``TINY`` (64 MiB: DMA = 4 order-10 blocks, DMA32 = 12) with
one client (flags word + a u4 at offset 8: 12 bytes, a 16-byte record), whose one section table is 16 * 32768 / 4096
= 128 pages: an order-7 block split off a DMA32 order-10 block, leaving
one free block each of order 7, 8 and 9 there.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest
from fwsupport import Fixed, boot_with

from pageext_core import hookimpl, reports
from pageext_core.reports import ReportError, atomic_write, check_report_name, report_path


class Reporter(Fixed):
    def __init__(self, offered: dict, **kw):
        super().__init__({"n": "u4"}, ["F"], **kw)
        self.offered = offered

    @hookimpl
    def pageext_report(self):
        return self.offered


class Sectioner(Fixed):
    """Adds a line to pagetypeinfo for each node, naming itself."""

    def __init__(self, label: str, **kw):
        super().__init__({"n": "u4"}, ["F"], **kw)
        self.label = label

    @hookimpl
    def pageext_pagetypeinfo_section(self, machine, nid):
        return f"Number of {self.label} blocks for node {nid}: {machine.nr_free_pages > 0:d}\n"


def booted(*clients):
    return boot_with(*(clients or (("c", Fixed({"n": "u4"}, ["F"])),)))


def buddy_line(zone: str, counts: list[int]) -> str:
    # the kernel: seq_printf("Node %d, zone %8s ") then "%6lu " per order
    return f"Node 0, zone {zone:>8s} " + "".join(f"{n:6d} " for n in counts) + "\n"


# -- core reports -------------------------------------------------------------------------


def test_buddyinfo():
    pe = booted()
    assert pe.report("buddyinfo") == (buddy_line("DMA", [0] * 10 + [4])
                                      + buddy_line("DMA32", [0] * 7 + [1, 1, 1, 11]))


def test_meminfo_and_vmstat():
    pe = booted()
    info = {}
    for line in pe.report("meminfo").splitlines():
        key, value = line.split(":")
        info[key] = int(value.split()[0])
    assert info["MemTotal"] == 16384 * 4
    assert info["MemFree"] == (16384 - 128) * 4
    assert "Allocated" not in info  # 6.12's meminfo has no such line: it is in pageext_meminfo
    own = dict(line.split(":") for line in pe.report("pageext_meminfo").splitlines())
    assert int(own["Allocated"].split()[0]) == 128 * 4 and pe.report_owner("pageext_meminfo") == "core"
    assert pe.report("meminfo").startswith("MemTotal:" + " " * 10 + "65536 kB\n")  # "%-16s%8lu kB"
    vm = dict(line.split() for line in pe.report("vmstat").splitlines())
    assert int(vm["nr_free_pages"]) == 16384 - 128


def test_pagetypeinfo_with_client_sections_in_call_order_after_the_block_counts():
    pe = booted(("b", Sectioner("bee")), ("a", Sectioner("ay")), ("off", Sectioner("off", need=False)))
    text = pe.report("pagetypeinfo")
    assert text.startswith("Page block order: 9\nPages per block:  512\n")
    counts = text.index("Number of blocks type")
    assert counts < text.index("Number of ay blocks for node 0: 1\n") < text.index("Number of bee blocks for node 0: 1\n")
    assert text.endswith("Number of bee blocks for node 0: 1\n")
    assert "off" not in text  # a client that is not enabled adds nothing
    plain = booted()
    assert text.startswith(plain.report("pagetypeinfo"))  # the sections only add lines


def test_page_ext_report():
    pe = booted()
    assert pe.report("page_ext") == (
        "record size: 16 bytes\n"
        f"page_ext bytes: {16 * 32768}\n"
        "tables: 1 (per section), 128 simulated pages\n"
        "offset 0: flags word (8 bytes)\n"
        "offset 8: c (4 bytes), flags F=bit0\n"
        "    +0    n <u4\n"
    )


def test_report_names_core_first_then_clients_in_name_order():
    pe = booted(("z", Reporter({"zz/one": lambda: "1", "aa": lambda: ["a", "b"]})),
                ("off", Reporter({"hidden": lambda: "h"}, need=False)))
    assert pe.report_names() == ["buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo", "unusable_index", "extfrag_index", "zoneinfo", "pageext_meminfo", "aa", "zz/one"]
    assert pe.report("aa") == "ab"  # chunks are joined
    assert pe.report_owner("aa") == "z" and pe.report_owner("meminfo") == "core"


def test_client_reports_get_their_parameters():
    pe = booted(("p", Reporter({"echo": lambda sep=",", n=1: sep.join(["x"] * n)})))
    assert pe.report("echo") == "x"
    assert pe.report("echo", sep="-", n=3) == "x-x-x"


def test_unknown_report_suggests():
    pe = booted()
    with pytest.raises(ReportError, match="no report 'meminf'; did you mean 'meminfo'"):
        pe.report("meminf")


@pytest.mark.parametrize("clients,message", [
    ([("a", Reporter({"meminfo": lambda: ""}))], "client 'a' offers report 'meminfo', which the core already offers"),
    ([("a", Reporter({"same": lambda: ""})), ("b", Reporter({"same": lambda: ""}))],
     "client 'b' offers report 'same', which '?a'? already offers"),
    ([("a", Reporter({"../escape": lambda: ""}))], "'../escape'"),
], ids=["core-name", "two-clients", "bad-name"])
def test_client_report_conflicts(clients, message):
    pe = booted(*clients)
    with pytest.raises(ReportError, match=message):
        pe.report_names()


def test_the_core_reports_are_a_built_in_client_not_a_listed_plugin():
    pe = booted()
    assert [c.name for c in pe.builtin] == ["core"]
    assert "core" not in [c.name for c in pe.clients] and pe.enabled == ["c"]
    assert [p["name"] for p in pe.describe()["plugins"]] == ["c"]
    assert {pe.report_owner(n) for n in ("buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo")} == {"core"}
    with pytest.raises(TypeError, match="buddyinfo takes no parameters, got x"):
        pe.report("buddyinfo", x=1)


def test_the_old_sections_hook_is_refused_with_a_hint():
    class Old(Fixed):
        @hookimpl
        def pageext_report_sections(self):
            return {}

    pe = boot_with(("old", Old()), strict=False)
    [problem] = pe.problems
    assert "'pageext_report_sections' (did you mean 'pageext_report'?)" in problem


# -- names and paths ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["page_owner", "page_owner_stacks/show_stacks", "a/b/c.txt", "..hidden", "a..b"])
def test_good_report_names(name):
    assert check_report_name(name) == PurePosixPath(name)


@pytest.mark.parametrize("name", ["", "..", "../x", "a/../b", "a/..", "/abs", "/etc/passwd", "a//b", "a/", "./a",
                                  "a/./b", ".", "~root/x", "a\\b", "a\x00b", None, 3])
def test_bad_report_names(name):
    with pytest.raises(ReportError):
        check_report_name(name)  # type: ignore[arg-type]


def test_report_path_stays_inside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert report_path(out, "page_owner_stacks/show_stacks") == out.resolve() / "page_owner_stacks" / "show_stacks"
    with pytest.raises(ReportError):
        report_path(out, "../sibling")
    with pytest.raises(ReportError):
        report_path(out, "/tmp/x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    with pytest.raises(ReportError, match="resolves outside the output directory"):
        report_path(out, "link/x")


# -- atomic_write ------------------------------------------------------------------------------------


def test_atomic_write_writes_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "dir" / "report.txt"
    atomic_write(target, "first\n")
    assert target.read_text() == "first\n"
    atomic_write(target, b"second\n")
    assert target.read_bytes() == b"second\n"
    assert os.listdir(target.parent) == ["report.txt"]


def test_atomic_write_makes_an_ordinary_file(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "r.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "r.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


class HalfWriter:
    """A file object that writes half of what it is given, then fails (disk full)."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)


def _fail_write(monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(reports.os, "fdopen", lambda fd, mode="r": HalfWriter(real(fd, mode)))


def _fail_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(reports.os, "fsync", fsync)


def _fail_replace(monkeypatch):
    def replace(a, b):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(reports.os, "replace", replace)


def _interrupt(monkeypatch):
    def fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(reports.os, "fsync", fsync)


@pytest.mark.parametrize("fail", [_fail_write, _fail_fsync, _fail_replace, _interrupt],
                         ids=["write", "fsync", "replace", "interrupt"])
@pytest.mark.parametrize("existing", [True, False], ids=["over-old", "new"])
def test_atomic_write_failure_leaves_old_content_and_no_temp_file(tmp_path, monkeypatch, fail, existing):
    target: Path = tmp_path / "report.txt"
    if existing:
        target.write_text("old complete content\n")
    fail(monkeypatch)
    with pytest.raises((OSError, KeyboardInterrupt)):
        atomic_write(target, "new content that must never be seen half written\n" * 100)
    monkeypatch.undo()
    if existing:
        assert target.read_text() == "old complete content\n"
        assert os.listdir(tmp_path) == ["report.txt"]
    else:
        assert os.listdir(tmp_path) == []


# -- atomic_writer: the same, written in pieces ------------------------------------------------------


def test_atomic_writer_replaces_only_when_the_block_ends(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with reports.atomic_writer(target) as f:
        f.write(b"one\n")
        f.flush()
        assert target.read_text() == "old\n"  # readers still see the old content
        f.write(b"two\n")
    assert target.read_text() == "one\ntwo\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_writer_keeps_an_existing_files_mode_and_gives_a_new_one_the_umasks(tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("old\n")
    os.chmod(kept, 0o640)
    old = os.umask(0o022)
    try:
        with reports.atomic_writer(kept) as f:
            f.write(b"new\n")
        with reports.atomic_writer(tmp_path / "new.txt") as f:
            f.write(b"new\n")
    finally:
        os.umask(old)
    assert kept.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_writer_writes_a_device_in_place():
    with reports.atomic_writer("/dev/null") as f:
        f.write(b"gone\n")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_atomic_writer_lets_the_blocks_error_through_and_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(OSError) as info, reports.atomic_writer(target) as f:
        f.write(b"half")
        raise OSError(28, "No space left on device")
    assert type(info.value) is OSError  # the caller's own error, not rewritten
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.txt"]


def test_atomic_writer_failure_names_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fail_replace(monkeypatch)
    with pytest.raises(reports.OutputError) as info, reports.atomic_writer("out.txt") as f:
        f.write(b"x")
    assert str(info.value) == "cannot write out.txt: Invalid cross-device link"
    assert os.listdir(tmp_path) == []
