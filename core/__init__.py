"""Domain logic shared by the API, the Celery tasks and the CLI."""
