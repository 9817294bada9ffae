"""Stopping a run over many users within a bound: SIGINT (Ctrl-C), SIGTERM (a
cron timeout, `systemctl stop`, `docker stop`), SIGHUP (a closed terminal) and,
on Windows, SIGBREAK (Ctrl-Break) ask the run to stop sending. Whatever it is
doing, it ends within bounds.STOP_GRACE of the first signal:

- the request in flight gets until `Stop.deadline` (STOP_GRACE less
  STOP_WRAP_UP, kept for the record) to answer; an answer that comes by then is
  used. The transport (transport.py) cuts it there: every socket wait is short
  enough to see the deadline the signal set;
- a wait (a Retry-After, a back-off, the leaky bucket, another run's lock) ends
  at once: `Stop.nap` returns False, and what was waiting to be sent is known
  not sent (`NotReached`);
- no change is started after the signal (rest.client.RestClient.call);
- a second signal, or a block the above does not reach still running at
  STOP_GRACE, is cut at once (KeyboardInterrupt), and the users of the request
  in flight are not known.

Once the sending is over (`Stop.finish`), a signal changes nothing: the
signals are ignored (SIG_IGN, so that none interrupts a write either: CPython's
buffered writer loses the rest of a block when a Python handler runs during a
blocked write to a pipe) until the record is final (on_signals' end).

The run looks at `Stop.signal` between batches; nothing here prints or exits.
"""

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from oint_py.bounds import STOP_GRACE, STOP_WRAP_UP
from oint_py.outcome import RequestFailure

_NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")


class NotReached(RequestFailure):
    """Known not applied: a stop came before it was sent, or while it waited to be sent again (a throttle
    answer's Retry-After, a back-off after an answer that proved it not applied)."""


class _Woken(Exception):
    """The first signal, raised by the handler into a nap to cut it short (inside this module only)."""


class Stop:
    """Whether the run was asked to stop: `signal` is the first signal's number, or None; `deadline`, then,
    the time.monotonic() at which the request in flight is cut."""

    signal: int | None = None
    deadline: float | None = None

    def __init__(self) -> None:
        self.napping = False  # within nap(): the first signal cuts it short
        self.finishing = False  # the sending is over: a signal changes nothing
        self.timer: threading.Timer | None = None
        self.ignore: Callable[[], None] = lambda: None  # on_signals: ignore the signals from here on

    def nap(self, seconds: float, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Sleep `seconds` (with `sleep`, the caller's clock), cut short by a stop: True when slept out,
        False when a stop came before or during it. A real signal interrupts the sleep at once (POSIX; on
        Windows Ctrl-C does, other signals wait for its end)."""
        if self.signal is not None:
            return False
        try:
            try:
                self.napping = True
                if self.signal is None:  # not come between the test above and the flag
                    sleep(seconds)
            finally:
                self.napping = False
        except _Woken:
            pass
        return self.signal is None

    def finish(self) -> None:
        """The sending is over: from here on a signal is ignored (the record is being made final)."""
        self.finishing = True
        if self.timer is not None:
            self.timer.cancel()
        self.ignore()


def stopped(stop: "Stop | None") -> bool:
    return stop is not None and stop.signal is not None


@contextmanager
def on_signals(grace: float = STOP_GRACE) -> Iterator[Stop]:
    """Within the block, the signals above set `stop.signal` instead of ending the process."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.finishing:
            return
        if stop.signal is not None:  # a second signal, or STOP_GRACE over: stop waiting
            raise KeyboardInterrupt
        stop.signal = signum
        stop.deadline = time.monotonic() + max(0.0, grace - STOP_WRAP_UP)
        import _thread

        stop.timer = threading.Timer(grace, _thread.interrupt_main)
        stop.timer.daemon = True
        stop.timer.start()
        if stop.napping:
            raise _Woken

    previous = {}
    for name in _NAMES:
        number = getattr(signal, name, None)
        if number is not None:
            try:
                previous[number] = signal.signal(number, handler)
            except (OSError, ValueError):  # not settable here
                pass

    def ignore() -> None:
        for number in previous:
            signal.signal(number, signal.SIG_IGN)

    stop.ignore = ignore
    try:
        yield stop
    finally:
        stop.finish()
        for number, old in previous.items():
            signal.signal(number, old)


@contextmanager
def deferred() -> Iterator[list[int]]:
    """Within the block, the signals above wait for its end, then are delivered as they would have been (the
    handler in place before, or the default action: SIGINT a KeyboardInterrupt, SIGTERM the end of the
    process). For a short, bounded block whose cut would lose what cannot be had again: a renewed token pair
    between its request and its save. A cut of on_signals (its grace over) waits for it too.
    Yields a list that, after the block, holds the signals delivered to a handler that returned (on_signals':
    the run is asked to stop), so that the block's user sends nothing more."""
    delivered: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield delivered
        return
    came: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        came.append(signum)

    previous = {}
    try:  # set inside the try: a signal whose old handler raises while they are set leaves none of ours behind
        for name in _NAMES:
            number = getattr(signal, name, None)
            if number is not None:
                try:
                    previous[number] = signal.signal(number, hold)
                except (OSError, ValueError):
                    pass
        yield delivered
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
        for number in came:  # each, in order: an ignored SIGHUP first must not swallow the SIGTERM after it,
            handler = previous.get(number)  # nor a first SIGTERM the second that cuts a sweep at once
            if callable(handler):
                handler(number, None)
                delivered.append(number)
            elif handler == signal.SIG_DFL:
                if number == signal.SIGINT:
                    raise KeyboardInterrupt
                signal.raise_signal(number)
