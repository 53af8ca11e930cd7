"""The trace samples shown in docs/replay.md read as the formats the page says they are."""
from __future__ import annotations

import re
from pathlib import Path

from pageext_core.trace import read_trace

DOC = Path(__file__).resolve().parents[2] / "docs" / "replay.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def test_doc_samples_parse_as_their_formats():
    samples = [body for kind, body in FENCE.findall(DOC.read_text()) if kind == "text"]
    assert len(samples) == 3
    for body, fmt in zip(samples, ("ftrace", "trace-cmd", "perf")):
        r = read_trace(body.splitlines(keepends=True))
        events = list(r)
        assert r.format == fmt
        assert r.stats.malformed == 0, r.stats.malformed_examples
        assert events and events[0].stack >= 0 and r.stacks.frames(events[0].stack)[0] == "__alloc_pages_noprof"
