"""Partitions benchmark: batched deletes on one `usage_reports` table, or daily partitions dropped.

`./scripts/bench partitions`. The same reports in two layouts, side by side in one database:
- plain: `usage_reports` itself (migrated: its indexes, foreign key), pruned by the project's
  pruner (`core.retention.pruning.prune`: keyset batches of PRUNE_BATCH_SIZE, then the vacuum);
- partitioned: a copy by range on `reported_at`, a partition a UTC day, the same columns, foreign
  key and indexes copied from the catalogue. A unique index of a partitioned table must hold the
  partition key: the primary key becomes (id, reported_at), the (customer, instance, time) key
  stays unique, the Idempotency-Key index (customer_id, idempotency_key) can only be a plain one.
  Exact deduplication then costs a key table (`usage_report_keys`, a row a report, pruned by
  batched deletes) claimed in the same statement ("+ keys"), or a lookup in every partition
  before the insert ("+ lookup"; exact only if one key's inserts are serialized, which is not
  measured: a lower bound).

BENCH_PARTITIONS_DAYS (10) x BENCH_PARTITIONS_REPORTS_PER_DAY (200000) processed reports, each
with a UUID Idempotency-Key as the SDK sends, are loaded into each; then measured: (4)
BENCH_PARTITIONS_RETRIES (1000) reports of the last day resent re-stamped after midnight (an
untimed report's retry), the INSERT and each one's lookup; (2) the next day's reports in groups
of BENCH_PARTITIONS_BATCH (16, the ingress's group), INSERT ... ON CONFLICT DO NOTHING
RETURNING, a transaction each, the ways taking turns (BENCH_PARTITIONS_ROUNDS, 6); (3) sizes;
(1) the oldest day removed: the pruner against DETACH PARTITION CONCURRENTLY + DROP TABLE and
the key table's batched delete. Verdict: batched deletes are kept when a day's prune takes
under a minute, deduplication is exact, and partitions with exact dedup ingest at most 10 %
faster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.common import bench_environment, print_table, print_verdict

DAYS = int(os.environ.get("BENCH_PARTITIONS_DAYS", "10"))
REPORTS_PER_DAY = int(os.environ.get("BENCH_PARTITIONS_REPORTS_PER_DAY", "200000"))
BATCH = int(os.environ.get("BENCH_PARTITIONS_BATCH", "16"))
RETRIES = int(os.environ.get("BENCH_PARTITIONS_RETRIES", "1000"))
ROUNDS = int(os.environ.get("BENCH_PARTITIONS_ROUNDS", "6"))
CUSTOMERS = 1000
INSTANCES = 5
PRUNE_LIMIT_SECONDS = 60.0
INGEST_TOLERANCE = 0.10

PLAIN, PART, KEYS = "usage_reports", "usage_reports_part", "usage_report_keys"
COLUMNS = (
    "customer_id, instance_id, active_devices, total_devices, reported_at, idempotency_key, "
    "attempts, created_at, processed_at"
)
# Reports n = lo, lo + step, ... <= hi of a day of `count` (bench/data.py's spread), stamped
# `start` + n x `spread` / `count` seconds; the key depends on `prefix` and n only, so a
# re-stamped retry carries its original's key (as the SDK's uuid5 keys do).
NEW_REPORTS = f"""
SELECT format('cust_bench_%s', lpad((1 + n % {CUSTOMERS})::text, 6, '0')) AS customer_id,
       format('instance-%s', (n / {CUSTOMERS}) % {INSTANCES}) AS instance_id,
       (n * 7) % 45 AS active_devices, 45 AS total_devices,
       :start + make_interval(secs => (n::double precision * :spread) / :count) AS reported_at,
       md5(:prefix || n::text)::uuid::text AS idempotency_key, 0 AS attempts,
       now() AS created_at, CASE WHEN :processed THEN now() END AS processed_at
