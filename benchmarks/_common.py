"""What the benchmark scripts share: the machine line, progress lines, writing one section of RESULTS.md,
and starting/stopping the servers they measure."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Sequence


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def ram() -> str:
    """", 16 GiB RAM" from /proc/meminfo, or "" when it cannot be read."""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        return ""
    return f", {kb / 2**20:.0f} GiB RAM"


def versions(packages: Sequence[str]) -> list[str]:
    """"name version" of each installed package, in the order given; missing ones are left out."""
    out = []
    for name in packages:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return out


def machine(packages: Sequence[str], extra: str = "", before_date: str = "") -> str:
    """The "Machine: …" line of a report.

    >>> machine(["numpy"], extra="Mode: full.")  # doctest: +SKIP
    'Machine: 2 cores (…), 8 GiB RAM, Linux 6.1, Python 3.12.3. Packages: numpy 2.1.0. Date: 2025-01-31. Mode: full.'

    ``before_date`` stands between the packages and the date, ``extra`` after the date.
    """
    cores = os.cpu_count()
    line = (f"Machine: {cores} core{'s' if cores != 1 else ''} ({cpu_model()}){ram()}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}. Packages: {', '.join(versions(packages))}. "
            f"{before_date + ' ' if before_date else ''}Date: {datetime.date.today().isoformat()}.")
    return f"{line} {extra}" if extra else line


def replace_section(text: str, heading: str, section: str) -> str:
    """``text`` with its ``heading`` section (up to the next '## ' heading) replaced by ``section``, or it appended."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    block = section.rstrip("\n") + "\n"
    if start is None:
        return text.rstrip("\n") + "\n\n" + block
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + block + ("\n" + tail if tail else "")


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section ``heading`` of the markdown file ``path`` atomically, keep the rest."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(replace_section(text, heading, section))
    os.replace(tmp, path)


def log(msg: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def publish(text: str, out: Path | None, heading: str, failed: list[str], what: str = "targets missed") -> None:
    """Print a benchmark's section, write it into ``out`` (None: leave RESULTS.md alone), then name what failed."""
    print(text)
    if out is not None:
        write_section(out, heading, text)
        log(f"wrote the section {heading!r} of {out}")
    else:
        log("--quick: RESULTS.md left alone (pass --results PATH to write the table)")
    if failed:
        log(f"{what}: " + "; ".join(failed))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop a server started with ``start_new_session=True`` and all its children (e.g. MLflow's workers)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group's stragglers
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
