from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.licensing.keys import (
    InvalidSigningKeyError,
    KeyFileExistsError,
    KeyFromEnvironmentError,
    SigningKey,
    SigningKeyMissingError,
    ensure_key_pair,
    generate_key_pair,
    jwks,
    kid_for,
    load_public_keys,
    load_signing_key,
    rotate_keys,
)
from core.licensing.tokens import verify_license
from core.settings import Settings
from tests.core.licensing.conftest import ISSUER, b64url, make_content, signed_token
from tests.helpers.processes import PROJECT_ROOT  # noqa: E402


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "license_private_key_path": tmp_path / "keys" / "private-key.pem",
        "license_public_key_path": tmp_path / "keys" / "public-key.pem",
        "license_private_key": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------------------------
# kid


def test_kid_is_the_rfc7638_thumbprint_of_the_rfc_example() -> None:
    # RFC 7638 section 3.1: this key's SHA-256 thumbprint is given in the RFC.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ"
        "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFT"
        "WhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    public_key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert kid_for(public_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_kid_matches_a_hand_computed_thumbprint(settings: Settings) -> None:
    kid = generate_key_pair(settings)
    public_key = serialization.load_pem_public_key(settings.license_public_key_path.read_bytes())
    numbers = public_key.public_numbers()  # type: ignore[union-attr]
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    canonical = '{"e":"AQAB","kty":"RSA","n":"' + b64url(n) + '"}'
    assert json.dumps(json.loads(canonical), sort_keys=True, separators=(",", ":")) == canonical
    assert kid == b64url(hashlib.sha256(canonical.encode()).digest())
    assert len(kid) == 43 and "=" not in kid


# ---------------------------------------------------------------------------------------------
# generate


def test_generate_writes_a_private_0600_and_a_public_key(settings: Settings) -> None:
    kid = generate_key_pair(settings)
    private_path, public_path = settings.license_private_key_path, settings.license_public_key_path
    assert private_path.parent.is_dir()  # the folder was created
    assert mode_of(private_path) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SPKI
    private_key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == 2048
    assert kid_for(private_key.public_key()) == kid
    key = load_signing_key(settings)
    assert key.kid == kid
    assert key.public_pem == public_path.read_text()
    # Nothing but the two keys is left behind (no temporary files).
    assert sorted(p.name for p in private_path.parent.iterdir()) == [
        "private-key.pem",
        "public-key.pem",
    ]


