"""Where each key of a TOML file is written, so errors can say file:line:col.

``tomllib`` gives positions only for syntax errors.  For everything else
(unknown key, wrong type, bad unit) we find the key in the source text: a
small scan that follows ``[table]`` / ``[[array]]`` headers, ``a.b = ``
dotted keys and one level of ``{ inline = tables }``.  It only has to be
right for files that already parsed, which keeps it simple.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^(\s*)((?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\'))*)\s*=')
_INLINE_KEY = re.compile(r'([{,]\s*)((?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\'))\s*=')


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+', text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


class SourceMap:
    """Line and column (1-based) of keys and table headers in a TOML text."""

    def __init__(self, text: str, filename: str = "<session>") -> None:
        self.filename = filename
        self._pos: dict[tuple[str, ...], tuple[int, int]] = {}
        self._overrides: dict[tuple[str, ...], str] = {}
        table: tuple[str, ...] = ()
        for lineno, line in enumerate(text.splitlines(), 1):
            h = _HEADER.match(line)
            if h and not line.lstrip().startswith("#"):
                table = _split_key(h.group(1))
                self._pos.setdefault(table, (lineno, line.index("[") + 1))
                continue
            k = _KEY.match(line)
            if not k:
                continue
            parts = _split_key(k.group(2))
            path = table + parts
            for i in range(1, len(parts) + 1):  # a.b.c = 1 also places a and a.b (first use wins)
                self._pos.setdefault(table + parts[:i], (lineno, len(k.group(1)) + 1))
            rest = line[k.end():]
            if "{" in rest:
                base = k.end()
                for m in _INLINE_KEY.finditer(rest):
                    self._pos.setdefault(path + _split_key(m.group(2)), (lineno, base + m.start(2) + 1))

    def override(self, path: Sequence[str], label: str) -> None:
        """A key set on the command line (``--set``, ``--memory``): errors about it name the flag."""
        self._overrides[tuple(str(x) for x in path)] = label

    def where(self, path: Sequence[str]) -> str:
        """``file:line:col`` of the longest known prefix of ``path`` (``file`` alone if none).

        A key given on the command line is reported as that option instead.
        """
        p = tuple(str(x) for x in path)
        q = p
        while q:
            if q in self._overrides:
                return self._overrides[q]
            q = q[:-1]
        while p:
            if p in self._pos:
                line, col = self._pos[p]
                return f"{self.filename}:{line}:{col}"
            p = p[:-1]
        return self.filename
