"""Boot parameters, modes and what "off" costs (nothing).

Modes follow 6.12 on x86_64 (mm/mm_init.c ``mem_debugging_and_hardening_init``):
``debug_pagealloc=on`` unmaps free pages and does not poison them (x86_64 supports
unmapping, so poisoning is not implied); ``page_poison=on`` (CONFIG_PAGE_POISONING)
poisons; both together do both.
"""
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
    ("debug_pagealloc=on page_poison=on", "debug_pagealloc+page_poison"),
    ("debug_pagealloc=on disable_debug_pagealloc page_poison=on", "page_poison"),
    ("page_poison=off", "off"),
])
def test_boot_line_selects_mode(line: str, mode: str) -> None:
    pe = boot_dpa(line)
    assert client(pe).mode == mode
    assert ("debug_pagealloc" in pe.enabled) == (mode != "off")
    assert client(pe).unmap == mode.startswith("debug_pagealloc")
    assert client(pe).poison == mode.endswith("page_poison")


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
    # pageext's own lines (the kernel prints none for these switches), so prefixed
    assert log_lines(pe, "pageext: debug_pagealloc: enabled: free pages are unmapped from the direct map")
    assert log_lines(pe, f"pageext: debug_pagealloc: unmapped {free} free pages ({free * 4}K)")

    pe = boot_dpa("debug_pagealloc=on page_poison=on")
    assert log_lines(pe, "pageext: debug_pagealloc+page_poison: enabled: free pages are poisoned with 0xaa and "
                         "checked on allocation, free pages are unmapped from the direct map")
    assert log_lines(pe, f"pageext: debug_pagealloc+page_poison: poisoned and unmapped {free} free pages")

    pe = boot_dpa("page_poison=on debug_pagealloc=on disable_debug_pagealloc")
    assert log_lines(pe, "pageext: page_poison: enabled: free pages are poisoned with 0xaa and checked on allocation, "
                         "pages stay mapped")
    assert log_lines(pe, "pageext: debug_pagealloc: disabled by disable_debug_pagealloc")
    assert log_lines(pe, f"pageext: page_poison: poisoned {int(pe.machine.free_pages_mask().sum())} free pages")


@pytest.mark.parametrize("line", ["debug_pagealloc=on page_poison=on", "debug_pagealloc=on"])
def test_init_unmaps_and_poisons_exactly_the_free_pages(line: str) -> None:
    pe = boot_dpa(line)
    m = pe.machine
    free = m.free_pages_mask()
    assert not free.all()  # the page_ext tables themselves were allocated before init
    assert m.contents.nr_unmapped == int(free.sum())
    view = client(pe).view
    poison = "page_poison" in line
    for base, recs, flags in view.scan():
        n = min(len(recs), len(free) - base)
        assert ((flags[:n] & view.flag("POISON")) != 0).tolist() == (free[base : base + n] & poison).tolist()
        assert not (flags & view.flag("FREED")).any()
    assert m.contents.is_filled(int(free.nonzero()[0][0]), 1, 0xAA) == poison


def test_debug_pagealloc_alone_does_not_poison_on_x86_64() -> None:
    """x86_64 has ARCH_SUPPORTS_DEBUG_PAGEALLOC: ``debug_pagealloc=on`` unmaps only (6.12's
    mem_debugging_and_hardening_init poisons for it only on arches without that support)."""
    from debug_pagealloc_support import free_then_alloc, headlines

    pe = boot_dpa("debug_pagealloc=on")
    p = free_then_alloc(pe, {0: b"\xab"})  # one flipped bit, written behind the MMU while the page was free
    assert pe.findings() == [] and not headlines(pe)
    assert pe.machine.read(p, 0, 1) == b"\xab"  # nothing poisoned or checked it
    pe = boot_dpa("page_poison=on")
    free_then_alloc(pe, {0: b"\xab"})
    assert [f.kind for f in pe.findings()] == ["single-bit-error"] and log_lines(pe, "pagealloc: single bit error")


def test_entry_point_discovers_the_client() -> None:
    pe = boot_installed("debug_pagealloc=on")
    c = pe.client("debug_pagealloc")
    assert c.info.dist == "pageext-debug-pagealloc"
    assert "debug_pagealloc" in pe.enabled
    assert {p.name for p in c.params} == {"debug_pagealloc", "disable_debug_pagealloc", "page_poison"}
