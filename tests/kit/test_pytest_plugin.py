"""The pytest kit as a plugin author meets it: the `pageext` fixture and --pageext-conformance."""
from __future__ import annotations

import pytest

AUTHOR_TEST = '''
from pageext_core import BootParam, hookimpl


class Tiny:
    name = "tiny"

    @hookimpl
    def pageext_params(self):
        return [BootParam("tiny", "bool", False, "a tiny client")]

    @hookimpl
    def pageext_need(self, boot):
        return boot["tiny"]

    @hookimpl
    def pageext_fields(self):
        return {"n": "u2"}

    @hookimpl
    def pageext_init(self, view):
        self.view = view

    @hookimpl
    def pageext_on_alloc(self, pfn, order):
        self.view.block(pfn, order)["n"] += 1


def test_kit(pageext):
    pe = pageext.boot("tiny=on", plugins=[Tiny])
    pfns = pageext.run_ops(pe, [("alloc", "GFP_KERNEL", 1), ("write", 0, 16, b"hi"), ("free", 0), ("drain",)])
    assert pe.client("tiny").view.block(pfns[0], 1)["n"].tolist() == [1, 1]
    result = pageext.run_workload(pe, operations=500, seed=2)
    assert result.operations == 500
    pageext.assert_invariants(pe)
    assert pageext.conformance(Tiny, "tiny=on").ok
'''


def test_fixture_is_available_to_any_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_author=AUTHOR_TEST)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_conformance_option_runs_on_installed_plugins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "--pageext-conformance=page_owner:page_owner=on",
        "--pageext-conformance=guard:debug_pagealloc=on debug_guardpage_minorder=2")
    result.assert_outcomes(passed=3)


def test_conformance_option_fails_for_a_line_that_does_not_enable_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--pageext-conformance=page_owner:")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*enabled by boot_on*need() said no*"])
