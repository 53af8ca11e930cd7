"""Clients that raise during boot are named; strict mode says what it means; kstrtobool's letters."""
from __future__ import annotations

import pytest

from pageext_core import BootParam, MachineConfig, PluginLoadError, boot, hookimpl, kstrtobool


@pytest.mark.parametrize("word,value", [
    ("on", True), ("ON", True), ("y", True), ("Yes", True), ("1", True), ("true", True), ("T", True),
    ("enable", True), ("E", True),
    ("off", False), ("Off", False), ("n", False), ("no", False), ("0", False), ("false", False), ("F", False),
    ("disable", False), ("d", False),
])
def test_kstrtobool_follows_mainline(word: str, value: bool) -> None:
    # Mainline decides by the first letter (y/t/e/1 true, n/f/d/0 false) and o+n / o+f.
    assert kstrtobool(word) is value


@pytest.mark.parametrize("word", ["", "o", "maybe", "2", "x"])
def test_kstrtobool_rejects(word: str) -> None:
    with pytest.raises(ValueError):
        kstrtobool(word)


class Grumpy:
    name = "grumpy"

    def __init__(self, where: str) -> None:
        self.where = where

    @hookimpl
    def pageext_need(self) -> bool:
        if self.where == "need":
            raise RuntimeError("no thanks")
        return True

    @hookimpl
    def pageext_fields(self) -> dict[str, str]:
        if self.where == "fields":
            raise RuntimeError("bad fields")
        return {"x": "u4"}

    @hookimpl
    def pageext_init(self) -> None:
        if self.where == "init":
            raise RuntimeError("bad init")


CFG = MachineConfig(memory=64 << 20, kernel_image=0)


@pytest.mark.parametrize("where", ["need", "fields"])
def test_client_raising_at_boot_is_named_and_dropped(where: str) -> None:
    pe = boot(CFG, "", plugins=[Grumpy(where)], autoload=False, strict=False)
    assert [c.name for c in pe.clients] == []
    assert pe.nbytes == 0
    (problem,) = pe.problems
    assert "plugin 'grumpy'" in problem and f"raised in pageext_{where}" in problem and problem.endswith("booting without it")
    assert any("raised in pageext_" in line for line in pe.machine.log.grep("pageext:"))


@pytest.mark.parametrize("where", ["need", "fields"])
def test_strict_client_raising_at_boot_is_an_error(where: str) -> None:
    with pytest.raises(PluginLoadError, match=rf"raised in pageext_{where}: RuntimeError.*\(strict mode: a plugin "
                                              r"that cannot be loaded is an error\)") as info:
        boot(CFG, "", plugins=[Grumpy(where)], autoload=False, strict=True)
    assert "booting without it" not in str(info.value)


def test_client_raising_in_init_is_named() -> None:
    with pytest.raises(PluginLoadError, match=r"plugin 'grumpy' .* raised in pageext_init: RuntimeError: bad init"):
        boot(CFG, "", plugins=[Grumpy("init")], autoload=False)


def test_bad_boot_value_after_good_one_keeps_the_good_one() -> None:
    class Knob:
        name = "knob"

        @hookimpl
        def pageext_params(self) -> list[BootParam]:
            return [BootParam("knob", "bool", False, "a switch")]

    pe = boot(CFG, "knob=on knob=maybe", plugins=[Knob], autoload=False)
    assert pe.boot["knob"] is True and "Malformed early option 'knob'" in pe.boot.warnings
