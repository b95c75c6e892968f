"""The license an instance runs on: the newest genuine one it holds, and whether it may run.

An instance holds up to two licenses: the one it was configured with and the newest one the
service handed it since (kept in the state directory). The newest genuine one is used, so a
license the service signed saying "revoked" stops the instance, and a later one lifts it. The
keeper also keeps the latest time the service signed (a license's `iat`), so a clock set back is
refused. Nothing unsigned changes either: not a response's Date header, not a 401's words.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from zemfyre_license.errors import InvalidLicenseError, LicenseError
from zemfyre_license.keys import KeySetError, KeySource
from zemfyre_license.license import License
from zemfyre_license.state import Observations, StateStore
from zemfyre_license.verdict import (
    DEFAULT_CLOCK_TOLERANCE,
    DEFAULT_GRACE,
    Verdict,
    clock_set_back,
    evaluate,
    refused,
)
from zemfyre_license.verify import DEFAULT_ISSUER, verify_token

Clock = Callable[[], datetime]
_VERIFIED_CACHE = 16
# Tries to replace the stored license when another instance keeps changing it meanwhile.
_ADOPT_ATTEMPTS = 3


def utc_now() -> datetime:
    return datetime.now(UTC)


def _epoch(license: License) -> tuple[float, float]:
    return float(license.claims["iat"]), float(license.claims["exp"])


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
        """The newest genuine license held; None if there is none.

        Between licenses issued in the same second, the stored one wins: the service handed it
        over as current after the configured one was issued.
        """
        held = self._held()
        return held[0] if held else None

    def presentable(self) -> License | None:
        """The license to present to the service: the newest genuine one that does not say
        revoked (the service refuses those anyway), else the newest. A license an operator
        handed over after a revocation issued in the same second then still checks in."""
        held = self._held()
        return next((license for license in held if not license.revoked), None) or (
            held[0] if held else None
        )

    def _held(self) -> list[License]:
        """The genuine licenses held, newest first."""
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
        candidates.sort(key=lambda item: (_epoch(item[0])[0], item[1]), reverse=True)
        return [license for license, _ in candidates]

    def verdict(self) -> Verdict:
        """Whether the instance may run now, and on which license."""
        license = self.newest()
        if license is None:
            return refused(self.last_error or "no license: configure the instance's license")
        with self.store.update() as observations:
            observations.observe_time(_epoch(license)[0])
        assert observations.trusted_time is not None
        trusted = datetime.fromtimestamp(observations.trusted_time, UTC)
        now = self.now()
        if now < trusted - self.clock_tolerance:
            return clock_set_back(license, now, trusted)
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
        """Verify a license the service handed over and keep it if it is the newest one."""
        license = self.verify(token)
        held = self.newest()
        if held is not None and held.customer_id != license.customer_id:
            raise InvalidLicenseError(
                f"the service answered with a license for {license.customer_id}, "
                f"not {held.customer_id}"
            )
        self.observe_time(license.issued_at)
        for _ in range(_ADOPT_ATTEMPTS):
            with self.store.locked():
                stored_token = self.store.read_license()
            # Verified outside the lock: it may fetch the key set, and other instances sharing
            # the state directory must not wait on the network for their verdicts.
            stored = self._genuine(stored_token)
            if stored is not None and (
                _epoch(stored)[0] > _epoch(license)[0] or stored.token == license.token
            ):
                return license  # another instance kept a newer one (or this one) meanwhile
            with self.store.locked():
                if self.store.read_license() == stored_token:
                    self.store.write_license(license.token)
                    return license
        return license  # changed under us each time: another instance is keeping newer ones

    def take_signed_revocation(self, proof: object) -> str | None:
        """Keep the license a revocation answer carries; None when it proves the revocation (a
        genuine license of this customer that says revoked and is now the newest held), else
        why it does not. The words of an answer revoke nothing: anyone on the network can
        write them."""
        if not isinstance(proof, str):
            return "it sent no signed license saying so"
        try:
            self.adopt(proof)
        except LicenseError as exc:
            return f"the license it sent was not kept ({exc.reason})"
        newest = self.newest()
        if newest is None or not newest.revoked:
            return "the newest signed license held does not say revoked"
        return None

    def _genuine(self, token: str | None) -> License | None:
        if not token:
            return None
        try:
            return self.verify(token)
        except LicenseError:
            return None

    def observe_time(self, when: datetime) -> None:
        """Remember a time the service signed (a genuine license's iat)."""
        with self.store.update() as observations:
            observations.observe_time(when.timestamp())

    def record_check_in(self, license: License) -> None:
        """The service called `license` current, now (the clock, or the latest trusted time if
        that is later: a slow clock must not make an expired license look unconfirmed)."""
        with self.store.update() as observations:
            now = self.now().timestamp()
            observations.checked_in_at = max(now, observations.trusted_time or now)
            observations.checked_in_jti = license.jti
