"""Every example session in examples/sessions runs and writes what its ``[report] reports`` lists.

These use the installed plugins as users do; the two bug-hunting examples
must catch every bug they plant.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sessionsupport import EXAMPLES, load_summary, tree

from pageext_core.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SESSIONS = sorted(EXAMPLES.glob("*.toml"))


def test_there_are_examples() -> None:
    assert {p.stem for p in SESSIONS} >= {"flatmem_small", "fragmentation", "function_workload", "guard_overrun",
                                         "leak_hunt", "numa_hotplug", "use_after_free"}


@pytest.mark.parametrize("session", SESSIONS, ids=[p.stem for p in SESSIONS])
def test_example_runs_and_writes_its_reports(tmp_path: Path, session: Path) -> None:
    listed = tomllib.loads(session.read_text())["report"]["reports"]
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", str(session), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    files = tree(out)
    assert sorted(files) == sorted([*listed, "dmesg.log", "summary.json"])
    assert all(files[name].strip() for name in listed), "an empty report"
    s = load_summary(out)
    # In the session's report order (pageext report --list), whatever order the file lists them in.
    assert sorted(s["reports"][:-2]) == sorted(listed) and s["reports"][-2:] == ["dmesg.log", "summary.json"]
    assert s["plugin_problems"] == [] and s["boot"]["warnings"] == []
    assert s["session"]["name"] == session.stem and s["workload"]["interrupted"] is False
    if session.stem in ("use_after_free", "guard_overrun"):
        p = s["planted"]
        planted = tomllib.loads(session.read_text())["workload"]["faults"]
        assert p["planted"] == sum(planted.values())
        assert p["detected"] == p["planted"] and p["missed"] == 0, [
            (i["kind"], i.get("target"), i["detected_by"]) for i in p["items"]]
    if session.stem == "numa_hotplug":
        events = s["workload"]["hotplug"]
        assert [(e["at"], e["action"]) for e in events] == [(2000, "online"), (20000, "offline")]
        assert events[0]["ok"] is True and events[1]["ok"] is True and events[1]["migrate"] is True
        # The offline migrated pages out of the block, and page_owner names the reason.
        assert any("migrated" in line and "before offlining" in line for line in files["dmesg.log"].decode().splitlines())
        assert b"last migrate reason: memory_hotplug" in files["page_owner"]
    if session.stem == "fragmentation":
        # What the example promises: pageblocks that ended up mixed, counted by page_owner.
        text = files["pagetypeinfo"].decode()
        rows = text.split("Number of mixed blocks")[1].strip().splitlines()[1:]
        mixed = sum(int(x) for row in rows for x in row.split()[4:])
        assert mixed > 0, text
    if session.stem == "function_workload":
        assert s["workload"]["kind"] == "function" and s["workload"]["result"] == {"slots": 64, "live": 64}
