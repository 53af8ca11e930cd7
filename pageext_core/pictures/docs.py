"""``make pictures``: draw the default session's pictures into a folder (docs/img) for the docs.

    python -m pageext_core.pictures.docs docs/img

Runs the built-in session with every picture into a temporary folder and
copies the pictures out: the docs show what a run really draws.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

DOC_PICTURES = ("memmap.png", "fragmentation.png", "flamegraph.svg")


def generate(target: str | Path) -> list[Path]:
    """Write the default session's pictures into ``target``; returns the files written."""
    from pageext_core.reports import atomic_write
    from pageext_core.session.config import load_session
    from pageext_core.session.runner import RunOptions, run_session

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_session(load_session(overrides=['report.pictures="all"']), RunOptions(out=tmp))
        out = []
        for name in DOC_PICTURES:
            atomic_write(target / name, (Path(tmp) / name).read_bytes())
            out.append(target / name)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pageext_core.pictures.docs DIR", file=sys.stderr)
        return 2
    for p in generate(argv[0]):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
