"""Helpers for tests/pictures: a small seeded session with every picture, and the machine fingerprint."""
from __future__ import annotations

import sys
from pathlib import Path

from pageext_core.session.config import load_session
from pageext_core.session.runner import RunOptions, RunOutcome, run_session

REPO = Path(__file__).resolve().parents[2]

SMALL = """\
[session]
name = "small"

[machine]
memory = "128MiB"
cpus = 2

[boot]
cmdline = "page_owner=on debug_pagealloc=on debug_guardpage_minorder=1"

[workload]
seed = 3
operations = 3000
lifetime = 400
leak_fraction = 0.05

[workload.faults]
use_after_free = 1
bit_flip = 1

[report]
pictures = ["all"]
sample_every = 100
"""


def write_session(tmp: Path, text: str = SMALL, name: str = "small.toml") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def run_small(tmp: Path, out: str = "out", text: str = SMALL, overrides: tuple[str, ...] = ()) -> RunOutcome:
    return run_session(load_session(write_session(tmp, text), overrides=list(overrides)),
                       RunOptions(out=str(tmp / out)))


def fingerprint_tools():
    """``fingerprint`` and ``changed`` of tests/session/test_report_consistency.py (the machine-state walk)."""
    sys.path.insert(0, str(REPO / "tests" / "session"))
    try:
        from test_report_consistency import changed, fingerprint
    finally:
        sys.path.pop(0)
    return fingerprint, changed
