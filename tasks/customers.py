"""Customer tasks: none today, and on purpose.

Creating a customer runs in-process for the API and the CLI alike (core/customers/service.py says
why), so there is no queued write path beside it. The module stays as the domain's room in tasks/,
which the worker imports and routes to the `licenses` queue (workers/queues.py).
"""
