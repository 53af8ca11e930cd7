"""The shipped plugins, the alloc_tag example and the plugin guide use only the core's public API.

The rule (docs/writing-plugins.md, "What is public"): a name is public if it
is in the ``__all__`` of a public module, and the public modules are the
short list ``PUBLIC_MODULES`` below (the guide lists the same ones, tested).
A plugin that reaches past it (``machine._st``, ``pageext_core.mm.buddy``,
``machine.buddy``) breaks whenever the core changes, and teaches every
third-party author to do the same.

Checked here on the syntax tree (so comments and strings never count) of
every ``.py`` file of the three plugin packages and of ``examples/``, and of
the guide's Python blocks:

- every ``import pageext_core.X`` / ``from pageext_core.X import a`` names a
  public module and, for ``a``, a name in its ``__all__`` or a public
  submodule; attribute chains through an imported core module
  (``mm.machine.Machine``) are held to the same rule; so are the string
  literals of ``importlib.import_module`` / ``__import__``;
- a ``_private`` attribute (``x._name``, ``getattr(x, "_name")``) is read
  only on ``self`` / ``cls`` or on one of the plugin's own modules; a
  ``_private`` name is imported only from the plugin's own package;
- none of the machine's parts (``.buddy``, ``.ctx``, ``.oopses``,
  ``.hotplug``: their public names are forwarded by ``Machine``), the
  page_ext framework's pluggy manager (``.pm``) or the internals that used
  to be read directly (pageblock and page-state arrays, ``K_*`` kinds,
  memory notifiers, the machine-wide stack depth, the call-out table's
  owner) is reached, directly or through ``getattr``.

The guide's prose is checked too: every ``pageext_core.<dotted>`` path it
mentions must be public.

The tests and the rest of the core are held to a narrower rule: they do not
read the allocator's private slots (its free-list stacks, per-CPU lists,
cached views...), but its public read-only copies (``free_list``,
``nr_free``, ``pcp_snapshot``); only its whitebox checker
(``mm/invariants.py``) and the whitebox tests named in ``ALLOCATOR_FRIENDS``
may.
"""
from __future__ import annotations

import ast
import functools
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "writing-plugins.md"
MACHINE_DOC = ROOT / "docs" / "machine.md"

# The public modules (docs/writing-plugins.md, "What is public"): their __all__ is the core's API.
PUBLIC_MODULES = (
    "pageext_core",
    "pageext_core.mm",
    "pageext_core.mm.constants",
    "pageext_core.mm.errors",
    "pageext_core.mm.gfp",
    "pageext_core.mm.pageflags",
    "pageext_core.reports",
    "pageext_core.session",
    "pageext_core.testing",
)
# Private names of the standard library a plugin may use.
STDLIB_PRIVATE = {("sys", "_getframe"), ("os", "_exit")}
# Public names that start with an underscore: namedtuple's API.
PUBLIC_UNDERSCORED = {"_fields", "_replace", "_asdict", "_make"}
# The machine's parts (docs/architecture.md, "The machine and its parts"), except `contents`, which is public,
# the framework's pluggy manager, and the machine's internals that plugins used to read.
FORBIDDEN_ATTRIBUTES = {
    "buddy", "ctx", "oopses", "hotplug",            # Machine forwards their public names
    "pm",                                           # PageExt.ask / page_ext.dump_page ask the clients
    "pb" "_zone", "pb" "_mt",                       # pageblock arrays: zones_of, pageblock_migratetypes
    "KIND" "_NAMES",                                # PageKind.label
    "memory" "_notifiers",                          # storage keeps per_section lists current
    "stack" "_max_frames",                          # set_stack_depth
    "callout" "_owner",                             # machine.callouts
}
BLOCK_KIND = re.compile("K" "_[A-Z_]+")             # buddy's block kinds: PageKind
SUBSCRIPTED_ARRAYS = {"state", "pflags"}            # page-state arrays: page_kind, free_pages_mask
ATTRIBUTE_CALLS = {"getattr", "hasattr", "setattr", "delattr"}
IMPORT_CALLS = {"import_module", "__import__"}


@functools.cache
def public_api() -> dict[str, frozenset[str]]:
    """Each public module's ``__all__``."""
    return {name: frozenset(importlib.import_module(name).__all__) for name in PUBLIC_MODULES}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")  # dunders and the kernel's __GFP_* are not


def public_path(dotted: str, api: dict[str, frozenset[str]]) -> str | None:
    """None if ``pageext_core.a.b.c`` is public (a public module, or reaches a name in one's __all__); else why not."""
    parts = dotted.split(".")
    module = parts[0]
    if module not in api:
        return f"{dotted} is not public"
    for part in parts[1:]:
        if part in api[module] or (part.startswith("__") and part.endswith("__")):
            return None
        if f"{module}.{part}" not in api:
            return f"{module}.{part} is not public ({part} is not in {module}.__all__)"
        module = f"{module}.{part}"
    return None


