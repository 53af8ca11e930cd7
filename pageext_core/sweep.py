"""Session sweeps: one session over many seeds and grid points, each run a Dask task.

``pageext sweep SESSION --seeds 1-1000 --grid KEY=V1,V2 ...`` runs every
combination of the grid's values and the seeds as one task on a
``dask.distributed`` cluster (a ``LocalCluster`` of worker processes by
default, any scheduler by address) and collects one row per run: the
parameters and the figures of ``summary.json`` flattened.  The engine is
Dask's; nothing here schedules, retries or pools processes itself.

Why the pieces are as they are:

* Everything the user typed is checked *before* anything is submitted: the
  seeds, every grid key and value (each grid point is loaded exactly as
  ``pageext run --set`` would load it, so a misspelt key gets the same
  did-you-mean message), and the host memory the runs will take together.
* A task gets the session's text, not a path, so a worker on another host
  needs no copy of the file (a function workload's module must still be
  importable there).  It returns a plain dict, never the machine.
* A run that fails is a row with its error; a worker that dies is Dask's
  business (the task is rescheduled, and ``retries=1`` covers an exception
  in the engine); only a task Dask gives up on becomes an error row.
* Each run has a stable id (a hash of its parameters), and the table is
  rewritten atomically as results stream in, so Ctrl-C keeps what finished
  and rerunning the same sweep skips the runs already in the table.

Dask and pyarrow are an optional extra (``pip install 'pageext-core[sweep]'``):
this module imports them only inside the functions that need them.
"""
from __future__ import annotations

import collections
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pageext_core.reports import FINDING_KINDS, atomic_write
from pageext_core.session.config import FAULT_KINDS, SessionError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TABLE = "results"  # results.parquet and results.csv
MANIFEST = "sweep.json"
MANIFEST_SCHEMA = "pageext.sweep/1"
REPORT_SCHEMA = "pageext.sweep-report/1"
PARAM_PREFIX = "param."  # grid columns: param.machine.memory (a figure may share a key's name)
BASE_COLUMNS = ("run_id", "seed")
STATUS_COLUMNS = ("status", "exit_code", "error", "warnings", "worker")
FLUSH_SECONDS = 2.0  # the table is rewritten at most this often while results stream in ...
FLUSH_SHARE = 0.1  # ... and rewriting it takes at most this share of the time (a big table on a slow disk)
BATCH_SECONDS = 0.25  # runs shorter than this go to a worker several to a task (one row each all the same)
INSTALL_HINT = "pageext sweep needs the sweep extra: pip install 'pageext-core[sweep]' (make install has it)"


class SweepError(SessionError):
    """A sweep that cannot start (bad seeds, grid, output folder, memory): exit code 2, nothing run."""


class SweepClusterError(RuntimeError):
    """The cluster cannot be used (its scheduler is unreachable): exit code 3, nothing run.

    Not the user's input but the environment, as ``page_owner_fleet`` says
    the same failure (its exit code 3 too).
    """


# -- what the user asked for ---------------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``1-1000``, ``7``, ``1,5,10-20``: the seeds in the order given, each once."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise SweepError(f"--seeds {text}: cannot read {part!r}; write seeds like 1-1000, 7 or 1,5,10-20 "
                             "(whole numbers, 0 or more)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise SweepError(f"--seeds {text}: range {part!r} runs backwards; write {hi}-{lo}")
        if hi - lo > 10_000_000:
            raise SweepError(f"--seeds {text}: range {part!r} has more than ten million seeds")
        seeds.extend(range(lo, hi + 1))
    return list(dict.fromkeys(seeds))


def split_values(raw: str) -> list[str]:
    """``V1,V2`` split at the commas that are not inside quotes, brackets or braces."""
    out: list[str] = []
    depth = 0
    quote: str | None = None
    cur: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if quote:
            if ch == "\\" and quote == '"' and i + 1 < len(raw):
                cur.append(raw[i:i + 2])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    out.append("".join(cur).strip())
    return out


