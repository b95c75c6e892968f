"""Public keys that verify licenses: one PEM key, or a JWKS (a file shipped with the instance, a
copy cached on disk, refreshed from the service's `/.well-known/jwks.json`)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from zemfyre_license.errors import UnknownKeyError
from zemfyre_license.protocol import capped_request
from zemfyre_license.state import write_atomic

JWKS_PATH = "/.well-known/jwks.json"
# Smaller RSA keys are breakable: a key set offering one is refused, not trusted.
MIN_KEY_SIZE = 2048
# An unknown kid refetches the key set, at most once in this many seconds whatever the kid:
# tokens naming made-up kids must not turn the instance into a request loop.
REFETCH_COOLDOWN_SECONDS = 300.0
# The most of a key set read: a few RSA keys are a few KiB.
JWKS_LIMIT = 64 * 1024


class KeySource(Protocol):
    def key_for(self, kid: str) -> rsa.RSAPublicKey:
        """The public key for `kid`, or UnknownKeyError."""
        ...


class KeySetError(ValueError):
    """A PEM or JWKS document that holds no usable RS256 public key."""


def _checked_rsa(key: object, source: str) -> rsa.RSAPublicKey:
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeySetError(f"{source} is not an RSA public key (licenses are RS256)")
    if key.key_size < MIN_KEY_SIZE:
        raise KeySetError(f"{source} is a {key.key_size}-bit RSA key; {MIN_KEY_SIZE}+ required")
    return key


def load_pem_public_key(pem: str | bytes, source: str = "public key") -> rsa.RSAPublicKey:
    data = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data.strip())
    except (ValueError, TypeError) as exc:
        raise KeySetError(f"{source} is not a readable PEM public key: {exc}") from None
    return _checked_rsa(key, source)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def kid_for(public_key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 thumbprint (SHA-256) of a key: the kid the service gives it."""
    numbers = public_key.public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_key_set_url(url: str) -> str:
    """`url` if keys may be fetched from it: https, or plain http only to this machine (where
    nothing on the network can change the answer); KeySetError otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return url
    raise KeySetError(
        f"refusing to fetch license keys from {url}: use https (plain http only to localhost), "
        "or pin the service's public key"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PemKey:
    """One pinned public key (`LICENSE_PUBLIC_KEY`): every license must verify with it, and no
    other key is ever trusted (no key set is fetched)."""

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        self.public_key = public_key
        self.kid = kid_for(public_key)

    @classmethod
    def from_pem(cls, pem: str | bytes, source: str = "public key") -> PemKey:
        return cls(load_pem_public_key(pem, source))

    @classmethod
    def from_file(cls, path: str | Path) -> PemKey:
        return cls.from_pem(Path(path).read_bytes(), str(path))

    def key_for(self, kid: str) -> rsa.RSAPublicKey:
        # The signature decides: a license the pinned key does not verify is refused there.
        return self.public_key


def _jwk_key(entry: Mapping[str, Any], source: str) -> tuple[str, rsa.RSAPublicKey] | None:
    kid = entry.get("kid")
    if entry.get("kty") != "RSA" or not isinstance(kid, str) or not kid:
        return None
    if entry.get("alg") not in (None, "RS256") or entry.get("use") not in (None, "sig"):
        return None
    try:
        key = RSAAlgorithm.from_jwk(dict(entry))
    except Exception:  # pyjwt raises several types for a malformed JWK
        return None
    return kid, _checked_rsa(key, f"{source} key {kid}")


def parse_jwks(document: object, source: str = "JWKS") -> dict[str, rsa.RSAPublicKey]:
    """The RS256 signing keys of a JWKS document, by kid (other keys are skipped)."""
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise KeySetError(f"{source} is not a JWKS document (no 'keys' list)")
    keys: dict[str, rsa.RSAPublicKey] = {}
    for entry in entries:
        found = _jwk_key(entry, source) if isinstance(entry, Mapping) else None
        if found is not None:
            keys.setdefault(*found)
    return keys


def read_jwks_file(path: Path) -> dict[str, rsa.RSAPublicKey]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeySetError(f"cannot read the JWKS file {path}: {exc}") from None
    return parse_jwks(document, str(path))


def jwks_url(base_url: str) -> str:
    return base_url.rstrip("/") + JWKS_PATH


class Cooldown:
    """At most one go per `seconds`, whatever asks (one timestamp, not one per kid)."""

    def __init__(self, seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._monotonic = monotonic
        self._last: float | None = None

    def ready(self) -> bool:
        """Whether a go is allowed now; if so, it counts as taken."""
        now = self._monotonic()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True


def fetch_document(http: httpx.Client | None, url: str, timeout: float) -> httpx.Response:
    """GET `url`, reading at most JWKS_LIMIT bytes; the answer, checked for a 2xx status."""
    if http is not None:
        response = capped_request(http, "GET", url, limit=JWKS_LIMIT, timeout=timeout)
    else:
        with httpx.Client() as own:
            response = capped_request(own, "GET", url, limit=JWKS_LIMIT, timeout=timeout)
    response.raise_for_status()
    return response


class JwksKeys:
    """Keys by kid from a JWKS: the disk cache (or, before the first refresh, the `file` shipped
    with the instance); an unknown kid refetches `url`, at most once per `refetch_cooldown`."""

    def __init__(
        self,
        *,
        url: str | None = None,
        file: str | Path | None = None,
        cache_file: str | Path | None = None,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        refetch_cooldown: float = REFETCH_COOLDOWN_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_key_set_url(url) if url else None
        self.file = Path(file) if file else None
        self.cache_file = Path(cache_file) if cache_file else None
        self._http = http
        self._timeout = timeout
        self._cooldown = Cooldown(refetch_cooldown, monotonic)
        self._keys: dict[str, rsa.RSAPublicKey] | None = None
        self.fetches = 0

    def key_for(self, kid: str) -> rsa.RSAPublicKey:
        key = self.key_set().get(kid)
        if key is not None:
            return key
        problem = self._refetch()
        key = self.key_set().get(kid)
        if key is not None:
            return key
        detail = f"; the key set could not be refreshed: {problem}" if problem else ""
        raise UnknownKeyError(f"license is signed with an unknown key ({kid}){detail}")

    def key_set(self) -> dict[str, rsa.RSAPublicKey]:
        if self._keys is None:
            self._keys = self._stored()
            if not self._keys and self.url:
                # On failure key_for refuses, with the reason, when a kid is looked up.
                with contextlib.suppress(httpx.HTTPError, KeySetError, ValueError):
                    self.refresh()
        return self._keys

    def refresh(self) -> dict[str, rsa.RSAPublicKey]:
        """Fetch the JWKS from the service, keep it in the cache file, and use it."""
        if not self.url:
            raise KeySetError("no JWKS URL to refresh the key set from")
        self.fetches += 1
        response = fetch_document(self._http, self.url, self._timeout)
        fetched = parse_jwks(response.json(), self.url)
        if self.cache_file is not None:
            write_atomic(self.cache_file, response.content, mode=0o644)
        self._keys = fetched
        return self._keys

    def _stored(self) -> dict[str, rsa.RSAPublicKey]:
        # Once refreshed, the cache replaces the shipped file: a key the service stopped
        # publishing is not trusted again because an old file still lists it. A damaged cache
        # is ignored (the next refresh rewrites it); a damaged shipped file is reported.
        if self.cache_file is not None and self.cache_file.exists():
            with contextlib.suppress(KeySetError):
                return read_jwks_file(self.cache_file)
        if self.file is not None:
            return read_jwks_file(self.file)
        return {}

    def _refetch(self) -> str | None:
        """Refresh for an unknown kid unless one did within the cooldown; the problem, if any."""
        if not self.url:
            return None
        if not self._cooldown.ready():
            return None
        try:
            self.refresh()
        except (httpx.HTTPError, KeySetError, ValueError) as exc:
            return str(exc) or type(exc).__name__
        return None
