"""debug_guardpage_minorder: validation, the kernel's messages, when the client is needed."""
from __future__ import annotations

import pytest
from guardsupport import GFP_DMA, TINY, boot, guard_of

import pageext_core as pc
from pageext_guard.params import parse_minorder


def guard_lines(pe: pc.PageExt) -> list[tuple[str, str]]:
    """(level, text) of the log lines about the parameter, not the echoed command line."""
    return [(lvl, t) for _, lvl, t in pe.machine.log.lines
            if "debug_guardpage_minorder" in t and not t.startswith("Command line:")]


@pytest.mark.parametrize("value", ["0", "1", "3", "5"])
def test_good_value_is_logged_and_kept(value: str) -> None:
    pe = boot(f"debug_pagealloc=on debug_guardpage_minorder={value}")
    assert guard_lines(pe) == [("info", f"Setting debug_guardpage_minorder to {value}")]
    assert pe.boot["debug_guardpage_minorder"] == int(value)
    assert ("guard" in pe.enabled) == (value != "0")


def ours(given: str, limit: int = 5) -> str:
    """pageext's own line after the kernel's: what was given, what is accepted, where to fix it."""
    return (f"pageext: {given} ignored: expected a whole number from 0 to {limit} (MAX_PAGE_ORDER / 2); "
            "fix it on the boot line or as [boot.guard] minorder, no guard pages until then")


@pytest.mark.parametrize("value", ["6", "-1", "abc", "0x3", "3abc", "", "11"])
def test_bad_value_gets_the_kernel_message_and_is_ignored(value: str) -> None:
    """6.12's ``debug_guardpage_minorder`` early_param: ``pr_err("Bad debug_guardpage_minorder value\\n")``,
    without the value (the ``: %s`` the issue asked for came in 2025, after 6.12); pageext's own line follows."""
    # 6 and 11 are above MAX_PAGE_ORDER/2 = 5; -1 is not unsigned; the rest are not base-10 numbers.
    pe = boot(f"debug_pagealloc=on debug_guardpage_minorder={value}")
    assert [t for _, t in guard_lines(pe)] == ["Bad debug_guardpage_minorder value",
                                               ours(f"debug_guardpage_minorder={value}")]
    assert [t for _, _, t in pe.machine.log.lines].count("Bad debug_guardpage_minorder value") == 1
    assert pe.boot["debug_guardpage_minorder"] == 0
    assert not pe.boot.is_set("debug_guardpage_minorder")
    assert "guard" not in pe.enabled


def test_bare_word_has_no_value() -> None:
    # 6.12 passes NULL to kstrtoul here (a boot-time crash); the model logs the kernel's message
    pe = boot("debug_pagealloc=on debug_guardpage_minorder")
    assert [t for _, t in guard_lines(pe)] == ["Bad debug_guardpage_minorder value",
                                               ours("debug_guardpage_minorder given without a value")]
    assert "guard" not in pe.enabled


def test_parser_follows_kstrtoul() -> None:
    assert parse_minorder("+2") == 2
    assert parse_minorder("4\n") == 4
    assert parse_minorder("05") == 5
    for bad in (" 2", "2 ", "٣", "1e1", "6"):
        with pytest.raises(ValueError, match="^Bad debug_guardpage_minorder value\n"):
            parse_minorder(bad)


def test_toml_key_minorder() -> None:
    pe = pc.boot(TINY, "debug_pagealloc=on", boot_tables={"guard": {"minorder": 2}})
    assert guard_lines(pe) == [("info", "Setting debug_guardpage_minorder to 2")]
    assert "guard" in pe.enabled and guard_of(pe).minorder == 2
    pe = pc.boot(TINY, "debug_pagealloc=on", boot_tables={"guard": {"minorder": 9}})
    assert [t for _, t in guard_lines(pe)] == ["Bad debug_guardpage_minorder value", ours("debug_guardpage_minorder=9")]
    assert "guard" not in pe.enabled