def toml_value(raw: str) -> Any:
    """A value as ``--set`` reads it: TOML (``4``, ``true``, ``"x"``, ``[1, 2]``), a bare word as a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


@dataclass(frozen=True)
class GridAxis:
    key: str
    raws: tuple[str, ...]  # each value as typed (for --set and for errors)
    values: tuple[Any, ...]  # each value as TOML reads it


def parse_grid(items: Sequence[str]) -> list[GridAxis]:
    """``KEY=V1,V2`` options, each an axis of the grid (checked against the session later)."""
    axes: list[GridAxis] = []
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key or not raw.strip():
            raise SweepError(f"--grid {item!r}: expected KEY=V1,V2,... e.g. --grid machine.memory=64MiB,128MiB")
        if key == "workload.seed":
            raise SweepError(f"--grid {item}: seeds are given with --seeds, e.g. --seeds {raw}")
        if any(a.key == key for a in axes):
            raise SweepError(f"--grid {item}: {key} is given twice; give all its values in one --grid")
        raws = split_values(raw)
        if any(not r for r in raws):
            raise SweepError(f"--grid {item}: an empty value; separate values with single commas")
        if len(set(raws)) != len(raws):
            dup = next(r for r in raws if raws.count(r) > 1)
            raise SweepError(f"--grid {item}: value {dup} is given twice")
        axes.append(GridAxis(key, tuple(raws), tuple(toml_value(r) for r in raws)))
    return axes


def run_id(seed: int, params: Mapping[str, Any]) -> str:
    """A stable id for one run: the same seed and grid point give the same id, in any sweep."""
    canon = json.dumps({"seed": seed, "params": dict(sorted(params.items()))}, sort_keys=True, default=str,
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs for one run (picklable; the session travels as text)."""

    run_id: str
    seed: int | None  # None: the session's own seed (no --seeds)
    params: tuple[tuple[str, str, Any], ...]  # (key, raw value, value) of the grid point
    session_text: str | None  # None: the built-in session
    session_path: str | None
    fixed: tuple[str | tuple[str, str], ...]  # --set/--memory overrides for every run
    boot: str = ""
    disable: tuple[str, ...] = ()
    strict: bool = False
    keep_dir: str | None = None  # write the run's outputs here (--keep-runs)
    seeds_label: str = "--seeds"


def task_overrides(t: RunTask) -> list[str | tuple[str, str]]:
    """The run's overrides in order: the fixed ones, the grid point, then the seed; each labelled as typed."""
    out: list[str | tuple[str, str]] = list(t.fixed)
    for key, raw, _ in t.params:
        out.append((f"{key}={raw}", f"--grid {key}={raw}"))
    if t.seed is not None:
        out.append((f"workload.seed={t.seed}", f"{t.seeds_label} (seed {t.seed})"))
    return out


def load_task_session(t: RunTask) -> Any:
    """The session of one run, checked as ``pageext run`` checks it (SessionError on a mistake)."""
    from pageext_core.session.config import load_session

    return load_session(t.session_path, overrides=task_overrides(t), text=t.session_text)


# -- one run, on a worker ------------------------------------------------------------------------------------------


def execute(t: RunTask) -> dict[str, Any]:
    """Run one task in this process and return its row; never raises for a problem of the run itself.

    A session the run rejects (a report name, a boot table, the host's
    memory) is an ``error`` row with the message ``pageext run`` would print;
    a run that stops on an error (a function workload raising) is a
    ``failed`` row with the figures of the state reached.
    """
    import socket

    from pageext_core.session.runner import RunOptions, run_session

    row: dict[str, Any] = {"run_id": t.run_id, "seed": t.seed}
    for key, _raw, value in t.params:
        row[PARAM_PREFIX + key] = value
    warnings: list[str] = []
    row.update(status="error", exit_code=None, error=None, warnings=None,
               worker=f"{socket.gethostname()}:{os.getpid()}")
    try:
        sess = load_task_session(t)
        if t.seed is None:
            row["seed"] = sess.workload.seed
        opts = RunOptions(out=t.keep_dir, boot=t.boot, disable=list(t.disable), strict=t.strict,
                          write_files=t.keep_dir is not None, warn=warnings.append)
        outcome = run_session(sess, opts)
    except MemoryError as exc:
        row.update(exit_code=3, error=f"the host ran out of memory{f' ({exc})' if str(exc) else ''}")
        return row
    except Exception as exc:  # a configuration the run rejects, an unwritable output, a bug: this row says which
        from pageext_core.bootparams import BootParamError
        from pageext_core.discovery import PluginLoadError
        from pageext_core.mm.errors import ConfigError
        from pageext_core.reports import ReportError

        usage = isinstance(exc, (SessionError, ConfigError, PluginLoadError, BootParamError, ReportError))
        row.update(exit_code=2 if usage else 3, error=str(exc) if usage else f"{type(exc).__name__}: {exc}")
        row["warnings"] = "; ".join(warnings) or None
        return row
    row["warnings"] = "; ".join(warnings) or None
    row["exit_code"] = outcome.exit_code
    row["status"] = "failed" if outcome.workload.error else "ok"
    row["error"] = outcome.workload.error
    row.update(flatten(outcome.summary))
    row.update(mixed_blocks(outcome.page_ext))
    return row


def execute_batch(tasks: Sequence[RunTask]) -> tuple[list[dict[str, Any]], float]:
    """Several runs in one Dask task, one after the other: their rows and the seconds they took.

    For runs of a few tens of milliseconds, Dask's round trip per task and
    the row's trip back are a share of each run worth saving.  A run's
    problem is still its own row (``execute`` never raises for one).
    """
    global _frozen
    t0 = time.perf_counter()
    if not _frozen:  # once per worker process, before its first run
        import gc
        import multiprocessing

        if multiprocessing.parent_process() is not None:  # a worker process of its own, not a caller's
            from pageext_core.session.runner import run_session  # noqa: F401  (imported before the freeze)

            gc.collect()
            gc.freeze()
        _frozen = True
    rows = [execute(t) for t in tasks]
    return rows, time.perf_counter() - t0


