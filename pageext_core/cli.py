"""The ``pageext`` command line.

    pageext run [SESSION] [--boot LINE] [--memory SIZE] [--set KEY=VALUE]...
                [--out DIR] [--json] [--seed N] [--quiet] [--fail-on-findings]
                [--record-trace FILE [--trace-format ftrace|trace-cmd|perf]]
    pageext replay TRACE [SESSION] [--mode exact|what-if] [--format F] [--zoneinfo FILE] [run options]
    pageext plugins [--boot LINE] [--json]
    pageext report NAME [SESSION] [--param KEY=VALUE]...
    pageext view [OUTDIR]
    pageext sweep [SESSION] [--seeds 1-1000] [--grid KEY=V1,V2]... [--scheduler ADDRESS] [--out DIR]
    pageext --version

Exit codes: 0 success; 1 findings with --fail-on-findings; 2 usage or
configuration error (a machine the host cannot hold too); 3 the session
stopped on an error while running (reports of the state reached written), an
output could not be written, or the host ran out of memory; 130 interrupted
(reports of the state reached written, or nothing if still booting).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

EXIT_USAGE = 2  # = pageext_core.session.runner.EXIT_USAGE; importing the runner here would load numpy
# and the allocator for --help and --version too
EXIT_FAILED = 3  # = runner.EXIT_FAILED
EXIT_INTERRUPTED = 130  # = runner.EXIT_INTERRUPTED


class UsageError(click.ClickException):
    """A configuration problem: printed as ``pageext: error: ...``, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"pageext: error: {self.message}", err=True)


class RunError(UsageError):
    """The run could not go on (outputs not writable, host memory exhausted): one line, exit code 3."""

    exit_code = EXIT_FAILED


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, entry_points, version

    from pageext_core.hookspecs import ENTRY_POINT_GROUP

    try:
        core = version("pageext-core")
    except PackageNotFoundError:
        from pageext_core import __version__ as core
    lines = [f"pageext-core {core}"]
    seen = set()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        key = (ep.name, dist.metadata["Name"] if dist else None)
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"  {ep.name}: {key[1] or '?'} {dist.version if dist else '?'}")
    lines.append(f"Python {sys.version.split()[0]}")
    return "\n".join(lines)


def _print_version(ctx: click.Context, _param: Any, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_versions())
        ctx.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the core's and every installed plugin's version.")
def main() -> None:
    """pageext: page-level memory debugging experiments on a simulated Linux machine.

    Exit codes: 0 success, 1 findings (with --fail-on-findings), 2 usage or
    configuration error, 3 the session stopped on an error while running,
    130 interrupted.
    """


_USAGE_ERRORS = (("pageext_core.session.config", "SessionError"), ("pageext_core.mm.errors", "ConfigError"),
                 ("pageext_core.discovery", "PluginLoadError"), ("pageext_core.bootparams", "BootParamError"),
                 ("pageext_core.reports", "ReportError"))
_RUN_ERRORS = (("pageext_core.reports", "OutputError"), ("pageext_core.sweep", "SweepClusterError"))


def _loaded_errors(names: Sequence[tuple[str, str]]) -> tuple[type, ...]:
    """The exception classes of modules already imported: one of a module never imported cannot
    have been raised, and importing it here would load the session package (and numpy) for every command."""
    return tuple(getattr(sys.modules[m], n) for m, n in names if m in sys.modules)


