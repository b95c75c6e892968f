"""What every benchmark shares: a throwaway environment, real processes and the result table.

`bench_environment()` must be entered before any project module reads the settings: it points the
environment at a new PostgreSQL database (migrated, dropped at the end), a Redis key prefix of its
own (deleted at the end) and a fresh RSA key pair in a temporary folder, exactly as the test
harness does, so a benchmark never touches a developer's data and two runs never collide.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True, slots=True)
class BenchEnv:
    name: str
    database: str
    database_url: str
    key_prefix: str
    keys_dir: Path
    data_dir: Path
    webhook_secret: str

    @property
    def psql_dsn(self) -> str:
        """The database as a libpq URL, for psql."""
        return self.database_url.replace("postgresql+psycopg2://", "postgresql://", 1)


def _admin_execute(sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()


@contextmanager
def bench_environment(name: str, **extra_env: str) -> Iterator[BenchEnv]:
    """A migrated throwaway database, Redis prefix and key pair; everything removed afterwards."""
    run_id = uuid.uuid4().hex[:8]
    database = f"bench_{name}_{run_id}"
    env = BenchEnv(
        name=name,
        database=database,
        database_url=POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}",
        key_prefix=f"billing-bench-{run_id}:",
        keys_dir=Path(tempfile.mkdtemp(prefix="billing-bench-keys-")),
        data_dir=Path(tempfile.mkdtemp(prefix="billing-bench-data-")),
        webhook_secret=f"whsec_bench_{run_id}",
    )
    os.environ.update(
        DATABASE_URL=env.database_url,
        CELERY_BROKER_URL=REDIS_URL,
        CELERY_RESULT_BACKEND=REDIS_URL,
        CELERY_KEY_PREFIX=env.key_prefix,
        LICENSE_PRIVATE_KEY_PATH=str(env.keys_dir / "private-key.pem"),
        LICENSE_PUBLIC_KEY_PATH=str(env.keys_dir / "public-key.pem"),
        DATA_DIR=str(env.data_dir),
        STRIPE_WEBHOOK_SECRET=env.webhook_secret,
    )
    # The servers run with their default settings, the access log of every request included
    # (each child's output goes to a file in the data folder, see `running`).
    os.environ.pop("LOG_LEVEL", None)
    os.environ.update(extra_env)
    for unset in ("LICENSE_PRIVATE_KEY", "STRIPE_SECRET_KEY", "STRIPE_API_BASE"):
        os.environ.pop(unset, None)
    # The project reads .env too; a benchmark must not pick up a developer's settings from it.
    os.chdir(env.data_dir)
    sys.path.insert(0, str(PROJECT_ROOT))

    _admin_execute(f'DROP DATABASE IF EXISTS "{database}"')
    _admin_execute(f'CREATE DATABASE "{database}"')
    try:
        from core import migrations
        from core.licensing.keys import generate_key_pair
        from core.settings import get_settings

        migrations.upgrade()
        generate_key_pair(get_settings())
        yield env
    finally:
        from core.db import engine_for

        engine_for(env.database_url).dispose()
        _admin_execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _delete_redis_keys(env.key_prefix)
        shutil.rmtree(env.keys_dir, ignore_errors=True)
        shutil.rmtree(env.data_dir, ignore_errors=True)


def _delete_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


# ---------------------------------------------------------------------------------------------
# Real processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def billing_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


def baseline_command(*args: str) -> list[str] | None:
    """`billing ARGS` of the checkout at BENCH_BASELINE_ROOT (another commit's worktree, with its
    own .venv), to measure it side by side with this one in the same run; None when unset."""
    root = os.environ.get("BENCH_BASELINE_ROOT")
    if not root:
        return None
    python = Path(root) / ".venv" / "bin" / "python"
    return ["env", f"PYTHONPATH={root}", str(python), "-m", "cli.main", *args]


def compare_to_baseline(kind: str, ratio: float, p99_ms: float, old_ratio: float) -> bool:
    """This code's real/bare ratio within 10 % of the baseline's, p99 under 25 ms (printed)."""
    passed = ratio >= 0.9 * old_ratio and p99_ms < 25.0
    print(
        f"{kind}: new/bare {ratio:.2f} vs old/bare {old_ratio:.2f} "
        f"({ratio / old_ratio:.2f} of the old; target >= 0.90), new p99 {p99_ms:.1f} ms "
        f"(target < 25) -> {verdict(passed)}"
    )
    return passed


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return env


@contextmanager
def running(args: Sequence[str], **extra_env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (in the benchmark's data folder, its output in a log file there), always
    stopped with SIGTERM then kill."""
    log_path = Path(os.getcwd()) / f"{Path(args[-1]).name}-{time.monotonic_ns()}.log"
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            list(args), env=child_env(**extra_env), cwd=os.getcwd(), stdout=output, stderr=output
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


# ---------------------------------------------------------------------------------------------
# Timing and reporting


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _first_line(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def machine_description() -> str:
    cpu = "?"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else platform.processor() or "?"
    except OSError:
        pass
    memory = "?"
    try:
        match = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        memory = f"{int(match.group(1)) / 1024 / 1024:.0f} GiB" if match else "?"
    except OSError:
        pass
    postgres = _first_line(["psql", "--version"]).replace("psql (PostgreSQL) ", "PostgreSQL ")
    redis_version = "?"
    try:
        import redis

        redis_version = "Redis " + str(redis.Redis.from_url(REDIS_URL).info()["redis_version"])
    except Exception:  # noqa: BLE001 - the description is informative only
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory}; {postgres}; {redis_version}; "
        f"Python {platform.python_version()}"
    )


@dataclass(frozen=True, slots=True)
class Row:
    measure: str
    value: str


def print_table(title: str, rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "─" * (sum(widths) + 3 * (len(widths) - 1))
    print()
    print(title)
    print(line)
    print(" | ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(line)


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def print_verdict(name: str, ratio_text: str, target: str, passed: bool) -> None:
    print(f"{name}: {ratio_text} (target {target}) -> {verdict(passed)}")
    print(f"machine: {machine_description()}")


def load(
    port: int,
    requests: list[bytes],
    scratch: Path,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
) -> dict[str, object]:
    """Run the load generator (bench/loadgen.py) as its own process against `port`; its JSON
    result. `requests` are raw HTTP requests, sent in order over keep-alive connections."""
    path = scratch / "requests.pickle"
    path.write_bytes(pickle.dumps(requests))
    command = [sys.executable, "-m", "bench.loadgen", str(path), "--port", str(port)]
    command += ["--concurrency", str(concurrency), "--duration", str(duration)]
    command += ["--warmup", str(warmup)]
    out = subprocess.run(command, env=child_env(), capture_output=True, text=True, check=True)
    path.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])
