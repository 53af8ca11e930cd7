"""What ``pageext plugins`` loads: not the session package (its cost is measured in benchmarks/bench_cli.py)."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import contextlib, io, json, sys
sys.argv = ["pageext", "plugins", "--memory", sys.argv[1]]
from pageext_core.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "session": sorted(m for m in sys.modules if m.startswith("pageext_core.session")),
                  "tqdm": "tqdm" in sys.modules}))
"""


def probe(memory: str) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, memory], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def test_pageext_plugins_does_not_import_the_session_package():
    got = probe("1GiB")
    assert got == {"code": 0, "session": [], "tqdm": False}


def test_a_config_error_is_still_exit_code_2_without_the_session_package():
    got = probe("lots")  # parse_size raises ConfigError: the lazy error mapping must still know it
    assert got == {"code": 2, "session": [], "tqdm": False}
