"""How hooks are called: through pluggy, except the per-page event hooks.

Every hook that is not on the hot path (boot, init, reports, summary,
findings, finding kinds, ``dump_page``, the pagetypeinfo section) is called
through pluggy (``pm.hook`` / ``pm.subset_hook_caller``), so pluggy's
argument matching, ``tryfirst``/``trylast`` and hook-call monitoring
(``PAGEEXT_TRACE_PLUGINS=1``) apply to them.  Hooks whose answers belong to
one client (a boot parameter, a report, a summary) are called one client at
a time (``ask``): the answer is attributed to that client, and a client
that raises can be named and dropped alone.  Hooks whose answers are simply
joined (``dump_page``) are one pluggy call over the enabled clients
(``caller_for``).

The per-page event hooks (``EVENT_HOOKS``) are the exception: calling
through ``pm.hook`` costs about 1.2 µs per implementation, a direct call
about 0.15 µs.  So at boot each enabled client's implementation is taken out
of pluggy (``resolve``) and, when it accepts only a subset of the arguments,
wrapped in a one-line adapter that takes the canonical positional arguments.
The allocator then calls a tuple of plain functions; with no client enabled
the tuple is empty and there is no call at all.

Order, for both: pluggy's.  ``tryfirst`` implementations, then plain ones,
then ``trylast`` ones.  The framework registers clients in reverse name
order and pluggy calls the last registered first, so tryfirst and plain
implementations are called in client-name order; among several ``trylast``
ones pluggy calls the first registered first, which is reverse name order.
The order never depends on install order.

Hook wrappers (``wrapper=True``, ``hookwrapper=True``) are refused when a
client is registered, on every hook: event hooks are not called through
pluggy, and the others are called one client at a time, so a wrapper would
wrap nothing but its own client's implementation.
"""
from __future__ import annotations

import os
import reprlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pluggy

ENV_TRACE = "PAGEEXT_TRACE_PLUGINS"

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


# -- order ------------------------------------------------------------------------------------


def call_order(pm: pluggy.PluginManager, hook: str, names: Iterable[str]) -> list[str]:
    """The named clients implementing ``hook``, in the order pluggy calls them."""
    allowed = set(names)
    out: list[str] = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # pluggy calls the list back to front
        name = impl.plugin_name
        if name in allowed and name not in out:
            out.append(name)
    return out


# -- non-hot hooks: through pluggy -------------------------------------------------------------------


def caller_for(pm: pluggy.PluginManager, hook: str, names: Iterable[str]) -> Any:
    """A pluggy hook caller that calls only the named clients (results in call order, None dropped)."""
    keep = set(names)
    return pm.subset_hook_caller(hook, [p for p in pm.get_plugins() if pm.get_name(p) not in keep])


def ask(pm: pluggy.PluginManager, hook: str, name: str, **kwargs: Any) -> Any:
    """One client's answer to ``hook`` (None when it gave none), called through pluggy."""
    if not any(i.plugin_name == name for i in getattr(pm.hook, hook).get_hookimpls()):
        return None  # nothing to call (and nothing to trace)
    got = caller_for(pm, hook, (name,))(**kwargs)
    return got[0] if got else None


def ask_each(pm: pluggy.PluginManager, hook: str, names: Iterable[str], **kwargs: Any) -> dict[str, Any]:
    """Each named client's answer, attributed, in call order; clients without the hook are absent."""
    return {name: ask(pm, hook, name, **kwargs) for name in call_order(pm, hook, names)}


# -- tracing -----------------------------------------------------------------------------------------


def env_trace() -> bool:
    """``PAGEEXT_TRACE_PLUGINS=1``: print every hook call made through pluggy to stderr."""
    return os.environ.get(ENV_TRACE, "").strip().lower() not in ("", "0", "no", "off", "false")


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80
_short.maxlist = _short.maxdict = 6


def trace_hook_calls(pm: pluggy.PluginManager) -> Callable[[], None]:
    """Print each hook call through ``pm`` (hook, clients, arguments) and its result; returns the undo.

    Event hooks are not called through pluggy, so they are never traced.
    """
    def out(text: str) -> None:
        print(f"pageext trace: {text}", file=sys.stderr)  # looked up per call: redirect_stderr works

    def who(impls: Sequence[pluggy.HookImpl]) -> str:
        return ",".join(i.plugin_name for i in impls) or "no client"

    def before(hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        args = ", ".join(f"{k}={_short.repr(v)}" for k, v in kwargs.items())
        out(f"{hook}({args}) [{who(impls)}]")

    def after(outcome: pluggy.Result[Any], hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        if outcome.exception is not None:
            exc = outcome.exception
            out(f"{hook} [{who(impls)}] raised {type(exc).__name__}: {exc}")
        else:
            out(f"{hook} [{who(impls)}] -> {_short.repr(outcome.get_result())}")

    return pm.add_hookcall_monitoring(before, after)


# -- event hooks: resolved once into call lists -----------------------------------------------------------


def adapt(fn: Callable[..., Any], argnames: Sequence[str], canonical: Sequence[str]) -> Callable[..., Any]:
    """``fn`` itself when it takes the canonical arguments, else a positional adapter."""
    if tuple(argnames) == tuple(canonical):
        return fn
    for a in argnames:  # pluggy has validated them against the spec already
        if a not in canonical or not a.isidentifier():
            raise ValueError(f"argument {a!r} is not one of {canonical}")
    src = f"lambda {', '.join(canonical)}: fn({', '.join(argnames)})"
    adapter: Callable[..., Any] = eval(src, {"fn": fn})
    return adapter


def resolve(pm: pluggy.PluginManager, hook: str, enabled: Sequence[str]) -> list[tuple[str, Callable[..., Any]]]:
    """Plain callables for one event hook, attributed to their clients, in pluggy's call order."""
    canonical = EVENT_HOOKS[hook]
    allowed = set(enabled)
    out = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        name = impl.plugin_name
        if name in allowed:
            out.append((name, adapt(impl.function, impl.argnames, canonical)))
    return out

