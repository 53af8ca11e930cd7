"""page_owner_fleet on a real Dask engine: a LocalCluster of 2 worker processes, dumps made here.

The reference for every grouping is page_owner_sort itself, run on the
concatenation of the same dumps (its own tests check it against the
kernel tool's output): the fleet's text without its ``hosts:`` lines must
be byte-identical to it, for any set of dumps and options (hypothesis).
Per-host shares are checked against page_owner_sort run on each dump
alone.
"""
from __future__ import annotations

import gzip
import json
import operator
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask.distributed import Client, LocalCluster  # the fleet extra: make install has it
from gendump import write_dump
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pageext_page_owner.fleet.cli import main as fleet_main
from pageext_page_owner.fleet.engine import Options, Part, count_part, local_cluster, plan, reduce_local, run
from pageext_page_owner.page_owner_sort import main as sort_main
from pageext_page_owner.page_owner_sort.aggregate import cull, group_key
from pageext_page_owner.page_owner_sort.parse import Aggregator

SHM = Path("/dev/shm")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = local_cluster(2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def work() -> Iterator[Path]:
    base = SHM if SHM.is_dir() and os.access(SHM, os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="pageext-fleet-test-", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def make_round(d: Path, hosts: list[tuple[str, int, int, int]], gz: bool = False) -> list[Path]:
    """Dumps ``d/<host>.txt`` (``.txt.gz``) for ``(host, records, seed, snapshot)``; sorted by name."""
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for host, n, seed, snap in hosts:
        p = d / (host + (".txt.gz" if gz else ".txt"))
        write_dump(p, n, seed=seed, snapshot=snap, stacks=40, gzip=gz)
        out.append(p)
    return sorted(out)


def concat(paths: list[Path], out: Path) -> Path:
    with open(out, "wb") as f:
        for p in paths:
            f.write(gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
    return out


def sort_output(args: list[str], dump: Path, work: Path) -> bytes:
    out = work / "sorted.out"
    assert sort_main(["--jobs=1", *args, str(dump), str(out)]) == 0
    return out.read_bytes()


def fleet(cluster: LocalCluster, args: list[str]) -> int:
    return fleet_main(["--scheduler", cluster.scheduler_address, *args])


def without_hosts(text: bytes) -> bytes:
    return b"".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith(b"hosts: "))


OPTION_SETS = [
    [],
    ["-m"],
    ["-a"],
    ["--sort=alloc_ts"],
    ["--cull=pid,name"],
    ["--cull=stacktrace,allocator", "-m"],
    ["--cull=name", "-n"],
    ["--name=sshd,java,postgres", "-p"],
    ["-s"],
    # keys that show or sort by the first record's fields (a group's pid, timestamp): the merge order matters
    ["--cull=stacktrace", "-p"],
    ["--cull=name", "--sort=pid,alloc_ts"],
    ["--sort=pid,alloc_ts"],
    ["--cull=stacktrace", "--sort=alloc_ts"],
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hosts=st.lists(st.tuples(st.integers(1, 300), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=4),
    options=st.sampled_from(OPTION_SETS),
    split=st.booleans(),
)
def test_groups_equal_page_owner_sort_on_the_concatenation(cluster: LocalCluster, work: Path,
                                                           hosts: list[tuple[int, int, int]], options: list[str],
                                                           split: bool) -> None:
    d = work / f"round-{len(list(work.iterdir()))}"
    dumps = make_round(d, [(f"host{i}", n, seed, snap) for i, (n, seed, snap) in enumerate(hosts)])
    out = d / "fleet.txt"
    extra = ["--split-bytes", str(1 << 16)] if split else []  # a dump of 300 records is ~200 KB: several tasks
    assert fleet(cluster, [*options, *extra, *map(str, dumps), str(out)]) == 0
    want = sort_output(options, concat(dumps, d / "all.txt"), d)
    got = out.read_bytes()
    assert without_hosts(got) == want
    assert got.count(b"\nhosts: ") + got.startswith(b"hosts: ") == want.count(b" times, ")


def test_host_shares_are_each_hosts_own_groups(cluster: LocalCluster, work: Path) -> None:
    dumps = make_round(work / "r", [("web1", 400, 1, 0), ("web2", 300, 1, 1), ("db1", 200, 2, 0)])
    parts = plan([(p.name.split(".")[0], str(p)) for p in dumps], split_bytes=1 << 16)
    assert len(parts) > len(dumps)  # the big dumps were cut: several tasks each
    fields = ("stacktrace", "comm")
    opts = Options(fields=fields)
    with Client(cluster) as client:
        root = run(client, parts, opts)
    assert root.hosts == ["db1", "web1", "web2"]
    for h, path in zip(root.hosts, dumps):
        own = cull(Aggregator().feed(str(path)).groups(), list(fields))
        want = {group_key(g, fields): (g.times, g.pages) for g in own}
        hi = root.hosts.index(h)
        got = {k: root.by_host[i][hi] for k, i in root.index.items() if hi in root.by_host[i]}
        assert got == want
    for i, g in enumerate(root.groups):
        assert sum(t for t, _ in root.by_host[i].values()) == g.times
        assert sum(p for _, p in root.by_host[i].values()) == g.pages
    # the same tree of merges in one process gives the same result
    local = reduce_local([count_part(p, opts) for p in parts])
    assert (local.hosts, local.index, local.groups, local.by_host) == (root.hosts, root.index, root.groups, root.by_host)


def test_json_csv_and_parquet_carry_the_hosts(cluster: LocalCluster, work: Path) -> None:
    import pyarrow.parquet as pq

    dumps = make_round(work / "r", [("web1", 300, 1, 0), ("web2", 200, 1, 1), ("db1", 100, 2, 0)], gz=True)
    args = ["--cull=stacktrace", "--top-hosts", "2", *map(str, dumps)]
    assert fleet(cluster, [*args, str(work / "o.json")]) == 0
    assert fleet(cluster, [*args, str(work / "o.csv")]) == 0
    assert fleet(cluster, [*args, str(work / "o.parquet")]) == 0
    doc = json.loads((work / "o.json").read_text())
    assert doc["tool"] == "page_owner_fleet"
    assert [h["host"] for h in doc["hosts"]] == ["db1", "web1", "web2"]
    assert doc["records"] == 600 == sum(h["records"] for h in doc["hosts"])
    want = json.loads(sort_output(["--format=json", "--cull=stacktrace"], concat(dumps, work / "all.txt"), work))
    assert [{k: v for k, v in g.items() if k not in ("hosts", "top_hosts")} for g in doc["groups"]] == want["groups"]

    table = pq.read_table(work / "o.parquet").to_pylist()
    by_group: dict[int, list[dict]] = {}
    for row in table:
        by_group.setdefault(row["group"], []).append(row)
    assert sorted(by_group) == list(range(1, len(doc["groups"]) + 1))
    for k, g in enumerate(doc["groups"], 1):
        rows = by_group[k]
        assert len(rows) == g["hosts"] == rows[0]["group_hosts"]
        assert sum(r["pages"] for r in rows) == g["pages"] == rows[0]["group_pages"]
        assert sum(r["times"] for r in rows) == g["times"]
        assert rows[0]["stacktrace"] == g["stacktrace"]
        top = sorted(rows, key=lambda r: (-r["pages"], r["host"]))[:2]
        assert g["top_hosts"] == [{"host": r["host"], "times": r["times"], "pages": r["pages"]} for r in top]
    per_host = {h: sum(r["pages"] for r in table if r["host"] == h) for h in ("db1", "web1", "web2")}
    for h, p in zip(("db1", "web1", "web2"), dumps):
        alone = json.loads(sort_output(["--format=json"], p, work))
        assert per_host[h] == alone["pages"]
    csv_lines = (work / "o.csv").read_text().splitlines()
    assert csv_lines[0] == "times,pages,stacktrace,hosts,top_hosts"


def test_diff_equals_page_owner_sort_diff_on_the_concatenations(cluster: LocalCluster, work: Path) -> None:
    old = make_round(work / "old", [("web1", 300, 1, 0), ("web2", 200, 1, 1)])
    new = make_round(work / "new", [("web1", 350, 1, 2), ("web2", 250, 1, 3)])
    out = work / "growth.txt"
    assert fleet(cluster, ["--diff", str(work / "old"), str(work / "new"), str(out)]) == 0
    want = work / "want.txt"
    assert sort_main(["--jobs=1", "--diff", str(concat(old, work / "o.txt")), str(concat(new, work / "n.txt")),
                      str(want)]) == 0
    assert out.read_bytes() == want.read_bytes()
    assert out.read_bytes().startswith(b"total: +")
    assert fleet(cluster, ["--diff", str(work / "old"), str(work / "new"), str(work / "g.parquet")]) == 0
    import pyarrow.parquet as pq

    rows = pq.read_table(work / "g.parquet").to_pylist()
    assert [r["delta_pages"] for r in rows] == sorted((r["delta_pages"] for r in rows), reverse=True)


def test_host_regex_names_hosts_from_the_path(cluster: LocalCluster, work: Path) -> None:
    for h in ("alpha", "beta"):
        make_round(work / h, [("page_owner", 50, 1, 0)])
    out = work / "o.json"
    assert fleet(cluster, ["--host-regex", r"/(?P<host>\w+)/page_owner", str(work / "*" / "page_owner.txt"), str(out)]) == 0
    assert [h["host"] for h in json.loads(out.read_text())["hosts"]] == ["alpha", "beta"]


def test_unparsable_records_are_reported_with_their_line_in_a_split_dump(cluster: LocalCluster, work: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    good = make_round(work / "r", [("web1", 400, 1, 0)])[0]
    data = good.read_bytes()
    cut = data.index(b"\n\n", len(data) * 3 // 4) + 2
    bad = work / "bad" / "web1.txt"
    bad.parent.mkdir()
    bad.write_bytes(data[:cut] + b"this is not a record\n\n" + data[cut:])
    line = data[:cut].count(b"\n") + 1
    assert len(plan([("web1", str(bad))], 1 << 16)) > 1
    assert fleet(cluster, ["--split-bytes", str(1 << 16), str(bad), str(work / "o.txt")]) == 0
    err = capsys.readouterr().err
    assert f"1 record of host web1 could not be parsed and was skipped (first: {bad}:{line}:" in err
    assert without_hosts((work / "o.txt").read_bytes()) == sort_output([], good, work)


@pytest.mark.parametrize("case", ["glob", "missing", "corrupt_gzip", "no_records", "duplicate_host", "parquet_stdout",
                                  "empty_dump", "not_gzip", "bad_scheduler", "workers_and_scheduler", "diff_no_dir"])
def test_bad_inputs_exit_2_with_one_line_naming_the_file(cluster: LocalCluster, work: Path, case: str,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    """One line on stderr, from this process or any worker (fd-level capture: no "Compute Failed" block)."""
    good = make_round(work / "r", [("web1", 20, 1, 0)], gz=True)[0]
    out = str(work / "o.txt")
    if case == "glob":
        args, named = [str(work / "nothing-*.txt"), out], "nothing-*.txt"
    elif case == "missing":
        args, named = [str(good), str(work / "web2.txt"), out], "web2.txt"
    elif case == "corrupt_gzip":
        bad = work / "web2.txt.gz"
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        args, named = [str(good), str(bad), out], str(bad)
    elif case == "no_records":
        bad = work / "web2.txt"
        bad.write_bytes(b"hello\nworld\n\nnot a dump\n\n")
        args, named = [str(good), str(bad), out], f"{bad}:1:"
    elif case == "empty_dump":  # what `ssh host cat ... | gzip > web2.txt.gz` leaves when ssh fails
        bad = work / "web2.txt.gz"
        bad.write_bytes(gzip.compress(b""))
        args, named = [str(good), str(bad), out], f"no page_owner records in {bad}: the dump is empty"
    elif case == "not_gzip":
        bad = work / "web2.txt.gz"
        bad.write_bytes(bytes(range(7, 250)) * 40)
        args, named = [str(good), str(bad), out], f"{bad}: named .gz but not gzip data"
    elif case == "bad_scheduler":
        args, named = ["--scheduler", "bogus://", str(good), out], "--scheduler bogus://: not a scheduler address"
    elif case == "workers_and_scheduler":
        args, named = ["--workers", "2", str(good), out], "drop --workers"
    elif case == "diff_no_dir":
        args, named = ["--diff", str(good.parent), str(work / "round2"), out], "round2'" + ": no such directory"
    elif case == "duplicate_host":
        other = work / "web1.txt"
        other.write_bytes(gzip.decompress(good.read_bytes()))
        args, named = [str(good), str(other), out], "two dumps for host 'web1'"
    else:
        args, named = [str(good), "-", "--format=parquet"], "parquet"
    assert fleet(cluster, args) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("page_owner_fleet: error: ") and named in err, err
    assert not Path(out).exists()


def test_page_owner_sort_and_the_fleet_package_import_no_dask() -> None:
    code = ("import sys, pageext_page_owner.page_owner_sort, pageext_page_owner.fleet;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'pyarrow')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_a_dump_is_one_task_unless_it_is_big_and_plain(work: Path) -> None:
    dumps = make_round(work / "r", [("a", 300, 1, 0), ("b", 300, 1, 1)])
    gz = make_round(work / "z", [("c", 300, 1, 0)], gz=True)
    assert plan([("a", str(dumps[0])), ("b", str(dumps[1]))]) == [Part("a", str(dumps[0])), Part("b", str(dumps[1]))]
    parts = plan([("a", str(dumps[0])), ("c", str(gz[0]))], split_bytes=1 << 16)
    assert [p.host for p in parts].count("c") == 1 and [p.host for p in parts].count("a") > 1
    cuts = [(p.start, p.stop) for p in parts if p.host == "a"]
    assert cuts[0][0] == 0 and cuts[-1][1] == dumps[0].stat().st_size
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))


def test_the_grouping_options_are_page_owner_sorts_own() -> None:
    # one definition (page_owner_sort.cli.grouping_options) serves both commands: same flags, same help
    from pageext_page_owner.fleet.cli import cli as fleet_cli
    from pageext_page_owner.page_owner_sort.cli import cli as sort_cli

    names = ("-a", "-m", "-n", "-p", "-P", "-s", "-t", "-r", "-f", "--pid", "--tgid", "--name", "--cull", "--sort")

    def grouping(cmd: object) -> list[tuple[str, str | None]]:
        return [(p.opts[0], getattr(p, "help", None)) for p in cmd.params if p.opts[0] in names]  # type: ignore[attr-defined]

    assert [o for o, _ in grouping(fleet_cli)] == list(names)
    assert grouping(fleet_cli) == grouping(sort_cli)


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "-t"], "only one of -a -m -n -p -P -r -s -t may be given"),
    (["--sort=bogus"], "--sort=bogus: unknown key 'bogus'"),
    (["--cull=bogus"], "--cull=bogus: unknown key 'bogus'"),
    (["--pid=1,x"], "--pid=1,x: 'x' is not a number"),
])
def test_grouping_option_mistakes_are_usage_errors_as_in_page_owner_sort(work: Path, capsys: pytest.CaptureFixture[str],
                                                                          args: list[str], message: str) -> None:
    dump = make_round(work / "r", [("web1", 20, 1, 0)])[0]
    assert fleet_main([*args, str(dump), str(work / "out.txt")]) == 2  # refused before any cluster starts
    err = capsys.readouterr().err
    assert err.startswith("page_owner_fleet: error: ") and message in err
    assert not (work / "out.txt").exists()


def _state(p: object) -> tuple[object, ...]:
    return tuple(repr(getattr(p, f)) for f in ("hosts", "stats", "index", "groups", "by_host"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 120), min_size=2, max_size=11), fields=st.sampled_from([(), ("stacktrace",),
                                                                                            ("comm", "pid")]))
