"""CPython's own asyncio subprocess tests, run against aiospawn.

tests/compat/run_cpython_asyncio_subprocess.py imports the running
interpreter's test.test_asyncio.test_subprocess, unmodified, puts aiospawn
in place in one of two modes and runs it with unittest. This test runs that
script in a fresh interpreter for each mode and fails on any failure
outside ALLOWED_FAILURES. It skips when the interpreter has no test
package (some distributions ship it separately). docs/compat.md has the
results per Python version.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "compat" / "run_cpython_asyncio_subprocess.py"
EXIT_NO_TEST_PACKAGE = 4
RUN_TIMEOUT = 300

# Test methods (in whichever test class) that check how asyncio is built
# rather than what a subprocess does. aiospawn, by design, replaces exactly
# those parts, so these tests cannot pass and their failures do not measure
# compatibility. docs/compat.md explains each entry.
ALLOWED_FAILURES = {
    "test_popen_error": (
        "patches subprocess.Popen to raise and expects that error, but aiospawn never calls Popen"
    ),
    "test_popen_error_with_stdin_pipe": (
        "the same Popen patch, with stdin=PIPE, and aiospawn never calls Popen"
    ),
    "test_create_subprocess_fails_with_inactive_watcher": (
        "installs a mock child watcher and expects asyncio to consult it, but aiospawn uses no child watcher"
    ),
}

SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.MULTILINE)
FAILED = re.compile(r"^FAILED (\S+)$", re.MULTILINE)
LEFT = re.compile(r"^LEFT .*$", re.MULTILINE)
CHILDREN = re.compile(
    r"^children started: (\d+) by aiospawn, (\d+) by asyncio's own transport$", re.MULTILINE
)


def run_compat(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--mode", mode, "--timeout", str(RUN_TIMEOUT - 20)],
        check=False,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(RUN_TIMEOUT + 30)
@pytest.mark.parametrize("mode", ["replace", "install"])
def test_cpython_asyncio_subprocess_suite(mode: str) -> None:
    result = run_compat(mode)
    output = result.stdout + result.stderr
    if result.returncode == EXIT_NO_TEST_PACKAGE:
        pytest.skip(result.stdout.strip() or "this interpreter has no test package")

    summary = SUMMARY.search(result.stdout)
    assert summary is not None, f"no summary line (exit status {result.returncode}):\n{output[-4000:]}"
    passed = int(summary.group(1))
    assert passed > 0, output[-4000:]

    failed = FAILED.findall(result.stdout)
    assert len(failed) == int(summary.group(2)), output[-4000:]
    unexpected = [name for name in failed if name.rsplit(".", 1)[-1] not in ALLOWED_FAILURES]
    assert not unexpected, (
        f"{len(unexpected)} CPython test(s) failed in mode {mode}: {', '.join(unexpected)}\n"
        f"Rerun one with: python {SCRIPT.relative_to(SCRIPT.parents[2])} --mode {mode} --verbose -k NAME\n"
        + output[-6000:]
    )
    # Only allow-listed failures are left, and the exit status is 1 exactly when there are some.
    assert result.returncode == (1 if failed else 0), output[-4000:]

    left = LEFT.findall(result.stdout)
    assert not left, "children outlived their test:\n" + "\n".join(left)

    children = CHILDREN.search(result.stdout)
    assert children is not None, output[-4000:]
    assert int(children.group(1)) > 0, "aiospawn started no child: the mode was not applied"
    if mode == "install":
        # Every loop the tests made had aiospawn installed: asyncio's own
        # transport must not have started a single child.
        assert int(children.group(2)) == 0, output[-4000:]
