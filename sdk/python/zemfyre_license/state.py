"""The instance's state directory: the newest license, the key set cache, and what was seen.

    <state dir>/license.jwt   the newest license (from check-in or a usage report's answer)
    <state dir>/jwks.json     the service's key set as last fetched
    <state dir>/endorsements.json  with a pinned key: each rotation's key signed by the last
    <state dir>/state.json    the latest trusted time and the last check-in (STATE_VERSION)
    <state dir>/state.lock    held while state.json or license.jwt is read, changed and written

Every write goes to a temporary file in the same folder, is flushed to disk and renamed into
place (os.replace), and the folder is flushed too, so a crash or a concurrent reader never sees a
half-written file and a rename survives a power loss. Instances sharing a state directory change
it one at a time: each change reads, modifies and writes under an exclusive lock of state.lock
(flock), so none undoes another's. Without a state directory the same state is kept in memory for
the life of the process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: instances sharing a state directory are not kept apart
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("zemfyre_license")

LICENSE_FILE = "license.jwt"
JWKS_FILE = "jwks.json"
ENDORSEMENTS_FILE = "endorsements.json"
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
# state.json's format. Version 1 (unversioned) took the trusted time from unsigned Date headers,
# so what it kept may be an attacker's: it is dropped on load, and the next verdict takes the
# trusted time afresh from the newest genuine license's signed iat.
STATE_VERSION = 2


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` through a temporary file and a rename: all of it or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    """Flush a folder's entries: the rename above is durable only once its folder is."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class Observations:
    """What the instance learnt from the service, kept across restarts."""

    # The latest time the service signed (a genuine license's iat), in epoch seconds: a clock
    # reading earlier than this has been set back. Never an unsigned answer's Date header.
    trusted_time: float | None = None
    # The last successful check-in: when (trusted time) and the license the service called current.
    checked_in_at: float | None = None
    checked_in_jti: str | None = None
    version: int = STATE_VERSION

    def observe_time(self, epoch: float) -> bool:
        """Remember `epoch` if it is later than any trusted time so far; whether it was."""
        if self.trusted_time is None or epoch > self.trusted_time:
            self.trusted_time = epoch
            return True
        return False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Observations:
        # Anything else an older version kept (it listed licenses an unsigned answer called
        # revoked) is dropped: only a signed license revokes. A state older than STATE_VERSION
        # is dropped whole: its times may come from a forged Date header (2100 said "clock set
        # back" forever) and its check-in record was stamped with them.
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return cls()
        return cls(
            trusted_time=_number(data.get("trusted_time")),
            checked_in_at=_number(data.get("checked_in_at")),
            checked_in_jti=data.get("checked_in_jti") or None,
        )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class StateStore:
    """The state directory (or memory, when `path` is None)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._license: str | None = None
        self._observations = Observations()
        self._memory_lock = threading.Lock()
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            if fcntl is None:
                logger.warning(
                    "no file locking on this platform: instances sharing %s may undo each "
                    "other's changes; give each instance its own state directory",
                    self.path,
                )

    @property
    def license_file(self) -> Path | None:
        return self.path / LICENSE_FILE if self.path else None

    @property
    def jwks_file(self) -> Path | None:
        return self.path / JWKS_FILE if self.path else None

    @property
    def endorsements_file(self) -> Path | None:
        return self.path / ENDORSEMENTS_FILE if self.path else None

    def read_license(self) -> str | None:
        if self.license_file is None:
            return self._license
        try:
            return self.license_file.read_text(encoding="ascii").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def write_license(self, token: str) -> None:
        self._license = token
        if self.license_file is not None:
            write_atomic(self.license_file, token.encode("ascii") + b"\n")

    def observations(self) -> Observations:
        """The state as last saved (read again from disk: another process may share it)."""
        if self.path is None:
            return self._observations
        try:
            data = json.loads((self.path / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Observations()
        return Observations.from_json(data)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the state for a read-modify-write, across threads and processes.
        Not reentrant: nothing inside may take it again."""
        with self._memory_lock:
            if self.path is None or fcntl is None:
                yield
                return
            # Read-only and world-readable: flock needs no write access, so instances running
            # as other users (with access to the directory) share the lock; it holds no data.
            fd = os.open(self.path / LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock

    @contextlib.contextmanager
    def update(self) -> Iterator[Observations]:
        """The observations to change, read under the lock and written (if changed) before it
        is released."""
        with self.locked():
            observations = self.observations()
            before = observations.to_json()
            yield observations
            if observations.to_json() != before:
                self._save(observations)

    def _save(self, observations: Observations) -> None:
        self._observations = observations
        if self.path is not None:
            text = json.dumps(observations.to_json(), indent=2, sort_keys=True)
            write_atomic(self.path / STATE_FILE, text.encode("utf-8"))
