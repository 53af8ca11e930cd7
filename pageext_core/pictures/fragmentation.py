"""``fragmentation.png``: how free memory broke up over the run, from the samples.

Three panels sharing the operation axis: free pages per order (stacked,
all zones), mixed pageblocks and allocation failures, and the kernel's
unusable and fragmentation indices at the pageblock order per zone.  Planted
bugs (dashed) and findings (dotted, at the operation their time falls in)
are marked on every panel.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pageext_core.pictures.samples import Sampler, zone_label


def finding_ops(sampler: Sampler, times_ns: Sequence[int]) -> np.ndarray:
    """The operation at which each time falls, interpolated between samples."""
    t = sampler.column("time_ns").astype(np.float64)
    ops = sampler.column("op").astype(np.float64)
    if not len(t):
        return np.zeros(len(times_ns))
    return np.interp(np.asarray(times_ns, np.float64), t, ops)


def render(sampler: Sampler, title: str, pageblock_order: int, planted: Sequence[dict[str, Any]] = (),
           findings: Sequence[Any] = ()) -> bytes:
    """The PNG's bytes."""
    from pageext_core.pictures import _mpl

    plt = _mpl.pyplot()
    from matplotlib.ticker import MaxNLocator

    ops = sampler.column("op")
    n_orders = sampler.nr_orders
    fig, axes = plt.subplots(3, 1, figsize=(11, 9.5), dpi=_mpl.DPI, sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.6, 1.6]})
    ax0, ax1, ax2 = axes
    per_order = np.zeros((n_orders, len(ops)), np.int64)
    for z in sampler.zones:
        for o in range(n_orders):
            per_order[o] += sampler.column(f"free_{zone_label(z)}_o{o}")
    cmap = plt.get_cmap("viridis", n_orders)
    ax0.stackplot(ops, per_order, labels=[f"order {o}" for o in range(n_orders)],
                  colors=[cmap(o) for o in range(n_orders)], linewidth=0)
    ax0.set_ylabel("free pages (buddy lists)")
    ax0.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False, reverse=True)
    ax0.set_title(title, fontsize=9, loc="left")
    ax1.plot(ops, sampler.column("mixed_pageblocks"), color="#d73027", label="mixed pageblocks")
    ax1.set_ylabel("mixed pageblocks", fontsize=8)
    ax1.set_ylim(0, max(1, int(sampler.column("mixed_pageblocks").max(initial=0))) * 1.08)  # whole numbers
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1b = ax1.twinx()
    ax1b.plot(ops, sampler.column("alloc_failures"), color="#4575b4", label="allocation failures", drawstyle="steps-post")
    ax1b.set_ylabel("allocation failures", fontsize=8)
    ax1b.set_ylim(0, max(1, int(sampler.column("alloc_failures").max(initial=0))) * 1.08)
    ax1b.yaxis.set_major_locator(MaxNLocator(integer=True))
    lines = ax1.get_lines() + ax1b.get_lines()
    ax1.legend(lines, [ln.get_label() for ln in lines], loc="upper left", bbox_to_anchor=(1.07, 1.0), fontsize=7,
               frameon=False)
    po = min(pageblock_order, n_orders - 1)
    for z in sampler.zones:
        lab = zone_label(z)
        u = sampler.column(f"unusable_{lab}_o{po}") / 1000
        e = sampler.column(f"extfrag_{lab}_o{po}").astype(np.float64) / 1000
        e[e < 0] = np.nan  # -1: the order is allocatable now; the index does not apply
        line, = ax2.plot(ops, u, label=f"unusable, {z.name}")
        ax2.plot(ops, e, linestyle="--", color=line.get_color(), label=f"extfrag, {z.name}")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel(f"index at order {po}", fontsize=8)
    ax2.set_xlabel("operation")
    ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    marks = [(int(p["op"]), p["kind"]) for p in planted if "op" in p]
    fops = finding_ops(sampler, [f.time_ns for f in findings])
    for ax in axes:
        for op, _ in marks:
            ax.axvline(op, color="#555555", linestyle="--", linewidth=0.8)
        for op in fops:
            ax.axvline(op, color="#e7298a", linestyle=":", linewidth=1.0)
    for op, kind in marks:
        ax0.annotate(f"planted: {kind}", (op, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                     va="top", ha="right", color="#555555")
    for op, f in zip(fops, findings):
        ax0.annotate(f"found: {f.kind}", (op, 0.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                     va="bottom", ha="left", color="#e7298a")
    if len(ops):
        ax2.set_xlim(0, max(int(ops[-1]), 1))
    fig.subplots_adjust(left=0.08, right=0.80, top=0.96, bottom=0.06, hspace=0.08)
    return _mpl.png_bytes(fig)
