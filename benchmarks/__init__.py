"""pageext benchmarks: speed and memory targets, measured side by side in one run.

Run with ``make bench`` (or ``python -m benchmarks``); ``--json`` prints
machine-readable results, ``--quick`` uses small sizes (for smoke tests).
Each ``bench_*.py`` module exposes ``run(quick: bool) -> list[Result]``.
"""
