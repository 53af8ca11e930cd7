"""The machine's call-out table: installed whole, attributed to clients, empty means no call."""
from __future__ import annotations

import dataclasses

import pytest

from pageext_core.mm import NO_CALLOUTS, Callout, Callouts, HookError, Machine
from pageext_core.mm import gfp as G


def recorder(name: str, log: list):
    return {
        "alloc": Callout(name, lambda pfn, order, gfp, mt: log.append((name, "alloc", pfn, order))),
        "free": Callout(name, lambda pfn, order: log.append((name, "free", pfn, order))),
    }


def test_installed_table_is_called_in_order_and_replaced_whole(tiny: Machine) -> None:
    log: list = []
    a, b = recorder("a", log), recorder("b", log)
    table = Callouts(alloc=(a["alloc"], b["alloc"]), free=(b["free"],))
    tiny.install(table)
    assert tiny.callouts is table
    p = tiny.alloc_pages(G.GFP_KERNEL, 1)
    tiny.free_pages(p, 1)
    assert log == [("a", "alloc", p, 1), ("b", "alloc", p, 1), ("b", "free", p, 1)]
    log.clear()
    tiny.install(NO_CALLOUTS)
    p = tiny.alloc_pages(G.GFP_KERNEL, 1)
    tiny.free_pages(p, 1)
    assert log == [] and not tiny.callouts


def test_only_keeps_one_clients_entries() -> None:
    log: list = []
    a, b = recorder("a", log), recorder("b", log)
    table = Callouts(alloc=(a["alloc"], b["alloc"]), free=(a["free"], b["free"]))
    assert table.clients() == {"a", "b"}
    mine = table.only("b")
    assert mine.alloc == (b["alloc"],) and mine.free == (b["free"],)
    assert mine.clients() == {"b"} and table.only("nobody") == NO_CALLOUTS


def test_the_table_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NO_CALLOUTS.alloc = ()  # type: ignore[misc]


def test_a_raising_callout_is_named_by_its_client(tiny: Machine) -> None:
    def boom(pfn, order, gfp, mt):
        raise ValueError("bad")

    tiny.install(Callouts(alloc=(Callout("ok", lambda *a: None), Callout("broken", boom))))
    free_before = tiny.nr_free_pages + tiny.nr_pcp_pages
    with pytest.raises(HookError) as ei:
        tiny.alloc_pages(G.GFP_KERNEL, 2)
    assert ei.value.owner == "broken" and ei.value.hook == "pageext_on_alloc"
    assert tiny.nr_free_pages + tiny.nr_pcp_pages == free_before  # the allocation was undone


def test_combined_merge_callouts_name_the_one_that_raised(tiny: Machine) -> None:
    held: list = []

    def hold(pfn, order, mt):
        if order == 4:
            held.append(pfn)
            return True
        return False

    def refuse(pfn, order):
        return False

    def explode(pfn, order):
        raise RuntimeError("merge failed")

    tiny.install(Callouts(split=(Callout("g", hold),), merge=(Callout("m1", refuse), Callout("m2", explode))))
    tiny.drain_all_pages()
    p = tiny.alloc_pages(G.GFP_KERNEL, 4)  # above the pcp orders: freed straight to the buddy
    assert held == [p ^ 16], "expand split off the order-4 buddy and the split call-out held it"
    with pytest.raises(HookError) as ei:
        tiny.free_pages(p, 4)
    assert ei.value.owner == "m2" and ei.value.hook == "pageext_on_merge"
