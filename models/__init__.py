"""SQLAlchemy models: the bottom floor, importing nothing of the project."""

from models.api_keys import ApiKey
from models.base import Base, UTCDateTime, utcnow
from models.billing_issues import BillingIssue
from models.console import AuditEntry, ConsoleSession
from models.customers import Customer
from models.licenses import License, LicenseChange
from models.metering import OverageMeterEvent as OverageMeterEvent
from models.operations import JobRun, StripeEventAttempt
from models.stripe_events import StripeEvent
from models.subscriptions import Subscription
from models.usage import InstanceUsage, UsageAlert, UsageDaily, UsageReport

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "BillingIssue",
    "ConsoleSession",
    "Customer",
    "InstanceUsage",
    "JobRun",
    "License",
    "LicenseChange",
    "StripeEvent",
    "StripeEventAttempt",
    "Subscription",
    "UTCDateTime",
    "UsageAlert",
    "UsageDaily",
    "UsageReport",
    "utcnow",
]
