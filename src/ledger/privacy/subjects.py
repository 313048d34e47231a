"""Per-subject encryption of personal data (crypto-shredding).

Every data subject (a tenant's destination number) gets its own random
256-bit key. Destination numbers and raw receipt payloads are encrypted with
AES-256-GCM under that key before they enter an event; the key itself is
stored wrapped (encrypted) under the master key. Erasing a subject destroys
its wrapped key, which leaves every stored ciphertext of that subject
unreadable without rewriting a single event.

Lookups by number use a blind index: HMAC-SHA256 of tenant and number under
the index key, which identifies the subject's key row without storing the
number. The index key is stored wrapped like a subject key (see
:class:`~ledger.application.keyring.Keyring`), so it survives a master-key
rotation; its first value is derived from the master key of the time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "INDEX_KEY_ID",
    "UNATTRIBUTED",
    "SubjectCrypto",
    "decrypt_field",
    "derive_index_key",
    "encrypt_field",
    "number_digest",
]

UNATTRIBUTED = "#unattributed"
"""Subject name of data that belongs to no known message yet (parked receipts)."""

INDEX_KEY_ID = "#blind-index"
"""Key id of the stored blind-index key in the subject key table."""

_NONCE_BYTES = 12


def encrypt_field(key: bytes, plaintext: bytes, field: str) -> bytes:
    """Encrypt one field: ``nonce (12 bytes) || AES-GCM ciphertext and tag``.

    The field name is bound as associated data, so a ciphertext copied into
    another field fails to decrypt.
    """
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, field.encode())


def decrypt_field(key: bytes, ciphertext: bytes, field: str) -> bytes:
    """Decrypt a value made by :func:`encrypt_field`.

    Raises:
        ValueError: The ciphertext was altered or belongs to another key or field.
    """
    try:
        return AESGCM(key).decrypt(
            ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], field.encode()
        )
    except InvalidTag as error:
        raise ValueError(f"ciphertext of field {field!r} does not verify") from error


def number_digest(key: bytes, e164: str) -> str:
    """Return a keyed digest of a number under its subject key, for equality checks."""
    return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()[:32]


def derive_index_key(master_key: bytes) -> bytes:
    """Return the blind-index key derived from a master key (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"smsledger blind index v1"
    ).derive(master_key)


class SubjectCrypto:
    """Key operations under one master key.

    New wraps use ``master_key``; unwrapping tries it first and then each of
    ``previous_keys``, so that keys wrapped before a rotation stay readable
    until they are wrapped again.

    Args:
        master_key: 32 random bytes from configuration.
        previous_keys: Master keys used before ``master_key``.
    """

    def __init__(self, master_key: bytes, previous_keys: Sequence[bytes] = ()) -> None:
        for position, key in enumerate((master_key, *previous_keys)):
            if len(key) != 32:
                name = "the master key" if position == 0 else f"previous master key {position}"
                raise ValueError(f"{name} must be 32 bytes, not {len(key)}")
        self._wrapper = AESGCM(master_key)
        self._previous = [AESGCM(key) for key in previous_keys]
        self._derived_index_key = derive_index_key(master_key)
        self._index_key = self._derived_index_key

    @property
    def derived_index_key(self) -> bytes:
        """The index key derived from the current master key (the first stored value)."""
        return self._derived_index_key

    def use_index_key(self, key: bytes) -> None:
        """Compute blind indexes with ``key`` (the stored index key) from now on."""
        if len(key) != 32:
            raise ValueError(f"the index key must be 32 bytes, not {len(key)}")
        self._index_key = key

    def subject_index(self, tenant: str, subject: str) -> str:
        """Return the blind index of a subject (hex HMAC of tenant and number)."""
        message = f"{tenant}\x00{subject}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()

    def new_key(self) -> tuple[str, bytes, bytes]:
        """Create a subject key; return its id, the key, and the key wrapped."""
        key_id = str(uuid.uuid4())
        key = AESGCM.generate_key(bit_length=256)
        return key_id, key, self.wrap(key_id, key)

    def wrap(self, key_id: str, key: bytes) -> bytes:
        """Encrypt a subject key under the master key, bound to its id."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._wrapper.encrypt(nonce, key, key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """Decrypt a wrapped subject key.

        Raises:
            ValueError: The wrapped key verifies under none of the master keys.
        """
        return self.unwrap_with_age(key_id, wrapped)[0]

    def unwrap_with_age(self, key_id: str, wrapped: bytes) -> tuple[bytes, bool]:
        """Decrypt a wrapped subject key; also return whether the current master key wrapped it.

        Raises:
            ValueError: The wrapped key verifies under none of the master keys.
        """
        nonce, body, bound = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], key_id.encode()
        for position, wrapper in enumerate((self._wrapper, *self._previous)):
            try:
                return wrapper.decrypt(nonce, body, bound), position == 0
            except InvalidTag:
                continue
        raise ValueError(
            f"subject key {key_id} does not verify under the configured master key "
            f"or the {len(self._previous)} previous one(s)"
        )
