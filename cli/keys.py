"""`billing keys generate|rotate|show`: the RSA key pairs that sign licenses."""

from __future__ import annotations

import typer

from cli.common import console, db_session, fail
from workers import task_names

app = typer.Typer(help="License signing keys.", no_args_is_help=True)


@app.command()
def generate(
    force: bool = typer.Option(False, "--force", help="Overwrite an existing key pair"),
) -> None:
    """Write a new RSA-2048 key pair to keys/ (private key mode 0600)."""
    from core.licensing.keys import SigningKeyError, generate_key_pair
    from core.settings import get_settings

    settings = get_settings()
    try:
        kid = generate_key_pair(settings, force=force)
    except SigningKeyError as exc:
        raise fail(str(exc)) from exc
    console.print(f"✅ key pair {kid} written")
    console.print(f"Private key: {settings.license_private_key_path} (keep it secret)")
    console.print(f"Public key:  {settings.license_public_key_path} (copy it to instances)")


@app.command()
def rotate() -> None:
    """Make a new signing key; the old public key stays published so its licenses verify."""
    from core.licensing.keys import SigningKeyError, load_signing_key, rotate_keys
    from core.settings import get_settings
    from workers.enqueue import enqueue

    settings = get_settings()
    try:
        old_kid = load_signing_key(settings).kid
        new_kid = rotate_keys(settings)
    except SigningKeyError as exc:
        raise fail(str(exc)) from exc
    from core import audit

    with db_session() as session:
        audit.record(session, "keys.rotate", before={"kid": old_kid}, after={"kid": new_kid})
    console.print(f"✅ signing key rotated: {old_kid} -> {new_kid}")
    console.print(f"{old_kid} stays published in /.well-known/jwks.json")
    # Renewal reissues every license signed by a key that is no longer the active one.
    if enqueue(task_names.RENEW_LICENSES):
        console.print("🔁 licenses are being reissued with the new key by a worker")
    else:
        console.print(
            "⚠️  could not reach the broker: licenses are reissued with the new key by the next "
            "hourly license renewal"
        )


@app.command()
def show() -> None:
    """List the published key ids (the active one first)."""
    from core.licensing.keys import SigningKeyError, load_public_keys
    from core.settings import get_settings

    try:
        keys = load_public_keys(get_settings())
    except SigningKeyError as exc:
        raise fail(str(exc)) from exc
    for index, kid in enumerate(keys):
        console.print(f"{kid}  {'active' if index == 0 else 'retired (still published)'}")