def is_core(module: str) -> bool:
    return module == "pageext_core" or module.startswith("pageext_core.")


@dataclass
class Checker:
    """Finds uses of non-public core API in one unit of code (a plugin package, an example)."""

    api: dict[str, frozenset[str]]
    own: frozenset[str] = frozenset()   # top-level module names of the unit itself
    defines: frozenset[str] = frozenset()  # every name the unit defines (defined_names)
    core_privates: frozenset[str] = frozenset()  # every _name the core defines (core_private_names)
    found: list[str] = field(default_factory=list)

    def check(self, where: str, tree: ast.AST) -> list[str]:
        self.where = where
        self.core_names: dict[str, str] = {}   # local name -> the core module it is bound to
        self.own_names: set[str] = set()       # local names bound to the unit's own modules or names
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports(node)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                self.attribute(node, node.value, node.attr)
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
                if node.value.attr in SUBSCRIPTED_ARRAYS and not self.on_self(node.value.value):
                    self.flag(node, f"machine internals .{node.value.attr}[...]")
            elif isinstance(node, ast.Call):
                self.call(node)
        return self.found

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.where}:{getattr(node, 'lineno', 0)}: {what}")

    def is_own(self, module: str) -> bool:
        return module.split(".")[0] in self.own

    def imports(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_core(alias.name):
                    if alias.name not in self.api:
                        self.flag(node, f"imports {alias.name}, not a public module")
                    if alias.asname:
                        self.core_names[alias.asname] = alias.name
                    else:
                        self.core_names[alias.name.split(".")[0]] = "pageext_core"
                elif self.is_own(alias.name):
                    self.own_names.add(alias.asname or alias.name.split(".")[0])
            return
        module = node.module or ""
        own = node.level > 0 or self.is_own(module)
        for alias in node.names:
            local = alias.asname or alias.name
            if own:
                self.own_names.add(local)
            elif is_core(module):
                if module not in self.api:
                    self.flag(node, f"imports {alias.name} from {module}, not a public module")
                elif alias.name == "*" or alias.name in self.api[module]:
                    pass
                elif f"{module}.{alias.name}" in self.api:
                    self.core_names[local] = f"{module}.{alias.name}"
                else:
                    self.flag(node, f"imports {module}.{alias.name}: not in {module}.__all__")
            elif is_private(alias.name):
                self.flag(node, f"imports the private {module}.{alias.name}")

    def module_of(self, expr: ast.expr) -> str | None:
        """The core module ``expr`` names (``pageext_core.mm``, an alias of one), if it names one."""
        if isinstance(expr, ast.Name):
            return self.core_names.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.module_of(expr.value)
            if base is not None and f"{base}.{expr.attr}" in self.api:
                return f"{base}.{expr.attr}"
        return None

    @staticmethod
    def on_self(expr: ast.expr) -> bool:
        return isinstance(expr, ast.Name) and expr.id in ("self", "cls")

    def attribute(self, node: ast.AST, base: ast.expr, name: str) -> None:
        module = self.module_of(base)
        if module is not None:
            why = public_path(f"{module}.{name}", self.api)
            if why:
                self.flag(node, why)
            return
        if isinstance(base, ast.Name) and base.id in self.core_names:
            return  # an alias of a private module: its import is flagged already
        if self.on_self(base) or (isinstance(base, ast.Name) and base.id in self.own_names):
            return
        if is_private(name) and name not in PUBLIC_UNDERSCORED:
            if isinstance(base, ast.Name) and (base.id, name) in STDLIB_PRIVATE:
                return
            if name in self.defines and name not in self.core_privates:
                return  # one of its own objects (a merge reading the other operand): no core object has it
            self.flag(node, f"private attribute .{name} of something not its own")
        elif name in FORBIDDEN_ATTRIBUTES or BLOCK_KIND.fullmatch(name):
            self.flag(node, f"machine internals .{name}")

    def call(self, node: ast.Call) -> None:
        func = node.func
        fname = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        arg = (node.args[1] if fname in ATTRIBUTE_CALLS and len(node.args) >= 2 else
               node.args[0] if fname in IMPORT_CALLS and node.args else None)
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            return
        literal = arg.value
        if fname in ATTRIBUTE_CALLS:
            self.attribute(node, node.args[0], literal)
        elif is_core(literal) and literal not in self.api:
            self.flag(node, f"imports {literal}, not a public module")


def defined_names(trees: list[ast.AST]) -> set[str]:
    """Every name a file defines: functions, classes, assignments, attributes set on anything."""
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


@functools.cache
def core_private_names() -> frozenset[str]:
    """Every ``_name`` the core defines: a plugin reading one on an object not its own reads the core's."""
    trees = [ast.parse(p.read_text()) for p in (ROOT / "pageext_core").rglob("*.py")]
    return frozenset(n for n in defined_names(trees) if is_private(n))


def sources(unit: Path) -> list[Path]:
    return sorted(p for p in unit.rglob("*.py")
                  if not {"build", ".venv"} & set(p.relative_to(unit).parts) and ".egg-info" not in str(p))


def own_modules(unit: Path) -> frozenset[str]:
    """The top-level modules a unit's files may import as their own: its packages and its modules' names."""
    packages = {p.name for p in unit.iterdir() if (p / "__init__.py").is_file()}
    return frozenset(packages | {p.stem for p in sources(unit)})


# A unit: the files that are one author's code (a plugin distribution, the example plugin with its tests,
# the example sessions); each unit's own modules are its business.
UNITS = sorted({*ROOT.glob("plugins/*"), *ROOT.glob("examples/plugins/*"), ROOT / "examples" / "sessions"})
UNITS = [u for u in UNITS if u.is_dir() and sources(u)]


@pytest.mark.parametrize("unit", UNITS, ids=[str(u.relative_to(ROOT)) for u in UNITS])
def test_plugins_and_examples_use_only_public_core_api(unit: Path) -> None:
    parsed = [(f, ast.parse(f.read_text(), str(f))) for f in sources(unit)]
    checker = Checker(public_api(), own_modules(unit), frozenset(defined_names([t for _, t in parsed])),
                      core_private_names())
    for f, tree in parsed:
        checker.check(str(f.relative_to(ROOT)), tree)
    assert not checker.found, "non-public core API used:\n" + "\n".join(checker.found)


def test_every_plugin_the_example_and_its_tests_are_checked() -> None:
    files = {str(f.relative_to(ROOT)) for u in UNITS for f in sources(u)}
    for expected in ["plugins/page_owner/pageext_page_owner/record.py",
                     "plugins/debug_pagealloc/pageext_debug_pagealloc/plugin.py",
                     "plugins/guard/pageext_guard/plugin.py",
                     "examples/plugins/alloc_tag/pageext_alloc_tag/plugin.py",
                     "examples/plugins/alloc_tag/tests/tagsupport.py",
                     "examples/sessions/my_workload.py"]:
        assert expected in files
    assert not any("egg-info" in f or "/build/" in f for f in files)


def guide_parts() -> tuple[str, str]:
    """The guide's Python code and its prose (everything else), each line where it is in the guide."""
    code, prose, inside = [], [], False
    for line in GUIDE.read_text().splitlines():
        fence = line.startswith("```")
        if fence:
            inside = line == "```python" if not inside else False
        (code if inside and not fence else prose).append(line if not fence else "")
        (prose if inside and not fence else code).append("")
    return "\n".join(code), "\n".join(prose)


def test_the_plugin_guide_shows_only_public_api() -> None:
    code, prose = guide_parts()
    assert code.count("\n") > 100, "the guide lost its examples"
    api = public_api()
    found = Checker(api).check("docs/writing-plugins.md", ast.parse(code))
    mentions = re.findall(r"\bpageext_core(?:\.[A-Za-z_]\w*)+", prose)
    assert "pageext_core.hookimpl" in mentions  # the prose is read
    found += [f"docs/writing-plugins.md (prose): {why}" for m in mentions if (why := public_path(m, api))]
    assert not found, "the guide shows non-public API:\n" + "\n".join(found)


def guide_public_modules() -> list[str]:
    """The modules the guide's "What is public" section lists (its bullets that start with a module)."""
    text = GUIDE.read_text()
    section = re.search(r"^#+ What is public\n(.*?)(?=^#)", text, re.S | re.M)
    assert section, "the guide has no 'What is public' section"
    return re.findall(r"^- `(pageext_core[\w.]*)`", section.group(1), re.M)


def test_the_guide_docs_and_this_test_state_one_rule() -> None:
    assert guide_public_modules() == list(PUBLIC_MODULES)
    machine = MACHINE_DOC.read_text()
    assert "writing-plugins.md#what-is-public" in machine
    import pageext_core.mm

    assert "writing-plugins.md" in (pageext_core.mm.__doc__ or "") and "What is public" in pageext_core.mm.__doc__


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_exists(module: str) -> None:
    mod = importlib.import_module(module)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing and len(set(mod.__all__)) == len(mod.__all__)


def test_the_hook_contracts_types_are_public() -> None:
    # What the hooks are given or must return, by name (hookspecs.py): a plugin can type its hooks with them.
    api = public_api()
    assert {"BootConfig", "BootParam", "ClientTable", "Finding", "FindingKinds", "HoldRule", "HoldStats",
            "KernelLog", "Machine", "PageExt", "PageExtView"} <= api["pageext_core"]
    assert {"HoldRule", "HoldStats", "KernelLog", "Machine", "PageKind", "PageBlock"} <= api["pageext_core.mm"]


def check_snippet(code: str) -> list[str]:
    """What the checker finds in ``code`` as a file of a plugin package ``pageext_mine`` that defines
    ``_machine`` (as the core does) and ``_merge_into`` (which the core does not)."""
    tree = ast.parse(code)
    defines = frozenset(defined_names([tree]) | {"_machine", "_merge_into"})
    return Checker(public_api(), frozenset({"pageext_mine"}), defines, core_private_names()).check("snippet.py", tree)


BAD = [
    # The review's findings: each of these passed the old, text-based check.
    "from pageext_core.mm.callouts import HoldRule",
    "from pageext_core.storage import Table",
    "from pageext_core.discovery import shipped",
    "x = getattr(machine, '_st')",
    "import importlib\nb = importlib.import_module('pageext_core.mm.buddy')",
    "pe.pm.hook.pageext_summary()",
    "import pageext_core.mm as mm\nM = mm.machine.Machine",
    "x = view._machine",                        # a name the plugin itself also defines: still the core's
    "machine.hotplug.blocks",
    # What the old check caught, still caught.
    "from pageext_core.mm import buddy as b",
    "from pageext_core.mm.buddy import K_FREE",
    "import pageext_core.mm.buddy",
    "x = machine._st[pfn]",
    "z = machine.pb" "_zone[pfn >> 9]",
    "machine.memory" "_notifiers.append(f)",
    "machine.stack" "_max_frames = 4",
    "k = machine.state[pfn] >> 4",
    "n = machine.budd" "y.nr_free(1, 0, 0)",
    "t = machine.ctx.task",
    "machine.oopses.taint",
    # And the other ways round.
    "import pageext_core\nm = pageext_core.mm.machine.Machine",
    "from pageext_core.mm import printk\n",
    "from pageext_core.mm.printk import KernelLog",
    "from pageext_core.mm import _LAZY",
    "from pageext_other import _helper",
    "v = getattr(machine, 'buddy')",
    "__import__('pageext_core.storage')",
    "from importlib import import_module\nimport_module('pageext_core.page_ext')",
    "kind = buddy.K" "_FREE",
]


@pytest.mark.parametrize("code", BAD)
def test_the_checker_flags(code: str) -> None:
    assert check_snippet(code), f"not flagged: {code!r}"


def test_the_checker_passes_public_use() -> None:
    good = "\n".join([
        "import sys",
        "import pageext_core",
        "import pageext_core as pc",
        "import pageext_core.mm",
        "import importlib",
        "from pageext_core import ClientTable, HoldRule, KernelLog, PageExt, boot, hookimpl",
        "from pageext_core.mm import Machine, PageKind, gfp",
        "from pageext_core.mm.gfp import GFP_KERNEL, __GFP_ZERO",
        "from pageext_core.mm.pageflags import PG_lru",
        "from pageext_core.reports import atomic_writer",
        "from pageext_mine.record import _helper",
        "from . import _also_mine",
        "import pageext_mine.dump as dump",
        "m = pc.Machine",
        "k = pageext_core.mm.PageKind.FREE",
        "g = pageext_core.mm.gfp.GFP_KERNEL | gfp.GFP_ATOMIC",
        "v = pageext_core.__version__",
        "y = self._own + cls._also",
        "z = sys._getframe(1)",
        "w = dump._render(1)",
        "p = point._replace(x=1)",
        "other._merge_into(out)",
        "q = getattr(self, '_view')",
        "mod = importlib.import_module('pageext_core.mm.gfp')",
        "machine.contents.unmap(pfn)",
        "machine.page_kind(pfn).kind",
        "# a comment may say machine.budd" "y or machine._st or pageext_core.mm.buddy",
        "s = 'machine.budd" "y._fl_n'",
        "self.state[0] = 1",
    ])
    assert check_snippet(good) == []


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


def test_prose_paths_are_held_to_the_same_rule() -> None:
    api = public_api()
    for bad in ["pageext_core.mm.callouts.HoldRule", "pageext_core.storage.ClientTable", "pageext_core.mm.buddy",
                "pageext_core.session.workload.match_planted", "pageext_core.mm.printk.KernelLog"]:
        assert public_path(bad, api), bad
    for good in ["pageext_core.HoldRule", "pageext_core.mm.gfp.GFP_KERNEL", "pageext_core.mm",
                 "pageext_core.mm.__all__", "pageext_core.session.match_planted", "pageext_core.testing.Kit"]:
        assert public_path(good, api) is None, good
