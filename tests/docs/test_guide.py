"""Every code block in the authors' guide runs, so the guide cannot rot."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-plugins.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(GUIDE.read_text()) if kind == lang]


def test_guide_python_blocks_run_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    code = blocks("python")
    assert len(code) >= 8, "the guide lost its examples"
    namespace: dict[str, object] = {"__name__": "writing_plugins_guide"}
    for i, body in enumerate(code, 1):
        try:
            exec(compile(body, f"{GUIDE.name}[python block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"python block {i} of {GUIDE.name} failed: {type(exc).__name__}: {exc}\n{body}") from exc
    out = capsys.readouterr().out
    assert "tripwire: page" in out and "conformance of 'heat': PASS" in out


def test_guide_toml_blocks_are_valid_packaging() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    tomls = blocks("toml")
    assert tomls
    for body in tomls:
        data = tomllib.loads(body)
        eps = data["project"]["entry-points"]["pageext.clients"]
        assert all(":" in target for target in eps.values())
