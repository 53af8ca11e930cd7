"""The ``debug_guardpage_minorder=N`` boot parameter and the rules around it.

The kernel reads N with ``kstrtoul`` (base 10, unsigned) and accepts
0 <= N <= MAX_PAGE_ORDER / 2; anything else is logged as 6.12 logs it,
``Bad debug_guardpage_minorder value`` (no value: the ``: %s`` came in
2025), and ignored.  A bare ``debug_guardpage_minorder`` (no ``=``) is a
NULL pointer for 6.12's ``kstrtoul``, a boot-time crash; the model logs the
same message instead.  After the kernel's line comes pageext's own, which
says what was given, what is accepted and where to fix it.  N only takes effect when
debug_pagealloc unmaps free pages; that is the debug_pagealloc client's rule
(a dependency of this distribution), asked of it, and its parameters may
still be absent (client blocked, or installed without its dependencies),
which counts as off and is said so.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pageext_core import BootParam
from pageext_core.mm.constants import MAX_PAGE_ORDER

if TYPE_CHECKING:
    from pageext_core import BootConfig

PARAM = "debug_guardpage_minorder"
TOML_KEY = "minorder"

# The kernel's bound is a compile-time constant; the parser cannot see the
# machine, so a machine built with a smaller max_order is checked again at
# need time (``limit_for``).
PARSE_LIMIT = MAX_PAGE_ORDER // 2


KERNEL_BAD_VALUE = f"Bad {PARAM} value"  # 6.12's pr_err, without the value


def bad_value(raw: str | None, limit: int = PARSE_LIMIT) -> str:
    """6.12's line for a rejected value, then pageext's own: what, what is accepted, how to fix it."""
    given = f"{PARAM} given without a value" if raw is None else f"{PARAM}={raw}"
    return (f"{KERNEL_BAD_VALUE}\n"
            f"pageext: {given} ignored: expected a whole number from 0 to {limit} (MAX_PAGE_ORDER / 2); "
            f"fix it on the boot line or as [boot.guard] minorder, no guard pages until then")


def setting(value: int) -> str:
    return f"Setting {PARAM} to {value}"


def ignored_without_debug_pagealloc(value: int, why: str) -> str:
    """pageext's own line (the kernel prints none): guard pages need debug_pagealloc, and why it is not on."""
    return f"pageext: {PARAM}={value} ignored: {why}, no guard pages"


def parse_minorder(raw: str | None, limit: int = PARSE_LIMIT) -> int:
    """N from the command-line text, as ``kstrtoul(buf, 10, ...)`` plus the range check.

    Raises ``ValueError`` carrying the kernel's message, which the framework
    logs before ignoring the parameter.
    """
    if raw is None:
        raise ValueError(bad_value(raw))
    text = raw[:-1] if raw.endswith("\n") else raw  # kstrto* accept one trailing newline
    digits = text[1:] if text.startswith("+") else text
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ValueError(bad_value(raw))
    value = int(digits)
    if value > limit:
        raise ValueError(bad_value(raw))
    return value


def limit_for(max_order: int) -> int:
    """Largest accepted N on a machine whose largest block has order ``max_order``."""
    return max_order // 2


def boot_param() -> BootParam:
    return BootParam(
        PARAM, "int", 0,
        f"split-off blocks below this order become guard pages (0..{PARSE_LIMIT}; needs debug_pagealloc=on)",
        key=TOML_KEY, parse=parse_minorder,
    )


def debug_pagealloc_missing(boot: BootConfig) -> str | None:
    """Why debug_pagealloc is not unmapping free pages, in words the user can act on; None when it is.

    Its parameters are registered only when its client is loaded, so an
    unowned parameter means the distribution is not installed, or is
    installed but was not loaded (disabled, or it failed to load).  Whether
    the line turns it on is debug_pagealloc's own rule, asked of it
    (``unmapping_off_reason``), never copied here.
    """
    if "debug_pagealloc" not in boot.params:
        from pageext_core import install_command, installed_names, shipped

        dist = shipped("debug_pagealloc")
        if dist is not None and not ({dist.name, dist.dist} & installed_names()):
            return f"debug_pagealloc is not installed ({install_command(dist)})"
        return "debug_pagealloc is not loaded (its plugin is disabled or failed to load)"
    from pageext_debug_pagealloc.plugin import unmapping_off_reason

    return unmapping_off_reason(boot)