# A worker process holds Dask and this package: tens of thousands of objects that live as long as it does.
# The cyclic garbage collector walks all of them in every full collection, several times a run, which a
# process that only runs sessions pays less for; gc.freeze() takes them out of its reach.  Only in a
# worker process of its own (a LocalCluster's, a dask-worker's): never in a process that calls this itself.
_frozen = False


def flatten(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one ``summary.json`` as flat columns (the same names in every row).

    Planted, detected, missed and undetectable bugs in total and per kind;
    findings in total and per kind; the workload's counts and failures;
    page_ext bytes; free pages, and free blocks per order over every zone
    and migratetype (what ``buddyinfo`` adds up); each client's scalar
    figures; a function workload's scalar results; the timing.
    """
    out: dict[str, Any] = {}
    m = summary["machine"]
    for k in ("memory_bytes", "present_pages", "nodes", "cpus"):
        out[f"machine.{k}"] = m[k]
    pe = summary["page_ext"]
    out["page_ext.record_size"] = pe["record_size"]
    out["page_ext.bytes"] = pe["bytes"]
    w = summary["workload"]
    for k in ("operations", "allocations", "frees", "failures", "allocator_failures", "leaked_blocks",
              "live_blocks", "live_pages", "hotplug_failures", "interrupted"):
        out[f"workload.{k}"] = w.get(k)
    if isinstance(w.get("result"), Mapping):
        out.update(_scalars(w["result"], "workload.result."))
    elif w.get("result") is not None and _is_scalar(w["result"]):
        out["workload.result"] = w["result"]
    p = summary["planted"]
    for k in ("planted", "detected", "missed", "undetectable"):
        out[f"planted.{k}"] = p[k]
    per = {kind: dict.fromkeys(("planted", "detected", "missed", "undetectable", "skipped"), 0) for kind in FAULT_KINDS}
    for item in p["items"]:
        c = per.setdefault(item["kind"], dict.fromkeys(("planted", "detected", "missed", "undetectable", "skipped"), 0))
        if "skipped" in item:
            c["skipped"] += 1
            continue
        c["planted"] += 1
        if item.get("detected_by") is not None:
            c["detected"] += 1
        elif item.get("detectable"):
            c["missed"] += 1
        else:
            c["undetectable"] += 1
    for kind, counts in per.items():
        for k, v in counts.items():
            out[f"planted.{kind}.{k}"] = v
    f = summary["findings"]
    out["findings.count"] = f["count"]
    for kind in FINDING_KINDS:
        out[f"findings.{kind}"] = 0
    for kind, n in f["by_kind"].items():
        out[f"findings.{kind}"] = n
    fp = summary["free_pages"]
    for k in ("free_pages", "pcp_pages", "allocated_pages", "reserved_pages", "held_pages"):
        out[f"free_pages.{k}"] = fp[k]
    orders: list[int] = []
    for z in fp["zones"]:
        for counts in z["free_blocks_by_migratetype_and_order"].values():
            if len(orders) < len(counts):
                orders += [0] * (len(counts) - len(orders))
            for o, n in enumerate(counts):
                orders[o] += n
    for o, n in enumerate(orders):
        out[f"free_blocks.order_{o}"] = n
    for client, figures in sorted(summary.get("clients", {}).items()):
        if isinstance(figures, Mapping):
            out.update(_scalars(figures, f"clients.{client}."))
    out["log.lines"] = summary["log"]["lines"]
    for k, v in summary["timing"].items():
        out[f"timing.{k}"] = v
    return out


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str)) or v is None


def _scalars(d: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Numbers and flags of a nested mapping (lists and text left out: they are not figures)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_scalars(v, f"{prefix}{k}."))
        elif isinstance(v, (bool, int, float)):
            out[f"{prefix}{k}"] = v
    return out


def mixed_blocks(pe: Any) -> dict[str, Any]:
    """Pageblocks holding pages of another migratetype, from ``pagetypeinfo``'s "Number of mixed blocks".

    That section exists when a client adds it (page_owner does); the report
    only reads the machine.  Without it the figures are absent (null).
    """
    try:
        if "pagetypeinfo" not in pe.report_names():
            return {}
        text = pe.report("pagetypeinfo")
    except Exception:  # a figure we cannot read is left out, not a failed run
        return {}
    return parse_mixed_blocks(text)


def parse_mixed_blocks(text: str) -> dict[str, Any]:
    """``mixed_blocks.total`` and ``mixed_blocks.<Migratetype>`` summed over every node and zone."""
    totals: dict[str, int] = {}
    names: list[str] | None = None
    found = False
    for line in text.splitlines():
        if line.startswith("Number of mixed blocks"):
            names = line[len("Number of mixed blocks"):].split()
            found = True
            continue
        if names is not None and line.startswith("Node "):
            nums = line.split()[-len(names):]
            for name, n in zip(names, nums):
                totals[name] = totals.get(name, 0) + int(n)
            continue
        names = None
    if not found:
        return {}
    out: dict[str, Any] = {"mixed_blocks.total": sum(totals.values())}
    out.update({f"mixed_blocks.{k}": v for k, v in totals.items()})
    return out


# -- the table ------------------------------------------------------------------------------------------------------


def _column_kind(values: Iterable[Any]) -> str:
    kinds = {("bool" if isinstance(v, bool) else "int" if isinstance(v, int) else "float" if isinstance(v, float)
              else "str") for v in values if v is not None}
    if not kinds:
        return "null"
    if kinds == {"bool"}:
        return "bool"
    if kinds <= {"int"}:
        return "int"
    if kinds <= {"int", "float"}:
        return "float"
    return "str"


def _as_text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v, sort_keys=True, default=str)


def order_columns(rows: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """Columns in a stable order: ids, parameters, status, then figures as they first appear."""
    seen: dict[str, None] = dict.fromkeys(first)
    for r in rows:
        seen.update(dict.fromkeys(r))
    cols = list(seen)
    params = [c for c in cols if c.startswith(PARAM_PREFIX)]
    head = [c for c in BASE_COLUMNS if c in seen] + params + [c for c in STATUS_COLUMNS if c in seen]
    return head + [c for c in cols if c not in head]


def write_table(out: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """``results.parquet`` and ``results.csv``, each written atomically (the old one stays whole until then)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = []
    fields = []
    for col in columns:
        values = [r.get(col) for r in rows]
        kind = _column_kind(values)
        if kind == "str":
            values = [_as_text(v) for v in values]
        elif kind == "float":
            values = [None if v is None else float(v) for v in values]
        typ = {"null": pa.null(), "bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}[kind]
        arrays.append(pa.array(values, type=typ))
        fields.append(pa.field(col, typ))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if (v := r.get(c)) is None else _as_text(v) for c in columns])
    atomic_write(out / f"{TABLE}.parquet", sink.getvalue().to_pybytes())
    atomic_write(out / f"{TABLE}.csv", buf.getvalue())


