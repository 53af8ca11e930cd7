"""Helpers for the session and CLI tests (tests/session); ``from sessionsupport import ...``.

``TINY`` is a session that needs no plugin at all (``[plugins] autoload =
false``): a 64 MiB machine, one CPU and a few hundred operations, so it runs
in a few tens of milliseconds.  Tests that need a client of their own boot it
through ``with_clients`` (the session runner's ``boot`` with extra
``plugins=``), so they do not depend on the real plugins' work in progress.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import pageext_core.session.runner as runner_mod
from pageext_core import BootParam, hookimpl
from pageext_core.page_ext import boot as real_boot
from pageext_core.reports import Finding

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "sessions"
PAGEEXT = Path(sys.executable).with_name("pageext")  # the installed console script of this venv
PLUGINS = ("debug_pagealloc", "guard", "page_owner")

TINY = """\
[session]
name = "tiny"

[machine]
memory = "64MiB"
cpus = 1

[plugins]
autoload = false

[workload]
seed = 1
operations = 400

[report]
reports = ["buddyinfo", "meminfo"]
"""


def write_session(directory: Path, text: str, name: str = "s.toml") -> Path:
    p = Path(directory) / name
    p.write_text(text, encoding="utf-8")
    return p


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative posix path → bytes), temporary files included."""
    d = Path(directory)
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def without_timing(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "timing"}


def load_summary(out: Path) -> dict[str, Any]:
    return json.loads((Path(out) / "summary.json").read_text())


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no plugin switched off by the caller's environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PAGEEXT_DISABLE_PLUGINS", "PAGEEXT_DISABLE_PLUGIN_AUTOLOAD")}
    env.update(extra)
    return env


def run_pageext(args: Sequence[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed console script as a real process."""
    return subprocess.run([str(PAGEEXT), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=clean_env(), timeout=timeout)


def with_clients(monkeypatch: pytest.MonkeyPatch, *clients: Any) -> None:
    """Make the session runner boot with these extra clients (as ``boot(plugins=...)`` does)."""
    monkeypatch.setattr(runner_mod, "boot", functools.partial(real_boot, plugins=list(clients)))


class ReportClient:
    """A client offering the reports it is given (name → function), always needed."""

    name = "testreports"

    def __init__(self, reports: Mapping[str, Callable[..., str]]) -> None:
        self._reports = dict(reports)

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_fields(self) -> Mapping[str, Any]:
        return {"mark": "u1"}

    @hookimpl
    def pageext_report(self) -> Mapping[str, Callable[..., str]]:
        return self._reports


class KnobClient:
    """Owns ``knob`` (int, TOML key ``level``) and ``knob_on`` (bool, TOML key ``on``); needed when knob_on."""

    name = "knob"

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("knob", "int", 0, "a number", key="level"),
                BootParam("knob_on", "bool", False, "switch", key="on")]

    @hookimpl
    def pageext_need(self, boot: Any) -> bool:
        self.seen = {"knob": boot["knob"], "knob_on": boot["knob_on"]}
        return bool(boot["knob_on"])

    @hookimpl
    def pageext_fields(self) -> Mapping[str, Any]:
        return {"value": "u4"}


class FindingClient:
    """Reports one finding per allocation of order >= ``order`` (so a run has findings)."""

    name = "finder"

    def __init__(self, order: int = 2) -> None:
        self.order = order
        self.machine: Any = None
        self.found: list[Finding] = []

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_fields(self) -> Mapping[str, Any]:
        return {}

    @hookimpl
    def pageext_flags(self) -> list[str]:
        return ["SEEN"]

    @hookimpl
    def pageext_init(self, machine: Any) -> None:
        self.machine = machine

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int) -> None:
        if order >= self.order:
            self.found.append(Finding("bad-page-state", pfn, self.machine.clock_ns, f"order {order} at {pfn:#x}"))

    @hookimpl
    def pageext_findings(self) -> list[Finding]:
        return list(self.found)