def _session_errors(fn: Any) -> Any:
    """Turn every configuration problem into exit code 2 with a one-line message.

    Outputs that cannot be written, host memory running out and a sweep's
    unreachable scheduler are one line and exit code 3; Ctrl-C before the workload's own handling (while
    booting) is exit code 130.  None of them is a traceback.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemoryError as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise RunError(f"the host ran out of memory{detail}; give the machine less memory (--memory) "
                           "or enable fewer page_ext clients") from None
        except Exception as exc:
            if isinstance(exc, _loaded_errors(_USAGE_ERRORS)):
                raise UsageError(str(exc)) from None
            if isinstance(exc, _loaded_errors(_RUN_ERRORS)):
                raise RunError(str(exc)) from None
            raise
        except KeyboardInterrupt as exc:
            click.echo(f"pageext: {str(exc) or 'interrupted'}", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def _load(session: str | None, sets: Sequence[str], memory: str | None, seed: int | None) -> Any:
    from pageext_core.session.config import load_session

    overrides: list[str | tuple[str, str]] = list(sets)
    if memory:
        overrides.append((f"machine.memory={json.dumps(memory)}", f"--memory {memory}"))
    if seed is not None:
        overrides.append((f"workload.seed={seed}", f"--seed {seed}"))
    return load_session(session, overrides=overrides)


_common = [
    click.option("--boot", "boot_line", default="", metavar="LINE",
                 help="Kernel-style boot parameters, added after the session's (later wins)."),
    click.option("--memory", metavar="SIZE", help="Machine memory, e.g. 4GiB (sets machine.memory)."),
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                 help="Change any session key, e.g. --set workload.operations=5000 (repeatable)."),
    click.option("--seed", type=int, help="Workload seed (sets workload.seed)."),
    click.option("--disable-plugin", "disable", multiple=True, metavar="NAME",
                 help="Do not even import this plugin (repeatable; also PAGEEXT_DISABLE_PLUGINS)."),
    click.option("--strict", is_flag=True, help="A plugin that fails to load, or a boot parameter no plugin owns, "
                                                "is an error, not a warning."),
]


def _warn(text: str) -> None:
    """A warning for the user: always on stderr, with --quiet and --json too."""
    click.echo(f"pageext: warning: {text}", err=True)


def common_options(fn: Any) -> Any:
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


@main.command()
@click.argument("session", required=False, type=click.Path(dir_okay=False))
@common_options
@click.option("--out", metavar="DIR", help="Output directory (default: [report] out, else out/<session name>).")
@click.option("--report", "reports", multiple=True, metavar="NAME", help="Write only these reports (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json on stdout instead of the text summary.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but warnings and errors (on stderr).")
@click.option("--fail-on-findings", is_flag=True, help="Exit 1 when a plugin reported findings.")
@click.option("--dmesg", is_flag=True, help="Echo kernel log lines to stderr as they happen.")
@click.option("--print-default", is_flag=True, help="Print the built-in session file and exit.")
@click.option("--record-trace", metavar="FILE", help="Also write the run's page events, with stacks, to FILE as a "
                                                     "kernel trace (.gz/.xz/.bz2 compress).")
@click.option("--trace-format", type=click.Choice(["ftrace", "trace-cmd", "perf"]), default="ftrace",
              show_default=True, help="Format of --record-trace: ftrace text, trace-cmd report or perf script.")
@_session_errors
def run(session: str | None, boot_line: str, memory: str | None, sets: tuple[str, ...], seed: int | None,
        disable: tuple[str, ...], strict: bool, out: str | None, reports: tuple[str, ...], as_json: bool,
        quiet: bool, fail_on_findings: bool, dmesg: bool, print_default: bool, record_trace: str | None,
        trace_format: str) -> None:
    """Run a session file (or the built-in default) and write its reports."""
    from pageext_core.session.config import DEFAULT_SESSION

    if print_default:
        click.echo(DEFAULT_SESSION.read_text(), nl=False)
        return
    sess = _load(session, sets, memory, seed)
    _run_and_report(sess, boot_line, disable, strict, out, reports, as_json, quiet, fail_on_findings, dmesg,
                    record_trace=record_trace, trace_format=trace_format)


def _run_and_report(sess: Any, boot_line: str, disable: Sequence[str], strict: bool, out: str | None,
                    reports: Sequence[str], as_json: bool, quiet: bool, fail_on_findings: bool, dmesg: bool,
                    record_trace: str | None = None, trace_format: str = "ftrace") -> None:
    """What ``run`` and ``replay`` share: run the session, print the summary, exit with the run's code."""
    from pageext_core.session.runner import RunOptions, run_session

    if sess.workload.kind == "replay":
        bar = _Bar(None, unit="ev") if not (quiet or as_json) and sys.stderr.isatty() else None
    else:
        bar = _progress_bar(sess.workload.operations, quiet or as_json)
    opts = RunOptions(
        out=out, boot=boot_line, reports=list(reports) or None, disable=list(disable), strict=strict,
        fail_on_findings=fail_on_findings, progress=bar.update if bar else None,
        log_sink=(lambda line: click.echo(line, err=True)) if dmesg else None, warn=bar.warn if bar else _warn,
        record_trace=record_trace, trace_format=trace_format,
    )
    try:
        outcome = run_session(sess, opts)
    finally:
        if bar:
            bar.close()
    if as_json:
        click.echo(json.dumps(outcome.summary, indent=2))
    elif not quiet:
        click.echo(_text_summary(outcome))
    if outcome.workload.interrupted:
        what = "events" if outcome.workload.kind == "replay" else "operations"
        click.echo(f"pageext: interrupted after {outcome.workload.operations} {what}; "
                   f"reports of the state reached are in {outcome.out_dir}", err=True)
    if outcome.workload.error:
        where = f"; reports of the state reached are in {outcome.out_dir}" if outcome.out_dir else ""
        click.echo(f"pageext: error: the session stopped: {outcome.workload.error}{where}", err=True)
    sys.exit(outcome.exit_code)