def read_table(out: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The rows of an earlier sweep into ``out`` (none when there is no table yet)."""
    path = out / f"{TABLE}.parquet"
    if not path.exists():
        return [], []
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise SweepError(f"{path}: cannot read the results of the earlier sweep: {exc}; "
                         "move it away to start over") from None
    if "run_id" not in table.column_names:
        raise SweepError(f"{path}: not a pageext sweep table (no run_id column); use another --out")
    return list(table.column_names), table.to_pylist()


# -- the aggregate report -------------------------------------------------------------------------------------------

# Two-sided 95 % quantiles of Student's t for 1..29 degrees of freedom; from 30 runs on, the
# normal approximation (1.96) is used instead (the report says which).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045)
Z975 = 1.96
NORMAL_FROM = 30


def interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95 % confidence interval: Student's t below 30 values, normal approximation from 30."""
    n = len(values)
    if n < 2:
        return {"n": n, "mean": float(values[0]) if n else None, "low": None, "high": None, "method": None}
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    q, method = (T975[n - 2], "t") if n < NORMAL_FROM else (Z975, "normal")
    half = q * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "method": method}


HEADLINE = re.compile(r"^(planted\.|findings\.|workload\.(failures|allocator_failures|live_pages)$|page_ext\.bytes$|"
                      r"mixed_blocks\.total$|free_blocks\.order_|timing\.elapsed_seconds$)")


def aggregate(rows: Sequence[Mapping[str, Any]], param_keys: Sequence[str]) -> dict[str, Any]:
    """Per grid point: runs, errors, and mean with 95 % interval of every numeric figure of the runs that finished."""
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        point = {k: r.get(PARAM_PREFIX + k) for k in param_keys}
        gid = json.dumps(point, sort_keys=True, default=str)
        g = groups.setdefault(gid, {"params": point, "runs": 0, "ok": 0, "failed": 0, "error": 0, "rows": []})
        g["runs"] += 1
        status = r.get("status")
        g[status if status in ("ok", "failed") else "error"] += 1
        if r.get("status") == "ok":
            g["rows"].append(r)
    out = []
    for g in groups.values():
        figures: dict[str, Any] = {}
        cols = order_columns(g["rows"])
        for c in cols:
            if c in BASE_COLUMNS or c in STATUS_COLUMNS or c.startswith(PARAM_PREFIX):
                continue
            vals = [r.get(c) for r in g["rows"]]
            if any(v is None for v in vals) or _column_kind(vals) not in ("int", "float"):
                continue
            figures[c] = interval([float(v) for v in vals])
        out.append({"params": g["params"], "runs": g["runs"], "ok": g["ok"], "failed": g["failed"],
                    "error": g["error"], "figures": figures})
    return {"schema": REPORT_SCHEMA, "interval": "95% confidence interval of the mean: Student's t with n-1 degrees "
            f"of freedom below {NORMAL_FROM} runs, normal approximation (z = 1.96) from {NORMAL_FROM}; over the runs "
            "whose status is ok", "grid_points": out}


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.4g}"
    return f"{v:.0f}" if isinstance(v, float) else str(v)


