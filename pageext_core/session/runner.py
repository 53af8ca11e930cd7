"""Running a session: boot, workload, reports, ``summary.json``, ``dmesg.log``.

Exit codes: 0 success; 1 the session ran and a client reported findings
while ``fail_on_findings`` was set; 2 usage or configuration error (raised as
``SessionError``, found before the workload runs, nothing written; a
machine the host cannot hold is one, see ``pageext_core.resources``); 3 the
session stopped on an error while running (a plugin or a function workload
raised: the reports of the state reached are written, with the error in
``summary.json`` and ``dmesg.log``); 130 interrupted (the reports of the
state reached are still written; Ctrl-C while booting raises
``BootInterrupted`` instead, nothing written).

``summary.json`` is deterministic for a given session and seed except for
the ``timing`` object, the one place that holds wall-clock figures.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pageext_core
from pageext_core import resources
from pageext_core.bootparams import BootParamError, split_cmdline
from pageext_core.discovery import (
    PluginLoadError,
    explain_unknown_word,
    installed_names,
    not_loaded_reason,
    shipped_owner_of_report,
)
from pageext_core.mm import stats
from pageext_core.mm.constants import PAGE_SIZE
from pageext_core.mm.errors import ConfigError
from pageext_core.mm.geometry import build_geometry
from pageext_core.page_ext import PageExt, boot
from pageext_core.pictures import outputs as picture_outputs
from pageext_core.pictures.samples import Sampler, default_sample_every
from pageext_core.reports import OutputError, ReportError, atomic_write, check_report_name, report_path
from pageext_core.session.config import Session, SessionError
from pageext_core.session.workload import (
    WorkloadResult,
    declared_finding_kinds,
    load_function,
    match_planted,
    run_workload,
)

SUMMARY_SCHEMA = "pageext.summary/1"
EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class BootInterrupted(KeyboardInterrupt):
    """Ctrl-C while booting: there is no state worth reporting yet (exit code 130, nothing written)."""


@dataclass
class RunOptions:
    out: str | None = None
    boot: str = ""
    reports: list[str] | None = None
    disable: list[str] = field(default_factory=list)
    strict: bool = False
    fail_on_findings: bool = False
    write_files: bool = True
    progress: Callable[[int, int], None] | None = None  # (done, total)
    log_sink: Callable[[str], None] | None = None
    reports_label: str = "--report"  # how to name ``reports`` in errors
    warn: Callable[[str], None] | None = None  # each warning for the user as it happens (the CLI: stderr)
    record_trace: str | None = None  # write the run's page events to this file as a kernel trace
    trace_format: str = "ftrace"  # ... in this format: ftrace, trace-cmd or perf


@dataclass
class RunOutcome:
    session: Session
    page_ext: PageExt
    workload: WorkloadResult
    summary: dict[str, Any]
    out_dir: Path | None
    files: list[str]
    exit_code: int
    warnings: list[str] = field(default_factory=list)  # for the user, without a prefix; also given to opts.warn


def boot_session(sess: Session, opts: RunOptions) -> PageExt:
    """Boot the session's machine; every configuration problem becomes a located SessionError.

    The host-memory check runs twice before anything is touched: the
    allocator arrays before the machine maps them, then the whole estimate
    (page_ext tables at the layout's record size, contents, working memory)
    once the clients have said what they need, before any table exists.
    """
    cmdline = " ".join(x for x in (sess.cmdline, opts.boot) if x)
    _check_blocked(sess, opts)
    try:
        host = resources.host_memory()
    except ConfigError as exc:  # a bad PAGEEXT_HOST_MEMORY: the message names it
        raise SessionError(str(exc)) from None
    try:
        resources.check_machine(build_geometry(sess.machine), host)
        return boot(
            sess.machine,
            cmdline,
            boot_tables=sess.boot_tables,
            blocked=[*sess.plugins.disable, *opts.disable],
            autoload=sess.plugins.autoload,
            strict=True if (sess.plugins.strict or opts.strict) else None,  # None: PAGEEXT_STRICT decides
            log_sink=opts.log_sink,
            preflight=lambda machine, layout: resources.check(machine.geometry, layout, host),
        )
    except resources.ResourceError as exc:
        raise SessionError(f"{sess.source.where(['machine', 'memory'])}: {exc}") from None
    except BootParamError as exc:
        where, msg = _locate_boot_error(sess, opts, exc)
        raise SessionError(f"{where}: {msg}") from None
    except ConfigError as exc:  # the machine is too small for the record: its memory is the key to change
        raise SessionError(f"{sess.source.where(['machine', 'memory'])}: {exc}") from None
    except PluginLoadError as exc:
        raise SessionError(f"{sess.source.filename}: {exc}") from None


def _strict(sess: Session, opts: RunOptions) -> bool:
    """Asked for on the command line or in the file (not PAGEEXT_STRICT, which is about loading plugins)."""
    return sess.plugins.strict or opts.strict


def check_unknown_words(sess: Session, opts: RunOptions, pe: PageExt) -> list[str]:
    """One warning per boot word no loaded plugin owns; in strict mode the first is an error, at its source.

    The kernel passes such words to init and says so in dmesg (that line
    stays); the user is told which plugin owns the word and how to get it,
    or what it may be a misspelling of.
    """
    if not pe.boot.unknown:
        return []
    from_option = {name.replace("-", "_") for name, _ in split_cmdline(opts.boot)}
    blocked = [*sess.plugins.disable, *opts.disable]
    out = []
    for token in pe.boot.unknown:
        text = explain_unknown_word(token, pe.boot.params, blocked, sess.plugins.autoload)
        if _strict(sess, opts):
            name = token.partition("=")[0].replace("-", "_")
            where = "--boot" if name in from_option else sess.source.where(["boot", "cmdline"])
            raise SessionError(f"{where}: {text} (strict mode: an unknown boot parameter is an error)")
        out.append(text)
    return out


def boot_warnings(sess: Session, opts: RunOptions, pe: PageExt) -> list[str]:
    """What the user must hear about this boot: the log's warnings and errors, and every unknown boot word.

    The kernel's "Unknown kernel command line parameters" line is replaced
    by one explained warning per word; ``pageext:`` prefixes are dropped (the
    CLI adds its own).
    """
    out = []
    for _, level, text in pe.machine.log.lines:
        if level in ("warn", "err", "crit", "alert", "emerg") and not text.startswith(_UNKNOWN_LINE):
            out.append(text.removeprefix("pageext: "))
    return out + check_unknown_words(sess, opts, pe)


_UNKNOWN_LINE = "Unknown kernel command line parameters "


def _locate_boot_error(sess: Session, opts: RunOptions, exc: BootParamError) -> tuple[str, str]:
    """Where a boot error is: its ``[boot.<client>]`` key, the file's cmdline, or ``--boot``."""
    where = sess.source.where
    if exc.client is not None:
        path = ["boot", exc.client] + ([exc.key] if exc.key is not None else [])
        if exc.key is None:  # about the whole table: an option that wrote into it is where it came from
            given = [w for k in sess.boot_tables.get(exc.client, {}) if (w := where([*path, k])).startswith("--")]
            if given:
                return ", ".join(dict.fromkeys(given)), str(exc)
        return where(path), str(exc)
    try:
        split_cmdline(sess.cmdline)
    except BootParamError:
        return where(["boot", "cmdline"]), str(exc)
    return "--boot", str(exc)


def _check_blocked(sess: Session, opts: RunOptions) -> None:
    """A plugin named in --disable-plugin or [plugins] disable must exist: a typo would block nothing."""
    if not sess.plugins.autoload:
        return
    installed = installed_names()
    for name, where in [*((n, "--disable-plugin") for n in opts.disable),
                        *((n, sess.source.where(["plugins", "disable"])) for n in sess.plugins.disable)]:
        if name not in installed:
            close = difflib.get_close_matches(name, sorted(installed), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SessionError(f"{where}: no installed plugin is called {name!r}; {hint}"
                               f"(installed: {', '.join(sorted(installed)) or 'none'})")


def _why_missing(pe: PageExt, name: str, available: list[str], sess: Session | None = None,
                 opts: RunOptions | None = None) -> str:
    """Why a report is not there: a plugin off (and why, when it said), one not installed or not loaded, or a typo."""
    off = [c for c in pe.clients if not c.enabled and (name == c.name or name.startswith(c.name + "_")
                                                    or name.startswith(c.name + "/"))]
    if off:
        said = declined_because(pe, off[0].name)
        if said:
            return f"; it comes from {off[0].name!r}, which is installed but off: {said}"
        return (f"; it comes from {off[0].name!r}, which is installed but not enabled by this boot line "
                f"(see pageext plugins)")
    plugin = shipped_owner_of_report(name)
    if plugin is not None and plugin.name not in {c.name for c in pe.clients}:
        blocked = [*(sess.plugins.disable if sess else ()), *(opts.disable if opts else ())]
        return (f": {name} is a report of the {plugin.dist} plugin, "
                f"{not_loaded_reason(plugin, blocked, sess.plugins.autoload if sess else True)}")
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if pe.problems:  # the report may belong to a plugin that could not be loaded
        hint += f" (a plugin failed to load: {pe.problems[0]})"
    return hint


def declined_because(pe: PageExt, client: str) -> str | None:
    """The warning a client logged at boot about one of its own boot parameters, if it declined with one.

    Clients say why they decline in the log (see ``pageext_need``); a
    warning whose first boot parameter is one of the client's is taken as its
    reason ("debug_guardpage_minorder=1 ignored: debug_pagealloc is off" is
    guard's, not debug_pagealloc's).
    """
    owner = {name: p.owner for name, p in pe.boot.params.items()}
    if not owner:
        return None
    word = re.compile("|".join(rf"(?<!\w){re.escape(n)}(?!\w)" for n in sorted(owner, key=len, reverse=True)))
    said = []
    for _, level, text in pe.machine.log.lines:
        m = word.search(text) if level == "warn" and not text.startswith(_UNKNOWN_LINE) else None
        if m and owner[m.group(0)] == client:
            said.append(text.removeprefix("pageext: "))
    return said[-1] if said else None


def selected_reports(sess: Session, pe: PageExt, override: list[str] | None, opts_label: str = "--report",
                     opts: RunOptions | None = None) -> list[str]:
    available = pe.report_names()
    wanted = override if override is not None else sess.report.reports
    for name in sess.report.params:
        if name not in available:
            raise SessionError(f"{sess.source.where(['report', 'params', name])}: [report.params] no report "
                               f"{name!r}{_why_missing(pe, name, available, sess)}")
    if wanted is None or "all" in wanted:
        return available
    for name in wanted:
        check_report_name(name)
        if name not in available:
            where = sess.source.where(["report", "reports"]) if override is None else opts_label
            raise SessionError(f"{where}: no report {name!r}{_why_missing(pe, name, available, sess, opts)} "
                               f"(this session offers: {', '.join(available)})")
    # Listed (and written) in the session's own order, not the order asked for:
    # reports are read-only, so only summary.json's ``reports`` list would differ.
    asked = set(wanted)
    return [n for n in available if n in asked]


def check_report_params(sess: Session, pe: PageExt, params: dict[str, dict[str, Any]], label: str | None = None) -> None:
    """Parameter names and values, checked before the workload: a report is tried on the fresh machine."""
    for name, given in params.items():
        where = label or sess.source.where(["report", "params", name])
        known, any_kw = pe.report_params(name)
        for key in given:
            if key not in known and not any_kw:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else (
                    f"it takes {', '.join(known)}" if known else "it takes no parameters")
                raise SessionError(f"{label or sess.source.where(['report', 'params', name, key])}: report "
                                   f"{name!r} has no parameter {key!r}; {hint}")
        try:
            pe.report(name, **given)
        except (TypeError, ValueError) as exc:
            raise SessionError(f"{where}: report {name!r}: {exc}") from None


def check_hotplug_events(sess: Session, pe: PageExt) -> None:
    """Hotplug events must name a memory block this machine has."""
    blocks = pe.machine.memory_blocks
    ids = {b.index for b in blocks}
    for i, ev in enumerate(sess.workload.hotplug):
        where = sess.source.where(["workload", "hotplug"])
        if ev.block is None and not any(b.hotplug for b in blocks):
            raise SessionError(f"{where}: entry {i + 1}: the machine has no hot-pluggable memory; "
                               "add [machine] hotplug = \"...\" or give block = <index>")
        if ev.block is not None and ev.block not in ids:
            raise SessionError(f"{where}: entry {i + 1}: block {ev.block}: this machine's memory blocks are "
                               f"{_ranges_text(sorted(ids))}")


def _ranges_text(ids: list[int]) -> str:
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in out)


def check_out_dir(out_dir: Path, where: str) -> None:
    """The output directory must be (or be creatable as) a writable directory: found before the run."""
    bad = next((d for d in (out_dir, *out_dir.parents) if d.exists() and not d.is_dir()), None)
    if bad is not None:
        raise SessionError(f"{where}: cannot write reports to {out_dir}: {bad} is not a directory")
    existing = next(d for d in (out_dir, *out_dir.parents) if d.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SessionError(f"{where}: cannot write reports to {out_dir}: {existing} is not writable")


def make_out_dir(out_dir: Path, where: str) -> None:
    """Create the output directory before the workload (even root cannot create one in /proc)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SessionError(f"{where}: cannot write reports to {out_dir}: {exc.strerror or exc}") from None


def remove_stale_reports(out_dir: Path, keep: list[str]) -> None:
    """Delete report files an earlier run wrote here and this one does not (its summary.json lists them)."""
    old = out_dir / "summary.json"
    try:
        prev = json.loads(old.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(prev, dict) or prev.get("schema") != SUMMARY_SCHEMA:
        return
    for name in prev.get("reports", []):
        if name in keep or name in ("dmesg.log", "summary.json"):
            continue
        try:
            path = report_path(out_dir, name)
        except ReportError:
            continue
        if path.is_file():
            try:
                path.unlink()
            except OSError as exc:
                raise OutputError(path, exc, "remove") from exc
            parent = path.parent
            while parent != out_dir.resolve() and not any(parent.iterdir()):
                try:
                    parent.rmdir()
                except OSError:  # an empty folder left behind is harmless
                    break
                parent = parent.parent


def run_session(sess: Session, opts: RunOptions | None = None) -> RunOutcome:
    """Run a checked session end to end; see the module docstring for the exit codes."""
    opts = opts or RunOptions()
    if sess.workload.kind == "replay":  # the trace checked and the machine sized before booting
        from pageext_core.session.replay import prepare_replay

        sess = prepare_replay(sess)
        sess.workload.strict = _strict(sess, opts)
    if opts.record_trace:
        if opts.trace_format not in ("ftrace", "trace-cmd", "perf"):
            raise SessionError(f"--trace-format {opts.trace_format!r}: expected ftrace, trace-cmd or perf")
        rt = Path(opts.record_trace)
        if rt.is_dir():
            raise SessionError(f"--record-trace: {rt} is a directory; give a file name")
        check_out_dir(rt.parent if str(rt.parent) else Path("."), "--record-trace")
    if sess.workload.kind == "function":  # fail before booting, at the key
        try:
            load_function(sess.workload.function or "", sess.workload.base_dir)
        except SessionError as exc:
            raise SessionError(f"{sess.source.where(['workload', 'function'])}: {exc}") from None
    out_dir: Path | None = None
    if opts.write_files:  # found before the run, not after it
        out_dir = Path(opts.out or sess.report.out or f"out/{sess.name}")
        check_out_dir(out_dir, "--out" if opts.out else sess.source.where(["report", "out"]))
    t0 = time.perf_counter()
    try:
        pe = boot_session(sess, opts)
    except KeyboardInterrupt:
        raise BootInterrupted("interrupted while booting; nothing was written") from None
    t_boot = time.perf_counter() - t0
    # Boot leaves a few pages on per-CPU lists (the page_ext tables' tails):
    # the workload starts with them drained, whatever reports are asked for.
    pe.machine.drain_all_pages()
    warnings = boot_warnings(sess, opts, pe)
    for w in warnings:
        if opts.warn:
            opts.warn(w)
    names = selected_reports(sess, pe, opts.reports, opts.reports_label, opts)
    check_report_params(sess, pe, dict(sess.report.params))
    check_hotplug_events(sess, pe)
    catches = declared_finding_kinds(pe)  # what each client says it catches, checked before the run
    if out_dir is not None:  # the last check, so a configuration error leaves nothing behind
        make_out_dir(out_dir, "--out" if opts.out else sess.source.where(["report", "out"]))
    total = sess.workload.operations if sess.workload.kind != "replay" else 0  # 0: not known in advance
    interrupted = False
    # Ctrl-C during the synthetic workload stops it between two operations (at
    # its next progress call), never inside the allocator: the state reached
    # stays consistent for the reports.  A second Ctrl-C stops at once.
    ctrl_c: list[int] = []

    def progress(done: int) -> None:
        if ctrl_c == [1]:
            ctrl_c.append(2)
            raise KeyboardInterrupt
        if opts.progress:
            opts.progress(done, total)

    def on_sigint(signum: int, frame: Any) -> None:
        if ctrl_c:
            raise KeyboardInterrupt
        ctrl_c.append(1)

    defer = (sess.workload.kind in ("synthetic", "replay") and threading.current_thread() is threading.main_thread()
             and signal.getsignal(signal.SIGINT) is not None)  # None: a handler Python cannot restore
    old_handler = signal.signal(signal.SIGINT, on_sigint) if defer else None
    t1 = time.perf_counter()
    wres = WorkloadResult(kind=sess.workload.kind, seed=sess.workload.seed)
    failure: BaseException | None = None
    sampler = _sampler(sess, pe) if opts.write_files else None
    recorder = None
    if opts.record_trace:
        from pageext_core.trace.recorder import TraceRecorder

        rt = Path(opts.record_trace)
        if opts.write_files:
            rt.parent.mkdir(parents=True, exist_ok=True)
        recorder = TraceRecorder(pe.machine, rt, opts.trace_format)
        try:
            recorder.install()
        except OSError as exc:
            raise SessionError(f"--record-trace: cannot write {rt}: {exc.strerror or exc}") from None
    try:
        run_workload(pe, sess.workload, progress, wres, sampler,
                     sess.report.sample_every or default_sample_every(sess.workload.operations))
    except KeyboardInterrupt:
        interrupted = True
    except SessionError:
        raise
    except Exception as exc:  # a plugin or a function workload raised: keep the state reached
        failure = exc
        wres.error = f"{type(exc).__name__}: {exc}"
        pe.machine.log.err(f"pageext: the session stopped: {wres.error}")
    finally:
        if defer:
            signal.signal(signal.SIGINT, old_handler)
        if recorder is not None:  # what was reached is kept, as the reports are
            recorder.uninstall(keep=True)
    interrupted = interrupted or bool(ctrl_c)
    t_work = time.perf_counter() - t1
    wres.interrupted = wres.interrupted or interrupted
    if interrupted:
        pe.machine.log.warn("pageext: workload interrupted; reports show the state reached")
    for ev in wres.hotplug:
        if not ev["ok"]:
            w = f"hotplug event at operation {ev['at']} failed: {ev['error']}"
            warnings.append(w)
            if opts.warn:
                opts.warn(w)
    findings = pe.findings()
    detection = match_planted(wres.planted, findings, catches)
    texts: dict[str, str] = {}
    for name in names:
        try:
            texts[name] = pe.report(name, **sess.report.params.get(name, {}))
        except Exception as exc:  # a report that worked on the fresh machine failed on the busy one
            failure = failure or exc
            wres.error = wres.error or f"report {name!r}: {type(exc).__name__}: {exc}"
            pe.machine.log.err(f"pageext: report {name} failed: {type(exc).__name__}: {exc}")
    for name, text in wres.reports.items():  # the replay's own: kmem (perf kmem stat --page) and replay
        texts[name] = text
    files: list[str] = []
    pictures = picture_outputs.planned_files(pe, sess.report.pictures) if opts.write_files else []
    if out_dir is not None:
        remove_stale_reports(out_dir, list(texts) + pictures)
        for name, text in texts.items():
            atomic_write(report_path(out_dir, name), text)
            files.append(name)
        files += ["dmesg.log", "summary.json"] + pictures
    summary = build_summary(sess, pe, wres, findings, detection, files,
                            {"boot_seconds": round(t_boot, 6), "workload_seconds": round(t_work, 6),
                             "elapsed_seconds": round(time.perf_counter() - t0, 6)})
    if recorder is not None:
        summary["record_trace"] = {"file": str(recorder.path), "format": recorder.format, "events": recorder.count}
    if out_dir is not None:
        atomic_write(out_dir / "dmesg.log", pe.machine.log.text())
        atomic_write(out_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=False) + "\n")
        if pictures:  # drawn last: they show the summary and link the files above
            picture_outputs.write(out_dir, pe, sess.name, sess.report.pictures, sampler, summary, files,
                                  wres.planted, findings, texts, sess.report.picture_params)
    if interrupted:
        code = EXIT_INTERRUPTED
    elif failure is not None:
        code = EXIT_FAILED
    elif opts.fail_on_findings and findings:
        code = EXIT_FINDINGS
    else:
        code = EXIT_OK
    return RunOutcome(sess, pe, wres, summary, out_dir, files, code, warnings)


def _sampler(sess: Session, pe: PageExt) -> Sampler | None:
    """A sampler for the fragmentation picture when it is asked for (read-only; see pictures.samples)."""
    return Sampler(pe) if picture_outputs.needs_samples(sess.report.pictures) else None


def build_summary(sess: Session, pe: PageExt, wres: WorkloadResult, findings: list[Any],
                  detection: dict[str, Any], files: list[str], timing: dict[str, float]) -> dict[str, Any]:
    """The documented, stable ``summary.json`` (schema ``pageext.summary/1``)."""
    m = pe.machine
    g = m.geometry
    by_kind: dict[str, int] = {}
    for f in findings:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    desc = pe.describe()
    return {
        "schema": SUMMARY_SCHEMA,
        "pageext_version": pageext_core.__version__,
        "session": {"name": sess.name, "file": str(sess.path) if sess.path else None, "description": sess.description},
        "machine": {
            # Installed RAM, as configured; the address span (PCI hole included) is separate.
            "memory_bytes": sum(m.config.memory) if isinstance(m.config.memory, tuple) else m.config.memory,
            "hotplug_bytes": m.config.hotplug,
            "spanned_bytes": g.max_pfn * PAGE_SIZE,
            "pages": g.max_pfn,
            "present_pages": m.nr_present_pages,
            "memory_model": m.config.memory_model,
            "nodes": len(g.nodes),
            "cpus": m.config.cpus,
            "zones": [{"node": z.node, "zone": z.name, "start_pfn": z.start_pfn, "end_pfn": z.end_pfn,
                       "present_pages": m.zone_present[z.index]} for z in g.zones if z.spanned_pages],
        },
        "boot": {"cmdline": pe.boot.cmdline, "warnings": list(pe.boot.warnings)},
        "plugins": desc["plugins"],
        "plugin_problems": desc["problems"],
        "page_ext": {
            "record_size": pe.record_size,
            "bytes": pe.nbytes,
            "tables": len(pe.tables.tables) if pe.tables else 0,
            "simulated_pages": pe.tables.sim_pages if pe.tables else 0,
        },
        "workload": wres.as_dict() | {"allocator_failures": m.nr_alloc_failures},
        "free_pages": stats.free_summary(m),
        "findings": {"count": len(findings), "by_kind": dict(sorted(by_kind.items())),
                     "items": [f.as_dict() for f in findings]},
        "planted": detection,
        "clients": pe.client_summaries(),
        "log": {"lines": len(m.log.lines), "suppressed": m.log.suppressed()},
        "reports": files,
        **({"replay": wres.replay} if wres.replay is not None else {}),
        "timing": timing,
    }
