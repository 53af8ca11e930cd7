"""Building the machine's call-out table from the enabled clients' event hooks.

pluggy is the registry; the hot path is not.  At the end of boot each
enabled client's event hooks are taken out of pluggy once (with an adapter
when a hook takes a subset of the arguments, see ``dispatch``) into a
frozen ``Callouts`` table, and the machine installs it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import pluggy

from pageext_core.dispatch import ask_each, resolve
from pageext_core.mm.callouts import EVENTS, Callout, Callouts

if TYPE_CHECKING:
    from pageext_core.page_ext import PageExt

__all__ = ["Callout", "Callouts", "install_callouts", "resolve_callouts"]


def resolve_callouts(pm: pluggy.PluginManager, enabled: Sequence[str]) -> Callouts:
    """The enabled clients' event hooks as plain functions, each attributed to its client, and their hold rules."""
    rules = tuple(replace(rule, client=name) for name, rule in ask_each(pm, "pageext_hold_rule", enabled).items()
                  if rule is not None)
    if len(rules) > 1:
        raise ValueError(f"clients {', '.join(r.client for r in rules)} each declare a hold rule "
                         "(pageext_hold_rule); at most one client may hold split-off blocks by rule")
    return Callouts(**{event: tuple(Callout(name, fn) for name, fn in resolve(pm, hook, enabled))
                       for event, hook in EVENTS.items()}, hold=rules)


def install_callouts(pe: PageExt) -> None:
    """Give the machine the call-out table of this boot's enabled clients."""
    pe.machine.install(resolve_callouts(pe.pm, pe.enabled))
