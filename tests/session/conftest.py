"""Fixtures for the session and CLI tests.

- No plugin is switched off by the caller's environment.
- ``tmp_path`` lives in /dev/shm when it can: every report is written with
  an fsync (atomic writes), and on a busy disk an fsync can take seconds,
  which would make the suite's run time depend on other people's I/O.  The
  code paths are the same on tmpfs (fsync is called, and tested to fail).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SHM = Path("/dev/shm")


@pytest.fixture(autouse=True)
def _plugins_from_the_environment_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGEEXT_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("PAGEEXT_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="pageext-session-test-", dir=SHM))
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("session")
