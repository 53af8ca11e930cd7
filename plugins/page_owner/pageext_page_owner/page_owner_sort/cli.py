"""The ``page_owner_sort`` command: options, checks on the paths, the run, and its errors.

Exit status 0, 1 for every error (as the kernel tool: usage, input and
output alike), 130 for Ctrl-C.  Command-line mistakes print the usage;
problems with the files print one line naming the path as the user typed
it.  The output replaces ``<output>`` atomically (or goes to stdout).
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import click

from pageext_core.reports import atomic_writer
from pageext_page_owner.dumpparse import ParseError
from pageext_page_owner.page_owner_sort.aggregate import CULL_ORDER, Group, Selection, cull, diff_groups, sort_groups
from pageext_page_owner.page_owner_sort.parallel import default_jobs
from pageext_page_owner.page_owner_sort.parse import Aggregator
from pageext_page_owner.page_owner_sort.render import (
    PROG,
    DiffReport,
    Report,
    collapse,
    render_collapsed,
    render_csv,
    render_diff_collapsed,
    render_diff_csv,
    render_diff_json,
    render_diff_text,
    render_json,
    render_text,
)

__all__ = ["Grouping", "grouping_options", "main"]

# --sort keys (and their short forms) -> field name
SORT_KEYS: dict[str, str] = {
    "pid": "pid", "p": "pid",
    "tgid": "tgid", "tg": "tgid",
    "name": "comm", "n": "comm",
    "stacktrace": "stacktrace", "st": "stacktrace",
    "txt": "txt", "T": "txt",
    "alloc_ts": "alloc_ts", "at": "alloc_ts",
    "allocator": "allocator", "ator": "allocator",
    "free_ts": "free_ts", "ft": "free_ts",
}
# --cull keys -> field name
CULL_KEYS: dict[str, str] = {
    "pid": "pid", "p": "pid",
    "tgid": "tgid", "tg": "tgid",
    "name": "comm", "n": "comm",
    "stacktrace": "stacktrace", "st": "stacktrace",
    "allocator": "allocator", "ator": "allocator",
}
# single-letter sort options -> (field, sign)
SORT_FLAGS: dict[str, tuple[str, int]] = {
    "a": ("alloc_ts", 1),
    "m": ("pages", -1),
    "n": ("comm", 1),
    "p": ("pid", 1),
    "P": ("tgid", 1),
    "r": ("free_ts", 1),
    "s": ("stacktrace", 1),
    "t": ("times", -1),
}
DEFAULT_SORT: list[tuple[str, int]] = [("times", -1)]


class UserError(Exception):
    """A problem with the input or output that is reported without a traceback (and without the usage)."""


class NoRecords(UserError):
    """A non-empty input in which not one record could be used (printed without ``error:``)."""


def _why(e: BaseException, path: str = "") -> str:
    """The reason of an I/O error without the file name Python appends (a temp or resolved path).

    Messages name the path the user typed; ``path: `` at the start of a
    message (our own decompression errors) is not repeated.
    """
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    msg = str(e) or type(e).__name__
    if path and msg.startswith(path + ": "):
        msg = msg[len(path) + 2:]
    return msg


def _same_file(a: str, b: str) -> bool:
    """True when two paths are one file: equal once resolved, or hard links to it."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # the output does not exist yet
        return False


def _version() -> str:
    """``page_owner_sort (pageext-page-owner X.Y.Z)``: the tool and the distribution it ships in."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("pageext-page-owner")
    except PackageNotFoundError:  # running from a source tree
        from pageext_page_owner import __version__ as v
    return f"{PROG} (pageext-page-owner {v})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version())
        ctx.exit(0)


USAGE = f"""\
Usage: {PROG} [OPTIONS] <input> <output>
       {PROG} --diff [OPTIONS] <old> <new> [<output>]

  -a -m -n -p -P -s -t   sort by alloc time / total pages / command name / pid /
                         tgid / stack trace / times seen (default); only one
  -d                     list unparsable records (file:line) on stderr
  -f                     leave out blocks the dump marks as released
  -r                     sort by release time (dumps with free_ts only)
  --pid=LIST --tgid=LIST --name=LIST   keep only these (comma-separated)
  --cull=RULES           merge by pid,tgid,name,stacktrace,allocator
  --sort=ORDER           [+|-]key[,...]: pid tgid name stacktrace txt alloc_ts allocator
  --format=text|json|csv, --collapsed, --diff, --jobs=N, -h/--help, --version
"""

HELP = f"""Group the records of a page_owner dump and sort the groups.

