"""The documentation: the site builds without warnings, and every example runs.

Every fenced ```python block in docs/*.md and README.md is a complete
program. Each one runs for real, in a fresh interpreter in its own
session, and must exit with status 0 within BLOCK_TIMEOUT seconds, print
no ResourceWarning and leave no process of its session running. A block
that cannot run on an ordinary machine opts out with a line

    # docs: no-run <reason>

and the reason becomes the skip message. Use it only for a block that
needs something a test machine does not have.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import aiospawn

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NO_RUN_MARKER = "# docs: no-run"

# Seconds. Each test must finish within the 60-second limit of the suite.
BUILD_TIMEOUT = 50
BLOCK_TIMEOUT = 40
# Seconds that processes left in a block's session get to exit by themselves.
LEFTOVER_SETTLE = 1.0

# Public names that docs/reference.md describes in prose: mkdocstrings
# renders no useful entry for a constant without a docstring.
CONSTANTS_DESCRIBED_BY_HAND = {"PIPE", "DEVNULL", "STDOUT", "PTY", "KILL"}

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)")


@dataclass(frozen=True)
class CodeBlock:
    path: Path
    line: int  # 1-based line of the opening fence
    source: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[CodeBlock]:
    """Return the fenced code blocks of path whose info string is python or py."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = len(opening["indent"])
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body = []
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            body.append(lines[end][indent:] if lines[end][:indent].strip() == "" else lines[end])
            end += 1
        if opening["info"].lower() in ("python", "py"):
            blocks.append(CodeBlock(path, index + 1, "\n".join(body) + "\n"))
        index = end + 1
    return blocks


def documented_files() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


ALL_BLOCKS = [block for path in documented_files() for block in python_blocks(path)]


# -- the site ------------------------------------------------------------------


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip(
            "mkdocs is not installed in this interpreter; install the docs extra: pip install -e '.[docs]'"
        )
    site = tmp_path / "site"
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        check=False,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert not warnings, "mkdocs build printed warnings:\n" + "\n".join(warnings)

    diagram = (site / "how-it-works" / "index.html").read_text(encoding="utf-8")
    assert 'class="mermaid"' in diagram, "the mermaid diagram of how-it-works.md was not rendered as one"

    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    for name in aiospawn.__all__:
        if name in CONSTANTS_DESCRIBED_BY_HAND:
            assert f"aiospawn.{name}" in reference, f"aiospawn.{name} is missing from docs/reference.md"
        else:
            assert f'id="aiospawn.{name}"' in reference, (
                f"aiospawn.{name} has no generated entry in docs/reference.md; add '::: aiospawn.{name}'"
            )


# -- the examples ----------------------------------------------------------------


def test_examples_found() -> None:
    files_with_examples = {block.path.name for block in ALL_BLOCKS}
    for expected in ("index.md", "run.md", "beyond.md", "migration.md", "README.md"):
        assert expected in files_with_examples, f"no python example found in {expected}"


def _session_members(session_id: int) -> dict[int, str]:
    """Map each live (not zombie) process of the session to its name."""
    members = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            members[int(entry)] = name
    return members


def _kill_leftovers(session_id: int) -> dict[int, str]:
    """Wait briefly for the session to empty, SIGKILL each process still in it and return them."""
    deadline = time.monotonic() + LEFTOVER_SETTLE
    leftovers = _session_members(session_id)
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.05)
        leftovers = _session_members(session_id)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return leftovers


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.name for block in ALL_BLOCKS])
def test_example_runs(block: CodeBlock, tmp_path: Path) -> None:
    for line in block.source.splitlines():
        if line.strip().startswith(NO_RUN_MARKER):
            reason = line.strip()[len(NO_RUN_MARKER) :].strip(" :")
            assert reason, f"{block.name}: '{NO_RUN_MARKER}' needs a reason after it"
            pytest.skip(f"{block.name}: {reason}")

    script = tmp_path / "example.py"
    script.write_text(block.source, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-W", "always::ResourceWarning", str(script)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        # The example leads its own process group, still unreaped, so the group id is its own.
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        _kill_leftovers(process.pid)
        pytest.fail(
            f"{block.name} did not finish within {BLOCK_TIMEOUT} s\n"
            f"stdout:\n{stdout.decode(errors='replace')}\nstderr:\n{stderr.decode(errors='replace')}"
        )
    leftovers = _kill_leftovers(process.pid)
    output = f"stdout:\n{stdout.decode(errors='replace')}\nstderr:\n{stderr.decode(errors='replace')}"

    assert process.returncode == 0, f"{block.name} exited with {process.returncode}\n{output}"
    assert b"ResourceWarning" not in stderr, f"{block.name} left a resource unclosed\n{output}"
    assert not leftovers, f"{block.name} left processes running: {leftovers}\n{output}"