def test_debug_pagealloc_off_says_so_and_costs_nothing() -> None:
    pe = boot("debug_guardpage_minorder=3")
    assert guard_lines(pe) == [
        ("info", "Setting debug_guardpage_minorder to 3"),
        ("warn", "pageext: debug_guardpage_minorder=3 ignored: debug_pagealloc is off (add debug_pagealloc=on), "
                 "no guard pages"),
    ]
    assert pe.enabled == [] and pe.nbytes == 0 and pe.record_size == 0
    assert pe.machine.callouts.split == () and pe.machine.callouts.merge == ()


def test_debug_pagealloc_without_its_client_counts_as_off() -> None:
    pe = pc.boot(TINY, "debug_pagealloc=on debug_guardpage_minorder=2", blocked=["debug_pagealloc"])
    assert ("warn", "pageext: debug_guardpage_minorder=2 ignored: debug_pagealloc is not loaded (its plugin is disabled or "
                    "failed to load), no guard pages") in guard_lines(pe)
    assert "guard" not in pe.enabled


def test_disable_debug_pagealloc_2014_spelling_turns_guards_off() -> None:
    pe = boot("debug_pagealloc=on disable_debug_pagealloc debug_guardpage_minorder=2")
    if "disable_debug_pagealloc" not in pe.boot.params:
        pytest.skip("the installed debug_pagealloc client does not own disable_debug_pagealloc")
    assert "guard" not in pe.enabled


def test_zero_needs_nothing_and_no_line_when_not_given() -> None:
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=0", stack="isolated")
    assert "guard" not in pe.enabled and pe.machine.callouts.split == ()
    pe = boot("debug_pagealloc=on", stack="isolated")
    assert guard_lines(pe) == []
    assert "guard" not in pe.enabled


def test_record_layout_when_on() -> None:
    """Only the GUARD flag bit: the order is in page private (6.12's ``set_page_private``), not in page_ext."""
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=1", stack="isolated")
    lay = pe.layout.client("guard")
    assert lay.size == 0 and list(lay.fields) == []
    assert list(lay.flag_bits) == ["GUARD"]
    assert pe.layout.has_flags
    assert pe.record_size == 8  # the shared flags word alone


def test_with_page_owner_the_record_is_72_bytes() -> None:
    """A client that needs no per-page field stays at flag-bit cost: 8-byte flags word + page_owner's 64."""
    import pageext_core as pc
    from pageext_core.mm import MiB

    pe = pc.boot(pc.MachineConfig(memory=64 * MiB), "page_owner=on debug_pagealloc=on debug_guardpage_minorder=1")
    assert {"page_owner", "guard"} <= set(pe.enabled)
    assert pe.record_size == 72


def test_smaller_max_order_lowers_the_bound() -> None:
    # max_order 6: the bound is 6 // 2 = 3.  4 passes the parser (bound 5: it cannot see the
    # machine) and is refused by need(), which sees the machine: not needed, no memory.
    small = TINY.with_(max_order=6, pageblock_order=5)
    pe = pc.boot(small, "debug_pagealloc=on debug_guardpage_minorder=4")
    assert guard_lines(pe) == [("err", "Bad debug_guardpage_minorder value"),
                               ("err", ours("debug_guardpage_minorder=4", limit=3))]
    g = guard_of(pe)
    assert not g.active and g.minorder == 0
    assert pe.client("guard").enabled is False and "guard" not in pe.enabled
    pe.machine.alloc_pages(GFP_DMA, 0)
    assert g.nr_created == 0 and pe.machine.nr_held_pages == 0
    pe = pc.boot(small, "debug_pagealloc=on debug_guardpage_minorder=3")
    assert guard_lines(pe) == [("info", "Setting debug_guardpage_minorder to 3")]
    assert guard_of(pe).active
    pe.machine.alloc_pages(GFP_DMA, 0)
    assert pe.machine.nr_held_pages == 7  # guards 1/0, 2/1, 4/2
