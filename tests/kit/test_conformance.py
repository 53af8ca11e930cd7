"""The conformance check catches each broken promise, and passes a well-behaved client."""
from __future__ import annotations

from typing import Any

import pytest

from pageext_core import BootParam, ConformanceError, check_conformance, hookimpl


class Good:
    name = "good"

    def __init__(self) -> None:
        self.view: Any = None

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("good", "bool", False, "a well-behaved client")]

    @hookimpl
    def pageext_need(self, boot: Any) -> bool:
        return boot["good"]

    @hookimpl
    def pageext_fields(self) -> dict[str, str]:
        return {"a": "u1", "b": "u4"}  # 3 bytes of padding between a and b

    @hookimpl
    def pageext_flags(self) -> list[str]:
        return ["MINE"]

    @hookimpl
    def pageext_init(self, view: Any) -> None:
        self.view = view

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int) -> None:
        blk = self.view.block(pfn, order)
        blk["a"] = 1
        blk["b"] += 1
        self.view.set_flags(pfn, self.view.flag("MINE"), 1 << order)

    @hookimpl
    def pageext_report(self) -> dict[str, Any]:
        return {"good": lambda: "fine\n"}


def test_good_client_passes() -> None:
    report = check_conformance(Good, "good=on")
    assert report.ok
    names = [c.name for c in report.checks]
    assert names == ["enabled by boot_on", "no memory and no calls when not enabled", "reports on a fresh machine",
                     "writes only its own fields", "reports on a busy machine",
                     "allocator invariants after a busy workload", "boot parameter good=maybe rejected"]
    assert "wrote only its own bytes" in str(report)


class WritesPadding(Good):
    name = "padding"

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("padding", "bool", False, "writes into its padding")]

    @hookimpl
    def pageext_need(self, boot: Any) -> bool:
        return boot["padding"]

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int) -> None:
        raw, offset, _, _ = self.view.locate(pfn)
        raw[offset + 2] = 0x77  # between field a (1 byte) and field b (aligned to 4)


class WritesOthersFlags(Good):
    name = "flagthief"

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("flagthief", "bool", False, "sets a bit that is not its own")]

    @hookimpl
    def pageext_need(self, boot: Any) -> bool:
        return boot["flagthief"]

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int) -> None:
        _, _, words, index = self.view.locate(pfn)
        words[index] |= 1 << 40  # no client owns bit 40


class AlwaysNeeded(Good):
    name = "greedy"

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("greedy", "bool", False, "ignores its parameter")]

    @hookimpl
    def pageext_need(self) -> bool:
        return True


class BrokenReport(Good):
    name = "badreport"

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("badreport", "bool", False, "its report fails on a busy machine")]

    @hookimpl
    def pageext_need(self, boot: Any) -> bool:
        return boot["badreport"]

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int) -> None:
        self.seen = getattr(self, "seen", 0) + 1

    @hookimpl
    def pageext_report(self) -> dict[str, Any]:
        def report() -> str:
            if getattr(self, "seen", 0):
                raise RuntimeError("cannot cope with data")
            return "empty\n"
        return {"badreport": report}


class AcceptsAnything(Good):
    name = "lax"

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("lax", "bool", False, "accepts any value", parse=lambda raw: True)]

    @hookimpl
    def pageext_need(self, boot: Any) -> bool:
        return boot["lax"]


@pytest.mark.parametrize("client,line,failed,words", [
    (WritesPadding, "padding=on", "writes only its own fields", "padding of padding"),
    (WritesOthersFlags, "flagthief=on", "writes only its own fields", "flag bits changed that are not its own: 0x10000000000"),
    (AlwaysNeeded, "greedy=on", "no memory and no calls when not enabled", "need() said yes"),
    (BrokenReport, "badreport=on", "reports on a busy machine", "RuntimeError: cannot cope with data"),
    (AcceptsAnything, "lax=on", "boot parameter lax=maybe rejected", "no warning names the parameter"),
])
def test_each_broken_promise_is_caught(client: type, line: str, failed: str, words: str) -> None:
    report = check_conformance(client, line, raise_on_failure=False)
    bad = [c for c in report.checks if not c.ok]
    assert [c.name for c in bad] == [failed], str(report)
    assert words in bad[0].detail
    with pytest.raises(ConformanceError, match="FAIL"):
        check_conformance(client, line)