def test_merging_many_at_once_equals_merging_two_at_a_time(work: Path, sizes: list[int],
                                                          fields: tuple[str, ...]) -> None:
    """A merge task takes up to FAN_IN partials: the result is the pairwise fold's, and no operand changes."""
    d = work / f"many-{len(list(work.iterdir()))}"
    d.mkdir()
    parts = []
    for i, n in enumerate(sizes):
        p = d / f"h{i % 3}-{i}.txt"  # a host met again: one dump read in parts
        write_dump(p, n, seed=i % 2, snapshot=i, stacks=12)
        parts.append(Part(f"h{i % 3}", str(p)))
    partials = [count_part(p, Options(fields=fields)) for p in parts]
    before = [_state(p) for p in partials]
    folded = partials[0]
    for p in partials[1:]:
        folded = folded.merged(p)
    assert _state(partials[0].merged(*partials[1:])) == _state(folded)
    assert _state(reduce_local(partials)) == _state(folded)
    assert [_state(p) for p in partials] == before
    # a partial travels between workers pickled (in its own compact form): it arrives the same
    assert _state(pickle.loads(pickle.dumps(folded, protocol=5))) == _state(folded)


@pytest.mark.parametrize("n", [1, 3, 11])
def test_finish_runs_on_the_merged_groups_and_only_its_result_comes_back(cluster: LocalCluster, work: Path,
                                                                         n: int) -> None:
    """One dump (no merge), one level of merges, and two levels (more than FAN_IN parts)."""
    dumps = make_round(work / f"f{n}", [(f"h{i:02}", 40, 1, i) for i in range(n)])
    parts = plan([(p.name.split(".")[0], str(p)) for p in dumps])
    opts = Options(fields=("stacktrace",))
    with Client(cluster) as client:
        root = run(client, parts, opts)
        got = run(client, parts, opts, finish=operator.attrgetter("hosts", "by_host"))
    assert got == (root.hosts, root.by_host)
    assert root.hosts == [f"h{i:02}" for i in range(n)]


