"""The usage viewer: what operators see of customers' usage, with the overage it will bill.

It reads both usage facts (core/usage/: device-days, history, snapshots, limits) and the overage
estimate (core/billing/metering/estimate.py), so it sits above both; metering reads usage facts,
and nothing in core/usage/ reads billing.

- `queries`: one customer (`billing usage --customer`, `GET /api/usage/{customerId}`, the
  console's customer page).
- `overview`: every customer's line (`billing usage --all`).
"""
