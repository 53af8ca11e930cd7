"""`pageext new-plugin`: the scaffold installs like a user's distribution, is discovered, and its tests pass."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pageext_core.scaffold import ScaffoldError, check_name, create, files_for

BIN = Path(sys.executable).parent


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """``pageext new-plugin page_heat`` run as a user would, then pip-installed into a private target."""
    work = tmp_path_factory.mktemp("scaffold")
    made = run([str(BIN / "pageext"), "new-plugin", "page_heat", "--dir", str(work)])
    assert made.returncode == 0, made.stderr
    assert "created" in made.stdout and "entry point 'page_heat'" in made.stdout
    site = work / "site"
    pip = run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "--target", str(site), str(work / "page_heat")])
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PAGEEXT_DISABLE_PLUGINS", "PAGEEXT_DISABLE_PLUGIN_AUTOLOAD")}
    env["PYTHONPATH"] = str(site)
    return work / "page_heat", env


def test_scaffold_files(tmp_path: Path) -> None:
    target = create("page_heat", tmp_path)
    names = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert names == ["README.md", "pageext_page_heat/__init__.py", "pageext_page_heat/plugin.py",
                     "pageext_page_heat/py.typed", "pyproject.toml", "tests/test_plugin.py"]
    pyproject = (target / "pyproject.toml").read_text()
    assert 'name = "pageext-page-heat"' in pyproject
    assert '[project.entry-points."pageext.clients"]\npage_heat = "pageext_page_heat.plugin:PageHeat"' in pyproject


def test_installed_scaffold_is_discovered_and_enabled(installed: tuple[Path, dict[str, str]]) -> None:
    _, env = installed
    out = run([str(BIN / "pageext"), "plugins", "--json", "--boot", "page_heat=on"], env=env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    [me] = [p for p in data["plugins"] if p["name"] == "page_heat"]
    assert (me["distribution"], me["version"], me["enabled"]) == ("pageext-page-heat", "0.1.0", True)
    assert me["fields"] == {"count": "<u4"} and me["flag_bits"] == {"SEEN": me["flag_bits"]["SEEN"]}
    assert data["page_ext_bytes"] > 0


def test_installed_scaffold_report_through_the_cli(installed: tuple[Path, dict[str, str]]) -> None:
    _, env = installed
    out = run([str(BIN / "pageext"), "report", "page_heat", "--boot", "page_heat=on",
               "--set", "workload.operations=1500", "--memory", "256MiB"], env=env)
    assert out.returncode == 0, out.stderr
    first, *rows = out.stdout.splitlines()
    assert first.startswith("page_heat: ") and first.endswith(" allocations seen")
    assert rows and all(r.startswith("pfn 0x") and " allocated " in r for r in rows)


def test_scaffold_own_tests_pass_when_installed(installed: tuple[Path, dict[str, str]]) -> None:
    project, env = installed
    out = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], env=env, cwd=project)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "4 passed" in out.stdout


@pytest.mark.parametrize("bad", ["Bad", "9lives", "with-dash", "class", "trailing_", "", "x" * 50])
def test_bad_names_are_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="use lower case letters"):
        check_name(bad)
    with pytest.raises(ScaffoldError):
        files_for(bad)
    assert not any(tmp_path.iterdir())


def test_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "page_heat").mkdir()
    (tmp_path / "page_heat" / "mine.txt").write_text("keep")
    with pytest.raises(ScaffoldError, match="already exists"):
        create("page_heat", tmp_path)
    assert (tmp_path / "page_heat" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page_heat"]  # no temporary folder left behind


def test_cli_refuses_bad_name_with_exit_2(tmp_path: Path) -> None:
    out = run([str(BIN / "pageext"), "new-plugin", "Bad-Name", "--dir", str(tmp_path)])
    assert out.returncode == 2 and out.stderr.startswith("pageext: error: plugin name 'Bad-Name'")
    assert not any(tmp_path.iterdir())
