"""Tables, targets, plots and the Markdown report of one benchmark run."""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from catalog import ASYNCIO, FLOOR, LEGEND, MEASURES_BY_NAME

Key = tuple[str, str, str]  # measure, variant label, row label


@dataclass
class Run:
    mode: str
    command: str
    started: str
    sizes: dict[str, Any]
    facts: dict[str, Any]
    interpreters: list[dict[str, Any]]
    rows: list[tuple[str, str, str]]  # label, method name, group ("c", "aiospawn", "peer")
    measures: list[tuple[str, list[str]]]  # measure name, variant labels
    results: dict[Key, list[dict[str, Any]]]
    errors: list[str]
    notes: list[str]

    def values(self, measure: str, variant: str, row: str, field: str) -> list[float]:
        return [sample[field] for sample in self.results.get((measure, variant, row), []) if field in sample]

    def median(self, measure: str, variant: str, row: str, field: str) -> float | None:
        values = self.values(measure, variant, row, field)
        return statistics.median(values) if values else None

    def row_for(self, method_name: str) -> str | None:
        """The label of the first row of a method (the first interpreter's)."""
        for label, method, _ in self.rows:
            if method == method_name:
                return label
        return None

    def reference(self, method_name: str, row_label: str) -> str | None:
        """Find the row of method_name run by the same interpreter as row_label."""
        tag = row_label[row_label.rfind(" (") :] if row_label.endswith(")") and " (py" in row_label else ""
        for label, method, _ in self.rows:
            if method == method_name and (label.endswith(tag) if tag else True):
                return label
        return None


# Secondary columns: field, header, how rounds are combined.
EXTRAS: dict[str, list[tuple[str, str, str]]] = {
    "true": [("cpu_us", "parent CPU µs", "median")],
    "echo": [("cpu_us", "parent CPU µs", "median")],
    "wakeup": [("p90_us", "p90 µs", "median")],
    "stall": [
        ("worst_us", "worst µs", "max"),
        ("p99_own_us", "p99 not preempted µs", "median"),
        ("worst_own_us", "worst not preempted µs", "max"),
        ("ticks", "ticks", "sum"),
        ("preempted", "preempted", "sum"),
        ("spawn_us", "µs/spawn", "median"),
    ],
    "concurrent": [("threads", "peak threads", "max"), ("fds", "peak fds", "max")],
    "inflight": [("cpu_us", "parent CPU µs/spawn", "median")],
    "big-parent": [("cpu_us", "parent CPU µs", "median")],
    "stdout": [],
}

EXPLAIN = {
    "true": "Children spawned one after the other, each awaited before the next. "
    'Lower is better; "above floor" is the difference to the C floor.',
    "echo": "As above with `/bin/echo hello`, its stdout captured through a pipe.",
    "wakeup": "The child (benches/helper.c) reads CLOCK_MONOTONIC just before it exits; the parent "
    "reads it when the awaiting code resumes. Median over the spawns of a measurement.",
    "stall": "A task waits for a 1 ms clock while another task spawns children one after the "
    "other. The clock is a helper process writing its time to a pipe every millisecond; "
    "lateness is the time from the write to the task's wake-up (the loops' own timers "
    "round to whole milliseconds, so they cannot show stalls this short). p99 is the median "
    "over rounds of each round's 99th percentile; worst is the maximum over all rounds. The "
    '"not preempted" columns keep only the ticks during which the loop\'s thread had no '
    "involuntary context switch (getrusage), that is, leave out lateness caused by waiting "
    'for a CPU on a busy machine; "preempted" counts the ticks left out.',
    "concurrent": "All children started at once (asyncio.gather, a trio nursery, or a loop "
    "of Popen/posix_spawn calls) and awaited; peak threads and open fds of the "
    "measuring process, sampled every 10 ms from /proc/self.",
    "inflight": "/bin/true spawned by a fixed number of concurrent lanes, each awaiting its "
    "child before spawning the next.",
    "big-parent": "Sequential /bin/true from a parent that first maps and writes that much private "
    "memory (4 KiB pages), against the same parent without it.",
    "stdout": "A child (benches/helper.c) writes zeros to its stdout pipe in 256 KiB writes; the "
    "parent reads to EOF. Streamed: read in chunks of up to 256 KiB and dropped "
    "(stdout.read, receive_some, os.read; aiospawn run cannot stream and is left out). "
    "Collected: the whole output kept in memory, as run()/communicate()/capture do; the C "
    "floor then reads into one growing buffer. Collecting is bound by page faults on fresh "
    "memory, so it is measured on less data.",
}


def fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "–"
    if digits is None:
        if float(value).is_integer() and abs(value) < 1e7:
            return f"{int(value):,}"
        magnitude = abs(value)
        if magnitude >= 100:
            digits = 0
        elif magnitude >= 10:
            digits = 1
        else:
            digits = 2
    return f"{value:,.{digits}f}"


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "–"
    return f"×{value / reference:.2f}"


def combine(values: list[float], how: str) -> float | None:
    if not values:
        return None
    if how == "max":
        return max(values)
    if how == "sum":
        return sum(values)
    return statistics.median(values)


def markdown_table(header: list[str], rows: list[list[str]], numbers: bool = True) -> str:
    """Format a Markdown table. With numbers, every column but the first is right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for index, row in enumerate([header, *rows]):
        cells = [
            cell.rjust(widths[i]) if i and numbers else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append(
                "|"
                + "|".join("-" * (w + 1) + (":" if i and numbers else "-") for i, w in enumerate(widths))
                + "|"
            )
    return "\n".join(lines)


def variant_table(run: Run, measure_name: str, variant: str) -> str:
    measure = MEASURES_BY_NAME[measure_name]
    metric = measure.metric
    labels = [label for label, _, _ in run.rows if (measure_name, variant, label) in run.results]
    if not labels:
        return ""
    floor = run.median(measure_name, variant, FLOOR, metric)
    with_difference = measure_name in ("true", "echo", "big-parent") and floor is not None
    header = ["method", f"{measure.unit} (median)", "min–max"]
    if with_difference:
        header.append("above floor")
    if floor is not None:
        header.append("vs C floor")
    header.append("vs asyncio")
    extras = EXTRAS.get(measure_name, [])
    header += [title for _, title, _ in extras]
    rows = []
    for label in labels:
        values = run.values(measure_name, variant, label, metric)
        median = statistics.median(values)
        row = [label, fmt(median), f"{fmt(min(values))}–{fmt(max(values))}"]
        if with_difference:
            row.append(f"{median - floor:+,.0f}")
        if floor is not None:
            row.append(ratio(median, floor))
        reference = run.reference(ASYNCIO, label)
        row.append(ratio(median, run.median(measure_name, variant, reference, metric)) if reference else "–")
        for field, _, how in extras:
            row.append(fmt(combine(run.values(measure_name, variant, label, field), how)))
        rows.append(row)
    return markdown_table(header, rows)


def ratio_table(run: Run, measure_name: str, variants: list[str]) -> str:
    """For big-parent: each row's big-parent time over its small-parent time."""
    small, big = variants
    metric = MEASURES_BY_NAME[measure_name].metric
    rows = []
    for label, _, _ in run.rows:
        small_value = run.median(measure_name, small, label, metric)
        big_value = run.median(measure_name, big, label, metric)
        if small_value is None or big_value is None:
            continue
        rows.append([label, fmt(small_value), fmt(big_value), ratio(big_value, small_value)])
    if not rows:
        return ""
    return markdown_table(["method", f"{small} µs", f"{big} µs", "big / small"], rows)


