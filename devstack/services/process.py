"""Starting, finding and stopping the service JVMs by pid; nothing here ever signals a process whose
command line does not mention our state folder."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.services.errors import ServiceError

# The signals that ask a process to stop: a terminal's Ctrl-C, `kill`, a closed terminal.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold the stop signals while a process is started and its pid recorded: a handler that raises
    (KeyboardInterrupt, the demo's stop) would otherwise be able to fire after the process exists but
    before anyone knows its pid, leaving it running unseen. A signal that arrives meanwhile is raised
    again once the block ends, to whatever handler was in place before."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread runs signal handlers (and may replace them)
        return
    arrived: list[int] = []
    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int] = {}
    for signum in STOP_SIGNALS:
        handler = signal.getsignal(signum)
        if handler is None or handler == signal.SIG_IGN:
            # Installed outside Python, it could not be put back; ignored, there is nothing to hold, and
            # the new process inherits the ignoring as it would without this block.
            continue
        previous[signum] = handler
        signal.signal(signum, lambda number, _frame: arrived.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for number in dict.fromkeys(arrived):
            signal.raise_signal(number)


# Children started by this Python process, so that stopping one also reaps it (no zombie left behind).
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], *, log_file: Path, pid_file: Path, env: Mapping[str, str], cwd: Path) -> int:
    """Start a detached process (own session, so Ctrl-C in the terminal or the end of the launching
    command does not take it down), output appended to ``log_file``; the pid is written to ``pid_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out, stop_signals_held():
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise ServiceError(f"could not start {argv[0]}: {exc}") from exc
        _children[proc.pid] = proc
        tmp = pid_file.with_suffix(".tmp")
        tmp.write_text(f"{proc.pid}\n")
        tmp.replace(pid_file)
    return proc.pid


def command_line(pid: int) -> str | None:
    """The process's command line, or None when it is gone or a zombie."""
    if not Path("/proc/self").exists():
        try:
            out = subprocess.run(
                ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
            )
        except OSError:
            return None
        return out.stdout.strip() or None
    # Reading /proc/<pid>/cmdline needs the process's memory map: a JVM that is busy mapping its heap
    # right after exec reads back as empty for a moment, so an empty answer from a live process is retried.
    for _ in range(100):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if raw:
            return raw.replace(b"\0", b" ").decode(errors="replace").strip()
        if not alive(pid):
            return None
        time.sleep(0.05)
    return None


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    # The state letter follows the command name in parentheses (which may itself contain spaces).
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def recorded_pid(pid_file: Path, owner_mark: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line contains ``owner_mark``
    (the state folder): a pid reused by an unrelated process is never reported as ours."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    cmdline = command_line(pid)
    if cmdline is None or owner_mark not in cmdline:
        return None
    return pid


def terminate(pids: list[int], timeout_s: float) -> None:
    """SIGTERM every pid, wait up to ``timeout_s`` for all to exit, SIGKILL whatever is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    remaining = list(pids)
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if alive(pid)]
        if remaining:
            time.sleep(0.2)
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if alive(pid)]
        if remaining:
            time.sleep(0.1)
    if remaining:
        raise ServiceError(f"processes {remaining} did not exit even after SIGKILL")


# Exit codes of children reaped here, for error messages ("exited with code 1" vs "killed by signal 9").
_exit_codes: dict[int, int] = {}


def exit_code(pid: int) -> int | None:
    """How a child of this process ended (negative: killed by that signal), if it was ours and has ended."""
    _reap(pid)
    return _exit_codes.get(pid)


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None:
        code = proc.poll()
        if code is not None:
            _exit_codes[pid] = code
            del _children[pid]
        return
    # A child of ours started by an earlier launcher object in this process: collect its exit status.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
