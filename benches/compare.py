"""Side-by-side spawn benchmark: aiospawn against asyncio, uvloop, trio,
anyio, subprocess, os.posix_spawn and C loops, measured in the same run.

Usage: python benches/compare.py [--quick | --full | --smoke] [--only NAME[,NAME]]
                                 [--python X.Y ...] [--rounds R] [--count N] [--out DIR]

Modes:
  (none)    sequential /bin/true and captured echo, main rows, 7 rounds of
            200 spawns: about a minute and a quarter. Prints the main table.
  --quick   the same with 3 rounds of 100 spawns: about 30 seconds.
  --full    every measure and every row (backends forced one by one, a
            4 GiB parent, 500 and 2,000 concurrent children, 1 GiB of
            stdout): 15 to 20 minutes.
  --smoke   every measure once with tiny sizes, main rows: checks that the
            benchmark still works (tests/test_benches.py runs it).

Measures (--only): true, echo, wakeup, stall, concurrent, inflight,
big-parent, stdout. With --only and no mode, the main rows are measured
with the full run's sizes.

Each measurement runs in a fresh process. Rounds are interleaved: every
row is measured once per round, in the same order (A B C ... A B C ...),
so that drift on a shared, noisy machine hits every row alike. Tables show
the median over rounds with the min-max range, ratios to the C floor and
to asyncio. The report (Markdown, raw JSON and PNG plots when matplotlib
is installed) is written to benches/results/<date>-<host>.md for --full,
<date>-<host>-<mode>.md otherwise, or under --out DIR.

--python X.Y (repeatable) runs the Python rows under that interpreter, in
the virtual environment .venv/pyX.Y that scripts/lib.sh prepares (found
and created the way scripts/bench does it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "build"
sys.path.insert(0, str(HERE))

from catalog import ASYNCIO, FLOOR, MEASURES, MEASURES_BY_NAME, METHODS, Measure, Method  # noqa: E402
import report  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    """How much of everything a mode measures."""

    mode: str
    measures: tuple[str, ...]
    all_methods: bool
    rounds: int = 5
    heavy_rounds: int = 3
    count: int = 400
    wakeup_count: int = 300
    stall_true: int = 600
    stall_python: int = 20
    ballast_mib: int = 4096
    big_count: int = 100
    concurrent: tuple[int, ...] = (500, 2000)
    sleep: str = "0.5"
    inflight_count: int = 1000
    inflight: int = 16
    stdout_bytes: int = GIB
    collect_bytes: int = 256 * MIB
    time_limit: float = 15.0
    """Seconds after which a measurement starts no more children."""
    big_time_limit: float = 5.0
    """The same for sequential spawns from the big parent (fork is slow there)."""


ALL_MEASURES = tuple(measure.name for measure in MEASURES)
MODES = {
    "default": Sizes("default", ("true", "echo"), False, rounds=7, count=200),
    "quick": Sizes("quick", ("true", "echo"), False, rounds=3, count=100),
    "full": Sizes("full", ALL_MEASURES, True),
    "smoke": Sizes(
        "smoke",
        ALL_MEASURES,
        False,
        rounds=1,
        heavy_rounds=1,
        count=5,
        wakeup_count=5,
        stall_true=10,
        stall_python=2,
        ballast_mib=32,
        big_count=5,
        concurrent=(10,),
        sleep="0.05",
        inflight_count=16,
        inflight=4,
        stdout_bytes=4 * MIB,
        collect_bytes=MIB,
        time_limit=5.0,
    ),
}


@dataclass(frozen=True)
class Variant:
    """One configuration of a measure: a column group in its table."""

    label: str
    params: dict[str, Any] = field(default_factory=dict)
    heavy: bool = False
    """True when one measurement takes seconds (a big parent), so it gets the heavy rounds."""
    main_only: bool = False
    """Only the main rows (not the forced backends) take part."""
    excluded_apis: frozenset[str] = frozenset()
    """Rows of these APIs do not take part (aiospawn.run cannot stream)."""


def size_text(size: int) -> str:
    return f"{size / GIB:g} GiB" if size >= GIB else f"{size / MIB:g} MiB"


def variants(measure: str, sizes: Sizes) -> list[Variant]:
    ballast = size_text(sizes.ballast_mib * MIB)
    if measure in ("true", "echo"):
        return [Variant("", {"count": sizes.count})]
    if measure == "wakeup":
        return [Variant("", {"count": sizes.wakeup_count})]
    if measure == "stall":
        return [
            Variant("/bin/true", {"child": "true", "count": sizes.stall_true}),
            Variant("python -c pass", {"child": "python", "count": sizes.stall_python}, main_only=True),
            Variant(
                f"/bin/true, {ballast} parent",
                {"child": "true", "count": sizes.stall_true, "ballast_mib": sizes.ballast_mib},
                heavy=True,
                main_only=True,
            ),
        ]
    if measure == "concurrent":
        return [
            Variant(f"{count} × sleep {sizes.sleep}", {"count": count, "sleep": sizes.sleep})
            for count in sizes.concurrent
        ]
    if measure == "inflight":
        return [
            Variant(
                f"{sizes.inflight} in flight", {"count": sizes.inflight_count, "inflight": sizes.inflight}
            )
        ]
    if measure == "big-parent":
        return [
            Variant("small parent", {"count": sizes.big_count}),
            Variant(
                f"{ballast} parent",
                {
                    "count": sizes.big_count,
                    "ballast_mib": sizes.ballast_mib,
                    "time_limit": sizes.big_time_limit,
                },
                heavy=True,
            ),
        ]
    if measure == "stdout":
        return [
            Variant(
                f"{size_text(sizes.stdout_bytes)} streamed",
                {"bytes": sizes.stdout_bytes},
                excluded_apis=frozenset({"aiospawn.run"}),
            ),
            Variant(
                f"{size_text(sizes.collect_bytes)} collected in memory",
                {"bytes": sizes.collect_bytes, "collect": True},
            ),
        ]
    raise ValueError(measure)


# -- building the C programs ------------------------------------------------------------


def build(name: str, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile benches/NAME.c with the system C compiler unless up to date."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("no C compiler found (cc or gcc): install gcc, which builds benches/floor.c")
    BUILD.mkdir(exist_ok=True)
    binary = BUILD / name
    source = HERE / f"{name}.c"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    flags = ["-O2", "-Wall", "-Wextra", "-Werror"]
    temporary = BUILD / f"{name}.{os.getpid()}.tmp"  # concurrent runs each build their own
    for attempt in (list(extra_flags), []):
        result = subprocess.run(
            [compiler, *flags, *attempt, "-o", str(temporary), str(source)], capture_output=True, text=True
        )
        if result.returncode == 0:
            temporary.replace(binary)
            return binary
    temporary.unlink(missing_ok=True)
    raise SystemExit(f"compiling {source} failed:\n{result.stderr}")


def compiler_version() -> str:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return "none"
    output = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    return output.splitlines()[0] if output else compiler


# -- interpreters -------------------------------------------------------------------------


@dataclass(frozen=True)
class Interpreter:
    tag: str
    """Suffix of its rows' labels; empty for the only interpreter."""
    executable: str
    facts: dict[str, Any]


