"""Ctrl-C during training: stop at the end of the step, save first, and say it was interrupted.

    with StopOnCtrlC() as stop:
        while step < epochs and not stop.requested:
            ...                                   # one optimizer step: Ctrl-C waits for its end
            with stop.allowed():                  # validation, samples: Ctrl-C ends them at once
                ...
    if stop.requested:
        save(step)                                # nothing has been left half done
        ...                                       # evaluate if you like; a second Ctrl-C exits 130
        sys.exit(INTERRUPTED)

and around a write that must not be cut short:

    with sigint_deferred():
        torch.save(...)                           # a Ctrl-C here is delivered when the write is done

A KeyboardInterrupt in the middle of optimizer.step() could leave the weights half updated and
the step count one behind them; a flag checked between steps cannot. Signal handlers live in the
main thread only: elsewhere (a test's worker thread) both helpers do nothing.
"""
import signal
import sys
import threading
from contextlib import contextmanager

INTERRUPTED = 130            # the exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells use


def _main_thread():
    return threading.current_thread() is threading.main_thread()


class StopOnCtrlC:
    """A context in which the first Ctrl-C asks the loop to stop (`requested`) instead of raising.
    Inside `allowed()` it raises KeyboardInterrupt at once, caught at the end of that block."""

    def __init__(self, message="interrupted: stopping after this step, then saving"):
        self.message, self.requested, self._raise, self._previous = message, False, False, None

    def _handler(self, signum, frame):
        first = not self.requested
        self.requested = True
        if self._raise:
            raise KeyboardInterrupt
        if first:
            print(f"\n{self.message}", file=sys.stderr, flush=True)

    def __enter__(self):
        if _main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    @contextmanager
    def allowed(self):
        """A block that Ctrl-C may cut short (it changes nothing the checkpoint holds)."""
        if self.requested:               # already stopping: skip the block's work
            yield
            return
        self._raise = True
        try:
            yield
        except KeyboardInterrupt:
            self.requested = True
            print("\ninterrupted", file=sys.stderr, flush=True)
        finally:
            self._raise = False


@contextmanager
def sigint_deferred():
    """Hold Ctrl-C until the block is done, then deliver it to whatever handled it before."""
    if not _main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):               # Python's own (raises KeyboardInterrupt), or StopOnCtrlC's
                previous(signal.SIGINT, caught[-1])
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt
