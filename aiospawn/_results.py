"""What a finished child leaves behind: its resource usage and run()'s result."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ResourceUsage:
    """A child's resource usage, from the waitid() call that reaped it (struct rusage).

    Like getrusage(RUSAGE_CHILDREN), the figures include the descendants
    that the child itself waited for.
    """

    user_time: float
    """CPU time in user mode, in seconds."""
    system_time: float
    """CPU time in the kernel, in seconds."""
    max_rss: int
    """Peak resident set size, in KiB (ru_maxrss).

    Until its exec the child shares the parent's memory (as a fork or vfork
    child does), so for a short-lived child this can be the parent's size."""
    minor_faults: int
    """Page faults served without I/O (ru_minflt)."""
    major_faults: int
    """Page faults that needed I/O (ru_majflt)."""
    voluntary_switches: int
    """Context switches while waiting for a resource (ru_nvcsw)."""
    involuntary_switches: int
    """Context switches forced by the scheduler (ru_nivcsw)."""

    @classmethod
    def from_event_fields(cls, fields: tuple[int, ...]) -> ResourceUsage:
        utime_us, stime_us, maxrss_kb, minflt, majflt, nvcsw, nivcsw = fields
        return cls(utime_us / 1e6, stime_us / 1e6, maxrss_kb, minflt, majflt, nvcsw, nivcsw)


class CompletedProcess(subprocess.CompletedProcess[T]):
    """subprocess.CompletedProcess with the child's resource usage.

    ``rusage`` is None only when another waiter reaped the child before
    aiospawn could, so its usage was not collected.
    """

    def __init__(
        self,
        args: Any,
        returncode: int,
        stdout: T | None = None,
        stderr: T | None = None,
        rusage: ResourceUsage | None = None,
    ) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.rusage = rusage
