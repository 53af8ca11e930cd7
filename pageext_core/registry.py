"""Finding installed clients: the ``pageext.clients`` entry-point group.

A blocked plugin is never imported (``PAGEEXT_DISABLE_PLUGINS=a,b``, the
CLI's ``--disable-plugin``, a session's ``[plugins] disable``), and
``PAGEEXT_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry point at all.  A plugin
that fails to import is reported with its entry point, distribution, version
and the exception; the machine boots without it unless strict mode is on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points  # group= and EntryPoint.dist: stdlib since 3.10
from typing import Any, Iterable

from pageext_core.hookspecs import ENTRY_POINT_GROUP

ENV_DISABLE = "PAGEEXT_DISABLE_PLUGINS"
ENV_NO_AUTOLOAD = "PAGEEXT_DISABLE_PLUGIN_AUTOLOAD"
ENV_STRICT = "PAGEEXT_STRICT"


class PluginLoadError(RuntimeError):
    """A plugin could not be loaded or registered (raised in strict mode, logged otherwise)."""


@dataclass
class PluginInfo:
    """One discovered (or directly given) client, loaded or not."""

    name: str
    value: str = ""
    dist: str | None = None
    version: str | None = None
    target: Any = None
    error: str | None = None
    blocked: bool = False
    source: str = "entry point"
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = f"entry point {self.name} = {self.value}" if self.value else "registered directly"
        dist = f"distribution {self.dist} {self.version}" if self.dist else "no distribution"
        return f"plugin {self.name!r} ({dist}, {where})"


_loaded: dict[tuple[str, str], tuple[Any, str | None]] = {}


def env_blocked() -> set[str]:
    raw = os.environ.get(ENV_DISABLE, "")
    return {w.strip() for w in raw.split(",") if w.strip()}


def env_strict() -> bool:
    """``PAGEEXT_STRICT=1``: a plugin that cannot be loaded is an error (the test suite sets it)."""
    return os.environ.get(ENV_STRICT, "").strip().lower() not in ("", "0", "no", "off", "false")


def autoload_disabled() -> bool:
    return os.environ.get(ENV_NO_AUTOLOAD, "").strip().lower() not in ("", "0", "no", "off", "false")


def _entry_points() -> list[EntryPoint]:
    eps = entry_points(group=ENTRY_POINT_GROUP)
    # Several installs of one distribution can list the same entry point twice.
    unique = {(ep.name, ep.value): ep for ep in eps}
    return sorted(unique.values(), key=lambda ep: (ep.name, ep.value))


def discover(blocked: Iterable[str] = (), autoload: bool | None = None) -> list[PluginInfo]:
    """Every installed client, in name order; blocked ones listed but not imported."""
    if autoload is None:
        autoload = not autoload_disabled()
    if not autoload:
        return []
    block = set(blocked) | env_blocked()
    out: list[PluginInfo] = []
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            value=ep.value,
            dist=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
        if ep.name in block or (info.dist and info.dist in block):
            info.blocked = True
            out.append(info)
            continue
        key = (ep.name, ep.value)
        if key not in _loaded:
            try:
                _loaded[key] = (ep.load(), None)
            except Exception as exc:  # any import-time failure of a third party
                _loaded[key] = (None, f"{type(exc).__name__}: {exc}")
        info.target, info.error = _loaded[key]
        out.append(info)
    return out


def installed_names() -> set[str]:
    """Entry point and distribution names of every installed client (nothing is imported)."""
    names: set[str] = set()
    for ep in _entry_points():
        names.add(ep.name)
        dist = getattr(ep, "dist", None)
        if dist is not None:
            names.add(dist.metadata["Name"])
    return names


def direct(obj: Any, name: str | None = None) -> PluginInfo:
    """A client handed to ``boot(plugins=...)`` rather than installed."""
    if name is None:
        name = getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__
        name = str(name).rsplit(".", 1)[-1]
    return PluginInfo(name=name, target=obj, source="direct")
