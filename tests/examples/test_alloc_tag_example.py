"""The third-party example plugin ``examples/plugins/alloc_tag``, installed and run the way a user would.

Once per test session the distribution is installed with pip from its own
source directory into a private ``--target`` directory (offline, no
dependencies: pageext-core is already in the venv); nothing is installed
into the venv.  The source tree is copied first so that setuptools' build
directories land in the temporary directory, not in the repository.

Then, in fresh interpreters with ``PYTHONPATH`` pointing at that install:

* ``pageext plugins --json`` finds it through its entry point;
* ``pageext run`` on a small seeded session writes an ``allocinfo`` report
  that accounts for exactly the blocks the workload still holds (and, with
  page_owner on too, agrees with page_owner's dump call site by call site);
* the plugin's own test suite (``examples/plugins/alloc_tag/tests``) runs
  against the installed copy, so ``make test`` exercises it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pageext_core.mm.constants import PAGE_SIZE
from pageext_core.session.callsites import BUILTIN_SITES

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "examples" / "plugins" / "alloc_tag"
PAGEEXT = Path(sys.executable).with_name("pageext")
TIMEOUT = 600

# Each built-in call site's tag, worked out by hand (first frame outside the
# page allocator; kernel-style frames have no line, written as 0).
BUILTIN_TAGS = {
    "slab": "mm/slub.c:0 func:allocate_slab",
    "anon": "mm/memory.c:0 func:do_anonymous_page",
    "pagecache": "mm/readahead.c:0 func:page_cache_ra_unbounded",
    "thp": "mm/huge_memory.c:0 func:do_huge_pmd_anonymous_page",
    "vmalloc": "mm/vmalloc.c:0 func:__vmalloc_area_node",
    "pgtable": "arch/x86/mm/pgtable.c:0 func:pte_alloc_one",
    "skb": "mm/page_frag_cache.c:0 func:__page_frag_alloc_align",
    "dentry": "mm/slub.c:0 func:allocate_slab",
    "pcpu": "mm/percpu-vm.c:0 func:pcpu_populate_chunk",
    "dma32": "kernel/dma/direct.c:0 func:dma_direct_alloc",
    "pipe": "fs/pipe.c:0 func:pipe_write",
}

SESSION = """\
[session]
name = "alloc_tag_example"
description = "The synthetic workload with memory allocation profiling on."

[machine]
memory = "256MiB"
cpus = 2

[boot]
cmdline = "{cmdline}"

[workload]
seed = 7
operations = 6000
lifetime = 800
leak_fraction = 0.05

[report]
reports = {reports}
"""


def _pip_install(src: Path, target: Path, isolated: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
           "--no-compile", "--quiet", "--target", str(target), str(src)]
    if not isolated:  # nothing to fetch at all: stay off every index
        cmd[4:4] = ["--no-build-isolation", "--no-index"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution installed by pip into a private directory; its path."""
    tmp = tmp_path_factory.mktemp("alloc_tag_install")
    src = tmp / "src"
    shutil.copytree(PLUGIN_DIR, src, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "tests"))
    target = tmp / "site"
    # Offline, with the venv's setuptools and wheel (both in the dev extras):
    # a failure here is a real packaging problem, so it fails the test.
    done = _pip_install(src, target, isolated=False)
    if done.returncode != 0:
        pytest.fail("pip could not build pageext-alloc-tag:\n" + done.stderr.strip()[-2000:])
    return target


