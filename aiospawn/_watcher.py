"""Observing child exits and pipe readiness, one watcher per event loop.

A watcher is an epoll fd of aiospawn's own. Pidfds and pipe fds are added
to it by the native core, which saves the event loop's per-fd bookkeeping
on every spawn, and the loop watches only the watcher's fd: asyncio and
uvloop through add_reader (AsyncioWatcher, here), trio through a system
task (_trio_glue.py). When it becomes readable, one native call returns
the ready events and reaps every exited child (waitid on its pidfd, then
close), so no SIGCHLD handler, thread or polling timer is involved.

An asyncio watcher closes itself after a second with nothing to watch and
when its loop closes, so an idle program keeps no extra fd open. Children
still running when their loop closes are handed to a short-lived reaper
thread (_orphans.py), so none is left a zombie.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import Any

from ._core import ffi, lib

_MAX_EVENTS = 64
_TOKEN_LIMIT = 1 << 31
# Seconds an asyncio watcher stays open with nothing to watch, so that a
# program spawning one child after another does not recreate it each time.
_IDLE_CLOSE_DELAY = 1.0

EVENT_READ = 0x001  # EPOLLIN
EVENT_WRITE = 0x004  # EPOLLOUT

Handler = Callable[[Any], None]


class Watcher:
    """An epoll fd dispatching ready events to handlers by token.

    The event loop integration (who calls dispatch() when fd is readable,
    and when the watcher closes) belongs to the subclasses.
    """

    def __init__(self) -> None:
        fd = lib.aiospawn_watcher_new()
        if fd < 0:
            raise OSError(-fd, f"creating the exit watcher failed: {os.strerror(-fd)}")
        self.fd = fd
        self.closed = False
        self._handlers: dict[int, Handler] = {}
        self._watched_fds: dict[int, int] = {}  # token -> fd, for fd watches
        self._next_token = 1
        self._events = ffi.new("struct aiospawn_event[]", _MAX_EVENTS)

    def new_token(self, handler: Handler) -> int:
        """Reserve a token whose events go to handler."""
        token = self._next_token
        while token in self._handlers:
            token = token + 1 if token + 1 < _TOKEN_LIMIT else 1
        self._next_token = token + 1 if token + 1 < _TOKEN_LIMIT else 1
        self._handlers[token] = handler
        return token

    def release_token(self, token: int) -> None:
        """Forget token."""
        self._handlers.pop(token, None)
        if not self._handlers:
            self._became_idle()

    def _became_idle(self) -> None:
        """Called when the last token is released."""

    def watch_fd(self, fd: int, events: int, handler: Handler) -> int:
        """Call handler with each event of fd until unwatch_fd; return the token."""
        token = self.new_token(handler)
        result = lib.aiospawn_watch_fd(self.fd, fd, token, events)
        if result < 0:
            self.release_token(token)
            raise OSError(-result, f"watching fd {fd} failed: {os.strerror(-result)}")
        self._watched_fds[token] = fd
        return token

    def unwatch_fd(self, fd: int, token: int) -> None:
        """Stop watching fd. Call before closing fd: a copy in a child would keep it registered."""
        if not self.closed:
            lib.aiospawn_unwatch_fd(self.fd, fd)
        self._watched_fds.pop(token, None)
        self.release_token(token)

    def dispatch(self) -> None:
        """Handle every ready event; called when the watcher's fd is readable."""
        events = self._events
        count = lib.aiospawn_poll(self.fd, events, _MAX_EVENTS)
        if count < 0:
            # epoll_wait on our own fd fails only if it was closed under us.
            raise OSError(-count, f"polling the exit watcher failed: {os.strerror(-count)}")
        for index in range(count):
            event = events[index]
            handler = self._handlers.get(event.token)
            if handler is not None:
                handler(event)

    def detach(self) -> None:
        """Give up the watcher: running children go to the orphan reaper, the fd closes.

        For a loop that is closing: pipes are dropped (their readers will
        not run again), children are reaped by a thread as they exit.
        """
        if self.closed:
            return
        from ._child import Child
        from ._orphans import adopt

        self.closed = True
        for fd in self._watched_fds.values():
            lib.aiospawn_unwatch_fd(self.fd, fd)
        self._watched_fds.clear()
        children = {
            token: handler.__self__  # type: ignore[attr-defined]
            for token, handler in self._handlers.items()
            if getattr(handler, "__func__", None) is Child._on_exit
        }
        self._handlers.clear()
        if children:
            adopt(self.fd, children)
        else:
            os.close(self.fd)