def render_report(agg: Mapping[str, Any], title: str) -> str:
    """A short Markdown report: per grid point, the headline figures (every figure is in report.json)."""
    lines = [f"# Sweep of {title}", "", f"Mean and {agg['interval']}.", ""]
    for g in agg["grid_points"]:
        label = ", ".join(f"{k} = {json.dumps(v, default=str)}" for k, v in g["params"].items()) or "the session"
        lines.append(f"## {label}")
        lines.append("")
        lines.append(f"{g['runs']} runs: {g['ok']} ok, {g['failed']} stopped on an error, {g['error']} rejected or lost.")
        lines.append("")
        shown = [(k, v) for k, v in g["figures"].items() if HEADLINE.match(k)
                 and not (k.startswith(("planted.", "findings.")) and k.count(".") >= 1 and v["mean"] == 0
                          and k not in ("planted.planted", "planted.detected", "planted.missed", "findings.count"))]
        if not shown:
            lines.append("No finished run to summarise.")
            lines.append("")
            continue
        lines.append("| figure | n | mean | 95% interval |")
        lines.append("|---|---|---|---|")
        for k, v in shown:
            ci = "—" if v["low"] is None else f"{_fmt(v['low'])} … {_fmt(v['high'])} ({v['method']})"
            lines.append(f"| {k} | {v['n']} | {_fmt(v['mean'])} | {ci} |")
        lines.append("")
    return "\n".join(lines)


# -- the sweep ------------------------------------------------------------------------------------------------------


@dataclass
class SweepSpec:
    """A sweep as the command line gives it; ``plan`` checks it and lists the runs."""

    session: str | None  # path; None: the built-in session
    seeds: str | None = None  # "1-1000"; None: the session's own seed
    grid: Sequence[str] = ()
    sets: Sequence[str] = ()
    memory: str | None = None
    boot: str = ""
    disable: Sequence[str] = ()
    strict: bool = False
    out: str | None = None
    keep_runs: bool = False
    retry_failed: bool = False
    scheduler: str | None = None
    workers: int | None = None
    connect_timeout: float = 10.0  # seconds to reach --scheduler


@dataclass
class Plan:
    tasks: list[RunTask]
    out: Path
    name: str
    param_keys: list[str]
    manifest: dict[str, Any]
    estimates: dict[str, int] = field(default_factory=dict)  # grid point label -> host bytes of one run


def _fixed_overrides(spec: SweepSpec) -> list[str | tuple[str, str]]:
    fixed: list[str | tuple[str, str]] = list(spec.sets)
    if spec.memory:
        fixed.append((f"machine.memory={json.dumps(spec.memory)}", f"--memory {spec.memory}"))
    return fixed


def plan(spec: SweepSpec) -> Plan:
    """Check everything and list the runs; raise ``SweepError``/``SessionError`` before anything runs."""
    from pageext_core.session.config import load_session

    seeds: list[int | None] = list(parse_seeds(spec.seeds)) if spec.seeds is not None else [None]
    axes = parse_grid(spec.grid)
    if spec.session is not None:
        path = Path(spec.session)
        try:
            text: str | None = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SweepError(f"{path}: no such session file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SweepError(f"{path}: cannot read it: {exc}") from None
        session_path: str | None = str(path.resolve())
    else:
        text, session_path = None, None
    fixed = _fixed_overrides(spec)
    base = load_session(session_path, overrides=fixed, text=text)  # the session itself, before any grid point
    name = base.name
    out = Path(spec.out or f"out/{name}-sweep")
    points = list(itertools.product(*[list(zip(a.raws, a.values)) for a in axes])) if axes else [()]
    seeds_label = f"--seeds {spec.seeds}" if spec.seeds is not None else "--seeds"
    estimates: dict[str, int] = {}
    checked: list[tuple[tuple[str, str, Any], ...]] = []
    for point in points:
        params = tuple((a.key, raw, value) for a, (raw, value) in zip(axes, point))
        probe = RunTask("", seeds[0], params, text, session_path, tuple(fixed), seeds_label=seeds_label)
        sess = load_task_session(probe)  # the same check and message as pageext run --set
        est = _estimate(sess, spec)
        if est is not None:
            estimates[", ".join(f"--grid {k}={raw}" for k, raw, _ in params) or "the session"] = est
        checked.append(params)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "session": name,
        "session_file": session_path,
        "session_sha256": hashlib.sha256((text or _builtin_text()).encode()).hexdigest(),
        "fixed": {"set": list(spec.sets), "memory": spec.memory, "boot": spec.boot, "disable": list(spec.disable),
                  "strict": spec.strict},
    }
    tasks: list[RunTask] = []
    ids: set[str] = set()
    for params in checked:
        values = {k: v for k, _, v in params}
        for seed in seeds:
            rid = run_id(seed if seed is not None else base.workload.seed, values)
            if rid in ids:  # "64MiB" and '"64MiB"' are one value: one run
                continue
            ids.add(rid)
            keep = str((out / "runs" / rid).resolve()) if spec.keep_runs else None
            tasks.append(RunTask(rid, seed, params, text, session_path, tuple(fixed), spec.boot,
                                 tuple(spec.disable), spec.strict, keep, seeds_label))
    return Plan(tasks, out, name, [a.key for a in axes], manifest, estimates)