def env_with(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for k in ("PAGEEXT_DISABLE_PLUGINS", "PAGEEXT_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(k, None)
    return env


def pageext(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [str(PAGEEXT)] if PAGEEXT.exists() else [sys.executable, "-m", "pageext_core.cli"]
    done = subprocess.run(cmd + list(args), capture_output=True, text=True, env=env_with(site), cwd=cwd,
                          timeout=TIMEOUT)
    assert done.returncode == 0, f"pageext {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def run_session(site: Path, tmp_path: Path, cmdline: str, reports: list[str]) -> tuple[Path, dict[str, Any]]:
    session = tmp_path / "session.toml"
    session.write_text(SESSION.format(cmdline=cmdline, reports=json.dumps(reports)))
    out = tmp_path / "out"
    pageext(site, "run", str(session), "--out", str(out), "--quiet", cwd=tmp_path)
    return out, json.loads((out / "summary.json").read_text())


def allocinfo_rows(text: str) -> list[tuple[int, int, str]]:
    """Rows of an allocinfo file, read with this test's own parser (not the plugin's)."""
    lines = text.split("\n")
    assert lines[:2] == ["allocinfo - version: 1.0", "#     <size>  <calls> <tag info>"]
    assert lines[-1] == ""  # ends with a newline
    rows = []
    for line in lines[2:-1]:
        m = re.fullmatch(r"([ \d]{11}\d) ([ \d]{7}\d) (\S.*\S) ", line)  # %12lli %8llu tag, trailing space
        assert m, f"bad allocinfo row {line!r}"
        rows.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return rows


# -- installed like a user would -------------------------------------------------------------------------


def test_pip_installs_the_package_and_its_entry_point(site):
    assert (site / "pageext_alloc_tag" / "plugin.py").is_file()
    assert (site / "pageext_alloc_tag" / "py.typed").is_file()
    (dist,) = site.glob("pageext_alloc_tag-0.1.0.dist-info")
    eps = (dist / "entry_points.txt").read_text()
    assert "[pageext.clients]" in eps and "alloc_tag = pageext_alloc_tag.plugin:AllocTag" in eps


def test_pageext_plugins_lists_it(site, tmp_path):
    done = pageext(site, "plugins", "--json", "--boot", "sysctl.vm.mem_profiling=1", cwd=tmp_path)
    plugins = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    p = plugins["alloc_tag"]
    assert (p["distribution"], p["version"], p["source"]) == ("pageext-alloc-tag", "0.1.0", "entry point")
    assert p["entry_point"] == "pageext_alloc_tag.plugin:AllocTag"
    assert p["enabled"] is True and p["fields"] == {"tag": "<u4"} and p["size"] == 4
    assert [b["name"] for b in p["boot_params"]] == ["sysctl.vm.mem_profiling"]
    assert {"page_owner", "debug_pagealloc", "guard"} <= set(plugins)  # the in-tree ones are still there


# -- a session with the synthetic workload --------------------------------------------------------------------


def test_allocinfo_accounts_for_every_block_the_workload_holds(site, tmp_path):
    out, summary = run_session(site, tmp_path, "sysctl.vm.mem_profiling=1", ["allocinfo", "meminfo"])
    rows = allocinfo_rows((out / "allocinfo").read_text())
    w, free, pe = summary["workload"], summary["free_pages"], summary["page_ext"]
    assert w["operations"] == 6000 and w["live_blocks"] > 0 and w["failures"] == 0

    calls = sum(c for _, c, _ in rows)
    nbytes = sum(b for b, _, _ in rows)
    # Every block allocated after boot is the workload's, and each is counted once.
    assert calls == w["live_blocks"]
    assert nbytes == w["live_pages"] * PAGE_SIZE
    # ... and the allocator agrees: allocated pages = the workload's + the page_ext tables (untagged, from boot).
    assert free["allocated_pages"] == w["live_pages"] + pe["simulated_pages"]
    assert summary["clients"]["alloc_tag"]["live_calls"] == calls
    assert summary["clients"]["alloc_tag"]["live_bytes"] == nbytes

    # One row per distinct call site, each one a built-in site's tag.
    tags = [t for _, _, t in rows]
    assert len(tags) == len(set(tags))
    assert set(tags) <= set(BUILTIN_TAGS.values())
    assert len(tags) >= 5  # the workload used most sites
    assert all(b >= 0 and c >= 0 and b >= c * PAGE_SIZE for b, c, _ in rows)

    # The page_ext layout: 4 bytes per page, nothing else enabled.
    assert pe["record_size"] == 4
    assert [p["name"] for p in summary["plugins"] if p["enabled"]] == ["alloc_tag"]
    assert "Memory allocation profiling is enabled without compression and is turned on!" in (
        out / "dmesg.log").read_text()


def owner_dump_by_tag(text: str) -> dict[str, tuple[int, int]]:
    """page_owner's dump grouped by the call site of each record's stack: {tag: (bytes, blocks)}."""
    tag_of_stack = {}
    for s in BUILTIN_SITES:
        for v in range(len(s.callers)):
            tag_of_stack[s.stack(v)[:16]] = BUILTIN_TAGS[s.name]
    out: dict[str, list[int]] = {}
    for record in text.split("\n\n"):
        if not record.strip():
            continue
        lines = record.split("\n")
        order = int(re.match(r"Page allocated via order (\d+),", lines[0]).group(1))
        frames = tuple(line[1:] for line in lines[2:] if line.startswith(" "))
        if frames[0].startswith("register_early_stack+"):
            continue  # pages in use before page_owner's init (6.12's early records): not tagged allocations
        row = out.setdefault(tag_of_stack[frames], [0, 0])
        row[0] += PAGE_SIZE << order
        row[1] += 1
    return {t: (b, c) for t, (b, c) in out.items()}


def test_allocinfo_agrees_with_page_owner_call_site_by_call_site(site, tmp_path):
    out, summary = run_session(site, tmp_path, "sysctl.vm.mem_profiling=1 page_owner=on",
                               ["allocinfo", "page_owner"])
    rows = allocinfo_rows((out / "allocinfo").read_text())
    live = {t: (b, c) for b, c, t in rows if c}
    assert live == owner_dump_by_tag((out / "page_owner").read_text())
    owner = summary["clients"]["page_owner"]
    early = owner["early_allocated_pages"]  # one order-0 record per page
    assert sum(c for _, c in live.values()) == owner["allocated_records"] - early == summary["workload"]["live_blocks"]
    assert sum(b for b, _ in live.values()) == (owner["allocated_pages"] - early) * PAGE_SIZE
    # Layout: the flags word, alloc_tag's 4 bytes at 8, page_owner's 64 at 16 (its 8-byte alignment).
    offsets = {p["name"]: (p["offset"], p["size"]) for p in summary["plugins"] if p["enabled"]}
    assert offsets == {"alloc_tag": (8, 4), "page_owner": (16, 64)}
    assert summary["page_ext"]["record_size"] == 80


# -- the plugin's own tests, against the installed copy ------------------------------------------------------------


def test_plugin_test_suite_passes_against_the_installed_copy(site, tmp_path):
    env = env_with(site)
    where = subprocess.run([sys.executable, "-c", "import pageext_alloc_tag; print(pageext_alloc_tag.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=TIMEOUT)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN_DIR / "tests")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=TIMEOUT)
    assert done.returncode == 0, f"the plugin's tests failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert re.search(r"\d+ passed", done.stdout) and " failed" not in done.stdout
