"""Hooks that are not on the hot path: called through pluggy, attributed, ordered, traced.

Also the boot phases one by one, the built-in core-reports client, and
``dump_page`` (any enabled client adds lines to a bad page's report).
"""
from __future__ import annotations

import pytest
from fwsupport import TINY, Fixed, boot_with, log_lines

from pageext_core import BootParam, Finding, hookimpl
from pageext_core.dispatch import ENV_TRACE, call_order
from pageext_core.mm.gfp import GFP_KERNEL
from pageext_core.page_ext import (
    Booting,
    allocate,
    ask_need,
    collect_params,
    discover_clients,
    init_clients,
    lay_out,
    new_plugin_manager,
    parse_params,
    register_clients,
    start_machine,
)
from pageext_core.reports import ReportError


class Talker(Fixed):
    """A client that answers every on-demand hook with something naming itself."""

    def __init__(self, label: str, **kw):
        super().__init__({"n": "u4"}, ["F"], **kw)
        self.label = label

    @hookimpl
    def pageext_report(self):
        return {f"{self.label}_report": lambda: f"{self.label}\n"}

    @hookimpl
    def pageext_summary(self):
        return {"label": self.label}

    @hookimpl
    def pageext_findings(self):
        return [Finding("talk", 1, 0, f"{self.label} says")]

    @hookimpl
    def pageext_dump_page(self, pfn):
        return f"{self.label} knows pfn {pfn:#x}"

    @hookimpl
    def pageext_pagetypeinfo_section(self, nid):
        return f"{self.label} section for node {nid}\n"


# -- through pluggy ------------------------------------------------------------------------------


def test_every_hook_but_the_event_hooks_is_called_through_pluggy():
    seen: list[str] = []
    pm = new_plugin_manager()
    pm.add_hookcall_monitoring(lambda name, impls, kw: seen.append(name), lambda *a: None)
    st = Booting(pm=pm, strict=True)
    register_clients(st, discover_clients([("a", Talker("a"))], autoload=False))
    collect_params(st)
    start_machine(st, TINY)
    parse_params(st)
    ask_need(st)
    lay_out(st)
    allocate(st)
    from pageext_core.page_ext import PageExt

    pe = PageExt(st.machine, st.cfg, st.clients, st.layout, st.tables, pm, st.problems, st.builtin)
    init_clients(st, pe)
    before_events = list(seen)
    m = pe.machine
    m.free_pages(m.alloc_pages(GFP_KERNEL, 0), 0)
    assert seen == before_events  # allocations and frees never go through pluggy
    pe.report("pagetypeinfo")
    pe.client_summaries()
    pe.findings()
    pe.dump_page(3)
    assert {"pageext_need", "pageext_fields", "pageext_flags", "pageext_init", "pageext_report",
            "pageext_pagetypeinfo_section", "pageext_summary", "pageext_findings", "pageext_dump_page"} <= set(seen)


def test_answers_are_attributed_to_their_clients():
    pe = boot_with(("b", Talker("b")), ("a", Talker("a")), ("off", Talker("off", need=False)))
    assert pe.client_summaries() == {"a": {"label": "a"}, "b": {"label": "b"}}
    assert [(f.client, f.message) for f in pe.findings()] == [("a", "a says"), ("b", "b says")]
    assert pe.report_owner("a_report") == "a" and pe.report_owner("b_report") == "b"
    assert "off_report" not in pe.report_names()


def test_dump_page_joins_every_enabled_clients_text_in_call_order():
    pe = boot_with(("b", Talker("b")), ("a", Talker("a")), ("off", Talker("off", need=False)))
    assert pe.dump_page(0x10) == "a knows pfn 0x10\nb knows pfn 0x10"
    alone = boot_with(("a", Talker("a")))
    assert alone.dump_page(0x10) == "a knows pfn 0x10"
    assert boot_with(("c", Fixed(flags=["F"]))).dump_page(0x10) is None


# -- order ------------------------------------------------------------------------------------------


def needer(mark: dict, log: list, label: str):
    class Needer(Fixed):
        @hookimpl(**mark)
        def pageext_need(self):
            log.append(label)
            return True

    return Needer(flags=["F"])


def test_boot_hooks_are_called_in_pluggys_order_whatever_the_install_order():
    spec = [("b_plain", {}), ("y_last", {"trylast": True}), ("z_first", {"tryfirst": True}),
            ("a_plain", {}), ("m_first", {"tryfirst": True}), ("c_last", {"trylast": True})]
    orders = []
    for given in (spec, spec[::-1]):
        log: list[str] = []
        pe = boot_with(*((name, needer(mark, log, name)) for name, mark in given))
        orders.append(log)
        assert call_order(pe.pm, "pageext_need", pe.enabled) == log
    # tryfirst and plain ones by name; several trylast ones in reverse name order (pluggy calls the
    # first registered of those first, and clients are registered in reverse name order)
    assert orders[0] == orders[1] == ["m_first", "z_first", "a_plain", "b_plain", "y_last", "c_last"]


# -- wrappers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["pageext_need", "pageext_report", "pageext_summary", "pageext_dump_page"])
@pytest.mark.parametrize("mark", [{"wrapper": True}, {"hookwrapper": True}])
def test_a_wrapper_on_any_hook_is_refused_when_registered(hook, mark):
    Wrapper = type("Wrapper", (Fixed,), {hook: hookimpl(**mark)(lambda self: (yield))})
    pe = boot_with(("wrap", Wrapper(flags=["W"])), ("ok", Talker("ok")), strict=False)
    [problem] = pe.problems
    assert "plugin 'wrap'" in problem and hook in problem and "cannot be wrappers" in problem
    assert [c.name for c in pe.clients] == ["ok"]
    pe.report_names(), pe.client_summaries(), pe.dump_page(0)  # the others still work: nothing crashes later


