"""Boot parameters: the kernel command line, its TOML tables, and who owns what.

``parse_boot`` is tested directly with hand-made ``BootParam`` lists; the
parts that involve clients (ownership, the machine log) go through ``boot``.
"""
from __future__ import annotations

import pytest
from fwsupport import Switch, boot_with, log_lines

from pageext_core import BootParam, PluginLoadError, hookimpl, kstrtobool, parse_boot
from pageext_core.bootparams import BootParamError, split_cmdline

UNKNOWN = 'Unknown kernel command line parameters "{}", will be passed to user space.'


def params(*ps: BootParam, owner: str = "toy") -> list[BootParam]:
    return [BootParam(**{**p.__dict__, "owner": p.owner or owner}) for p in ps]


TOY = params(
    BootParam("toy", "bool", False, key="enabled"),
    BootParam("toy_level", "int", 1, key="level"),
    BootParam("toy_name", "str", "none", key="name"),
    BootParam("toy_off", "flag", False, key="off"),
)


# -- kstrtobool -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["on", "ON", "On", "oN", "1", "y", "Y", "yes", "YES", "Yes"])
def test_kstrtobool_true(text):
    assert kstrtobool(text) is True


@pytest.mark.parametrize("text", ["off", "OFF", "Off", "oFf", "0", "n", "N", "no", "NO", "No"])
def test_kstrtobool_false(text):
    assert kstrtobool(text) is False


@pytest.mark.parametrize("text", ["", None, "o", "ox", "2", "maybe", "-1", " on"])
def test_kstrtobool_rejects(text):
    with pytest.raises(ValueError):
        kstrtobool(text)


@pytest.mark.parametrize("text,value", [("on", True), ("YES", True), ("1", True), ("Off", False), ("n", False), ("0", False)])
def test_bool_param_on_the_line(text, value):
    cfg = parse_boot(TOY, f"toy={text}")
    assert cfg["toy"] is value
    assert cfg.is_set("toy")
    assert cfg.warnings == []


# -- the line ------------------------------------------------------------------------------


def test_defaults_when_not_given():
    cfg = parse_boot(TOY, "")
    assert (cfg["toy"], cfg["toy_level"], cfg["toy_name"], cfg["toy_off"]) == (False, 1, "none", False)
    assert not cfg.is_set("toy")
    assert cfg.for_client("toy") == {"toy": False, "toy_level": 1, "toy_name": "none", "toy_off": False}
    with pytest.raises(KeyError, match="no boot parameter 'nope'"):
        cfg["nope"]
    assert cfg.get("nope", 42) == 42


def test_quoting():
    cfg = parse_boot(TOY, 'toy_name="hello world" toy=on')
    assert cfg["toy_name"] == "hello world"
    assert cfg["toy"] is True
    # a quote around the whole word, as the kernel's next_arg allows
    assert parse_boot(TOY, '"toy_name=a  b"')["toy_name"] == "a  b"
    assert split_cmdline('a="x y" b c=') == [("a", "x y"), ("b", None), ("c", "")]
    with pytest.raises(BootParamError, match="unterminated quote"):
        parse_boot(TOY, 'toy_name="oops toy=on')


def test_double_dash_ends_kernel_parameters():
    cfg = parse_boot(TOY, "toy=on -- toy=off foo=bar")
    assert cfg["toy"] is True
    assert cfg.unknown == []
    assert cfg.warnings == []
    assert cfg.cmdline == "toy=on"


def test_dash_and_underscore_are_the_same():
    cfg = parse_boot(TOY, "toy-level=7")
    assert cfg["toy_level"] == 7
    assert cfg["toy-level"] == 7
    assert cfg.is_set("toy-level")
    assert cfg.unknown == []


def test_int_and_flag_params():
    cfg = parse_boot(TOY, "toy_level=0x10 toy_off")
    assert cfg["toy_level"] == 16
    assert cfg["toy_off"] is True
    assert parse_boot(TOY, "toy_off=0")["toy_off"] is False


def test_malformed_values_are_warned_about_and_ignored():
    cfg = parse_boot(TOY, "toy=maybe toy_level=ten toy")
    assert cfg["toy"] is False  # the default
    assert cfg["toy_level"] == 1
    assert not cfg.is_set("toy")
    # a bare bool parameter has no value: the kernel calls that malformed too
    assert cfg.warnings == ["Malformed early option 'toy'", "Malformed early option 'toy_level'",
                            "Malformed early option 'toy'"]


def test_unknown_parameters_exact_warning():
    cfg = parse_boot(TOY, "foo=bar toy=on baz")
    assert cfg.unknown == ["foo=bar", "baz"]
    assert cfg.warnings == [UNKNOWN.format("foo=bar baz")]
    assert cfg["toy"] is True


def test_later_value_on_the_line_wins():
    cfg = parse_boot(TOY, "toy_level=1 toy_level=2 toy=on toy=off")
    assert cfg["toy_level"] == 2
    assert cfg["toy"] is False


# -- a client's validator -----------------------------------------------------------------------


def _minorder(raw: str | None) -> int:
    if raw is None or not raw.isdigit() or not 0 <= int(raw) <= 5:
        raise ValueError(f"Bad debug_guardpage_minorder value: {raw}")
    return int(raw)


class Validated:
    @hookimpl
    def pageext_params(self):
        return [BootParam("debug_guardpage_minorder", "int", 0, key="minorder", parse=_minorder)]

    @hookimpl
    def pageext_need(self, boot):
        return boot["debug_guardpage_minorder"] > 0

    @hookimpl
    def pageext_flags(self):
        return ["GUARD"]


