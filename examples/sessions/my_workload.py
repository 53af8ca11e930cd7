"""An example workload function for function_workload.toml.

A ring buffer of order-1 blocks, refilled round by round; the last round is
left allocated so page_owner_leaks has something to show.  Stacks are the
Python stack of this file (page_owner captures it when no frames are given).
"""
from pageext_core.mm.gfp import GFP_KERNEL


def ring_buffer(ctx):
    m = ctx.machine
    slots = [None] * ctx.params.get("slots", 64)
    m.set_task(4242, 4242, "ringbuf")
    for r in range(ctx.params.get("rounds", 100)):
        for i in range(len(slots)):
            if slots[i] is not None:
                m.free_pages(slots[i], 1)
            slots[i] = m.alloc_pages(GFP_KERNEL, 1)
            m.write(slots[i], ctx.rng.randrange(4096), b"payload")
            m.advance(1000)
        ctx.progress(r)
    return {"slots": len(slots), "live": sum(s is not None for s in slots)}