def main_table(run: Run) -> str:
    """Format the table that scripts/bench prints: true and echo side by side."""
    workloads = [name for name in ("true", "echo") if any(key[0] == name for key in run.results)]
    if not workloads:
        return ""
    header = ["method"]
    for workload in workloads:
        header += [f"{workload} us/spawn", "above floor", "parent CPU us"]
    rows = []
    for label, _, _ in run.rows:
        if not any((workload, "", label) in run.results for workload in workloads):
            continue
        row = [label]
        for workload in workloads:
            wall = run.median(workload, "", label, "wall_us")
            floor = run.median(workload, "", FLOOR, "wall_us")
            cpu = run.median(workload, "", label, "cpu_us")
            row += [
                fmt(wall, 0),
                f"{wall - floor:+.0f}" if wall is not None and floor is not None else "–",
                fmt(cpu, 0),
            ]
        rows.append(row)
    facts = run.facts
    pythons = ", ".join(f"Python {p['python']}" for p in run.interpreters)
    sizes = run.sizes
    intro = (
        f"{pythons}, Linux {facts['kernel']}, {facts['cpus']} CPUs, load {facts['load_start'][0]:.2f}; "
        f"median of {sizes['rounds']} rounds x {sizes['count']} sequential spawns\n"
    )
    return intro + "\n" + markdown_table(header, rows) + "\n"


def section_title(measure_name: str, variant: str) -> str:
    title = MEASURES_BY_NAME[measure_name].title
    return f"{title}: {variant}" if variant else title


def all_tables(run: Run, skip_main: bool = False) -> str:
    parts = []
    for measure_name, variants in run.measures:
        if skip_main and measure_name in ("true", "echo"):
            continue
        for variant in variants:
            table = variant_table(run, measure_name, variant)
            if table:
                parts.append(f"{section_title(measure_name, variant)}\n\n{table}\n")
        if measure_name == "big-parent" and len(variants) == 2:
            table = ratio_table(run, measure_name, variants)
            if table:
                parts.append(f"Big parent against small parent\n\n{table}\n")
    return "\n".join(parts)


# -- targets ------------------------------------------------------------------------------------------


def targets(run: Run) -> list[list[str]]:
    """Compare aiospawn's design targets with this run, on the rows with the default backend."""
    run_row, exec_row = run.row_for("aiospawn run"), run.row_for("aiospawn exec")
    found = []

    def add(
        name: str, goal: str, value: float | None, limit: float, shown: str, higher: bool = False
    ) -> None:
        if value is None:
            return
        met = value >= limit if higher else value <= limit
        found.append([name, goal, shown, "met" if met else "missed"])

    def above_floor(measure: str, row: str | None) -> float | None:
        value, floor = (
            run.median(measure, "", row or "", "wall_us"),
            run.median(measure, "", FLOOR, "wall_us"),
        )
        return None if value is None or floor is None else value - floor

    def over_floor(measure: str, variant: str, row: str | None, field: str) -> float | None:
        value, floor = (
            run.median(measure, variant, row or "", field),
            run.median(measure, variant, FLOOR, field),
        )
        return None if value is None or not floor else value / floor

    value = above_floor("true", run_row)
    add("aiospawn run /bin/true, above floor", "≤ 25 µs", value, 25, f"{fmt(value, 0)} µs")
    value = above_floor("true", exec_row)
    add("create_subprocess_exec + wait, above floor", "≤ 40 µs", value, 40, f"{fmt(value, 0)} µs")
    value = above_floor("echo", run_row)
    add("aiospawn run capturing echo, above floor", "≤ 40 µs", value, 40, f"{fmt(value, 0)} µs")
    value = over_floor("true", "", run_row, "cpu_us")
    add("parent CPU per spawn (run, /bin/true)", "≤ ×1.2 floor", value, 1.2, f"×{fmt(value, 2)}")
    value = over_floor("wakeup", "", run_row, "latency_us")
    add("exit-to-wakeup latency (run)", "≤ ×1.2 floor", value, 1.2, f"×{fmt(value, 2)}")
    for measure_name, variants in run.measures:
        if measure_name == "stall":
            for variant in variants:
                value = run.median("stall", variant, run_row or "", "p99_us")
                add(f"loop stall p99 (run, {variant})", "≤ 50 µs", value, 50, f"{fmt(value, 0)} µs")
        if measure_name == "concurrent":
            for variant in variants:
                value = over_floor("concurrent", variant, run_row, "wall_s")
                add(f"{variant} wall (run)", "≤ ×1.03 floor", value, 1.03, f"×{fmt(value, 2)}")
        if measure_name == "big-parent" and len(variants) == 2:
            small = run.median("big-parent", variants[0], run_row or "", "wall_us")
            big = run.median("big-parent", variants[1], run_row or "", "wall_us")
            value = big / small if small and big else None
            add(f"{variants[1]}: spawn time (run)", "≤ ×1.05 small", value, 1.05, f"×{fmt(value, 2)}")
        if measure_name == "stdout":
            for variant in variants:
                for row in (exec_row, run_row):
                    value = over_floor("stdout", variant, row, "mb_s")
                    add(
                        f"stdout throughput, {variant} ({row})",
                        "≥ ×0.8 C reader",
                        value,
                        0.8,
                        f"×{fmt(value, 2)}",
                        higher=True,
                    )
    return found


