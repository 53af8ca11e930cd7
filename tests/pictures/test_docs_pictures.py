"""docs/looking-at-a-run.md shows what a run draws: `make pictures`'s output, committed, and real report text."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="pictures need the pictures extra (make install installs it)")

from pageext_core.pictures.docs import DOC_PICTURES

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "looking-at-a-run.md"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make pictures` runs, into a temporary folder."""
    out = tmp_path_factory.mktemp("img")
    r = subprocess.run([sys.executable, "-m", "pageext_core.pictures.docs", str(out)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(out / n) for n in DOC_PICTURES]
    return out


@pytest.mark.parametrize("name", DOC_PICTURES)
def test_committed_pictures_are_what_make_pictures_draws(drawn: Path, name: str) -> None:
    committed = REPO / "docs" / "img" / name
    assert committed.read_bytes() == (drawn / name).read_bytes(), (
        f"docs/img/{name} is not what the default session draws now: run `make pictures` and commit docs/img")


def test_the_doc_shows_every_picture() -> None:
    text = DOC.read_text()
    shown = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", text)
    assert sorted(shown) == sorted(f"img/{n}" for n in DOC_PICTURES)


def test_the_doc_quotes_the_default_sessions_unusable_index() -> None:
    from pageext_core.session.config import load_session
    from pageext_core.session.runner import RunOptions, run_session

    o = run_session(load_session(), RunOptions(write_files=False))
    real = [line.rstrip() for line in o.page_ext.report("unusable_index").splitlines()]
    text = DOC.read_text()
    block = re.search(r"```text\n(Node 0, zone .*?)```", text, re.S).group(1)
    assert block.splitlines() == real
