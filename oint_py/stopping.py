"""Stopping a run over many users cleanly: SIGINT (Ctrl-C), SIGTERM (a cron
timeout, `systemctl stop`), SIGHUP (a closed terminal) and, on Windows,
SIGBREAK (Ctrl-Break) ask the run to stop sending. The request in flight
gets STOP_GRACE seconds to finish; then, or at a second signal, it is cut
(KeyboardInterrupt), and the run records its users as not known.

The run looks at `Stop.signal` between batches; nothing here prints or exits.
"""

import signal
import threading
from contextlib import contextmanager

from .bounds import STOP_GRACE

_NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")


class Stop:
    """Whether the run was asked to stop: `signal` is the first signal's number, or None."""

    signal: int | None = None


@contextmanager
def on_signals(grace: float = STOP_GRACE):
    """Within the block, the signals above set `stop.signal` instead of ending the process."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    timer: list[threading.Timer] = []

    def handler(signum, frame):
        if stop.signal is not None:  # a second signal, or the grace ran out: stop waiting
            raise KeyboardInterrupt
        stop.signal = signum
        import _thread

        timer.append(threading.Timer(grace, _thread.interrupt_main))
        timer[0].daemon = True
        timer[0].start()

    previous = {}
    for name in _NAMES:
        number = getattr(signal, name, None)
        if number is not None:
            try:
                previous[number] = signal.signal(number, handler)
            except (OSError, ValueError):  # not settable here
                pass
    try:
        yield stop
    finally:
        for t in timer:
            t.cancel()
        for number, old in previous.items():
            signal.signal(number, old)


@contextmanager
def deferred():
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

    def hold(signum, frame):
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