# -- plots ------------------------------------------------------------------------------------------------

COLOURS = {"c": "#7f7f7f", "aiospawn": "#1f77b4", "peer": "#ff7f0e"}


def plot(run: Run, measure_name: str, variants: list[str], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measure = MEASURES_BY_NAME[measure_name]
    panels = [v for v in variants if any((measure_name, v, label) in run.results for label, _, _ in run.rows)]
    if not panels:
        return False
    labels_per_panel = [
        [(label, group) for label, _, group in run.rows if (measure_name, v, label) in run.results]
        for v in panels
    ]
    height = max(2.5, 0.3 * max(len(labels) for labels in labels_per_panel) + 1.2)
    columns = min(2, len(panels))
    lines = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(6.4 * columns, height * lines), squeeze=False)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    for axis, variant, labels in zip(axes.flat, panels, labels_per_panel):
        medians, lows, highs = [], [], []
        for label, _ in labels:
            values = run.values(measure_name, variant, label, measure.metric)
            median = statistics.median(values)
            medians.append(median)
            lows.append(median - min(values))
            highs.append(max(values) - median)
        positions = range(len(labels))
        axis.barh(
            list(positions),
            medians,
            xerr=[lows, highs],
            capsize=2,
            color=[COLOURS[group] for _, group in labels],
            alpha=0.85,
        )
        axis.set_yticks(list(positions))
        axis.set_yticklabels([label for label, _ in labels], fontsize=8)
        axis.invert_yaxis()
        floor = run.median(measure_name, variant, FLOOR, measure.metric)
        if floor is not None:
            axis.axvline(floor, color="black", linestyle="--", linewidth=0.8)
        better = "higher is better" if measure.higher_is_better else "lower is better"
        axis.set_xlabel(f"{measure.unit}, median and min–max of rounds ({better})", fontsize=8)
        axis.set_title(section_title(measure_name, variant), fontsize=9)
        axis.tick_params(axis="x", labelsize=8)
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


# -- the report file ------------------------------------------------------------------------------------------


def machine_section(run: Run) -> str:
    facts = run.facts
    load_start = " ".join(f"{value:.2f}" for value in facts["load_start"])
    load_end = " ".join(f"{value:.2f}" for value in facts["load_end"])
    rows = [
        ["kernel", f"Linux {facts['kernel']} {facts['machine']}"],
        ["CPU", f"{facts.get('cpu', 'unknown')}, {facts['cpus']} CPUs"],
        ["memory", f"{facts.get('memory_gib', '?')} GiB, transparent huge pages: {facts['thp']}"],
        ["C compiler", facts["compiler"]],
        ["aiospawn commit", facts["commit"]],
        ["load average (1, 5, 15 min)", f"start {load_start}, end {load_end}"],
        ["duration", f"{facts['duration_s'] / 60:.1f} min"],
    ]
    for interpreter in run.interpreters:
        modules = ", ".join(f"{name} {version}" for name, version in sorted(interpreter["modules"].items()))
        name = f"Python {interpreter['python']}"
        rows.append(
            [
                name,
                f"{interpreter['executable']}; {modules}; "
                f"aiospawn backend: {interpreter.get('aiospawn_backend', '–')}",
            ]
        )
    return markdown_table(["fact", "value"], rows, numbers=False)


