"""Run every benchmark (``benchmarks/bench_*.py``) in turn and print their output.

This is the README's benchmark command::

    python benchmarks/run.py            # full runs (several minutes each)
    python benchmarks/run.py --quick    # a few seconds each: a smoke test
    python benchmarks/run.py --only loop,sway

Each script runs in its own interpreter (the same one that runs this file),
so one benchmark's threads, GL context or GIL settings cannot disturb the next.
Exits non-zero if any benchmark failed, after running the others.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def find_benchmarks(only: list[str] | None = None) -> list[Path]:
    """The ``bench_*.py`` scripts next to this file, sorted; ``only`` filters by topic."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        wanted = {name.strip() for name in only if name.strip()}
        known = {p.stem.removeprefix("bench_") for p in scripts}
        unknown = sorted(wanted - known)
        if unknown:
            raise SystemExit(
                f"--only: unknown benchmark(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        scripts = [p for p in scripts if p.stem.removeprefix("bench_") in wanted]
    return scripts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every vrbalance benchmark in turn.")
    parser.add_argument("--quick", action="store_true", help="pass --quick to each benchmark")
    parser.add_argument(
        "--only", default=None, help="comma-separated topics, e.g. loop,sway (bench_<topic>.py)"
    )
    args = parser.parse_args(argv)
    scripts = find_benchmarks(args.only.split(",") if args.only else None)
    failed: list[str] = []
    for script in scripts:
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"\n<!-- {script.name} -->\n", flush=True)
        t0 = time.perf_counter()
        result = subprocess.run(cmd, cwd=HERE.parent, check=False)
        elapsed = time.perf_counter() - t0
        if result.returncode != 0:
            failed.append(script.name)
            print(f"\n**{script.name} failed with exit status {result.returncode}**", flush=True)
        print(f"\n<!-- {script.name}: {elapsed:.1f} s -->", flush=True)
    if failed:
        print(f"\nFailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
