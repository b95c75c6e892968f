"""A pinned public key that follows the service's key rotations, trusting only what it signed.

At each rotation the service signs the new key with the key it replaces, while it still holds
it: an endorsement, a compact JWS (RS256, header `kid` = the signer) whose payload is a one-key
JWKS. The service serves them all at `/.well-known/jwks-endorsements.json`. An instance that
pinned a key trusts a new key only through a chain of endorsements starting at the pinned key,
each verified with a key already trusted; nothing else the network says adds a key. The chain
is fetched on an unknown kid (at most once per cooldown, over any URL: the signatures are the
trust), cached in the state directory and verified again from the pinned key on every load.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from zemfyre_license.keys import (
    REFETCH_COOLDOWN_SECONDS,
    Cooldown,
    KeySetError,
    fetch_document,
    kid_for,
    parse_jwks,
)
from zemfyre_license.state import write_atomic

ENDORSEMENTS_PATH = "/.well-known/jwks-endorsements.json"


def endorsements_url(base_url: str) -> str:
    return base_url.rstrip("/") + ENDORSEMENTS_PATH


def endorsed_keys(
    pinned: rsa.RSAPublicKey, endorsements: Iterable[object]
) -> dict[str, rsa.RSAPublicKey]:
    """The pinned key and every key a chain of endorsements from it vouches for, by kid."""
    trusted = {kid_for(pinned): pinned}
    pending = [token for token in endorsements if isinstance(token, str)]
    progress = True
    while progress:
        progress = False
        for token in list(pending):
            try:
                signer = trusted.get(jwt.get_unverified_header(token).get("kid", ""))
            except jwt.PyJWTError:
                pending.remove(token)
                continue
            if signer is None:
                continue  # perhaps signed by a key a later pass trusts
            pending.remove(token)
            try:
                payload = jwt.decode(
                    token, signer, algorithms=["RS256"], options={"verify_iat": False}
                )
                endorsed = parse_jwks(payload, "endorsement")
            except (jwt.PyJWTError, KeySetError):
                continue
            for kid, key in endorsed.items():
                if kid_for(key) == kid:  # a kid is the key's own thumbprint, never a label
                    progress = trusted.setdefault(kid, key) is key or progress
    return trusted


def _endorsements_in(document: bytes) -> list[object]:
    data = json.loads(document)
    found = data.get("endorsements") if isinstance(data, dict) else None
    if not isinstance(found, list):
        raise KeySetError("not an endorsements document (no 'endorsements' list)")
    return found


class PinnedKeys:
    """The pinned key, and the keys it endorsed through rotations (see the module docstring)."""

    def __init__(
        self,
        public_key: rsa.RSAPublicKey,
        *,
        url: str | None = None,
        cache_file: str | Path | None = None,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        refetch_cooldown: float = REFETCH_COOLDOWN_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.public_key = public_key
        self.kid = kid_for(public_key)
        self.url = url
        self.cache_file = Path(cache_file) if cache_file else None
        self._http = http
        self._timeout = timeout
        self._cooldown = Cooldown(refetch_cooldown, monotonic)
        self._trusted = self._from_cache()

    def key_for(self, kid: str) -> rsa.RSAPublicKey:
        key = self._trusted.get(kid)
        if key is None and self.url and self._cooldown.ready():
            with contextlib.suppress(httpx.HTTPError, KeySetError, ValueError):
                self.refresh()
            key = self._trusted.get(kid)
        # Not endorsed: the pinned key, whose signature check then refuses a stranger's license.
        return key or self.public_key

    def refresh(self) -> dict[str, rsa.RSAPublicKey]:
        if not self.url:
            raise KeySetError("no endorsements URL to refresh from")
        document = fetch_document(self._http, self.url, self._timeout).content
        trusted = endorsed_keys(self.public_key, _endorsements_in(document))
        if self.cache_file is not None and len(trusted) > 1:
            write_atomic(self.cache_file, document, mode=0o644)
        self._trusted = trusted
        return trusted

    def _from_cache(self) -> dict[str, rsa.RSAPublicKey]:
        found: list[object] = []
        if self.cache_file is not None:
            with contextlib.suppress(OSError, ValueError, KeySetError):
                found = _endorsements_in(self.cache_file.read_bytes())
        return endorsed_keys(self.public_key, found)
