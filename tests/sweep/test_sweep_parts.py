"""The sweep's parts without an engine: seeds, grid syntax, run ids, intervals, flattened figures."""
from __future__ import annotations

import math
import re

import pytest
from sweepsupport import TINY

from pageext_core.session.config import load_session
from pageext_core.session.runner import RunOptions, run_session
from pageext_core.sweep import (
    NORMAL_FROM,
    T975,
    SweepError,
    flatten,
    interval,
    parse_grid,
    parse_mixed_blocks,
    parse_seeds,
    run_id,
    split_values,
)


def test_seeds_ranges_lists_and_mistakes() -> None:
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("7") == [7]
    assert parse_seeds("3,1-2, 2-4") == [3, 1, 2, 4]  # each seed once, in the order given
    for bad, says in [("5-1", "runs backwards; write 1-5"), ("a-3", "cannot read 'a-3'"), ("-1", "cannot read"),
                      ("1,,2", "cannot read ''")]:
        with pytest.raises(SweepError, match=re.escape(says)):
            parse_seeds(bad)


def test_grid_values_split_at_top_level_commas_and_read_as_toml() -> None:
    assert split_values('64MiB,"128MiB"') == ["64MiB", '"128MiB"']
    assert split_values('{0 = 9, 9 = 1},{0 = 1}') == ["{0 = 9, 9 = 1}", "{0 = 1}"]
    assert split_values('["a,b"],[1, 2]') == ['["a,b"]', "[1, 2]"]
    (axis,) = parse_grid(['workload.orders={0 = 9, 9 = 1},{0 = 1}'])
    assert axis.key == "workload.orders" and axis.values == ({"0": 9, "9": 1}, {"0": 1})
    (axis,) = parse_grid(["machine.memory=64MiB,128MiB"])
    assert axis.values == ("64MiB", "128MiB")  # bare words are strings, as with --set
    (axis,) = parse_grid(["workload.operations=100,2000"])
    assert axis.values == (100, 2000)


@pytest.mark.parametrize("items, says", [
    (["machine.memory"], "expected KEY=V1,V2"),
    (["workload.seed=1,2"], "seeds are given with --seeds"),
    (["a=1", "a=2"], "a is given twice"),
    (["a=1,,2"], "an empty value"),
    (["a=1,1"], "value 1 is given twice"),
])
def test_grid_mistakes(items: list[str], says: str) -> None:
    with pytest.raises(SweepError, match=re.escape(says)):
        parse_grid(items)


def test_run_ids_depend_on_the_parameters_only() -> None:
    a = run_id(1, {"machine.memory": "64MiB", "workload.operations": 100})
    assert a == run_id(1, {"workload.operations": 100, "machine.memory": "64MiB"})  # key order does not matter
    assert len({a, run_id(2, {"machine.memory": "64MiB", "workload.operations": 100}),
                run_id(1, {"machine.memory": "128MiB", "workload.operations": 100}), run_id(1, {})}) == 4


