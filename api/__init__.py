"""The slim FastAPI ingress: authenticate, validate, store, enqueue, answer."""