FROM generate_series(CAST(:lo AS bigint), :hi, :step) AS n
"""
INSERTS = {
    # The ingress as it is: both unique keys are global, a resend conflicts.
    "plain": f"""
        INSERT INTO {PLAIN} ({COLUMNS}) {NEW_REPORTS}
        ON CONFLICT DO NOTHING RETURNING id""",
    # The key claimed in the key table first; only reports whose key was new are stored.
    "partitioned + keys": f"""
        WITH new AS ({NEW_REPORTS}),
        claimed AS (
            INSERT INTO {KEYS} (customer_id, idempotency_key, reported_at)
            SELECT customer_id, idempotency_key, reported_at FROM new
            ON CONFLICT DO NOTHING RETURNING customer_id, idempotency_key)
        INSERT INTO {PART} ({COLUMNS})
        SELECT new.* FROM new JOIN claimed USING (customer_id, idempotency_key)
        ON CONFLICT DO NOTHING RETURNING id""",
    # The key looked up in every partition's (customer_id, idempotency_key) index first.
    "partitioned + lookup": f"""
        WITH new AS ({NEW_REPORTS})
        INSERT INTO {PART} ({COLUMNS})
        SELECT * FROM new WHERE NOT EXISTS (
            SELECT 1 FROM {PART} p
            WHERE p.customer_id = new.customer_id AND p.idempotency_key = new.idempotency_key)
        ON CONFLICT DO NOTHING RETURNING id""",
    # What the partitioned table alone does: only the partition-local keys hold.
    "partitioned, no dedup": f"""
        INSERT INTO {PART} ({COLUMNS}) {NEW_REPORTS}
        ON CONFLICT DO NOTHING RETURNING id""",
}
# The stored report a resend stands for (the ingress's lookup by Idempotency-Key).
LOOKUPS = {
    "plain": f"SELECT id, active_devices FROM {PLAIN} WHERE customer_id = :c "
    "AND idempotency_key = :k",
    "partitioned + keys": f"SELECT p.id, p.active_devices FROM {KEYS} k JOIN {PART} p "
    "ON p.customer_id = k.customer_id AND p.idempotency_key = k.idempotency_key "
    "AND p.reported_at = k.reported_at WHERE k.customer_id = :c AND k.idempotency_key = :k",
    "partitioned + lookup": f"SELECT id, active_devices FROM {PART} WHERE customer_id = :c "
    "AND idempotency_key = :k",
}
EXACT = ("plain", "partitioned + keys", "partitioned + lookup")
LAYOUTS = ("plain", "partitioned", "partitioned + keys")
INDEXES_SQL = """
SELECT i.indisunique, i.indisprimary, pg_get_indexdef(i.indexrelid),
       ARRAY(SELECT a.attname FROM unnest(i.indkey) AS k
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k)
FROM pg_index i WHERE i.indrelid = 'usage_reports'::regclass
"""
FOREIGN_KEYS_SQL = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'usage_reports'::regclass AND contype = 'f'
"""
# Table and index bytes: plain, partitioned, partitioned + keys.
SIZES_SQL = f"""
WITH part AS (SELECT sum(pg_relation_size(relid)) AS t, sum(pg_indexes_size(relid)) AS i
              FROM pg_partition_tree('{PART}') WHERE isleaf)
SELECT pg_relation_size('{PLAIN}'), pg_indexes_size('{PLAIN}'), t, i,
       t + pg_relation_size('{KEYS}'), i + pg_indexes_size('{KEYS}') FROM part
"""
DELETE_KEYS_BATCH = f"""
DELETE FROM {KEYS} WHERE (customer_id, idempotency_key) IN (
    SELECT customer_id, idempotency_key FROM {KEYS}
    WHERE reported_at >= :after AND reported_at < :before
    ORDER BY reported_at LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING reported_at
"""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _partition(day: date) -> str:
    return f"{PART}_{day:%Y%m%d}"


def _params(day: date, lo: int, hi: int, **changes: Any) -> dict[str, Any]:
    """NEW_REPORTS's parameters: reports lo..hi of `day`, processed, stamped on their day."""
    params = {
        "start": _midnight(day),
        "spread": 86400,
        "count": REPORTS_PER_DAY,
        "prefix": f"{day.isoformat()}/",
        "processed": True,
        "lo": lo,
        "hi": hi,
        "step": 1,
    }
    return params | changes


