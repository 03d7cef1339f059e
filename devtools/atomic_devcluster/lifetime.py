"""The harness's processes never outlive the one that started them.

Each component leads its own session (so a terminal's Ctrl-C reaches only the harness,
which then stops them in order), so nothing but the harness stops them. Two things make
sure it does, however it ends:

- `die_with_parent(sig)`, a `preexec_fn`: the child asks the kernel (prctl
  PR_SET_PDEATHSIG) for `sig` when its parent dies, even by SIGKILL. The control plane's
  binaries get SIGKILL (their data is thrown away, and with SIGTERM to all at once
  kube-apiserver was seen still running 30 s later), the node agent SIGTERM
  (it stops its pods' processes, which lead sessions of their own). The kernel means the
  parent *thread*: start components from a thread that lives as long as they should (the
  main thread).
- `TerminateAsInterrupt`: while a control plane runs in the main thread, SIGTERM raises
  KeyboardInterrupt like SIGINT does, so `with ControlPlane()` blocks and pytest's fixture
  teardown run and stop everything cleanly (a plain SIGTERM ends Python without either).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the process that spawns it dies."""
    parent = os.getpid()
    number = int(sig)

    def preexec() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, number, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would tell us
            os.kill(os.getpid(), number)

    return preexec


class TerminateAsInterrupt:
    """SIGTERM raises KeyboardInterrupt while held (main thread only, and only when nobody
    else handles SIGTERM); `release()` puts the previous handler back. Nested holders
    share the first one's handler."""

    def __init__(self) -> None:
        self._previous: signal.Handlers | Callable[[int, FrameType | None], object] | int | None
        self._previous = None
        self._installed = False

    def hold(self) -> None:
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_DFL:
            return
        self._previous = current
        signal.signal(signal.SIGTERM, _interrupt)
        self._installed = True

    def release(self) -> None:
        if not self._installed:
            return
        self._installed = False
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
