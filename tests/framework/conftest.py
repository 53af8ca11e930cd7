"""Fixtures for the framework tests: throwaway installed distributions, and a subprocess to boot with them.

``fw_dists`` (once per session) writes two tiny distributions and installs
them with pip into a private ``--target`` directory:

* ``pageext-fw-probe`` 0.4.2, entry point ``fwprobe`` in ``pageext.clients``:
  a client owning the boot parameter ``fwprobe`` that counts its
  ``on_alloc`` calls;
* ``pageext-fw-broken`` 0.0.1, entry point ``fwbroken``: its module raises
  ``RuntimeError`` on import.

Both modules touch a marker file in ``$FW_MARKER_DIR`` when imported, so a
test can prove a blocked plugin was never imported.

The distributions are built by a 40-line in-tree PEP 517 backend
(``backend-path``), so pip needs no build dependency at all: setuptools is in
the venv but ``wheel`` is not, so setuptools cannot build a wheel offline,
and build isolation would need an index.  This way the install is offline
and takes about a second.

``boot_in_subprocess`` boots a machine in a fresh interpreter with
``PYTHONPATH`` pointing at those installs and returns what it saw as JSON;
a subprocess keeps every import (and discovery's cache of loaded entry
points) out of the test process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BACKEND = '''\
"""A minimal PEP 517 backend: packs one package into a pure-Python wheel (stdlib only)."""
import base64, hashlib, json, os, zipfile


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    meta = json.load(open("fwdist.json"))
    dist = meta["name"].replace("-", "_")
    info = f"{dist}-{meta['version']}.dist-info"
    files = {}
    for dirpath, _, names in sorted(os.walk(meta["package"])):
        for n in sorted(names):
            if n.endswith(".py"):
                path = os.path.join(dirpath, n)
                with open(path, "rb") as f:
                    files[path.replace(os.sep, "/")] = f.read()
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\\nName: {meta['name']}\\nVersion: {meta['version']}\\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: fwbackend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files[f"{info}/entry_points.txt"] = meta["entry_points"].encode()
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    wheel = f"{dist}-{meta['version']}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel
'''

PYPROJECT = """\
[build-system]
requires = []
build-backend = "fwbackend"
backend-path = ["."]
"""

MARKER = """\
import os as _os
if _os.environ.get("FW_MARKER_DIR"):
    open(_os.path.join(_os.environ["FW_MARKER_DIR"], {name!r}), "w").close()
"""

PROBE = MARKER.format(name="fwprobe-imported") + '''
from pageext_core import BootParam, hookimpl


class Probe:
    """Counts its on_alloc calls and the pages it saw in its own field."""

    def __init__(self):
        self.calls = 0
        self.view = None

    @hookimpl
    def pageext_params(self):
        return [BootParam("fwprobe", "bool", False, "turn the probe on", key="enabled")]

    @hookimpl
    def pageext_need(self, boot):
        return boot["fwprobe"]

    @hookimpl
    def pageext_fields(self):
        return {"hits": "u4"}

    @hookimpl
    def pageext_init(self, view):
        self.view = view

    @hookimpl
    def pageext_on_alloc(self, pfn, order):
        self.calls += 1
        self.view.block(pfn, order)["hits"] += 1

    @hookimpl
    def pageext_summary(self):
        return {"calls": self.calls}
'''

BROKEN = MARKER.format(name="fwbroken-imported") + '''
raise RuntimeError("fwbroken: import-time failure")
'''

DISTS = {
    "probe": {"name": "pageext-fw-probe", "version": "0.4.2", "package": "pageext_fw_probe",
              "entry_points": "[pageext.clients]\nfwprobe = pageext_fw_probe:Probe\n", "source": PROBE},
    "broken": {"name": "pageext-fw-broken", "version": "0.0.1", "package": "pageext_fw_broken",
               "entry_points": "[pageext.clients]\nfwbroken = pageext_fw_broken:Broken\n", "source": BROKEN},
}

RUNNER = textwrap.dedent('''\
    """Boot with the installed clients; print what happened as JSON."""
    import json, os, sys
    import pageext_core as pc
    from pageext_core.mm import MiB
    from pageext_core.mm.gfp import GFP_KERNEL

    opts = json.loads(sys.argv[1])
    try:
        pe = pc.boot(pc.MachineConfig(memory=256 * MiB), opts.get("cmdline", ""), blocked=opts.get("blocked", ()),
                     strict=opts.get("strict", False), autoload=opts.get("autoload"))
    except pc.PluginLoadError as exc:
        print(json.dumps({"error": str(exc)}))
        sys.exit(0)
    m = pe.machine
    for _ in range(opts.get("allocs", 0)):
        m.free_pages(m.alloc_pages(GFP_KERNEL, 0), 0)
    out = {
        "clients": {c.name: c.describe() for c in pe.clients},
        "enabled": pe.enabled,
        "problems": pe.problems,
        "warnings": [t for _, lvl, t in m.log.lines if lvl == "warn"],
        "summaries": pe.client_summaries(),
        "record_size": pe.record_size,
        "markers": sorted(os.listdir(os.environ["FW_MARKER_DIR"])),
        "modules": sorted(n for n in sys.modules if n.startswith("pageext_fw_")),
    }
    print(json.dumps(out))
''')


@dataclass
class Dists:
    site: Path  # the --target directory: put it on PYTHONPATH
    runner: Path


def _write_dist(root: Path, meta: dict[str, str]) -> Path:
    src = root / meta["name"]
    pkg = src / meta["package"]
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(meta["source"])
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "fwbackend.py").write_text(BACKEND)
    (src / "fwdist.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "source"}))
    return src


@pytest.fixture(scope="session")
def fw_dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    root = tmp_path_factory.mktemp("fw_dists")
    srcs = [_write_dist(root / "src", meta) for meta in DISTS.values()]
    site = root / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "--no-compile", "--target", str(site), *map(str, srcs)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode:
        pytest.fail(f"installing the throwaway distributions failed:\n{done.stdout}\n{done.stderr}")
    runner = root / "fw_runner.py"
    runner.write_text(RUNNER)
    return Dists(site=site, runner=runner)


@pytest.fixture
def boot_in_subprocess(fw_dists: Dists, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """``boot_in_subprocess(cmdline=..., blocked=[...], strict=..., allocs=N, env={...})`` → JSON dict."""

    def run(env: dict[str, str] | None = None, **opts: Any) -> dict[str, Any]:
        markers = tmp_path / f"markers-{len(list(tmp_path.iterdir()))}"
        markers.mkdir()
        e = {k: v for k, v in os.environ.items() if not k.startswith("PAGEEXT_")}
        e["PYTHONPATH"] = os.pathsep.join([str(fw_dists.site)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
        e["FW_MARKER_DIR"] = str(markers)
        e.update(env or {})
        done = subprocess.run([sys.executable, str(fw_dists.runner), json.dumps(opts)], env=e,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run
