"""The ``page_owner_fleet`` command: page_owner_sort over one dump per host, on Dask.

Exit status: 0, 2 for a usage mistake or a dump that cannot be used
(bad glob, missing, unreadable, corrupt, no records), 3 when the cluster
fails (unreachable scheduler, a task Dask gave up on), 130 for Ctrl-C.
Errors are one line on stderr naming the file (and line where there is
one).  The output replaces ``OUTPUT`` atomically.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, BinaryIO

import click

from pageext_core.reports import atomic_writer
from pageext_page_owner.dumpparse import compression_of
from pageext_page_owner.fleet.engine import DEFAULT_SPLIT_BYTES, FleetInputError, Options, Part, plan, run
from pageext_page_owner.fleet.output import (
    PROG,
    FleetOutput,
    diff_report,
    finish_report,
    write_diff_parquet,
)
from pageext_page_owner.page_owner_sort.aggregate import Partial, diff_groups
from pageext_page_owner.page_owner_sort.cli import Grouping, grouping_options
from pageext_page_owner.page_owner_sort.render import render_diff_csv, render_diff_json, render_diff_text

__all__ = ["host_of", "main"]

INSTALL_HINT = f"{PROG} needs Dask: pip install 'pageext-page-owner[fleet]' (make install has it)"
SUFFIX_COMPRESSION = {".gz": "gzip", ".xz": "xz", ".bz2": "bzip2"}  # what a dump's name says it holds
COMPRESSED = tuple(SUFFIX_COMPRESSION)
FORMATS = ("text", "json", "csv", "parquet")


class FleetError(Exception):
    """A problem with the inputs or the output: one line, exit 2."""


class ClusterError(Exception):
    """The cluster failed: one line, exit 3."""


def host_of(path: str, regex: re.Pattern[str] | None) -> str:
    """A dump's host: the file name without compression suffix and extension, or what ``--host-regex`` picks.

    The regex is searched in the path as given; its group ``host``, else
    its first group, else the whole match is the host.
    """
    if regex is None:
        name = os.path.basename(path)
        for suffix in COMPRESSED:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        return os.path.splitext(name)[0] or name
    m = regex.search(path)
    if m is None:
        raise FleetError(f"--host-regex {regex.pattern!r} does not match {path!r}; give a pattern every dump path matches")
    if "host" in regex.groupindex:
        host = m.group("host")
    elif regex.groups:
        host = m.group(1)
    else:
        host = m.group(0)
    if not host:
        raise FleetError(f"--host-regex {regex.pattern!r} gives an empty host name for {path!r}")
    return str(host)


def expand(args: Iterable[str]) -> list[str]:
    """Dump paths from the arguments: globs (sorted), directories (their files, sorted), plain paths."""
    out: list[str] = []
    for a in args:
        if glob.has_magic(a):
            found = sorted(p for p in glob.glob(a) if os.path.isfile(p))
            if not found:
                raise FleetError(f"{a!r} matches no file; check the pattern (quote it so the shell leaves it to {PROG})")
            out.extend(found)
        elif os.path.isdir(a):
            found = sorted(os.path.join(a, n) for n in os.listdir(a)
                           if not n.startswith(".") and os.path.isfile(os.path.join(a, n)))
            if not found:
                raise FleetError(f"directory {a!r} holds no dump files")
            out.extend(found)
        else:
            if not os.path.exists(a):
                raise FleetError(f"cannot open input {a!r}: no such file")
            out.append(a)
    for p in out:
        if not os.access(p, os.R_OK):
            raise FleetError(f"cannot open input {p!r}: permission denied")
    return out


def hosts_of(paths: list[str], regex: re.Pattern[str] | None) -> list[tuple[str, str]]:
    """``(host, path)`` per dump; two dumps of one host are refused."""
    seen: dict[str, str] = {}
    out = []
    for p in paths:
        h = host_of(p, regex)
        if h in seen:
            raise FleetError(f"two dumps for host {h!r}: {seen[h]!r} and {p!r}; give one dump per host "
                             "(or a --host-regex that tells them apart)")
        seen[h] = p
        out.append((h, p))
    return out


def _check_output(output: str, inputs: list[str], fmt: str) -> None:
    if output == "-":
        if fmt == "parquet":
            raise click.UsageError("parquet output needs a file name, not '-'")
        return
    for p in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(p, output):
                raise click.UsageError(f"the output {output!r} is the input {p!r}; give another output path")
    if os.path.isdir(output):
        raise FleetError(f"cannot write output {output!r}: it is a directory")
    outdir = os.path.dirname(output) or "."
    if not os.path.isdir(outdir):
        raise FleetError(f"cannot write output {output!r}: directory {outdir!r} does not exist")


def _check_compression(paths: list[str]) -> None:
    """A dump named ``.gz``/``.xz``/``.bz2`` must start as one: else it is a broken transfer, said as such."""
    for p in paths:
        want = SUFFIX_COMPRESSION.get(os.path.splitext(p)[1].lower())
        if want is None:
            continue
        with open(p, "rb") as f:
            head = f.read(6)
        if head and compression_of(head) != want:
            raise FleetError(f"{p}: named {os.path.splitext(p)[1]} but not {want} data (it starts with {head[:4]!r}); "
                             "a failed or partial transfer? collect it again or leave it out")


def _plan(dumps: list[tuple[str, str]], split_bytes: int) -> list[Part]:
    """The tasks, reading each dump by its absolute path: a worker's working directory is not the command's."""
    shown = {os.path.abspath(p): p for _, p in dumps}
    return [replace(part, shown=shown[part.path])
            for part in plan([(h, os.path.abspath(p)) for h, p in dumps], split_bytes)]


def _warn_host_changes(old: list[str], new: list[str], old_dir: str, new_dir: str) -> None:
    """A host in one round only moves the fleet's totals by all it holds: say which, so no one reads it as growth."""
    gone, came = sorted(set(old) - set(new)), sorted(set(new) - set(old))

    def names(hs: list[str]) -> str:
        return ", ".join(hs[:10]) + (f" and {len(hs) - 10} more" if len(hs) > 10 else "")

    for hosts, where, count_as in ((gone, old_dir, "shrinkage"), (came, new_dir, "growth")):
        if hosts:
            sys.stderr.write(f"{PROG}: warning: {len(hosts)} host{'s' if len(hosts) != 1 else ''} only in {where}: "
                             f"{names(hosts)} (their pages count as {count_as})\n")


