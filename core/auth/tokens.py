"""API tokens: created once, shown once, stored as SHA-256 hashes.

A token reads ``rk_<id>_<secret>``: ``id`` (8 hex digits) names it in lists and
the audit log, ``secret`` is 32 random bytes (``secrets.token_urlsafe``). Only
``sha256(token)`` is stored, in ``$DOT_PIOREACTOR/storage/api_tokens.json``::

    {"version": 1, "tokens": [{"id", "name", "scope", "sha256", "created_at",
                               "expires_at" | null, "revoked_at" | null}]}

The leader's file is the list of record (``pio tokens create|list|revoke``,
``/api/tokens``). Every worker keeps a copy that the leader pushes after each
change (``PUT /unit_api/auth/tokens``), so a worker checks a token against its
own file — no round trip to the leader per request. A plain SHA-256 suffices
because the secrets are random 256-bit values, not passwords (no dictionary to
try); a salted slow hash would only cost every request time.

The **cluster token** is an ``admin`` token named ``cluster`` whose plain text a
unit keeps in ``storage/cluster_token`` (mode 0600): the leader's fan-out calls
and the units' calls to the leader carry it (:mod:`reactorkit.core.auth.client`).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from reactorkit.core.auth.scopes import SCOPES
from reactorkit.core.paths import atomic_write, dot_pioreactor

TOKENS_FILE = Path("storage") / "api_tokens.json"
CLUSTER_TOKEN_FILE = Path("storage") / "cluster_token"
CLUSTER_TOKEN_NAME = "cluster"
_TOKEN = re.compile(r"^rk_([0-9a-f]{8})_[A-Za-z0-9_-]{20,}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class TokenError(ValueError):
    """A token request that cannot be honoured (bad scope, name, expiry, unknown token); the message says why."""


@dataclass(frozen=True)
class TokenRecord:
    """One stored token (never its secret).

    Attributes:
        id: 8 hex digits, the ``<id>`` of ``rk_<id>_<secret>``.
        name: Who or what holds it (``alice``, ``cluster``, ``lab-dashboard``).
        scope: ``read``, ``control`` or ``admin``.
        sha256: Hex SHA-256 of the whole token.
        created_at: ISO 8601 UTC.
        expires_at: ISO 8601 UTC, or None for no expiry.
        revoked_at: ISO 8601 UTC once revoked, else None.
    """

    id: str
    name: str
    scope: str
    sha256: str
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None

    def active(self, now: datetime | None = None) -> bool:
        """Not revoked and not expired at ``now`` (default: the wall clock, UTC)."""
        if self.revoked_at:
            return False
        if self.expires_at:
            now = now or datetime.now(timezone.utc)
            return now < parse_time(self.expires_at)
        return True

    def public(self) -> dict[str, Any]:
        """The record as listed (hash left out)."""
        out = asdict(self)
        out.pop("sha256")
        out["active"] = self.active()
        return out


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str | None, now: datetime | None = None) -> str | None:
    """``--expires`` → ISO 8601 UTC: a duration (``90m``, ``12h``, ``30d``, ``2w``) or a date/time.

    Raises:
        TokenError: neither a duration nor an ISO date, or in the past.
    """
    if text is None or str(text).strip() in ("", "never"):
        return None
    now = now or datetime.now(timezone.utc)
    text = str(text).strip()
    match = _DURATION.match(text)
    if match:
        when = now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            when = parse_time(text)
        except ValueError:
            raise TokenError(f"expiry {text!r} is neither a duration (90m, 12h, 30d, 2w) nor an ISO date "
                             "(2027-01-31 or 2027-01-31T12:00:00Z)") from None
    if when <= now:
        raise TokenError(f"expiry {text!r} is in the past")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def hash_token(token: str) -> str:
    """Hex SHA-256 of ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token: str) -> str | None:
    """The ``<id>`` of a well-formed ``rk_<id>_<secret>``, else None."""
    match = _TOKEN.match(token or "")
    return match.group(1) if match else None


def tokens_path(root: Path | None = None) -> Path:
    """``$DOT_PIOREACTOR/storage/api_tokens.json`` (or under ``root``)."""
    return (root or dot_pioreactor()) / TOKENS_FILE


def find_record(records: dict[str, TokenRecord], ref: str) -> TokenRecord:
    """The record of ``records`` whose id or name is ``ref`` (see :meth:`TokenStore.find`)."""
    if ref in records:
        return records[ref]
    named = [r for r in records.values() if r.name == ref]
    active = [r for r in named if r.active()]
    if len(active) == 1 or (len(named) == 1 and not active):
        return (active or named)[0]
    if not named:
        raise TokenError(f"no token with id or name {ref!r}; `pio tokens list` shows them")
    raise TokenError(f"{len(active) or len(named)} tokens are named {ref!r}; give the id instead")


_cache: dict[str, tuple[tuple[int, ...], dict[str, TokenRecord]]] = {}
_cache_lock = threading.Lock()


