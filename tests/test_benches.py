"""The benchmark harness still runs end to end: benches/compare.py --smoke.

The smoke mode takes every measure once with tiny sizes, on the main rows,
so a change to aiospawn or to the harness that breaks a measure fails here
instead of in the next full benchmark. The harness leaves out the rows
whose optional module (trio, uvloop) is missing and draws no plots without
matplotlib, so the checks below follow what is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPARE = ROOT / "benches" / "compare.py"
SMOKE_SECONDS = 50
MEASURES = ("true", "echo", "wakeup", "stall", "concurrent", "inflight", "big-parent", "stdout")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_smoke(out_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the harness in a session of its own, so a hang can be ended whole."""
    process = subprocess.Popen(
        [sys.executable, str(COMPARE), "--smoke", "--out", str(out_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=SMOKE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the smoke benchmark took longer than {SMOKE_SECONDS} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_smoke_run_writes_a_report(tmp_path: Path) -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (cc or gcc) on PATH: the harness builds benches/floor.c with it")

    result = run_smoke(tmp_path)
    assert result.returncode == 0, f"compare.py --smoke failed:\n{result.stderr[-3000:]}"

    # The main table on stdout, as scripts/bench prints it.
    assert re.search(r"^\| C floor +\|", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^\| aiospawn run +\|", result.stdout, re.MULTILINE), result.stdout

    reports = list(tmp_path.glob("*-smoke.md"))
    assert len(reports) == 1, sorted(path.name for path in tmp_path.iterdir())
    report = reports[0].read_text()
    assert "## Machine" in report
    assert "## Design targets" in report
    header = re.search(r"^\| method +\| µs/spawn \(median\) .*\|\n\|[-|:]+\|$", report, re.MULTILINE)
    assert header, "the report has no results table"
    for row in ("C floor", "aiospawn run", "aiospawn exec", "asyncio", "subprocess", "os.posix_spawn"):
        assert re.search(rf"^\| {re.escape(row)} +\| +[\d,.]+ \|", report, re.MULTILINE), row

    for optional, row in (("uvloop", "aiospawn run, uvloop"), ("trio", "trio")):
        if installed(optional):
            assert re.search(rf"^\| {re.escape(row)} +\|", report, re.MULTILINE), row
        else:
            assert f"{optional} not installed" in report

    data = json.loads(reports[0].with_name(reports[0].stem + ".json").read_text())
    assert {entry["measure"] for entry in data["results"]} == set(MEASURES)
    assert data["errors"] == []

    plots = reports[0].with_name(reports[0].stem)
    if installed("matplotlib"):
        assert sorted(path.stem for path in plots.glob("*.png")) == sorted(MEASURES)
        assert f"]({plots.name}/true.png)" in report
    else:
        assert "matplotlib is not installed" in result.stderr
        assert not plots.exists()
