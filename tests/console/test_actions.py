"""The customer page's actions: each a POST with the session's CSRF token and the console's
Origin, by an operator, running the same service function as the API and the CLI, audited."""

from __future__ import annotations

from tests.conftest import pg_scalar
from tests.console.conftest import ORIGIN, seed_customer


def _post(client, path: str, data: dict, origin: str | None = ORIGIN):  # type: ignore[no-untyped-def]
    headers = {"Origin": origin} if origin else {}
    return client.post(path, data=data, headers=headers, follow_redirects=False)


def _revoked(customer_id: str) -> bool:
    return (
        pg_scalar(
            f"SELECT license_revoked_at IS NOT NULL FROM customers "
            f"WHERE customer_id = '{customer_id}'"
        )
        is True
    )


def test_revoke_shows_its_impact_first(operator) -> None:
    client, _ = operator
    seeded = seed_customer()
    page = client.get(f"/console/customers/{seeded.customer_id}/revoke").text
    impact = page[page.index('id="impact"') :].split("</table>")[0]
    assert "edge-berlin" in impact and "edge-munich" in impact
    assert "at its next check-in" in impact and "expiry + offline grace" in impact
    assert ">Reason</label>" in page and ">Type the customer id to confirm</label>" in page
    # The id is typed, not offered: the placeholder only shows its form.
    confirm = page[page.index('<input id="confirm"') :].split(">")[0]
    assert 'placeholder="cust_…"' in confirm and seeded.customer_id not in confirm
    assert not _revoked(seeded.customer_id)  # looking changes nothing


def test_revoke_needs_a_reason_and_the_typed_customer_id(operator) -> None:
    client, csrf = operator
    seeded = seed_customer()
    path = f"/console/customers/{seeded.customer_id}/revoke"
    no_reason = _post(client, path, {"csrf_token": csrf, "confirm": seeded.customer_id})
    assert no_reason.status_code == 422 and "Give a reason" in no_reason.text
    wrong_id = _post(client, path, {"csrf_token": csrf, "reason": "fraud", "confirm": "cust_x"})
    assert wrong_id.status_code == 422 and "Type the customer id exactly" in wrong_id.text
    assert not _revoked(seeded.customer_id)

    done = _post(
        client, path, {"csrf_token": csrf, "reason": "chargeback", "confirm": seeded.customer_id}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/customers/{seeded.customer_id}?done=revoked"
    assert _revoked(seeded.customer_id)
    assert (
        pg_scalar(
            f"SELECT count(*) FROM licenses WHERE customer_id = '{seeded.customer_id}' "
            "AND revoked_at IS NULL"
        )
        == 0
    )
    entry = pg_scalar(
        "SELECT actor || '|' || action || '|' || reason || '|' || (request_id IS NOT NULL) "
        f"FROM audit_log WHERE customer_id = '{seeded.customer_id}' ORDER BY id DESC LIMIT 1"
    )
    assert entry == "alice@ops|license.revoke|chargeback|true"
    page = client.get(done.headers["location"]).text
    assert "License revoked." in page and "“chargeback”" in page


def test_no_csrf_token_or_another_origin_is_403_and_nothing_changes(operator) -> None:
    client, csrf = operator
    seeded = seed_customer()
    path = f"/console/customers/{seeded.customer_id}/revoke"
    form = {"reason": "x", "confirm": seeded.customer_id}
    for data, origin in (
        (form, ORIGIN),  # no token
        ({**form, "csrf_token": "forged"}, ORIGIN),
        ({**form, "csrf_token": csrf}, "https://evil.example"),
        ({**form, "csrf_token": csrf}, None),  # no Origin at all
    ):
        answer = _post(client, path, data, origin)
        assert answer.status_code == 403, (data, origin)
    assert not _revoked(seeded.customer_id)
    assert pg_scalar("SELECT count(*) FROM audit_log WHERE action = 'license.revoke'") == 0
    # htmx's header carries the token as well as the hidden field does.
    answer = client.post(
        f"/console/customers/{seeded.customer_id}/reissue",
        headers={"Origin": ORIGIN, "X-CSRF-Token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303


def test_a_viewer_sees_no_action_and_every_change_is_403(viewer) -> None:
    client, csrf = viewer
    seeded = seed_customer()
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    assert page.count("<button") == 1 and ">Sign out</button>" in page
    assert "Revoke license" not in page
    for action in ("revoke", "reissue", "reinstate", "cancel", "portal"):
        answer = _post(
            client,
            f"/console/customers/{seeded.customer_id}/{action}",
            {"csrf_token": csrf, "reason": "x", "confirm": seeded.customer_id},
        )
        assert answer.status_code == 403, action
        assert "viewer" in answer.text
    assert not _revoked(seeded.customer_id)
    assert (
        pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{seeded.customer_id}'") == 2
    )


def test_reinstate_needs_a_reason_then_issues_a_normal_license(operator) -> None:
    client, csrf = operator
    seeded = seed_customer()
    base = f"/console/customers/{seeded.customer_id}"
    _post(
        client, f"{base}/revoke", {"csrf_token": csrf, "reason": "r", "confirm": seeded.customer_id}
    )
    refused = _post(client, f"{base}/reinstate", {"csrf_token": csrf, "reason": "  "})
    assert refused.status_code == 422 and "reason is required" in refused.text
    assert _revoked(seeded.customer_id)
    done = _post(client, f"{base}/reinstate", {"csrf_token": csrf, "reason": "paid in full"})
    assert done.status_code == 303 and not _revoked(seeded.customer_id)
    assert (
        pg_scalar("SELECT reason FROM audit_log WHERE action = 'license.reinstate'")
        == "paid in full"
    )


def test_reissue_issues_a_new_current_license(operator) -> None:
    client, csrf = operator
    seeded = seed_customer()
    done = _post(client, f"/console/customers/{seeded.customer_id}/reissue", {"csrf_token": csrf})
    assert done.status_code == 303
    current = pg_scalar(
        f"SELECT jti FROM licenses WHERE customer_id = '{seeded.customer_id}' "
        "AND superseded_at IS NULL"
    )
    assert current != seeded.jti
    assert client.get(done.headers["location"]).text.count(str(current)) >= 1
