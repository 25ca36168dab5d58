"""demo.serve, the supervisor behind `make run`: Ctrl-C or SIGTERM stops both processes and exits 0."""

import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A supervisor of two children that write their pid and sleep; `exit_after` makes the second one end alone.
SCRIPT = textwrap.dedent("""
    import sys
    from demo.serve import serve
    pids, exit_after = sys.argv[1], sys.argv[2]
    child = ("import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\\\n'); "
             "time.sleep(float(sys.argv[2])); sys.exit(int(sys.argv[3]))")
    sys.exit(serve([
        (sys.executable, "-c", child, pids, "120", "0"),
        (sys.executable, "-c", child, pids, exit_after, "3"),
    ]))
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; its parent reaps it.
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] if Path(f"/proc/{pid}").exists() else "X"
    return state not in {"Z", "X"}


def _wait_for_pids(path: Path, n: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and len(lines := path.read_text().split()) >= n:
            return [int(x) for x in lines]
        time.sleep(0.05)
    raise AssertionError("the children did not start")


def _supervisor(tmp_path: Path, exit_after: str = "120") -> tuple[list[str], Path]:
    pids = tmp_path / "pids"
    return [sys.executable, "-c", SCRIPT, str(pids), exit_after], pids


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_both_children_and_exits_0(tmp_path, signum):
    command, pids = _supervisor(tmp_path)
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    children = _wait_for_pids(pids, 2)
    process.send_signal(signum)
    assert process.wait(timeout=30) == 0
    assert "Stopped the web server and the worker." in process.stderr.read()
    assert not any(_alive(pid) for pid in children)


def test_a_child_that_ends_stops_the_other_with_its_status(tmp_path):
    command, pids = _supervisor(tmp_path, exit_after="0.5")
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    children = _wait_for_pids(pids, 2)
    assert process.wait(timeout=30) == 3
    assert not any(_alive(pid) for pid in children)


def test_ctrl_c_in_a_terminal_reaches_the_supervisor_not_the_shell_that_started_it(tmp_path):
    """As under make: a shell starts the supervisor in the terminal's foreground group and goes on after
    it. Ctrl-C must stop the supervisor (exit 0) and leave the shell running, so make exits 0 too."""
    command, pids = _supervisor(tmp_path)
    shell_line = shlex.join(command) + '; echo "after: $?"'
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session of its own with the pty as its terminal, as a login shell has
        os.chdir(ROOT)
        os.execv("/bin/sh", ["/bin/sh", "-c", shell_line])
    output = b""
    children = _wait_for_pids(pids, 2)
    time.sleep(0.3)
    os.write(fd, b"\x03")
    _, status = os.waitpid(pid, 0)
    while select.select([fd], [], [], 0.2)[0]:
        try:
            output += os.read(fd, 4096)
        except OSError:
            break
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"after: 0" in output
    assert not any(_alive(pid) for pid in children)
