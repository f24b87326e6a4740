"""Feeding a child's stdin and collecting its stdout and stderr for run().

The pipes are read and written straight from the watcher's callbacks into
lists of chunks, without asyncio streams. Like subprocess.communicate(),
it finishes when the child has exited and every output pipe reached EOF;
a grandchild that keeps a pipe open therefore holds run() until the
timeout, as it holds subprocess.run().
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Any

from ._child import Child
from ._watcher import EVENT_READ, EVENT_WRITE, Watcher

_READ_SIZE = 1 << 16
_WRITE_SIZE = 1 << 16
# A child that fills the pipe gets a larger one and larger reads, so a
# stream costs fewer loop iterations. Short outputs never pay for it.
_FAST_PIPE_SIZE = 1 << 20
_FAST_READ_SIZE = 1 << 18


class Communication:
    """Input, output and exit of one child, gathered into one future."""

    def __init__(
        self,
        done: Any,
        watcher: Watcher,
        child: Child,
        parent_fds: list[int | None],
        input: bytes | None,
    ) -> None:
        # A waiter of the running Context (see _context.py).
        self.done = done
        self.output: list[list[bytes] | None] = [None, None, None]
        self._watcher = watcher
        self._child = child
        self._pending = 1  # the exit
        self._fds: list[int | None] = list(parent_fds)
        self._tokens: list[int | None] = [None, None, None]
        self._input = memoryview(input) if input else None
        self._input_offset = 0
        self._read_sizes = [_READ_SIZE, _READ_SIZE, _READ_SIZE]

    def start(self) -> None:
        """Write what input fits now and start watching pipes and the exit."""
        if self._fds[0] is not None:
            if self._write_input():
                self._close(0)
            else:
                self._pending += 1
                self._tokens[0] = self._watcher.watch_fd(self._fds[0], EVENT_WRITE, self._on_writable)
        for index in (1, 2):
            fd = self._fds[index]
            if fd is not None:
                self.output[index] = []
                self._pending += 1
                handler = self._on_stdout if index == 1 else self._on_stderr
                self._tokens[index] = self._watcher.watch_fd(fd, EVENT_READ, handler)
        self._child.on_exit(self._one_finished)

    def _one_finished(self) -> None:
        self._pending -= 1
        if self._pending == 0 and not self.done.done():
            self.done.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)

    # -- stdin --------------------------------------------------------------

    def _write_input(self) -> bool:
        """Write input until the pipe is full; return True when stdin is finished."""
        data = self._input
        fd = self._fds[0]
        assert fd is not None
        while data is not None and self._input_offset < len(data):
            try:
                written = os.write(fd, data[self._input_offset : self._input_offset + _WRITE_SIZE])
            except BlockingIOError:
                return False
            except BrokenPipeError:
                # The child stopped reading; subprocess ignores this too.
                return True
            except OSError as error:
                if error.errno == errno.EINVAL:
                    return True
                raise
            self._input_offset += written
        return True

    def _on_writable(self, event: Any) -> None:
        try:
            finished = self._write_input()
        except OSError as error:
            self._close(0)
            self._fail(error)
            return
        if finished:
            self._close(0)
            self._one_finished()

    # -- stdout and stderr ----------------------------------------------------

    def _on_stdout(self, event: Any) -> None:
        self._read(1)

    def _on_stderr(self, event: Any) -> None:
        self._read(2)

    def _read(self, index: int) -> None:
        """Read what the pipe holds, until it is empty or at EOF."""
        fd = self._fds[index]
        chunks = self.output[index]
        if fd is None or chunks is None:
            return
        size = self._read_sizes[index]
        while True:
            try:
                data = os.read(fd, size)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno != errno.EIO:
                    self._close(index)
                    self._fail(error)
                    return
                # A pseudo-terminal master reports EIO once the child side is closed.
                data = b""
            if not data:
                self._close(index)
                self._one_finished()
                return
            chunks.append(data)
            if len(data) < size:
                return  # drained: the next event brings more
            if size < _FAST_READ_SIZE:
                size = self._read_sizes[index] = _FAST_READ_SIZE
                _enlarge_pipe(fd)

    def drain(self) -> None:
        """Read whatever output is already buffered, without waiting for EOF."""
        for index in (1, 2):
            fd = self._fds[index]
            chunks = self.output[index]
            while fd is not None and chunks is not None:
                try:
                    data = os.read(fd, _READ_SIZE)
                except OSError:  # EAGAIN, or EIO from a closed pseudo-terminal
                    break
                if not data:
                    break
                chunks.append(data)

    # -- ending ---------------------------------------------------------------

    def _close(self, index: int) -> None:
        fd = self._fds[index]
        if fd is None:
            return
        self._fds[index] = None
        token = self._tokens[index]
        if token is not None:
            self._tokens[index] = None
            self._watcher.unwatch_fd(fd, token)
        os.close(fd)

    def close(self) -> None:
        """Stop watching and close every pipe that is still open."""
        for index in (0, 1, 2):
            self._close(index)

    def collected(self, index: int) -> bytes | None:
        chunks = self.output[index]
        if chunks is None:
            return None
        return b"".join(chunks)


def _enlarge_pipe(fd: int) -> None:
    # Best effort: the size is capped by /proc/sys/fs/pipe-max-size and by
    # the user's pipe quota, and a smaller pipe only costs more wakeups.
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _FAST_PIPE_SIZE)
    except OSError:
        pass
