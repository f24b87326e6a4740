"""Static checks of run()'s overloads, read by mypy and never executed.

tests/test_packaging.py runs mypy on this file, and `mypy` on its own reads
it too (pyproject.toml lists it). Each assert_type fails the check when the
text-mode parameters select another return type than the one written here.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import aiospawn
from aiospawn import CompletedProcess


async def check_bytes_by_default() -> None:
    assert_type(await aiospawn.run(["true"]), CompletedProcess[bytes])
    assert_type(await aiospawn.run(["cat"], input=b"data", capture_output=True), CompletedProcess[bytes])
    assert_type(await aiospawn.run(["true"], text=False), CompletedProcess[bytes])
    assert_type(await aiospawn.run(["true"], text=None, universal_newlines=False), CompletedProcess[bytes])


async def check_output_types() -> None:
    assert_type((await aiospawn.run(["true"], capture_output=True)).stdout, bytes)
    assert_type((await aiospawn.run(["true"], capture_output=True, text=True)).stdout, str)


async def check_text_mode() -> None:
    assert_type(await aiospawn.run(["true"], text=True), CompletedProcess[str])
    assert_type(await aiospawn.run(["cat"], input="data", text=True), CompletedProcess[str])
    assert_type(await aiospawn.run(["true"], encoding="utf-8"), CompletedProcess[str])
    assert_type(await aiospawn.run(["true"], errors="replace"), CompletedProcess[str])
    assert_type(await aiospawn.run(["true"], universal_newlines=True), CompletedProcess[str])
    assert_type(await aiospawn.run(["true"], text=False, encoding="latin-1"), CompletedProcess[str])


async def check_mode_known_at_run_time(flag: bool, encoding: str | None) -> None:
    assert_type(await aiospawn.run(["true"], text=flag), CompletedProcess[Any])
    assert_type(await aiospawn.run(["true"], encoding=encoding), CompletedProcess[Any])


async def check_result_is_a_subprocess_result() -> None:
    import subprocess

    result: subprocess.CompletedProcess[bytes] = await aiospawn.run(["true"])
    assert_type(result.returncode, int)