\b
  cat /sys/kernel/debug/page_owner > page_owner_full.txt
  {PROG} page_owner_full.txt sorted_page_owner.txt
  {PROG} -m page_owner_full.txt.gz -          # by total pages, to stdout
  {PROG} --cull=st,name --sort=-pid dump.txt out.txt
  {PROG} --diff before.txt after.txt growth.txt

Identical records (same first line, timestamp digits removed, and same
stack) are merged and printed with how many times they were seen and how
many pages they hold.  <input> may be gzip/xz/bzip2-compressed or '-'
(stdin); <output> may be '-' (stdout).  See docs/page_owner_sort.md.
"""


def _parse_list(value: str | None, what: str) -> frozenset[int] | None:
    if value is None:
        return None
    out = set()
    for part in value.split(","):
        try:
            out.add(int(part.strip(), 10))
        except ValueError:
            raise click.UsageError(
                f"--{what}={value}: {part!r} is not a number (give a comma-separated list like --{what}=1,812)"
            ) from None
    return frozenset(out)


def _parse_sort(value: str) -> list[tuple[str, int]]:
    order = []
    for part in value.split(","):
        sign = 1
        key = part
        if key[:1] in ("+", "-"):
            sign = -1 if key[0] == "-" else 1
            key = key[1:]
        name = SORT_KEYS.get(key)
        if name is None:
            raise click.UsageError(
                f"--sort={value}: unknown key {part!r}; use [+|-]key with key one of "
                "pid|p, tgid|tg, name|n, stacktrace|st, txt|T, alloc_ts|at, allocator|ator, free_ts|ft"
            )
        order.append((name, sign))
    return order


def _parse_cull(value: str) -> list[str]:
    fields = []
    for part in value.split(","):
        name = CULL_KEYS.get(part)
        if name is None:
            raise click.UsageError(
                f"--cull={value}: unknown key {part!r}; use a comma-separated list of "
                "pid|p, tgid|tg, name|n, stacktrace|st, allocator|ator"
            )
        if name not in fields:
            fields.append(name)
    return [f for f in CULL_ORDER if f in fields]


@dataclass(frozen=True)
class Grouping:
    """What the grouping options ask for, checked: shared by page_owner_sort and page_owner_fleet."""

    order: list[tuple[str, int]]  # --sort keys (or the one single-letter flag), most significant first
    explicit_sort: bool  # a sort option was given (some outputs have an order of their own and refuse one)
    fields: list[str]  # --cull keys, in the kernel's precedence order
    selection: Selection  # --pid/--tgid/--name and -f


def _grouping(flag_a: bool, flag_m: bool, flag_n: bool, flag_p: bool, flag_P: bool, flag_s: bool, flag_t: bool,
              flag_r: bool, drop_released: bool, pid_list: str | None, tgid_list: str | None, name_list: str | None,
              cull_rules: tuple[str, ...], sort_order: str | None) -> Grouping:
    flags = {"a": flag_a, "m": flag_m, "n": flag_n, "p": flag_p, "P": flag_P, "r": flag_r, "s": flag_s, "t": flag_t}
    chosen = [k for k, v in flags.items() if v]
    if len(chosen) > 1:
        raise click.UsageError("only one of -a -m -n -p -P -r -s -t may be given (use --sort=key,key for several keys)")
    order = _parse_sort(sort_order) if sort_order is not None else list(DEFAULT_SORT)
    if chosen:  # as in the kernel tool, a single-letter option replaces --sort
        order = [SORT_FLAGS[chosen[0]]]
    selection = Selection(
        pids=_parse_list(pid_list, "pid"),
        tgids=_parse_list(tgid_list, "tgid"),
        names=None if name_list is None else frozenset(n.encode("utf-8", "surrogateescape") for n in name_list.split(",")),
        drop_released=drop_released,
    )
    return Grouping(
        order=order,
        explicit_sort=bool(chosen) or sort_order is not None,
        fields=_parse_cull(",".join(cull_rules)) if cull_rules else [],  # repeated --cull options add up
        selection=selection,
    )


_GROUPING_PARAMS = ("flag_a", "flag_m", "flag_n", "flag_p", "flag_P", "flag_s", "flag_t", "flag_r", "drop_released",
                    "pid_list", "tgid_list", "name_list", "cull_rules", "sort_order")
def grouping_options(*after_f: Callable[[Any], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The kernel tool's sort, cull and filter options, passed to the command as one ``grouping: Grouping``.

    One definition for page_owner_sort and page_owner_fleet, so the two
    commands take the same options with the same help and the same checks.
    ``after_f``: a command's own options, listed in ``--help`` right after
    ``-f`` (page_owner_sort's ``-d``).
    """
    before: list[Callable[[Any], Any]] = [
        click.option("-a", "flag_a", is_flag=True, help="Sort by allocation time, oldest first (keeps timestamps in the compared text)."),
        click.option("-m", "flag_m", is_flag=True, help="Sort by total pages, largest first."),
        click.option("-n", "flag_n", is_flag=True, help="Sort by task command name."),
        click.option("-p", "flag_p", is_flag=True, help="Sort by pid."),
        click.option("-P", "flag_P", is_flag=True, help="Sort by tgid."),
        click.option("-s", "flag_s", is_flag=True, help="Sort by stack trace."),
        click.option("-t", "flag_t", is_flag=True, help="Sort by times seen, most first (the default)."),
        click.option("-r", "flag_r", is_flag=True, help="Sort by release time (older dumps with free_ts; a no-op order otherwise)."),
        click.option("-f", "drop_released", is_flag=True, help="Leave out blocks released after allocation (dumps with free_ts only)."),
    ]
    after: list[Callable[[Any], Any]] = [
        click.option("--pid", "pid_list", metavar="LIST", help="Keep only records whose pid is in the comma-separated LIST."),
        click.option("--tgid", "tgid_list", metavar="LIST", help="Keep only records whose tgid is in LIST."),
        click.option("--name", "name_list", metavar="LIST", help="Keep only records whose command name is in LIST."),
        click.option("--cull", "cull_rules", metavar="RULES", multiple=True, help="Merge records that agree on these keys: pid|p, tgid|tg, name|n, stacktrace|st, allocator|ator."),
        click.option("--sort", "sort_order", metavar="ORDER", help="Sort by [+|-]key[,...]; keys: pid|p tgid|tg name|n stacktrace|st txt|T alloc_ts|at allocator|ator free_ts|ft."),
    ]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in _GROUPING_PARAMS}
            return f(*args, grouping=_grouping(**values), **kwargs)

        out: Any = command
        for option in reversed([*before, *after_f, *after]):  # the last applied is listed first
            out = option(out)
        return cast(Callable[..., Any], out)

    return decorate


