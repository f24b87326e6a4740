"""Routing a loop's own subprocess_exec and subprocess_shell through aiospawn."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from ._process import subprocess_exec, subprocess_shell

_MARK = "_aiospawn_installed"


def install(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Make loop.subprocess_exec and loop.subprocess_shell use aiospawn.

    Every caller of those methods then gets aiospawn children, including
    asyncio.create_subprocess_exec and third-party code. Without an
    argument, the running loop is used. Works on asyncio's loops and on
    uvloop. Idempotent; undo with uninstall(loop).
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    if getattr(loop, _MARK, False):
        return
    try:
        loop.subprocess_exec = functools.partial(subprocess_exec, loop)  # type: ignore[method-assign]
        loop.subprocess_shell = functools.partial(subprocess_shell, loop)  # type: ignore[method-assign]
        setattr(loop, _MARK, True)
    except AttributeError:
        raise TypeError(
            f"cannot install aiospawn on {type(loop).__name__}: its instances do not accept "
            "attributes; call aiospawn.create_subprocess_exec directly instead"
        ) from None


def uninstall(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Restore the loop's own subprocess_exec and subprocess_shell."""
    if loop is None:
        loop = asyncio.get_running_loop()
    if not getattr(loop, _MARK, False):
        return
    for name in ("subprocess_exec", "subprocess_shell", _MARK):
        try:
            delattr(loop, name)
        except AttributeError:
            pass


def is_installed(loop: asyncio.AbstractEventLoop) -> bool:
    """Return whether install() is in effect on loop."""
    return bool(getattr(loop, _MARK, False))


__all__ = ["install", "uninstall", "is_installed", "Any"]
