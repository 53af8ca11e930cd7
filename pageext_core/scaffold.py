"""``pageext new-plugin NAME``: a ready-to-install client distribution.

The skeleton is a complete, working client (it counts allocations per page
and reports the busiest pages), with its pyproject entry point, a test that
uses the pytest kit and the conformance check, and a README; a new author
edits it rather than starting from a blank page.  Files are written to a
temporary folder and moved into place, so a failure leaves nothing behind.
"""
from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from pathlib import Path

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class ScaffoldError(ValueError):
    """A plugin name or target folder that cannot be used."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or keyword.iskeyword(name) or name.endswith("_"):
        raise ScaffoldError(
            f"plugin name {name!r}: use lower case letters, digits and underscores, starting with a letter "
            "(it becomes the entry point name, the boot parameter and part of the package name), e.g. 'page_idle'")
    return name


def files_for(name: str) -> dict[str, str]:
    """Relative path → content of every file of the new distribution."""
    check_name(name)
    pkg = f"pageext_{name}"
    dist = f"pageext-{name.replace('_', '-')}"
    cls = "".join(part.capitalize() for part in name.split("_"))
    return {
        "pyproject.toml": PYPROJECT.format(name=name, pkg=pkg, dist=dist, cls=cls),
        f"{pkg}/__init__.py": f'"""The {name} page_ext client."""\n\n__version__ = "0.1.0"\n',
        f"{pkg}/py.typed": "",
        f"{pkg}/plugin.py": PLUGIN.format(name=name, cls=cls),
        "tests/test_plugin.py": TEST.format(name=name, pkg=pkg, cls=cls),
        "README.md": README.format(name=name, pkg=pkg, dist=dist, cls=cls),
    }


def create(name: str, parent: str | os.PathLike[str] = ".") -> Path:
    """Write the distribution to ``parent/name``; refuses to overwrite anything."""
    files = files_for(name)
    parent = Path(parent)
    target = parent / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name or --dir")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


PYPROJECT = '''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "pageext client: {name}"
requires-python = ">=3.10"
dependencies = ["pageext-core>=0.1"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# This is what makes pageext find the client: the entry point group
# "pageext.clients", the name users see, and the class to instantiate per boot.
[project.entry-points."pageext.clients"]
{name} = "{pkg}.plugin:{cls}"

[tool.setuptools.packages.find]
include = ["{pkg}*"]

[tool.setuptools.package-data]
{pkg} = ["py.typed"]
'''

PLUGIN = '''"""The {name} page_ext client.

A working skeleton: it counts how many times each page was allocated and
reports the busiest pages.  Every hook is documented in
``pageext_core/hookspecs.py``; implement only the ones you need.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pageext_core import BootConfig, BootParam, PageExtView, hookimpl


class {cls}:
    """One instance per boot: keep your state on ``self``."""

    name = "{name}"  # the client's name when registered directly (installed: the entry point name)

    def __init__(self) -> None:
        self.view: PageExtView | None = None
        self.allocations = 0

    # -- boot: parameters, need, layout (not on the hot path) ---------------------

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        # `{name}=on` on the boot line, or `[boot.{name}] enabled = true` in a session.
        return [BootParam("{name}", "bool", False, "count allocations per page", key="enabled")]

    @hookimpl
    def pageext_need(self, boot: BootConfig) -> bool:
        # False: no page_ext memory and no calls at all.
        return bool(boot["{name}"])

    @hookimpl
    def pageext_fields(self) -> dict[str, str]:
        # Per-page bytes, laid out at their natural alignment.
        return {{"count": "u4"}}

    @hookimpl
    def pageext_flags(self) -> list[str]:
        # Bits in the shared 8-byte flags word.
        return ["SEEN"]

    @hookimpl
    def pageext_init(self, view: PageExtView) -> None:
        self.view = view

    # -- events (hot path: called directly on every allocation and free) -------------

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int) -> None:
        assert self.view is not None
        block = self.view.block(pfn, order)  # 2^order records, a numpy slice
        block["count"] += 1
        self.view.set_flags(pfn, self.view.flag("SEEN"), 1 << order)
        self.allocations += 1

    # -- reports and results ------------------------------------------------------------

    @hookimpl
    def pageext_report(self) -> dict[str, Any]:
        return {{"{name}": self.report}}

    def report(self, top: int = 10) -> str:
        """The pages allocated most often (a vectorised scan over all tables)."""
        assert self.view is not None
        rows = []
        for base, records, _flags in self.view.scan():
            counts = records["count"].astype(np.int64)  # signed: -counts must not wrap
            for i in np.argsort(-counts, kind="stable")[:top]:
                if counts[i]:
                    rows.append((int(counts[i]), base + int(i)))
        rows.sort(key=lambda r: (-r[0], r[1]))
        lines = [f"{name}: {{self.allocations}} allocations seen"]
        lines += [f"pfn {{pfn:#x}} allocated {{n}} times" for n, pfn in rows[:top]]
        return "\\n".join(lines) + "\\n"

    @hookimpl
    def pageext_summary(self) -> dict[str, Any]:
        return {{"allocations": self.allocations}}
'''

TEST = '''"""Tests for the {name} client, using pageext's pytest kit (the `pageext` fixture)."""
from {pkg}.plugin import {cls}


def test_off_by_default(pageext):
    pe = pageext.boot("", plugins=[{cls}])
    assert pe.client("{name}").enabled is False
    assert pe.nbytes == 0


def test_counts_allocations(pageext):
    pe = pageext.boot("{name}=on", plugins=[{cls}])
    pfns = pageext.run_ops(pe, [("alloc", "GFP_KERNEL", 2), ("free", 0), ("alloc", "GFP_KERNEL", 2)])
    view = pe.client("{name}").view
    # The same block is handed out again: each of its 4 pages was allocated twice.
    assert pfns[0] == pfns[1]
    assert list(view.block(pfns[0], 2)["count"]) == [2, 2, 2, 2]
    assert "allocated 2 times" in pageext.report(pe, "{name}")
    pageext.assert_invariants(pe)


def test_busy_machine(pageext):
    pe = pageext.boot("{name}=on", plugins=[{cls}])
    result = pageext.run_workload(pe, operations=3000, seed=1)
    assert pe.plugin("{name}").allocations == result.allocations
    pageext.assert_invariants(pe)


def test_conformance(pageext):
    # Checks the framework's promises: no memory when off, writes only its own
    # fields, reports work, bad boot values are rejected.
    pageext.conformance({cls}, "{name}=on")
'''

README = '''# {dist}

A [pageext](https://example.invalid/pageext) page_ext client: `{name}`.

```console
pip install -e .          # registers the "{name}" entry point in pageext.clients
pageext plugins --boot "{name}=on"
pageext run --boot "{name}=on" --report {name}
pytest                    # uses pageext's pytest kit (the `pageext` fixture)
```

- Boot parameter: `{name}=on` (or `[boot.{name}] enabled = true` in a session file).
- page_ext: a 4-byte `count` per page and a `SEEN` flag bit, only when enabled.
- Report `{name}`: the pages allocated most often.

Edit `{pkg}/plugin.py`; the hooks are documented in `pageext_core/hookspecs.py`
and in pageext's `docs/writing-plugins.md`.
'''
