"""Ed25519 keys for the L4 index: generating, saving, loading, and trust decisions.

A key id is the first 16 bytes of SHA-256 of the raw 32-byte public key, as 32 hex digits.
Public keys are written as 64 hex digits (raw bytes); private keys as PKCS#8 PEM files with
mode 0600. A key list file holds one public key (or, for revocation, a key id) per line;
`#` starts a comment.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import xxhash
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from storage.errors import SigningKeyError

PublicKeyLike = Ed25519PublicKey | bytes | str
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte encoding of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(key: Ed25519PublicKey) -> str:
    """The key id: SHA-256 of the raw public key, first 16 bytes, as hex."""
    return hashlib.sha256(public_bytes(key)).hexdigest()[:32]


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as 64 hex digits."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return public_bytes(key).hex()


def parse_public_key(value: PublicKeyLike, source: str = "argument") -> Ed25519PublicKey:
    """Accept a public key object, its 32 raw bytes, or 64 hex digits."""
    if isinstance(value, Ed25519PublicKey):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if not _HEX64.fullmatch(text):
            raise SigningKeyError(source, "a public key is 64 hex digits (32 raw bytes)")
        value = bytes.fromhex(text)
    if isinstance(value, bytes) and len(value) == 32:
        return Ed25519PublicKey.from_public_bytes(value)
    raise SigningKeyError(source, f"cannot use {type(value).__name__} as an Ed25519 public key")


def save_private_key(key: Ed25519PrivateKey, path: str | os.PathLike[str]) -> None:
    """Write a private key as PKCS#8 PEM, mode 0600; an existing file is never replaced.

    Raises:
        FileExistsError: the file exists.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read a PKCS#8 PEM Ed25519 private key; anything else is a `SigningKeyError`."""
    try:
        data = Path(path).read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as e:
        raise SigningKeyError(str(path), f"{type(e).__name__}: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(str(path), f"not an Ed25519 key but {type(key).__name__}")
    return key


def load_key_list(path: str | os.PathLike[str]) -> list[str]:
    """Read a key list file: public keys (64 hex) or key ids (32 hex), one per line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise SigningKeyError(str(path), f"cannot read: {e}") from None
    entries = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip().lower()
        if text and not (_HEX64.fullmatch(text) or _HEX32.fullmatch(text)):
            raise SigningKeyError(f"{path}:{number}", "expected 64 hex (key) or 32 hex (key id)")
        if text:
            entries.append(text)
    return entries


def store_key_path(state_dir: str | os.PathLike[str], store_uri: str) -> Path:
    """Where `store_key` keeps this machine's key for one store."""
    return Path(state_dir) / "keys" / f"{xxhash.xxh3_64_hexdigest(store_uri.encode())}.pem"


def store_key(state_dir: str | os.PathLike[str], store_uri: str) -> Ed25519PrivateKey:
    """Load, or create once, the signing key this machine uses for one store.

    The key lives at `<state_dir>/keys/<xxh3_64 of the store URI>.pem`; when several
    processes race to create it, one wins and the others load the winner's key.
    """
    path = store_key_path(state_dir, store_uri)
    directory = path.parent
    if path.exists():
        return load_private_key(path)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        save_private_key(Ed25519PrivateKey.generate(), path)
    except FileExistsError:
        pass
    return load_private_key(path)


class KeyRing:
    """Which publishers a reader trusts.

    Args:
        trusted: public keys whose signatures are accepted.
        revoked: public keys or key ids whose signatures are refused, even if trusted.
    """

    def __init__(
        self, trusted: Iterable[PublicKeyLike] = (), revoked: Iterable[PublicKeyLike] = ()
    ) -> None:
        self.trusted: dict[str, Ed25519PublicKey] = {}
        self.revoked: set[str] = set()
        for value in trusted:
            self.trust(parse_public_key(value, "trusted key"))
        for value in revoked:
            self.revoke(value)

    def trust(self, key: Ed25519PublicKey) -> str:
        """Accept this key's signatures; return its key id."""
        key_id = key_id_of(key)
        self.trusted[key_id] = key
        return key_id

    def revoke(self, value: PublicKeyLike) -> str:
        """Refuse a key (public key or key id) from now on; return its key id."""
        if isinstance(value, str) and _HEX32.fullmatch(value.strip().lower()):
            key_id = value.strip().lower()
        else:
            key_id = key_id_of(parse_public_key(value, "revoked key"))
        self.revoked.add(key_id)
        return key_id

    def status(self, key_id: str) -> str:
        """'revoked', 'untrusted' or 'trusted'."""
        if key_id in self.revoked:
            return "revoked"
        return "trusted" if key_id in self.trusted else "untrusted"

    def verify(self, key_id: str, signature: bytes, payload: bytes) -> bool:
        """True if a trusted, non-revoked key with this id signed `payload`."""
        if self.status(key_id) != "trusted":
            return False
        try:
            self.trusted[key_id].verify(signature, payload)
        except InvalidSignature:
            return False
        return True
