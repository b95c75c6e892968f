"""An API process's ingress: a batcher, its group transactions and the publisher to the workers,
put together (the usage reports' and the Stripe events' ingresses are each one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.ingress.batcher import Coalescer, Flush, MicroBatcher
from core.ingress.transactions import GroupTransactions, GroupWork

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
StoredId = TypeVar("StoredId")


@dataclass(frozen=True, slots=True)
class Ingress(Generic[Item, Outcome, StoredId]):
    """An API process's ingress: concurrent requests share a group transaction (`batcher`,
    `transactions`), and the ids of what each group stored go to the workers together
    (`to_workers`). Made at start-up, closed at shutdown."""

    batcher: MicroBatcher[Item, Outcome]
    transactions: GroupTransactions[Item, Outcome]
    to_workers: Coalescer[StoredId]

    @classmethod
    def start(
        cls,
        work: GroupWork[Item, Outcome],
        to_workers: Coalescer[StoredId],
        stored_ids: Callable[[list[Item], Sequence[Outcome | Exception]], Iterable[StoredId]],
        *,
        admit: Admit[Item] | None = None,
    ) -> Ingress[Item, Outcome, StoredId]:
        """`work` stores a group with one write (its reads, such as the license check, may see
        a moment earlier than it); `stored_ids` names, of a group's items and outcomes, what the
        workers must now process (not duplicates, not failures). `admit`, given a group, says
        per item why it may not be stored (a rate limit), or None; the refused items' callers
        get that exception and only the others are stored."""
        transactions: GroupTransactions[Item, Outcome] = GroupTransactions(work, one_write=True)
        flush = transactions.flush if admit is None else _admitting(admit, transactions.flush)

        async def hand_to_workers(
            items: list[Item], outcomes: Sequence[Outcome | Exception]
        ) -> None:
            to_workers.add(stored_ids(items, outcomes))

        batcher = MicroBatcher.from_settings(flush, hand_to_workers)
        return cls(batcher, transactions, to_workers)

    async def aclose(self) -> None:
        # The groups in flight commit and publish first, then the publisher and connections go.
        await self.batcher.aclose()
        await self.to_workers.aclose()
        await self.transactions.aclose()


# Per item of a group: why it may not be stored, or None.
Admit = Callable[[list[Item]], Awaitable[list[Exception | None]]]


def _admitting(admit: Admit[Item], flush: Flush[Item, Outcome]) -> Flush[Item, Outcome]:
    """`flush` for the items `admit` lets through; the refusal for the others.

    A per-group check costs one round trip for the whole group (one Redis call for the rate
    limits of all its requests) instead of one each, and no request waits through a stage of
    its own before its group is formed.
    """

    async def admitted_flush(group: list[Item]) -> Sequence[Outcome | Exception]:
        refusals = await admit(group)
        admitted = [item for item, refused in zip(group, refusals, strict=True) if refused is None]
        outcomes = iter(await flush(admitted) if admitted else ())
        return [next(outcomes) if refused is None else refused for refused in refusals]

    return admitted_flush
