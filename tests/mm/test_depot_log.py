"""Context (clock, task, CPU), the stack depot and the kernel log."""
from __future__ import annotations

import sys

import pytest

from pageext_core.mm import Machine, Task
from pageext_core.mm import gfp as G
from pageext_core.mm.printk import KernelLog, RateLimit
from pageext_core.mm.stackdepot import StackDepot

# -- clock, task, CPU ----------------------------------------------------------------------------


def test_clock_advances_and_never_goes_back(tiny: Machine):
    assert tiny.clock_ns == 0
    tiny.advance(1500)
    assert tiny.clock_ns == 1500
    with pytest.raises(ValueError):
        tiny.advance(-1)
    assert tiny.clock_ns == 1500


def test_allocator_operations_take_simulated_time(tiny: Machine):
    t0 = tiny.clock_ns
    p = tiny.alloc_pages(G.GFP_KERNEL, 1)
    tiny.free_pages(p, 1)
    assert tiny.clock_ns == t0 + 2 * tiny.op_cost_ns


def test_task_comm_is_truncated_to_15_bytes():
    assert Task(1, 1, "x" * 15).comm == "x" * 15
    assert Task(1, 1, "kworker/u16:3-events_unbound").comm == "kworker/u16:3-e"
    t = Task(1, 1, "é" * 10)  # 20 bytes in UTF-8: cut to 15 bytes, no half character
    assert len(t.comm.encode()) <= 15 and t.comm == "é" * 7


def test_set_task(tiny: Machine):
    t = tiny.set_task(1234, comm="stress-ng-vm-worker")
    assert (t.pid, t.tgid, t.comm) == (1234, 1234, "stress-ng-vm-wo")
    assert tiny.current is t
    t2 = tiny.set_task(1235, 1234, "thread")
    assert (t2.pid, t2.tgid) == (1235, 1234)


def test_context_restores_task_cpu_and_stack(tiny: Machine):
    before = (tiny.current, tiny.cpu, tiny.current_stack())
    with tiny.context(task=Task(9, 9, "inner"), stack=["f1", "f2"], cpu=1) as mm:
        assert mm is tiny
        assert tiny.current.comm == "inner" and tiny.cpu == 1
        assert tiny.depot.fetch(tiny.current_stack()) == ("f1", "f2")
    assert (tiny.current, tiny.cpu) == before[:2]
    with pytest.raises(RuntimeError), tiny.context(task=Task(9, 9, "boom"), cpu=1):
        raise RuntimeError
    assert tiny.current.comm == "swapper/0" and tiny.cpu == 0


# -- stack depot --------------------------------------------------------------------------------------


def test_depot_stores_each_stack_once():
    d = StackDepot()
    a = d.save(["do_a", "entry"])
    b = d.save(("do_b", "entry"))
    again = d.save(("do_a", "entry"))
    assert a == again and a != b
    assert len(d) == 2
    assert d.saves == 3
    assert d.stored_frames == 4
    assert d.fetch(a) == ("do_a", "entry")
    assert d.fetch(0) == ()
    assert 0 < a < 1 << 32 and 0 < b < 1 << 32
    assert list(d.handles()) == sorted({a, b})
    # kernel cost: a 24-byte record header per stack plus 8 bytes a frame
    assert d.nbytes == 2 * 24 + 4 * 8
    with pytest.raises(KeyError):
        d.fetch(99)


def test_depot_format():
    d = StackDepot()
    h = d.save(["__alloc_pages+0x1a/0x30", "alloc_pages_mpol+0x90/0x1e0"])
    assert d.format(h) == " __alloc_pages+0x1a/0x30\n alloc_pages_mpol+0x90/0x1e0\n"
    assert d.format(h, indent="  => ") == "  => __alloc_pages+0x1a/0x30\n  => alloc_pages_mpol+0x90/0x1e0\n"
    assert d.format(0) == ""


def _helper_that_allocates(m: Machine) -> int:
    return m.current_stack()


def test_save_python_captures_the_caller_and_skips_pageext_frames(tiny: Machine):
    h = _helper_that_allocates(tiny)  # current_stack runs inside pageext_core: skipped
    frames = tiny.depot.fetch(h)
    assert frames[0].startswith("_helper_that_allocates+0x1/0x2 [test_depot_log]")
    assert frames[1].startswith("test_save_python_captures_the_caller_and_skips_pageext_frames+0x1/")
    assert frames[1].endswith("[test_depot_log]")
    assert not any("[machine]" in f or "[stackdepot]" in f for f in frames)
    assert len(frames) <= 16
    # the same call site gives the same handle; another line of the caller, another stack
    same = [_helper_that_allocates(tiny) for _ in range(3)]
    assert len(set(same)) == 1
    assert same[0] != h
    assert tiny.depot.fetch(same[0])[0] == frames[0]
    assert tiny.depot.fetch(same[0])[1] != frames[1]


