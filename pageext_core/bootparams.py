"""Boot parameters: the kernel command line and its TOML equivalent.

Each client owns its parameters (``BootParam``: name, type, default, doc,
validator).  The command line is parsed once into a ``BootConfig``; a value
a client rejects is logged with the client's message and ignored (the
parameter keeps its default), as the kernel does; a parameter nobody owns
gets the kernel's "Unknown kernel command line parameters" line.

TOML: ``[boot.<client>]`` tables set the same parameters by their short
``key`` (``[boot.page_owner] enabled = true`` is ``page_owner=on``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PARAM_TYPES = ("bool", "int", "str", "flag")


class BootParamError(ValueError):
    """A boot line or table that cannot be read at all (bad quoting, wrong TOML type).

    ``client`` and ``key`` say which ``[boot.<client>]`` entry it is about
    (None for the command line), so a session can point at the exact line.
    """

    def __init__(self, message: str, client: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.client = client
        self.key = key


def kstrtobool(value: str | None) -> bool:
    """The kernel's boolean rule, by first letter: y/t/e/1 and "on" → True; n/f/d/0 and "off" → False.

    So yes/no, true/false, enable/disable, on/off and 1/0 all work, in any case.
    """
    if value is None or not value:
        raise ValueError("missing value")
    c = value[0].lower()
    if c in "yte1":
        return True
    if c in "nfd0":
        return False
    if c == "o" and len(value) > 1:
        c2 = value[1].lower()
        if c2 == "n":
            return True
        if c2 == "f":
            return False
    raise ValueError(f"{value!r} is not a boolean")


@dataclass(frozen=True)
class BootParam:
    """A boot parameter a client owns.

    ``parse`` (optional) turns the raw text into a value or raises
    ``ValueError`` whose message is what the kernel would print; without it
    the ``type`` decides (``bool`` uses ``kstrtobool``; ``flag`` is a bare
    word such as ``disable_debug_pagealloc``).  ``key`` names it in the
    client's ``[boot.<client>]`` TOML table (default: the name).
    """

    name: str
    type: str = "bool"
    default: Any = False
    doc: str = ""
    key: str | None = None
    parse: Callable[[str | None], Any] | None = None
    owner: str = ""

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"boot parameter {self.name!r}: type must be one of {', '.join(PARAM_TYPES)}")
        if not self.name or any(ch.isspace() or ch == "=" for ch in self.name):
            raise ValueError(f"boot parameter name {self.name!r} must be one word without '='")

    @property
    def toml_key(self) -> str:
        return self.key or self.name

    def convert(self, raw: str | None) -> Any:
        """The value for raw text; ``ValueError`` carries the kernel-style message."""
        if self.parse is not None:
            return self.parse(raw)
        if self.type == "flag":
            return True if raw is None else kstrtobool(raw)
        if raw is None:
            raise ValueError(f"Malformed early option '{self.name}'")
        if self.type == "bool":
            try:
                return kstrtobool(raw)
            except ValueError:
                raise ValueError(f"Malformed early option '{self.name}'") from None
        if self.type == "int":
            try:
                return int(raw, 0)
            except ValueError:
                raise ValueError(f"Malformed early option '{self.name}'") from None
        return raw

    def to_raw(self, value: Any) -> str | None:
        """Render a TOML value as command-line text (so one validator serves both)."""
        if self.type in ("bool", "flag"):
            if not isinstance(value, bool):
                raise BootParamError(f"{self.name}: expected true or false, got {value!r}")
            if self.type == "flag":
                return None if value else "0"
            return "on" if value else "off"
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise BootParamError(f"{self.name}: expected an integer, got {value!r}")
            return str(value)
        if not isinstance(value, str):
            raise BootParamError(f"{self.name}: expected a string, got {value!r}")
        return value


def normalize(name: str) -> str:
    """The kernel treats ``-`` and ``_`` in parameter names as the same."""
    return name.replace("-", "_")


def split_cmdline(text: str) -> list[tuple[str, str | None]]:
    """Tokenise a command line like the kernel's ``next_arg``: ``name``, ``name=value``, quotes.

    Everything after a lone ``--`` is for init and is dropped.
    """
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        in_quote = False
        buf = []
        while i < n and (in_quote or not text[i].isspace()):
            if text[i] == '"':
                in_quote = not in_quote
            else:
                buf.append(text[i])
            i += 1
        if in_quote:
            raise BootParamError(f"boot line: unterminated quote in {text[start:]!r} (column {start + 1})")
        token = "".join(buf)
        if token == "--":
            break
        name, eq, value = token.partition("=")
        out.append((name, value if eq else None))
    return out


@dataclass
class BootConfig:
    """The parsed boot configuration: every known parameter has a value."""

    params: dict[str, BootParam]
    values: dict[str, Any]
    given: dict[str, str | None] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cmdline: str = ""

    def __getitem__(self, name: str) -> Any:
        key = normalize(name)
        if key in self.values:
            return self.values[key]
        if key in self.params:
            return self.params[key].default
        raise KeyError(f"no boot parameter {name!r} is registered by an installed client")

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def is_set(self, name: str) -> bool:
        """True when the line gave this parameter a (valid) value."""
        return normalize(name) in self.values

    def for_client(self, owner: str) -> dict[str, Any]:
        return {p.name: self[p.name] for p in self.params.values() if p.owner == owner}


def parse_boot(params: Iterable[BootParam], cmdline: str = "",
               tables: Mapping[str, Mapping[str, Any]] | None = None) -> BootConfig:
    """Build a ``BootConfig``: TOML ``tables`` first, then ``cmdline`` (later wins).

    ``tables`` maps a client name to ``{key: value}``; an unknown client or
    key there is an error (a file can be fixed), while an unknown word on the
    command line is only warned about, as the kernel does.
    """
    by_name = {normalize(p.name): p for p in params}
    tokens: list[tuple[str, str | None]] = []
    for client, table in (tables or {}).items():
        owned = {p.toml_key: p for p in by_name.values() if p.owner == client}
        if not owned:
            from pageext_core.discovery import not_loaded_reason, shipped

            known = sorted({p.owner for p in by_name.values()})
            plugin = shipped(client)
            if plugin is not None:  # a plugin of pageext's own that is not here: say how to get it
                raise BootParamError(f"[boot.{client}]: {client} is the {plugin.dist} plugin, "
                                     f"{not_loaded_reason(plugin)}", client)
            raise BootParamError(f"[boot.{client}]: no installed client {client!r} owns boot parameters"
                                 + (f" (clients with parameters: {', '.join(known)})" if known else ""), client)
        if not isinstance(table, Mapping):
            raise BootParamError(f"[boot.{client}] must be a table", client)
        for key, value in table.items():
            p = owned.get(key)
            if p is None:
                import difflib

                close = difflib.get_close_matches(key, list(owned), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"{client} has {', '.join(sorted(owned))}"
                raise BootParamError(f"[boot.{client}] {key}: unknown key; {hint}", client, key)
            try:
                tokens.append((p.name, p.to_raw(value)))
            except BootParamError as exc:
                raise BootParamError(f"[boot.{client}] {key}: {exc}", client, key) from None
    tokens.extend(split_cmdline(cmdline))
    cfg = BootConfig(params=by_name, values={})
    seen_text = []
    for name, raw in tokens:
        seen_text.append(name if raw is None else f"{name}={_quote(raw)}")
        key = normalize(name)
        p = by_name.get(key)
        if p is None:
            cfg.unknown.append(name if raw is None else f"{name}={raw}")
            continue
        try:
            cfg.values[key] = p.convert(raw)
            cfg.given[key] = raw
        except ValueError as exc:
            # Ignored, as the kernel ignores it: an earlier good value stays.
            cfg.warnings.append(str(exc))
    cfg.cmdline = " ".join(seen_text)
    if cfg.unknown:
        cfg.warnings.append(
            f'Unknown kernel command line parameters "{" ".join(cfg.unknown)}", will be passed to user space.')
    return cfg


def _quote(raw: str) -> str:
    return f'"{raw}"' if any(ch.isspace() for ch in raw) else raw


def describe(params: Sequence[BootParam]) -> list[dict[str, Any]]:
    """Plain data about parameters (for ``pageext plugins``)."""
    return [{"name": p.name, "type": p.type, "default": p.default, "doc": p.doc, "toml_key": p.toml_key}
            for p in params]
