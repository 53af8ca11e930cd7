"""Boot parameters, modes and what "off" costs (nothing)."""
from __future__ import annotations

import pytest
from debug_pagealloc_support import boot_dpa, boot_installed, client, log_lines

from pageext_core.mm.gfp import GFP_KERNEL


@pytest.mark.parametrize("line, mode", [
    ("", "off"),
    ("debug_pagealloc=on", "debug_pagealloc"),
    ("debug_pagealloc=1", "debug_pagealloc"),
    ("debug_pagealloc=Y", "debug_pagealloc"),
    ("debug_pagealloc=yes", "debug_pagealloc"),
    ("debug_pagealloc=off", "off"),
    ("debug_pagealloc=0", "off"),
    ("debug-pagealloc=on", "debug_pagealloc"),  # the kernel treats - and _ alike
    # 2014 series: the bare word switches it off, wherever it stands.
    ("disable_debug_pagealloc", "off"),
    ("debug_pagealloc=on disable_debug_pagealloc", "off"),
    ("disable_debug_pagealloc debug_pagealloc=on", "off"),
    # page poisoning alone, or kept by an explicit page_poison=on.
    ("page_poison=on", "page_poison"),
    ("page_poison=1 debug_pagealloc=off", "page_poison"),
    ("debug_pagealloc=on page_poison=on", "debug_pagealloc"),
    ("debug_pagealloc=on disable_debug_pagealloc page_poison=on", "page_poison"),
    ("page_poison=off", "off"),
])
def test_boot_line_selects_mode(line: str, mode: str) -> None:
    pe = boot_dpa(line)
    assert client(pe).mode == mode
    assert ("debug_pagealloc" in pe.enabled) == (mode != "off")
    assert client(pe).unmap == (mode == "debug_pagealloc")


@pytest.mark.parametrize("table, mode", [
    ({"enabled": True}, "debug_pagealloc"),
    ({"enabled": False}, "off"),
    ({"enabled": True, "disable": True}, "off"),
    ({"poison": True}, "page_poison"),
    ({"enabled": True, "disable": True, "poison": True}, "page_poison"),
])
def test_toml_keys(table: dict, mode: str) -> None:
    pe = boot_dpa("", boot_tables={"debug_pagealloc": table})
    assert client(pe).mode == mode


def test_command_line_overrides_toml() -> None:
    pe = boot_dpa("debug_pagealloc=off", boot_tables={"debug_pagealloc": {"enabled": True}})
    assert client(pe).mode == "off"


def test_malformed_value_is_warned_and_ignored() -> None:
    pe = boot_dpa("debug_pagealloc=maybe")
    assert client(pe).mode == "off"
    assert log_lines(pe, "Malformed early option 'debug_pagealloc'")


def test_off_costs_no_memory_and_no_call() -> None:
    pe = boot_dpa("")
    m = pe.machine
    assert pe.nbytes == 0 and pe.record_size == 0
    assert m.callouts.alloc == () and m.callouts.free == ()
    assert m.contents.fault_handlers == []
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.write(p, 0, b"data")
    m.free_pages(p, 0)
    m.write(p, 0, b"after free: nothing catches it")  # off: no fault
    assert m.contents.nr_unmapped == 0
    assert pe.findings() == []
    assert log_lines(pe, "debug_pagealloc") == [] and log_lines(pe, "page_poison") == []


def test_on_uses_two_flag_bits_and_no_field_bytes() -> None:
    pe = boot_dpa("debug_pagealloc=on")
    d = pe.client("debug_pagealloc").describe()
    assert d["flag_bits"] == {"POISON": 0, "FREED": 1}
    assert d["size"] == 0
    assert pe.record_size == 8  # just the shared flags word
    assert pe.nbytes == 8 * 32768  # one 128 MiB section's table holds the whole 64 MiB machine


def test_init_log_lines_say_what_is_active() -> None:
    pe = boot_dpa("debug_pagealloc=on")
    free = int(pe.machine.free_pages_mask().sum())
    assert log_lines(pe, "debug_pagealloc: enabled: free pages are unmapped from the direct map "
                         "and poisoned with 0xaa")
    assert log_lines(pe, f"debug_pagealloc: unmapped and poisoned {free} free pages ({free * 4}K)")

    pe = boot_dpa("page_poison=on debug_pagealloc=on disable_debug_pagealloc")
    assert log_lines(pe, "page_poison: enabled: free pages are poisoned with 0xaa and checked on allocation; "
                         "pages stay mapped")
    assert log_lines(pe, "debug_pagealloc: disabled by disable_debug_pagealloc")
    assert log_lines(pe, f"page_poison: poisoned {int(pe.machine.free_pages_mask().sum())} free pages")


def test_init_unmaps_and_poisons_exactly_the_free_pages() -> None:
    pe = boot_dpa("debug_pagealloc=on")
    m = pe.machine
    free = m.free_pages_mask()
    assert not free.all()  # the page_ext tables themselves were allocated before init
    assert m.contents.nr_unmapped == int(free.sum())
    view = client(pe).view
    for base, recs, flags in view.scan():
        n = min(len(recs), len(free) - base)
        assert ((flags[:n] & view.flag("POISON")) != 0).tolist() == free[base : base + n].tolist()
        assert not (flags & view.flag("FREED")).any()


def test_entry_point_discovers_the_client() -> None:
    pe = boot_installed("debug_pagealloc=on")
    c = pe.client("debug_pagealloc")
    assert c.info.dist == "pageext-debug-pagealloc"
    assert "debug_pagealloc" in pe.enabled
    assert {p.name for p in c.params} == {"debug_pagealloc", "disable_debug_pagealloc", "page_poison"}