def test_save_python_respects_max_frames(tiny: Machine):
    def deep(n: int) -> int:
        return deep(n - 1) if n else tiny.depot.save_python(max_frames=4)

    h = deep(10)
    frames = tiny.depot.fetch(h)
    assert len(frames) == 4
    # The qualified name comes from co_qualname (Python 3.11+); 3.10 has the bare name.
    name = "test_save_python_respects_max_frames.<locals>.deep" if sys.version_info >= (3, 11) else "deep"
    assert all(f.startswith(name + "+") for f in frames)


def test_save_python_same_stack_is_cheap_and_deduplicated():
    d = StackDepot()

    def site() -> int:
        return d.save_python()

    handles = {site() for _ in range(50)}
    assert len(handles) == 1
    assert len(d) == 1 and d.saves == 50


def test_set_stack_attributes_allocations(tiny: Machine):
    h = tiny.set_stack(["kmalloc_large", "do_sys_open"])
    assert tiny.current_stack() == h
    assert tiny.set_stack(h) == h
    with pytest.raises(KeyError):
        tiny.set_stack(12345)
    tiny.set_stack(None)
    assert tiny.current_stack() != h
    long = tiny.set_stack([f"f{i}" for i in range(40)])
    assert len(tiny.depot.fetch(long)) == tiny.stack_max_frames == 16


# -- kernel log -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ns,text", [
    (0, "[    0.000000] hi"),
    (123_000, "[    0.000123] hi"),
    (999, "[    0.000000] hi"),  # below a microsecond
    (1_500_000_000, "[    1.500000] hi"),
    (12_345 * 10**9 + 678_901_000, "[12345.678901] hi"),
    (123_456 * 10**9, "[123456.000000] hi"),
])
def test_log_line_format(ns, text):
    assert KernelLog.format_line(ns, "hi") == text


def test_log_uses_the_machine_clock(tiny: Machine):
    tiny.advance(123_000)
    tiny.log.info("hello")
    tiny.advance(2 * 10**9)
    tiny.log.warn("two\nlines")
    lines = tiny.log.text().splitlines()
    assert lines[-3:] == ["[    0.000123] hello", "[    2.000123] two", "[    2.000123] lines"]
    assert tiny.log.grep("two") == ["two"]
    assert [lvl for _, lvl, _ in tiny.log.lines[-3:]] == ["info", "warn", "warn"]


def test_log_sink_sees_each_line():
    seen = []
    m = Machine(__import__("pageext_core.mm", fromlist=["MachineConfig"]).MachineConfig(memory=64 << 20), log_sink=seen.append)
    assert seen and seen[0].startswith("[    0.000000] Linux version")
    assert seen == m.log.text().splitlines()


def test_ratelimit_burst_and_interval():
    """The default state (DEFAULT_RATELIMIT_*: 10 per 5 s); ___ratelimit opens a new window only strictly after it."""
    now = [0]
    log = KernelLog(lambda: now[0])
    printed = [log.ratelimited("k", f"m{i}") for i in range(15)]
    assert printed == [True] * 10 + [False] * 5
    now[0] = 4_999_999_999
    assert not log.ratelimited("k", "still closed")
    now[0] = 5_000_000_000
    assert not log.ratelimited("k", "the edge itself is still inside")
    now[0] = 5_000_000_001
    assert log.ratelimited("k", "open again")
    assert [t for _, _, t in log.lines[-2:]] == ["k: 7 callbacks suppressed", "open again"]
    assert log.suppressed() == {"k": 7}
    # other keys have their own budget
    assert log.ratelimited("other", "x")


def test_ratelimit_object():
    rl = RateLimit(burst=2, interval_ns=100)
    assert [rl.allow(t)[0] for t in (0, 1, 2, 3)] == [True, True, False, False]
    assert rl.allow(100) == (False, 0)
    assert rl.allow(101) == (True, 3)
    assert rl.allow(150) == (True, 0)
    assert rl.allow(150) == (False, 0)
    assert rl.total_suppressed == 4
