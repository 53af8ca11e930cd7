"""Reports, findings and writing them safely.

A report is a named text produced on demand (the debugfs and procfs files
of this world).  The core offers ``buddyinfo``, ``pagetypeinfo``,
``meminfo``, ``vmstat`` and ``page_ext``; clients add theirs.  Names may
nest with ``/`` and become subfolders when written; a name can never escape
the output directory.  Files are written atomically (temporary file, then
rename), so a crash never leaves half a report.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

FINDING_KINDS = (
    "use-after-free",
    "stray-access",
    "memory-corruption",
    "single-bit-error",
    "guard-hit",
    "bad-page-state",
)


@dataclass(frozen=True)
class Finding:
    """A bug a client caught, with the kernel-style report that announced it."""

    kind: str
    pfn: int
    time_ns: int
    message: str
    offset: int | None = None
    client: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    length: int | None = None
    """Bytes from ``offset`` the finding covers (a damaged range); None: just the byte at ``offset``."""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pfn_hex"] = f"{self.pfn:#x}"
        return d


@dataclass(frozen=True)
class FindingKinds:
    """What a client declares about its findings (``pageext_finding_kinds``), for this boot.

    ``reports``: every ``Finding.kind`` the client may produce.  ``catches``:
    for each planted bug kind of the session workload (``use_after_free``,
    ``stray_write``, ``bit_flip``, ``corruption``, ``overrun``, ``underrun``)
    the finding kinds by which this client, as booted, reports such a bug.
    The session runner scores planted bugs from these declarations only.
    """

    reports: tuple[str, ...] = ()
    catches: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def check(self, client: str) -> None:
        """Every caught-as kind must be one the client reports; a ValueError names what is wrong."""
        for planted, kinds in self.catches.items():
            if isinstance(kinds, str):
                raise ValueError(f"client {client!r}: pageext_finding_kinds: catches[{planted!r}] must be a "
                                 f"sequence of finding kinds, not the string {kinds!r}")
            bad = [k for k in kinds if k not in self.reports]
            if bad:
                raise ValueError(f"client {client!r}: pageext_finding_kinds: catches[{planted!r}] names "
                                 f"{', '.join(map(repr, bad))}, which is not in its reports "
                                 f"({', '.join(self.reports) or 'none'}); add it to reports")


class ReportError(ValueError):
    """A report name that is invalid or unknown, or a report that failed."""


def check_report_name(name: str) -> PurePosixPath:
    """A safe relative path for a report name: no absolute paths, no ``..``, no empty parts."""
    if not isinstance(name, str) or not name:
        raise ReportError(f"report name {name!r} must be a non-empty string")
    if "\\" in name or "\x00" in name:
        raise ReportError(f"report name {name!r} may not contain backslashes or NUL")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith("~"):
        raise ReportError(f"report name {name!r} is absolute; report names are relative (like page_owner_stacks/show_stacks)")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise ReportError(f"report name {name!r} has an empty, '.' or '..' part; it could escape the output directory")
    return p


class OutputError(OSError):
    """An output file could not be written (disk full, read-only directory, ...).

    The message names the output path, never the temporary file; the CLI
    prints it as one line and exits 3.
    """

    def __init__(self, path: str | os.PathLike[str], exc: OSError, action: str = "write") -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.path = path
        self.message = f"cannot {action} {path}: {exc.strerror or exc}"

    def __str__(self) -> str:
        return self.message


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write a file so that readers see the old content or the whole new one, never a part.

    Any ``OSError`` becomes an ``OutputError`` naming ``path``; the
    temporary file is removed whatever went wrong.
    """
    with _naming(path), atomic_writer(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """``atomic_write`` for an output made in pieces: a binary file that replaces ``path`` at the end.

    The pieces go to a temporary file beside ``path`` (missing folders are
    made); when the ``with`` block ends it is synced and renamed over
    ``path``.  An existing file keeps its permissions, a new one gets
    ``0o666 & ~umask``.  A device or FIFO (``/dev/null``) cannot be
    replaced and is written in place.  A failure of these steps raises an
    ``OutputError`` naming ``path`` as given.  An exception raised in the
    block (a failed ``write`` too: only the caller knows which of its
    errors are about the output) propagates unchanged, after the temporary
    file is removed; ``path`` is then left as it was.
    """
    with _naming(path):
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            device = open(path, "wb")
        else:
            device = None
            parent = Path(path).parent
            parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".tmp", dir=parent)
    if device is not None:
        with device:
            yield device
        return
    if st is not None and stat.S_ISREG(st.st_mode):
        mode = st.st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # mkstemp makes it 0600; a report is an ordinary file
    try:
        with os.fdopen(fd, "wb") as f:
            with _naming(path):
                os.fchmod(f.fileno(), mode)
            yield f
            with _naming(path):
                f.flush()
                os.fsync(f.fileno())
        with _naming(path):
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:  # already gone, or the directory went read-only: nothing more to do
            pass
        raise


@contextlib.contextmanager
def _naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an ``OSError`` raised inside into an ``OutputError`` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(path, exc) from exc


def report_path(out_dir: Path, name: str) -> Path:
    """Where report ``name`` goes under ``out_dir`` (checked not to escape it)."""
    rel = check_report_name(name)
    root = Path(out_dir).resolve()
    target = (root / Path(*rel.parts)).resolve()
    if root != target and root not in target.parents:
        raise ReportError(f"report name {name!r} resolves outside the output directory {root}")
    return target


def join_text(chunks: str | Iterable[str]) -> str:
    return chunks if isinstance(chunks, str) else "".join(chunks)

# A public module (docs/writing-plugins.md, "What is public"): these names are its API.
__all__ = [
    "FINDING_KINDS",
    "Finding",
    "FindingKinds",
    "OutputError",
    "ReportError",
    "atomic_write",
    "atomic_writer",
    "check_report_name",
    "join_text",
    "report_path",
]
