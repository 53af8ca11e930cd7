"""The Python examples in docs/page_owner.md run, in order, so the page cannot rot."""
from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "page_owner.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def test_doc_python_blocks_run_in_order() -> None:
    blocks = [body for kind, body in FENCE.findall(DOC.read_text()) if kind == "python"]
    assert len(blocks) == 3, "docs/page_owner.md lost (or gained) examples: update this test"
    namespace: dict[str, object] = {"__name__": "page_owner_doc"}
    for i, body in enumerate(blocks, 1):
        try:
            exec(compile(body, f"{DOC.name}[python block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"python block {i} of {DOC.name} failed: {type(exc).__name__}: {exc}\n{body}") from exc
    assert namespace["parts"], "the read_record loop read nothing"