def legend() -> str:
    return "\n".join(f"- **{name}**: {text}" for name, text in LEGEND.items())


def markdown(run: Run, plots: dict[str, str]) -> str:
    date, host = run.started[:10], run.facts.get("host", "")
    parts = [
        f"# Spawn benchmark, {date}{', ' + host if host else ''}\n",
        f"`{run.command}` (mode {run.mode}), started {run.started}. Each figure is the median over "
        f"rounds, each round a fresh process per row, rows interleaved; the range is the min–max "
        f"over rounds. Compare rows of this run only: the machine is shared and noisy.\n",
        "## Machine\n",
        machine_section(run) + "\n",
    ]
    found = targets(run)
    if found:
        parts += ["## Design targets\n", markdown_table(["target", "goal", "measured", ""], found) + "\n"]
    parts.append("## Results\n")
    for measure_name, variants in run.measures:
        parts.append(f"### {MEASURES_BY_NAME[measure_name].title}\n")
        parts.append(EXPLAIN[measure_name] + "\n")
        for variant in variants:
            table = variant_table(run, measure_name, variant)
            if not table:
                continue
            if variant:
                parts.append(f"#### {variant}\n")
            parts.append(table + "\n")
        if measure_name == "big-parent" and len(variants) == 2:
            table = ratio_table(run, measure_name, variants)
            if table:
                parts.append("#### Big parent against small parent\n")
                parts.append(table + "\n")
        if measure_name in plots:
            parts.append(f"![{MEASURES_BY_NAME[measure_name].title}]({plots[measure_name]})\n")
    parts += ["## Rows\n", legend() + "\n"]
    sizes = ", ".join(f"{name} {value}" for name, value in run.sizes.items() if name not in ("measures",))
    parts += ["## Sizes\n", sizes + "\n"]
    if run.notes or run.errors:
        parts.append("## Notes\n")
        parts += [f"- {note}" for note in run.notes]
        parts += [f"- failed: {error}" for error in run.errors]
        parts.append("")
    return "\n".join(parts)


def load(path: Path) -> Run:
    """Read back a run from the JSON file that write() stored beside its report."""
    data = json.loads(path.read_text())
    results = {
        (entry["measure"], entry["variant"], entry["row"]): entry["samples"] for entry in data.pop("results")
    }
    data["rows"] = [tuple(row) for row in data["rows"]]
    data["measures"] = [(name, list(variants)) for name, variants in data["measures"]]
    return Run(results=results, **data)


def write(run: Run, stem: Path, plots: bool = True) -> list[Path]:
    """Write stem.md, stem.json and, with matplotlib, stem/<measure>.png."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    images: dict[str, str] = {}
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "matplotlib is not installed: no plots were drawn (pip install matplotlib)", file=sys.stderr
            )
        else:
            stem.mkdir(exist_ok=True)
            for measure_name, variants in run.measures:
                path = stem / f"{measure_name}.png"
                if plot(run, measure_name, variants, path):
                    images[measure_name] = f"{stem.name}/{path.name}"
                    written.append(path)
    data = asdict(run)
    data["results"] = [
        {"measure": m, "variant": v, "row": r, "samples": samples}
        for (m, v, r), samples in run.results.items()
    ]
    json_path = stem.parent / f"{stem.name}.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    md_path = stem.parent / f"{stem.name}.md"
    md_path.write_text(markdown(run, images))
    return [md_path, json_path, *written]
