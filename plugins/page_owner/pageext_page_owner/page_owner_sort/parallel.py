"""``--jobs``: the work page_owner_sort gives to forked processes.

One mechanism serves both uses: child processes made by
``multiprocessing``'s fork context that leave Ctrl-C to the parent (which
stops them), so an interrupted run prints no tracebacks.

* A big plain file is cut at record boundaries (:func:`split`) and the
  parts are counted by a pool of workers (:func:`map_parts`).
* A compressed file is decompressed by one child into a pipe while this
  process counts what comes out (:func:`decompressed`).

Without fork (not Linux or macOS) everything runs in one process.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from pageext_page_owner.dumpparse import PFN_PREFIX, compression_of, open_dump

if TYPE_CHECKING:
    from multiprocessing.context import ForkContext

__all__ = ["MAX_SCAN", "PARALLEL_MIN_BYTES", "FileRange", "can_fork", "cut_parts", "decompressed", "default_jobs",
           "is_compressed", "map_parts", "split"]

PARALLEL_MIN_BYTES = 64 << 20  # below this, starting processes costs more than it saves
MAX_SCAN = 1 << 20  # how far from a cut to look for a record boundary and for the last PFN line


def default_jobs() -> int:
    """One process per idle CPU, at most 8.

    Idle means usable CPUs minus the 1-minute load average: on a busy
    machine extra processes only share the same CPUs and add their start-up
    and merge costs.  The result is the same whatever the number of jobs.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        n -= int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        pass
    return max(1, min(n, 8))


def _fork_context() -> ForkContext | None:
    import multiprocessing  # here: a run without --jobs does not pay for importing it

    try:
        return multiprocessing.get_context("fork")
    except ValueError:
        return None


def can_fork() -> bool:
    """Whether this platform can start the processes ``--jobs`` uses."""
    return _fork_context() is not None


def _ignore_sigint() -> None:
    """Children leave Ctrl-C to the parent (which stops them), so they print no tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def is_compressed(path: str) -> bool:
    """Whether ``path`` starts with a gzip/xz/bzip2 header (False when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return compression_of(f.read(6)) is not None
    except OSError:
        return False


def split(path: str, jobs: int) -> list[tuple[int, int, int]] | None:
    """Cut a big plain file into about ``jobs`` parts at record boundaries.

    Each part is ``(start, stop, pfn_carry)``: its byte range and the
    CMA/SLAB bits of the last PFN line before it (records without a PFN
    line are classified by it, as the kernel tool does).  None when the
    file is small, compressed or unreadable, has no record boundary near a
    cut, no PFN line near a cut, or fork is missing: it is then read in
    one process.
    """
    parts = cut_parts(path, jobs, PARALLEL_MIN_BYTES)
    if parts is None or not can_fork():
        return None
    return parts


def cut_parts(path: str, jobs: int, min_bytes: int = PARALLEL_MIN_BYTES) -> list[tuple[int, int, int]] | None:
    """:func:`split` without the fork check: also what page_owner_fleet gives its Dask tasks.

    None when the file is smaller than ``min_bytes``, compressed,
    unreadable, or has no record boundary or PFN line near a cut.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size < min_bytes or compression_of(f.read(6)) is not None:
                return None
            cuts = [0]
            for i in range(1, jobs):
                f.seek(size * i // jobs)
                k = f.read(MAX_SCAN).find(b"\n\n")
                if k < 0:
                    return None
                cut = size * i // jobs + k + 2
                if cut > cuts[-1]:
                    cuts.append(cut)
            cuts.append(size)
            carries = [0]
            for cut in cuts[1:-1]:
                bits = _pfn_bits_before(f, cut)
                if bits is None:
                    return None
                carries.append(bits)
    except OSError:
        return None
    return [(cuts[i], cuts[i + 1], carries[i]) for i in range(len(cuts) - 1)]


def _pfn_bits_before(f: BinaryIO, cut: int) -> int | None:
    """CMA/SLAB bits of the last PFN line before byte ``cut``.

    None when there is none in the ``MAX_SCAN`` bytes before the cut but
    the file goes further back.
    """
    lo = max(0, cut - MAX_SCAN)
    f.seek(lo)
    window = f.read(cut - lo)
    k = window.rfind(b"\nPFN")
    if k >= 0:
        at = k + 1
    elif lo == 0 and window.startswith(PFN_PREFIX):
        at = 0
    else:
        return 0 if lo == 0 else None
    e = window.find(b"\n", at)
    ln = window[at:] if e < 0 else window[at:e]
    return (b"CMA" in ln) | ((b"slab" in ln) << 1)


def map_parts(worker: Callable[[Any], Any], args: list[Any]) -> list[Any]:
    """``worker(a)`` for every ``a`` of ``args``, each in a forked process; results in order."""
    ctx = _fork_context()
    assert ctx is not None, "split() returns parts only where fork exists"
    with ctx.Pool(len(args), initializer=_ignore_sigint) as pool:
        return pool.map(worker, args)


class FileRange(io.RawIOBase):
    """Reads bytes ``[start, stop)`` of an open file: one part of a :func:`split`."""

    def __init__(self, f: BinaryIO, start: int, stop: int) -> None:
        super().__init__()
        f.seek(start)
        self._f = f
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if size is None or size < 0 or size > self._left:
            size = self._left
        data = self._f.read(size)
        self._left -= len(data)
        return data


@contextlib.contextmanager
def decompressed(path: str) -> Iterator[BinaryIO]:
    """The decompressed bytes of ``path``, made by a child process while this one reads them.

    Only where :func:`can_fork`.  When the child fails, an ``OSError``
    carries its message once the stream has been read.
    """
    ctx = _fork_context()
    assert ctx is not None, "callers check can_fork()"
    data_r, data_w = os.pipe()
    err_r, err_w = os.pipe()
    with contextlib.suppress(Exception):  # bigger pipe, fewer context switches (Linux)
        import fcntl

        fcntl.fcntl(data_w, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    child = ctx.Process(target=_decompress, args=(path, data_r, data_w, err_r, err_w), daemon=True)
    child.start()
    os.close(data_w)
    os.close(err_w)
    try:
        with os.fdopen(data_r, "rb", buffering=1 << 20) as stream:
            yield stream
    finally:
        child.join()
        with os.fdopen(err_r, "rb") as ef:
            message = ef.read().decode(errors="replace")
    if child.exitcode != 0:
        raise OSError(message or f"decompressing {path} failed")


def _decompress(path: str, data_r: int, data_w: int, err_r: int, err_w: int) -> None:
    """Child: decompress ``path`` into the pipe; a failure's message goes to the error pipe."""
    _ignore_sigint()
    os.close(data_r)
    os.close(err_r)
    try:
        with open_dump(path) as (stream, _), os.fdopen(data_w, "wb", buffering=0) as out:
            while True:
                block = stream.read(1 << 20)
                if not block:
                    break
                out.write(block)
    except BrokenPipeError:  # the reader stopped early (an error or Ctrl-C there): nothing to report
        return
    except Exception as e:  # reported by the parent, in the words one process would use
        why = e.strerror if isinstance(e, OSError) and e.strerror else (str(e) or type(e).__name__)
        with contextlib.suppress(OSError):
            os.write(err_w, why.encode()[:4000])
        sys.exit(1)
