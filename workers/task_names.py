"""Every task's name, spelled once.

The task modules (tasks/) register under these names, beat schedules them and the queues route
them by name, and the other doors (the API, the CLI) send a task by its name
(`workers.enqueue.enqueue`, `cli.common.run_task`) without importing tasks/: the doors import
downward only (docs/architecture.md, "The layers").
"""

from __future__ import annotations

# Usage (queue "usage"; the rollup on "default").
PROCESS_REPORT_BATCH = "tasks.usage.process_report_batch"
SWEEP_PENDING_REPORTS = "tasks.usage.sweep_pending_reports"
ROLLUP_USAGE_DAY = "tasks.usage.rollup_usage_day"

# Licenses (queue "licenses").
REISSUE_LICENSE = "tasks.licenses.reissue_license"
RENEW_LICENSES = "tasks.licenses.renew_licenses"

# Billing (queue "webhooks"; trial expiry on "licenses", metering on "default").
PROCESS_EVENTS = "tasks.billing.process_events"
PROCESS_EVENT = "tasks.billing.process_event"
APPLY_PROMOTION = "tasks.billing.apply_promotion"
SWEEP_EVENTS = "tasks.billing.sweep_events"
RECONCILE_EVENTS = "tasks.billing.reconcile_events"
RECONCILE_SUBSCRIPTIONS = "tasks.billing.reconcile_subscriptions"
EXPIRE_TRIALS = "tasks.billing.expire_trials"
METER_USAGE = "tasks.billing.meter_usage"
SEND_METER_EVENTS = "tasks.billing.send_meter_events"

# Maintenance (queue "default").
PING = "tasks.maintenance.ping"
PRUNE_RETENTION = "tasks.maintenance.prune_retention"
