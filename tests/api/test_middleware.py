"""The envelope (api/envelope.py): request ids, the body size limit and the Redis-backed rate
limits, for every route."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from api.envelope import Envelope, _new_request_id
from api.errors import install_error_handlers
from core.settings import get_settings
from tests.helpers.processes import api_server


def test_every_response_carries_a_request_id_and_a_given_one_is_echoed(api_client) -> None:
    generated = api_client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    echoed = api_client.get("/healthz", headers={"X-Request-ID": "req-123"})
    assert echoed.headers["x-request-id"] == "req-123"
    hostile = api_client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert hostile.headers["x-request-id"] != "bad id\nwith newline"


def test_a_body_over_the_limit_gets_413_declared_or_streamed(api_client, admin_headers) -> None:
    limit = get_settings().max_request_body_bytes
    declared = api_client.post(
        "/api/customers", content=b"{" + b" " * limit + b"}", headers=admin_headers
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"


def test_a_streamed_body_without_length_is_cut_off_at_the_limit() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo-length")
    async def echo_length(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    limit = get_settings().max_request_body_bytes

    def chunks(total: int) -> Iterator[bytes]:
        for _ in range(total // 65536 + 1):
            yield b" " * 65536

    with TestClient(Envelope(app, openapi=app.openapi)) as client:
        headers = {"Authorization": "Bearer x"}
        small = client.post("/echo-length", content=chunks(65536), headers=headers)
        assert small.status_code == 200
        streamed = client.post("/echo-length", content=chunks(limit + 1), headers=headers)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"


def test_unauthenticated_callers_are_limited_per_address_with_retry_after(
    tight_limits, api_client
) -> None:
    statuses = [api_client.get("/healthz").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    refused = api_client.get("/healthz")
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 3600


def test_stripe_webhook_deliveries_are_never_rate_limited(tight_limits, api_client) -> None:
    # The client is over its limit: anything else it sends is refused...
    limited = [api_client.get("/healthz").status_code for _ in range(6)]
    assert limited[-1] == 429
    # ...but Stripe's deliveries still reach the signature check (400: unsigned), every time.
    statuses = [api_client.post("/webhooks/stripe", content=b"{}").status_code for _ in range(10)]
    assert statuses == [400] * 10


def test_rate_limit_counters_are_shared_between_api_processes(tight_limits, api_client) -> None:
    env = {
        "RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT": "5",
        "RATE_LIMIT_WINDOW_SECONDS": "3600",
    }
    with api_server(env=env) as url_a, api_server(env=env) as url_b:
        a = [httpx.get(f"{url_a}/readyz").status_code for _ in range(3)]
        b = [httpx.get(f"{url_b}/readyz").status_code for _ in range(3)]
    # Each server answered one /healthz while starting: 8 requests from this address in all.
    # Counters kept per process would allow all of them (4 each, under the limit of 5).
    assert (a + b).count(429) >= 3


def test_a_junk_bearer_does_not_skip_the_limit_on_routes_that_take_no_credentials(
    tight_limits, api_client
) -> None:
    junk = {"Authorization": "Bearer junk"}
    statuses = [api_client.get("/readyz", headers=junk).status_code for _ in range(7)]
    assert statuses.count(429) == 2
    assert api_client.get("/healthz", headers=junk).status_code == 429


def _guess_admin_keys(url: str, address: str, guesses: int) -> list[httpx.Response]:
    headers = {"X-Forwarded-For": address}
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.get(
                "/api/customers", headers={**headers, "Authorization": f"Bearer zbk_guess{n}"}
            )
            for n in range(guesses)
        ]


def test_failed_authentications_are_limited_per_client_address_behind_a_proxy(
    admin_key: str,
) -> None:
    """420 guessed admin keys from one address: 401s, then 429s with Retry-After; a forged
    license check-in is counted alike; other addresses (told by the trusted proxy) are not."""
    import uuid

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    env = {
        "RATE_LIMIT_FAILED_AUTH_PER_CLIENT": "30",
        "RATE_LIMIT_WINDOW_SECONDS": "3600",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    run = uuid.uuid4().int % 250 + 1
    attacker, forger, bystander = (f"203.0.{run}.{host}" for host in (7, 8, 9))
    with api_server(env=env) as url:
        answers = _guess_admin_keys(url, attacker, 420)
        statuses = [answer.status_code for answer in answers]
        assert statuses[:30] == [401] * 30
        assert statuses[31:] == [429] * (420 - 31)
        refused = answers[-1]
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        # The locked-out address gets no more key lookups, even for a real key.
        with_real_key = httpx.get(
            f"{url}/api/customers",
            headers={"X-Forwarded-For": attacker, "Authorization": f"Bearer {admin_key}"},
        )
        assert with_real_key.status_code == 429

        # Forged license JWTs (another key, any claims) cost the same: no unlimited RSA work.
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode({"customerId": "cust_x", "sub": "cust_x"}, other_key, "RS256")
        check_ins = [
            httpx.get(
                f"{url}/api/licenses/cust_x",
                headers={"X-Forwarded-For": forger, "Authorization": f"Bearer {forged}"},
            ).status_code
            for _ in range(40)
        ]
        assert check_ins[:30] == [401] * 30 and check_ins[-5:] == [429] * 5

        # Another client of the same proxy is not affected.
        assert _guess_admin_keys(url, bystander, 1)[0].status_code == 401
        ok = httpx.get(
            f"{url}/api/customers",
            headers={"X-Forwarded-For": bystander, "Authorization": f"Bearer {admin_key}"},
        )
        assert ok.status_code == 200


def test_a_forked_worker_draws_request_ids_of_its_own() -> None:
    """uvicorn forks its workers: a child's ids must not repeat its parent's."""
    parent = [_new_request_id(), _new_request_id()]
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    drawn = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert len(drawn) == 32 and parent[0][:16] == parent[1][:16] != drawn[:16]
