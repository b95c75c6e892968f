"""The license signing key set: the active key, the retired ones still published, rotation.

Layout, with the default settings:

    keys/private-key.pem          active private key (PKCS8, mode 0600)
    keys/public-key.pem           active public key (SubjectPublicKeyInfo), for customer instances
    keys/previous/<kid>.pem       public keys retired by rotation; still published in the JWKS so
                                  licenses signed before a rotation keep verifying until they expire

The private key may instead come from `LICENSE_PRIVATE_KEY` (PEM, or base64 of PEM) for secret
managers; it then wins over the file. The active public key is always derived from the private key,
so a stale public key file can never make the JWKS disagree with what is being signed.

Parsing, kids and atomic writes live in `key_files`; this module decides which keys are in use,
caches them per process and notices a rotation done by another process.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AbstractContextManager
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.errors import ConfigurationError
from core.licensing.key_files import (
    KEY_SIZE,
    PREVIOUS_DIR_NAME,
    PUBLIC_EXPONENT,
    InvalidSigningKeyError,
    KeyFileExistsError,
    KeyFromEnvironmentError,
    SigningKey,
    SigningKeyError,
    SigningKeyMissingError,
    Stamp,
    folder_lock,
    kid_for,
    parse_private_pem,
    parse_public_pem,
    pem_from_env,
    public_jwk,
    public_pem_of,
    read_public_keys,
    stamp_of,
    write_atomic,
)
from core.settings import Settings, get_settings

__all__ = [
    "InvalidSigningKeyError",
    "KeyFileExistsError",
    "KeyFromEnvironmentError",
    "SigningKey",
    "SigningKeyError",
    "SigningKeyMissingError",
    "active_kid",
    "clear_caches",
    "ensure_key_pair",
    "generate_key_pair",
    "jwks",
    "kid_for",
    "load_public_keys",
    "load_signing_key",
    "public_jwk",
    "public_keys",
    "public_pem_for",
    "public_pem_of",
    "read_public_keys",
    "rotate_keys",
    "signing_key",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Loading, cached per process

_private_cache: dict[object, tuple[object, SigningKey]] = {}
_archive_cache: dict[str, tuple[tuple[tuple[str, Stamp], ...], dict[str, rsa.RSAPublicKey]]] = {}
_public_file_cache: dict[str, tuple[Stamp, rsa.RSAPublicKey]] = {}


def clear_caches() -> None:
    """Forget every parsed key (tests; a long-running process never needs it)."""
    _active_kid_cache.clear()
    _private_cache.clear()
    _archive_cache.clear()
    _public_file_cache.clear()


def _missing_message(settings: Settings) -> str:
    return (
        f"no license signing key: {settings.license_private_key_path} does not exist and "
        "LICENSE_PRIVATE_KEY is not set. Run `billing keys generate` or set LICENSE_PRIVATE_KEY."
    )


def load_signing_key(settings: Settings) -> SigningKey:
    """The active signing key, parsed once per process and again only when its source changes.

    A repeated call costs one stat (or nothing, for a key from the environment), so callers can
    load the key for every license and still see a rotation done by another process.
    """
    env_value = settings.license_private_key
    if env_value:
        cached = _private_cache.get(("env", env_value))
        if cached is not None:
            return cached[1]
        key = parse_private_pem(pem_from_env(env_value), "LICENSE_PRIVATE_KEY")
        _private_cache[("env", env_value)] = (None, key)
        return key

    path = os.fspath(settings.license_private_key_path)
    try:
        stamp = stamp_of(os.stat(path))
    except FileNotFoundError:
        raise SigningKeyMissingError(_missing_message(settings)) from None
    cached = _private_cache.get(("file", path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    key = _load_private_file(path)
    _private_cache[("file", path)] = (stamp, key)
    return key


def _load_private_file(path: str) -> SigningKey:
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        pem = fh.read()
    if st.st_mode & 0o077:
        log.warning(
            "license private key %s is readable by other users (mode %o); run chmod 600 on it",
            path,
            st.st_mode & 0o777,
        )
    return parse_private_pem(pem, path)


def _previous_dir(settings: Settings) -> Path:
    return Path(settings.license_public_key_path).parent / PREVIOUS_DIR_NAME


def _archived_public_keys(settings: Settings) -> dict[str, rsa.RSAPublicKey]:
    """Retired public keys by kid, newest retirement first; re-read only when the folder changes."""
    folder = os.fspath(_previous_dir(settings))
    try:
        with os.scandir(folder) as entries:
            found = [
                (entry.name, entry.stat())
                for entry in entries
                if entry.name.endswith(".pem") and entry.is_file()
            ]
    except FileNotFoundError:
        return {}
    found.sort(key=lambda item: (-item[1].st_mtime_ns, item[0]))
    listing = tuple((name, stamp_of(st)) for name, st in found)
    cached = _archive_cache.get(folder)
    if cached is not None and cached[0] == listing:
        return cached[1]
    keys: dict[str, rsa.RSAPublicKey] = {}
    for name, _ in listing:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as fh:
                public_key = parse_public_pem(fh.read(), path)
        except (OSError, InvalidSigningKeyError) as exc:
            # One bad archive file must not take down verification of every other license.
            log.warning("skipping archived public key %s: %s", path, exc)
            continue
        # The kid comes from the key itself, not from the file name, which is only a label.
        keys.setdefault(kid_for(public_key), public_key)
    _archive_cache[folder] = (listing, keys)
    return keys


def _active_public_key(settings: Settings) -> tuple[str, rsa.RSAPublicKey]:
    try:
        key = load_signing_key(settings)
        return key.kid, key.public_key
    except SigningKeyMissingError:
        pass
    # A verify-only deployment may hold just the public key file.
    path = os.fspath(settings.license_public_key_path)
    try:
        stamp = stamp_of(os.stat(path))
    except FileNotFoundError:
        raise SigningKeyMissingError(_missing_message(settings)) from None
    cached = _public_file_cache.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, "rb") as fh:
            cached = (stamp, parse_public_pem(fh.read(), path))
        _public_file_cache[path] = cached
    return kid_for(cached[1]), cached[1]


def load_public_keys(settings: Settings) -> dict[str, rsa.RSAPublicKey]:
    """Every public key a license may be signed with, by kid: the active one first, then retired."""
    active_kid, active_key = _active_public_key(settings)
    keys = {active_kid: active_key}
    for kid, public_key in _archived_public_keys(settings).items():
        keys.setdefault(kid, public_key)
    return keys


def jwks(settings: Settings) -> dict[str, list[dict[str, str]]]:
    """The JWKS document instances fetch to follow rotations (active key first)."""
    return {
        "keys": [public_jwk(key, kid) for kid, key in load_public_keys(settings).items()],
    }


# ---------------------------------------------------------------------------------------------
# With the service's settings: a missing or broken key is the operator's to fix (503)


def signing_key() -> SigningKey:
    try:
        return load_signing_key(get_settings())
    except SigningKeyError as exc:
        raise ConfigurationError(str(exc)) from exc


# The hot read paths ask for the active kid on every request; a stat each time is more than the
# rest of a cached check-in costs. Another process's rotation is noticed this much later.
ACTIVE_KID_SECONDS = 0.5
_active_kid_cache: dict[object, tuple[float, str]] = {}


def active_kid() -> str:
    """The active signing key's kid, as `signing_key().kid`, looked up at most every
    ACTIVE_KID_SECONDS per process (a rotation in this process is seen at once)."""
    settings = get_settings()
    source = (settings.license_private_key, os.fspath(settings.license_private_key_path))
    now = time.monotonic()
    cached = _active_kid_cache.get(source)
    if cached is not None and now < cached[0]:
        return cached[1]
    kid = signing_key().kid
    _active_kid_cache[source] = (now + ACTIVE_KID_SECONDS, kid)
    return kid


def public_keys() -> dict[str, rsa.RSAPublicKey]:
    try:
        return load_public_keys(get_settings())
    except SigningKeyError as exc:
        raise ConfigurationError(str(exc)) from exc


def public_pem_for(kid: str) -> str:
    """The PEM of the public key with `kid` (the active one when it is not published)."""
    key = public_keys().get(kid)
    return public_pem_of(key) if key is not None else signing_key().public_pem


# ---------------------------------------------------------------------------------------------
# Writing: generate, ensure, rotate


def _key_lock(settings: Settings) -> AbstractContextManager[None]:
    return folder_lock(Path(settings.license_private_key_path).parent)


def _refuse_environment_key(settings: Settings, action: str) -> None:
    if settings.license_private_key:
        raise KeyFromEnvironmentError(
            f"cannot {action}: the signing key comes from LICENSE_PRIVATE_KEY, which overrides the "
            "key files. Replace the secret instead, and put the old public key in "
            f"{_previous_dir(settings)}/ so licenses it signed keep verifying."
        )


def _new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)


def _write_pair(settings: Settings, private_key: rsa.RSAPrivateKey) -> str:
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_key = private_key.public_key()
    # Private first: signers derive the public key from it, so they are right from this moment;
    # the public file (for copying to instances) follows.
    write_atomic(Path(settings.license_private_key_path), private_pem, 0o600)
    write_atomic(
        Path(settings.license_public_key_path), public_pem_of(public_key).encode("ascii"), 0o644
    )
    return kid_for(public_key)


def _existing_key_files(settings: Settings) -> list[Path]:
    paths = (Path(settings.license_private_key_path), Path(settings.license_public_key_path))
    return [path for path in paths if path.exists()]


def _generate_locked(settings: Settings, force: bool) -> str:
    existing = _existing_key_files(settings)
    if existing and not force:
        names = " and ".join(str(path) for path in existing)
        raise KeyFileExistsError(
            f"{names} already exist(s); refusing to overwrite a signing key (licenses it signed "
            "would stop verifying). Use `billing keys rotate` to replace it while keeping the old "
            "public key published, or --force to discard it."
        )
    return _write_pair(settings, _new_private_key())


def generate_key_pair(settings: Settings, force: bool = False) -> str:
    """Create a new RSA-2048 pair at the configured paths and return its kid."""
    _refuse_environment_key(settings, "generate key files")
    with _key_lock(settings):
        kid = _generate_locked(settings, force)
    _active_kid_cache.clear()
    return kid


def ensure_key_pair(settings: Settings) -> str:
    """The active kid, generating a pair first if there is no key at all (first `billing dev`)."""
    if settings.license_private_key:
        return load_signing_key(settings).kid
    with _key_lock(settings):
        if not Path(settings.license_private_key_path).exists():
            # Raises KeyFileExistsError if only the public key is there: a lost private key is
            # for an operator to resolve, not something to paper over with a new pair.
            return _generate_locked(settings, force=False)
        key = load_signing_key(settings)
        public_path = Path(settings.license_public_key_path)
        if not public_path.exists():
            # Restore a missing public key file from the private key rather than leave it absent.
            write_atomic(public_path, key.public_pem.encode("ascii"), 0o644)
        return key.kid


def rotate_keys(settings: Settings) -> str:
    """Retire the active pair (its public key stays published) and make a new one; new kid."""
    _refuse_environment_key(settings, "rotate keys")
    with _key_lock(settings):
        current = load_signing_key(settings)
        # Archive before replacing: a license signed with the old key, in this or any other
        # process, must find its public key published from the moment the new key is in place.
        write_atomic(
            _previous_dir(settings) / f"{current.kid}.pem",
            current.public_pem.encode("ascii"),
            0o644,
        )
        new_kid = _write_pair(settings, _new_private_key())
        _endorse(settings, current, load_signing_key(settings))
    _active_kid_cache.clear()
    log.info("rotated license signing key %s -> %s", current.kid, new_kid)
    return new_kid


ENDORSEMENT_SUFFIX = ".endorsement.jws"


def _endorse(settings: Settings, retired: SigningKey, new: SigningKey) -> None:
    """The retired key signs the new one (a compact JWS over a one-key JWKS), while its private
    key is still at hand: an instance that pinned the retired key follows the rotation by
    verifying this with the key it pinned (see docs/sdk.md, "Key rotation with a pinned key")."""
    payload = {"keys": [public_jwk(new.public_key, new.kid)], "iat": int(time.time())}
    token = jwt.encode(
        payload, retired.private_key, algorithm="RS256", headers={"kid": retired.kid}
    )
    path = _previous_dir(settings) / f"{new.kid}{ENDORSEMENT_SUFFIX}"
    write_atomic(path, token.encode("ascii"), 0o644)


def endorsements(settings: Settings) -> list[str]:
    """Every rotation's endorsement (each new key signed by the key it replaced), oldest first."""
    folder = _previous_dir(settings)
    try:
        found = sorted(folder.glob("*" + ENDORSEMENT_SUFFIX), key=lambda p: p.stat().st_mtime_ns)
    except FileNotFoundError:
        return []
    return [path.read_text(encoding="ascii").strip() for path in found]
