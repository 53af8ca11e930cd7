"""The Makefile reuses a .venv only when it is sound, and rebuilds it otherwise.

Each case lays out a project skeleton (the Makefile, empty pyproject.toml
files) in a temporary directory, with fake interpreters: tiny shell scripts
that print an identity line the way a real python would answer the
Makefile's identity probe. ``make -n`` then shows what ``make install``
would do, without running it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
ID = "/opt/python/bin/python3.11 3.11.7"
OTHER = "/usr/bin/python3.11 3.11.2"

pytestmark = pytest.mark.skipif(MAKE is None, reason="GNU make is not installed")  # CI and `make test` have it


def fake_python(path: Path, identity: str | None) -> Path:
    """A script answering the identity probe with ``identity`` (``None``: it fails like a broken python)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f'echo "{identity}"\n' if identity is not None else "exit 1\n"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for d in (".", "plugins/page_owner", "plugins/debug_pagealloc", "plugins/guard"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
        (tmp_path / d / "pyproject.toml").write_text("")
    fake_python(tmp_path / "host" / "python3", ID)
    return tmp_path


def venv(project: Path, identity: str | None, stamp: str | None, stamp_fresh: bool = True) -> None:
    """A .venv whose python answers ``identity``, with a stamp holding ``stamp`` (None: no stamp)."""
    py = fake_python(project / ".venv" / "bin" / "python", identity)
    old = 1_000_000_000
    for p in project.rglob("pyproject.toml"):
        os.utime(p, (old, old))
    os.utime(py, (old + 10, old + 10))
    cfg = project / ".venv" / "pyvenv.cfg"  # what `python -m venv` writes; the Makefile's venv target
    cfg.write_text("home = /opt/python/bin\n")
    os.utime(cfg, (old + 10, old + 10))
    if stamp is not None:
        s = project / ".venv" / ".pageext-installed"
        s.write_text(stamp + "\n")
        t = old + 20 if stamp_fresh else old + 5
        os.utime(s, (t, t))
        if not stamp_fresh:
            os.utime(project / "pyproject.toml", (old + 30, old + 30))


def plan(project: Path, python: str = "host/python3") -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # not the outer make's
    done = subprocess.run([MAKE, "-n", "install", f"PYTHON={python}"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_no_venv_is_created_and_installed(project):
    out = plan(project)
    assert "rebuilding" not in out
    assert "host/python3 -m venv .venv" in out
    assert ".venv/bin/python -m pip install" in out


def test_a_sound_venv_is_reused(project):
    venv(project, ID, ID)
    out = plan(project)
    assert "-m venv" not in out and "pip install" not in out and "rm -rf" not in out


def test_a_changed_pyproject_reinstalls_into_the_same_venv(project):
    venv(project, ID, ID, stamp_fresh=False)
    out = plan(project)
    assert "pip install" in out
    assert "rm -rf" not in out and "-m venv" not in out


def test_a_venv_of_another_python_is_rebuilt(project):
    venv(project, OTHER, OTHER)
    out = plan(project)
    assert f"rebuilding .venv: .venv was made by {OTHER}, not by host/python3 ({ID})" in out
    assert out.index("rm -rf .venv") < out.index("host/python3 -m venv .venv") < out.index("pip install")


def test_a_venv_whose_python_does_not_run_is_rebuilt(project):
    venv(project, None, ID)
    out = plan(project)
    assert "rebuilding .venv: .venv/bin/python does not run" in out
    assert "rm -rf .venv" in out and "pip install" in out


def test_an_unfinished_install_is_rebuilt(project):
    venv(project, ID, None)  # pip failed or was interrupted: no stamp
    out = plan(project)
    assert "rebuilding .venv: the last install into .venv did not finish" in out
    assert "rm -rf .venv" in out and "pip install" in out


def test_a_stamp_of_another_interpreter_counts_as_unfinished(project):
    venv(project, ID, OTHER)  # e.g. the venv was recreated by hand after the install
    assert "the last install into .venv did not finish" in plan(project)


def test_a_python_that_does_not_run_leaves_a_sound_venv_alone(project):
    venv(project, ID, ID)
    fake_python(project / "host" / "broken", None)
    out = plan(project, python="host/broken")
    assert "rm -rf" not in out and "pip install" not in out


def test_the_stamp_is_written_only_after_pip_succeeded(project):
    out = plan(project).splitlines()
    pip = next(i for i, line in enumerate(out) if "pip install" in line)
    stamp = next(i for i, line in enumerate(out) if "> .venv/.pageext-installed.tmp" in line)
    assert pip < stamp and "&& mv .venv/.pageext-installed.tmp .venv/.pageext-installed" in out[stamp]


# A host python good enough for a real `make install`: it answers the identity
# probe, and `-m venv DIR` makes bin/python a symlink (as the real venv module
# does) to an interpreter file much older than any stamp; `-m pip` logs its call.
REAL_RUN_PYTHON = """#!/bin/sh
here="{host}"
if [ "$1" = "-c" ]; then echo "{ident}"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && ln -sf "$here/old-python" "$3/bin/python" && echo "home = $here" > "$3/pyvenv.cfg"
    exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "pip $*" >> "$here/pip.log"; exit 0; fi
exit 2
"""


def test_a_rebuilt_venv_is_really_installed_into(project):
    """Run make for real: after a rebuild, pip must run even though bin/python (a symlink) looks old."""
    host = project / "host"
    script = REAL_RUN_PYTHON.format(ident=ID, host=host.resolve())
    for name in ("python3", "old-python"):
        (host / name).write_text(script)
        (host / name).chmod(0o755)
    os.utime(host / "old-python", (1_000_000_000, 1_000_000_000))
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}

    def install() -> subprocess.CompletedProcess[str]:
        return subprocess.run([MAKE, "install", "PYTHON=host/python3"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=60)

    assert install().returncode == 0
    stamp = project / ".venv" / ".pageext-installed"
    assert stamp.read_text().strip() == ID
    stamp.write_text("")  # an install that did not finish
    (host / "pip.log").unlink()
    done = install()
    assert done.returncode == 0, done.stderr
    assert "rebuilding .venv: the last install into .venv did not finish" in done.stdout
    assert (host / "pip.log").read_text().count("pip -m pip install") == 1
    assert stamp.read_text().strip() == ID
