"""``pageext_need`` and the boot phases after it: asked per client, answers kept per client."""
from __future__ import annotations

from fwsupport import Fixed, Switch, boot_with

from pageext_core import hookimpl


def test_need_answers_are_attributed_per_client():
    yes, no = Fixed({"a": "u4"}), Fixed({"b": "u8"}, ["F"], need=False)
    pe = boot_with(("yes", yes), ("no", no))
    assert pe.client("yes").enabled is True
    assert pe.client("no").enabled is False
    assert pe.enabled == ["yes"]
    # each asked once; only the needed one is asked for fields, flags, and initialised
    assert yes.asked == ["need", "fields", "flags", "init"]
    assert no.asked == ["need"]
    assert pe.record_size == 4
    assert pe.client("no").layout is None and pe.client("no").view is None
    assert no.view is None
    assert yes.view is pe.client("yes").view


def test_need_from_boot_parameters_per_client():
    pe = boot_with(("a", Switch("a_on")), ("b", Switch("b_on")), cmdline="b_on=1")
    assert {c.name: c.enabled for c in pe.clients} == {"a": False, "b": True}
    desc = {d["name"]: d for d in pe.describe()["plugins"]}
    assert desc["a"]["enabled"] is False and desc["a"]["offset"] is None and desc["a"]["size"] == 0
    assert desc["b"]["enabled"] is True and desc["b"]["offset"] == 0 and desc["b"]["size"] == 4
    assert desc["b"]["boot_params"][0]["name"] == "b_on"
    assert desc["b"]["source"] == "direct"


def test_truthy_need_answers_count_as_yes_and_a_missing_hook_as_no():
    class Truthy:
        @hookimpl
        def pageext_need(self):
            return 1

        @hookimpl
        def pageext_flags(self):
            return ["T"]

    class NoNeedHook:
        @hookimpl
        def pageext_flags(self):
            return ["N"]

    pe = boot_with(("truthy", Truthy()), ("silent", NoNeedHook()))
    assert pe.client("truthy").enabled is True
    assert pe.client("silent").enabled is False
    assert pe.enabled == ["truthy"]


def test_init_gets_its_arguments_after_tables_exist():
    seen = {}

    class Init:
        @hookimpl
        def pageext_need(self):
            return True

        @hookimpl
        def pageext_fields(self):
            return {"x": "u2"}

        @hookimpl
        def pageext_init(self, log, page_ext, machine, view, boot):
            seen.update(view=view, machine=machine, boot=boot, page_ext=page_ext, log=log,
                        tables=page_ext.tables is not None and bool(page_ext.tables.tables),
                        booted=machine.booted)

    pe = boot_with(("init", Init()))
    assert seen["view"] is pe.client("init").view
    assert seen["machine"] is pe.machine and seen["log"] is pe.machine.log
    assert seen["boot"] is pe.boot and seen["page_ext"] is pe
    assert seen["tables"] and seen["booted"]
