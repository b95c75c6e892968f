"""Key material: the signing key's type and errors, kids, PEM parsing, and safe writes.

The storage layer under `core.licensing.keys` (which owns the key set: which key is active, which
are still published, rotation). Nothing here reads settings or caches anything.

Every file is written to a temporary name and renamed into place, so another process never reads a
half-written key, and each write gets a new inode, which the caches in `keys` use to notice it.
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


def parse_private_pem(pem: bytes, source: str) -> SigningKey:
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


def parse_public_pem(pem: bytes, source: str) -> rsa.RSAPublicKey:
    try:
        public_key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidSigningKeyError(f"{source} is not a readable PEM public key: {exc}") from None
    _checked_rsa(public_key, source)
    assert isinstance(public_key, rsa.RSAPublicKey)
    return public_key


def pem_from_env(value: str) -> bytes:
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


def _b64url_int(value: object, source: str) -> int:
    if not isinstance(value, str) or not value:
        raise InvalidSigningKeyError(f"{source} has an RSA member that is not base64url text")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidSigningKeyError(f"{source} has an RSA member that is not base64url") from None
    return int.from_bytes(raw, "big")


def parse_jwks(data: bytes, source: str) -> dict[str, rsa.RSAPublicKey]:
    """The RSA keys of a JWKS document, by kid (the kid computed when a key names none)."""
    try:
        document = json.loads(data)
        members = document["keys"]
        if not isinstance(members, list):
            raise TypeError("'keys' is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidSigningKeyError(f"{source} is not a readable JWKS document: {exc}") from None
    keys: dict[str, rsa.RSAPublicKey] = {}
    for jwk in members:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
            continue  # other key types cannot verify an RS256 license
        numbers = rsa.RSAPublicNumbers(
            _b64url_int(jwk.get("e"), source), _b64url_int(jwk.get("n"), source)
        )
        try:
            public_key = numbers.public_key()
        except ValueError as exc:
            raise InvalidSigningKeyError(f"{source} holds an invalid RSA key: {exc}") from None
        _checked_rsa(public_key, source)
        kid = jwk.get("kid")
        keys[kid if isinstance(kid, str) and kid else kid_for(public_key)] = public_key
    if not keys:
        raise InvalidSigningKeyError(f"{source} holds no RSA key")
    return keys


def read_public_keys(path: Path) -> dict[str, rsa.RSAPublicKey]:
    """Public keys by kid from a PEM file or a JWKS document: what an instance has been given.

    OSError when the file cannot be read, InvalidSigningKeyError when it holds no usable key.
    """
    data = path.read_bytes()
    if data.lstrip().startswith(b"{"):
        return parse_jwks(data, str(path))
    public_key = parse_public_pem(data, str(path))
    return {kid_for(public_key): public_key}


# A file's identity: a rewrite (always a rename, see write_atomic) changes the inode, and the
# mtime and size cover editors that write in place.
Stamp = tuple[int, int, int, int]


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


# ---------------------------------------------------------------------------------------------
# Writing: atomic files, one writer at a time


def write_atomic(path: Path, data: bytes, mode: int) -> None:
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
def folder_lock(folder: Path) -> Iterator[None]:
    """Serialise key changes between processes (e.g. api and worker both starting `billing dev`),
    so two of them never generate two different pairs and leave a mismatched set behind."""
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
