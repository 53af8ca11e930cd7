"""Finding installed clients through the ``pageext.clients`` entry points, and keeping them out.

The subprocess tests use the throwaway distributions of ``conftest.py``
(``fwprobe`` works, ``fwbroken`` raises on import), installed by pip into a
private directory; each boot runs in a fresh interpreter, so "was it
imported?" is answered by marker files and ``sys.modules`` there.
"""
from __future__ import annotations

import pytest
from fwsupport import TINY

import pageext_core as pc
from pageext_core import discovery

UNKNOWN = 'Unknown kernel command line parameters "{}", will be passed to user space.'


def mentions(texts: list[str], needle: str) -> list[str]:
    return [t for t in texts if needle in t]


# -- discovery of a real installed distribution ---------------------------------------------------


def test_installed_distribution_is_discovered_and_enabled_by_its_parameter(boot_in_subprocess):
    out = boot_in_subprocess(cmdline="fwprobe=on", allocs=5)
    probe = out["clients"]["fwprobe"]
    assert probe["distribution"] == "pageext-fw-probe"
    assert probe["version"] == "0.4.2"
    assert probe["source"] == "entry point"
    assert probe["entry_point"] == "pageext_fw_probe:Probe"
    assert probe["enabled"] is True
    assert (probe["offset"], probe["size"], probe["fields"]) == (0, 4, {"hits": "<u4"})
    assert [p["name"] for p in probe["boot_params"]] == ["fwprobe"]
    assert "fwprobe" in out["enabled"]
    assert out["summaries"]["fwprobe"] == {"calls": 5}  # five allocations, each seen once
    assert "fwprobe-imported" in out["markers"]


def test_installed_distribution_off_by_default(boot_in_subprocess):
    out = boot_in_subprocess(cmdline="", allocs=5)
    probe = out["clients"]["fwprobe"]
    assert probe["enabled"] is False
    assert probe["offset"] is None and probe["size"] == 0
    assert "fwprobe" not in out["enabled"]
    assert "fwprobe" not in out["summaries"]


# -- blocking -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", [
    {"env": {"PAGEEXT_DISABLE_PLUGINS": "fwbroken"}},
    {"env": {"PAGEEXT_DISABLE_PLUGINS": " nothing-here , pageext-fw-broken "}},  # by distribution name
    {"blocked": ["fwbroken"]},
], ids=["env-entry-point", "env-distribution", "argument"])
def test_blocked_plugin_is_never_imported(boot_in_subprocess, how):
    out = boot_in_subprocess(cmdline="fwprobe=on", allocs=2, **how)
    assert out["markers"] == ["fwprobe-imported"]
    assert out["modules"] == ["pageext_fw_probe"]
    assert mentions(out["problems"], "fwbroken") == []
    assert mentions(out["warnings"], "fwbroken") == []
    assert "fwbroken" not in out["clients"]
    assert out["summaries"]["fwprobe"] == {"calls": 2}


def test_blocking_both_leaves_the_parameter_unowned(boot_in_subprocess):
    out = boot_in_subprocess(cmdline="fwprobe=on", env={"PAGEEXT_DISABLE_PLUGINS": "fwprobe,fwbroken"})
    assert out["markers"] == [] and out["modules"] == []
    assert "fwprobe" not in out["clients"]
    assert UNKNOWN.format("fwprobe=on") in out["warnings"]


def test_disable_autoload_loads_no_entry_point(boot_in_subprocess):
    out = boot_in_subprocess(cmdline="fwprobe=on", env={"PAGEEXT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert out["clients"] == {}  # not even the installed page_owner, debug_pagealloc, guard
    assert out["markers"] == [] and out["modules"] == []
    assert out["problems"] == []
    assert out["record_size"] == 0
    assert UNKNOWN.format("fwprobe=on") in out["warnings"]


def test_autoload_env_set_to_a_false_word_still_loads(boot_in_subprocess):
    out = boot_in_subprocess(cmdline="fwprobe=on", env={"PAGEEXT_DISABLE_PLUGIN_AUTOLOAD": "0"})
    assert "fwprobe" in out["enabled"]


# -- the same rules, in process, on the installed real plugins (nothing new is imported) ------------------


@pytest.mark.parametrize("value,disabled", [("", False), ("0", False), ("no", False), ("off", False),
                                            ("false", False), ("1", True), ("yes", True), ("true", True)])
def test_autoload_env_words(monkeypatch, value, disabled):
    monkeypatch.setenv(discovery.ENV_NO_AUTOLOAD, value)
    assert discovery.autoload_disabled() is disabled


def test_env_block_list_is_split_on_commas(monkeypatch):
    monkeypatch.setenv(discovery.ENV_DISABLE, " a, b ,,c ")
    assert discovery.env_blocked() == {"a", "b", "c"}


def test_blocked_installed_plugin_is_listed_but_not_loaded(monkeypatch):
    monkeypatch.setenv(discovery.ENV_DISABLE, "guard")
    infos = {i.name: i for i in discovery.discover()}
    assert infos["guard"].blocked and infos["guard"].target is None and infos["guard"].error is None
    assert infos["guard"].dist == "pageext-guard"
    assert {"page_owner", "debug_pagealloc"} <= {n for n, i in infos.items() if not i.blocked}
    pe = pc.boot(TINY, "")
    assert "guard" not in [c.name for c in pe.clients]
    assert "debug_guardpage_minorder" not in pe.boot.params  # its parameters are gone with it


def test_autoload_disabled_by_env_boots_without_installed_plugins(monkeypatch):
    monkeypatch.setenv(discovery.ENV_NO_AUTOLOAD, "1")
    assert discovery.discover() == []
    assert pc.boot(TINY, "").clients == []
    # an explicit argument wins over the environment
    assert {"page_owner", "debug_pagealloc", "guard"} <= {i.name for i in discovery.discover(autoload=True)}


def test_installed_plugins_are_discovered_in_name_order():
    names = [i.name for i in discovery.discover()]
    assert names == sorted(names)
    assert {"page_owner", "debug_pagealloc", "guard"} <= set(names)