def _builtin_text() -> str:
    from pageext_core.session.config import DEFAULT_SESSION

    return DEFAULT_SESSION.read_text()


def _estimate(sess: Any, spec: SweepSpec) -> int | None:
    """Host bytes one run of this session will take (``None`` when the plan-only boot cannot say)."""
    from pageext_core.mm.geometry import build_geometry
    from pageext_core.page_ext import boot
    from pageext_core.resources import estimate

    try:
        pe = boot(sess.machine, " ".join(x for x in (sess.cmdline, spec.boot) if x), boot_tables=sess.boot_tables,
                  blocked=[*sess.plugins.disable, *spec.disable], autoload=sess.plugins.autoload, strict=False,
                  plan_only=True)
        return estimate(pe.machine.geometry, pe.layout).total
    except Exception:  # the run itself will say what is wrong, in its row
        try:
            return estimate(build_geometry(sess.machine), None).total
        except Exception:
            return None


def check_memory(estimates: Mapping[str, int], slots: Sequence[tuple[str, int, int | None]]) -> None:
    """Refuse a sweep whose runs cannot fit: ``slots`` are (worker, runs at once, bytes it may use).

    Every worker may get any run, so the largest run times the runs a
    worker holds at once must fit in what that worker may use.
    """
    from pageext_core.resources import human

    if not estimates:
        return
    where, biggest = max(estimates.items(), key=lambda kv: kv[1])
    for worker, at_once, avail in slots:
        if avail is None or avail <= 0:
            continue
        if biggest * at_once > avail:
            fits = avail // biggest
            if not fits or at_once == 1:
                fix = "give the machines less memory"
            elif worker == "this host":
                fix = f"use --workers {fits} or fewer"
            else:  # a remote worker: its own threads decide
                fix = f"give the machines less memory, or start that worker with --nthreads {fits}"
            raise SweepError(f"{where}: one run needs about {human(biggest)} of host memory and {worker} runs "
                             f"{at_once} at once ({human(biggest * at_once)}), but it has {human(avail)} available; "
                             f"{fix}")


@dataclass
class SweepResult:
    out: Path
    total: int  # runs of this sweep
    executed: int  # runs done now (the rest were in the table already)
    resumed: int
    errors: int  # rows of this sweep whose status is not ok
    interrupted: bool
    rows: list[dict[str, Any]]  # this sweep's rows, in plan order (those that exist)


def _check_out(p: Plan) -> None:
    from pageext_core.session.runner import check_out_dir

    check_out_dir(p.out, "--out")
    mf = p.out / MANIFEST
    if mf.exists():
        try:
            old = json.loads(mf.read_text())
        except (OSError, ValueError) as exc:
            raise SweepError(f"{mf}: cannot read it ({exc}); move {p.out} away to start over") from None
        for key, what in (("session_sha256", "the session file has changed since"),
                          ("fixed", "--set, --memory, --boot, --disable-plugin or --strict differ")):
            if old.get(key) != p.manifest[key]:
                raise SweepError(f"--out {p.out}: it holds the results of another sweep ({what}); resuming would mix "
                                 "them. Give another --out, or move the folder away to start over")
    elif (p.out / f"{TABLE}.parquet").exists():
        raise SweepError(f"--out {p.out}: it has {TABLE}.parquet but no {MANIFEST}; give another --out")


class SchedulerUnreachable(OSError):
    """No scheduler answers at the address: refused (said at once) or silent until the connect timeout."""


class BadSchedulerAddress(ValueError):
    """Not an address Dask can read (an unknown scheme, say)."""