class TokenStore:
    """The token file of one unit.

    Args:
        root: The unit's ``$DOT_PIOREACTOR`` (default: this process's).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.path = tokens_path(root)

    # ------------------------------------------------------------------ reading
    def records(self) -> dict[str, TokenRecord]:
        """``id -> TokenRecord``; re-read only when the file changed (one ``stat`` per call).

        "Changed": another inode (the file replaced by a rename, as every write here and the leader's push
        do), or another size, modification or status-change time. Size and times alone miss a replacement
        of the same size within one tick of the file system's clock (milliseconds).
        """
        key = str(self.path)
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        with _cache_lock:
            cached = _cache.get(key)
            if cached and cached[0] == stamp:
                return cached[1]
        records = self._read()
        with _cache_lock:
            _cache[key] = (stamp, records)
        return records

    def _read(self) -> dict[str, TokenRecord]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise TokenError(f"{self.path} is not valid JSON ({exc}); restore it or create tokens again") from exc
        return {row["id"]: TokenRecord(**{k: row.get(k) for k in TokenRecord.__dataclass_fields__})
                for row in data.get("tokens", ())}

    def exists(self) -> bool:
        return self.path.exists()

    def verify(self, token: str) -> TokenRecord | None:
        """The active record of ``token``, or None (unknown, malformed, revoked or expired)."""
        ident = token_id(token)
        if ident is None:
            return None
        record = self.records().get(ident)
        if record is None or not hmac.compare_digest(record.sha256, hash_token(token)):
            return None
        return record if record.active() else None

    def list(self) -> list[TokenRecord]:
        """Every record, oldest first."""
        return sorted(self.records().values(), key=lambda r: (r.created_at, r.id))

    def find(self, ref: str) -> TokenRecord:
        """The record whose id or name is ``ref`` (an active one when several share the name).

        Raises:
            TokenError: none, or the name is ambiguous among active tokens.
        """
        return find_record(self.records(), ref)

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _locked(self) -> Iterator[dict[str, TokenRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            records = dict(self._read())
            yield records
            self._write(records)

    def _write(self, records: dict[str, TokenRecord]) -> None:
        data = {"version": 1, "tokens": [asdict(r) for r in sorted(records.values(), key=lambda r: r.created_at)]}
        atomic_write(self.path, json.dumps(data, indent=1) + "\n")
        os.chmod(self.path, 0o600)

    def create(self, name: str, scope: str, *, expires: str | None = None) -> tuple[str, TokenRecord]:
        """A new token: ``(plain text, record)``; the plain text is not kept anywhere.

        Args:
            name: Letters, digits and ``_ . @ -`` (1–64 characters).
            scope: ``read``, ``control`` or ``admin``.
            expires: A duration or ISO date (:func:`parse_expiry`), or None.

        Raises:
            TokenError: bad name, scope or expiry.
        """
        if scope not in SCOPES:
            raise TokenError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
        if not _NAME.match(name or ""):
            raise TokenError(f"name {name!r}: use 1-64 letters, digits or _ . @ - (starting with a letter or digit)")
        expires_at = parse_expiry(expires)
        with self._locked() as records:
            while True:
                ident = secrets.token_hex(4)
                if ident not in records:
                    break
            token = f"rk_{ident}_{secrets.token_urlsafe(32)}"
            record = TokenRecord(id=ident, name=name, scope=scope, sha256=hash_token(token), created_at=utc_now(),
                                 expires_at=expires_at)
            records[ident] = record
        return token, record

    def revoke(self, ref: str) -> TokenRecord:
        """Revoke the token with id or name ``ref`` (kept in the list, marked ``revoked_at``).

        Raises:
            TokenError: no such token, or the name is ambiguous.
        """
        with self._locked() as records:
            found = find_record(records, ref)
            if not found.revoked_at:
                found = TokenRecord(**{**asdict(found), "revoked_at": utc_now()})
                records[found.id] = found
        return found

    def replace(self, rows: list[dict[str, Any]]) -> int:
        """Replace the whole list (a worker receiving the leader's copy); returns how many records.

        Raises:
            TokenError: a row lacks a field or has an unknown scope.
        """
        records: dict[str, TokenRecord] = {}
        for row in rows:
            try:
                record = TokenRecord(**{k: row.get(k) for k in TokenRecord.__dataclass_fields__})
            except TypeError as exc:
                raise TokenError(f"token record {row!r}: {exc}") from exc
            if record.scope not in SCOPES or not record.id or not record.sha256:
                raise TokenError(f"token record {record.id!r}: needs id, sha256 and a scope in {', '.join(SCOPES)}")
            records[record.id] = record
        with self._locked() as current:
            current.clear()
            current.update(records)
        return len(records)

    def rows(self) -> list[dict[str, Any]]:
        """Every record with its hash, as pushed to the workers."""
        return [asdict(r) for r in self.list()]


def read_cluster_token(root: Path | None = None) -> str | None:
    """The plain cluster token this unit sends to other units, or None when it has none."""
    try:
        return ((root or dot_pioreactor()) / CLUSTER_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def write_cluster_token(token: str, root: Path | None = None) -> None:
    """Keep ``token`` as this unit's cluster token (mode 0600)."""
    path = (root or dot_pioreactor()) / CLUSTER_TOKEN_FILE
    atomic_write(path, token + "\n")
    os.chmod(path, 0o600)


def ensure_cluster_token(root: Path | None = None) -> str:
    """This unit's cluster token, created (``admin``, named ``cluster``) when it has none or it is no longer valid."""
    store = TokenStore(root)
    token = read_cluster_token(root)
    if token and store.verify(token):
        return token
    token, _ = store.create(CLUSTER_TOKEN_NAME, "admin")
    write_cluster_token(token, root)
    return token
