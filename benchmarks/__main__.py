"""Run every benchmark module and print a table (or JSON with --json)."""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import traceback
from pathlib import Path

import benchmarks
from benchmarks._harness import Result


def discover() -> list[str]:
    here = Path(benchmarks.__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("names", nargs="*", help="benchmark modules to run (default: all), e.g. mm or bench_mm")
    ap.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a measurement")
    args = ap.parse_args(argv)
    wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.names}
    out: dict[str, list[dict]] = {}
    failed: list[str] = []
    for name in discover():
        if wanted and name not in wanted:
            continue
        if not args.json:
            print(f"== {name}", flush=True)
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
            results: list[Result] = mod.run(quick=args.quick)
        except Exception:  # one broken module must not lose the others' figures
            failed.append(name)
            out[name] = [{"name": "benchmark failed", "error": traceback.format_exc()}]
            print(f"benchmark {name} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            continue
        out[name] = [r.as_dict() for r in results]
        if not args.json:
            for r in results:
                mark = "" if r.ok is None else ("  ok" if r.ok else "  MISSED")
                target = f"  (target {r.target})" if r.target else ""
                print(f"  {r.name:58s} {r.value:14.4g} {r.unit}{target}{mark}", flush=True)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
