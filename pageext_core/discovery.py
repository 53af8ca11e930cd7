"""Discovery: finding installed clients, the ``pageext.clients`` entry-point group.

A blocked plugin is never imported (``PAGEEXT_DISABLE_PLUGINS=a,b``, the
CLI's ``--disable-plugin``, a session's ``[plugins] disable``), and
``PAGEEXT_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry point at all.  A plugin
that fails to import is reported with its entry point, distribution, version
and the exception; the machine boots without it unless strict mode is on.
The built-in clients (``BUILTIN_CLIENTS``: the core reports) are part of
pageext-core and always registered, blocked or not.  The plugins shipped
with pageext are listed in ``SHIPPED``, so that a missing one can be named
with the command that installs it.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points  # group= and EntryPoint.dist: stdlib since 3.10
from pathlib import Path
from typing import Any

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
        if self.source == "built-in":
            return f"built-in client {self.name!r} ({self.value})"
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


# Clients that are part of pageext-core, registered like installed ones (datasette's
# DEFAULT_PLUGINS): always loaded, never blocked, not listed by ``pageext plugins``.
BUILTIN_CLIENTS: dict[str, str] = {"core": "pageext_core.core_reports:CoreReports"}


def builtins() -> list[PluginInfo]:
    """The built-in clients, loaded (they ship with the core: a failure to import is a bug, not a warning)."""
    return [PluginInfo(name=name, value=value, target=EntryPoint(name, value, ENTRY_POINT_GROUP).load(),
                       source="built-in") for name, value in BUILTIN_CLIENTS.items()]


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


# -- the plugins shipped with pageext -----------------------------------------------------------------


@dataclass(frozen=True)
class ShippedPlugin:
    """A plugin distributed with pageext: what it owns, so its absence can be named.

    ``reports`` are exact report names; ``folder`` is where its distribution
    lives in a pageext checkout.  ``tests/framework`` checks this table
    against what the installed plugins really register.
    """

    name: str
    dist: str
    folder: str
    boot_words: tuple[str, ...]
    reports: tuple[str, ...]


SHIPPED: tuple[ShippedPlugin, ...] = (
    ShippedPlugin("page_owner", "pageext-page-owner", "plugins/page_owner",
                  ("page_owner", "page_owner_stack_depth"),
                  ("page_owner", "page_owner_leaks", "page_owner_stacks/show_stacks")),
    ShippedPlugin("debug_pagealloc", "pageext-debug-pagealloc", "plugins/debug_pagealloc",
                  ("debug_pagealloc", "disable_debug_pagealloc", "page_poison"), ("debug_pagealloc",)),
    ShippedPlugin("guard", "pageext-guard", "plugins/guard", ("debug_guardpage_minorder",), ("guard",)),
)


def shipped(name: str) -> ShippedPlugin | None:
    """The shipped plugin with this entry point or distribution name."""
    return next((p for p in SHIPPED if name in (p.name, p.dist)), None)


def shipped_owner_of_word(word: str) -> ShippedPlugin | None:
    """The shipped plugin owning a boot parameter (``-`` and ``_`` are the same, as in the kernel)."""
    word = word.replace("-", "_")
    return next((p for p in SHIPPED if word in p.boot_words), None)


def shipped_owner_of_report(report: str) -> ShippedPlugin | None:
    return next((p for p in SHIPPED if report in p.reports), None)


def install_command(plugin: ShippedPlugin) -> str:
    """How to install a shipped plugin here: from this checkout when there is one, else by name.

    The interpreter is named when it is a virtual environment's (``pip`` alone
    would install somewhere else unless the environment is activated).
    """
    folder = Path(__file__).resolve().parents[1] / plugin.folder
    if (folder / "pyproject.toml").is_file():
        target = _shown_path(folder)
        if not target.startswith(("/", ".")):
            target = "./" + target
    else:
        target = plugin.dist
    pip = "pip" if sys.prefix == sys.base_prefix else f"{_shown_path(Path(sys.executable))} -m pip"
    return f"{pip} install {target}"


def _shown_path(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def not_loaded_reason(plugin: ShippedPlugin, blocked: Iterable[str] | None = None, autoload: bool = True) -> str:
    """Why a shipped plugin is not in this boot: ``which is not installed: <command>``, or disabled, or broken.

    ``blocked`` is what this run disabled; None when the caller cannot know.
    """
    names = installed_names()
    if plugin.name not in names and plugin.dist not in names:
        return f"which is not installed: {install_command(plugin)}"
    if blocked is None:
        return "which is installed but was not loaded (disabled, or it failed to load)"
    block = set(blocked) | env_blocked()
    if plugin.name in block or plugin.dist in block:
        return "which is installed but disabled (--disable-plugin, [plugins] disable or PAGEEXT_DISABLE_PLUGINS)"
    if not autoload or autoload_disabled():
        return "which is installed but not loaded (autoload is off)"
    return "which is installed but failed to load"


def explain_unknown_word(token: str, owned: Iterable[str], blocked: Iterable[str] | None = None,
                         autoload: bool = True) -> str:
    """What to tell the user about a boot word no loaded plugin owns (``token`` is ``name`` or ``name=value``).

    A shipped plugin's word names that plugin and how to get it; anything
    else gets a did-you-mean among the loaded plugins' and the shipped
    plugins' words.
    """
    name = token.partition("=")[0]
    plugin = shipped_owner_of_word(name)
    if plugin is not None:
        return (f"boot parameter {token}: {name} belongs to the {plugin.dist} plugin, "
                f"{not_loaded_reason(plugin, blocked, autoload)}")
    candidates = [*owned, *(w for p in SHIPPED for w in p.boot_words)]
    close = closest_word(name, candidates)
    hint = f"; did you mean {close!r}?" if close else " (it is passed to user space, as the kernel does)"
    return f"boot parameter {token}: no plugin owns {name!r}{hint}"


def closest_word(word: str, candidates: Sequence[str]) -> str | None:
    """A did-you-mean for a boot parameter name, or None."""
    import difflib  # here: only a bad word pays for it

    key = word.replace("-", "_")
    close = difflib.get_close_matches(key, sorted(set(candidates)), n=1, cutoff=0.75)
    return close[0] if close else None
