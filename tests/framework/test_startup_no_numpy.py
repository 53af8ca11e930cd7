"""``pageext plugins``, ``pageext plugins --memory 1TiB`` and ``pageext --version`` never import numpy.

Issue 12: start-up within 5x of ``python -c pass``, which ``import numpy``
alone nearly uses up; so listing the plugins must not load numpy, the
allocator or the page_ext tables (the time itself is measured by
``benchmarks/bench_cli.py``, not here).  Each command runs in a fresh
interpreter as a user runs it, and the probe reports which heavy modules it
loaded along with what the command printed.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

HEAVY = ("numpy", "pageext_core.mm.buddy", "pageext_core.mm.machine", "pageext_core.storage")

PROBE = r"""
import contextlib, io, json, sys
args = json.loads(sys.argv[1])
heavy = json.loads(sys.argv[2])
sys.argv = ["pageext", *args]
from pageext_core.cli import main
out, err = io.StringIO(), io.StringIO()
code = 0
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                  "heavy": sorted(m for m in heavy if m in sys.modules)}))
"""

ALL_ON = "page_owner=on debug_pagealloc=on debug_guardpage_minorder=1"


def run_cli(*args: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(HEAVY)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("args", [
    ("plugins",),
    ("plugins", "--json"),
    ("plugins", "--memory", "1TiB", "--boot", ALL_ON),
    ("--version",),
], ids=["plugins", "plugins-json", "plugins-1TiB-all-on", "version"])
def test_listing_commands_import_no_numpy(args: tuple[str, ...]) -> None:
    got = run_cli(*args)
    assert got["code"] == 0, got["err"]
    assert got["heavy"] == []
    for name in ("page_owner", "debug_pagealloc", "guard"):  # the command did its work: every plugin is named
        assert name in got["out"]


def test_the_all_on_plan_is_laid_out_without_numpy() -> None:
    """The figures come from the clients' real answers: three enabled, page_owner's 64 bytes behind the flags word."""
    got = run_cli("plugins", "--json", "--memory", "1TiB", "--boot", ALL_ON)
    assert got["code"] == 0 and got["heavy"] == []
    data = json.loads(got["out"])
    enabled = {d["name"]: d for d in data["plugins"] if d["enabled"]}
    assert sorted(enabled) == ["debug_pagealloc", "guard", "page_owner"]
    po = enabled["page_owner"]
    assert (po["offset"], po["size"], data["record_size"]) == (8, 64, 72)
    assert po["fields"]["comm"] == "|S16" and po["fields"]["ts_nsec"] == "<u8"
    assert data["page_ext_bytes"] == 72 * (1 << 40) // 4096
    assert set(po["flag_bits"]) == {"OWNER", "OWNER_ALLOCATED"}


def test_a_guard_order_too_big_for_the_machine_is_still_judged_without_numpy() -> None:
    """guard's pageext_need checks its order against the machine's max_order: the plan's machine answers it."""
    got = run_cli("plugins", "--json", "--boot", "debug_pagealloc=on debug_guardpage_minorder=9")
    assert got["code"] == 0 and got["heavy"] == []
    data = json.loads(got["out"])
    assert {d["name"]: d["enabled"] for d in data["plugins"]} == {
        "debug_pagealloc": True, "guard": False, "page_owner": False}
