"""Exceptions of aiospawn and the translation of child failures into them."""

from __future__ import annotations

import errno
import os


class BackendUnavailableError(RuntimeError):
    """No spawn backend can run here, or the one forced by AIOSPAWN_BACKEND cannot."""


class UnknownNameError(ValueError, KeyError):
    """A user or group name that the password or group database lacks.

    A ValueError like aiospawn's other argument errors, and a KeyError like
    the one subprocess raises, so code written for either catches it.
    """

    # KeyError's own __str__ would show the message as a quoted repr.
    __str__ = BaseException.__str__


class ExitStatusUnknownError(ChildProcessError):
    """The child's exit status was collected by someone else and is unknown.

    aiospawn never invents a status. On Linux 6.15 and newer the pidfd keeps
    the status after someone else reaped the child, except on the
    posix_spawn backend when the child exits before its pidfd is open. On
    older kernels it happens when another part of the program reaps
    children it does not own, with ``waitpid(-1)``, or when SIGCHLD is set
    to SIG_IGN so the kernel discards the status at exit.
    """

    def __init__(self, pid: int, args: object) -> None:
        super().__init__(
            errno.ECHILD,
            f"the exit status of pid {pid} ({args!r}) was collected by another "
            "waiter before aiospawn could read it, so it is unknown; find the "
            "code that calls waitpid(-1, ...) or ignores SIGCHLD",
        )
        self.pid = pid
        self.cmd = args


def child_failure(error_number: int, description: str, filename: object | None, is_exec: bool) -> OSError:
    """Build the OSError subclass that subprocess raises for the same failure.

    ``OSError(errno, ...)`` picks the subclass itself: FileNotFoundError for
    ENOENT, PermissionError for EACCES, and so on. Exec failures keep the
    exact text of subprocess; other steps name the step that failed.
    """
    message = os.strerror(error_number)
    if not is_exec:
        message = f"{message} (in the child, before exec: {description})"
    if filename is None:
        return OSError(error_number, message)
    return OSError(error_number, message, filename)