def venv_python(version: str) -> str:
    """Prepare .venv/pyVERSION with scripts/lib.sh, as scripts/bench does; return its python."""
    script = (
        'source "$1"; python="$(find_python "$2")" || { echo "no Python $2 was found" >&2; exit 3; }; '
        'prepare_venv "$2" "$python" bench'
    )
    result = subprocess.run(
        ["bash", "-c", script, "bash", str(ROOT / "scripts" / "lib.sh"), version],
        stdout=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"preparing .venv/py{version} for Python {version} failed: see the messages above")
    return str(Path(result.stdout.strip().splitlines()[-1]) / "bin" / "python")


def probe(executable: str) -> dict[str, Any]:
    result = subprocess.run(
        [executable, str(HERE / "worker.py"), "--probe"], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise SystemExit(f"{executable} failed to run benches/worker.py --probe:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def interpreters(versions: list[str]) -> list[Interpreter]:
    if not versions:
        return [Interpreter("", sys.executable, probe(sys.executable))]
    found = []
    for version in versions:
        executable = venv_python(version)
        found.append(Interpreter(f"py{version}", executable, probe(executable)))
    return found


# -- the rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    method: Method
    interpreter: Interpreter | None  # None for C methods

    @property
    def group(self) -> str:
        if self.method.kind == "c":
            return "c"
        return "aiospawn" if self.method.api.startswith("aiospawn") else "peer"


def select_rows(
    sizes: Sizes, pythons: list[Interpreter], name_filter: list[str]
) -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    for method in METHODS:
        if not (sizes.all_methods or method.main):
            continue
        if name_filter and not any(part.lower() in method.name.lower() for part in name_filter):
            continue
        if method.kind == "c":
            rows.append(Row(method.name, method, None))
            continue
        for interpreter in pythons:
            missing = [module for module in method.needs if module not in interpreter.facts["modules"]]
            label = f"{method.name} ({interpreter.tag})" if interpreter.tag else method.name
            if missing:
                notes.append(
                    f"{label}: left out, {', '.join(missing)} not installed for {interpreter.executable}"
                )
                continue
            rows.append(Row(label, method, interpreter))
    return rows, notes


# -- running one measurement ---------------------------------------------------------------------


@dataclass
class Context:
    floor: Path
    helper: Path
    stamp_file: str
    sizes: Sizes


def floor_command(row: Row, measure: str, params: dict[str, Any], context: Context) -> list[str]:
    time_limit = params.get("time_limit", context.sizes.time_limit)
    command = [str(context.floor), "-m", row.method.api, "-t", str(time_limit)]
    if params.get("ballast_mib"):
        command += ["-b", str(params["ballast_mib"])]
    count = str(params.get("count", 1))
    if measure in ("true", "echo"):
        return command + [measure, count]
    if measure == "big-parent":
        return command + ["true", count]
    if measure == "wakeup":
        return command + ["wakeup", count, str(context.helper), context.stamp_file]
    if measure == "concurrent":
        return command + ["concurrent", count, params["sleep"]]
    if measure == "inflight":
        return command + ["inflight", str(params["inflight"]), count]
    if measure == "stdout":
        return (
            command
            + ["stdout", str(params["bytes"]), str(context.helper)]
            + (["collect"] if params.get("collect") else [])
        )
    raise ValueError(measure)


def run_one(row: Row, measure: str, variant: Variant, context: Context) -> dict[str, Any]:
    """Run one measurement in a new process; return its JSON, or {"error": ...}."""
    env = dict(os.environ)
    env.update(row.method.env)
    if row.interpreter is None:
        command = floor_command(row, measure, variant.params, context)
    else:
        spec = {
            "method": row.method.name,
            "measure": measure,
            "helper": str(context.helper),
            "stamp_file": context.stamp_file,
            "time_limit": context.sizes.time_limit,
            "interval_us": 1000,
            **variant.params,
        }
        command = [row.interpreter.executable, str(HERE / "worker.py"), json.dumps(spec)]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=context.sizes.time_limit * 4 + 120,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        return {"error": last[:300]}
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"no JSON in output: {result.stdout[-200:]!r}"}


# -- the run ---------------------------------------------------------------------------------------


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()

    def show(self, text: str) -> None:
        self.done += 1
        elapsed = int(time.monotonic() - self.start)
        line = f"[{self.done}/{self.total} {elapsed // 60}:{elapsed % 60:02d}] {text}"
        if self.tty:
            print("\r" + line[:100].ljust(100), end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def plan(
    measures: list[Measure], rows: list[Row], sizes: Sizes
) -> list[tuple[Measure, int, int, Row, Variant]]:
    jobs = []
    for measure in measures:
        taking_part = [row for row in rows if measure.applies(row.method)]
        measure_variants = variants(measure.name, sizes)
        max_rounds = max(
            sizes.heavy_rounds if measure.heavy or v.heavy else sizes.rounds for v in measure_variants
        )
        for round_index in range(max_rounds):
            for row in taking_part:
                for variant in measure_variants:
                    rounds = sizes.heavy_rounds if measure.heavy or variant.heavy else sizes.rounds
                    if (
                        round_index < rounds
                        and (row.method.main or not variant.main_only)
                        and row.method.api not in variant.excluded_apis
                    ):
                        jobs.append((measure, round_index, rounds, row, variant))
    return jobs


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "host": socket.gethostname().split(".")[0],
        "kernel": os.uname().release,
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["memory_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
                break
    except OSError:
        pass
    try:
        facts["thp"] = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        facts["thp"] = "unknown"
    facts["compiler"] = compiler_version()
    git = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    facts["commit"] = git.stdout.strip() if git.returncode == 0 else "unknown"
    return facts


def output_stem(out_dir: Path, sizes: Sizes, only: list[str]) -> Path:
    date = datetime.date.today().isoformat()
    host = socket.gethostname().split(".")[0] or "host"
    suffix = "" if sizes.mode == "full" and not only else f"-{sizes.mode}"
    if only:
        suffix += "-only-" + "-".join(only)
    return out_dir / f"{date}-{host}{suffix}"


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true", help="3 rounds of 100 spawns, about 30 s")
    modes.add_argument("--full", action="store_true", help="every measure and row, 15-20 minutes")
    modes.add_argument("--smoke", action="store_true", help="every measure once, tiny sizes")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"measure(s) to run, comma separated: {', '.join(ALL_MEASURES)}",
    )
    parser.add_argument(
        "--rows",
        action="append",
        default=[],
        metavar="TEXT",
        help="keep only rows whose label contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="X.Y",
        help="run the Python rows under this interpreter (repeatable)",
    )
    parser.add_argument("--rounds", type=int, help="repetitions of every measurement")
    parser.add_argument("--count", type=int, help="spawns per sequential measurement")
    parser.add_argument("--ballast-mib", type=int, help="size of the big parent in MiB (default 4096)")
    parser.add_argument("--stdout-mib", type=int, help="bytes streamed by the stdout measure, in MiB")
    parser.add_argument("--out", type=Path, help="directory of the report (default benches/results)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RUN.json",
        help="measure nothing: rewrite the report and plots of a stored run beside its JSON",
    )
    options = parser.parse_args(argv)
    options.only = [name.strip() for value in options.only for name in value.split(",") if name.strip()]
    unknown = [name for name in options.only if name not in MEASURES_BY_NAME]
    if unknown:
        parser.error(f"unknown measure {', '.join(unknown)}: use {', '.join(ALL_MEASURES)}")
    for name in ("rounds", "count", "ballast_mib", "stdout_mib"):
        value = getattr(options, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return options


def sizes_for(options: argparse.Namespace) -> Sizes:
    mode = "default"
    for name in ("full", "quick", "smoke"):
        if getattr(options, name):
            mode = name
    sizes = MODES[mode]
    if options.only:
        sizes = replace(sizes, measures=tuple(options.only))
    if options.rounds is not None:
        sizes = replace(sizes, rounds=options.rounds, heavy_rounds=options.rounds)
    if options.count is not None:
        sizes = replace(sizes, count=options.count)
    if options.ballast_mib is not None:
        sizes = replace(sizes, ballast_mib=options.ballast_mib)
    if options.stdout_mib is not None:
        sizes = replace(sizes, stdout_bytes=options.stdout_mib * MIB)
    return sizes


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if options.render is not None:
        run = report.load(options.render)
        stem = options.render.parent / options.render.stem
        for path in report.write(run, stem, plots=not options.no_plots):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    sizes = sizes_for(options)
    floor = build("floor")
    helper = build("helper", ("-static",))
    pythons = interpreters(options.python)
    rows, notes = select_rows(sizes, pythons, options.rows)
    for note in notes:
        print(note, file=sys.stderr)
    measures = [MEASURES_BY_NAME[name] for name in sizes.measures]
    jobs = plan(measures, rows, sizes)
    if not jobs:
        print("nothing to measure: no row takes part in the chosen measures", file=sys.stderr)
        return 2

    facts = machine_facts()
    facts["load_start"] = os.getloadavg()
    started = datetime.datetime.now()
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    errors: list[str] = []
    progress = Progress(len(jobs))
    stamp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.NamedTemporaryFile(prefix="aiospawn-bench-", dir=stamp_dir) as stamp:
        stamp.write(b"\0" * 8)
        stamp.flush()
        context = Context(floor, helper, stamp.name, sizes)
        for measure, round_index, rounds, row, variant in jobs:
            where = f" [{variant.label}]" if variant.label else ""
            progress.show(f"{measure.name}{where} round {round_index + 1}/{rounds}: {row.label}")
            job_start = time.monotonic()
            result = run_one(row, measure.name, variant, context)
            result["job_s"] = round(time.monotonic() - job_start, 3)
            if "error" in result:
                errors.append(
                    f"{measure.name}{where}, {row.label}, round {round_index + 1}: {result['error']}"
                )
                print(f"\n  failed: {errors[-1]}", file=sys.stderr)
                continue
            results.setdefault((measure.name, variant.label, row.label), []).append(result)
    progress.finish()
    facts["load_end"] = os.getloadavg()
    facts["duration_s"] = (datetime.datetime.now() - started).total_seconds()

    run = report.Run(
        mode=sizes.mode,
        command=" ".join(["benches/compare.py", *(argv if argv is not None else sys.argv[1:])]),
        started=started.isoformat(timespec="seconds"),
        sizes=sizes.__dict__,
        facts=facts,
        interpreters=[{"tag": p.tag, **p.facts} for p in pythons],
        rows=[(row.label, row.method.name, row.group) for row in rows],
        measures=[(m.name, [v.label for v in variants(m.name, sizes)]) for m in measures],
        results=results,
        errors=errors,
        notes=notes,
    )
    main_table = report.main_table(run)
    if main_table:
        print(main_table)
    others = report.all_tables(run, skip_main=bool(main_table))
    if others:
        print(others)
    out_dir = options.out or HERE / "results"
    stem = output_stem(out_dir, sizes, options.only)
    written = report.write(run, stem, plots=not options.no_plots)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} measurement(s) failed:", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
