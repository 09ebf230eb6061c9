"""Is the process that wrote something still alive? (pid plus its start tick, so a reused pid
is not mistaken for the writer.)"""

from __future__ import annotations

import hashlib
import os
import socket


def _proc_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (Linux): state first, start tick at 19."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()


def proc_start(pid: int) -> str | None:
    """The kernel's start tick of a process, to tell a live pid from a reused one."""
    fields = _proc_stat(pid)
    return fields[19].decode() if fields else None


_own: dict[int, str | None] = {}


def own_start() -> str | None:
    """This process's start tick (cached per pid: a forked child must not inherit its parent's)."""
    pid = os.getpid()
    if pid not in _own:
        _own[pid] = proc_start(pid)
    return _own[pid]


_spaces: dict[int, str] = {}


def pid_space() -> str:
    """A short tag of where this process's pids mean something: the host name and the pid
    namespace (a container, ``unshare``). A pid written by a process of another space says
    nothing here (it may be absent, or another process), so its writer is never judged dead."""
    pid = os.getpid()
    if pid not in _spaces:
        key = socket.gethostname()
        try:
            key += os.readlink("/proc/self/ns/pid")
        except OSError:  # not Linux: the host name is all there is
            pass
        _spaces[pid] = hashlib.sha256(key.encode()).hexdigest()[:8]
    return _spaces[pid]


def pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc (not Linux): the signal check is all there is
    if fields[0] in (b"Z", b"X"):
        return False  # exited, not yet collected by its parent
    # with a start tick, the pid must still belong to the process that wrote it (not a reused pid)
    return start is None or fields[19].decode() == start
