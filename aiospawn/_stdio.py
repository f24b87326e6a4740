"""Resolving stdin, stdout and stderr options into fds for the child.

Accepts what subprocess accepts: None (inherit), PIPE, DEVNULL, STDOUT
(stderr only), an fd, or an object with fileno(), and PTY: a
pseudo-terminal shared by every stream that asks for one, which becomes
the child's controlling terminal. Pipes are created close-on-exec; the
parent's ends are non-blocking unless the caller wants blocking ones. Whoever creates a
Stdio owns every fd in it until close_child_ends() and close_parent_ends()
have run, including on error paths.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from typing import Any

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL

_NAMES = ("stdin", "stdout", "stderr")


class _PseudoTerminal:
    """The type of aiospawn.PTY."""

    _instance: _PseudoTerminal | None = None

    def __new__(cls) -> _PseudoTerminal:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "aiospawn.PTY"


PTY = _PseudoTerminal()


def pty_index(stdin: Any, stdout: Any, stderr: Any) -> int | None:
    """Return the first stdio fd that is aiospawn.PTY, or None."""
    for index, option in enumerate((stdin, stdout, stderr)):
        if option is PTY:
            return index
    return None


class Stdio:
    """The three child fds of one spawn and the parent's ends of its pipes."""

    __slots__ = (
        "child_fds",
        "parent_fds",
        "pty_fd",
        "_child_owned",
        "_pipesize",
        "_blocking_parent",
        "_pty_master",
        "_pty_slave",
        "_pty_size",
    )

    def __init__(
        self,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        pipesize: int = -1,
        blocking_parent: bool = False,
        pty_size: tuple[int, int] | None = None,
    ) -> None:
        if isinstance(pipesize, bool) or not isinstance(pipesize, int):
            raise TypeError(f"pipesize must be an int number of bytes, not {type(pipesize).__name__}")
        if pipesize >= 1 << 31:
            raise ValueError(
                f"pipesize={pipesize} is beyond what F_SETPIPE_SZ takes; "
                "pass at most /proc/sys/fs/pipe-max-size bytes"
            )
        if pty_size is not None:
            if PTY not in (stdin, stdout, stderr):
                raise ValueError("pty_size is given but no stream is aiospawn.PTY; pass stdout=aiospawn.PTY")
            if (
                not isinstance(pty_size, tuple)
                or len(pty_size) != 2
                or not all(isinstance(v, int) and 0 < v < 65536 for v in pty_size)
            ):
                raise ValueError(
                    f"pty_size must be (rows, columns), two ints from 1 to 65535, not {pty_size!r}"
                )
        self._pipesize = pipesize
        self._blocking_parent = blocking_parent
        self._pty_size = pty_size
        self._pty_master = -1
        # The child fd (0, 1 or 2) that becomes its controlling terminal.
        self.pty_fd: int | None = None
        self.child_fds = [-1, -1, -1]
        # Parent ends of PIPEs: stdin's write end, stdout's and stderr's read ends.
        self.parent_fds: list[int | None] = [None, None, None]
        # fds opened here for the child only, closed once it has them.
        self._child_owned: list[int] = []
        try:
            for index, option in enumerate((stdin, stdout, stderr)):
                self._resolve(index, option)
        except BaseException:
            self.close_child_ends()
            self.close_parent_ends()
            raise

    def _resolve(self, index: int, option: Any) -> None:
        name = _NAMES[index]
        if option is None:
            return
        if option is PTY:
            self._attach_pty(index)
            return
        if option == PIPE and isinstance(option, int):
            if self._blocking_parent:
                read_end, write_end = os.pipe()
            else:
                # Both ends start non-blocking; the child's is made blocking
                # below, one fcntl instead of two for the parent's.
                read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            if index == 0:
                child_end, parent_end = read_end, write_end
            else:
                child_end, parent_end = write_end, read_end
            self.child_fds[index] = child_end
            self.parent_fds[index] = parent_end
            self._child_owned.append(child_end)
            if not self._blocking_parent:
                fcntl.fcntl(child_end, fcntl.F_SETFL, 0)
            if self._pipesize > 0:
                fcntl.fcntl(parent_end, fcntl.F_SETPIPE_SZ, self._pipesize)
            return
        if option == DEVNULL and isinstance(option, int):
            fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            self._child_owned.append(fd)
            self.child_fds[index] = fd
            return
        if option == STDOUT and isinstance(option, int):
            if index != 2:
                raise ValueError(f"{name}=STDOUT is only valid for stderr; use PIPE or an fd for {name}")
            # After the child's stdout is set up, fd 1 is what stderr should copy.
            self.child_fds[2] = self.child_fds[1] if self.child_fds[1] >= 0 else 1
            return
        if isinstance(option, bool):
            raise TypeError(f"{name} must be PIPE, DEVNULL, an fd or a file object, not bool")
        if isinstance(option, int):
            if option < 0:
                raise ValueError(
                    f"{name}={option} is not a valid choice: pass PIPE, DEVNULL, "
                    "STDOUT (stderr only), an open fd or a file object"
                )
            fd = option
        elif hasattr(option, "fileno"):
            fd = option.fileno()
        else:
            raise TypeError(
                f"{name} must be PIPE, DEVNULL, an fd or an object with fileno(), not {type(option).__name__}"
            )
        try:
            os.get_inheritable(fd)
        except (OSError, OverflowError):
            raise ValueError(f"{name}={option!r} is not an open file descriptor; open it first") from None
        self.child_fds[index] = fd

    def _attach_pty(self, index: int) -> None:
        if self._pty_master < 0:
            import struct
            import termios

            master, slave = os.openpty()
            self._child_owned.append(slave)
            self._pty_master = master
            self.pty_fd = index
            self._pty_slave = slave
            if self._pty_size is not None:
                rows, columns = self._pty_size
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            parent_end = master
        elif index == 2 and self.child_fds[1] == self._pty_slave:
            # A terminal merges stdout and stderr: both are read from stdout's master.
            self.child_fds[2] = self._pty_slave
            return
        else:
            # Each stream gets its own copy of the master, closed on its own.
            parent_end = os.dup(self._pty_master)
        self.child_fds[index] = self._pty_slave
        self.parent_fds[index] = parent_end
        if not self._blocking_parent:
            os.set_blocking(parent_end, False)

    def child_fd_triple(self) -> tuple[int, int, int]:
        """The child's fds 0, 1 and 2 as the native request takes them (-1: inherit)."""
        return (self.child_fds[0], self.child_fds[1], self.child_fds[2])

    def close_child_ends(self) -> None:
        """Close the fds that only the child needed; call once it has been created."""
        owned, self._child_owned = self._child_owned, []
        for fd in owned:
            os.close(fd)

    def close_parent_ends(self) -> None:
        """Close the parent's pipe ends; used when spawning failed."""
        for index, fd in enumerate(self.parent_fds):
            if fd is not None:
                self.parent_fds[index] = None
                os.close(fd)
