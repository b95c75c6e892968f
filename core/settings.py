"""The one settings object, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Schemes operators and PaaS providers write for PostgreSQL. SQLAlchemy 2.1 maps a plain
# postgresql:// to psycopg 3, which is not installed: psycopg2 is the driver this service ships.
POSTGRES_SCHEMES = ("postgres", "postgresql")
POSTGRES_DRIVER_SCHEME = "postgresql+psycopg2"


def normalise_database_url(url: str) -> str:
    """postgres://… and postgresql://… -> postgresql+psycopg2://…; other URLs unchanged."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() in POSTGRES_SCHEMES:
        return f"{POSTGRES_DRIVER_SCHEME}://{rest}"
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Where the embedded defaults (SQLite database and broker) live when no URLs are given.
    data_dir: Path = Path("data")

    database_url: str | None = None
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    # Prefix for every Redis key Celery writes, so deployments (or test runs) can share one Redis.
    celery_key_prefix: str = ""
    # Redis redelivers a task that was taken but never acknowledged (a killed worker) after this.
    celery_visibility_timeout_seconds: int = 1800
    # How often each worker looks for such timed-out tasks (kombu's default scans only every
    # 10th 10 s tick, which adds up to ~100 s to the redelivery of a killed worker's task).
    celery_unacked_restore_interval_seconds: int = 10
    worker_concurrency: int = 2
    # PostgreSQL: a statement waiting longer than this for a row or table lock gives up (the API
    # answers 503, a task retries) instead of queueing behind it; 0 waits forever.
    database_lock_timeout_ms: int = 5000
    # PostgreSQL: no statement runs longer than this; 0 means no limit.
    database_statement_timeout_ms: int = 60000
    # Connections each process keeps open, the extra it may open under load, and how long a
    # request waits for a free one before the API answers 503.
    database_pool_size: int = 10
    database_max_overflow: int = 20
    database_pool_timeout_seconds: float = 10.0

    host: str = "127.0.0.1"
    port: int = 3100
    public_base_url: str = "http://127.0.0.1:3100"
    # Proxies (comma-separated addresses, or *) whose X-Forwarded-For names the client: the rate
    # limits count per client address, so behind a proxy set this to the proxy's address.
    forwarded_allow_ips: str = "127.0.0.1"

    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    # Thin events (v2, e.g. v1.billing.meter.error_report_triggered) reach us only through an
    # event destination of their own, which Stripe signs with its own secret
    # (docs.stripe.com/event-destinations): the same /webhooks/stripe URL, this secret.
    stripe_thin_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    # The Stripe API version every call is made with (and the webhook endpoint must be set to):
    # the version stripe-python 16.x sends, whose object shapes the code reads.
    stripe_api_version: str = "2026-10-28.endive"
    stripe_webhook_tolerance_seconds: int = 300
    stripe_price_starter: str | None = None
    stripe_price_professional: str | None = None
    stripe_price_enterprise: str | None = None
    # Our customer portal configuration (`billing stripe setup` prints it; found by its
    # metadata when unset). Portal sessions never fall back to the account's default.
    stripe_portal_configuration: str | None = None
    # Retries the Stripe SDK makes itself on network errors, 409/429/5xx (same idempotency key).
    stripe_max_network_retries: int = 2
    # Seconds one Stripe API call may take before it counts as Stripe being unreachable.
    stripe_timeout_seconds: float = 30.0
    # The console's "Next invoice" asks Stripe for its preview with this timeout (no retries),
    # and keeps an answer this long per customer.
    stripe_preview_timeout_seconds: float = 5.0
    invoice_preview_cache_seconds: int = 300
    # A Stripe event task that fails is retried this often, waiting base * 2**n (up to max) s.
    stripe_event_max_retries: int = 8
    stripe_event_retry_base_seconds: float = 5.0
    stripe_event_retry_max_seconds: float = 600.0
    # Reconciliation lists Stripe's events of this many days (Stripe keeps 30) and handles any
    # the webhook missed.
    stripe_reconcile_days: int = 3
    # Device overage (devices above the plan's limit) is billed per device-day through a Stripe
    # Billing Meter with this event name; `billing stripe setup` makes the meter and the prices.
    # `billed`: devices above a paid plan's limit keep working and are billed per device-day
    # (the licenses say `deviceLimit: soft`). `hard`: instances refuse them; checkout sells only
    # the flat prices, nothing is metered, the usage viewer shows no charge.
    device_overage: Literal["billed", "hard"] = "billed"
    stripe_meter_event_name: str = "zemfyre_device_overage"
    overage_price_starter_cents: int = 10
    overage_price_professional_cents: int = 7
    stripe_overage_price_starter: str | None = None
    stripe_overage_price_professional: str | None = None
    # Each metering run also re-checks this many finished days before the one it meters, so a
    # late report that raised a day's peak is billed (Stripe takes events up to 35 days old).
    overage_recheck_days: int = 2
    # A meter event Stripe refuses for good (a 400 other than "already exists", e.g. a deleted
    # Stripe customer) is tried on this many metering runs, then marked failed for an operator.
    overage_event_max_attempts: int = 5
    # Beat sends the meter events not delivered yet this often, so one whose answer was lost is
    # sent again within hours, while Stripe still refuses its identifier as a duplicate.
    overage_event_retry_interval_seconds: int = Field(default=3600, gt=0)
    # Stripe refuses a meter event identifier it already holds for about 24 hours only: an event
    # whose outcome has been unknown for longer than this is not resent (it could be billed
    # twice) but set aside for an operator to settle (`billing stripe meter-settle`).
    overage_event_resend_window_hours: float = Field(default=20, gt=0, lt=24)
    # Stripe reads the meter for a period's invoice when it finalizes it, about an hour after the
    # period ends (docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period);
    # later events stamped into that period are taken and never billed. An event sent this many
    # minutes after the open period began is stamped into it instead (a margin under the hour).
    overage_carry_over_after_minutes: int = Field(default=45, gt=0, lt=60)
    # Stripe aggregates meter events asynchronously: before a plan change or a cancel bills the
    # overage item's usage, the events just sent are waited for in the meter's event summary
    # this many seconds at most; then the change is refused with a 503 (made later instead).
    overage_settle_seconds: float = Field(default=10, gt=0)
    # Stripe finalizes a subscription's invoice about an hour after its period ends: a finished
    # day's raw reports are kept this many days past its last metering re-check, so a late rise
    # is still rolled up and recorded before the invoice it belongs to closes.
    invoice_finalization_margin_days: int = Field(default=1, ge=0)

    # Retention (core/retention/): raw usage reports are kept this many UTC days (usage_daily,
    # meter events, licenses and the audit log are kept for good); at least
    # minimum_usage_report_retention_days, checked at start-up.
    usage_report_retention_days: int = 90
    # Processed Stripe events lose their payload after this many days (id, type, customer and
    # outcome stay, so deduplication and the timeline still work); failed or pending: never.
    stripe_event_retention_days: int = Field(default=400, ge=1)
    # Rows one prune transaction removes: short transactions, row locks only, nothing the
    # ingress waits on.
    prune_batch_size: int = Field(default=2000, gt=0)

    license_private_key_path: Path = Path("keys/private-key.pem")
    license_public_key_path: Path = Path("keys/public-key.pem")
    # The signing key as PEM or base64-encoded PEM, for secret managers; wins over the file.
    license_private_key: str | None = None
    license_issuer: str = "zemfyre-billing"
    license_grace_days: int = 7
    # A subscription whose renewal charge failed (past_due) keeps its license this many days past
    # the date it is paid through, while Stripe retries the charge.
    license_past_due_grace_days: int = 7
    license_max_days: int = 365
    license_renew_within_days: int = 7
    trial_days: int = 14

    usage_max_clock_skew_seconds: int = 300
    # Reports a worker claims and processes in one transaction (batch task and sweeper).
    usage_process_batch_size: int = 500
    # An instance whose latest report is older than this many days no longer counts in its
    # customer's current devices (it was switched off or replaced).
    usage_instance_stale_days: int = 3
    # Processing runs a report may fail before it is quarantined (set aside for operators).
    usage_max_attempts: int = 5
    # A report without timestamp and Idempotency-Key that repeats an instance's numbers within
    # this many seconds is a client retry of the same report, not a new one.
    usage_untimed_dedup_seconds: int = 60
    # The most devices one report may state (activeDevices, totalDevices): more is refused with
    # 422, as a broken or hostile instance, not a real fleet.
    usage_max_devices: int = Field(default=1_000_000, gt=0, le=2_147_483_647)
    # New instances one customer's reports may create per window; beyond it an instance is held
    # from device totals and bills until an operator accepts it (`billing usage --accept`).
    usage_new_instances_per_window: int = Field(default=25, ge=0)
    usage_new_instances_window_seconds: int = Field(default=86_400, gt=0)
    # An instance (new or known) whose report claims more devices than this many times its
    # customer's plan limit is held like one beyond the cap until an operator accepts it.
    usage_instance_device_factor: int = Field(default=10, gt=0)
    # Stored webhooks/reports whose task has not run after this long are enqueued again.
    inbox_sweep_after_seconds: int = 60
    # How often beat runs the inbox sweepers.
    inbox_sweep_interval_seconds: int = 60
    # Concurrent ingress requests of one API process are stored together: a group is written when
    # it has this many requests or its first has waited this long (milliseconds). Groups of 16
    # rather than all that wait: the database stores one while the process reads the next
    # (bench/ingress.py: 3,000 -> 3,900 reports/s at 32 connections).
    ingress_batch_max_items: int = 16
    ingress_batch_max_wait_ms: float = 2.0
    # How long the ingress waits for the broker before answering anyway (the row is stored).
    enqueue_timeout_seconds: float = 2.0
    # How long the CLI waits for a worker to answer a task.
    cli_task_timeout_seconds: float = 30.0

    flower_port: int = 5555
    # Flower listens on this address only; publish it through a proxy with TLS, not directly.
    flower_address: str = "127.0.0.1"
    flower_basic_auth: str | None = Field(default=None, description="user:password")
    # A file holding user:password (a Docker/Kubernetes secret); wins over FLOWER_BASIC_AUTH.
    flower_basic_auth_file: str | None = None

    # The operator console (/console): a session ends after this long without a request, and
    # after this long whatever happens (the operator signs in again).
    console_session_idle_minutes: int = Field(default=30, gt=0)
    console_session_max_hours: int = Field(default=12, gt=0)
    # What the console tells an operator about a revocation's reach: instances check in about
    # this often (and then stop), and the instance SDK keeps running offline this long after its
    # license expires (zemfyre_license DEFAULT_GRACE).
    instance_check_in_minutes: int = Field(default=60, gt=0)
    sdk_offline_grace_days: int = Field(default=7, ge=0)

    log_level: str = "INFO"
    # JSON log lines (production); false gives plain text for a terminal.
    log_json: bool = True

    # Rate limits (requests per window). Redis holds the counters so every API process shares them;
    # RATE_LIMIT_REDIS_URL defaults to the broker when that is Redis.
    rate_limit_redis_url: str | None = None
    rate_limit_window_seconds: int = 60
    rate_limit_usage_per_instance: int = 120
    # Usage reports per window of all of one customer's licenses together, whatever instanceId
    # they say (an instance id is the client's own word).
    rate_limit_usage_per_license: int = 1200
    rate_limit_unauthenticated_per_client: int = 300
    # Failed authentications (401: admin key, license or any bearer) one client address may make
    # per window; after that its credentialed requests get 429 until the window ends.
    rate_limit_failed_auth_per_client: int = 30
    # Requests with a larger body are refused with 413 before they are read.
    max_request_body_bytes: int = 1_048_576
    # A request line's URL above this is refused with 414, its headers (all of them, with the
    # request line) above this with 431, before they are parsed on.
    max_request_url_bytes: int = 8_192
    max_request_header_bytes: int = 16_384
    # A client has this long to send a request's headers (from its first byte, or from opening
    # the connection), and then its body; slower, it gets 408 and the connection is closed.
    request_header_timeout_seconds: float = 10.0
    request_body_timeout_seconds: float = 30.0
    # Connections and requests in progress one API process takes; beyond it uvicorn answers 503.
    api_limit_concurrency: int = 2048

    @property
    def minimum_usage_report_retention_days(self) -> int:
        """Yesterday, the days metering re-checks before it, and the invoice finalization
        margin: raw reports of a day metering may still roll up again are never pruned."""
        return 1 + self.overage_recheck_days + self.invoice_finalization_margin_days

    @model_validator(mode="after")
    def _retention_long_enough(self) -> Settings:
        minimum = self.minimum_usage_report_retention_days
        if self.usage_report_retention_days < minimum:
            raise ValueError(
                f"USAGE_REPORT_RETENTION_DAYS={self.usage_report_retention_days} is too short: "
                f"it must be at least {minimum} (yesterday + OVERAGE_RECHECK_DAYS="
                f"{self.overage_recheck_days} + INVOICE_FINALIZATION_MARGIN_DAYS="
                f"{self.invoice_finalization_margin_days}), or metering would re-check days "
                "whose reports were already pruned"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'billing.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.celery_broker_url or f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def resolved_result_backend(self) -> str:
        return self.celery_result_backend or (
            f"db+sqlite:///{(self.data_dir / 'results.db').resolve()}"
        )

    @property
    def resolved_rate_limit_redis_url(self) -> str | None:
        if self.rate_limit_redis_url:
            return self.rate_limit_redis_url
        broker = self.resolved_broker_url
        return broker if broker.startswith(("redis://", "rediss://")) else None


@lru_cache
def get_settings() -> Settings:
    """The settings; a bad value stops start-up of any process with one clear line per setting."""
    from core.errors import ConfigurationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from None


def _problem(error: object) -> str:
    details = error if isinstance(error, dict) else {}
    where = ".".join(str(part) for part in details.get("loc", ()))
    message = str(details.get("msg", error)).removeprefix("Value error, ")
    return f"{where.upper()}: {message}" if where else message
