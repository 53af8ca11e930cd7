"""The shipped plugins, the alloc_tag example and the plugin guide use only the core's public API.

A plugin that reaches into the machine's private state (``machine._st``,
``buddy.K_*``, the pageblock arrays, the allocator's call-out attributes)
breaks whenever the machine changes, and teaches every third-party author
to do the same.  Checked here, statically:

- no import of a private core module or name (``pageext_core.mm.buddy``,
  ``from pageext_core... import _x``);
- no private attribute (``x._name``) unless the plugin's own package
  defines that name: a plugin's privates are its own business, the core's
  are not;
- none of the machine internals that used to be read directly (the raw
  pageblock and page-state arrays, ``K_*`` kinds, memory notifiers, the
  machine-wide stack depth).

The tests and the rest of the core are held to a narrower rule: they do not
read the allocator's private slots (its free-list stacks, per-CPU lists,
cached views...), but its public read-only copies (``free_list``,
``nr_free``, ``pcp_snapshot``); only its whitebox checker
(``mm/invariants.py``) may.

The forbidden words are spelled with character classes (``[_]``) so that
this file does not match itself if it is ever checked the same way.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in [*ROOT.glob("plugins/*/pageext_*"), *ROOT.glob("examples/plugins/*/pageext_*")]
                  if (p / "__init__.py").is_file())
GUIDE = ROOT / "docs" / "writing-plugins.md"

PRIVATE_MODULES = ("pageext_core.mm.buddy",)
# Private names of the standard library a plugin may use.
STDLIB_PRIVATE = {("sys", "_getframe"), ("os", "_exit")}
# Public names that start with an underscore: namedtuple's API.
PUBLIC_UNDERSCORED = {"_fields", "_replace", "_asdict", "_make"}
INTERNALS = re.compile("|".join([
    r"\bpb[_](?:zone|mt)\b",                 # pageblock arrays: zones_of, pageblock_migratetypes
    r"\bK[_][A-Z_]+\b",                      # block kinds: PageKind
    r"\bKIND[_]NAMES\b",                     # PageKind.label
    r"\.(?:state|pflags)\s*\[",              # page-state arrays: page_kind, free_pages_mask
    r"\bmemory[_]notifiers\b",               # storage keeps per_section lists current
    r"\bstack[_]max_frames\s*=",             # set_stack_depth
    r"\b[_]cb[_]\w+|\bcallout[_]owner\b",   # the machine's call-out table: machine.callouts
    r"\.(?:budd[y]|ctx|oopse[s])\b",          # the machine's parts: their public names are forwarded
]))


def sources(pkg: Path) -> list[Path]:
    return sorted(p for p in pkg.rglob("*.py") if "build" not in p.relative_to(pkg).parts)


def defined_names(trees: list[ast.AST]) -> set[str]:
    """Every name a package defines: functions, classes, assignments, attributes set on anything."""
    out: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                out.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                out.add(node.target.id)
            elif isinstance(node, ast.alias) and node.asname:
                out.add(node.asname)
    return out


def problems(where: str, tree: ast.AST, text: str, own: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pageext_core"):
            mod = node.module or ""
            for alias in node.names:
                full = f"{mod}.{alias.name}"
                private = alias.name.startswith("_") and not alias.name.startswith("__")  # __GFP_*: the kernel's
                if mod in PRIVATE_MODULES or full in PRIVATE_MODULES or private:
                    found.append(f"{where}:{node.lineno}: imports {full}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in PRIVATE_MODULES:
                    found.append(f"{where}:{node.lineno}: imports {alias.name}")
        elif isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name in own or name in PUBLIC_UNDERSCORED:
                continue
            base = node.value
            if isinstance(base, ast.Name) and (base.id, name) in STDLIB_PRIVATE:
                continue
            found.append(f"{where}:{node.lineno}: private attribute .{name} of something it does not define")
    for lineno, line in enumerate(text.splitlines(), 1):
        m = INTERNALS.search(line)
        if m:
            found.append(f"{where}:{lineno}: machine internals {m.group(0)!r}")
    return found


@pytest.mark.parametrize("pkg", PACKAGES, ids=[p.name for p in PACKAGES])
def test_plugin_uses_only_public_core_api(pkg: Path) -> None:
    files = sources(pkg)
    assert files, f"no sources under {pkg}"
    parsed = [(f, f.read_text()) for f in files]
    trees = [ast.parse(text, str(f)) for f, text in parsed]
    own = defined_names(trees)
    found = []
    for (f, text), tree in zip(parsed, trees):
        found += problems(str(f.relative_to(ROOT)), tree, text, own)
    assert not found, "private core API used:\n" + "\n".join(found)


def test_all_three_plugins_and_the_example_are_checked() -> None:
    assert {p.name for p in PACKAGES} >= {"pageext_page_owner", "pageext_debug_pagealloc", "pageext_guard",
                                          "pageext_alloc_tag"}


def test_the_plugin_guide_shows_only_public_api() -> None:
    text = GUIDE.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    code = "\n".join(blocks)
    tree = ast.parse(code)
    found = problems("docs/writing-plugins.md", tree, code, defined_names([tree]))
    assert not found, "the guide shows private API:\n" + "\n".join(found)


def test_the_checker_catches_what_it_is_for() -> None:
    """Each rule fires on a line that breaks it (so a quiet result above means something)."""
    bad = "\n".join([
        "from pageext_core.mm import buddy as b",
        "from pageext_core.mm.buddy import K_FREE",
        "import pageext_core.mm.buddy",
        "x = machine._st[pfn]",
        "z = machine.pb" "_zone[pfn >> 9]",
        "machine.memory" "_notifiers.append(f)",
        "machine.stack" "_max_frames = 4",
        "k = machine.state[pfn] >> 4",
        "n = machine.budd" "y.nr_free(1, 0, 0)",
    ])
    found = problems("bad.py", ast.parse(bad), bad, set())
    for lineno in range(1, 10):
        assert any(f"bad.py:{lineno}:" in f for f in found), (lineno, found)
    ok = "y = self._own\nz = sys._getframe(1)\nself._view.locate(pfn)"
    assert problems("ok.py", ast.parse(ok), ok, {"_own", "_view"}) == []


ALLOCATOR = ROOT / "pageext_core" / "mm" / "buddy.py"
# The invariant checker verifies the free lists' own layout (stacks with back-pointers): it reads them on purpose.
# Two whitebox tests run the allocator's fast per-run paths against straightforward block-by-block
# reference code made of its internal steps, and compare its whole internal state: they read it on purpose.
ALLOCATOR_FRIENDS = {ROOT / "pageext_core" / "mm" / "invariants.py", ROOT / "tests" / "mm" / "test_bulk_fast_paths.py",
                     ROOT / "tests" / "plugins" / "guard" / "test_guard_rule.py"}


def allocator_privates() -> set[str]:
    """Private methods and attributes ``BuddyAllocator`` defines (``self._x = ...``, ``def _x``)."""
    tree = ast.parse(ALLOCATOR.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BuddyAllocator")
    out = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef):
            name = node.name
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id == "self"):
            name = node.attr
        else:
            continue
        if name.startswith("_") and not name.startswith("__"):
            out.add(name)
    return out


def allocator_private_reads(where: str, text: str, privates: set[str]) -> list[str]:
    """``where:line: .name`` for each read of an allocator private that the file does not define itself."""
    tree = ast.parse(text, where)
    own = defined_names([tree])
    return [f"{where}:{node.lineno}: .{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in privates and node.attr not in own]


def test_tests_and_the_core_read_the_allocator_through_its_public_api() -> None:
    privates = allocator_privates()
    assert {"_fl_n", "_pcp", "_resolve_gfp"} <= privates  # the rule knows what it guards
    files = sorted(p for p in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("pageext_core/**/*.py")]
                   if p != ALLOCATOR and p not in ALLOCATOR_FRIENDS)
    assert any(p.name == "machine.py" for p in files) and any(p.parts[-2] == "mm" and "tests" in p.parts
                                                              for p in files)
    found = [hit for p in files for hit in allocator_private_reads(str(p.relative_to(ROOT)), p.read_text(), privates)]
    assert not found, "allocator privates read outside the allocator:\n" + "\n".join(found)


def test_the_allocator_rule_catches_what_it_is_for() -> None:
    text = "n = machine.buddy._fl_n[0]\nq = m._pcp[0]\nself._st = 1\nok = self._st\n"
    found = allocator_private_reads("bad.py", text, allocator_privates())
    assert found == ["bad.py:1: ._fl_n", "bad.py:2: ._pcp"]  # a file's own _st (replay's view) is its own


def test_the_literal_all_lists_exactly_the_lazy_exports() -> None:
    # __all__ is spelled out for type checkers (they do not evaluate sorted(_EXPORTS)); it must not drift.
    import pageext_core

    assert sorted(pageext_core.__all__) == sorted(pageext_core._EXPORTS)