class _Bar:
    """tqdm progress on a terminal; nothing at all when output is piped."""

    def __init__(self, total: int | None, unit: str = "op") -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit=unit, unit_scale=True, leave=False, file=sys.stderr, mininterval=0.2)
        self._done = 0

    def update(self, done: int, total: int) -> None:
        self._bar.update(done - self._done)
        self._done = done

    def warn(self, text: str) -> None:
        """A warning printed above the bar, not through it."""
        self._bar.write(f"pageext: warning: {text}", file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def _progress_bar(total: int, silent: bool) -> _Bar | None:
    if silent or total < 50_000 or not sys.stderr.isatty():
        return None
    return _Bar(total)


def _text_summary(o: Any) -> str:
    s = o.summary
    m, w, pe = s["machine"], s["workload"], s["page_ext"]
    from pageext_core.mm.geometry import format_size

    enabled = [p["name"] for p in s["plugins"] if p["enabled"]]
    lines = [
        f"session   {s['session']['name']}",
        f"machine   {format_size(m['memory_bytes'])}, {m['nodes']} node(s), {m['memory_model']}, "
        f"{m['present_pages']} present pages",
        f"boot      {s['boot']['cmdline'] or '(empty)'}",
        f"page_ext  {', '.join(enabled) or 'no client enabled'}: record {pe['record_size']} bytes, "
        f"{pe['bytes']} bytes",
        f"workload  {w['kind']} seed {w['seed']}: {w['operations']} operations, {w['allocations']} allocations, "
        f"{w['frees']} frees, {w['failures']} failures, {w['live_pages']} pages still allocated",
    ]
    f = s["findings"]
    if f["count"]:
        kinds = ", ".join(f"{n} {k}" for k, n in f["by_kind"].items())
        lines.append(f"findings  {f['count']}: {kinds}")
    else:
        lines.append("findings  none")
    p = s["planted"]
    if p["planted"]:
        text = f"planted   {p['planted']} bugs, {p['detected']} detected, {p['missed']} missed"
        if p["undetectable"]:
            text += f", {p['undetectable']} landed in another live allocation (invisible to page-level checks)"
        lines.append(text)
    r = s.get("replay")
    if r:
        kinds = ", ".join(f"{n} {k.removeprefix('mm_page_')}" for k, n in r["events_by_kind"].items() if n)
        nanom = sum(r["anomalies"].values())
        lines.append(f"replay    {r['events']} events ({kinds or 'none'}), {nanom} anomalies, {r['failures']} failures"
                     f" ({r['mode']}, {r['format']})")
    hot = w.get("hotplug") or []
    if hot:
        lines.append(f"hotplug   {len(hot)} event(s), {w.get('hotplug_failures', 0)} failed")
    if o.out_dir is not None:
        lines.append(f"reports   {o.out_dir}/: {', '.join(o.files)}")
    lines.append(f"time      {s['timing']['elapsed_seconds']:.2f} s")
    return "\n".join(lines)


@main.command()
@click.argument("trace", type=click.Path(dir_okay=False))
@click.argument("session", required=False, type=click.Path(dir_okay=False))
@common_options
@click.option("--mode", type=click.Choice(["exact", "what-if"]), default=None,
              help="exact: the traced pfns (default); what-if: the simulated allocator chooses, with this boot line.")
@click.option("--format", "trace_format", type=click.Choice(["auto", "ftrace", "trace-cmd", "perf"]), default=None,
              help="Trace format (default: detected from the first lines).")
@click.option("--zoneinfo", metavar="FILE", type=click.Path(dir_okay=False),
              help="/proc/zoneinfo of the traced machine: its nodes, sizes and CPUs.")
@click.option("--out", metavar="DIR", help="Output directory (default: [report] out, else out/<session name>).")
@click.option("--report", "reports", multiple=True, metavar="NAME", help="Write only these reports (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json on stdout instead of the text summary.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but warnings and errors (on stderr).")
@click.option("--fail-on-findings", is_flag=True, help="Exit 1 when a plugin reported findings.")
@click.option("--dmesg", is_flag=True, help="Echo kernel log lines to stderr as they happen.")
@_session_errors
def replay(trace: str, session: str | None, boot_line: str, memory: str | None, sets: tuple[str, ...],
           seed: int | None, disable: tuple[str, ...], strict: bool, mode: str | None, trace_format: str | None,
           zoneinfo: str | None, out: str | None, reports: tuple[str, ...], as_json: bool, quiet: bool,
           fail_on_findings: bool, dmesg: bool) -> None:
    """Replay a kernel page trace (ftrace, trace-cmd report, perf script) through the simulated machine.

    Without SESSION or --memory the machine is sized from the trace's
    highest pfn (or from --zoneinfo).  Writes the session's reports plus
    kmem, kmem_caller, kmem_live (perf kmem stat --page) and replay.
    """
    from pathlib import Path

    from pageext_core.session.config import load_session

    overrides: list[str | tuple[str, str]] = []
    if session is None:  # the built-in machine and boot, with no synthetic keys left over
        overrides.append(("workload={}", "pageext replay"))
    overrides.append(("workload.kind=\"replay\"", "pageext replay"))
    overrides.append((f"workload.trace={json.dumps(str(Path(trace).resolve()))}", f"pageext replay {trace}"))
    if mode:
        overrides.append((f"workload.mode={json.dumps(mode)}", f"--mode {mode}"))
    if trace_format:
        overrides.append((f"workload.format={json.dumps(trace_format)}", f"--format {trace_format}"))
    if zoneinfo:
        overrides.append((f"workload.zoneinfo={json.dumps(str(Path(zoneinfo).resolve()))}", f"--zoneinfo {zoneinfo}"))
    elif session is None and memory is None:
        overrides.append(("workload.infer_memory=true", "pageext replay"))
    overrides += list(sets)
    if memory:
        overrides.append((f"machine.memory={json.dumps(memory)}", f"--memory {memory}"))
    if seed is not None:
        overrides.append((f"workload.seed={seed}", f"--seed {seed}"))
    sess = load_session(session, overrides=overrides)
    if session is None:
        sess.name = "replay"
    _run_and_report(sess, boot_line, disable, strict, out, reports, as_json, quiet, fail_on_findings, dmesg)


@main.command()
@click.option("--boot", "boot_line", default="", metavar="LINE", help="Boot line to evaluate 'enabled' against.")
@click.option("--memory", default="1GiB", show_default=True, metavar="SIZE", help="Machine size for the page_ext figures.")
@click.option("--disable-plugin", "disable", multiple=True, metavar="NAME", help="Do not import this plugin.")
@click.option("--strict", is_flag=True, help="A plugin that fails to load is an error.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_session_errors
def plugins(boot_line: str, memory: str, disable: tuple[str, ...], strict: bool, as_json: bool) -> None:
    """List installed plugins: hooks, boot parameters, page_ext fields, and whether the boot line enables them.

    The figures are arithmetic on the layout and the geometry: the machine
    is never booted (no table allocated, no page freed), so any size is instant.
    """
    from pageext_core.discovery import discover
    from pageext_core.mm.geometry import MachineConfig, format_size, parse_size
    from pageext_core.page_ext import boot
    from pageext_core.resources import estimate, human

    size = parse_size(memory, "--memory")
    pe = boot(MachineConfig(memory=size), boot_line, blocked=disable, strict=strict or None, plan_only=True)
    est = estimate(pe.machine.geometry, pe.layout)
    desc = pe.describe()
    desc["page_ext_bytes"] = est.page_ext_bytes  # what a boot would allocate (nothing is, here)
    for d in desc["plugins"]:
        d["page_ext_bytes"] = est.clients.get(d["name"], 0)
        if not d["enabled"]:  # what it would store if enabled (not allocated this boot)
            c = pe.client(d["name"])
            f = pe.ask("pageext_fields", c.name, boot=pe.boot) or {}
            fl = pe.ask("pageext_flags", c.name, boot=pe.boot) or []
            d["fields_if_enabled"] = {k: str(v) for k, v in f.items()}
            d["flags_if_enabled"] = list(fl)
    blocked = [{"name": i.name, "distribution": i.dist, "version": i.version}
               for i in discover(blocked=disable) if i.blocked]
    data = {"machine_memory": format_size(size), "boot": pe.boot.cmdline, "boot_warnings": pe.boot.warnings,
            **desc, "blocked": blocked, "host_memory_estimate": est.describe()}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for d in data["plugins"]:
        state = "enabled" if d["enabled"] else "disabled"
        click.echo(f"{d['name']:<18s} {d['distribution'] or '(direct)'} {d['version'] or ''}  [{state}]")
        click.echo(f"    hooks:  {', '.join(d['hooks'])}")
        for p in d["boot_params"]:
            click.echo(f"    boot:   {p['name']} ({p['type']}, default {p['default']!r}; "
                       f"TOML [boot.{d['name']}] {p['toml_key']}) {p['doc']}")
        if d["enabled"]:
            bits = ", ".join(f"{k}=bit {v}" for k, v in d["flag_bits"].items()) or "none"
            click.echo(f"    page_ext: offset {d['offset']}, {d['size']} bytes/page "
                       f"({d['page_ext_bytes']} bytes), flag bits: {bits}")
            click.echo(f"    fields: {', '.join(f'{k}:{v}' for k, v in d['fields'].items()) or 'none'}")
        else:
            click.echo("    page_ext: 0 bytes (not enabled by this boot line)")
    for b in data["blocked"]:
        click.echo(f"{b['name']:<18s} {b['distribution']} {b['version']}  [blocked: not imported]")
    for problem in data["problems"]:
        _warn(problem)
    for w in data["boot_warnings"]:
        _warn(f"boot: {w}")
    h = data["host_memory_estimate"]
    click.echo(f"host memory estimate {human(h['total'])}: allocator {human(h['allocator'])}, "
               f"page_ext {human(h['page_ext'])}, contents {human(h['contents'])}, working {human(h['working'])}")
    click.echo(f"record size {data['record_size']} bytes; page_ext {data['page_ext_bytes']} bytes "
               f"on a {data['machine_memory']} machine (boot line: {data['boot'] or '(empty)'})")


@main.command()
@click.argument("name", required=False)
@click.argument("session", required=False, type=click.Path(dir_okay=False))
@common_options
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Report parameter, e.g. --param count_threshold=4 (repeatable).")
@click.option("--out", metavar="DIR", help="Also write the report under DIR.")
@click.option("--list", "list_", is_flag=True, help="List the reports this session offers.")
@_session_errors
def report(name: str | None, session: str | None, boot_line: str, memory: str | None, sets: tuple[str, ...],
           seed: int | None, disable: tuple[str, ...], strict: bool, params: tuple[str, ...], out: str | None,
           list_: bool) -> None:
    """Run a session quietly and print one report (like reading its debugfs or proc file)."""
    from pageext_core.reports import atomic_write, report_path
    from pageext_core.session.runner import RunOptions, run_session

    if list_ and name and session is None:  # pageext report --list my.toml
        session, name = name, None
    sess = _load(session, sets, memory, seed)
    from pageext_core.pictures.outputs import DRAWN

    if name in DRAWN and not list_:
        _picture_report(sess, name, params, out, boot_line, disable, strict)
        return
    opts = RunOptions(boot=boot_line, disable=list(disable), strict=strict, write_files=False,
                      reports=[name] if name and not list_ else None, reports_label="pageext report", warn=_warn)
    outcome = run_session(sess, opts)
    pe = outcome.page_ext
    if list_ or not name:
        for n in pe.report_names():
            click.echo(f"{n:<32s} {pe.report_owner(n)}")
        return
    kw: dict[str, Any] = dict(sess.report.params.get(name, {}))  # the session's, then --param
    for item in params:
        k, eq, v = item.partition("=")
        if not eq:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE")
        kw[k] = _toml_value(v)
    from pageext_core.session.runner import check_report_params

    check_report_params(sess, pe, {name: kw}, label="--param")
    text = pe.report(name, **kw)
    if out:
        atomic_write(report_path(__import__("pathlib").Path(out), name), text)
    click.echo(text, nl=False)


def _picture_report(sess: Any, name: str, params: tuple[str, ...], out: str | None, boot_line: str,
                    disable: tuple[str, ...], strict: bool) -> None:
    """``pageext report memmap|fragmentation|flamegraph``: run the session and write that one picture.

    A picture is not text, so it goes to a file (``--out DIR``, else the
    session's output directory) and its path is printed.
    """
    import tempfile
    from pathlib import Path

    from pageext_core.pictures.outputs import FILES, SAMPLES_FILE
    from pageext_core.reports import atomic_write
    from pageext_core.session.config import PICTURE_PARAMS
    from pageext_core.session.runner import RunOptions, run_session

    kw: dict[str, Any] = dict(sess.report.picture_params.get(name, {}))
    allowed = PICTURE_PARAMS.get(name, {})
    for item in params:
        k, eq, v = item.partition("=")
        if not eq:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE")
        if k not in allowed:
            takes = f"takes {', '.join(allowed)}" if allowed else "takes no parameters"
            raise UsageError(f"--param {item!r}: the {name} picture {takes}")
        kw[k] = _toml_value(v)
    sess.report.pictures = [name]
    sess.report.picture_params = {**sess.report.picture_params, name: kw}
    out_dir = Path(out or sess.report.out or f"out/{sess.name}")
    files = [FILES[name]] + ([SAMPLES_FILE] if name == "fragmentation" else [])
    with tempfile.TemporaryDirectory(prefix="pageext-picture-") as tmp:
        run_session(sess, RunOptions(boot=boot_line, disable=list(disable), strict=strict, out=tmp, reports=[],
                                     reports_label="pageext report", warn=_warn))
        if not (Path(tmp) / files[0]).is_file():  # the flame graph needs page_owner's stacks
            raise UsageError(f"no {name} picture for this boot: it needs page_owner=on (add --boot page_owner=on)")
        for f in files:
            atomic_write(out_dir / f, (Path(tmp) / f).read_bytes())
    click.echo(out_dir / files[0])


def _toml_value(raw: str) -> Any:
    """A --param value as TOML reads it (4, true, "x"); a bare word is a string."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


@main.command()
@click.argument("outdir", required=False, default="out/default", type=click.Path(file_okay=False))
@click.option("--print-only", is_flag=True, help="Print the page's file:// address instead of opening it.")
def view(outdir: str, print_only: bool) -> None:
    """Open a run's index.html (written with [report] pictures) in the web browser.

    OUTDIR defaults to out/default, where `pageext run` writes the built-in session.
    """
    import webbrowser
    from pathlib import Path

    page = Path(outdir) / "index.html"
    if not page.is_file():
        raise UsageError(f"{page}: no such file; write it with pageext run --set report.pictures=all "
                         f"--out {outdir} (or [report] pictures = [\"all\"] in the session file)")
    url = page.resolve().as_uri()
    click.echo(url)
    if not print_only and not webbrowser.open(url):
        raise RunError(f"no web browser could be started; open {url} yourself")


@main.command()
@click.argument("session", required=False, type=click.Path(dir_okay=False))
@click.option("--seeds", metavar="SEEDS", help="Seeds to run, e.g. 1-1000 or 1,5,10-20 (default: the session's seed).")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2",
              help="A session key and its values, each a TOML value as --set takes it (repeatable: "
                   "every combination runs).")
@click.option("--scheduler", metavar="ADDRESS", help="A Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                                                    "(default: a local cluster of worker processes).")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Worker processes of the local cluster (default: one per CPU).")
@click.option("--out", metavar="DIR", help="Where the table and report go (default: out/<session name>-sweep).")
@click.option("--keep-runs", is_flag=True, help="Also write each run's reports, dmesg.log and summary.json "
                                                "under DIR/runs/<run id>.")
@click.option("--retry-failed", is_flag=True, help="Run again the runs whose row in the table has an error.")
@click.option("--boot", "boot_line", default="", metavar="LINE", help="Boot parameters added to every run's.")
@click.option("--memory", metavar="SIZE", help="Machine memory of every run (sets machine.memory).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Change a session key for every run (repeatable).")
@click.option("--disable-plugin", "disable", multiple=True, metavar="NAME", help="Do not import this plugin (repeatable).")
@click.option("--strict", is_flag=True, help="A plugin that fails to load, or an unknown boot word, is an error.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but warnings and errors.")
@_session_errors
def sweep(session: str | None, seeds: str | None, grid: tuple[str, ...], scheduler: str | None,
          workers: int | None, out: str | None, keep_runs: bool, retry_failed: bool, boot_line: str,
          memory: str | None, sets: tuple[str, ...], disable: tuple[str, ...], strict: bool, quiet: bool) -> None:
    """Run a session over many seeds and grid points on Dask; one table row per run (Parquet and CSV).

    Every combination of the --grid values and the --seeds is one run
    (short runs travel several to a Dask task).  A failed run is a row with its error; running the same sweep again
    skips the runs already in the table.  Needs the sweep extra
    (pip install 'pageext-core[sweep]').
    """
    from pageext_core.sweep import SweepSpec, run_sweep

    if scheduler and workers:
        raise UsageError("--workers sets the size of the local cluster; with --scheduler the cluster's own "
                         "workers run the sweep (drop --workers)")
    spec = SweepSpec(session=session, seeds=seeds, grid=grid, sets=sets, memory=memory, boot=boot_line,
                     disable=disable, strict=strict, out=out, keep_runs=keep_runs, retry_failed=retry_failed,
                     scheduler=scheduler, workers=workers)
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if quiet or not sys.stderr.isatty():
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="run", leave=False, file=sys.stderr, mininterval=0.2)
        bar.update(done - bar.n)

    try:
        res = run_sweep(spec, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if not quiet:
        click.echo(f"sweep     {res.total} runs: {res.executed} run now, {res.resumed} already in the table; "
                   f"{res.errors} not ok")
        click.echo(f"results   {res.out}/results.parquet, results.csv")
        click.echo(f"report    {res.out}/report.md, report.json")
    if res.errors:
        _warn(f"{res.errors} of {res.total} runs did not finish cleanly: see the status and error columns "
              f"(--retry-failed runs them again)")
    if res.interrupted:
        click.echo(f"pageext: interrupted: {len(res.rows)} of {res.total} runs are in {res.out}/results.parquet; "
                   "run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)


@main.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder to create the plugin's folder in.")
def new_plugin(name: str, parent: str) -> None:
    """Write a ready-to-install plugin distribution NAME (pyproject, client, test, README)."""
    from pageext_core.scaffold import ScaffoldError, create

    try:
        target = create(name, parent)
    except ScaffoldError as exc:
        raise UsageError(str(exc)) from None
    click.echo(f"created {target}/ (distribution pageext-{name.replace('_', '-')}, entry point {name!r})")
    click.echo(f"next: cd {target} && pip install -e . && pytest && pageext plugins --boot \"{name}=on\"")


if __name__ == "__main__":  # pragma: no cover
    main()
