"""The machine's kernel log: ``printk`` lines with the simulated timestamp.

Every part of the model writes here; sessions save it as ``dmesg.log``.
Lines read like a real ``dmesg``: ``[    0.000123] text``.
"""
from __future__ import annotations

from collections.abc import Callable

LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")

SECOND_NS = 1_000_000_000
# The kernel's DEFAULT_RATELIMIT_BURST / DEFAULT_RATELIMIT_INTERVAL.
RATELIMIT_BURST = 10
RATELIMIT_INTERVAL_NS = 5 * SECOND_NS

# Rate-limit states the kernel defines at the call site with other values
# than the default, keyed by the function name it prints in "callbacks
# suppressed": (burst, interval).  warn_alloc's ``nopage_rs`` in
# mm/page_alloc.c allows one message per 10 s; page_poison's
# check_poison_mem keeps the default (10 per 5 s).
RATELIMIT_STATES: dict[str, tuple[int, int]] = {
    "warn_alloc": (1, 10 * SECOND_NS),
    "check_poison_mem": (RATELIMIT_BURST, RATELIMIT_INTERVAL_NS),
}


class RateLimit:
    """``__ratelimit()``: ``burst`` messages per ``interval``; counts what it suppressed.

    As ``___ratelimit`` does, a window closes only once the clock is strictly
    past ``begin + interval`` (compared here in nanoseconds, not jiffies), and
    the messages it dropped are reported by the first call after that.
    """

    def __init__(self, burst: int = RATELIMIT_BURST, interval_ns: int = RATELIMIT_INTERVAL_NS) -> None:
        self.burst = burst
        self.interval_ns = interval_ns
        self.begin: int | None = None
        self.printed = 0
        self.missed = 0
        self.total_suppressed = 0

    def allow(self, now_ns: int) -> tuple[bool, int]:
        """(may print, messages suppressed in the window that just closed)."""
        closed = 0
        if self.begin is None or now_ns - self.begin > self.interval_ns:
            closed = self.missed
            self.begin = now_ns
            self.printed = 0
            self.missed = 0
        if self.printed < self.burst:
            self.printed += 1
            return True, closed
        self.missed += 1
        self.total_suppressed += 1
        return False, closed


class KernelLog:
    """Timestamped log lines; a ``sink`` (e.g. the CLI's stderr echo) sees each as it comes."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self.lines: list[tuple[int, str, str]] = []
        self.sink: Callable[[str], None] | None = None
        self._limits: dict[str, RateLimit] = {}

    def printk(self, text: str, level: str = "info") -> None:
        now = self._clock()
        for line in text.split("\n"):
            self.lines.append((now, level, line))
            if self.sink is not None:
                self.sink(self.format_line(now, line))

    def info(self, text: str) -> None:
        self.printk(text, "info")

    def warn(self, text: str) -> None:
        self.printk(text, "warn")

    def err(self, text: str) -> None:
        self.printk(text, "err")

    def ratelimit(self, key: str) -> RateLimit:
        """The state named ``key``: the kernel's own parameters for it (``RATELIMIT_STATES``), else the default."""
        lim = self._limits.get(key)
        if lim is None:
            burst, interval = RATELIMIT_STATES.get(key, (RATELIMIT_BURST, RATELIMIT_INTERVAL_NS))
            lim = self._limits[key] = RateLimit(burst, interval)
        return lim

    def ratelimited(self, key: str, text: str, level: str = "warn") -> bool:
        """Print unless ``key`` is over its rate; says how many were suppressed before."""
        ok, closed = self.ratelimit(key).allow(self._clock())
        if closed:
            self.printk(f"{key}: {closed} callbacks suppressed", level)
        if ok:
            self.printk(text, level)
        return ok

    def warn_ratelimited(self, key: str, text: str) -> bool:
        return self.ratelimited(key, text, "warn")

    def suppressed(self) -> dict[str, int]:
        """Messages dropped by rate limiting so far, per key."""
        return {k: v.total_suppressed for k, v in self._limits.items() if v.total_suppressed}

    @staticmethod
    def format_line(ns: int, text: str) -> str:
        sec, rem = divmod(ns, 1_000_000_000)
        return f"[{sec:5d}.{rem // 1000:06d}] {text}"

    def text(self) -> str:
        """The whole log, one line each, as ``dmesg`` prints it."""
        return "".join(self.format_line(ns, t) + "\n" for ns, _, t in self.lines)

    def grep(self, needle: str) -> list[str]:
        return [t for _, _, t in self.lines if needle in t]
