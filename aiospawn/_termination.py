"""How run() stops a child it must not leave running: on timeout or cancellation."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Termination:
    """A termination policy: the signal to send first, and what follows.

    ``Termination()`` kills at once (SIGKILL), like subprocess.run on
    timeout. ``Termination(signal.SIGTERM, grace=5)`` asks the child to exit
    and kills it if it is still running 5 seconds later. With
    ``process_group=True`` the signals go to the child's whole process
    group, so a shell's children stop too; the child must then lead its
    own group (start_new_session=True or process_group=0).
    """

    signal: int = signal.SIGKILL
    """The first signal sent."""
    grace: float | None = None
    """Seconds to wait after the first signal before SIGKILL; None sends no SIGKILL."""
    process_group: bool = False
    """Signal the child's process group instead of the child alone."""

    def __post_init__(self) -> None:
        if self.grace is not None and self.grace < 0:
            raise ValueError(f"grace={self.grace} is negative; pass seconds >= 0 or None")
        if self.grace is None and self.signal != signal.SIGKILL:
            raise ValueError(
                f"a policy that sends {signal.Signals(self.signal).name} must set grace, "
                "the seconds to wait before SIGKILL, or the child might never exit"
            )


KILL = Termination()


async def stop_child(context: Any, child: Any, policy: Termination) -> bool:
    """Apply policy to child and wait until it is reaped, through any cancellation.

    A child started with kill_tree gets the signals on its whole tree.

    Returns whether a cancellation arrived meanwhile (asyncio only: trio
    delivers it again by itself).
    """
    waiter = child.exit_waiter(context)
    tree = policy.process_group or child.kill_tree

    def deliver(signal_number: int) -> None:
        if tree:
            child.signal_tree(signal_number)
        else:
            child.send_signal(signal_number)

    deliver(policy.signal)
    cancelled = False
    if policy.signal != signal.SIGKILL:
        completed, cancelled = await context.wait_shielded(waiter, policy.grace)
        if completed:
            return bool(cancelled)
        deliver(signal.SIGKILL)
    _, cancelled_again = await context.wait_shielded(waiter)
    return bool(cancelled or cancelled_again)