def connect_scheduler(address: str, timeout: float = 10.0) -> Any:
    """A ``dask.distributed.Client`` of the scheduler at ``address``; the two ways it fails, each said once.

    Dask retries a refused connection until ``timeout``; a wrong port or a
    scheduler not started yet would keep the user waiting that long for
    "timed out".  A TCP address is tried once first: refused, it raises
    :class:`SchedulerUnreachable` at once.  A slow or filtered one is left
    to Dask's own timeout.  The messages say what and how to fix it; the
    caller adds where (``--scheduler ADDRESS: ``) and picks its exit code.
    """
    import socket

    from dask.distributed import Client
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, loc = parse_address(address)
        if scheme == "tcp" and loc:
            host, port = parse_host_port(loc)
            try:
                socket.create_connection((host, port), timeout=min(timeout, 3.0)).close()
            except ConnectionRefusedError:
                raise SchedulerUnreachable(f"cannot reach the scheduler: connection refused by {host}:{port} "
                                           "(is a scheduler running there?)") from None
            except OSError:
                pass  # unreachable or slow: Dask's timeout says so
        return Client(address, timeout=f"{timeout}s")
    except SchedulerUnreachable:
        raise
    except ValueError as exc:  # Dask's "unknown address scheme"
        raise BadSchedulerAddress(f"not a scheduler address ({exc}); give one like tcp://HOST:8786") from None
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachable(f"cannot reach the scheduler: {exc}") from None


def local_cluster(workers: int, *, task_errors_logged: bool = True) -> Any:
    """The local engine: ``workers`` worker processes of one thread each (a run holds the GIL throughout).

    ``task_errors_logged=False`` keeps the workers from logging a task that
    raises ("Compute Failed" and its traceback, on the terminal): for a
    caller that turns the exception it gets back into its own one-line error.

    ``memory_limit=0``: Dask neither pauses nor kills a worker for its
    memory; the estimate (``check_memory``) and each run's own host-memory
    check, as in ``pageext run``, are what guard memory.
    """
    import logging
    import signal
    import threading

    import dask
    from dask.distributed import LocalCluster

    # Ctrl-C reaches every process of the terminal's group: the workers ignore it (Python keeps an
    # ignored SIGINT ignored in the processes it spawns), and this process stops the sweep and
    # closes the cluster, instead of each worker printing a KeyboardInterrupt traceback.
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        # ":0": the scheduler's HTTP endpoint on any free port (8787 may be another cluster's).
        # No statistical profiler: it samples the worker thread's stack 100 times a second for a
        # dashboard nobody reads here, and a run holds the GIL throughout, so each sample delays it.
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                                silence_logs=logging.ERROR if task_errors_logged else logging.CRITICAL,
                                memory_limit=0)
    finally:
        if main:
            signal.signal(signal.SIGINT, old)


def start_client(spec: SweepSpec) -> tuple[Any, Any, list[tuple[str, int, int | None]]]:
    """A Dask client: to ``spec.scheduler`` if given, else to a new local cluster of worker processes.

    Returns (client, cluster or None, slots for the memory check).
    """
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise SweepError(f"{INSTALL_HINT} ({exc})") from None
    from pageext_core.resources import host_memory

    if spec.scheduler:
        try:
            client = connect_scheduler(spec.scheduler, spec.connect_timeout)
        except SchedulerUnreachable as exc:
            raise SweepClusterError(f"--scheduler {spec.scheduler}: {exc}") from None
        except BadSchedulerAddress as exc:
            raise SweepError(f"--scheduler {spec.scheduler}: {exc}") from None
        info = client.scheduler_info()
        slots = [(f"worker {addr}", int(w.get("nthreads") or 1), w.get("memory_limit") or None)
                 for addr, w in info.get("workers", {}).items()]
        return client, None, slots
    n = spec.workers or os.cpu_count() or 2
    host = host_memory()
    cluster = local_cluster(n)
    return Client(cluster), cluster, [("this host", n, host.available)]


