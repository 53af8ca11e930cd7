"""`make dist` builds four wheels that work without the checkout.

The wheels are built by the Makefile's own ``dist`` recipe (with this
interpreter's environment and a temporary DISTDIR, so nothing in the checkout's
.venv or dist/ changes). A fresh venv (no system site-packages, nothing of
pageext in it) gets the core wheel and the page_owner wheel; a small session
with page_owner on then runs from a directory outside the checkout, and
page_owner's report must be there. Uninstalling the plugin must make it
disappear from ``pageext plugins``.

Offline on purpose: the dependencies (numpy, pluggy, click, tqdm and what they
need) are not downloaded. The fresh venv sees only those distributions, linked
one by one from this environment into a directory its ``deps.pth`` names, and
pip installs the wheels with ``--no-index``: a wheel that asked for anything
else would fail to install.
"""
from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
WHEELS = {"pageext_core", "pageext_page_owner", "pageext_debug_pagealloc", "pageext_guard"}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def clean_env() -> dict[str, str]:
    """The environment minus anything that would let the checkout or the outer venv leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PAGEEXT", "VIRTUAL_ENV"))}
    env["PIP_NO_INDEX"] = "1"
    env["PAGEEXT_STRICT"] = "1"  # a plugin that fails to load from its wheel is an error, not a warning
    return env


def dependency_closure(names: list[str]) -> list[md.Distribution]:
    """These distributions of the running environment and everything they need here (markers applied)."""
    seen: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = md.distribution(name)
        seen[key] = dist
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def link_dependencies(target: Path) -> None:
    """Symlink the core's runtime dependencies (packages and metadata) into ``target``."""
    target.mkdir()
    core = [Requirement(r) for r in md.requires("pageext-core") or ()]
    wanted = [r.name for r in core if r.marker is None or r.marker.evaluate({"extra": ""})]
    for dist in dependency_closure(wanted):
        assert not dist.metadata["Name"].lower().startswith("pageext"), dist.metadata["Name"]
        base = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            link = target / top
            if not link.exists():
                link.symlink_to(base / top)


@pytest.mark.skipif(MAKE is None, reason="GNU make is not installed")  # `make test` has it
def test_wheels_install_run_and_uninstall_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    bin_dir = Path(sys.executable).parent
    # The Makefile's recipe, run with this interpreter; STAMP= drops the .venv prerequisite.
    make_env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    run([MAKE, "-s", "dist", f"DISTDIR={dist}", f"BIN={bin_dir}", "STAMP="], cwd=ROOT, env=make_env)
    wheels = {p.name.split("-")[0]: p for p in dist.glob("*.whl")}
    assert set(wheels) == WHEELS, sorted(p.name for p in dist.iterdir())

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    link_dependencies(tmp_path / "deps")
    (site / "deps.pth").write_text(str(tmp_path / "deps") + "\n")

    env = clean_env()
    work = tmp_path / "elsewhere"  # not the checkout: nothing can be imported from it by accident
    work.mkdir()
    pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--no-index", str(wheels["pageext_core"]), str(wheels["pageext_page_owner"])],
        env=env, cwd=work)

    where = run([str(py), "-c", "import pageext_core, pageext_page_owner as p; "
                 "print(pageext_core.__file__); print(p.__file__)"], env=env, cwd=work).stdout.split()
    assert all(Path(w).is_relative_to(site) for w in where), where

    pageext = str(env_dir / "bin" / "pageext")
    listed = json.loads(run([pageext, "plugins", "--json"], env=env, cwd=work).stdout)["plugins"]
    assert [(p["name"], p["distribution"]) for p in listed] == [("page_owner", "pageext-page-owner")]

    out = work / "out"
    run([pageext, "run", "--memory", "64MiB", "--boot", "page_owner=on", "--set", "workload.operations=2000",
         "--out", str(out), "-q"], env=env, cwd=work)
    report = (out / "page_owner").read_text()
    assert report.startswith("Page allocated via order "), report[:200]
    assert "\nPFN 0x" in report

    run([*pip, "uninstall", "-y", "pageext-page-owner"], env=env, cwd=work)
    assert json.loads(run([pageext, "plugins", "--json"], env=env, cwd=work).stdout)["plugins"] == []
    gone = run([pageext, "plugins"], env=env, cwd=work).stdout
    assert "page_owner" not in gone, gone
    assert not (env_dir / "bin" / "page_owner_sort").exists()
