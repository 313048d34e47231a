"""Bearer tokens: the tokens file, and the principal a presented token stands for.

The tokens file is TOML. Each ``[[tokens]]`` table holds one token's SHA-256
digest (never the token itself), a name for logs and limits, its roles, and
optionally the tenants it is limited to::

    [[tokens]]
    name = "routing-eu"
    sha256 = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    roles = ["writer"]
    tenants = ["acme", "globex"]   # optional; absent means every tenant

A presented token is hashed and looked up by digest. Tokens are random (see
:func:`new_token`), so a digest reveals nothing that a guess could use, and
the lookup by digest leaks no timing about the stored tokens.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ledger.domain.identity import check_tenant
from ledger.security.policy import Role

__all__ = [
    "Principal",
    "TokenFileError",
    "TokenStore",
    "hash_token",
    "load_tokens",
    "new_token",
]

logger = logging.getLogger(__name__)

_PREFIX = "sha256:"
_TOKEN_BYTES = 32


class TokenFileError(ValueError):
    """The tokens file is missing or invalid; the message names the file and entry."""


@dataclass(frozen=True)
class Principal:
    """Who a call comes from, and what it may do.

    Attributes:
        name: The token's name (or ``anonymous`` when authentication is off).
        roles: Roles granted to it.
        tenants: Tenants it may see; None means every tenant.
    """

    name: str
    roles: frozenset[Role]
    tenants: frozenset[str] | None = None

    def may_see(self, tenant: str) -> bool:
        """Return True when the principal may read or write ``tenant``'s data."""
        return self.tenants is None or tenant in self.tenants


ANONYMOUS = Principal("anonymous", frozenset(Role))
"""The principal of every call when no tokens file is configured."""


def new_token() -> str:
    """Return a new random token (256 bits, URL-safe base64)."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """Return the ``sha256:<hex>`` digest under which a token is stored."""
    return _PREFIX + hashlib.sha256(token.encode()).hexdigest()


def load_tokens(path: Path) -> dict[str, Principal]:
    """Read a tokens file; return principals by digest.

    Raises:
        TokenFileError: The file cannot be read, or an entry is invalid.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TokenFileError(f"tokens file {path}: cannot be read: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise TokenFileError(f"tokens file {path}: invalid TOML: {error}") from error
    entries = data.get("tokens", [])
    if not isinstance(entries, list):
        raise TokenFileError(f"tokens file {path}: 'tokens' must be an array of tables")
    principals: dict[str, Principal] = {}
    names: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        where = f"tokens file {path}, token {position}"
        if not isinstance(entry, Mapping):
            raise TokenFileError(f"{where}: must be a table with name, sha256 and roles")
        digest, principal = _parse_entry(entry, where)
        if digest in principals:
            raise TokenFileError(f"{where}: the same digest appears twice")
        if principal.name in names:
            raise TokenFileError(f"{where}: the name {principal.name!r} appears twice")
        names.add(principal.name)
        principals[digest] = principal
    return principals


def _parse_entry(entry: Mapping[str, object], where: str) -> tuple[str, Principal]:
    unknown = set(entry) - {"name", "sha256", "roles", "tenants"}
    if unknown:
        raise TokenFileError(f"{where}: unknown keys {sorted(unknown)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise TokenFileError(f"{where}: 'name' must be a non-empty string")
    digest = entry.get("sha256")
    if (
        not isinstance(digest, str)
        or not digest.startswith(_PREFIX)
        or len(digest) != len(_PREFIX) + 64
        or any(c not in "0123456789abcdef" for c in digest[len(_PREFIX) :])
    ):
        raise TokenFileError(
            f"{where} ({name}): 'sha256' must be 'sha256:' and 64 lowercase hex digits; "
            "`smsledger tokens hash` prints one"
        )
    roles = entry.get("roles")
    valid_roles = ", ".join(r.value for r in Role)
    if not isinstance(roles, list) or not roles:
        raise TokenFileError(f"{where} ({name}): 'roles' must list one or more of {valid_roles}")
    try:
        granted = frozenset(Role(r) for r in roles)
    except ValueError as error:
        raise TokenFileError(f"{where} ({name}): {error}; roles are {valid_roles}") from error
    tenants = entry.get("tenants")
    allowed: frozenset[str] | None = None
    if tenants is not None:
        if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
            raise TokenFileError(f"{where} ({name}): 'tenants' must be a list of tenant ids")
        for tenant in tenants:
            violation = check_tenant(tenant)
            if violation is not None:
                raise TokenFileError(f"{where} ({name}): tenants: {violation.description}")
        allowed = frozenset(tenants)
    return digest, Principal(name, granted, allowed)


class TokenStore:
    """The configured tokens, read again when the file changes.

    Args:
        path: The tokens file.
        check_interval: Seconds between looks at the file's modification time.

    Raises:
        TokenFileError: The file is invalid at start.
    """

    def __init__(self, path: Path, check_interval: float = 5.0) -> None:
        self.path = path
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._principals = load_tokens(path)
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int]:
        try:
            stat = os.stat(self.path)
        except OSError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)

    def authenticate(self, token: str) -> Principal | None:
        """Return the principal of ``token``, or None when it is not configured."""
        self._reload_if_changed()
        return self._principals.get(hash_token(token))

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._check_interval:
            return
        with self._lock:
            self._checked = now
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            try:
                principals = load_tokens(self.path)
            except TokenFileError as error:
                # Keep serving with the tokens that were valid; say why the new file is not used.
                logger.error("tokens file not reloaded: %s", error)
                self._stamp = stamp
                return
            self._principals = principals
            self._stamp = stamp
            logger.info("tokens file reloaded", extra={"tokens": len(principals)})
