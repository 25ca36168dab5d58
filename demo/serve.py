"""`make run`'s two processes, the web server and one background worker, started and stopped together.

Ctrl-C in a terminal sends SIGINT to the terminal's whole foreground process group, make included; make
then reports the interrupt and exits 130 whatever its recipe does, and a recipe's `kill 0` took make down
with SIGTERM (exit 143 and a crash line). So this supervisor makes its own process group the terminal's
foreground group while it runs: Ctrl-C reaches only the supervisor, which stops the server and the
worker (SIGTERM, the signal qcluster stops cleanly on), waits for both, hands the terminal back and exits 0,
and make with it. Without a terminal (a service manager, CI) it simply stops both on SIGINT or SIGTERM.

Plain standard library, no Django: it only starts `manage.py` twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

# How long the server and the worker get to stop after SIGTERM before they are killed.
STOP_GRACE_SECONDS = 20.0


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Own the controlling terminal's foreground while inside, as a job-control shell does for a job;
    nothing happens when stdin is not a terminal."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # no stdin, or one without a descriptor
        fd = -1
    previous = None
    if fd >= 0 and os.isatty(fd):
        try:
            # Started in the background (`make run &`) the terminal belongs to the shell: leave it there.
            if os.tcgetpgrp(fd) == os.getpgrp():
                previous = os.getpgrp()
                os.setpgid(0, 0)
        except OSError:
            previous = None  # not our terminal, or already a group leader: Ctrl-C reaches make as before
    if previous is None:
        yield
        return
    # A process outside the foreground group that changes the foreground is stopped by SIGTTOU unless it
    # ignores it.
    old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, os.getpgrp())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, previous)
        signal.signal(signal.SIGTTOU, old_ttou)


def _stop(processes: Sequence[subprocess.Popen]) -> None:
    # SIGTERM to each process alone: qcluster stops its own worker processes in order, and signalling its
    # whole group as well makes it wait for children that are gone. Only a kill takes the group.
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def serve(commands: Sequence[Sequence[str]]) -> int:
    """Run `commands` until SIGINT or SIGTERM (exit 0) or until one of them ends (its exit status, or 1
    when it ended cleanly while the others still ran). Each runs in a process group of its own, so a
    terminal's Ctrl-C never reaches them directly: they stop on the supervisor's SIGTERM, one way only."""
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    processes: list[subprocess.Popen] = []
    status = 0
    try:
        with terminal_foreground():
            for command in commands:
                processes.append(subprocess.Popen(list(command), process_group=0))
            while not stopping:
                ended = [p for p in processes if p.poll() is not None]
                if ended:
                    status = ended[0].returncode or 1
                    print(f"{' '.join(ended[0].args[1:3])} ended (exit status {ended[0].returncode}); "
                          "stopping the rest.", file=sys.stderr)
                    break
                time.sleep(0.2)
            _stop(processes)
    finally:
        _stop(processes)
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if stopping and not status:
        print("Stopped the web server and the worker.", file=sys.stderr)
    return status


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m demo.serve HOST:PORT", file=sys.stderr)
        return 2
    python = sys.executable
    return serve([
        (python, "manage.py", "qcluster"),
        (python, "manage.py", "runserver", argv[0], "--noreload"),
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
