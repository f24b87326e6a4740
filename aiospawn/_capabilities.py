"""Probing what the kernel allows, once, and choosing the spawn backend.

The probes run the first time a child is spawned or capabilities() is
called. A probe that failed for a transient reason (no memory, no fd, no
process slot left) is not cached, so the next call probes again.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from ._core import lib
from ._errors import BackendUnavailableError

BACKEND_IDS = {
    "clone3": lib.AIOSPAWN_BACKEND_CLONE3,
    "clone": lib.AIOSPAWN_BACKEND_CLONE,
    "posix_spawn": lib.AIOSPAWN_BACKEND_POSIX_SPAWN,
}

PROBED_FEATURES = (
    "clone3",
    "clear_sighand",
    "clone",
    "pidfd_open",
    "waitid_pidfd",
    "pidfd_send_signal",
    "close_range",
)

_TRANSIENT_ERRORS = {errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE}


@dataclass(frozen=True)
class Capabilities:
    """The probed kernel features and the spawn backend chosen from them."""

    backend: str
    """The backend every spawn uses: "clone3", "clone" or "posix_spawn"."""
    reason: str
    """The reason for that choice, in one sentence."""
    forced: bool
    """True when the AIOSPAWN_BACKEND environment variable chose the backend."""
    features: dict[str, str] = field(default_factory=dict)
    """Each probed kernel feature: "available", or the errno that ruled it out."""
    kernel: str = ""
    """The running kernel release, from uname."""
    cgroup: str = ""
    """Whether cgroup= can place children in a cgroup v2 of their own, and where or why not."""


_cached: Capabilities | None = None


def _describe(error_number: int) -> str:
    if error_number == 0:
        return "available"
    name = errno.errorcode.get(error_number, str(error_number))
    return f"{name} ({os.strerror(error_number)})"


def _probe() -> tuple[dict[str, int], bool]:
    from ._core import ffi

    probe = ffi.new("struct aiospawn_probe *")
    lib.aiospawn_probe(probe)
    results = {name: getattr(probe, name) for name in PROBED_FEATURES}
    transient = any(value in _TRANSIENT_ERRORS for value in results.values())
    return results, transient


def _usable(backend: str, results: dict[str, int]) -> str | None:
    """Return why backend cannot run, or None if it can."""
    needs = {
        "clone3": ("clone3", "waitid_pidfd", "pidfd_send_signal"),
        "clone": ("clone", "waitid_pidfd", "pidfd_send_signal"),
        "posix_spawn": ("pidfd_open", "waitid_pidfd", "pidfd_send_signal"),
    }[backend]
    for feature in needs:
        if results[feature] != 0:
            return f"{feature} failed with {_describe(results[feature])}"
    return None


def _choose(results: dict[str, int]) -> Capabilities:
    features = {name: _describe(value) for name, value in results.items()}
    kernel = os.uname().release
    forced = os.environ.get("AIOSPAWN_BACKEND", "").strip()

    if forced:
        if forced not in BACKEND_IDS:
            raise BackendUnavailableError(
                f"AIOSPAWN_BACKEND={forced!r} is not a backend; "
                f"use one of {', '.join(BACKEND_IDS)} or unset it"
            )
        problem = _usable(forced, results)
        if problem is not None:
            raise BackendUnavailableError(
                f"AIOSPAWN_BACKEND={forced} was requested, but {problem} on "
                f"kernel {kernel}; unset AIOSPAWN_BACKEND to choose automatically"
            )
        return Capabilities(
            forced, "forced by AIOSPAWN_BACKEND", True, features, kernel, _cgroup_support(forced)
        )

    skipped: list[str] = []
    for backend in BACKEND_IDS:
        problem = _usable(backend, results)
        if problem is None:
            reason = "the fastest backend the kernel allows"
            if skipped:
                reason = "fallback: " + "; ".join(skipped)
            return Capabilities(backend, reason, False, features, kernel, _cgroup_support(backend))
        skipped.append(f"{backend} not used because {problem}")
    raise BackendUnavailableError(
        "no spawn backend works on kernel "
        f"{kernel}: {'; '.join(skipped)}. aiospawn needs Linux 5.4 or newer "
        "with pidfd system calls allowed by any seccomp filter"
    )


def _cgroup_support(backend: str) -> str:
    from ._cgroup import cgroup_support

    if backend != "clone3":
        return f"unavailable: cgroup= needs the clone3 backend, and {backend} is in use"
    return cgroup_support()


def capabilities() -> Capabilities:
    """Return the probed kernel features and the spawn backend in use.

    Raises BackendUnavailableError when no backend can run, or when
    AIOSPAWN_BACKEND names one that cannot.
    """
    global _cached
    if _cached is not None:
        return _cached
    results, transient = _probe()
    if transient:
        # Out of fds, memory or processes: the features may well exist, so
        # report the shortage itself, as a spawn would, and probe again
        # next time instead of falling back.
        error_number = next(value for value in results.values() if value in _TRANSIENT_ERRORS)
        raise OSError(
            error_number,
            f"probing the kernel's spawn features failed: {os.strerror(error_number)}; "
            "free some resources and retry",
        )
    _cached = _choose(results)
    return _cached


def backend_id() -> int:
    """Return the native id of the backend in use, probing on first call."""
    current = _cached if _cached is not None else capabilities()
    return int(BACKEND_IDS[current.backend])


def reset() -> None:
    """Forget the probe results, so the next spawn probes and reads AIOSPAWN_BACKEND again."""
    global _cached
    _cached = None
