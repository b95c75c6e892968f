"""The ingress: how an API process stores the requests that carry the load (usage reports,
Stripe events) and hands them to the workers.

- `batcher.MicroBatcher` groups the requests that arrive together (group commit);
  `batcher.Coalescer` gathers the stored ids of many groups into one task publish at a time.
- `transactions.GroupTransactions` runs a group's work (steps, core/db_steps.py) in one
  transaction, over the ingress's own asyncpg connections (`connections.HeldAsyncpgConnections`).
- `ingress.Ingress` puts the three together; a domain starts its own (core/usage/ingest.py,
  core/billing/inbox.py) with the callables it needs (its group's work, who is admitted, how to
  publish), so the ingress knows nothing of the API, the tasks or the broker.
"""

from core.ingress.ingress import Ingress

__all__ = ["Ingress"]