class _Command(click.Command):
    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(USAGE.split("\n\n")[0] + "\n")

    def get_usage(self, ctx: click.Context) -> str:
        return USAGE.rstrip("\n")


@click.command(
    name=PROG,
    cls=_Command,
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    no_args_is_help=False,
)
@grouping_options(click.option("-d", "debug", is_flag=True, help="Report every unparsable record with its file:line on stderr."))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True, help="Output format; json/csv carry the same groups with their keys and counts.")
@click.option("--collapsed", is_flag=True, help="Write flame-graph input: 'root;...;leaf pages' per stack (with --diff: 'stack old new').")
@click.option("--flamegraph", "flamegraph", metavar="SVG", help="Also draw the groups as a flame graph (width = pages; with --diff: growth red, shrinkage blue) into SVG.")
@click.option("--diff", "diff", is_flag=True, help="Compare two dumps: <old> <new> [<output>]; per stack (or --cull key), largest growth first.")
@click.option("--jobs", "jobs", type=click.IntRange(0, 256), default=0, metavar="N", help="Processes for big or compressed inputs (0: one per idle CPU, up to 8; 1: just this one).")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version, help="Print the version and exit.")
@click.argument("paths", nargs=-1, metavar="<input> <output>")
@click.pass_context
def cli(
    ctx: click.Context,
    grouping: Grouping,
    debug: bool,
    fmt: str,
    collapsed: bool,
    flamegraph: str | None,
    diff: bool,
    jobs: int,
    paths: tuple[str, ...],
) -> int:
    order, explicit_sort, selection = grouping.order, grouping.explicit_sort, grouping.selection
    fields = list(grouping.fields)
    if collapsed and fmt != "text":
        raise click.UsageError("--collapsed is an output format of its own; do not combine it with --format")
    if collapsed and explicit_sort:
        raise click.UsageError("--collapsed output is sorted by stack; sort options do not apply")
    if diff:
        if explicit_sort:
            raise click.UsageError("--diff output is sorted by growth; sort options do not apply")
        if len(paths) not in (2, 3):
            raise click.UsageError("--diff needs <old> <new> [<output>]")
        inputs, output = list(paths[:2]), (paths[2] if len(paths) == 3 else "-")
    else:
        if len(paths) != 2:
            raise click.UsageError("need <input> and <output>" if len(paths) < 2 else f"unexpected extra argument {paths[2]!r}")
        inputs, output = [paths[0]], paths[1]

    if flamegraph is not None:
        if flamegraph in ("", "-"):
            raise click.UsageError("--flamegraph needs a file name for the SVG")
        for path in [*inputs, output]:
            if path != "-" and (os.path.abspath(path) == os.path.abspath(flamegraph) or _same_file(path, flamegraph)):
                raise click.UsageError(f"--flamegraph {flamegraph!r} is also an input or the output; give it a name of its own")
        _pictures_available()

    if inputs.count("-") > 1:
        raise click.UsageError("only one input can be '-' (stdin)")
    if output != "-":
        for path in inputs:
            if path != "-" and _same_file(path, output):
                raise click.UsageError(
                    f"the output {output!r} is the input {path!r}: the report would replace the dump; "
                    "give another output path (or '-' for stdout)"
                )
    # from here on: problems with the files themselves, reported without the usage
    for path in inputs:
        if path == "-":
            continue
        if os.path.isdir(path):
            raise UserError(f"cannot open input {path!r}: it is a directory")
        if not os.access(path, os.R_OK):
            why = "no such file" if not os.path.exists(path) else "permission denied"
            raise UserError(f"cannot open input {path!r}: {why}")
    if output != "-":
        outdir = os.path.dirname(output) or "."  # as the user wrote it, not resolved
        if os.path.isdir(output):
            raise UserError(f"cannot write output {output!r}: it is a directory")
        if not os.path.isdir(outdir):
            raise UserError(f"cannot write output {output!r}: directory {outdir!r} does not exist")
        if not os.access(outdir, os.W_OK):
            raise UserError(f"cannot write output {output!r}: directory {outdir!r} is not writable")

    if jobs == 0:
        jobs = default_jobs()
    info = sys.stderr if output == "-" else sys.stdout
    tty = info.isatty()

    def say(msg: str) -> None:
        info.write(msg + "\n")
        info.flush()

    errors: list[ParseError] = []  # the first unusable block of the input being read

    def on_error(e: ParseError) -> None:
        if debug:
            sys.stderr.write(f"{e.source or '<input>'}:{e.line}: skipped: {e.reason}\n")
        if not errors:
            errors.append(e)

    def progress(n: int) -> None:
        if tty:
            info.write(f"loaded {n}\r")
            info.flush()

    if (diff or collapsed) and not fields:
        fields = ["stacktrace"]
    shown = list(fields)
    for f, given in (("pid", selection.pids), ("tgid", selection.tgids), ("comm", selection.names)):
        if given is not None and f not in shown:
            shown.append(f)

    def load(path: str) -> Aggregator:
        agg = Aggregator(
            strip_ts=order[0][0] != "alloc_ts",
            alloc_bits="allocator" in fields,
            selection=selection,
            on_error=on_error,
            progress=progress if tty else None,
        )
        name = path if path != "-" else "<stdin>"
        try:
            agg.feed(path, jobs=jobs)
        except BrokenPipeError:
            raise
        except (OSError, EOFError, ValueError) as e:
            raise UserError(f"cannot read {name}: {_why(e, path)}") from e
        first = errors[0] if errors else None
        if agg.distinct == 0 and agg.released == 0 and agg.unparsed:
            # text, but not one record in it: an error, not an empty report
            where = f" (first unusable block: {first.source}:{first.line}: {first.reason})" if first else ""
            raise NoRecords(f"no page_owner records found in {name}{where}")
        say(f"loaded {agg.loaded}")
        if agg.unparsed and not debug:
            hint = " Is this a /sys/kernel/debug/page_owner dump?" if agg.loaded == 0 else ""
            where = f" (first: {first.source}:{first.line}: {first.reason})" if first else ""
            sys.stderr.write(
                f"{PROG}: {agg.unparsed} record{'s' if agg.unparsed != 1 else ''} in {agg.source} could not be parsed "
                f"and {'were' if agg.unparsed != 1 else 'was'} skipped{where}; run with -d to list them all.{hint}\n"
            )
        errors.clear()
        return agg

    with _output(output) as out:  # opened first: Ctrl-C while reading leaves no trace either
        if diff:
            old, new = load(inputs[0]), load(inputs[1])
            say("sorting ....")
            og, ng = old.groups(), new.groups()
            say("culling")
            if flamegraph:
                _draw_diff(flamegraph, og, ng, fields)
            if collapsed:
                _write_all(out, output, render_diff_collapsed(og, ng, fields))
                return 0
            report = DiffReport(
                rows=diff_groups(og, ng, fields),
                cull=fields,
                shown=shown,
                old=(old.source, old.loaded, old.unparsed),
                new=(new.source, new.loaded, new.unparsed),
                old_pages=sum(g.pages for g in og),
                new_pages=sum(g.pages for g in ng),
                old_times=sum(g.times for g in og),
                new_times=sum(g.times for g in ng),
            )
            diff_renderer = {"text": render_diff_text, "json": render_diff_json, "csv": render_diff_csv}[fmt]
            _write_all(out, output, diff_renderer(report))
            return 0
        agg = load(inputs[0])
        say("sorting ....")
        if not (fields or flamegraph or collapsed):
            lazy = agg.sorted_groups(order)  # -a: a million groups, made one at a time as they are written
            if lazy is not None:
                say("culling")
                rep = Report(groups=lazy, cull=fields, shown=shown, sort=order, source=agg.source, loaded=agg.loaded,
                             unparsed=agg.unparsed)
                _write_all(out, output, {"text": render_text, "json": render_json, "csv": render_csv}[fmt](rep))
                return 0
        groups = agg.groups()
        if flamegraph:
            _draw(flamegraph, groups, fields or ["stacktrace"], agg.source)  # as --collapsed draws them
        if collapsed:
            say("culling")
            _write_all(out, output, render_collapsed(collapse(groups, fields)))
            return 0
        passed = cull(groups, fields)
        say("culling")
        rep = Report(
            groups=sort_groups(passed, order),
            cull=fields,
            shown=shown,
            sort=order,
            source=agg.source,
            loaded=agg.loaded,
            unparsed=agg.unparsed,
        )
        renderer = {"text": render_text, "json": render_json, "csv": render_csv}[fmt]
        _write_all(out, output, renderer(rep))
        return 0