def test_private_key_file_is_created_0600_whatever_the_umask(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[tuple[str, int, int]] = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & os.O_CREAT:
            created.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    old_umask = os.umask(0)
    try:
        generate_key_pair(settings)
    finally:
        os.umask(old_umask)
    private_dir = os.fspath(settings.license_private_key_path.parent)
    private_creates = [c for c in created if "private-key.pem" in c[0]]
    assert private_creates, created
    for path, flags, mode in private_creates:
        assert os.path.dirname(path) == private_dir
        assert mode == 0o600  # born private, never chmod-ed down afterwards
        assert flags & os.O_EXCL
    assert mode_of(settings.license_private_key_path) == 0o600


def test_generate_refuses_to_overwrite_without_force(settings: Settings) -> None:
    kid = generate_key_pair(settings)
    before = settings.license_private_key_path.read_bytes()
    with pytest.raises(KeyFileExistsError, match="private-key.pem"):
        generate_key_pair(settings)
    assert settings.license_private_key_path.read_bytes() == before
    new_kid = generate_key_pair(settings, force=True)
    assert new_kid != kid
    assert settings.license_private_key_path.read_bytes() != before
    assert mode_of(settings.license_private_key_path) == 0o600
    assert load_signing_key(settings).kid == new_kid


def test_generate_refuses_when_only_the_public_key_exists(settings: Settings) -> None:
    generate_key_pair(settings)
    settings.license_private_key_path.unlink()
    with pytest.raises(KeyFileExistsError):
        generate_key_pair(settings)


# ---------------------------------------------------------------------------------------------
# load


def test_missing_key_says_what_to_do(settings: Settings) -> None:
    with pytest.raises(SigningKeyMissingError) as excinfo:
        load_signing_key(settings)
    assert "billing keys generate" in str(excinfo.value)
    assert "LICENSE_PRIVATE_KEY" in str(excinfo.value)
    with pytest.raises(SigningKeyMissingError):
        load_public_keys(settings)


@pytest.mark.parametrize("encoding", ["pem", "pem-escaped", "base64", "base64-wrapped"])
def test_environment_key_loads_with_the_file_kid(tmp_path: Path, encoding: str) -> None:
    file_settings = make_settings(tmp_path / "a")
    kid = generate_key_pair(file_settings)
    pem = file_settings.license_private_key_path.read_text()
    value = {
        "pem": pem,
        "pem-escaped": pem.strip().replace("\n", "\\n"),
        "base64": base64.b64encode(pem.encode()).decode(),
        "base64-wrapped": base64.encodebytes(pem.encode()).decode(),
    }[encoding]
    # A different key on disk: the environment must win over it.
    env_settings = make_settings(tmp_path / "b", license_private_key=value)
    generate_key_pair(make_settings(tmp_path / "b"))
    key = load_signing_key(env_settings)
    assert key.kid == kid
    assert key.public_pem == file_settings.license_public_key_path.read_text()
    assert list(load_public_keys(env_settings)) == [kid]


@pytest.mark.parametrize("value", ["not a key", base64.b64encode(b"hello").decode()])
def test_unreadable_environment_key_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(InvalidSigningKeyError, match="LICENSE_PRIVATE_KEY"):
        load_signing_key(make_settings(tmp_path, license_private_key=value))


def test_small_keys_are_refused(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(InvalidSigningKeyError, match="1024"):
        load_signing_key(make_settings(tmp_path, license_private_key=pem))


def test_repeated_loads_parse_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    generate_key_pair(settings)
    first = load_signing_key(settings)
    parses: list[bytes] = []
    real = serialization.load_pem_private_key

    def counting(data, *args, **kwargs):  # type: ignore[no-untyped-def]
        parses.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(serialization, "load_pem_private_key", counting)
    for _ in range(100):
        assert load_signing_key(settings) is first
    assert parses == []
    load_public_keys(settings)
    jwks(settings)
    assert parses == []


def test_cache_picks_up_a_rotation_by_another_process(settings: Settings) -> None:
    old = load_signing_key_after_generate(settings)
    script = (
        "import sys; from pathlib import Path; from core.settings import Settings; "
        "from core.licensing.keys import rotate_keys; "
        "s = Settings(_env_file=None, license_private_key=None, "
        "license_private_key_path=Path(sys.argv[1]), license_public_key_path=Path(sys.argv[2])); "
        "print(rotate_keys(s))"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(settings.license_private_key_path),
            str(settings.license_public_key_path),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "LICENSE_PRIVATE_KEY"},
    )
    new_kid = result.stdout.strip()
    assert new_kid and new_kid != old.kid
    # Same process, no restart, no cache clearing: the next call sees the new key...
    assert load_signing_key(settings).kid == new_kid
    # ...and the retired one is still published.
    assert list(load_public_keys(settings)) == [new_kid, old.kid]


def test_cache_picks_up_an_in_place_rewrite(settings: Settings) -> None:
    old = load_signing_key_after_generate(settings)
    other = make_settings(settings.license_private_key_path.parent.parent / "other")
    generate_key_pair(other)
    # An editor or `cp` rewriting the same inode, not our rename.
    with open(settings.license_private_key_path, "r+b") as fh:
        fh.truncate(0)
        fh.write(other.license_private_key_path.read_bytes())
    st = settings.license_private_key_path.stat()
    os.utime(settings.license_private_key_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert load_signing_key(settings).kid == load_signing_key(other).kid != old.kid


def load_signing_key_after_generate(settings: Settings) -> SigningKey:
    generate_key_pair(settings)
    return load_signing_key(settings)


def test_verify_only_deployment_publishes_the_public_key_file(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    kid = generate_key_pair(settings)
    settings.license_private_key_path.unlink()
    assert list(load_public_keys(settings)) == [kid]


# ---------------------------------------------------------------------------------------------
# ensure


def test_ensure_generates_only_once(settings: Settings) -> None:
    kid = ensure_key_pair(settings)
    before = settings.license_private_key_path.read_bytes()
    assert ensure_key_pair(settings) == kid
    assert settings.license_private_key_path.read_bytes() == before


def test_ensure_restores_a_missing_public_key(settings: Settings) -> None:
    kid = ensure_key_pair(settings)
    settings.license_public_key_path.unlink()
    assert ensure_key_pair(settings) == kid
    assert settings.license_public_key_path.read_text() == load_signing_key(settings).public_pem


def test_ensure_with_an_environment_key_writes_nothing(tmp_path: Path) -> None:
    source = make_settings(tmp_path / "source")
    kid = generate_key_pair(source)
    settings = make_settings(
        tmp_path / "env", license_private_key=source.license_private_key_path.read_text()
    )
    assert ensure_key_pair(settings) == kid
    assert not (tmp_path / "env").exists()


# ---------------------------------------------------------------------------------------------
# rotate and JWKS


def test_rotate_keeps_the_old_public_key_published(settings: Settings) -> None:
    old_kid = generate_key_pair(settings)
    old_key = load_signing_key(settings)
    now = datetime.now(UTC)
    old_token = signed_token(old_key, make_content(), now, now + timedelta(days=30))

    new_kid = rotate_keys(settings)

    assert new_kid != old_kid
    archived = settings.license_public_key_path.parent / "previous" / f"{old_kid}.pem"
    assert archived.read_text() == old_key.public_pem
    assert load_signing_key(settings).kid == new_kid
    assert mode_of(settings.license_private_key_path) == 0o600
    document = jwks(settings)
    assert [k["kid"] for k in document["keys"]] == [new_kid, old_kid]  # active first

    public_keys = load_public_keys(settings)
    assert list(public_keys) == [new_kid, old_kid]
    claims = verify_license(old_token, public_keys, issuer=ISSUER)
    assert claims["customerId"] == "cust_abc123"

    new_key = load_signing_key(settings)
    new_token = signed_token(new_key, make_content(), now, now + timedelta(days=30))
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    verify_license(new_token, public_keys, issuer=ISSUER)


def test_rotating_twice_publishes_all_keys_newest_first(settings: Settings) -> None:
    first = generate_key_pair(settings)
    second = rotate_keys(settings)
    third = rotate_keys(settings)
    assert list(load_public_keys(settings)) == [third, second, first]


def test_rotate_refuses_an_environment_key(tmp_path: Path) -> None:
    source = make_settings(tmp_path / "source")
    generate_key_pair(source)
    env_settings = make_settings(
        tmp_path / "env", license_private_key=source.license_private_key_path.read_text()
    )
    with pytest.raises(KeyFromEnvironmentError, match="LICENSE_PRIVATE_KEY"):
        rotate_keys(env_settings)
    with pytest.raises(KeyFromEnvironmentError):
        generate_key_pair(env_settings)


def test_rotate_without_a_key_says_so(settings: Settings) -> None:
    with pytest.raises(SigningKeyMissingError):
        rotate_keys(settings)


def test_jwks_entries(settings: Settings) -> None:
    kid = generate_key_pair(settings)
    numbers = load_signing_key(settings).public_key.public_numbers()
    (entry,) = jwks(settings)["keys"]
    assert entry == {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": b64url(numbers.n.to_bytes(256, "big")),
        "e": "AQAB",
    }
    json.dumps(jwks(settings))  # serialisable as is


def test_a_corrupt_archive_file_is_skipped(settings: Settings) -> None:
    first = generate_key_pair(settings)
    second = rotate_keys(settings)
    (settings.license_public_key_path.parent / "previous" / "junk.pem").write_text("nope")
    assert list(load_public_keys(settings)) == [second, first]
