"""aiospawn under seccomp sandboxes that block the newer system calls.

Container runtimes and old kernels fail clone3 with ENOSYS (or, in older
Docker profiles, EPERM), and kernels before 5.3 have no pidfd_open.
tests/helpers/seccomp_exec.c, built here with the system cc, installs a
seccomp filter that fails the chosen calls and execs this Python running
tests/helpers/sandbox_script.py, which spawns, waits, signals and uses
every option, then prints one JSON report that these tests check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import PY

HELPERS = Path(__file__).parent / "helpers"
SCRIPT = HELPERS / "sandbox_script.py"


@pytest.fixture(scope="module")
def seccomp_exec(tmp_path_factory) -> str:
    """Compile seccomp_exec.c once per module and return the program's path."""
    compiler = shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler (cc) to build tests/helpers/seccomp_exec.c")
    program = tmp_path_factory.mktemp("seccomp") / "seccomp_exec"
    subprocess.run(
        [
            compiler,
            "-std=gnu11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-o",
            str(program),
            str(HELPERS / "seccomp_exec.c"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(program)


def sandboxed(seccomp_exec: str, rules: list[str], backend: str | None = None) -> dict:
    """Run the sandbox script under rules and return its report."""
    env = {key: value for key, value in os.environ.items() if key != "AIOSPAWN_BACKEND"}
    if backend is not None:
        env["AIOSPAWN_BACKEND"] = backend
    completed = subprocess.run(
        [seccomp_exec, *rules, "--", PY, str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def failed_scenarios(report: dict) -> dict[str, str]:
    return {name: outcome for name, outcome in report["scenarios"].items() if outcome != "ok"}


# -- clone3 blocked ---------------------------------------------------------------------


@pytest.mark.parametrize("error", ["ENOSYS", "EPERM"])
def test_clone3_blocked_falls_back(seccomp_exec, error):
    report = sandboxed(seccomp_exec, [f"clone3={error}"])
    assert report["backend"] == "clone"
    assert f"clone3 failed with {error}" in report["reason"]
    assert report["features"]["clone3"].startswith(error)


@pytest.mark.parametrize("error", ["ENOSYS", "EPERM"])
def test_clone3_blocked_works(seccomp_exec, error):
    report = sandboxed(seccomp_exec, [f"clone3={error}"])
    assert failed_scenarios(report) == {}


def test_clone3_blocked_forced(seccomp_exec):
    report = sandboxed(seccomp_exec, ["clone3=ENOSYS"], backend="clone3")
    assert "BackendUnavailableError" in report["capabilities_error"]
    assert "clone3 failed with ENOSYS" in report["capabilities_error"]


def test_clone3_blocked_posix_spawn(seccomp_exec):
    # glibc's posix_spawn falls back from clone3 to clone on ENOSYS.
    report = sandboxed(seccomp_exec, ["clone3=ENOSYS"], backend="posix_spawn")
    expected_failures = {"options"}  # umask cannot be applied by posix_spawn
    assert set(failed_scenarios(report)) <= expected_failures | {"credentials"}
    assert "BackendUnavailableError" in report["scenarios"]["options"]


# -- pidfd_open blocked -------------------------------------------------------------------


def test_pidfd_open_blocked_clone3(seccomp_exec):
    report = sandboxed(seccomp_exec, ["pidfd_open=ENOSYS"])
    assert report["backend"] == "clone3"
    assert report["features"]["pidfd_open"].startswith("ENOSYS")
    assert failed_scenarios(report) == {}


def test_pidfd_open_blocked_clone(seccomp_exec):
    report = sandboxed(seccomp_exec, ["pidfd_open=ENOSYS"], backend="clone")
    assert report["backend"] == "clone"
    assert failed_scenarios(report) == {}


def test_pidfd_open_blocked_posix_spawn(seccomp_exec):
    report = sandboxed(seccomp_exec, ["pidfd_open=ENOSYS"], backend="posix_spawn")
    assert "BackendUnavailableError" in report["capabilities_error"]
    assert "pidfd_open" in report["capabilities_error"]


def test_pidfd_open_blocked_spawn_error(seccomp_exec):
    report = sandboxed(seccomp_exec, ["pidfd_open=ENOSYS"], backend="posix_spawn")
    outcomes = report["scenarios"].values()
    assert all("BackendUnavailableError" in outcome and "pidfd_open" in outcome for outcome in outcomes)


def test_both_blocked_clone_works(seccomp_exec):
    report = sandboxed(seccomp_exec, ["clone3=ENOSYS", "pidfd_open=ENOSYS"])
    assert report["backend"] == "clone"
    assert failed_scenarios(report) == {}


def test_nothing_usable(seccomp_exec):
    report = sandboxed(seccomp_exec, ["clone3=ENOSYS", "clone=ENOSYS", "pidfd_open=ENOSYS"])
    assert "BackendUnavailableError" in report["capabilities_error"]
    assert "no spawn backend works" in report["capabilities_error"]


def test_helper_rejects_unknown_call(seccomp_exec):
    # The filter is installed (an unknown system call name is rejected
    # before it) and a native program runs normally under it.
    rejected = subprocess.run([seccomp_exec, "no_such_call=ENOSYS", "--", "true"], capture_output=True)
    allowed = subprocess.run([seccomp_exec, "clone3=ENOSYS", "--", "true"], capture_output=True)
    assert rejected.returncode == 2
    assert allowed.returncode == 0
