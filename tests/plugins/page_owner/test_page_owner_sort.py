"""page_owner_sort: kernel-compatible output on real dumps, and the extensions.

Expected outputs are written out by hand from the kernel tool's rules
(group by the record text without the PFN line and without the timestamp
digits; order groups by text, then stable-sort by the chosen key).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pageext_page_owner.page_owner_sort as pos
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pageext_page_owner.page_owner_sort import Aggregator, cli, cull, main, parallel, sort_groups

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "page_owner"  # tracked, in the repository
CURRENT = FIXTURES / "current.txt"
RFC2014 = FIXTURES / "rfc2014.txt"
# The console script of the environment running the tests (never another checkout's):
# next to this interpreter in a venv, else wherever this environment put it on PATH.
SCRIPT = Path(sys.executable).with_name("page_owner_sort")
if not SCRIPT.exists():
    SCRIPT = Path(shutil.which("page_owner_sort") or SCRIPT)

# ---- the records of current.txt as the kernel tool prints them (timestamp digits cut out)

UDEVD = (
    "Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 812, tgid 812 (systemd-udevd), ts  ns\n"
)
UDEVD_STACK = (
    " post_alloc_hook+0x1a2/0x1c0\n"
    " get_page_from_freelist+0x3b8/0x1530\n"
    " __alloc_pages_noprof+0x17c/0x360\n"
    " alloc_pages_mpol_noprof+0x95/0x1c0\n"
    " pcpu_populate_chunk+0x11c/0x3c0\n"
    " pcpu_alloc_noprof+0x40f/0x7a0\n"
    " mem_cgroup_css_alloc+0x18e/0x6d0\n"
)
SLAB = (
    "Page allocated via order 3, mask 0x52cc0(GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP), "
    "pid 1, tgid 1 (systemd), ts  ns\n"
)
SLAB_STACK = (
    " post_alloc_hook+0x1a2/0x1c0\n"
    " get_page_from_freelist+0x3b8/0x1530\n"
    " __alloc_pages_noprof+0x17c/0x360\n"
    " alloc_pages_mpol_noprof+0x95/0x1c0\n"
    " allocate_slab+0x2a9/0x3d0\n"
    " ___slab_alloc+0x4e3/0xc20\n"
    " __kmalloc_cache_noprof+0x2b8/0x340\n"
    " kernfs_fop_open+0x2a5/0x3c0\n"
)
ANON = "Page allocated via order 0, mask 0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), pid 2291, tgid 2288 (python3), ts  ns\n"
ANON_STACK = (
    " post_alloc_hook+0x1a2/0x1c0\n"
    " get_page_from_freelist+0x3b8/0x1530\n"
    " __alloc_pages_noprof+0x17c/0x360\n"
    " alloc_pages_mpol_noprof+0x95/0x1c0\n"
    " vma_alloc_folio_noprof+0x64/0xd0\n"
    " do_anonymous_page+0x327/0x8a0\n"
    " __handle_mm_fault+0xb1b/0x1120\n"
    " handle_mm_fault+0x10f/0x2d0\n"
    " do_user_addr_fault+0x215/0x6f0\n"
    " exc_page_fault+0x7e/0x180\n"
    " asm_exc_page_fault+0x26/0x30\n"
)
MIGRATED_STACK = ANON_STACK + "Page has been migrated, last migrate reason: compaction\n"
VMALLOC = (
    "Page allocated via order 0, mask 0x2dc2(GFP_KERNEL|__GFP_HIGHMEM|__GFP_NOWARN|__GFP_ZERO), "
    "pid 1540, tgid 1540 (modprobe), ts  ns\n"
)
VMALLOC_STACK = (
    " post_alloc_hook+0x1a2/0x1c0\n"
    " get_page_from_freelist+0x3b8/0x1530\n"
    " __alloc_pages_noprof+0x17c/0x360\n"
    " alloc_pages_bulk_noprof+0x3a1/0x690\n"
    " __vmalloc_area_node+0x1c5/0x3c0\n"
    " __vmalloc_node_range_noprof+0x1d9/0x7e0\n"
    " __vmalloc_node_noprof+0x4e/0x70\n"
    " load_module+0x1c6/0x2210\n"
)
THP = "Page allocated via order 9, mask 0x1c20ca(GFP_TRANSHUGE_LIGHT|__GFP_THISNODE), pid 2291, tgid 2288 (python3), ts  ns\n"
THP_STACK = (
    " post_alloc_hook+0x1a2/0x1c0\n"
    " get_page_from_freelist+0x3b8/0x1530\n"
    " __alloc_pages_noprof+0x17c/0x360\n"
    " alloc_pages_mpol_noprof+0x95/0x1c0\n"
    " vma_alloc_folio_noprof+0x64/0xd0\n"
    " do_huge_pmd_anonymous_page+0xb6/0x5f0\n"
    " __handle_mm_fault+0x8a3/0x1120\n"
    " handle_mm_fault+0x10f/0x2d0\n"
    " do_user_addr_fault+0x215/0x6f0\n"
    " exc_page_fault+0x7e/0x180\n"
    " asm_exc_page_fault+0x26/0x30\n"
)
# (times, pages, text) per group; the two udevd records differ only in their timestamps and merge
G_UDEVD = (2, 2, UDEVD + UDEVD_STACK)
G_SLAB = (1, 8, SLAB + SLAB_STACK)
G_ANON = (1, 1, ANON + ANON_STACK)
G_MIGR = (1, 1, ANON + MIGRATED_STACK)  # the migrate line makes it a different text
G_VMAL = (1, 1, VMALLOC + VMALLOC_STACK)
G_THP = (1, 512, THP + THP_STACK)


def plain(*groups) -> str:
    return "".join(f"{t} times, {p} pages, allocated by OTHERS :\n{text}\n" for t, p, text in groups)


# ---- helpers


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def sort_file(capsys, tmp_path, *args, src=CURRENT) -> tuple[int, str, str, str]:
    out = tmp_path / "out.txt"
    rc, stdout, stderr = run(capsys, *args, src, out)
    return rc, out.read_text() if out.exists() else "", stdout, stderr


# ---- kernel-compatible sorting of the current format


def test_default_groups_identical_records_and_sorts_by_times(capsys, tmp_path):
    rc, text, stdout, stderr = sort_file(capsys, tmp_path)
    assert rc == 0
    # grouping pass orders by text: order 0 masks 0x140cca < 0x2dc2 < 0xcc0, then order 3, then order 9;
    # the stable sort by times then only lifts the udevd pair to the top
    assert text == plain(G_UDEVD, G_ANON, G_MIGR, G_VMAL, G_SLAB, G_THP)
    assert stdout == "loaded 7\nsorting ....\nculling\n"
    assert stderr == ""


def test_t_is_the_default(capsys, tmp_path):
    assert sort_file(capsys, tmp_path, "-t")[1] == plain(G_UDEVD, G_ANON, G_MIGR, G_VMAL, G_SLAB, G_THP)


def test_m_sorts_by_pages(capsys, tmp_path):
    assert sort_file(capsys, tmp_path, "-m")[1] == plain(G_THP, G_SLAB, G_UDEVD, G_ANON, G_MIGR, G_VMAL)


def test_a_keeps_timestamps_and_sorts_by_allocation_time(capsys, tmp_path):
    rc, text, _, _ = sort_file(capsys, tmp_path, "-a")
    with_ts = lambda head, ts: head.replace("ts  ns", f"ts {ts} ns")  # noqa: E731
    assert text == plain(
        (1, 1, with_ts(UDEVD, 2315508201) + UDEVD_STACK),
        (1, 1, with_ts(UDEVD, 2315601187) + UDEVD_STACK),
        (1, 8, with_ts(SLAB, 3120448806) + SLAB_STACK),
        (1, 1, with_ts(ANON, 9081235532) + ANON_STACK),
        (1, 1, with_ts(ANON, 9081299014) + MIGRATED_STACK),
        (1, 512, with_ts(THP, 9530001120) + THP_STACK),
        (1, 1, with_ts(VMALLOC, 11870213004) + VMALLOC_STACK),
    )


def test_sort_by_alloc_ts_descending_via_sort_option(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--sort=-at")[1]
    heads = [ln for ln in text.splitlines() if ln.startswith("Page allocated")]
    assert [h.rsplit("ts ", 1)[1] for h in heads] == [
        "11870213004 ns", "9530001120 ns", "9081299014 ns", "9081235532 ns", "3120448806 ns", "2315601187 ns", "2315508201 ns",
    ]


def test_p_and_P_sort_by_pid_and_tgid(capsys, tmp_path):
    want = plain(G_SLAB, G_UDEVD, G_VMAL, G_ANON, G_MIGR, G_THP)
    assert sort_file(capsys, tmp_path, "-p")[1] == want
    assert sort_file(capsys, tmp_path, "-P")[1] == want


def test_n_sorts_by_command_name(capsys, tmp_path):
    # modprobe < python3 < systemd < systemd-udevd (bytewise, like strcmp)
    assert sort_file(capsys, tmp_path, "-n")[1] == plain(G_VMAL, G_ANON, G_MIGR, G_THP, G_SLAB, G_UDEVD)


def test_s_sorts_by_stack_trace(capsys, tmp_path):
    # " alloc_pages_bulk" < " alloc_pages_mpol"; then allocate_slab < pcpu_ < vma_; do_anonymous < do_huge
    assert sort_file(capsys, tmp_path, "-s")[1] == plain(G_VMAL, G_SLAB, G_UDEVD, G_ANON, G_MIGR, G_THP)


def test_sort_with_several_keys(capsys, tmp_path):
    # tgid descending; the three python3 groups (tgid 2288) keep the grouping-pass order
    assert sort_file(capsys, tmp_path, "--sort=-tg,ator")[1] == plain(G_ANON, G_MIGR, G_THP, G_VMAL, G_UDEVD, G_SLAB)
    # name ascending, then pages descending is not a --sort key: use pid descending inside a name
    assert sort_file(capsys, tmp_path, "--sort", "n,-p")[1] == plain(G_VMAL, G_ANON, G_MIGR, G_THP, G_SLAB, G_UDEVD)
    assert sort_file(capsys, tmp_path, "--sort=txt")[1] == plain(G_ANON, G_MIGR, G_VMAL, G_UDEVD, G_SLAB, G_THP)


def test_single_letter_option_replaces_sort_option(capsys, tmp_path):
    # as in the kernel tool, -m wins over --sort
    assert sort_file(capsys, tmp_path, "--sort=pid", "-m")[1] == plain(G_THP, G_SLAB, G_UDEVD, G_ANON, G_MIGR, G_VMAL)


def test_options_may_follow_the_file_names(capsys, tmp_path):
    out = tmp_path / "o.txt"
    assert run(capsys, CURRENT, out, "-m")[0] == 0
    assert out.read_text() == plain(G_THP, G_SLAB, G_UDEVD, G_ANON, G_MIGR, G_VMAL)


# ---- culling


def test_cull_pid(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--cull=pid")[1]
    assert text == "3 times, 514 pages, PID 2291\n2 times, 2 pages, PID 812\n1 times, 8 pages, PID 1\n1 times, 1 pages, PID 1540\n"


def test_cull_tgid(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--cull=tg")[1]
    assert text == "3 times, 514 pages, TGID 2288\n2 times, 2 pages, TGID 812\n1 times, 8 pages, TGID 1\n1 times, 1 pages, TGID 1540\n"


def test_cull_name(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--cull=name")[1]
    assert text == (
        "3 times, 514 pages, task_comm_name: python3\n"
        "2 times, 2 pages, task_comm_name: systemd-udevd\n"
        "1 times, 1 pages, task_comm_name: modprobe\n"
        "1 times, 8 pages, task_comm_name: systemd\n"
    )


def test_repeated_cull_options_add_up(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--cull=pid", "--cull", "name")[1]
    assert text == (
        "3 times, 514 pages, PID 2291, task_comm_name: python3\n"
        "2 times, 2 pages, PID 812, task_comm_name: systemd-udevd\n"
        "1 times, 8 pages, PID 1, task_comm_name: systemd\n"
        "1 times, 1 pages, PID 1540, task_comm_name: modprobe\n"
    )


def test_cull_allocator_keeps_the_trailing_space(capsys, tmp_path):
    assert sort_file(capsys, tmp_path, "--cull=allocator")[1] == "7 times, 525 pages, allocated by OTHERS \n"


def test_cull_stacktrace(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--cull=st")[1]
    assert text == (
        "2 times, 2 pages:\n" + UDEVD_STACK + "\n"
        "1 times, 1 pages:\n" + VMALLOC_STACK + "\n"
        "1 times, 8 pages:\n" + SLAB_STACK + "\n"
        "1 times, 1 pages:\n" + ANON_STACK + "\n"
        "1 times, 1 pages:\n" + MIGRATED_STACK + "\n"
        "1 times, 512 pages:\n" + THP_STACK + "\n"
    )


def test_cull_several_keys_with_m(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--cull=st,pid,name,ator", "-m")[1]
    assert text == (
        "1 times, 512 pages, PID 2291, task_comm_name: python3, allocated by OTHERS :\n" + THP_STACK + "\n"
        "1 times, 8 pages, PID 1, task_comm_name: systemd, allocated by OTHERS :\n" + SLAB_STACK + "\n"
        "2 times, 2 pages, PID 812, task_comm_name: systemd-udevd, allocated by OTHERS :\n" + UDEVD_STACK + "\n"
        "1 times, 1 pages, PID 1540, task_comm_name: modprobe, allocated by OTHERS :\n" + VMALLOC_STACK + "\n"
        "1 times, 1 pages, PID 2291, task_comm_name: python3, allocated by OTHERS :\n" + ANON_STACK + "\n"
        "1 times, 1 pages, PID 2291, task_comm_name: python3, allocated by OTHERS :\n" + MIGRATED_STACK + "\n"
    )


# ---- selecting


def test_select_by_pid_without_cull_keeps_the_plain_output(capsys, tmp_path):
    rc, text, stdout, _ = sort_file(capsys, tmp_path, "--pid=2291")
    assert text == plain(G_ANON, G_MIGR, G_THP)
    assert stdout.startswith("loaded 3\n")


def test_select_shows_the_selected_field_when_culling(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--pid=2291,1", "--cull=name")[1]
    assert text == "3 times, 514 pages, PID 2291, task_comm_name: python3\n1 times, 8 pages, PID 1, task_comm_name: systemd\n"


def test_select_by_tgid_and_name(capsys, tmp_path):
    assert sort_file(capsys, tmp_path, "--tgid=812")[1] == plain(G_UDEVD)
    assert sort_file(capsys, tmp_path, "--name=python3,modprobe")[1] == plain(G_ANON, G_MIGR, G_VMAL, G_THP)
    text = sort_file(capsys, tmp_path, "--name=systemd", "--cull=tgid")[1]
    assert text == "1 times, 8 pages, TGID 1, task_comm_name: systemd\n"
    assert sort_file(capsys, tmp_path, "--pid=4242")[1] == ""


# ---- other formats of the dump


def test_rfc2014_format(capsys, tmp_path):
    r1, r2, r3 = (r[0] + r[1] for r in (R14_1, R14_2, R14_3))
    rc, text, stdout, stderr = sort_file(capsys, tmp_path, src=RFC2014)
    assert rc == 0 and stderr == ""
    assert text == plain((1, 1, r3), (1, 1, r1), (1, 4, r2))  # "0x200da" < "0xd0" < "order 2"
    assert sort_file(capsys, tmp_path, "-m", src=RFC2014)[1] == plain((1, 4, r2), (1, 1, r3), (1, 1, r1))
    # no pid/comm in this format: the kernel tool's "missing" values
    assert sort_file(capsys, tmp_path, "--cull=pid", src=RFC2014)[1] == "3 times, 6 pages, PID -1\n"
    assert sort_file(capsys, tmp_path, "--cull=name", src=RFC2014)[1] == "3 times, 6 pages, task_comm_name: \n"


R14_1 = (
    "Page allocated via order 0, mask 0xd0\n",
    " [<ffffffff8116b3ec>] __alloc_pages_nodemask+0x17c/0x9f0\n"
    " [<ffffffff811b1a3a>] alloc_pages_current+0x9a/0x120\n"
    " [<ffffffff8116635e>] __get_free_pages+0xe/0x50\n"
    " [<ffffffff811bf7f7>] kmem_cache_alloc_trace+0x37/0x1f0\n",
)
R14_2 = (
    "Page allocated via order 2, mask 0x2084d0\n",
    " [<ffffffff8116b3ec>] __alloc_pages_nodemask+0x17c/0x9f0\n"
    " [<ffffffff811b1a3a>] alloc_pages_current+0x9a/0x120\n"
    " [<ffffffff811bc5d2>] new_slab+0x2f2/0x340\n"
    " [<ffffffff81673b0c>] __slab_alloc+0x2ba/0x4a0\n",
)
R14_3 = (
    "Page allocated via order 0, mask 0x200da\n",
    " [<ffffffff8116b3ec>] __alloc_pages_nodemask+0x17c/0x9f0\n"
    " [<ffffffff811b2c1f>] alloc_pages_vma+0xaf/0x1c0\n"
    " [<ffffffff8119283d>] handle_mm_fault+0xd2d/0x1310\n"
    " [<ffffffff81044fa9>] __do_page_fault+0x199/0x430\n",
)
R14_PAGES = {R14_1: 1, R14_2: 4, R14_3: 1}
TEXT_ORDER = [R14_3, R14_1, R14_2]  # "mask 0x200da" < "mask 0xd0" < "order 2"
STACK_ORDER = [R14_1, R14_2, R14_3]  # by the addresses printed first on each frame line


@pytest.mark.parametrize(
    "args, order",
    [
        ([], TEXT_ORDER),
        (["-t"], TEXT_ORDER),
        (["-m"], [R14_2, R14_3, R14_1]),
        (["-a"], TEXT_ORDER),  # no timestamps: every record ties
        (["-p"], TEXT_ORDER),  # no pid: all -1
        (["-P"], TEXT_ORDER),
        (["-n"], TEXT_ORDER),  # no command name: all empty
        (["-s"], STACK_ORDER),
        (["-r"], TEXT_ORDER),
        (["-f"], TEXT_ORDER),
        (["-d"], TEXT_ORDER),
        (["--sort=-txt"], [R14_2, R14_1, R14_3]),
        (["--sort=st"], STACK_ORDER),
        (["--name=", "-m"], [R14_2, R14_3, R14_1]),
    ],
)
def test_rfc2014_with_every_option(capsys, tmp_path, args, order):
    rc, text, stdout, stderr = sort_file(capsys, tmp_path, *args, src=RFC2014)
    assert rc == 0 and stderr == ""
    assert text == plain(*((1, R14_PAGES[r], r[0] + r[1]) for r in order))


def test_rfc2014_culled(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--cull=st", src=RFC2014)[1]
    assert text == "".join(f"1 times, {R14_PAGES[r]} pages:\n{r[1]}\n" for r in STACK_ORDER)
    text = sort_file(capsys, tmp_path, "--cull=tgid,ator", "-m", src=RFC2014)[1]
    assert text == "3 times, 6 pages, TGID -1, allocated by OTHERS \n"
    text = sort_file(capsys, tmp_path, "--collapsed", src=RFC2014)[1]
    assert text == (
        "__do_page_fault;handle_mm_fault;alloc_pages_vma;__alloc_pages_nodemask 1\n"
        "__slab_alloc;new_slab;alloc_pages_current;__alloc_pages_nodemask 4\n"
        "kmem_cache_alloc_trace;__get_free_pages;alloc_pages_current;__alloc_pages_nodemask 1\n"
    )


def test_decimal_pfn_gives_the_same_output(capsys, tmp_path):
    import re

    src = tmp_path / "decimal.txt"
    src.write_text(re.sub(r"PFN 0x([0-9a-f]+)", lambda m: f"PFN {int(m.group(1), 16)}", CURRENT.read_text()))
    assert "PFN 68156 type" in src.read_text()
    assert sort_file(capsys, tmp_path, src=src)[1] == plain(G_UDEVD, G_ANON, G_MIGR, G_VMAL, G_SLAB, G_THP)


def test_5x_format_cuts_ts_but_keeps_free_ts(capsys, tmp_path, monkeypatch):
    rec = (
        "Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 7, ts {ts} ns, free_ts {fts} ns\n"
        "PFN {pfn} type Unmovable Block 0 type Unmovable Flags 0x0()\n"
        " alloc_pages+0x1/0x2\n"
        " kthread+0x3/0x4\n"
        "\n"
    )
    src = tmp_path / "v515.txt"
    src.write_text(
        rec.format(ts=100, fts=0, pfn=1) + rec.format(ts=200, fts=0, pfn=2) + rec.format(ts=300, fts=250, pfn=3)
        + rec.format(ts=400, fts=999, pfn=4)
    )
    stack = " alloc_pages+0x1/0x2\n kthread+0x3/0x4\n"
    head = "Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 7, ts  ns, free_ts {} ns\n"
    g0, g250, g999 = head.format(0) + stack, head.format(250) + stack, head.format(999) + stack
    assert sort_file(capsys, tmp_path, src=src)[1] == plain((2, 2, g0), (1, 1, g250), (1, 1, g999))
    # -f leaves out the block freed after it was allocated (free_ts 999 > ts 400)
    assert sort_file(capsys, tmp_path, "-f", src=src)[1] == plain((2, 2, g0), (1, 1, g250))
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)  # -f must not be lost on the multi-process path
    assert sort_file(capsys, tmp_path, "-f", "--jobs=2", src=src)[1] == plain((2, 2, g0), (1, 1, g250))
    assert sort_file(capsys, tmp_path, "--jobs=2", src=src)[1] == plain((2, 2, g0), (1, 1, g250), (1, 1, g999))
    # -r: by release time; the two free_ts 0 records merged, so ascending 0, 250, 999
    assert sort_file(capsys, tmp_path, "-r", src=src)[1] == plain((2, 2, g0), (1, 1, g250), (1, 1, g999))
    assert sort_file(capsys, tmp_path, "--sort=-ft", src=src)[1] == plain((1, 1, g999), (1, 1, g250), (2, 2, g0))


def test_f_and_r_change_nothing_on_current_dumps(capsys, tmp_path):
    want = plain(G_UDEVD, G_ANON, G_MIGR, G_VMAL, G_SLAB, G_THP)
    assert sort_file(capsys, tmp_path, "-f")[1] == want  # every record of a current dump is allocated
    # no free_ts: every group ties on release time, so the grouping-pass (text) order stays
    assert sort_file(capsys, tmp_path, "-r")[1] == plain(G_ANON, G_MIGR, G_VMAL, G_UDEVD, G_SLAB, G_THP)


def test_allocator_classes(capsys, tmp_path):
    def rec(pfn_line: str, stack: str) -> str:
        return f"Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 1, tgid 1 (a), ts 1 ns\n{pfn_line}\n{stack}\n"

    vm_stack = " alloc_pages_noprof+0x1/0x2\n __vmalloc_node_range_noprof+0x3/0x4\n vzalloc+0x5/0x6\n"
    src = tmp_path / "alloc.txt"
    src.write_text(
        rec("PFN 0x1 type CMA Block 0 type CMA Flags 0x0(node=0|zone=1)", " cma_user+0x1/0x2\n")
        + rec("PFN 0x2 type Unmovable Block 0 type Unmovable Flags 0x800(slab|node=0|zone=1)", " slab_user+0x1/0x2\n")
        + rec("PFN 0x3 type CMA Block 0 type CMA Flags 0x800(slab|node=0|zone=1)", " both+0x1/0x2\n")
        + rec("PFN 0x4 type Unmovable Block 0 type Unmovable Flags 0x0()", vm_stack)
        + rec("PFN 0x5 type Unmovable Block 0 type Unmovable Flags 0x0()", " other+0x1/0x2\n")
    )
    text = sort_file(capsys, tmp_path, "--cull=ator", src=src)[1]
    # grouping order is the allocator bit value: CMA(2) < SLAB(4) < CMA|SLAB(6) < VMALLOC(8) < OTHERS(16)
    assert text == (
        "1 times, 1 pages, allocated by CMA \n"
        "1 times, 1 pages, allocated by SLAB \n"
        "1 times, 1 pages, allocated by CMA SLAB \n"
        "1 times, 1 pages, allocated by VMALLOC \n"
        "1 times, 1 pages, allocated by OTHERS \n"
    )
    plain_text = sort_file(capsys, tmp_path, "-s", src=src)[1]
    assert "1 times, 1 pages, allocated by VMALLOC :\n" in plain_text
    assert "1 times, 1 pages, allocated by CMA SLAB :\n" in plain_text


def test_cull_by_allocator_splits_one_text_by_its_pfn_lines(capsys, tmp_path):
    rec = "Page allocated via order 1, mask 0xcc0(GFP_KERNEL), pid 1, tgid 1 (a), ts {} ns\n{}\n same+0x1/0x2\n\n"
    src = tmp_path / "split.txt"
    src.write_text(
        rec.format(1, "PFN 0x2 type Unmovable Block 0 type Unmovable Flags 0x0()")
        + rec.format(2, "PFN 0x4 type CMA Block 0 type CMA Flags 0x0()")
        + rec.format(3, "PFN 0x6 type Unmovable Block 0 type Unmovable Flags 0x0()")
    )
    assert sort_file(capsys, tmp_path, "--cull=ator", src=src)[1] == "2 times, 4 pages, allocated by OTHERS \n1 times, 2 pages, allocated by CMA \n"
    # without culling by allocator the three records are one text; its first record says OTHERS
    text = sort_file(capsys, tmp_path, src=src)[1]
    assert text.startswith("3 times, 6 pages, allocated by OTHERS :\n")


# ---- input handling


def test_crlf_gzip_and_stdin_give_the_same_output(capsys, tmp_path, monkeypatch):
    want = plain(G_UDEVD, G_ANON, G_MIGR, G_VMAL, G_SLAB, G_THP)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(CURRENT.read_bytes().replace(b"\n", b"\r\n"))
    assert sort_file(capsys, tmp_path, src=crlf)[1] == want
    gz = tmp_path / "page_owner.txt"  # gzipped, but not named .gz
    gz.write_bytes(gzip.compress(CURRENT.read_bytes()))
    assert sort_file(capsys, tmp_path, src=gz)[1] == want
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(CURRENT.read_bytes()))))
    rc, text, stdout, stderr = sort_file(capsys, tmp_path, src="-")
    assert rc == 0 and text == want


def test_output_to_stdout_moves_progress_to_stderr(capsys):
    rc, out, err = run(capsys, "--cull=tgid", CURRENT, "-")
    assert rc == 0
    assert out == "3 times, 514 pages, TGID 2288\n2 times, 2 pages, TGID 812\n1 times, 8 pages, TGID 1\n1 times, 1 pages, TGID 1540\n"
    assert err == "loaded 7\nsorting ....\nculling\n"


def test_empty_input_gives_empty_output(capsys, tmp_path):
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    rc, text, stdout, stderr = sort_file(capsys, tmp_path, src=src)
    assert rc == 0 and text == "" and (tmp_path / "out.txt").exists()
    assert stdout == "loaded 0\nsorting ....\nculling\n" and stderr == ""


BAD = (
    "this is not a dump\n"  # 1
    "\n"
    "Page allocated via order 99, mask 0xcc0(GFP_KERNEL), pid 9, tgid 9 (x), ts 1 ns\n"  # 3: order out of range
    " f+0x1/0x2\n"
    "\n"
)


def make_bad(tmp_path) -> Path:
    src = tmp_path / "bad.txt"
    tail = "Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 9, tgid 9 (x), ts 2 ns\nPFN 0x1 type Unmovable Block 0 type Unmovable Flags 0x0()\n f+0x1/0x2\n"
    src.write_text(BAD + CURRENT.read_text() + tail)  # current.txt starts on line 6; the tail (no empty line after) on 91
    return src


def test_d_lists_unparsable_records_with_line_numbers(capsys, tmp_path):
    src = make_bad(tmp_path)
    rc, text, stdout, stderr = sort_file(capsys, tmp_path, "-d", src=src)
    assert rc == 0
    assert text == plain(G_UDEVD, G_ANON, G_MIGR, G_VMAL, G_SLAB, G_THP)
    lines = stderr.splitlines()
    assert lines == [
        f"{src}:1: skipped: record does not start with 'Page allocated via order N, ...' but with 'this is not a dump'",
        f"{src}:3: skipped: order 99 is out of range (0-63)",
        f"{src}:91: skipped: the last record is not followed by an empty line; the kernel tool ignores such a record "
        "and so do we (append an empty line to the file to include it)",
    ]
    assert stdout.startswith("loaded 7\n")


def test_without_d_one_summary_line(capsys, tmp_path):
    src = make_bad(tmp_path)
    rc, text, stdout, stderr = sort_file(capsys, tmp_path, src=src)
    assert rc == 0
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"page_owner_sort: 3 records in {src} could not be parsed and were skipped (first: {src}:1: ")
    assert stderr.rstrip().endswith("run with -d to list them all.")


def test_summary_hints_when_nothing_could_be_parsed(capsys, tmp_path):
    src = tmp_path / "stacks.txt"
    src.write_text(" post_alloc_hook+0x1/0x2\n get_page_from_freelist+0x3/0x4\nnr_base_pages: 16\n\n")
    rc, text, stdout, stderr = sort_file(capsys, tmp_path, src=src)
    # not one record in a non-empty input is an error (no empty report is written)
    assert rc == 1 and text == "" and not (tmp_path / "out.txt").exists() and stdout == ""
    assert stderr.startswith(f"page_owner_sort: no page_owner records found in {src} (first unusable block: {src}:1: ")
    assert "show_stacks" in stderr and stderr.count("\n") == 1


def test_records_are_counted_the_same_whatever_the_read_size():
    raw = BAD.encode() + CURRENT.read_bytes() + RFC2014.read_bytes()
    want = None
    for size in (1, 3, 50, 333, 1 << 20):
        errors: list = []
        agg = Aggregator(on_error=errors.append).feed(io.BytesIO(raw), chunk_size=size)
        got = ([(g.times, g.pages, g.text) for g in agg.groups()], [e.line for e in errors])
        assert got[1] == [1, 3]
        if want is None:
            want = got
        assert got == want, size
    assert sum(t for t, _, _ in want[0]) == 10 and sum(p for _, p, _ in want[0]) == 525 + 6


# ---- command line errors


def test_missing_input_exits_1_without_usage(capsys, tmp_path):
    out = tmp_path / "o.txt"
    rc, stdout, stderr = run(capsys, tmp_path / "nope.txt", out)
    assert rc == 1
    assert "Usage" not in stderr  # not a command-line mistake
    assert "cannot open input" in stderr and "nope.txt" in stderr and "no such file" in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-x"], "No such option"),
        (["--bogus"], "No such option"),
        (["-m", "-t"], "only one of"),
        (["--sort=pid,bogus"], "unknown key 'bogus'"),
        (["--cull=txt"], "unknown key 'txt'"),
        (["--pid=1,x"], "'x' is not a number"),
        (["--format=xml"], "xml"),
        (["--collapsed", "--format=json"], "--collapsed"),
        (["--collapsed", "-m"], "sort options do not apply"),
    ],
)
def test_bad_options_print_usage_and_exit_1(capsys, tmp_path, args, message):
    out = tmp_path / "o.txt"
    rc, stdout, stderr = run(capsys, *args, CURRENT, out)
    assert rc == 1
    assert stderr.startswith("Usage: page_owner_sort [OPTIONS] <input> <output>\n")
    assert message in stderr
    assert not out.exists()


def test_wrong_number_of_arguments(capsys, tmp_path):
    assert run(capsys, CURRENT)[0] == 1
    assert run(capsys)[0] == 1
    rc, _, stderr = run(capsys, CURRENT, tmp_path / "a", tmp_path / "b")
    assert rc == 1 and "unexpected extra argument" in stderr
    rc, _, stderr = run(capsys, CURRENT, tmp_path / "no" / "such" / "dir.txt")
    assert rc == 1 and "does not exist" in stderr
    rc, _, stderr = run(capsys, tmp_path, tmp_path / "o.txt")
    assert rc == 1 and "it is a directory" in stderr
    rc, _, stderr = run(capsys, "--diff", "-", "-")
    assert rc == 1 and "only one input can be '-'" in stderr


def test_help_exits_0(capsys):
    rc, out, err = run(capsys, "--help")
    assert rc == 0
    assert "Usage: page_owner_sort [OPTIONS] <input> <output>" in out
    for opt in ("-a", "-m", "-n", "-p", "-P", "-s", "-t", "-d", "-f", "-r", "--pid", "--tgid", "--name", "--cull", "--sort", "--format", "--collapsed", "--diff", "--jobs"):
        assert f"\n  {opt} " in out, opt
    assert run(capsys, "-h")[0] == 0


# ---- atomic output


def test_failure_mid_write_leaves_no_partial_output(capsys, tmp_path, monkeypatch):
    out = tmp_path / "sorted.txt"
    out.write_text("previous result\n")

    def broken(rep):
        yield b"1 times, 1 pages, allocated by OTHERS :\n"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "render_text", broken)
    rc, stdout, stderr = run(capsys, CURRENT, out)
    assert rc == 1
    assert "No space left on device" in stderr
    assert out.read_text() == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sorted.txt"]  # no temp file left

    new = tmp_path / "new.txt"
    rc, _, _ = run(capsys, CURRENT, new)
    assert rc == 1 and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sorted.txt"]


def test_unreadable_gzip_leaves_existing_output_alone(capsys, tmp_path):
    src = tmp_path / "cut.gz"
    src.write_bytes(gzip.compress(CURRENT.read_bytes() * 50)[:300])  # truncated download
    out = tmp_path / "sorted.txt"
    out.write_text("keep me\n")
    rc, stdout, stderr = run(capsys, src, out)
    assert rc == 1
    assert "cannot read" in stderr and str(src) in stderr
    assert out.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gz", "sorted.txt"]


def test_success_replaces_the_output_and_keeps_its_mode(capsys, tmp_path):
    out = tmp_path / "sorted.txt"
    out.write_text("old\n")
    os.chmod(out, 0o640)
    assert run(capsys, "--cull=allocator", CURRENT, out)[0] == 0
    assert out.read_text() == "7 times, 525 pages, allocated by OTHERS \n"
    assert out.stat().st_mode & 0o777 == 0o640


def test_device_output_is_written_in_place(capsys):
    assert run(capsys, CURRENT, "/dev/null")[0] == 0
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


# ---- json / csv


def test_json_output(capsys, tmp_path):
    rc, text, _, _ = sort_file(capsys, tmp_path, "--format=json", "-m")
    doc = json.loads(text)
    assert (doc["records"], doc["pages"], doc["unparsed"], doc["cull"], doc["sort"]) == (7, 525, 0, [], ["-pages"])
    groups = doc["groups"]
    assert [(g["times"], g["pages"]) for g in groups] == [(1, 512), (1, 8), (2, 2), (1, 1), (1, 1), (1, 1)]
    assert groups[0]["text"] == THP + THP_STACK
    assert (groups[0]["pid"], groups[0]["tgid"], groups[0]["comm"], groups[0]["order"]) == (2291, 2288, "python3", 9)
    assert groups[0]["frames"][0] == "post_alloc_hook" and groups[0]["frames"][-1] == "asm_exc_page_fault"
    assert groups[0]["allocator"] == "OTHERS"


def test_json_output_with_cull(capsys, tmp_path):
    doc = json.loads(sort_file(capsys, tmp_path, "--format=json", "--cull=name,st")[1])
    assert doc["cull"] == ["stacktrace", "comm"]
    first = doc["groups"][0]
    assert (first["times"], first["pages"], first["comm"]) == (2, 2, "systemd-udevd")
    assert first["stacktrace"] == UDEVD_STACK
    assert "pid" not in first


def test_csv_output(capsys, tmp_path):
    rows = list(csv.reader(io.StringIO(sort_file(capsys, tmp_path, "--format=csv", "--cull=pid,name")[1])))
    assert rows == [
        ["times", "pages", "pid", "comm"],
        ["3", "514", "2291", "python3"],
        ["2", "2", "812", "systemd-udevd"],
        ["1", "8", "1", "systemd"],
        ["1", "1", "1540", "modprobe"],
    ]
    rows = list(csv.reader(io.StringIO(sort_file(capsys, tmp_path, "--format=csv")[1])))
    assert rows[0] == ["times", "pages", "allocator", "order", "pid", "tgid", "comm", "text"]
    assert rows[1] == ["2", "2", "OTHERS", "0", "812", "812", "systemd-udevd", UDEVD + UDEVD_STACK]
    assert len(rows) == 7


# ---- collapsed stacks


def test_collapsed(capsys, tmp_path):
    rc, text, _, _ = sort_file(capsys, tmp_path, "--collapsed")
    core = "__alloc_pages_noprof;get_page_from_freelist;post_alloc_hook"
    fault = "asm_exc_page_fault;exc_page_fault;do_user_addr_fault;handle_mm_fault;__handle_mm_fault"
    # outermost caller first; the migrated and the plain anonymous fault have the same frames
    assert text == (
        f"{fault};do_anonymous_page;vma_alloc_folio_noprof;alloc_pages_mpol_noprof;{core} 2\n"
        f"{fault};do_huge_pmd_anonymous_page;vma_alloc_folio_noprof;alloc_pages_mpol_noprof;{core} 512\n"
        f"kernfs_fop_open;__kmalloc_cache_noprof;___slab_alloc;allocate_slab;alloc_pages_mpol_noprof;{core} 8\n"
        f"load_module;__vmalloc_node_noprof;__vmalloc_node_range_noprof;__vmalloc_area_node;alloc_pages_bulk_noprof;{core} 1\n"
        f"mem_cgroup_css_alloc;pcpu_alloc_noprof;pcpu_populate_chunk;alloc_pages_mpol_noprof;{core} 2\n"
    )


def test_collapsed_with_process_names(capsys, tmp_path):
    text = sort_file(capsys, tmp_path, "--collapsed", "--cull=name")[1]
    assert text == "modprobe 1\npython3 514\nsystemd 8\nsystemd-udevd 2\n"
    text = sort_file(capsys, tmp_path, "--collapsed", "--cull=name,st", src=RFC2014)[1]
    # the 2014 format has no command name ("[unknown]") and prints addresses before the symbols
    assert text == (
        "[unknown];__do_page_fault;handle_mm_fault;alloc_pages_vma;__alloc_pages_nodemask 1\n"
        "[unknown];__slab_alloc;new_slab;alloc_pages_current;__alloc_pages_nodemask 4\n"
        "[unknown];kmem_cache_alloc_trace;__get_free_pages;alloc_pages_current;__alloc_pages_nodemask 1\n"
    )


# ---- diff


def write_old(tmp_path) -> Path:
    """The first 31 lines of current.txt: the udevd pair and the slab record."""
    old = tmp_path / "old.txt"
    old.write_text("".join(CURRENT.read_text().splitlines(keepends=True)[:31]))
    return old


def test_diff_text(capsys, tmp_path):
    old = write_old(tmp_path)
    out = tmp_path / "growth.txt"
    rc, stdout, stderr = run(capsys, "--diff", old, CURRENT, out)
    assert rc == 0 and stderr == ""
    assert out.read_text() == (
        "total: +515 pages, +4 times (old 3 times, 10 pages; new 7 times, 525 pages)\n\n"
        "+512 pages, +1 times (old 0 times, 0 pages; new 1 times, 512 pages):\n" + THP_STACK + "\n"
        "+1 pages, +1 times (old 0 times, 0 pages; new 1 times, 1 pages):\n" + VMALLOC_STACK + "\n"
        "+1 pages, +1 times (old 0 times, 0 pages; new 1 times, 1 pages):\n" + ANON_STACK + "\n"
        "+1 pages, +1 times (old 0 times, 0 pages; new 1 times, 1 pages):\n" + MIGRATED_STACK + "\n"
        "+0 pages, +0 times (old 1 times, 8 pages; new 1 times, 8 pages):\n" + SLAB_STACK + "\n"
        "+0 pages, +0 times (old 2 times, 2 pages; new 2 times, 2 pages):\n" + UDEVD_STACK + "\n"
    )
    assert stdout == "loaded 3\nloaded 7\nsorting ....\nculling\n"


def test_diff_shrinking_goes_last_and_default_output_is_stdout(capsys, tmp_path):
    old = write_old(tmp_path)
    rc, out, err = run(capsys, "--diff", "--cull=name", CURRENT, old)
    assert rc == 0
    assert out == (
        "total: -515 pages, -4 times (old 7 times, 525 pages; new 3 times, 10 pages)\n\n"
        "+0 pages, +0 times (old 1 times, 8 pages; new 1 times, 8 pages), task_comm_name: systemd\n"
        "+0 pages, +0 times (old 2 times, 2 pages; new 2 times, 2 pages), task_comm_name: systemd-udevd\n"
        "-1 pages, -1 times (old 1 times, 1 pages; new 0 times, 0 pages), task_comm_name: modprobe\n"
        "-514 pages, -3 times (old 3 times, 514 pages; new 0 times, 0 pages), task_comm_name: python3\n"
    )
    assert err == "loaded 7\nloaded 3\nsorting ....\nculling\n"


def test_diff_json_and_csv(capsys, tmp_path):
    old = write_old(tmp_path)
    rc, out, _ = run(capsys, "--diff", "--cull=pid", "--format=json", old, CURRENT, "-")
    doc = json.loads(out)
    assert doc["total"] == {"delta_pages": 515, "delta_times": 4, "old_times": 3, "old_pages": 10, "new_times": 7, "new_pages": 525}
    assert [(g["pid"], g["delta_pages"]) for g in doc["groups"]] == [(2291, 514), (1540, 1), (1, 0), (812, 0)]
    assert doc["old"]["records"] == 3 and doc["new"]["records"] == 7
    rc, out, _ = run(capsys, "--diff", "--cull=pid", "--format=csv", old, CURRENT)
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["delta_pages", "delta_times", "old_times", "old_pages", "new_times", "new_pages", "pid"]
    assert rows[1:] == [["514", "3", "0", "0", "3", "514", "2291"], ["1", "1", "0", "0", "1", "1", "1540"],
                        ["0", "0", "1", "8", "1", "8", "1"], ["0", "0", "2", "2", "2", "2", "812"]]


def test_diff_collapsed(capsys, tmp_path):
    old = write_old(tmp_path)
    rc, out, _ = run(capsys, "--diff", "--collapsed", "--cull=name", old, CURRENT)
    assert rc == 0
    assert out == "modprobe 0 1\npython3 0 514\nsystemd 8 8\nsystemd-udevd 2 2\n"


def test_diff_refuses_sort_options_and_needs_two_dumps(capsys, tmp_path):
    rc, _, err = run(capsys, "--diff", "-m", CURRENT, CURRENT)
    assert rc == 1 and "sorted by growth" in err
    rc, _, err = run(capsys, "--diff", CURRENT)
    assert rc == 1 and "--diff needs <old> <new>" in err


# ---- parallel reading gives the sequential answer


def test_parallel_matches_sequential(capsys, tmp_path, monkeypatch):
    from gendump import write_dump

    src = tmp_path / "big.txt"
    write_dump(src, 3000, seed=3, stacks=60)
    data = src.read_bytes()
    # put a broken record in the middle and an unterminated one at the end
    mid = data.index(b"\n\nPage allocated", len(data) // 2) + 2
    src.write_bytes(data[:mid] + b"broken record\n\n" + data[mid:] + b"Page allocated via order 0, mask 0x0()\nPFN 1\n f")
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    results = []
    for jobs in ("1", "2", "3"):
        out = tmp_path / f"out{jobs}.txt"
        rc, stdout, stderr = run(capsys, f"--jobs={jobs}", "-d", "--cull=st,pid", src, out)
        assert rc == 0
        results.append((out.read_bytes(), stderr))
    assert results[0] == results[1] == results[2]
    line = data[:mid].count(b"\n") + 1
    assert results[0][1].splitlines()[0].startswith(f"{src}:{line}: skipped: record does not start")


def test_compressed_input_decompressed_in_a_second_process_gives_the_same_answer(capsys, tmp_path):
    src = tmp_path / "bad.txt.gz"
    src.write_bytes(gzip.compress(make_bad(tmp_path).read_bytes()))
    results = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}.txt"
        rc, stdout, stderr = run(capsys, f"--jobs={jobs}", "-d", src, out)
        assert rc == 0
        results.append((out.read_text(), stderr))
    assert results[0] == results[1]
    assert results[0][0] == plain(G_UDEVD, G_ANON, G_MIGR, G_VMAL, G_SLAB, G_THP)
    assert [ln.split(": skipped")[0] for ln in results[0][1].splitlines()] == [f"{src}:1", f"{src}:3", f"{src}:91"]


# ---- a property: nothing is lost or double counted


@pytest.mark.parametrize("keep_ts", [False, True], ids=["default", "-a"])
@pytest.mark.parametrize("first_line", [
    "Page allocated via order 1, mask 0xcc0(GFP_KERNEL), pid 7, tgid 7 (w), ts {ts} ns",  # current
    "Page allocated via order 1, mask 0xcc0(GFP_KERNEL), pid 7, ts {ts} ns, free_ts 5 ns",  # 5.x
    "Page allocated via order 1, mask 0xcc0(GFP_KERNEL)",  # 4.x: no timestamp
], ids=["current", "5.x", "4.x"])
def test_only_the_first_record_of_a_shape_is_fully_parsed(monkeypatch, first_line, keep_ts):
    # the fast path's promise: per record a dict lookup, the exact parser once per record shape
    import pageext_page_owner.page_owner_sort.parse as parse

    calls = []
    real = parse.scan_block
    monkeypatch.setattr(parse, "scan_block", lambda *a: calls.append(1) or real(*a))
    text = "".join(
        first_line.format(ts=1000 + i) + f"\nPFN {i << 1:#x} type Unmovable Block 0 type Unmovable Flags 0x0()\n"
        + (" a+0x1/0x2\n" if i % 2 else " b+0x1/0x2\n") + "\n"
        for i in range(200)
    ).encode()
    agg = Aggregator(strip_ts=not keep_ts).feed(io.BytesIO(text))
    assert agg.loaded == 200 and agg.unparsed == 0
    assert len(calls) == 2  # one per stack


_STACKS = [" a+0x1/0x2\n b+0x3/0x4\n", " a+0x1/0x2\n c+0x5/0x6\n", " vmalloc_user+0x1/0x2\n"]
_TASKS = [(1, 1, "init"), (812, 812, "systemd-udevd"), (2291, 2288, "python3")]

record_st = st.tuples(
    st.sampled_from([0, 1, 2, 3, 9]),
    st.sampled_from(_TASKS),
    st.sampled_from(_STACKS),
    st.integers(0, 10**12),
    st.booleans(),
    st.sampled_from(["Unmovable Block 0 type Unmovable Flags 0x0()", "CMA Block 0 type CMA Flags 0x0()", "Unmovable Block 0 type Unmovable Flags 0x800(slab)"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_st, max_size=40), st.integers(1, 400))
def test_property_counts_add_up(records, chunk_size):
    text = "".join(
        f"Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {pid}, tgid {tgid} ({comm}), ts {ts} ns\n"
        f"PFN {i << 9:#x} type {pfn_tail}\n"
        f"{stack}" + ("Page has been migrated, last migrate reason: compaction\n" if migrated else "") + "\n"
        for i, (o, (pid, tgid, comm), stack, ts, migrated, pfn_tail) in enumerate(records)
    ).encode()
    agg = Aggregator().feed(io.BytesIO(text), chunk_size=chunk_size)
    groups = agg.groups()
    assert agg.unparsed == 0
    assert agg.loaded == len(records)
    assert sum(g.times for g in groups) == len(records)
    assert sum(g.pages for g in groups) == sum(1 << o for o, *_ in records)
    # a group is exactly the records with the same (order, task, stack, migrated) - timestamps do not matter
    assert len(groups) == len({(o, t, s, m) for o, t, s, _, m, _ in records})
    split = Aggregator(alloc_bits=True).feed(io.BytesIO(text))
    assert len(split.groups()) == len({(o, t, s, m, "CMA" in p, "slab" in p) for o, t, s, _, m, p in records})
    for fields in (["pid"], ["comm"], ["stacktrace"], ["stacktrace", "pid", "allocator"]):
        culled = sort_groups(cull(groups, fields), [("pages", -1)])
        assert sum(g.times for g in culled) == len(records)
        assert sum(g.pages for g in culled) == sum(1 << o for o, *_ in records)
        assert [g.pages for g in culled] == sorted((g.pages for g in culled), reverse=True)
    # the exact (slow) path agrees with the fast paths, also keeping timestamps (-a) and splitting by allocator
    for opts in ({}, {"strip_ts": False}, {"alloc_bits": True}, {"strip_ts": False, "alloc_bits": True}):
        fast = Aggregator(**opts).feed(io.BytesIO(text), chunk_size=chunk_size)
        slow = Aggregator(selection=pos.Selection(drop_released=True), **opts).feed(io.BytesIO(text))
        view = lambda a: [(g.text, g.times, g.pages, g.ts, g.alloc, g.pid, g.comm) for g in a.groups()]  # noqa: E731
        assert view(fast) == view(slow), opts


_SHAPES = [
    # current, with extra lines the kernel may print
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, tgid {p} (w{p}), ts {ts} ns\nPFN {pfn:#x} type Unmovable Block 0 type Unmovable Flags 0x0()\n{stack}",
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, tgid {p} (w{p}), ts {ts} ns\nPFN {pfn:#x} type CMA Block 0 type CMA Flags 0x0()\n{stack}Charged to memcg user.slice\n",
    # 5.x: free_ts after ts; 4.x: no ts; 2014
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, ts {ts} ns, free_ts {fts} ns\nPFN {pfn} type Unmovable Block 0 type Unmovable Flags 0x800(slab)\n{stack}",
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL)\nPFN {pfn} type Unmovable Block 0 type Unmovable Flags 0x0()\n{stack}",
    "Page allocated via order {o}, mask 0xd0\nPFN {pfn} Block 1 type 0   Flags        S C  \n{stack}",
    # a command name with "ts" in it, a record with no stack, a handle-only record
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, tgid {p} (nts 5 ns), ts {ts} ns\nPFN {pfn:#x} type Unmovable Block 0 type Unmovable Flags 0x0()\n{stack}",
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, tgid {p} (w), ts {ts} ns\nPFN {pfn:#x} type Unmovable Block 0 type Unmovable Flags 0x0()\n",
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, tgid {p} (w), ts {ts} ns\nPFN {pfn:#x} type Unmovable Block 0 type Unmovable Flags 0x0()\nhandle: 42\n",
    # damaged: no PFN line, garbage, glued records, PFN line not second, digits missing
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, tgid {p} (w), ts {ts} ns\n{stack}",
    "some log line {ts}\n",
    "Page allocated via order {o}, mask 0x0(), pid {p}, tgid {p} (w), ts {ts} ns\nPFN 0x1 type Unmovable\n{stack}Page allocated via order 0, mask 0x0()\nPFN 0x2\n{stack}",
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, tgid {p} (w), ts {ts} ns\n{stack}PFN {pfn:#x} type Unmovable\n",
    "Page allocated via order {o}, mask 0xcc0(GFP_KERNEL), pid {p}, tgid {p} (w), ts  ns\nPFN {pfn:#x} type Unmovable\n{stack}",
]

shape_st = st.tuples(
    st.integers(0, len(_SHAPES) - 1),
    st.sampled_from([0, 1, 3, 9]),
    st.sampled_from([1, 2, 3]),
    st.sampled_from(_STACKS),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from(["\n", "\n\n", "\r\n"]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(shape_st, max_size=25), st.integers(1, 300), st.booleans())
def test_property_fast_path_equals_exact_parser_on_mixed_and_damaged_dumps(items, chunk_size, keep_ts):
    parts = []
    for i, (shape, o, p, stack, ts, fts, sep) in enumerate(items):
        rec = _SHAPES[shape].format(o=o, p=p, ts=ts * 1000, fts=fts * 999, pfn=i << 9, stack=stack)
        parts.append(rec + sep if sep != "\r\n" else rec.replace("\n", "\r\n") + "\r\n")
    text = "".join(parts).encode()

    def view(opts: dict) -> tuple:
        errors: list = []
        agg = Aggregator(on_error=errors.append, **opts).feed(io.BytesIO(text), chunk_size=chunk_size)
        return [(g.text, g.times, g.pages, g.ts, g.free_ts, g.alloc, g.pid, g.tgid, g.comm) for g in agg.groups()], [
            (e.line, e.reason) for e in errors
        ]

    for bits in (False, True):
        fast = view({"strip_ts": not keep_ts, "alloc_bits": bits})
        exact = view({"strip_ts": not keep_ts, "alloc_bits": bits, "selection": pos.Selection(drop_released=True)})
        # -f drops released blocks on the exact path: compare only when none is released
        released = any(_SHAPES[s].count("free_ts") and f * 999 > t * 1000 for s, _, _, _, t, f, _ in items)
        if not released:
            assert fast == exact


# ---- the installed console script


def test_console_script_runs(tmp_path):
    out = tmp_path / "o.txt"
    proc = subprocess.run([str(SCRIPT), "-m", str(CURRENT), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "loaded 7\nsorting ....\nculling\n"
    assert out.read_text() == plain(G_THP, G_SLAB, G_UDEVD, G_ANON, G_MIGR, G_VMAL)
    proc = subprocess.run([str(SCRIPT), "-Q", str(CURRENT), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("Usage: page_owner_sort")


# ---- --flamegraph: the groups drawn (pageext_core.pictures.flamegraph)


def _flame_titles(svg_path: Path) -> set[str]:
    import xml.etree.ElementTree as ET

    svg = "{http://www.w3.org/2000/svg}"
    root = ET.parse(svg_path).getroot()
    return {t.text for g in root.iter(f"{svg}g") if (t := g.find(f"{svg}title")) is not None}


def test_flamegraph_draws_the_collapsed_stacks_and_still_writes_the_report(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="pictures need the pictures extra (make install installs it)")
    svg = tmp_path / "pages.svg"
    rc, text, _, _ = sort_file(capsys, tmp_path, "--flamegraph", svg)
    assert rc == 0 and text == plain(G_UDEVD, G_ANON, G_MIGR, G_VMAL, G_SLAB, G_THP)  # the report is unchanged
    collapsed = tmp_path / "c.txt"
    assert main([str(CURRENT), str(collapsed), "--collapsed"]) == 0
    roots: dict[str, int] = {}
    for line in collapsed.read_text().splitlines():
        stack, pages = line.rsplit(" ", 1)
        roots[stack.split(";")[0]] = roots.get(stack.split(";")[0], 0) + int(pages)
    titles = _flame_titles(svg)
    total = sum(roots.values())
    assert f"all: {total} pages, {total * 4096} bytes" in titles
    for root, pages in roots.items():  # each outermost caller is a tower as wide as its pages
        assert f"{root}: {pages} pages, {pages * 4096} bytes" in titles


def test_flamegraph_diff_marks_growth(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="pictures need the pictures extra (make install installs it)")
    svg = tmp_path / "growth.svg"
    old = write_old(tmp_path)
    rc, _, _ = run(capsys, "--diff", "--flamegraph", svg, old, CURRENT, tmp_path / "d.txt")
    assert rc == 0
    text = svg.read_text()
    assert "<script" not in text
    collapsed = tmp_path / "dc.txt"
    assert main(["--diff", "--collapsed", str(old), str(CURRENT), str(collapsed)]) == 0
    o = n = 0
    for line in collapsed.read_text().splitlines():
        _, a, b = line.rsplit(" ", 2)
        o, n = o + int(a), n + int(b)
    assert n > o
    # the root's hover text says what the whole dump grew by
    assert f"all: {o} -> {n} pages ({n - o:+d} pages, {(n - o) * 4096:+d} bytes)" in _flame_titles(svg)


def test_flamegraph_refuses_to_overwrite_an_input_or_the_output(capsys, tmp_path):
    out = tmp_path / "out.txt"
    rc, _, err = run(capsys, "--flamegraph", out, CURRENT, out)
    assert rc == 1 and "--flamegraph" in err and "name of its own" in err
    rc, _, err = run(capsys, "--flamegraph", CURRENT, CURRENT, out)
    assert rc == 1 and "name of its own" in err and not out.exists()