def run_sweep(spec: SweepSpec, client: Any = None, progress: Callable[[int, int], None] | None = None,
              slots: Sequence[tuple[str, int, int | None]] | None = None,
              batch_seconds: float = BATCH_SECONDS) -> SweepResult:
    """Plan, check, run every missing run on Dask, and keep the table and the report up to date.

    ``client``: a ``dask.distributed.Client`` to use (else one is started
    from ``spec``, and closed at the end).  ``progress(done, total)`` is
    called as runs finish.  ``slots``: for a given client, the workers to
    check the memory estimate against (see ``check_memory``; none: no check).
    ``batch_seconds``: runs shorter than this go several to a task (0: one
    run a task).
    """
    p = plan(spec)
    _check_out(p)
    try:
        import pyarrow  # noqa: F401
        from dask.distributed import as_completed
    except ImportError as exc:
        raise SweepError(f"{INSTALL_HINT} ({exc})") from None
    old_cols, old_rows = read_table(p.out)
    done: dict[str, dict[str, Any]] = {r["run_id"]: r for r in old_rows}
    todo = [t for t in p.tasks if t.run_id not in done
            or (spec.retry_failed and done[t.run_id].get("status") != "ok")]
    own_client = client is None
    cluster = None
    if own_client and todo:
        if not spec.scheduler:  # refuse before starting a cluster
            from pageext_core.resources import host_memory

            check_memory(p.estimates, [("this host", spec.workers or os.cpu_count() or 2, host_memory().available)])
        client, cluster, slots = start_client(spec)
    try:
        if todo:
            check_memory(p.estimates, slots or [])
        p.out.mkdir(parents=True, exist_ok=True)
        atomic_write(p.out / MANIFEST, json.dumps(p.manifest, indent=2) + "\n")
        columns = order_columns([], old_cols)
        executed = 0
        interrupted = False
        last = time.monotonic()
        dirty = False

        pause = FLUSH_SECONDS

        def flush() -> None:
            nonlocal columns, dirty, pause
            t0 = time.monotonic()
            rows = list(done.values())
            columns = order_columns(rows, columns)
            write_table(p.out, rows, columns)
            dirty = False
            pause = max(FLUSH_SECONDS, (time.monotonic() - t0) / FLUSH_SHARE)

        if todo:
            # Runs go out one to a task until the first ones say how long a run takes; then several to a
            # task when runs are short (about batch_seconds a task), never so many that a worker would idle
            # at the end.  A task Dask gives up on (its worker died on every try) is sent again one run to a
            # task, and a run lost alone gets one more chance (it may have been waiting on the worker that
            # another run killed), so only a run that kills every worker it runs on becomes an error row.
            nslots = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values()))
            queue: collections.deque[tuple[RunTask, int]] = collections.deque((t, 0) for t in todo)  # (run, losses)
            batches: dict[Any, list[tuple[RunTask, int]]] = {}
            runs_timed, seconds = 0, 0.0
            stream = as_completed(loop=client.loop, with_results=True, raise_errors=False)

            def submit() -> None:
                size = 1
                if runs_timed and not queue[0][1]:
                    per_run = seconds / runs_timed
                    size = max(1, min(int(batch_seconds / per_run) if per_run > 0 else len(queue),
                                      len(queue) // (2 * nslots)))
                batch = [queue.popleft()]
                while queue and len(batch) < size and not batch[0][1] and not queue[0][1]:
                    batch.append(queue.popleft())
                fut = client.submit(execute_batch, [t for t, _ in batch], pure=False, retries=1)
                batches[fut] = batch
                stream.add(fut)

            def recovering() -> bool:
                # One lost run in flight at a time: a run lost alone again is then the one that kills its
                # worker, not one that waited beside it on that worker (or on the only worker left while
                # the other restarts), which would otherwise be lost with it every time.
                return any(b[0][1] for b in batches.values())

            for _ in range(min(len(queue), 2 * nslots)):  # a task running and one waiting, per worker
                submit()
            try:
                # with_results: results are gathered as they finish, not one round trip per future
                for fut, got in stream:
                    batch = batches.pop(fut)
                    rows = []
                    if fut.status == "finished" and isinstance(got, tuple):
                        rows, took = got
                        runs_timed += len(rows)
                        seconds += took
                    elif len(batch) > 1 or batch[0][1] < 2:  # lost: again, alone (runs lost alone twice stop)
                        queue.extendleft((t, lost + 1) for t, lost in reversed(batch))
                    else:  # as_completed gives a failed future's (type, exception, traceback)
                        why = got[1] if isinstance(got, tuple) and len(got) == 3 else got
                        rows = [_lost_row(batch[0][0], why if isinstance(why, BaseException) else None)]
                    while queue and len(batches) < 2 * nslots and not (queue[0][1] and recovering()):
                        submit()
                    for row in rows:
                        done[row["run_id"]] = row
                        executed += 1
                        dirty = True
                        if progress:
                            progress(executed, len(todo))
                        if time.monotonic() - last >= pause:
                            flush()
                            last = time.monotonic()
            except KeyboardInterrupt:
                interrupted = True
                client.cancel(list(batches))
        if dirty or not (p.out / f"{TABLE}.parquet").exists():
            flush()
        mine = [done[t.run_id] for t in p.tasks if t.run_id in done]
        agg = aggregate(mine, p.param_keys)
        agg["session"] = p.name
        agg["runs"] = len(p.tasks)
        agg["finished"] = len(mine)
        atomic_write(p.out / "report.json", json.dumps(agg, indent=2, default=str) + "\n")
        atomic_write(p.out / "report.md", render_report(agg, p.name) + "\n")
    finally:
        if own_client and client is not None:
            client.close()
            if cluster is not None:
                cluster.close()
    errors = sum(1 for r in mine if r.get("status") != "ok")
    return SweepResult(p.out, len(p.tasks), executed, len(p.tasks) - len(todo), errors, interrupted, mine)


def _lost_row(t: RunTask, exc: BaseException | None) -> dict[str, Any]:
    """The row of a task Dask gave up on (its worker died on every try, or the engine failed)."""
    row: dict[str, Any] = {"run_id": t.run_id, "seed": t.seed}
    for key, _raw, value in t.params:
        row[PARAM_PREFIX + key] = value
    name = type(exc).__name__ if exc is not None else "cancelled"
    row.update(status="error", exit_code=None, error=f"the run was lost: {name}: {exc}", warnings=None, worker=None)
    return row
