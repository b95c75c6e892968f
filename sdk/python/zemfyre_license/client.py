"""`LicenseClient`: everything an instance does with its license, in one object.

client = LicenseClient.from_env()          # IOTISTIC_LICENSE_KEY, BILLING_API_URL, ...
client.check_in()                          # fetch renewals; never raises for the network
verdict = client.verdict()                 # may the instance run? (works offline)
client.report_usage("dev-1", active_devices=5, total_devices=10)
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from zemfyre_license.checkin import CheckIn, check_in
from zemfyre_license.errors import LicenseError, LicenseRevokedError, ServiceRefusedError
from zemfyre_license.keeper import Clock, LicenseKeeper, utc_now
from zemfyre_license.keys import (
    JwksKeys,
    KeySetError,
    KeySource,
    check_key_set_url,
    jwks_url,
    load_pem_public_key,
)
from zemfyre_license.license import License
from zemfyre_license.pinned import PinnedKeys, endorsements_url
from zemfyre_license.protocol import USAGE_REPORT_PATH, bearer, error_answer, json_object
from zemfyre_license.retry import RetryPolicy, Sender
from zemfyre_license.state import StateStore
from zemfyre_license.usage import (
    UsageReceipt,
    check_counts,
    idempotency_key_for,
    receipt_of,
    report_timestamp,
)
from zemfyre_license.verdict import DEFAULT_CLOCK_TOLERANCE, DEFAULT_GRACE, Verdict
from zemfyre_license.verify import DEFAULT_ISSUER

# The names the original service's instances use, then this SDK's own.
LICENSE_ENV = ("IOTISTIC_LICENSE_KEY", "LICENSE_JWT")
PUBLIC_KEY_ENV = "LICENSE_PUBLIC_KEY"
URL_ENV = "BILLING_API_URL"
STATE_DIR_ENV = "LICENSE_STATE_DIR"
ISSUER_ENV = "LICENSE_ISSUER"

logger = logging.getLogger("zemfyre_license")


def _is_url(value: str | Path) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _pem_bytes(public_key: str | bytes | Path) -> bytes:
    """A PEM given as text/bytes, or the path of a PEM file."""
    if isinstance(public_key, bytes):
        return public_key
    if isinstance(public_key, str) and "-----BEGIN" in public_key:
        return public_key.replace("\\n", "\n").encode("ascii", errors="replace")
    return Path(public_key).read_bytes()


def build_keys(
    *,
    url: str | None,
    public_key: str | bytes | Path | None,
    jwks: str | Path | None,
    store: StateStore,
    http: httpx.Client | None = None,
) -> KeySource:
    """The keys licenses must verify with. A pinned PEM (`public_key`) and the keys it signed
    into the service's endorsements at each rotation (zemfyre_license.pinned): nothing else
    fetched from the network adds a key. Without one, a JWKS that follows
    rotations: from `jwks` (a file shipped with the instance, or an https URL) or the service's
    `/.well-known/jwks.json`, cached in the state directory."""
    if public_key is not None:
        return PinnedKeys(
            load_pem_public_key(_pem_bytes(public_key)),
            url=endorsements_url(url) if url else None,
            cache_file=store.endorsements_file,
            http=http,
        )
    source_url = str(jwks) if jwks is not None and _is_url(jwks) else None
    if source_url is None and url is not None:
        source_url = jwks_url(url)
    if source_url is None and jwks is None:
        raise ValueError("no key to verify licenses: give public_key, jwks or url")
    file = None if jwks is None or _is_url(jwks) else Path(jwks)
    if source_url is not None:
        source_url = _fetchable(source_url, file, store.jwks_file)
    return JwksKeys(url=source_url, file=file, cache_file=store.jwks_file, http=http)


def _fetchable(url: str, file: Path | None, cache_file: Path | None) -> str | None:
    """`url` if keys may be fetched from it. A plain-http URL to another host is refused for
    fetching only: the keys shipped (`file`) or cached earlier still verify, with a warning;
    KeySetError when there are none, as nothing could ever verify a license."""
    try:
        return check_key_set_url(url)
    except KeySetError as exc:
        if file is None and (cache_file is None or not cache_file.exists()):
            raise
        logger.warning("%s; verifying with the shipped or cached key set only", exc)
        return None


class LicenseClient:
    def __init__(
        self,
        license: str | None = None,
        *,
        url: str | None = None,
        public_key: str | bytes | Path | None = None,
        jwks: str | Path | None = None,
        keys: KeySource | None = None,
        state_dir: str | Path | None = None,
        issuer: str = DEFAULT_ISSUER,
        grace: timedelta = DEFAULT_GRACE,
        clock_tolerance: timedelta = DEFAULT_CLOCK_TOLERANCE,
        retry: RetryPolicy | None = None,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        http: httpx.Client | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.store = StateStore(state_dir)
        keys = keys or build_keys(
            url=self.url, public_key=public_key, jwks=jwks, store=self.store, http=http
        )
        self.keeper = LicenseKeeper(
            keys=keys,
            store=self.store,
            license=license,
            issuer=issuer,
            grace=grace,
            clock_tolerance=clock_tolerance,
            clock=clock,
        )
        self._sender = (
            Sender(self.url, http=http, policy=retry, sleep=sleep, rng=rng, clock=clock)
            if self.url
            else None
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> LicenseClient:
        """A client configured as the original service's instances are: the license in
        IOTISTIC_LICENSE_KEY (or LICENSE_JWT), LICENSE_PUBLIC_KEY (PEM text or a file),
        BILLING_API_URL, and LICENSE_STATE_DIR / LICENSE_ISSUER for this SDK."""
        env = os.environ if environ is None else environ
        settings: dict[str, object] = {
            "license": next((env[name] for name in LICENSE_ENV if env.get(name)), None),
            "public_key": env.get(PUBLIC_KEY_ENV) or None,
            "url": env.get(URL_ENV) or None,
            "state_dir": env.get(STATE_DIR_ENV) or None,
            "issuer": env.get(ISSUER_ENV) or DEFAULT_ISSUER,
        }
        settings.update(overrides)
        return cls(**settings)  # type: ignore[arg-type]

    @property
    def license(self) -> License | None:
        """The newest genuine license held (configured, or received since)."""
        return self.keeper.newest()

    def verdict(self) -> Verdict:
        """May the instance run now? Offline: signature, status, expiry and grace, clock."""
        return self.keeper.verdict()

    def require(self) -> Verdict:
        """The verdict when the instance may run; LicenseError with the reason when not."""
        verdict = self.verdict()
        if not verdict.allowed:
            raise LicenseError(verdict.reason)
        return verdict

    def check_in(self) -> CheckIn:
        """Fetch the customer's current license and keep it; never raises for the network."""
        return check_in(self.keeper, self._require_sender())

    def report_usage(
        self,
        instance_id: str,
        *,
        active_devices: int,
        total_devices: int,
        timestamp: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> UsageReceipt:
        """Report device counts; the receipt once stored (exactly once, whatever the retries,
        see zemfyre_license.usage).

        Raises LicenseRevokedError (only on a signed license saying revoked),
        ServiceRefusedError (401/403/409/422..., an unsigned "revoked" too) or
        ServiceUnreachableError.
        """
        check_counts(active_devices, total_devices)
        sender = self._require_sender()
        keeper = self.keeper
        license = keeper.presentable()
        if license is None:
            raise LicenseError(keeper.last_error or "no license to report usage with")
        when = report_timestamp(timestamp or keeper.now())
        key = idempotency_key or idempotency_key_for(license.customer_id, instance_id, when)
        body = {
            "customerId": license.customer_id,
            "instanceId": instance_id,
            "timestamp": when,
            "metrics": {"activeDevices": active_devices, "totalDevices": total_devices},
        }
        headers = {**bearer(license.token), "Idempotency-Key": key}
        response = sender.request("POST", USAGE_REPORT_PATH, headers=headers, json=body)
        if response.status_code == 202:
            return receipt_of(keeper, response, key)
        answer = error_answer(response)
        # Revoked only by a signed license saying so (kept if the answer has one): the words
        # of a 401 are anyone's to write, so without that proof it is a plain refusal.
        if answer.is_revocation:
            unproven = keeper.take_signed_revocation(json_object(response).get("license"))
            if unproven is None:
                raise LicenseRevokedError(answer.message)
        raise ServiceRefusedError(
            answer.status, answer.message, code=answer.code, field=answer.field
        )

    def _require_sender(self) -> Sender:
        if self._sender is None:
            raise ValueError("no service URL: give url= (or BILLING_API_URL)")
        return self._sender

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()

    def __enter__(self) -> LicenseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