def _client(scheduler: str | None, workers: int) -> tuple[Any, Any]:
    try:
        from dask.distributed import Client
    except ImportError as e:
        raise FleetError(f"{INSTALL_HINT} ({e})") from None
    if scheduler:
        from pageext_core import BadSchedulerAddress, SchedulerUnreachable, connect_scheduler

        try:
            return connect_scheduler(scheduler, 10.0), None
        except SchedulerUnreachable as e:
            raise ClusterError(f"--scheduler {scheduler}: {e}") from None
        except BadSchedulerAddress as e:
            raise FleetError(f"--scheduler {scheduler}: {e}") from None
    from pageext_page_owner.fleet.engine import local_cluster

    cluster = local_cluster(workers or os.cpu_count() or 1)
    return Client(cluster), cluster


def _compute(client: Any, parts: list[Part], opts: Options, progress: bool,
             finish: Callable[[Partial], Any] | None = None) -> Any:
    try:
        return run(client, parts, opts, progress=progress, finish=finish)
    except FleetInputError as e:
        raise FleetError(str(e)) from None
    except ImportError as e:  # raised on a worker: a cluster of its own may lack the extra
        raise ClusterError(f"a worker cannot import {e.name or e}: install 'pageext-page-owner[fleet]' on every "
                           "worker (it brings Dask and pyarrow, which the Parquet report needs)") from None
    except Exception as e:
        if type(e).__name__ == "KilledWorker":
            raise ClusterError(f"a task was lost with its worker too often (Dask gave up): {e}") from None
        raise


def _report_inputs(p: Partial | FleetOutput, say: Any) -> None:
    """Warnings for skipped records; an error for a dump without one usable record."""
    for host, s in zip(p.hosts, p.stats):
        where = f" (first: {s.source}:{s.first_error[0]}: {s.first_error[1]})" if s.first_error else ""
        if s.parsed == 0 and s.released == 0:
            if s.unparsed:
                raise FleetError(f"no page_owner records found in {s.source}"
                                 f"{where.replace('first:', 'first unusable block:')}")
            # what a failed collection leaves (`ssh host cat ... | gzip > f.gz`)
            raise FleetError(f"no page_owner records in {s.source}: the dump is empty (a failed collection?); "
                             "collect it again or leave it out")
        if s.unparsed:
            sys.stderr.write(f"{PROG}: {s.unparsed} record{'s' if s.unparsed != 1 else ''} of host {host} could not be "
                             f"parsed and {'were' if s.unparsed != 1 else 'was'} skipped{where}\n")
    say(f"loaded {sum(s.loaded for s in p.stats)} records from {len(p.hosts)} host{'s' if len(p.hosts) != 1 else ''}")


@contextlib.contextmanager
def _output(output: str) -> Iterator[BinaryIO]:
    if output == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_writer(output) as f:
        yield f


def _write(output: str, chunks: Iterable[bytes]) -> None:
    with _output(output) as out:
        for c in chunks:
            out.write(c)


HELP = f"""Group the page_owner dumps of many hosts as one, on Dask.

\b
  {PROG} 'dumps/*.txt.gz' fleet.txt             # one dump per host; host = file name
  {PROG} -m --cull=st dumps/ fleet.parquet      # one Parquet row per group and host
  {PROG} --diff round1/ round2/ growth.txt      # per-stack growth between two rounds
  {PROG} --scheduler tcp://sched:8786 'dumps/*' out.json

The groups are page_owner_sort's on the dumps' concatenation; each also
says on how many hosts it occurs and its pages on the top hosts.  Each
dump is read by a Dask task where it lies (big plain dumps by several),
and the partial groups are merged in a tree.  See docs/fleet.md.
"""


