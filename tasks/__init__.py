"""Celery tasks, one module per domain. Each is a thin, idempotent caller of core/."""
