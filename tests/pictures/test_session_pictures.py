"""Pictures written by a session: which files, deterministic bytes, samples that change nothing, errors."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="pictures need the pictures extra (make install installs it)")

from click.testing import CliRunner
from picsupport import SMALL, fingerprint_tools, run_small, write_session

from pageext_core.cli import main
from pageext_core.mm import stats
from pageext_core.mm.geometry import MachineConfig
from pageext_core.mm.gfp import GFP_KERNEL
from pageext_core.page_ext import boot
from pageext_core.pictures.samples import Sampler
from pageext_core.session.config import SessionError, load_session

PICTURE_FILES = ["memmap.png", "fragmentation.png", "samples.csv", "flamegraph.svg", "index.html"]


def test_every_picture_is_written_and_listed(tmp_path: Path) -> None:
    o = run_small(tmp_path)
    out = tmp_path / "out"
    for name in PICTURE_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert o.summary["reports"][-len(PICTURE_FILES):] == PICTURE_FILES
    assert (out / "memmap.png").read_bytes().startswith(b"\x89PNG")
    page = (out / "index.html").read_text()
    for name in ("memmap.png", "fragmentation.png", "flamegraph.svg", "summary.json", "dmesg.log", "samples.csv",
                 "page_owner_leaks", "unusable_index"):
        assert f'href="{name}"' in page or f'src="{name}"' in page or f'data="{name}"' in page, name
    assert "use-after-free" in page  # the finding, with its report
    assert "page_owner=on debug_pagealloc=on" in page


def test_bytes_are_identical_run_to_run(tmp_path: Path) -> None:
    run_small(tmp_path, "a")
    run_small(tmp_path, "b")
    for name in PICTURE_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_sampling_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    """With and without samples, the machine ends in the same state and the reports are the same bytes."""
    fingerprint, changed = fingerprint_tools()
    with_samples = run_small(tmp_path, "with")
    without = run_small(tmp_path, "without", overrides=('report.pictures=[]',))
    diff = changed(fingerprint(with_samples.page_ext), fingerprint(without.page_ext))
    # the machine names call-outs by id() of the hook functions: those keys differ between any two boots
    assert [k for k in diff if not k.startswith("pe.machine.buddy._callout_names[")] == []
    for name in ("buddyinfo", "pagetypeinfo", "page_owner", "extfrag_index", "dmesg.log"):
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes(), name


def test_a_sample_changes_nothing() -> None:
    fingerprint, changed = fingerprint_tools()
    pe = boot(MachineConfig(memory=64 << 20), "page_owner=on debug_pagealloc=on debug_guardpage_minorder=1")
    for _ in range(50):
        pe.machine.alloc_pages(GFP_KERNEL, 0)  # some pages on per-CPU lists: a drain would show
    s = Sampler(pe)
    before = fingerprint(pe)
    s(7)
    assert changed(before, fingerprint(pe)) == []
    assert len(s.rows) == 1


def test_samples_csv_ends_with_the_final_state(tmp_path: Path) -> None:
    o = run_small(tmp_path)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "samples.csv").read_text())))
    ops = [int(r["op"]) for r in rows]
    assert ops[0] == 0 and ops[-1] == o.workload.operations
    assert all(b - a <= 100 for a, b in zip(ops, ops[1:])) and ops == sorted(set(ops))
    last = rows[-1]
    m = o.page_ext.machine
    per = stats.free_blocks(m).sum(axis=1)
    for z in stats.populated_zones(m):
        lab = f"n{z.node}_{z.name}"
        assert [int(last[f"free_{lab}_o{k}"]) for k in range(m.nr_orders)] == [int(per[z.index, k]) << k
                                                                              for k in range(m.nr_orders)]
    # the text reports and the last sample agree
    report = (tmp_path / "out" / "unusable_index").read_text().splitlines()
    for z, line in zip(stats.populated_zones(m), report):
        assert line.split()[4:] == [last[f"unusable_n{z.node}_{z.name}_o{k}"] for k in range(m.nr_orders)]
    assert int(last["alloc_failures"]) == m.nr_alloc_failures
    assert int(last["findings"]) == len(o.page_ext.findings())


def test_no_flame_graph_without_page_owner(tmp_path: Path) -> None:
    o = run_small(tmp_path, overrides=("boot.cmdline=\"debug_pagealloc=on\"",))
    assert not (tmp_path / "out" / "flamegraph.svg").exists()
    assert "flamegraph.svg" not in o.summary["reports"]
    assert "No flame graph: page_owner is off" in (tmp_path / "out" / "index.html").read_text()


def test_pictures_of_an_earlier_run_are_removed(tmp_path: Path) -> None:
    run_small(tmp_path)
    run_small(tmp_path, overrides=('report.pictures=["memmap"]',))
    assert (tmp_path / "out" / "memmap.png").is_file()
    for name in ("fragmentation.png", "samples.csv", "flamegraph.svg", "index.html"):
        assert not (tmp_path / "out" / name).exists(), name


def test_pictures_all_as_a_string(tmp_path: Path) -> None:
    sess = load_session(write_session(tmp_path), overrides=["report.pictures=all"])
    assert sess.report.pictures == ["memmap", "fragmentation", "flamegraph", "index"]
    # without the key a run draws nothing but still leaves its page (plain HTML, no matplotlib)
    assert load_session(write_session(tmp_path, SMALL.replace('pictures = ["all"]', ""))).report.pictures == ["index"]


def test_unknown_picture_is_an_error_at_its_key(tmp_path: Path) -> None:
    p = write_session(tmp_path, SMALL.replace('pictures = ["all"]', 'pictures = ["memap"]'))
    with pytest.raises(SessionError) as ei:
        load_session(p)
    line = SMALL.splitlines().index('pictures = ["all"]') + 1
    assert str(ei.value) == (f"{p}:{line}:1: [report] pictures: no picture 'memap'; did you mean 'memmap'? "
                             "(pictures: memmap, fragmentation, flamegraph, index, or \"all\")")


def test_sample_every_must_be_positive(tmp_path: Path) -> None:
    p = write_session(tmp_path, SMALL.replace("sample_every = 100", "sample_every = 0"))
    with pytest.raises(SessionError, match=r"sample_every.*0 is out of range \(1\.\.inf\)"):
        load_session(p)


def test_a_misspelt_report_key_gets_a_suggestion(tmp_path: Path) -> None:
    p = write_session(tmp_path, SMALL.replace("sample_every = 100", "sample_evry = 100"))
    with pytest.raises(SessionError, match="sample_every"):
        load_session(p)


@pytest.mark.parametrize("args", [["plugins"], ["run", "--quiet", "--set", "workload.operations=200"]])
def test_matplotlib_is_not_imported_without_pictures(tmp_path: Path, args: list[str]) -> None:
    code = ("import sys; from pageext_core.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, *args, *(["--out", str(tmp_path / "o")] if "run" in args else [])],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"
    if "run" in args:  # every run still leaves its page, drawn without matplotlib
        page = (tmp_path / "o" / "index.html").read_text()
        assert "No pictures were drawn in this run" in page and "report.pictures=all" in page
        assert not any((tmp_path / "o" / n).exists() for n in ("memmap.png", "fragmentation.png", "flamegraph.svg"))


def test_view_opens_the_page_in_the_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_small(tmp_path)
    seen = tmp_path / "opened"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    script.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(script))
    import webbrowser
    monkeypatch.setattr(webbrowser, "_tryorder", None)  # re-read BROWSER
    r = CliRunner().invoke(main, ["view", str(tmp_path / "out")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    url = (tmp_path / "out" / "index.html").resolve().as_uri()
    assert r.stdout.strip() == url
    assert seen.read_text().strip() == url


def test_view_without_a_page_says_how_to_make_one(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["view", str(tmp_path)])
    assert r.exit_code == 2
    assert "no such file; write it with pageext run --set report.pictures=all" in r.output


def test_memmap_overlays_the_pages_of_a_stack(tmp_path: Path) -> None:
    plain = run_small(tmp_path, "plain")
    run_small(tmp_path, "overlay", overrides=('report.params.memmap.stack="filemap_read"',))
    assert (tmp_path / "plain" / "memmap.png").read_bytes() != (tmp_path / "overlay" / "memmap.png").read_bytes()
    from pageext_core.pictures.memmap import stack_pages
    assert stack_pages((tmp_path / "plain" / "page_owner").read_text(), "filemap_read").size > 0
    assert "memmap" not in plain.session.report.params  # a picture's parameters are not a report's


def test_memmap_parameters_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match=r"picture 'memmap' has no parameter 'stak'; did you mean 'stack'\?"):
        load_session(write_session(tmp_path), overrides=['report.params.memmap.stak="x"'])
    with pytest.raises(SessionError, match=r"picture 'index' has no parameter 'x'; it takes no parameters"):
        load_session(write_session(tmp_path), overrides=['report.params.index.x="x"'])
    with pytest.raises(SessionError, match=r"expected a non-empty string, got int 3"):
        load_session(write_session(tmp_path), overrides=['report.params.memmap.stack=3'])


def test_a_function_workload_is_sampled_before_and_after(tmp_path: Path) -> None:
    (tmp_path / "work.py").write_text(
        "def run(ctx):\n    for _ in range(10):\n        ctx.machine.alloc_pages(0xcc0, 0)\n")
    text = SMALL.replace("seed = 3\n", 'kind = "function"\nfunction = "work:run"\nseed = 3\n')
    o = run_small(tmp_path, text=text)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "samples.csv").read_text())))
    assert [int(r["op"]) for r in rows] == [0, o.workload.operations] == [0, 10]
    assert int(rows[1]["free_pages"]) < int(rows[0]["free_pages"])


def test_report_draws_one_picture_with_its_param(tmp_path: Path) -> None:
    """`pageext report memmap --param stack=...` writes the picture (a file, not text) and prints its path."""
    import matplotlib.image

    from pageext_core.pictures import memmap

    def pixels(png: bytes) -> np.ndarray:
        return (matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(np.uint8)

    sess = write_session(tmp_path)
    run = CliRunner().invoke
    plain = run(main, ["report", "memmap", str(sess), "--out", str(tmp_path / "a")], catch_exceptions=False)
    over = run(main, ["report", "memmap", str(sess), "--param", "stack=alloc_pages", "--out", str(tmp_path / "b")],
               catch_exceptions=False)
    assert plain.exit_code == 0 and over.exit_code == 0, (plain.output, over.output)
    assert plain.stdout.strip() == str(tmp_path / "a" / "memmap.png") and os.listdir(tmp_path / "a") == ["memmap.png"]
    count = lambda p: int(np.all(pixels(p.read_bytes()) == memmap.HIGHLIGHT, axis=-1).sum())  # noqa: E731
    assert count(tmp_path / "a" / "memmap.png") == 0 < count(tmp_path / "b" / "memmap.png")
    bad = run(main, ["report", "memmap", str(sess), "--param", "stak=x"])
    assert bad.exit_code == 2 and "the memmap picture takes stack" in bad.output
    no_po = run(main, ["report", "flamegraph", str(sess), "--boot", "page_owner=off", "--out", str(tmp_path / "c")])
    assert no_po.exit_code == 2 and "needs page_owner=on" in no_po.output and not (tmp_path / "c").exists()
