"""Plugins that cannot be loaded: reported with who they are and why; the machine boots without them.

In strict mode each of these is a ``PluginLoadError`` instead.
"""
from __future__ import annotations

import pytest
from fwsupport import Counter, Fixed, Switch, boot_with, log_lines

from pageext_core import PluginLoadError, hookimpl
from pageext_core.mm.gfp import GFP_KERNEL

REAL = ["page_owner", "debug_pagealloc", "guard"]  # blocked where only the throwaway ones matter


def booted_without(pe, bad: str, *needles: str) -> str:
    """The one problem about ``bad``: it names the plugin, says each needle, and is in the log."""
    [problem] = pe.problems
    assert f"plugin {bad!r}" in problem
    for n in needles:
        assert n in problem, f"{n!r} not in {problem!r}"
    assert f"pageext: {problem}" in "\n".join(log_lines(pe))  # printk splits a multi-line message
    assert bad not in [c.name for c in pe.clients]
    return problem


# -- import errors (a real installed distribution) ----------------------------------------------------


def test_import_error_is_logged_with_entry_point_distribution_version_and_exception(boot_in_subprocess):
    out = boot_in_subprocess(cmdline="fwprobe=on", allocs=3)
    [problem] = [p for p in out["problems"] if "fwbroken" in p]
    assert problem == ("plugin 'fwbroken' (distribution pageext-fw-broken 0.0.1, entry point fwbroken = "
                       "pageext_fw_broken:Broken) failed to import: RuntimeError: fwbroken: import-time failure; "
                       "booting without it")
    assert f"pageext: {problem}" in out["warnings"]
    assert "fwbroken-imported" in out["markers"]  # it was tried
    assert "fwbroken" not in out["clients"]
    assert out["summaries"]["fwprobe"] == {"calls": 3}  # the machine booted and works


def test_import_error_in_strict_mode_stops_boot(boot_in_subprocess):
    out = boot_in_subprocess(cmdline="fwprobe=on", strict=True, blocked=REAL)
    assert "error" in out
    msg = out["error"]
    for needle in ("'fwbroken'", "pageext-fw-broken 0.0.1", "fwbroken = pageext_fw_broken:Broken",
                   "RuntimeError: fwbroken: import-time failure", "strict mode"):
        assert needle in msg


# -- registration problems (clients handed to boot) ------------------------------------------------------


class Misspelled(Fixed):
    @hookimpl
    def pageext_on_aloc(self, pfn):
        raise AssertionError("never called")


class ExtraArgument(Fixed):
    @hookimpl
    def pageext_on_alloc(self, pfn, colour):
        raise AssertionError("never called")


def test_misspelled_hook_names_plugin_hook_and_suggestion():
    good = Counter(flags=["F"])
    pe = boot_with(("typo", Misspelled(flags=["T"])), ("good", good), strict=False)
    booted_without(pe, "typo", "'pageext_on_aloc'", "did you mean 'pageext_on_alloc'?")
    assert pe.enabled == ["good"]
    m = pe.machine
    m.free_pages(m.alloc_pages(GFP_KERNEL, 0), 0)
    assert len(good.events) == 2
    with pytest.raises(PluginLoadError, match=r"'typo'.*'pageext_on_aloc'.*did you mean 'pageext_on_alloc'"):
        boot_with(("typo", Misspelled()), strict=True)


def test_hookimpl_argument_not_in_the_spec_names_plugin_and_argument():
    pe = boot_with(("extra", ExtraArgument(flags=["E"])), strict=False)
    booted_without(pe, "extra", "pageext_on_alloc", "colour")
    assert pe.machine.callouts.alloc == ()
    with pytest.raises(PluginLoadError, match=r"(?s)'extra'.*colour"):
        boot_with(("extra", ExtraArgument()), strict=True)


def test_client_that_cannot_be_created():
    class Explodes:
        def __init__(self):
            raise ZeroDivisionError("in __init__")

        @hookimpl
        def pageext_need(self):
            return True

    pe = boot_with(("explodes", Explodes), ("toy", Switch("toy")), strict=False)  # a class: the framework instantiates it
    booted_without(pe, "explodes", "could not be created", "ZeroDivisionError: in __init__")
    assert [c.name for c in pe.clients] == ["toy"]


def test_params_hook_raising():
    class BadParams:
        @hookimpl
        def pageext_params(self):
            raise KeyError("oops")

    pe = boot_with(("badparams", BadParams()), strict=False)
    booted_without(pe, "badparams", "raised in pageext_params", "KeyError")
    with pytest.raises(PluginLoadError, match="badparams"):
        boot_with(("badparams", BadParams()), strict=True)


def test_two_plugins_with_one_name():
    pe = boot_with(("twin", Fixed(flags=["A"])), ("twin", Fixed(flags=["B"])), strict=False)
    assert [c.name for c in pe.clients] == ["twin"]
    [problem] = pe.problems
    assert "plugin 'twin'" in problem and "booting without it" in problem
    assert dict(pe.layout.client("twin").flag_bits) == {"A": 0}  # the first one stays


def test_wrapper_on_a_hot_path_hook_is_refused_not_silently_dropped():
    ran = []

    class Wrapper(Fixed):
        @hookimpl(wrapper=True)
        def pageext_on_alloc(self, pfn):
            ran.append(pfn)
            return (yield)

    pe = boot_with(("wrap", Wrapper(flags=["W"])), strict=False)
    m = pe.machine
    m.alloc_pages(GFP_KERNEL, 0)
    assert ran == []  # it cannot run as a plain call, so it must have been refused
    booted_without(pe, "wrap", "pageext_on_alloc", "wrapper")
