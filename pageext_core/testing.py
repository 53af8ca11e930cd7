"""pytest kit for plugin authors (loaded through the ``pytest11`` entry point).

Installing pageext-core gives every pytest run the ``pageext`` fixture::

    def test_counts(pageext):
        pe = pageext.boot("my_param=on", plugins=[MyClient])
        ids = pageext.run_ops(pe, [("alloc", "GFP_KERNEL", 0), ("alloc", "GFP_KERNEL", 2), ("free", 0)])
        pageext.run_workload(pe, operations=2000, seed=1)
        assert "..." in pageext.report(pe, "my_report")
        pageext.assert_invariants(pe)
        pageext.conformance(MyClient, "my_param=on")

and the ``--pageext-conformance="NAME:BOOT LINE"`` option, which adds a test
running the conformance check on an installed plugin.  Boots are strict: a
plugin that cannot be loaded is an error, not a warning.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pageext_core.conformance import ConformanceReport
    from pageext_core.mm.geometry import MachineConfig
    from pageext_core.page_ext import PageExt
    from pageext_core.session.workload import WorkloadResult

Op = Sequence[Any]

__all__ = ["Kit", "Op", "pageext"]  # a public module: the kit; the pytest hooks below are pytest's business


class Kit:
    """What the ``pageext`` fixture gives a test."""

    def config(self, memory: str | int = "128MiB", **machine: Any) -> MachineConfig:
        """A small, fast machine (no kernel image reservation unless asked)."""
        from pageext_core.mm.geometry import MachineConfig, parse_size

        machine.setdefault("kernel_image", 0)
        return MachineConfig(memory=parse_size(memory), **machine)

    def boot(self, boot: str = "", *, plugins: Iterable[Any] = (), memory: str | int = "128MiB",
             autoload: bool = False, strict: bool = True, **machine: Any) -> PageExt:
        """Boot a small machine with the given clients (installed ones too with ``autoload=True``)."""
        from pageext_core.page_ext import boot as _boot

        return _boot(self.config(memory, **machine), boot, plugins=list(plugins), autoload=autoload, strict=strict)

    def run_ops(self, pe: PageExt, ops: Iterable[Op]) -> list[int | None]:
        """Apply ``("alloc", gfp, order)``, ``("free", i)``, ``("write", i, offset, data)``,
        ``("read", i, offset, n)`` and ``("drain",)``; ``i`` indexes earlier allocations.

        Returns the pfn of each allocation (None when it failed), in order.
        """
        from pageext_core.mm.gfp import parse_gfp

        m = pe.machine
        blocks: list[tuple[int | None, int]] = []
        for op in ops:
            kind = op[0]
            if kind == "alloc":
                order = op[2] if len(op) > 2 else 0
                blocks.append((m.alloc_pages(parse_gfp(op[1]), order), order))
            elif kind == "free":
                pfn, order = blocks[op[1]]
                if pfn is None:
                    raise ValueError(f"op {op!r}: allocation {op[1]} failed, nothing to free")
                m.free_pages(pfn, order)
            elif kind == "write":
                m.write(blocks[op[1]][0], op[2], op[3])  # type: ignore[arg-type]
            elif kind == "read":
                m.read(blocks[op[1]][0], op[2], op[3])  # type: ignore[arg-type]
            elif kind == "drain":
                m.drain_all_pages()
            else:
                raise ValueError(f"unknown op {op!r}: use alloc, free, write, read or drain")
        return [pfn for pfn, _ in blocks]

    def run_workload(self, pe: PageExt, operations: int = 2000, seed: int = 0, **spec: Any) -> WorkloadResult:
        """The seeded synthetic workload (same options as a session's ``[workload]``)."""
        from pageext_core.session.config import WorkloadSpec
        from pageext_core.session.workload import run_workload

        return run_workload(pe, WorkloadSpec(operations=operations, seed=seed, **spec))

    def report(self, pe: PageExt, name: str, **params: Any) -> str:
        return pe.report(name, **params)

    def assert_invariants(self, target: Any) -> None:
        """Raise (with every violation listed) unless the allocator is consistent."""
        from pageext_core.mm.invariants import check_invariants

        check_invariants(getattr(target, "machine", target))

    def conformance(self, plugin: Any, boot_on: str, **kwargs: Any) -> ConformanceReport:
        """Run the conformance check; fails the test on any broken promise."""
        from pageext_core.conformance import check_conformance

        return check_conformance(plugin, boot_on, **kwargs)


@pytest.fixture
def pageext() -> Kit:
    """Boot machines with your plugin, drive them, read reports, check invariants and conformance."""
    return Kit()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pageext")
    group.addoption("--pageext-conformance", action="append", default=[], metavar="NAME:BOOT",
                    help="run the page_ext conformance check on an installed plugin, e.g. "
                         "'guard:debug_pagealloc=on debug_guardpage_minorder=2' (repeatable)")


class ConformanceItem(pytest.Item):
    """A test item running the conformance check on one installed plugin."""

    def __init__(self, *, spec: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def runtest(self) -> None:
        from pageext_core.conformance import check_conformance

        name, _, line = self.spec.partition(":")
        check_conformance(None, line, name=name, autoload=True)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"pageext conformance: {self.spec}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for spec in config.getoption("pageext_conformance", default=[]) or []:
        items.append(ConformanceItem.from_parent(session, name=f"pageext_conformance[{spec}]", spec=spec))