def _execute(sql: str, params: dict[str, Any] | None = None, *, autocommit: bool = False) -> Any:
    """`sql` in a transaction of its own (or none: VACUUM, DETACH ... CONCURRENTLY); its rows."""
    from sqlalchemy import text

    from core.db import get_engine

    options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    with get_engine().connect().execution_options(**options) as connection, connection.begin():
        result = connection.execute(text(sql), params or {})
        return result.all() if result.returns_rows else []


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _create_partitioned(days: list[date]) -> None:
    """PART: usage_reports' columns, foreign key and indexes (unique ones made to hold the
    partition key, or made plain where they cannot), a partition a day; and the key table."""
    _execute(
        f"CREATE TABLE {PART} (LIKE {PLAIN} INCLUDING DEFAULTS INCLUDING STORAGE) "
        "PARTITION BY RANGE (reported_at)"
    )
    for unique, primary, definition, columns in _execute(INDEXES_SQL):
        if primary:
            _execute(f"ALTER TABLE {PART} ADD PRIMARY KEY ({', '.join(columns)}, reported_at)")
            continue
        if unique and "reported_at" not in columns:
            definition = definition.replace("CREATE UNIQUE INDEX", "CREATE INDEX")
        name = definition.split(" INDEX ", 1)[1].split(" ", 1)[0]
        using = definition.split(" USING ", 1)[1]
        kind = "UNIQUE INDEX" if "UNIQUE INDEX" in definition else "INDEX"
        _execute(f"CREATE {kind} {name}_part ON {PART} USING {using}")
    for name, definition in _execute(FOREIGN_KEYS_SQL):
        _execute(f"ALTER TABLE {PART} ADD CONSTRAINT {name}_part {definition}")
    for day in days:
        _execute(
            f"CREATE TABLE {_partition(day)} PARTITION OF {PART} FOR VALUES "
            f"FROM ('{_midnight(day).isoformat()}') TO "
            f"('{_midnight(day + timedelta(days=1)).isoformat()}')"
        )
    _execute(
        f"CREATE TABLE {KEYS} (customer_id varchar(64) NOT NULL, "
        "idempotency_key varchar(255) NOT NULL, reported_at timestamptz NOT NULL, "
        "PRIMARY KEY (customer_id, idempotency_key))"
    )
    _execute(f"CREATE INDEX ix_{KEYS}_reported_at ON {KEYS} (reported_at)")


def _load(days: list[date]) -> None:
    """Every day's reports into both layouts (and their keys), rolled up and vacuumed."""
    for day in days:
        params = _params(day, 0, REPORTS_PER_DAY - 1)
        took = [
            _timed(lambda sql=sql, p=params: _execute(sql, p))
            for sql in (
                f"INSERT INTO {PLAIN} ({COLUMNS}) {NEW_REPORTS}",
                f"INSERT INTO {PART} ({COLUMNS}) {NEW_REPORTS}",
                f"INSERT INTO {KEYS} SELECT customer_id, idempotency_key, reported_at "
                f"FROM {_partition(day)}",
                # The day's rollup has finished: the pruner takes it once past retention.
                "INSERT INTO usage_rollup_days (day, started_at, finished_at) "
                "VALUES ((:start AT TIME ZONE 'UTC')::date, now(), now())",
            )
        ]
        print(f"  {day}: plain {took[0]:.1f} s, partitioned {took[1]:.1f} s", flush=True)
    for table in (PLAIN, PART, KEYS):
        _execute(f"VACUUM ANALYZE {table}", autocommit=True)