class AsyncioWatcher(Watcher):
    """A watcher registered with an asyncio (or uvloop) loop's add_reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop_ref = weakref.ref(loop)
        self._idle_timer: asyncio.TimerHandle | None = None
        try:
            loop.add_reader(self.fd, self.dispatch)
        except BaseException:
            os.close(self.fd)
            raise
        # Closes it if the caller fails before watching anything.
        self._idle_timer = loop.call_later(_IDLE_CLOSE_DELAY, self._close_if_idle)

    def _became_idle(self) -> None:
        if self._idle_timer is None and not self.closed:
            loop = self._loop_ref()
            if loop is not None and not loop.is_closed():
                self._idle_timer = loop.call_later(_IDLE_CLOSE_DELAY, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        if not self._handlers:
            self.close()

    def _stop(self) -> asyncio.AbstractEventLoop | None:
        """Cancel the idle timer, leave the loop's reader and the registry."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        loop = self._loop_ref()
        if loop is not None:
            if not loop.is_closed():
                loop.remove_reader(self.fd)
            _forget(loop, self)
        return loop

    def close(self) -> None:
        """Unregister from the loop and close the epoll fd; only when nothing is watched."""
        if self.closed:
            return
        self._stop()
        self.closed = True
        os.close(self.fd)

    def detach(self) -> None:
        if self.closed:
            return
        self._stop()
        super().detach()


# The watcher is an attribute of its loop. The two form a cycle that the
# garbage collector frees once the program drops a loop it never closed:
# the loop's __del__ closes it, and the close hook detaches the watcher.
# A registry keyed by loop would keep the loop alive, because its values
# reach the loop through the idle timer and the children's transports.
# Only loops whose instances take no attributes use the registry.
_WATCHER_ATTRIBUTE = "_aiospawn_watcher"
_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncioWatcher] = weakref.WeakKeyDictionary()


def watcher_for(loop: asyncio.AbstractEventLoop) -> AsyncioWatcher:
    """Return the loop's watcher, creating it on first use."""
    watcher = _current_watcher(loop)
    if watcher is None or watcher.closed:
        if loop.is_closed():
            raise RuntimeError("Event loop is closed")
        watcher = AsyncioWatcher(loop)
        _remember(loop, watcher)
        _hook_close(loop)
    return watcher


def _remember(loop: asyncio.AbstractEventLoop, watcher: AsyncioWatcher) -> None:
    try:
        setattr(loop, _WATCHER_ATTRIBUTE, watcher)
    except AttributeError:
        _watchers[loop] = watcher


def _forget(loop: asyncio.AbstractEventLoop, watcher: AsyncioWatcher) -> None:
    if getattr(loop, _WATCHER_ATTRIBUTE, None) is watcher:
        setattr(loop, _WATCHER_ATTRIBUTE, None)
    elif _watchers.get(loop) is watcher:
        del _watchers[loop]


def _current_watcher(loop: asyncio.AbstractEventLoop) -> AsyncioWatcher | None:
    watcher: AsyncioWatcher | None = getattr(loop, _WATCHER_ATTRIBUTE, None)
    return watcher if watcher is not None else _watchers.get(loop)


_CLOSE_HOOK_MARK = "_aiospawn_close_hook"


def _hook_close(loop: asyncio.AbstractEventLoop) -> None:
    """Wrap loop.close on this instance so children outliving the loop are still reaped.

    asyncio offers no close notification. Loops whose instances take no
    attributes are left alone.
    """
    if getattr(loop, _CLOSE_HOOK_MARK, False):
        return
    original_close = loop.close

    def close() -> None:
        if not loop.is_running() and not loop.is_closed():
            watcher = _current_watcher(loop)
            if watcher is not None:
                watcher.detach()
        original_close()

    try:
        loop.close = close  # type: ignore[method-assign]
        setattr(loop, _CLOSE_HOOK_MARK, True)
    except AttributeError:
        # NOTE: on such a loop, children still running when it closes stay
        # zombies until this process exits.
        pass