def test_validator_message_logged_and_value_ignored():
    pe = boot_with(("guardish", Validated()), cmdline="debug_guardpage_minorder=9")
    assert "Bad debug_guardpage_minorder value: 9" in log_lines(pe)
    assert pe.boot["debug_guardpage_minorder"] == 0
    assert not pe.boot.is_set("debug_guardpage_minorder")
    assert not pe.client("guardish").enabled
    pe = boot_with(("guardish", Validated()), cmdline="debug_guardpage_minorder=3")
    assert pe.boot["debug_guardpage_minorder"] == 3
    assert pe.client("guardish").enabled


def test_boot_logs_the_line_and_the_unknown_warning():
    pe = boot_with(("toy", Switch("toy")), cmdline="foo=bar toy=on baz")
    lines = log_lines(pe)
    assert "Command line: foo=bar toy=on baz" in lines
    assert UNKNOWN.format("foo=bar baz") in lines
    assert pe.enabled == ["toy"]


# -- TOML tables -----------------------------------------------------------------------------------


def test_tables_set_params_by_key():
    cfg = parse_boot(TOY, "", {"toy": {"enabled": True, "level": 4, "name": "x y", "off": True}})
    assert (cfg["toy"], cfg["toy_level"], cfg["toy_name"], cfg["toy_off"]) == (True, 4, "x y", True)
    assert cfg.warnings == []
    assert parse_boot(TOY, "", {"toy": {"off": False}})["toy_off"] is False


@pytest.mark.parametrize("table,message", [
    ({"toy": {"enabled": "yes"}}, "toy: expected true or false, got 'yes'"),
    ({"toy": {"enabled": 1}}, "toy: expected true or false, got 1"),
    ({"toy": {"level": True}}, "toy_level: expected an integer, got True"),
    ({"toy": {"level": "3"}}, "toy_level: expected an integer, got '3'"),
    ({"toy": {"name": 5}}, "toy_name: expected a string, got 5"),
    ({"toy": {"level": 3, "colour": "red"}}, r"\[boot.toy\] colour: unknown key; toy has enabled, level, name, off"),
    ({"toy": {"toy_level": 3}}, r"\[boot.toy\] toy_level: unknown key"),  # the key, not the line name
    ({"nobody": {"enabled": True}}, r"\[boot.nobody\]: no installed client 'nobody' owns boot parameters"),
    ({"toy": ["enabled"]}, r"\[boot.toy\] must be a table"),
])
def test_bad_tables_are_errors(table, message):
    with pytest.raises(BootParamError, match=message):
        parse_boot(TOY, "", table)


def test_boot_rejects_a_bad_table():
    with pytest.raises(BootParamError, match="colour"):
        boot_with(("toy", Switch("toy", key="enabled")), boot_tables={"toy": {"colour": 1}})


def test_tables_first_then_the_line():
    cfg = parse_boot(TOY, "toy_level=5 toy=off", {"toy": {"level": 3, "enabled": True, "name": "kept"}})
    assert cfg["toy_level"] == 5
    assert cfg["toy"] is False
    assert cfg["toy_name"] == "kept"
    pe = boot_with(("toy", Switch("toy", key="enabled")), cmdline="toy=on", boot_tables={"toy": {"enabled": False}})
    assert pe.enabled == ["toy"]
    pe = boot_with(("toy", Switch("toy", key="enabled")), cmdline="toy=off", boot_tables={"toy": {"enabled": True}})
    assert pe.enabled == []


def test_rejected_value_leaves_the_earlier_value():
    cfg = parse_boot(TOY, "toy_level=bogus", {"toy": {"level": 3}})
    assert cfg.warnings == ["Malformed early option 'toy_level'"]
    assert cfg["toy_level"] == 3
    cfg = parse_boot(TOY, "toy=on toy=perhaps")
    assert cfg["toy"] is True


# -- ownership ---------------------------------------------------------------------------------------


def test_bootparam_checks_itself():
    with pytest.raises(ValueError, match="type must be one of"):
        BootParam("x", "float")
    with pytest.raises(ValueError, match="one word"):
        BootParam("two words")
    with pytest.raises(ValueError, match="one word"):
        BootParam("a=b")


def test_two_clients_claiming_one_parameter_later_is_rejected():
    first, second = Switch("shared"), Switch("shared")
    pe = boot_with(("first", first), ("second", second), cmdline="shared=on", strict=False)
    assert [c.name for c in pe.clients] == ["first"]
    assert pe.enabled == ["first"]
    assert pe.boot.params["shared"].owner == "first"
    [problem] = pe.problems
    assert "'second'" in problem and "'shared'" in problem and "already owned by 'first'" in problem
    assert f"pageext: {problem}" in log_lines(pe)
    with pytest.raises(PluginLoadError, match=r"'second'.*'shared'.*already owned by 'first'"):
        boot_with(("first", Switch("shared")), ("second", Switch("shared")), strict=True)


def test_params_hook_returning_junk_is_a_plugin_problem():
    class Junk:
        @hookimpl
        def pageext_params(self):
            return ["junk=on"]

    pe = boot_with(("junk", Junk()), ("toy", Switch("toy")), cmdline="toy=on", strict=False)
    assert [c.name for c in pe.clients] == ["toy"]
    assert len(pe.problems) == 1 and "'junk'" in pe.problems[0] and "not a BootParam" in pe.problems[0]
