"""Figures each fault test collects; tests/faults/conftest.py prints them after the run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FaultFigures:
    """What one fault test injected and what came of the requests it sent."""

    test: str
    faults: list[str] = field(default_factory=list)
    # Requests (HTTP deliveries) the test sent and how the ingress answered them.
    sent: int = 0
    answered_2xx: int = 0
    answered_503: int = 0
    answered_other: int = 0
    # Rows for the 2xx answers found in the database, and how many of those were processed.
    stored: int = 0
    processed: int = 0
    # Free-form facts (distinct events, duplicates, slowest answer, redeliveries...).
    notes: dict[str, object] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.sent += 1
        if 200 <= status < 300:
            self.answered_2xx += 1
        elif status == 503:
            self.answered_503 += 1
        else:
            self.answered_other += 1


RECORDED: list[FaultFigures] = []


def record(test: str) -> FaultFigures:
    figures = FaultFigures(test)
    RECORDED.append(figures)
    return figures
