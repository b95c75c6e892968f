"""`billing license show|revoke|reinstate|verify`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from cli.common import RULE, console, db_session, fail, field_line
from cli.customers import print_env_lines, when

app = typer.Typer(help="License keys.", no_args_is_help=True)


def _print_claims(claims: dict[str, Any]) -> None:
    features = claims.get("features") or {}
    console.print(field_line("Customer", claims.get("customerId")))
    console.print(field_line("Name", claims.get("customerName")), soft_wrap=True)
    console.print(field_line("Plan", str(claims.get("plan", "-")).upper()))
    console.print(field_line("Status", (claims.get("subscription") or {}).get("status")))
    console.print(
        field_line("Trial", "yes" if (claims.get("trial") or {}).get("isTrialMode") else "no")
    )
    console.print(field_line("Max Devices", features.get("maxDevices")))
    console.print(field_line("Issued", when(_from_epoch(claims.get("iat")))))
    console.print(field_line("Expires", when(_from_epoch(claims.get("exp")))))
    revocation = claims.get("revocation")
    if revocation:
        console.print(field_line("Revoked", revocation.get("reason") or "yes"))


def _from_epoch(value: object) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


@app.command()
def show(customer_id: str = typer.Argument(..., help="The customer's id (cust_…)")) -> None:
    """Print the customer's current license and what it says."""
    from core.customers.service import get_customer
    from core.licensing import service

    with db_session() as session:
        get_customer(session, customer_id)
        row = service.current_license(session, customer_id)
        if row is None:
            raise fail(f"customer {customer_id} has no license yet")
        console.print("License Details:")
        console.print(RULE)
        console.print(field_line("License ID", row.jti))
        console.print(field_line("Key ID", row.kid))
        if row.revoked_at is not None:
            console.print(field_line("Revoked At", when(row.revoked_at)))
        _print_claims(row.claims)
        console.print(RULE)
        console.print()
        console.print("📜 License JWT:")
        console.print(row.token, soft_wrap=True)


@app.command()
def revoke(
    customer_id: str = typer.Argument(..., help="The customer's id (cust_…)"),
    reason: str = typer.Option(None, "--reason", help="Why (recorded and put in the license)"),
) -> None:
    """Revoke the customer's licenses: refused at once, and its next license says revoked."""
    from core.licensing.revocation import revoke_license

    # In-process, as the API does it (core/licensing/revocation.py says why).
    with db_session() as session:
        result = revoke_license(session, customer_id, reason=reason)
    console.print(f"✅ License of {customer_id} revoked")
    console.print(RULE)
    console.print(field_line("Revoked At", when(result.customer.license_revoked_at)))
    console.print(field_line("Reason", result.customer.license_revoked_reason))
    console.print(field_line("Licenses Revoked", result.revoked_licenses))
    console.print(RULE)
    console.print("💡 Lift it with `billing license reinstate " + customer_id + "`.")


@app.command()
def reinstate(
    customer_id: str = typer.Argument(..., help="The customer's id (cust_…)"),
    reason: str = typer.Option(None, "--reason", help="Why (recorded in the audit log)"),
) -> None:
    """Lift a revocation and print the customer's new license."""
    from core.licensing.revocation import reinstate_license

    with db_session() as session:
        token = reinstate_license(session, customer_id, reason=reason).token
    console.print(f"✅ License of {customer_id} reinstated")
    console.print()
    console.print("📜 New License JWT:")
    console.print(token, soft_wrap=True)
    console.print()
    print_env_lines(token, customer_id)


@app.command()
def reissue(
    customer_id: str = typer.Argument(..., help="The customer's id (cust_…)"),
    reason: str = typer.Option(None, "--reason", help="Why (recorded in the audit log)"),
) -> None:
    """Issue the customer a new license now, even if nothing it says changed."""
    from core.licensing.revocation import reissue_now

    with db_session() as session:
        row = reissue_now(session, customer_id, reason=reason)
        token, jti = row.token, row.jti
    console.print(f"✅ New license {jti} issued for {customer_id}")
    console.print()
    console.print("📜 New License JWT:")
    console.print(token, soft_wrap=True)


@app.command()
def verify(
    token: str = typer.Argument(
        "-", help="The license JWT, or - (the default) to read it from stdin, out of `ps`"
    ),
    public_key: Path = typer.Option(..., "--public-key", help="PEM public key or JWKS file"),
    issuer: str = typer.Option(None, "--issuer", help="Expected issuer (default: LICENSE_ISSUER)"),
) -> None:
    """Check a license offline, as an instance does: signature, issuer, expiry, revocation."""
    from core.licensing.keys import SigningKeyError, read_public_keys
    from core.licensing.tokens import InvalidLicenseError, verify_license
    from core.settings import get_settings

    # A license is a credential: on the command line every user of the machine can read it.
    token = (sys.stdin.read() if token == "-" else token).strip()
    try:
        keys = read_public_keys(public_key)
    except OSError as exc:
        raise fail(f"cannot read {public_key}: {exc.strerror or exc}") from exc
    except SigningKeyError as exc:
        raise fail(str(exc)) from exc
    try:
        claims = verify_license(token, keys, issuer=issuer or get_settings().license_issuer)
    except InvalidLicenseError as exc:
        raise fail(f"license is NOT valid: {exc.reason}") from exc
    if claims.get("revocation"):
        _print_claims(claims)
        raise fail("license is NOT valid: it says it is revoked")
    console.print("✅ License is valid")
    console.print(RULE)
    _print_claims(claims)
    console.print(RULE)
