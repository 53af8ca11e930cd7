"""The standard mixed allocator workload, shared by every benchmark that drives a machine.

A *plan* is a deterministic (seeded) list of ``n_ops`` operations, built
before any timing starts, as plain Python data so that running it costs
only the allocator calls and a few list operations:

- about half the operations are allocations, half frees (a free is forced
  when ``max_live`` blocks are live, none is possible when nothing is);
- allocation orders are mostly small: 0 (50%), 1 (20%), 2 (13%), 3 (13%),
  with some pageblock-sized order-9 blocks (4%);
- gfp masks mix GFP_KERNEL (40%), GFP_HIGHUSER_MOVABLE (35%), GFP_USER (15%)
  and reclaimable ``GFP_KERNEL|__GFP_RECLAIMABLE`` (10%), so all three
  migratetypes, fallbacks and pageblock claims are exercised; __GFP_NOWARN
  is *not* set, so a machine too small for the plan shows it in its log;
- a free names a random live block by its slot in the list of live blocks
  (the slot is drawn when the plan is made, from the number of blocks the
  plan knows to be live), and the freed slot is refilled with the last
  live block (swap-remove), so no search is ever needed.

With the default ``max_live`` of 4096 the live set averages about 70k pages
(~280 MiB), so a 1 GiB machine runs the plan without failures; at most it
holds ``max_live`` order-9 blocks (8 GiB), which only a big machine could
hold, but the draw makes that practically impossible.

``run_plan(machine, plan)`` runs the operations in one tight loop and
returns ``(ops_done, seconds)`` for that loop only.  A failed allocation
counts as an operation and leaves a placeholder in its slot, whose later
free is skipped (not counted).  Afterwards, outside the timing, every block
still live is freed and the per-CPU lists drained, so the same machine can
run the plan again (as interleaved benchmark rounds do).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from pageext_core.mm.gfp import __GFP_RECLAIMABLE, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_USER

GFP_MIX = (
    (GFP_KERNEL, 40),
    (GFP_HIGHUSER_MOVABLE, 35),
    (GFP_USER, 15),
    (GFP_KERNEL | __GFP_RECLAIMABLE, 10),
)
ORDER_MIX = ((0, 50), (1, 20), (2, 13), (3, 13), (9, 4))
DEFAULT_SEED = 20141125  # the page_ext RFC series' month
DEFAULT_MAX_LIVE = 4096


@dataclass(frozen=True)
class Plan:
    """Operations as one list of ``(is_free, a, b)`` tuples.

    An allocation is ``(False, gfp_mask, order)``; a free is ``(True, slot, 0)``.
    """

    ops: list[tuple[bool, int, int]]
    seed: int
    max_live: int

    @property
    def n_ops(self) -> int:
        return len(self.ops)

    @property
    def n_allocs(self) -> int:
        return sum(1 for op in self.ops if not op[0])


def make_plan(n_ops: int, seed: int = DEFAULT_SEED, max_live: int = DEFAULT_MAX_LIVE,
              free_ratio: float = 0.5) -> Plan:
    """Build the standard workload of ``n_ops`` operations (deterministic for a seed)."""
    if n_ops < 0 or max_live < 1:
        raise ValueError("n_ops must be >= 0 and max_live >= 1")
    rng = random.Random(seed)
    gfps = [g for g, _ in GFP_MIX]
    gfp_w = [w for _, w in GFP_MIX]
    orders = [o for o, _ in ORDER_MIX]
    order_w = [w for _, w in ORDER_MIX]
    # Draw in bulk: choices() is far cheaper than one call per operation.
    gfp_draw = rng.choices(gfps, gfp_w, k=n_ops)
    order_draw = rng.choices(orders, order_w, k=n_ops)
    ops: list[tuple[bool, int, int]] = []
    live = 0
    for i in range(n_ops):
        do_free = live >= max_live or (live > 0 and rng.random() < free_ratio)
        if do_free:
            ops.append((True, rng.randrange(live), 0))
            live -= 1
        else:
            ops.append((False, gfp_draw[i], order_draw[i]))
            live += 1
    return Plan(ops, seed, max_live)


def run_plan(machine, plan: Plan) -> tuple[int, float]:
    """Run ``plan`` on ``machine``: ``(operations done, seconds of the timed loop)``.

    The machine is left with everything freed and the per-CPU lists drained.
    """
    alloc = machine.alloc_pages
    free = machine.free_pages
    live: list[tuple[int, int]] = []
    push = live.append
    pop = live.pop
    skipped = 0
    perf = time.perf_counter
    t0 = perf()
    for is_free, a, b in plan.ops:
        if is_free:
            pfn, order = live[a]
            last = pop()
            if a < len(live):
                live[a] = last
            if pfn < 0:
                skipped += 1
            else:
                free(pfn, order)
        else:
            pfn = alloc(a, b)
            push((-1 if pfn is None else pfn, b))
    seconds = perf() - t0
    for pfn, order in live:
        if pfn >= 0:
            free(pfn, order)
    machine.drain_all_pages()
    return len(plan.ops) - skipped, seconds


# The clean debug_pagealloc workload: random small allocations and frees where
# some blocks are written and read while allocated. It is both a test (a
# million operations find nothing) and a benchmark (how long they take), so
# tests/plugins/debug_pagealloc/test_debug_pagealloc_workload.py imports it.
CLEAN_ORDERS = (0,) * 12 + (1, 1, 2, 2, 3, 4, 5)


def clean_gfps() -> tuple[int, ...]:
    from pageext_core.mm.gfp import __GFP_ZERO, GFP_HIGHUSER_MOVABLE, GFP_KERNEL

    return (GFP_KERNEL, GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_KERNEL | __GFP_ZERO)


def run_clean_workload(machine, ops: int, seed: int, *, writes: bool = True,
                       max_held: int = 1500) -> tuple[int, float]:
    """``ops`` random allocations and frees (with ``writes``, 5% of blocks written and read).

    Returns (operations done, seconds of the loop); every block still held is
    freed afterwards, outside the timing.
    """
    import random
    import time

    from pageext_core.mm import PAGE_SIZE

    m = machine
    rng = random.Random(seed)
    alloc, free, write, read = m.alloc_pages, m.free_pages, m.write, m.read
    choice, rand, randrange = rng.choice, rng.random, rng.randrange
    gfps = clean_gfps()
    held: list[tuple[int, int]] = []
    done = 0
    t0 = time.perf_counter()
    for _ in range(ops):
        if held and (len(held) >= max_held or rand() < 0.5):
            j = randrange(len(held))
            held[j], held[-1] = held[-1], held[j]
            p, o = held.pop()
            free(p, o)
        else:
            o = choice(CLEAN_ORDERS)
            p = alloc(choice(gfps), o)
            if p is None:
                continue
            held.append((p, o))
            if writes and rand() < 0.05:
                write(p + (1 << o) - 1, randrange(PAGE_SIZE - 8), b"payload!")
                read(p, 0, 64)
        done += 1
    seconds = time.perf_counter() - t0
    for p, o in held:
        free(p, o)
    return done, seconds
