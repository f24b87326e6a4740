"""Starting a child in a cgroup of its own, to kill and await its whole tree.

With cgroup v2, clone3(CLONE_INTO_CGROUP) places the child in a new cgroup
as it is created, so no descendant can escape it: not by leaving the
process group, not by daemonizing. cgroup.kill (Linux 5.14) then kills
every member at once, and cgroup.events reports "populated 0" when the
last one has exited.
"""

from __future__ import annotations

import errno
import itertools
import os
from typing import Any

_counter = itertools.count()
_EVENT_PRIORITY = 0x002  # EPOLLPRI: kernfs signals a cgroup.events change with it


def _own_cgroup_directory() -> tuple[str | None, str]:
    """Return (directory of this process's cgroup v2, "") or (None, why not)."""
    try:
        with open("/proc/self/cgroup") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        return None, f"reading /proc/self/cgroup failed: {error.strerror}"
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None, "this process is in no cgroup v2 hierarchy"
    mount = None
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                fields = line.split(" - ")
                if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
                    mount = fields[0].split()[4]
                    break
    except OSError as error:
        return None, f"reading /proc/self/mountinfo failed: {error.strerror}"
    if mount is None:
        return None, "no cgroup v2 file system is mounted"
    directory = os.path.join(mount, relative.lstrip("/"))
    if not os.access(directory, os.W_OK):
        return None, f"the cgroup {directory} is not writable by this process"
    return directory, ""


def cgroup_support() -> str:
    """Describe where cgroup= places children, or why it cannot."""
    directory, reason = _own_cgroup_directory()
    if directory is None:
        return f"unavailable: {reason}"
    return f"available under {directory}"


def _read_populated(events_fd: int) -> bool:
    content = os.pread(events_fd, 4096, 0).decode()
    for line in content.splitlines():
        key, _, value = line.partition(" ")
        if key == "populated":
            return value.strip() == "1"
    return False


class Cgroup:
    """A cgroup created for one child, removed once it is empty."""

    def __init__(self, parent: str | None = None) -> None:
        if parent is None:
            parent, reason = _own_cgroup_directory()
            if parent is None:
                raise OSError(errno.ENOTSUP, f"cgroup=True needs a writable cgroup v2 hierarchy: {reason}")
        self.path = os.path.join(parent, f"aiospawn-{os.getpid()}-{next(_counter)}")
        try:
            os.mkdir(self.path)
        except OSError as error:
            raise OSError(error.errno, f"creating the cgroup {self.path} failed: {error.strerror}") from None
        if not os.path.exists(os.path.join(self.path, "cgroup.kill")):
            os.rmdir(self.path)
            raise OSError(errno.ENOTSUP, f"the cgroup {self.path} has no cgroup.kill, which needs Linux 5.14")
        try:
            self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            os.rmdir(self.path)
            raise
        self._events_fd = -1
        self._removed = False

    def close_directory_fd(self) -> None:
        """Close the fd used for CLONE_INTO_CGROUP once the child exists."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def kill(self) -> None:
        """SIGKILL every process in the cgroup at once."""
        if self._removed:
            return
        with open(os.path.join(self.path, "cgroup.kill"), "w") as handle:
            handle.write("1")

    def kill_if_populated(self) -> None:
        """kill() unless the cgroup is already empty."""
        if not self._removed and self.populated():
            self.kill()

    def signal_all(self, signal_number: int) -> None:
        """Send a signal to every process listed in the cgroup.

        Unlike kill(), a process forked while the list is read can be
        missed; a pid that exits meanwhile is skipped.
        """
        if self._removed:
            return
        with open(os.path.join(self.path, "cgroup.procs")) as handle:
            pids = [int(word) for word in handle.read().split()]
        for pid in pids:
            try:
                os.kill(pid, signal_number)
            except ProcessLookupError:
                pass

    def populated(self) -> bool:
        """Return whether any process is still in the cgroup."""
        fd = os.open(os.path.join(self.path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return _read_populated(fd)
        finally:
            os.close(fd)

    async def wait_empty(self, context: Any, watcher: Any) -> bool:
        """Wait until the last process of the cgroup has exited, through cancellation.

        Call it after kill(). Returns whether a cancellation arrived
        meanwhile (asyncio only: trio delivers it again by itself).
        """
        if self._removed or not self.populated():
            return False
        cancelled = False
        fd = os.open(os.path.join(self.path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
        changed = context.new_waiter()

        def on_change(event: Any) -> None:
            if not changed.done():
                changed.set_result(None)

        token = watcher.watch_fd(fd, _EVENT_PRIORITY, on_change)
        try:
            # Reading through the watched fd also acknowledges the change,
            # so the fd is not reported ready again until the next one.
            while _read_populated(fd):
                _, interrupted = await context.wait_shielded(changed)
                cancelled = cancelled or interrupted
                changed = context.new_waiter()
        finally:
            watcher.unwatch_fd(fd, token)
            os.close(fd)
        return cancelled

    def remove_when_empty_later(self, watcher: Any) -> Any:
        """Return a callback that removes the cgroup now, or when its last process exits.

        Used where nobody owns the tree's fate (open_process): the cgroup
        stays while processes remain in it, then goes.
        """
        # NOTE: if the event loop ends first, the empty directory is left behind.

        def remove_or_watch() -> None:
            if self.remove():
                return
            fd = os.open(os.path.join(self.path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
            token = 0

            def on_change(event: Any) -> None:
                if not _read_populated(fd):
                    watcher.unwatch_fd(fd, token)
                    os.close(fd)
                    self.remove()

            token = watcher.watch_fd(fd, _EVENT_PRIORITY, on_change)

        return remove_or_watch

    def remove(self) -> bool:
        """Remove the cgroup directory if it is empty; return whether it is gone."""
        if self._removed:
            return True
        self.close_directory_fd()
        try:
            os.rmdir(self.path)
        except OSError as error:
            if error.errno == errno.EBUSY:
                return False
            if error.errno != errno.ENOENT:
                raise
        self._removed = True
        return True


__all__ = ["Cgroup", "cgroup_support"]