@click.command(name=PROG, help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@grouping_options()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="Output format (default: from OUTPUT's suffix .json/.csv/.parquet, else text).")
@click.option("--top-hosts", "top", type=click.IntRange(1, None), default=3, show_default=True, help="Hosts named per group.")
@click.option("--host-regex", "host_regex", metavar="REGEX", help="Host name from each dump path: group 'host', else group 1, else the match.")
@click.option("--diff", "diff", is_flag=True, help="OLD_DIR NEW_DIR [OUTPUT]: per-stack (or --cull key) growth across the fleet, largest first (sort options do not apply).")
@click.option("--scheduler", metavar="ADDRESS", help="Use this running Dask cluster (tcp://host:8786) instead of a local one.")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Worker processes of the local cluster (default: one per core).")
@click.option("--split-bytes", "split_bytes", type=click.IntRange(1 << 16, None), default=DEFAULT_SPLIT_BYTES, show_default=True, help="A plain dump bigger than this is read by several tasks.")
@click.argument("paths", nargs=-1, metavar="DUMP... OUTPUT")
def cli(grouping: Grouping, fmt: str | None, top: int, host_regex: str | None, diff: bool, scheduler: str | None,
        workers: int | None, split_bytes: int, paths: tuple[str, ...]) -> int:
    order, selection, fields = grouping.order, grouping.selection, list(grouping.fields)
    try:
        regex = re.compile(host_regex) if host_regex is not None else None
    except re.error as e:
        raise click.UsageError(f"--host-regex {host_regex!r}: {e}") from None
    if diff:
        if grouping.explicit_sort:
            raise click.UsageError("--diff output is sorted by growth; sort options do not apply")
        if len(paths) not in (2, 3):
            raise click.UsageError("--diff needs OLD_DIR NEW_DIR [OUTPUT]")
        for d in paths[:2]:
            if not os.path.exists(d):
                raise FleetError(f"--diff {d!r}: no such directory (give the folders of two collection rounds)")
            if not os.path.isdir(d):
                raise FleetError(f"--diff {d!r}: not a directory (give the folders of two collection rounds)")
        rounds = [expand([paths[0]]), expand([paths[1]])]
        output = paths[2] if len(paths) == 3 else "-"
        fields = fields or ["stacktrace"]
    else:
        if len(paths) < 2:
            raise click.UsageError("need DUMP... and OUTPUT")
        rounds = [expand(paths[:-1])]
        output = paths[-1]
    if fmt is None:
        ext = os.path.splitext(output)[1].lower()
        fmt = {".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(ext, "text")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as e:
            raise FleetError(f"{INSTALL_HINT} ({e})") from None
    if scheduler and workers:
        raise click.UsageError("--workers sets the size of the local cluster; with --scheduler the cluster's own "
                               "workers read the dumps (drop --workers)")
    _check_output(output, [p for r in rounds for p in r], fmt)
    for files in rounds:
        _check_compression(files)
    dumps = [hosts_of(r, regex) for r in rounds]
    shown = list(fields)
    for f, given in (("pid", selection.pids), ("tgid", selection.tgids), ("comm", selection.names)):
        if given is not None and f not in shown:
            shown.append(f)
    opts = Options(fields=tuple(fields), strip_ts=order[0][0] != "alloc_ts", alloc_bits="allocator" in fields,
                   selection=selection)
    info = sys.stderr if output == "-" else sys.stdout

    def say(msg: str) -> None:
        info.write(msg + "\n")
        info.flush()

    # Without --diff the report is rendered on the worker that merges last: only its bytes come back.
    finish = None if diff else functools.partial(finish_report, fmt, order, shown, top)
    client, cluster = _client(scheduler, workers or 0)
    try:
        results = []
        for r in dumps:
            parts = _plan(r, split_bytes)
            p = _compute(client, parts, opts, progress=sys.stderr.isatty(), finish=finish)
            _report_inputs(p, say)
            results.append(p)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if not diff:
        (done,) = results
        _write(output, [done.data])
        return 0
    old, new = results
    _warn_host_changes(old.hosts, new.hosts, paths[0], paths[1])
    rep = diff_report(diff_groups(old.groups, new.groups, fields), old, new, shown)
    if fmt == "parquet":
        with _output(output) as out:
            write_diff_parquet(rep, out)
    elif fmt == "json":
        _write(output, render_diff_json(rep, tool=PROG))
    else:
        _write(output, {"text": render_diff_text, "csv": render_diff_csv}[fmt](rep))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point: 0 ok, 2 usage or input error, 3 cluster error, 130 Ctrl-C."""
    try:
        rv = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except click.UsageError as e:
        sys.stderr.write(f"{PROG}: error: {e.format_message()} (see {PROG} --help)\n")
        return 2
    except click.ClickException as e:
        sys.stderr.write(f"{PROG}: error: {e.format_message()}\n")
        return 2
    except click.Abort:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except FleetError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    except ClusterError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 3
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 3
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
