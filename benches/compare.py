"""Side-by-side spawn benchmark: aiospawn against asyncio, uvloop,
subprocess and the C floor, measured in the same run.

Usage: python benches/compare.py [--rounds R] [--count N] [--quick]

Each round runs every method once per workload, in a fresh process, in
an interleaved order (A B C ... A B C ...) so that drift of a shared,
noisy machine hits every method alike. The table shows the median over
rounds of microseconds per spawn and the difference to the C floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
WORKLOADS = {"true": "/bin/true", "echo": "echo hello, stdout captured"}
METHODS = ["C floor", "aiospawn", "aiospawn+uvloop", "aiospawn exec", "asyncio", "asyncio+uvloop", "subprocess"]


def build_floor() -> Path:
    """Compile floor.c with the system C compiler; return the binary."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("no C compiler found (cc or gcc): install gcc to measure the C floor")
    BUILD.mkdir(exist_ok=True)
    binary = BUILD / "floor"
    source = HERE / "floor.c"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        subprocess.run([compiler, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(source)], check=True)
    return binary


def available_methods() -> list[str]:
    methods = list(METHODS)
    try:
        import uvloop  # noqa: F401
    except ImportError:
        print("uvloop is not installed: skipping the uvloop columns", file=sys.stderr)
        methods = [m for m in methods if "uvloop" not in m]
    return methods


def measure(method: str, workload: str, count: int, floor: Path) -> dict[str, float]:
    if method == "C floor":
        output = subprocess.run([str(floor), workload, str(count)], check=True, capture_output=True, text=True)
        wall, cpu = (float(value) for value in output.stdout.split())
        return {"wall_us": wall, "cpu_us": cpu}
    output = subprocess.run(
        [sys.executable, str(HERE / "worker.py"), method, workload, str(count)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="repetitions of every measurement (default 5)")
    parser.add_argument("--count", type=int, default=400, help="spawns per measurement (default 400)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 200 spawns, for a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.rounds, options.count = 3, 200
    if options.rounds < 1 or options.count < 1:
        parser.error("--rounds and --count must be at least 1")

    floor = build_floor()
    methods = available_methods()
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    total = options.rounds * len(WORKLOADS) * len(methods)
    done = 0
    for round_index in range(options.rounds):
        for workload in WORKLOADS:
            for method in methods:
                done += 1
                print(f"\r[{done}/{total}] round {round_index + 1}: {method} {workload}".ljust(60),
                      end="", file=sys.stderr, flush=True)
                samples.setdefault((method, workload), []).append(measure(method, workload, options.count, floor))
    print(file=sys.stderr)

    print(f"Python {platform.python_version()}, Linux {platform.release()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"median of {options.rounds} rounds x {options.count} sequential spawns\n")
    header = ["method"]
    for workload in WORKLOADS:
        header += [f"{workload} us/spawn", "above floor", "parent CPU us"]
    rows = [header]
    for method in methods:
        row = [method]
        for workload in WORKLOADS:
            wall = statistics.median(s["wall_us"] for s in samples[(method, workload)])
            cpu = statistics.median(s["cpu_us"] for s in samples[(method, workload)])
            floor_wall = statistics.median(s["wall_us"] for s in samples[("C floor", workload)])
            row += [f"{wall:.0f}", f"{wall - floor_wall:+.0f}", f"{cpu:.0f}"]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                                for i, cell in enumerate(row)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\nWorkloads: " + "; ".join(f"{name} = {text}" for name, text in WORKLOADS.items()))
    print("Methods: aiospawn = aiospawn.run; aiospawn exec = aiospawn.create_subprocess_exec "
          "+ wait()/communicate(); asyncio = asyncio.create_subprocess_exec + wait()/communicate(); "
          "subprocess = subprocess.run; C floor = benches/floor.c")


if __name__ == "__main__":
    main()