def _pictures_available() -> None:
    """Refuse --flamegraph up front, before any reading, when matplotlib is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UserError("--flamegraph needs matplotlib: pip install 'pageext-core[pictures]' (make install does)")


def _draw(path: str, groups: list[Group], fields: Sequence[str], source: str) -> None:
    """The flame graph of what the groups hold: one tower per collapsed stack, width = pages."""
    from pageext_core import write_flamegraph

    stacks = [(key.split(";"), pages) for key, pages in collapse(groups, fields).items()]
    _write_picture(path, lambda: write_flamegraph(path, stacks, title=f"Pages by allocation stack: {source}"))


def _draw_diff(path: str, old: list[Group], new: list[Group], fields: Sequence[str]) -> None:
    """The differential flame graph of two dumps' groups."""
    from pageext_core import write_diff_flamegraph

    a, b = collapse(old, fields), collapse(new, fields)
    stacks = [(key.split(";"), a.get(key, 0), b.get(key, 0)) for key in sorted(set(a) | set(b))]
    _write_picture(path, lambda: write_diff_flamegraph(path, stacks))


def _write_picture(path: str, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as e:
        raise UserError(f"cannot write {path}: {_why(e, path)}") from e


@contextlib.contextmanager
def _output(output: str) -> Iterator[BinaryIO]:
    """Where the report goes: stdout for ``-``, else a file that replaces ``output`` when complete."""
    if output == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_writer(output) as f:
        yield f


def _write_all(out: BinaryIO, name: str, chunks: Iterable[bytes]) -> None:
    """Write every chunk; a failed write names the output as the user gave it."""
    try:
        for c in chunks:
            out.write(c)
    except BrokenPipeError:
        raise  # the reader went away (`... - | head`): main() stops quietly
    except OSError as e:
        raise UserError(f"cannot write {name}: {_why(e)}") from e


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 1 usage/input/output error, 130 Ctrl-C)."""
    try:
        rv = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except click.UsageError as e:
        sys.stderr.write(USAGE + "\n")
        sys.stderr.write(f"{PROG}: error: {e.format_message()}\n")
        return 1
    except click.ClickException as e:
        sys.stderr.write(f"{PROG}: error: {e.format_message()}\n")
        return 1
    except click.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            sys.stderr.write(f"{PROG}: interrupted\n")
            return 130
        sys.stderr.write(f"{PROG}: aborted\n")
        return 1
    except NoRecords as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 1
    except UserError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 1
    except BrokenPipeError:  # `page_owner_sort dump - | head`: stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