def _retries(day: date) -> tuple[int, dict[str, tuple[float, int, int | str]]]:
    """RETRIES reports of `day` resent re-stamped just after midnight: how many; per way the
    seconds per retry (INSERT in groups, then each one's lookup), stored again, found."""
    from sqlalchemy import text

    from core.db import get_engine

    step = max(1, REPORTS_PER_DAY // RETRIES)
    # Spread over the first second of the next day, each at its own microsecond.
    restamped = {"start": _midnight(day + timedelta(days=1)), "spread": 1, "step": step}
    sent = _execute(
        f"SELECT customer_id, idempotency_key FROM ({NEW_REPORTS}) AS r",
        _params(day, 0, REPORTS_PER_DAY - 1, **restamped),
    )
    results: dict[str, tuple[float, int, int | str]] = {}
    for way, sql in INSERTS.items():
        started, stored = time.perf_counter(), 0
        for lo in range(0, REPORTS_PER_DAY, step * BATCH):
            params = _params(day, lo, min(lo + step * BATCH, REPORTS_PER_DAY) - 1, **restamped)
            # Rolled back without dedup: it only shows what would be stored twice.
            with get_engine().connect() as connection:
                stored += len(connection.execute(text(sql), params).all())
                (connection.commit if way in EXACT else connection.rollback)()
        found: int | str = "-"  # without dedup there is no original to find
        if way in LOOKUPS:
            found = sum(len(_execute(LOOKUPS[way], {"c": c, "k": k})) for c, k in sent)
        results[way] = ((time.perf_counter() - started) / len(sent), stored, found)
    return len(sent), results


def _ingest(day_of: dict[str, date]) -> dict[str, tuple[float, int]]:
    """A day's reports stored by each exact way (into the day `day_of` it), in the ingress's
    groups; the ways take turns in ROUNDS slices, so a load swing on the machine hits each."""
    groups = range(0, REPORTS_PER_DAY, BATCH)
    size = -(-len(groups) // ROUNDS)
    seconds, stored = dict.fromkeys(EXACT, 0.0), dict.fromkeys(EXACT, 0)
    for number, first in enumerate(range(0, len(groups), size)):
        for way in EXACT[number % 3 :] + EXACT[: number % 3]:
            started = time.perf_counter()
            for lo in groups[first : first + size]:
                params = _params(
                    day_of[way], lo, min(lo + BATCH, REPORTS_PER_DAY) - 1, processed=False
                )
                stored[way] += len(_execute(INSERTS[way], params))
            seconds[way] += time.perf_counter() - started
    return {way: (seconds[way], stored[way]) for way in EXACT}


def _remove_oldest(day: date) -> dict[str, tuple[float, int, str]]:
    """`day` removed: by the pruner from the plain table, by DETACH + DROP from the partitioned
    one (and its keys by batched deletes). Seconds, rows and what the time was spent on."""
    from core.db import session_scope
    from core.retention.pruning import prune, vacuum
    from core.settings import get_settings

    settings = get_settings()
    # The first instant at which `day` (and only it) is past retention, at the nightly hour.
    retention = timedelta(days=1 + settings.usage_report_retention_days, hours=2, minutes=30)
    pruned = next(
        r for r in prune(session_scope, now=_midnight(day) + retention) if r.table == PLAIN
    )
    (rows,) = _execute(f"SELECT count(*) FROM {_partition(day)}")[0]
    detach = _timed(
        lambda: _execute(
            f"ALTER TABLE {PART} DETACH PARTITION {_partition(day)} CONCURRENTLY", autocommit=True
        )
    )
    drop = _timed(lambda: _execute(f"DROP TABLE {_partition(day)}"))
    started, keys, after = time.perf_counter(), 0, _midnight(day)
    before, limit = _midnight(day + timedelta(days=1)), settings.prune_batch_size
    while True:
        batch = _execute(DELETE_KEYS_BATCH, {"after": after, "before": before, "limit": limit})
        keys += len(batch)
        if len(batch) < limit:
            break
        after = max(stamp for (stamp,) in batch)
    keys_vacuum = _timed(lambda: vacuum(KEYS))
    keys_seconds = time.perf_counter() - started
    return {
        "plain (pruner)": (pruned.seconds, pruned.rows, f"vacuum {pruned.vacuum_seconds:.2f} s"),
        "partition DETACH + DROP": (detach + drop, rows, f"detach {detach:.2f}, drop {drop:.2f}"),
        "key table (batched)": (keys_seconds, keys, f"vacuum {keys_vacuum:.2f} s"),
    }


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f}"


def _load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    with bench_environment("partitions"):
        from bench.data import load_customers

        print(
            f"partitions: {DAYS} days x {REPORTS_PER_DAY} reports ({CUSTOMERS} customers x "
            f"{INSTANCES} instances), groups of {BATCH}; load average {_load_average()}"
        )
        first = datetime.now(UTC).date() - timedelta(days=DAYS + 1)
        days = [first + timedelta(days=number) for number in range(DAYS + 2)]
        # The day after the last loaded: ingested, and where the retries land; the lookup way
        # ingests the same reports the day after (its own keys), as its partition is taken.
        nxt, other = days[DAYS], days[DAYS + 1]
        load_customers(CUSTOMERS)
        _create_partitioned(days)
        _load(days[:DAYS])
        sizes = [int(size) for size in _execute(SIZES_SQL)[0]]
        print(f"retries of {days[DAYS - 1]} re-stamped {nxt}...", flush=True)
        sent, retries = _retries(days[DAYS - 1])
        print(f"ingest of {nxt}...", flush=True)
        ingest = _ingest({"plain": nxt, "partitioned + keys": nxt, "partitioned + lookup": other})
        print(f"removing {days[0]}...", flush=True)
        removal = _remove_oldest(days[0])
        print(f"load average at the end: {_load_average()}")

        print_table(
            f"(1) Removing the oldest day ({REPORTS_PER_DAY} reports)",
            [(way, f"{s:.2f}", str(rows), note) for way, (s, rows, note) in removal.items()],
            ("way", "seconds", "rows", "of it"),
        )
        rates = {way: stored / seconds for way, (seconds, stored) in ingest.items()}
        ratios = {way: f"{rate:,.0f} | {rate / rates['plain']:.2f}" for way, rate in rates.items()}
        print_table(
            f"(2) Ingest of a day in groups of {BATCH}, one transaction each, {ROUNDS} turns",
            [
                (way, f"{s:.1f}", str(n), *ratios[way].split(" | "))
                for way, (s, n) in ingest.items()
            ],
            ("way", "seconds", "stored", "reports/s", "÷ plain"),
        )
        plain_total = sum(sizes[:2])
        print_table(
            f"(3) Sizes after {DAYS} days (before the ingest), MB",
            [
                (way, _mb(t), _mb(i), _mb(t + i), f"{(t + i) / plain_total:.2f}")
                for way, t, i in zip(LAYOUTS, sizes[::2], sizes[1::2], strict=True)
            ],
            ("layout", "table", "indexes", "total", "÷ plain"),
        )
        print_table(
            f"(4) A retry crossing midnight: {sent} reports of {days[DAYS - 1]} resent at {nxt}",
            [
                (way, f"{s * 1000:.2f}", f"{s / retries['plain'][0]:.2f}", str(twice), str(found))
                for way, (s, twice, found) in retries.items()
            ],
            ("way", "ms per retry", "÷ plain", "stored twice", "original found"),
        )
        prune_seconds = removal["plain (pruner)"][0]
        keys_ratio = rates["partitioned + keys"] / rates["plain"]
        exact = all(retries[way][1:] == (0, sent) for way in EXACT)
        passed = exact and prune_seconds < PRUNE_LIMIT_SECONDS
        passed = passed and keys_ratio <= 1 + INGEST_TOLERANCE
        print("choice: " + ("batched deletes on one table" if passed else "see the figures"))
        print_verdict(
            "partitions",
            f"batched delete of a day {prune_seconds:.1f} s, partitioned + keys ingest "
            f"{keys_ratio:.2f}x plain, exact dedup: {'yes' if exact else 'NO'}",
            f"delete < {PRUNE_LIMIT_SECONDS:.0f} s, partitioned ingest <= 1.10x, exact",
            passed,
        )


if __name__ == "__main__":
    main()
