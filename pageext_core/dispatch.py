"""Resolving hot-path hooks once, at boot, into plain call lists.

pluggy is the registry and the validator; calling through ``pm.hook`` costs
about 1.2 µs per implementation, a direct call about 0.15 µs.  So at boot
each enabled client's implementation of an event hook is taken out of
pluggy and, when it accepts only a subset of the arguments, wrapped in a
one-line adapter that takes the canonical positional arguments.  The
allocator then calls a tuple of plain functions; with no client enabled
the tuple is empty and the allocator makes no call at all.

Order: tryfirst implementations, then plain ones, then trylast; within
each group by client name (the layout order).  It is deterministic and
does not depend on install order.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import pluggy

# Canonical positional arguments of each event hook.
EVENT_HOOKS: dict[str, tuple[str, ...]] = {
    "pageext_on_alloc": ("pfn", "order", "gfp_mask", "migratetype"),
    "pageext_on_free": ("pfn", "order"),
    "pageext_on_split": ("pfn", "order", "migratetype"),
    "pageext_on_merge": ("pfn", "order"),
    "pageext_on_split_page": ("pfn", "order"),
    "pageext_on_migrate": ("old_pfn", "new_pfn", "order", "reason"),
    "pageext_on_fault": ("pfn", "offset", "write"),
    "pageext_on_online": ("start_pfn", "nr_pages"),
}


def adapt(fn: Callable[..., Any], argnames: Sequence[str], canonical: Sequence[str]) -> Callable[..., Any]:
    """``fn`` itself when it takes the canonical arguments, else a positional adapter."""
    if tuple(argnames) == tuple(canonical):
        return fn
    for a in argnames:  # pluggy has validated them against the spec already
        if a not in canonical or not a.isidentifier():
            raise ValueError(f"argument {a!r} is not one of {canonical}")
    src = f"lambda {', '.join(canonical)}: fn({', '.join(argnames)})"
    return eval(src, {"fn": fn})  # noqa: S307 - built from validated identifiers only


def ordered_impls(pm: pluggy.PluginManager, hook: str, enabled: Sequence[str]) -> list[tuple[str, Any]]:
    """(client name, HookImpl) for the enabled clients implementing ``hook``, in call order."""
    caller = getattr(pm.hook, hook, None)
    if caller is None:
        return []
    allowed = set(enabled)
    impls = [(pm.get_name(i.plugin), i) for i in caller.get_hookimpls()]
    impls = [(n, i) for n, i in impls if n in allowed]
    rank = {n: k for k, n in enumerate(enabled)}
    return sorted(impls, key=lambda ni: (0 if ni[1].tryfirst else 2 if ni[1].trylast else 1, rank[ni[0]]))


def resolve(pm: pluggy.PluginManager, hook: str, enabled: Sequence[str]) -> list[tuple[str, Callable[..., Any]]]:
    """Plain callables for one event hook, attributed to their clients."""
    canonical = EVENT_HOOKS[hook]
    return [(name, adapt(impl.function, impl.argnames, canonical)) for name, impl in ordered_impls(pm, hook, enabled)]


def call_each(pm: pluggy.PluginManager, hook: str, names: Sequence[str], **kwargs: Any) -> dict[str, Any]:
    """Call one client at a time (results attributed, never merged); clients without the hook are absent."""
    out: dict[str, Any] = {}
    for name, impl in ordered_impls(pm, hook, names):
        out[name] = impl.function(*[kwargs[a] for a in impl.argnames])
    return out


def first_true(fns: Sequence[Callable[..., Any]]) -> Callable[..., bool] | None:
    """One callable asking each in turn until one says yes (split/merge hooks); None for none.

    When one of them raises, the exception is tagged with the function that
    raised (``__pageext_hook__``) so the error can name that client alone.
    """
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]

    def any_of(*args: Any) -> bool:
        for f in fns:
            try:
                if f(*args):
                    return True
            except Exception as exc:
                exc.__pageext_hook__ = f  # type: ignore[attr-defined]
                raise
        return False

    return any_of
