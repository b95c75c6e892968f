"""CPU profiles of the benchmarked processes, sampled with py-spy (from the dev extra): the
sampler, the CPU spent per request, and a summary of the project's busiest functions."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import PROJECT_ROOT

PROFILE_RATE = 250  # samples a second, per busy thread (py-spy --rate)
# Where the project's own functions live (the summary lists theirs).
PROJECT_PACKAGES = ("api/", "core/", "tasks/", "workers/", "models/")


@contextmanager
def profiled(
    pid: int, seconds: float, output: Path, *, delay: float = 0, subprocesses: bool = False
) -> Iterator[None]:
    """Sample process `pid` (and its children: a prefork worker's pool) with py-spy, CPU
    samples only, for `seconds`, starting after `delay`, into `output`."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    command += ["--format", "raw", "--output", str(output), "--rate", str(PROFILE_RATE)]
    command += ["--nonblocking", *(["--subprocesses"] if subprocesses else [])]
    script = f"sleep {delay}; exec {shlex.join(command)}"
    process = subprocess.Popen(
        ["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        try:
            process.wait(timeout=delay + seconds + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _frame_name(frame: str) -> str:
    # py-spy raw frames read "function (path/to/file.py:line)": keep function and file.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.replace(str(PROJECT_ROOT) + "/", "")
    return f"{name} ({path})"


def profile_cpu_ms(output: Path, requests: int) -> float | None:
    """Milliseconds of CPU (all threads) the profiled process spent per request."""
    if not output.exists() or not requests:
        return None
    samples = sum(
        int(line.rpartition(" ")[2])
        for line in output.read_text().splitlines()
        if line.rpartition(" ")[2].isdigit()
    )
    return samples * 1000 / PROFILE_RATE / requests


def profile_summary(output: Path, *, top: int = 12) -> list[str]:
    """The functions with the most samples: on the stack (inclusive) and running (self)."""
    if not output.exists():
        return ["(no profile: py-spy could not attach; install the dev extra and allow ptrace)"]
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + count
    if not total:
        return ["(no samples)"]
    lines = [f"{total} CPU samples; the project's functions, inclusive (on the stack):"]
    ours = [
        (count, frame)
        for frame, count in inclusive.items()
        if frame.rpartition(" (")[2].startswith(PROJECT_PACKAGES)
    ]
    for count, frame in sorted(ours, reverse=True)[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    lines.append("self (running):")
    for frame, count in sorted(own.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    return lines
