"""Fault tests: real api, worker and beat processes, and a Redis or PostgreSQL that breaks.

Each test owns what it breaks: a redis-server of its own on a free loopback port, or a TCP proxy
in front of the shared PostgreSQL that it cuts. The figures each test records are printed as a
table at the end of the run (docs/reliability.md quotes them).
"""

from __future__ import annotations

from typing import Any

from tests.faults.figures import RECORDED
from tests.stripe_fixtures import stand_in, stripe_server  # noqa: F401 - fixtures


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RECORDED:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault test figures")
    header = (
        f"{'test':<44} {'sent':>5} {'2xx':>5} {'503':>5} {'other':>5} {'stored':>6} "
        f"{'processed':>9}"
    )
    write(header)
    write("-" * len(header))
    for figures in RECORDED:
        write(
            f"{figures.test:<44} {figures.sent:>5} {figures.answered_2xx:>5} "
            f"{figures.answered_503:>5} {figures.answered_other:>5} {figures.stored:>6} "
            f"{figures.processed:>9}"
        )
    write("")
    for figures in RECORDED:
        write(f"{figures.test}:")
        write(f"  faults injected and survived: {'; '.join(figures.faults) or 'none'}")
        for name, value in figures.notes.items():
            write(f"  {name}: {value}")
