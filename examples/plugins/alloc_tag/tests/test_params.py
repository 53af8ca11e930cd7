"""``sysctl.vm.mem_profiling``: the kernel's parsing, off by default, and what the layout costs."""
from __future__ import annotations

import pytest
from tagsupport import PAGES_PER_SECTION, boot_tag

from pageext_alloc_tag.params import MALFORMED, parse_mem_profiling


@pytest.mark.parametrize("raw,value", [
    ("1", "1"), ("0", "0"), ("on", "1"), ("off", "0"), ("y", "1"), ("N", "0"), ("yes", "1"),
    ("never", "never"),
    ("neverland", "never"),  # the kernel compares only the first five letters
    ("never,compressed", "never"),
    ("1,compressed", "1,compressed"), ("0,compressed", "0,compressed"), ("on,compressed", "1,compressed"),
])
def test_accepted_values(raw, value):
    assert parse_mem_profiling(raw) == value


@pytest.mark.parametrize("raw", [None, "", "2", "maybe", "1,", "1,fast", "1,compressed,x", "1,Compressed", ",compressed"])
def test_rejected_values_carry_the_kernel_message(raw):
    with pytest.raises(ValueError) as exc:
        parse_mem_profiling(raw)
    assert str(exc.value) == "Malformed early option 'sysctl.vm.mem_profiling'"


@pytest.mark.parametrize("cmdline", ["", "sysctl.vm.mem_profiling=0", "sysctl.vm.mem_profiling=never",
                                     "sysctl.vm.mem_profiling=off,compressed"])
def test_off_costs_nothing(cmdline):
    pe = boot_tag(cmdline)
    assert pe.enabled == []
    assert pe.record_size == 0 and pe.nbytes == 0 and pe.tables is None
    assert "allocinfo" not in pe.report_names()
    assert pe.client_summaries() == {}
    assert not pe.plugin("alloc_tag").active


def test_bad_value_is_logged_and_leaves_profiling_off():
    pe = boot_tag("sysctl.vm.mem_profiling=2")
    assert MALFORMED in pe.boot.warnings
    assert pe.machine.log.grep(MALFORMED) == [MALFORMED]
    assert pe.enabled == [] and pe.nbytes == 0


def test_on_gives_every_page_a_four_byte_tag():
    pe = boot_tag("sysctl.vm.mem_profiling=1")
    assert pe.enabled == ["alloc_tag"]
    assert pe.record_size == 4
    # TINY has one present section; its table covers all of it.
    assert pe.nbytes == 4 * PAGES_PER_SECTION
    c = pe.client("alloc_tag")
    assert (c.layout.offset, c.layout.size) == (0, 4)
    assert c.describe()["fields"] == {"tag": "<u4"}
    assert pe.machine.log.grep("Memory allocation profiling") == [
        "Memory allocation profiling is enabled without compression and is turned on!"]


def test_compressed_halves_the_tag():
    pe = boot_tag("sysctl.vm.mem_profiling=1,compressed")
    assert pe.record_size == 2 and pe.nbytes == 2 * PAGES_PER_SECTION
    assert pe.client_summaries()["alloc_tag"]["reference_bytes"] == 2
    assert pe.machine.log.grep("Memory allocation profiling") == [
        "Memory allocation profiling is enabled with compression and is turned on!"]


def test_toml_table_sets_the_same_parameter():
    pe = boot_tag("", boot_tables={"alloc_tag": {"mem_profiling": "1,compressed"}})
    assert pe.boot["sysctl.vm.mem_profiling"] == "1,compressed"
    assert pe.record_size == 2


def test_command_line_wins_over_the_table():
    pe = boot_tag("sysctl.vm.mem_profiling=never", boot_tables={"alloc_tag": {"mem_profiling": "1"}})
    assert pe.enabled == []


def test_parameter_is_described_for_pageext_plugins():
    pe = boot_tag("")
    (p,) = pe.client("alloc_tag").describe()["boot_params"]
    assert (p["name"], p["type"], p["default"], p["toml_key"]) == ("sysctl.vm.mem_profiling", "str", "0", "mem_profiling")
