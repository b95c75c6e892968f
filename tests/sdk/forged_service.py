"""A forged billing service on 127.0.0.1: whatever the network in front of an instance could say.

It answers each path with what the test sets (status, JSON body, headers, a `Date` of its
choosing) and records the paths asked for. Licenses are signed with real RSA keys the test makes:
the service's own key, or an attacker's.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from zemfyre_license.keys import kid_for

ISSUER = "zemfyre-billing"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    """A real RSA-2048 key pair and its kid."""

    kid: str = ""
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def __post_init__(self) -> None:
        # Without a kid of its own, the key's RFC 7638 thumbprint, as the service names its keys.
        self.kid = self.kid or kid_for(self.private.public_key())

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }

    def license(
        self,
        customer_id: str = "cust_forged",
        *,
        plan: str = "trial",
        max_devices: int = 5,
        issued_at: float | None = None,
        days: float = 14,
        revoked: bool = False,
        kid: str | None = None,
    ) -> str:
        """A license as the service signs it (with this key)."""
        iat = int(issued_at if issued_at is not None else time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": customer_id,
            "iat": iat,
            "exp": iat + int(days * 86400),
            "jti": uuid.uuid4().hex,
            "customerId": customer_id,
            "plan": plan,
            "features": {"maxDevices": max_devices},
            "limits": {},
            "subscription": {"status": "canceled" if revoked else "trialing"},
        }
        if revoked:
            claims["revocation"] = {"revoked": True, "reason": "unpaid"}
        headers = {"kid": kid or self.kid}
        return jwt.encode(claims, self.private, algorithm="RS256", headers=headers)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class ForgedService:
    """`with ForgedService() as forged:` ... `forged.answer("/api/licenses/current", ...)`."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[str] = []
        # The license each request presented (its Bearer token), in order.
        self.presented: list[str] = []
        # The Date header every answer carries (an HTTP date), or the real time when None.
        self.date: str | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        # path -> (answered freely first, set when a held request arrives, set to answer it)
        self._holds: dict[str, tuple[int, threading.Event, threading.Event]] = {}

    def hold(self, path: str, *, after: int = 0) -> tuple[threading.Event, threading.Event]:
        """Hold requests to `path` beyond the first `after` until the second event is set; the
        first event is set when one is held (the client is then waiting on the network)."""
        arrived, release = threading.Event(), threading.Event()
        self._holds[path] = (after, arrived, release)
        return arrived, release

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str, status: int, body: Any, **headers: str) -> None:
        self.answers[path] = Answer(status, body, headers)

    def serve_jwks(self, *keys: SigningKey) -> None:
        self.answer("/.well-known/jwks.json", 200, {"keys": [key.jwk() for key in keys]})

    def count(self, path: str) -> int:
        with self._lock:
            return self.requests.count(path)

    def __enter__(self) -> ForgedService:
        forged = self

        class Handler(BaseHTTPRequestHandler):
            def date_time_string(self, timestamp: float | None = None) -> str:
                return forged.date or super().date_time_string(timestamp)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                with forged._lock:
                    forged.requests.append(path)
                    forged.presented.append(bearer)
                    asked = forged.requests.count(path)
                if path in forged._holds and asked > forged._holds[path][0]:
                    _, arrived, release = forged._holds[path]
                    arrived.set()
                    release.wait()
                answer = forged.answers.get(path, Answer(404, {"error": {"code": "not_found"}}))
                data = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
