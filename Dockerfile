FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN useradd --create-home --uid 10001 billing

COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY cli ./cli
COPY core ./core
COPY models ./models
COPY migrations ./migrations
COPY tasks ./tasks
COPY workers ./workers
RUN pip install --no-cache-dir . && mkdir -p /app/keys /app/data && chown billing /app/data

USER billing
EXPOSE 3100 5555
# The signing key: LICENSE_PRIVATE_KEY (PEM or base64 PEM, e.g. from a secret manager), or a file
# at LICENSE_PRIVATE_KEY_PATH (/app/keys, mounted read-only) that uid 10001 can read.
CMD ["billing", "api", "--host", "0.0.0.0"]
