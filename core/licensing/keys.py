"""RSA key pairs that sign licenses: generate, load (cached), rotate, identify (kid) and publish.

Layout, with the default settings:

    keys/private-key.pem          active private key (PKCS8, mode 0600)
    keys/public-key.pem           active public key (SubjectPublicKeyInfo), for customer instances
    keys/previous/<kid>.pem       public keys retired by rotation; still published in the JWKS so
                                  licenses signed before a rotation keep verifying until they expire

The private key may instead come from `LICENSE_PRIVATE_KEY` (PEM, or base64 of PEM) for secret
managers; it then wins over the file. The active public key is always derived from the private key,
so a stale public key file can never make the JWKS disagree with what is being signed.

Every file is written to a temporary name and renamed into place, so another process never reads a
half-written key, and each write gets a new inode, which the caches below use to notice it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.settings import Settings

try:  # POSIX only; without it key generation is simply not serialised between processes.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537
# Smaller RSA keys are breakable; refuse them rather than sign with them.
MIN_KEY_SIZE = 2048
PREVIOUS_DIR_NAME = "previous"


class SigningKeyError(Exception):
    """Base class for key problems an operator has to fix."""


class SigningKeyMissingError(SigningKeyError):
    pass


class KeyFileExistsError(SigningKeyError, FileExistsError):
    pass


class KeyFromEnvironmentError(SigningKeyError):
    """The operation would change key files that LICENSE_PRIVATE_KEY overrides."""


class InvalidSigningKeyError(SigningKeyError):
    pass


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    public_key: rsa.RSAPublicKey = field(repr=False)
    public_pem: str = field(repr=False)


# ---------------------------------------------------------------------------------------------
# Key identity and publication


def _b64url_uint(value: int) -> str:
    # RFC 7518 6.3.1: big-endian, shortest octet string, base64url without padding.
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _jwk_members(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}


def kid_for(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256): the same key always gets the same kid, anywhere."""
    # Required members only, lexicographic order, no whitespace (RFC 7638 section 3.2).
    canonical = json.dumps(_jwk_members(public_key), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def public_jwk(public_key: rsa.RSAPublicKey, kid: str | None = None) -> dict[str, str]:
    members = _jwk_members(public_key)
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid or kid_for(public_key),
        "n": members["n"],
        "e": members["e"],
    }


def public_pem_of(public_key: rsa.RSAPublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Parsing


def _checked_rsa(key: object, source: str) -> None:
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        raise InvalidSigningKeyError(f"{source} is not an RSA key (licenses are signed with RS256)")
    if key.key_size < MIN_KEY_SIZE:
        raise InvalidSigningKeyError(
            f"{source} is a {key.key_size}-bit RSA key; at least {MIN_KEY_SIZE} bits are required"
        )


def _parse_private_pem(pem: bytes, source: str) -> SigningKey:
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidSigningKeyError(
            f"{source} is not a readable, unencrypted PEM private key: {exc}"
        ) from None
    _checked_rsa(private_key, source)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    public_key = private_key.public_key()
    return SigningKey(
        kid=kid_for(public_key),
        private_key=private_key,
        public_key=public_key,
        public_pem=public_pem_of(public_key),
    )


def _parse_public_pem(pem: bytes, source: str) -> rsa.RSAPublicKey:
    try:
        public_key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidSigningKeyError(f"{source} is not a readable PEM public key: {exc}") from None
    _checked_rsa(public_key, source)
    assert isinstance(public_key, rsa.RSAPublicKey)
    return public_key


def _pem_from_env(value: str) -> bytes:
    """LICENSE_PRIVATE_KEY as PEM bytes, whether it holds PEM text or base64 of PEM."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        # .env files and some secret managers keep a multi-line value on one line with "\n".
        if "\n" not in text and "\\n" in text:
            text = text.replace("\\n", "\n")
        return text.encode("ascii", errors="replace")
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            decoded = decode(compact.encode("ascii", errors="replace"))
        except (binascii.Error, ValueError):
            continue
        if decoded.lstrip().startswith(b"-----BEGIN"):
            return decoded
    raise InvalidSigningKeyError(
        "LICENSE_PRIVATE_KEY holds neither a PEM private key nor base64 of one"
    )


# ---------------------------------------------------------------------------------------------
# Loading, cached per process

# A file's identity: a rewrite (always a rename, see _write_atomic) changes the inode, and the
# mtime and size cover editors that write in place.
_Stamp = tuple[int, int, int, int]


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


_private_cache: dict[object, tuple[object, SigningKey]] = {}
_archive_cache: dict[str, tuple[tuple[tuple[str, _Stamp], ...], dict[str, rsa.RSAPublicKey]]] = {}
_public_file_cache: dict[str, tuple[_Stamp, rsa.RSAPublicKey]] = {}


def clear_caches() -> None:
    """Forget every parsed key (tests; a long-running process never needs it)."""
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
        key = _parse_private_pem(_pem_from_env(env_value), "LICENSE_PRIVATE_KEY")
        _private_cache[("env", env_value)] = (None, key)
        return key

    path = os.fspath(settings.license_private_key_path)
    try:
        stamp = _stamp(os.stat(path))
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
    return _parse_private_pem(pem, path)


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
    listing = tuple((name, _stamp(st)) for name, st in found)
    cached = _archive_cache.get(folder)
    if cached is not None and cached[0] == listing:
        return cached[1]
    keys: dict[str, rsa.RSAPublicKey] = {}
    for name, _ in listing:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as fh:
                public_key = _parse_public_pem(fh.read(), path)
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
        stamp = _stamp(os.stat(path))
    except FileNotFoundError:
        raise SigningKeyMissingError(_missing_message(settings)) from None
    cached = _public_file_cache.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, "rb") as fh:
            cached = (stamp, _parse_public_pem(fh.read(), path))
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
# Writing: generate, ensure, rotate


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` via a temporary file created with `mode`, then rename it in place.

    The file is created with its final mode by os.open, so a private key is never readable by
    anyone else, not even for the moment between creating and chmod-ing it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        try:
            # The umask can only remove bits; set the mode exactly (e.g. 0644 for a public key).
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb", closefd=False) as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _key_lock(settings: Settings) -> Iterator[None]:
    """Serialise key changes between processes (e.g. api and worker both starting `billing dev`),
    so two of them never generate two different pairs and leave a mismatched set behind."""
    folder = Path(settings.license_private_key_path).parent
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    # Lock the folder itself rather than a lock file, so nothing extra appears in keys/.
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
    _write_atomic(Path(settings.license_private_key_path), private_pem, 0o600)
    _write_atomic(
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
        return _generate_locked(settings, force)


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
            _write_atomic(public_path, key.public_pem.encode("ascii"), 0o644)
        return key.kid


def rotate_keys(settings: Settings) -> str:
    """Retire the active pair (its public key stays published) and make a new one; new kid."""
    _refuse_environment_key(settings, "rotate keys")
    with _key_lock(settings):
        current = load_signing_key(settings)
        # Archive before replacing: a license signed with the old key, in this or any other
        # process, must find its public key published from the moment the new key is in place.
        _write_atomic(
            _previous_dir(settings) / f"{current.kid}.pem",
            current.public_pem.encode("ascii"),
            0o644,
        )
        new_kid = _write_pair(settings, _new_private_key())
    log.info("rotated license signing key %s -> %s", current.kid, new_kid)
    return new_kid