# -- tracing -------------------------------------------------------------------------------------------


def test_trace_plugins_prints_each_call_with_arguments_and_results(monkeypatch, capsys):
    class Broken(Fixed):
        @hookimpl
        def pageext_summary(self):
            raise ValueError("no figures")

    monkeypatch.setenv(ENV_TRACE, "1")
    pe = boot_with(("t", Talker("t")), cmdline="")
    err = capsys.readouterr().err.splitlines()
    assert "pageext trace: pageext_fields [t] -> [{'n': 'u4'}]" in err
    need = next(line for line in err if line.startswith("pageext trace: pageext_need("))
    assert need.endswith(") [t]") and "boot=BootConfig(" in need and "machine=<" in need
    m = pe.machine
    m.free_pages(m.alloc_pages(GFP_KERNEL, 0), 0)
    assert capsys.readouterr().err == ""  # event hooks are not traced
    assert pe.dump_page(7) == "t knows pfn 0x7"
    assert capsys.readouterr().err.splitlines() == [
        "pageext trace: pageext_dump_page(pfn=7) [t]", "pageext trace: pageext_dump_page [t] -> ['t knows pfn 0x7']"]

    broken = boot_with(("x", Broken(flags=["F"])))
    capsys.readouterr()
    with pytest.raises(ValueError):
        broken.client_summaries()
    assert capsys.readouterr().err.splitlines()[-1] == "pageext trace: pageext_summary [x] raised ValueError: no figures"


@pytest.mark.parametrize("value", ["", "0", "off"])
def test_no_trace_unless_asked(monkeypatch, capsys, value):
    monkeypatch.setenv(ENV_TRACE, value)
    pe = boot_with(("t", Talker("t")))
    pe.report_names()
    assert capsys.readouterr().err == ""


# -- the phases, one by one ---------------------------------------------------------------------------


def test_boot_phases_one_by_one():
    class Owner(Fixed):
        @hookimpl
        def pageext_params(self):
            return [BootParam("own", "bool", False, "on or off")]

        @hookimpl
        def pageext_need(self, boot):
            return boot["own"]

    st = Booting(pm=new_plugin_manager(), strict=True)
    register_clients(st, discover_clients([("z", Owner(flags=["Z"])), ("a", Fixed(flags=["A"]))], autoload=False))
    assert [c.name for c in st.clients] == ["z", "a"]  # the order given; registered in reverse name order
    assert [c.name for c in st.builtin] == ["core"]
    collect_params(st)
    assert [(p.name, p.owner) for p in st.params] == [("own", "z")]
    m = start_machine(st, TINY)
    assert m.nr_free_pages == 0  # memblock stage: nothing freed yet
    cfg = parse_params(st, "own=on")
    assert cfg["own"] is True and "Command line: own=on" in log_lines_of(m)
    assert [c.name for c in ask_need(st)] == ["z", "a"]
    layout = lay_out(st)
    assert [c.name for c in layout.clients] == ["a", "z"] and layout.record_size == 8
    assert m.nr_free_pages == 0 and st.tables is None
    tables = allocate(st)
    assert tables is not None and m.nr_free_pages > 0


def log_lines_of(m) -> str:
    return "\n".join(text for _, _, text in m.log.lines)


def test_a_client_raising_in_a_boot_phase_is_named_and_dropped_unless_strict():
    class Raises(Fixed):
        @hookimpl
        def pageext_flags(self):
            raise RuntimeError("no bits today")

    pe = boot_with(("r", Raises()), ("ok", Fixed(flags=["F"])), strict=False)
    [problem] = pe.problems
    assert "plugin 'r'" in problem and "raised in pageext_flags: RuntimeError: no bits today" in problem
    assert f"pageext: {problem}" in "\n".join(log_lines(pe))
    assert pe.enabled == ["ok"]
    from pageext_core import PluginLoadError

    with pytest.raises(PluginLoadError, match="'r'.*pageext_flags"):
        boot_with(("r", Raises()), strict=True)


# -- the built-in core reports -------------------------------------------------------------------------


def test_core_reports_are_there_with_autoload_off_and_cannot_be_blocked():
    pe = boot_with(blocked=["core"])
    assert pe.report_names()[:5] == ["buddyinfo", "meminfo", "vmstat", "page_ext", "pagetypeinfo"]
    assert pe.report_owner("page_ext") == "core" and pe.clients == []


def test_a_plugin_named_core_is_refused_and_the_core_reports_stay():
    pe = boot_with(("core", Talker("core")), strict=False)
    [problem] = pe.problems
    assert "plugin 'core'" in problem
    assert pe.report_owner("buddyinfo") == "core" and "core_report" not in pe.report_names()


def test_a_client_offering_a_core_report_name_is_refused():
    class Clash(Fixed):
        @hookimpl
        def pageext_report(self):
            return {"vmstat": lambda: "mine"}

    pe = boot_with(("clash", Clash()))
    with pytest.raises(ReportError, match="client 'clash' offers report 'vmstat', which the core already offers"):
        pe.report("vmstat")
