"""The Celery application: configuration, queues, routing and the beat schedule."""