def test_relative_paths_are_read_by_workers_whose_directory_differs(cluster: LocalCluster, work: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers were started in another directory: the command sends absolute paths, and reports the given ones."""
    make_round(work / "dumps", [("web1", 60, 1, 0), ("web2", 40, 1, 1)])
    monkeypatch.chdir(work)
    assert fleet(cluster, ["dumps/*.txt", "o.json"]) == 0
    doc = json.loads((work / "o.json").read_text())
    assert [(h["host"], h["input"]) for h in doc["hosts"]] == [("web1", "dumps/web1.txt"), ("web2", "dumps/web2.txt")]


def test_diff_names_hosts_of_one_round_only_and_its_json_is_the_fleets(cluster: LocalCluster, work: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    make_round(work / "old", [("web1", 60, 1, 0), ("web2", 40, 1, 1)])
    make_round(work / "new", [("web1", 70, 1, 2), ("db9", 40, 1, 3)])
    out = work / "g.json"
    assert fleet(cluster, ["--diff", str(work / "old"), str(work / "new"), str(out)]) == 0
    err = capsys.readouterr().err
    assert f"warning: 1 host only in {work / 'old'}: web2 (their pages count as shrinkage)" in err
    assert f"warning: 1 host only in {work / 'new'}: db9 (their pages count as growth)" in err
    assert json.loads(out.read_text())["tool"] == "page_owner_fleet"


def test_a_scheduler_nobody_runs_is_said_at_once_exit_3(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = make_round(work / "r", [("web1", 20, 1, 0)])[0]
    assert fleet_main(["--scheduler", "tcp://127.0.0.1:9", str(good), str(work / "o.txt")]) == 3
    err = capsys.readouterr().err
    assert err == ("page_owner_fleet: error: --scheduler tcp://127.0.0.1:9: cannot reach the scheduler: "
                   "connection refused by 127.0.0.1:9 (is a scheduler running there?)\n")


def test_a_worker_without_the_extra_is_a_cluster_error(work: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster of one's own whose workers lack pyarrow: one line saying what to install there, exit 3."""
    import pageext_page_owner.fleet.cli as fleet_cli

    def run_on_a_bare_worker(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    class NoCluster:
        def close(self) -> None:
            pass

    monkeypatch.setattr(fleet_cli, "run", run_on_a_bare_worker)
    monkeypatch.setattr(fleet_cli, "_client", lambda scheduler, workers: (NoCluster(), None))
    good = make_round(work / "r", [("web1", 20, 1, 0)])[0]
    assert fleet_main(["--scheduler", "tcp://sched:8786", str(good), str(work / "o.parquet")]) == 3
    assert capsys.readouterr().err == ("page_owner_fleet: error: a worker cannot import pyarrow: install "
                                       "'pageext-page-owner[fleet]' on every worker (it brings Dask and pyarrow, "
                                       "which the Parquet report needs)\n")
    assert not (work / "o.parquet").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="the workers inherit it by fork, which the cluster uses on Linux only")
def test_forked_workers_collect_young_garbage_less_often_and_this_process_keeps_its_threshold(
        cluster: LocalCluster) -> None:
    """A partial is ~100,000 objects without cycles: the fleet's workers run gc's young generation less often."""
    import gc

    from dask.distributed import Client

    from pageext_page_owner.fleet.engine import WORKER_GC_THRESHOLD

    with Client(cluster) as client:
        got = client.run(gc.get_threshold)
    assert set(got.values()) == {WORKER_GC_THRESHOLD} and len(got) == 2
    assert gc.get_threshold() != WORKER_GC_THRESHOLD  # restored here once the workers were forked
