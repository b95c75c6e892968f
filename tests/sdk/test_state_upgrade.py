"""An instance bricked by the old Date-header rule recovers when the SDK is upgraded.

The old SDK kept a response's `Date` (2100, from a forged answer) as the trusted time in an
unversioned state.json, and every verdict after it said "clock set back", offline too.
"""

from __future__ import annotations

import json
from pathlib import Path

from zemfyre_license import LicenseClient
from zemfyre_license.state import STATE_VERSION, write_atomic

from tests.sdk.forged_service import SigningKey

YEAR_2100 = 4_102_444_800.0


def test_a_state_poisoned_by_the_old_date_rule_is_dropped_on_load(
    service_key: SigningKey, tmp_path: Path
) -> None:
    token = service_key.license()
    state = tmp_path / "state"
    old_state = {"trusted_time": YEAR_2100, "checked_in_at": YEAR_2100, "checked_in_jti": "x"}
    write_atomic(state / "state.json", json.dumps(old_state).encode())

    client = LicenseClient(token, public_key=service_key.public_pem(), state_dir=state)
    verdict = client.verdict()

    assert verdict.allowed and not verdict.clock_set_back, verdict.reason
    license = client.license
    assert license is not None
    saved = json.loads((state / "state.json").read_text())
    assert saved["version"] == STATE_VERSION
    assert saved["trusted_time"] == license.issued_at.timestamp()
    assert saved["checked_in_at"] is None


def test_a_current_state_still_refuses_a_clock_set_back(
    service_key: SigningKey, tmp_path: Path
) -> None:
    # The upgrade drops only the old format: a trusted time this SDK kept (from a signed iat)
    # still stops a clock set back.
    token = service_key.license()
    state = tmp_path / "state"
    current = {"version": STATE_VERSION, "trusted_time": YEAR_2100}
    write_atomic(state / "state.json", json.dumps(current).encode())

    verdict = LicenseClient(token, public_key=service_key.public_pem(), state_dir=state).verdict()

    assert not verdict.allowed and verdict.clock_set_back


def test_the_state_lock_can_be_taken_without_write_access(
    service_key: SigningKey, tmp_path: Path
) -> None:
    # An instance running as another user may only read state.lock: a read-only descriptor
    # must be enough to take it, and the file must be readable by others.
    state = tmp_path / "state"
    client = LicenseClient(
        service_key.license(), public_key=service_key.public_pem(), state_dir=state
    )
    assert client.verdict().allowed
    lock = state / "state.lock"
    assert lock.stat().st_mode & 0o044 == 0o044
    lock.chmod(0o444)  # as another user would see it: not writable
    client.keeper.record_check_in(client.license)  # type: ignore[arg-type]
    assert json.loads((state / "state.json").read_text())["checked_in_jti"]
