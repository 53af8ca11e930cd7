"""A real browser opens a seeded run's index.html from file://: no errors, every picture, every link.

Uses Debian's chromium and chromium-driver through selenium (the ``browser``
extra).  ``.ci/run`` installs chromium when it is missing; on a machine
without it the test is skipped and says why.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytest.importorskip("matplotlib", reason="pictures need the pictures extra (make install installs it)")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[browser]')")

from picsupport import run_small

from pageext_core.pictures.flamegraph import build_tree, parse_show_stacks

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no chromium/chromedriver on this machine: apt-get install chromium chromium-driver (.ci/run does)")


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    run_small(tmp)
    return tmp / "out"


def count_groups(node) -> int:
    return 1 + sum(count_groups(c) for c in node.children.values())


def test_index_page_loads_cleanly_with_every_picture_and_link(browser, run_dir: Path) -> None:
    browser.get((run_dir / "index.html").resolve().as_uri())
    assert browser.title == "pageext run: small"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
    assert sorted(src for src, _, _ in images) == ["fragmentation.png", "memmap.png"]
    for src, complete, width in images:
        assert complete and width > 0, src
    size = browser.execute_script(
        "const o = document.querySelector('object[data=\"flamegraph.svg\"]'); "
        "const r = o.getBoundingClientRect(); return [r.width, r.height];")
    assert size[0] > 100 and size[1] > 50
    hrefs = browser.execute_script("return Array.from(document.links).map(a => a.href);")
    assert len(hrefs) >= 15
    for href in hrefs:
        u = urlparse(href)
        assert u.scheme == "file", href
        assert Path(unquote(u.path)).is_file(), href
    browser.save_screenshot(str(run_dir / "screenshot.png"))


def test_flame_graph_has_one_rect_per_frame_group(browser, run_dir: Path) -> None:
    stacks = parse_show_stacks((run_dir / "page_owner_stacks" / "show_stacks").read_text())
    want = count_groups(build_tree((f, n, n) for f, n in stacks))
    browser.get((run_dir / "flamegraph.svg").resolve().as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    got = browser.execute_script(
        "return Array.from(document.querySelectorAll('g[id^=\"fg\"]'))"
        ".map(g => [g.querySelectorAll('path').length, g.querySelector('title').textContent]);")
    assert len(got) == want
    assert all(paths == 1 for paths, _ in got)
    assert all(" pages, " in t and t.endswith(" bytes") for _, t in got)
