"""End to end: a session plants bugs into a busy machine; debug_pagealloc finds every one.

Also the framework's conformance check (off costs nothing, only own bits
written, reports work, bad values rejected, invariants kept).
"""
from __future__ import annotations

import pytest

from pageext_core.conformance import check_conformance
from pageext_core.session import RunOptions, load_session, run_session
from pageext_debug_pagealloc.plugin import DebugPagealloc

SESSION = """
[machine]
memory = "256MiB"
[boot]
cmdline = "{cmdline}"
[workload]
seed = {seed}
operations = 8000
[workload.faults]
use_after_free = 3
stray_write = 2
bit_flip = 3
corruption = 2
"""


def run(cmdline: str, seed: int = 11) -> dict:
    sess = load_session(text=SESSION.format(cmdline=cmdline, seed=seed))
    out = run_session(sess, RunOptions(write_files=False))
    return out.summary


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("cmdline", ["debug_pagealloc=on page_poison=on",
                                     "debug_pagealloc=on page_poison=on page_owner=on"])
def test_every_planted_bug_is_found_with_the_right_kind_and_pfn(cmdline: str, seed: int) -> None:
    s = run(cmdline, seed)
    planted = s["planted"]
    assert planted["planted"] == 10
    assert planted["detected"] == 10, [i for i in planted["items"] if i["detected_by"] is None]
    want = {"use_after_free": {"use-after-free"}, "stray_write": {"stray-access"},
            "bit_flip": {"single-bit-error"}, "corruption": {"memory-corruption"}}
    for item in planted["items"]:
        found = s["findings"]["items"][item["detected_by"]]
        assert found["client"] == "debug_pagealloc" and found["pfn"] == item["pfn"]
        assert found["kind"] in want[item["kind"]]


@pytest.mark.parametrize("seed", [11, 12])
def test_debug_pagealloc_alone_finds_the_accesses_and_misses_the_flips(seed: int) -> None:
    """6.12 on x86_64: ``debug_pagealloc=on`` unmaps and does not poison (poisoning is
    ``page_poison=on``), so a write to a free page faults and is found, while a bit flipped
    behind the MMU in a free page is seen by nothing: counted as missed, never as found."""
    s = run("debug_pagealloc=on", seed)
    planted = s["planted"]
    for item in planted["items"]:
        if item["kind"] in ("use_after_free", "stray_write"):
            found = s["findings"]["items"][item["detected_by"]]
            assert found["pfn"] == item["pfn"] and found["kind"] in ("use-after-free", "stray-access")
        else:
            assert item["detected_by"] is None, item
    assert (planted["detected"], planted["missed"]) == (5, 5)
    assert set(s["findings"]["by_kind"]) <= {"use-after-free", "stray-access"}


def test_page_poison_alone_finds_the_flips_at_allocation() -> None:
    """Without unmapping, writes to free pages land; they show up only if the page is handed out again."""
    s = run("page_poison=on")
    for item in s["planted"]["items"]:
        if item["kind"] in ("bit_flip", "corruption"):
            assert item["detected_by"] is not None, item
        if item["detected_by"] is not None:  # no fault at the write: found as damaged poison, at its bytes
            found = s["findings"]["items"][item["detected_by"]]
            assert found["pfn"] == item["pfn"] and found["time_ns"] >= item["time_ns"]
            assert found["offset"] <= item["offset"] + item["bytes"] - 1
            assert item["offset"] <= found["offset"] + found["length"] - 1
            if item["kind"] in ("use_after_free", "stray_write"):
                assert found["kind"] == "memory-corruption"
    assert set(s["findings"]["by_kind"]) <= {"single-bit-error", "memory-corruption"}


def test_nothing_is_reported_when_off() -> None:
    s = run("")
    assert s["planted"]["planted"] == 10 and s["planted"]["detected"] == 0
    assert s["findings"]["count"] == 0


@pytest.mark.parametrize("line", ["debug_pagealloc=on", "page_poison=on", "debug_pagealloc=on page_poison=on"])
def test_conformance(line: str) -> None:
    report = check_conformance(DebugPagealloc(), boot_on=line)
    assert report.ok, str(report)
