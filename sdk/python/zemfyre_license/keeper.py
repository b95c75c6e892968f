"""The license an instance runs on: the newest genuine one it holds, and whether it may run.

An instance holds up to two licenses: the one it was configured with and the newest one the
service handed it since (kept in the state directory). The newest genuine, unrevoked one is used.
The keeper also keeps the time the service vouched for, so a clock set back is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from zemfyre_license.errors import InvalidLicenseError, LicenseError
from zemfyre_license.keys import KeySetError, KeySource
from zemfyre_license.license import License
from zemfyre_license.state import Observations, RevokedLicense, StateStore
from zemfyre_license.verdict import (
    DEFAULT_CLOCK_TOLERANCE,
    DEFAULT_GRACE,
    Verdict,
    clock_set_back,
    evaluate,
    refused,
    revoked,
)
from zemfyre_license.verify import DEFAULT_ISSUER, verify_token

Clock = Callable[[], datetime]
_VERIFIED_CACHE = 16


def utc_now() -> datetime:
    return datetime.now(UTC)


def _epoch(license: License) -> tuple[float, float]:
    return float(license.claims["iat"]), float(license.claims["exp"])


def _revoked_in(observations: Observations, license: License) -> bool:
    """Found revoked by the service, or older than a license of the same customer that was (the
    service revokes every license a customer holds at once)."""
    iat, _ = _epoch(license)
    return any(
        entry.jti == license.jti
        or (entry.customer_id == license.customer_id and iat < entry.issued_at)
        for entry in observations.revoked
    )


class LicenseKeeper:
    def __init__(
        self,
        *,
        keys: KeySource,
        store: StateStore,
        license: str | None = None,
        issuer: str = DEFAULT_ISSUER,
        grace: timedelta = DEFAULT_GRACE,
        clock_tolerance: timedelta = DEFAULT_CLOCK_TOLERANCE,
        clock: Clock = utc_now,
    ) -> None:
        self.keys = keys
        self.store = store
        self.configured = license.strip() if license else None
        self.issuer = issuer
        self.grace = grace
        self.clock_tolerance = clock_tolerance
        self.clock = clock
        self.last_error: str | None = None
        self._verified: dict[str, License] = {}

    def now(self) -> datetime:
        return self.clock()

    def verify(self, token: str) -> License:
        """The license if `token` is genuine (cached per token: a signature never changes)."""
        token = token.strip()
        found = self._verified.get(token)
        if found is not None:
            return found
        try:
            license = verify_token(token, self.keys, issuer=self.issuer)
        except KeySetError as exc:
            raise InvalidLicenseError(str(exc)) from None
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = license
        return license

    def newest(self) -> License | None:
        """The newest genuine license held, preferring unrevoked ones; None if there is none.

        Between licenses issued in the same second, the stored one wins: the service handed it
        over as current after the configured one was issued.
        """
        candidates: list[tuple[License, bool]] = []
        errors: list[str] = []
        for token, stored in ((self.configured, False), (self.store.read_license(), True)):
            if not token:
                continue
            try:
                candidates.append((self.verify(token), stored))
            except LicenseError as exc:
                errors.append(exc.reason)
        self.last_error = errors[0] if errors else None
        if not candidates:
            return None
        observations = self.store.observations()
        license, _ = max(
            candidates,
            key=lambda item: (not _revoked_in(observations, item[0]), _epoch(item[0]), item[1]),
        )
        return license

    def verdict(self) -> Verdict:
        """Whether the instance may run now, and on which license."""
        license = self.newest()
        if license is None:
            return refused(self.last_error or "no license: configure the instance's license")
        observations = self.store.observations()
        if observations.observe_time(_epoch(license)[0]):
            self.store.save(observations)
        assert observations.trusted_time is not None
        trusted = datetime.fromtimestamp(observations.trusted_time, UTC)
        now = self.now()
        if now < trusted - self.clock_tolerance:
            return clock_set_back(license, now, trusted)
        if _revoked_in(observations, license):
            return revoked(license)
        return evaluate(
            license,
            max(now, trusted),
            grace=self.grace,
            expiry_confirmed=self._expiry_confirmed(observations, license),
        )

    @staticmethod
    def _expiry_confirmed(observations: Observations, license: License) -> bool:
        """The service was reached after the license expired and still called it current."""
        checked_at = observations.checked_in_at
        return (
            checked_at is not None
            and observations.checked_in_jti == license.jti
            and checked_at >= _epoch(license)[1]
        )

    def adopt(self, token: str) -> License:
        """Verify a license the service handed over and keep it as the newest one."""
        license = self.verify(token)
        held = self.newest()
        if held is not None and held.customer_id != license.customer_id:
            raise InvalidLicenseError(
                f"the service answered with a license for {license.customer_id}, "
                f"not {held.customer_id}"
            )
        self.observe_time(license.issued_at)
        if self.store.read_license() != license.token:
            self.store.write_license(license.token)
        return license

    def observe_time(self, when: datetime | None) -> None:
        """Remember a time the service vouched for (a license's iat, a response's Date)."""
        if when is None:
            return
        observations = self.store.observations()
        if observations.observe_time(when.timestamp()):
            self.store.save(observations)

    def record_check_in(self, license: License) -> None:
        """The service called `license` current, now (the clock, or the latest trusted time if
        that is later: a slow clock must not make an expired license look unconfirmed)."""
        observations = self.store.observations()
        now = self.now().timestamp()
        observations.checked_in_at = max(now, observations.trusted_time or now)
        observations.checked_in_jti = license.jti
        self.store.save(observations)

    def mark_revoked(self, license: License) -> None:
        observations = self.store.observations()
        if not any(entry.jti == license.jti for entry in observations.revoked):
            entry = RevokedLicense(license.jti, license.customer_id, _epoch(license)[0])
            observations.revoked.append(entry)
            self.store.save(observations)