def _t_quantile(df: int, p: float = 0.975) -> float:
    """Student's t quantile by integrating its density (Simpson) and bisecting: independent of the table."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

    def cdf(x: float) -> float:
        n = 4000
        h = x / n
        s = sum((1 if i in (0, n) else 4 if i % 2 else 2) * c * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2)
                for i in range(n + 1))
        return 0.5 + s * h / 3

    lo, hi = 0.0, 20.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return lo


def test_the_t_table_is_students_t() -> None:
    for df in (1, 2, 5, 10, 29):
        assert T975[df - 1] == pytest.approx(_t_quantile(df), abs=2e-3)


def test_interval_t_below_thirty_normal_from_thirty() -> None:
    small = [1.0, 2.0, 3.0, 4.0]  # mean 2.5, sd sqrt(5/3)
    got = interval(small)
    half = 3.182 * math.sqrt(5 / 3) / 2
    assert got["method"] == "t" and got["mean"] == 2.5
    assert got["low"] == pytest.approx(2.5 - half) and got["high"] == pytest.approx(2.5 + half)
    big = [float(i % 2) for i in range(NORMAL_FROM)]
    got = interval(big)
    sd = math.sqrt(sum((v - 0.5) ** 2 for v in big) / (len(big) - 1))
    assert got["method"] == "normal" and got["high"] - got["mean"] == pytest.approx(1.96 * sd / math.sqrt(len(big)))
    assert interval([5.0]) == {"n": 1, "mean": 5.0, "low": None, "high": None, "method": None}


def test_mixed_blocks_are_read_from_pagetypeinfo_over_every_node_and_zone() -> None:
    text = (
        "Page block order: 9\n\nNumber of blocks type     Unmovable      Movable\n"
        "Node 0, zone    DMA32            3            4 \n"
        "\nNumber of mixed blocks     Unmovable      Movable  Reclaimable   HighAtomic      Isolate \n"
        "Node 0, zone      DMA            0            1            0            0            0 \n"
        "Node 0, zone    DMA32            2            5            1            0            0 \n"
        "Page block order: 9\n"
        "\nNumber of mixed blocks     Unmovable      Movable  Reclaimable   HighAtomic      Isolate \n"
        "Node 1, zone   Normal            4            0            0            0            0 \n"
    )
    assert parse_mixed_blocks(text) == {"mixed_blocks.total": 13, "mixed_blocks.Unmovable": 6,
                                        "mixed_blocks.Movable": 6, "mixed_blocks.Reclaimable": 1,
                                        "mixed_blocks.HighAtomic": 0, "mixed_blocks.Isolate": 0}
    assert parse_mixed_blocks("Number of blocks type  Unmovable\nNode 0, zone DMA 3\n") == {}


def test_flattened_figures_agree_with_the_summary_and_the_reports() -> None:
    sess = load_session(None, text=TINY, overrides=["workload.operations=2000", "workload.faults.overrun=2",
                                                    'boot.cmdline="page_owner=on debug_pagealloc=on debug_guardpage_minorder=1"'])
    out = run_session(sess, RunOptions(write_files=False))
    s = out.summary
    row = flatten(s)
    p = s["planted"]
    assert p["planted"] >= 3
    for k in ("planted", "detected", "missed", "undetectable"):
        assert row[f"planted.{k}"] == p[k]
        assert sum(row[f"planted.{kind}.{k}"] for kind in ("use_after_free", "bit_flip", "overrun")) == p[k]
    assert row["planted.overrun.planted"] + row["planted.overrun.skipped"] == 2
    kinds = [f["kind"] for f in s["findings"]["items"]]
    assert row["findings.count"] == len(kinds)
    for kind in set(kinds) | {"guard-hit", "bad-page-state"}:
        assert row[f"findings.{kind}"] == kinds.count(kind)
    # free blocks per order, added up from what buddyinfo prints (one line per zone, one column per order)
    per_order = [0] * 11
    for line in out.page_ext.report("buddyinfo").splitlines():
        for o, n in enumerate(line.split()[4:]):
            per_order[o] += int(n)
    assert [row[f"free_blocks.order_{o}"] for o in range(11)] == per_order
    assert row["page_ext.bytes"] == out.page_ext.nbytes > 0
    assert row["workload.failures"] == out.workload.failures
    assert row["clients.guard.guard_pages"] == s["clients"]["guard"]["guard_pages"]
    assert row["timing.elapsed_seconds"] == s["timing"]["elapsed_seconds"]
    assert all(not isinstance(v, (dict, list)) for v in row.values())


def test_the_memory_check_weighs_the_largest_run_against_each_worker() -> None:
    from pageext_core.sweep import check_memory

    runs = {"--grid machine.memory=64MiB": 100 << 20, "--grid machine.memory=1GiB": 900 << 20}
    check_memory(runs, [("worker tcp://a:1", 2, 2 << 30), ("worker tcp://b:1", 1, None)])  # fits; unknown: unchecked
    with pytest.raises(SweepError) as e:
        check_memory(runs, [("worker tcp://a:1", 2, 2 << 30), ("worker tcp://b:1", 4, 2 << 30)])
    assert str(e.value) == ("--grid machine.memory=1GiB: one run needs about 900.0 MiB of host memory and worker "
                            "tcp://b:1 runs 4 at once (3.5 GiB), but it has 2.0 GiB available; give the machines "
                            "less memory, or start that worker with --nthreads 2")
    with pytest.raises(SweepError, match="; use --workers 2 or fewer$"):
        check_memory(runs, [("this host", 4, 2 << 30)])
    with pytest.raises(SweepError, match="it has 512.0 MiB available; give the machines less memory$"):
        check_memory(runs, [("this host", 1, 512 << 20)])
