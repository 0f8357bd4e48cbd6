"""RTFS functions in L4: publish what this node compiled, find what another node compiled.

Each compiled top-level `defn` is published under three keys (DESIGN.md, "Keys"):
its interface hash, its source hash (the compile cache: a node with the same source skips
compiling), and its *name key*, xxh3_128 of [format, "rtfs-name", qualified name], so that a
plan calling a function it has no source for (and so cannot know the parameter names and
types the interface hash covers) can still find the newest trusted version by name.
Every lookup goes through the L4 index, which checks SHA-256 and the Ed25519 signature
before handing bytes out; the bytes are then decoded and verified as bytecode before
anything of them runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import xxhash
from cachetools import LRUCache, TTLCache

from rtfs.bytecode import FORMAT_VERSION, Code
from rtfs.canonical import packb
from rtfs.encoding import decode, encode
from rtfs.errors import BytecodeError, RtfsError
from storage import IndexRecord, L4Index, StorageError, StorageUnavailable

T = TypeVar("T")
LOCAL_SCHEMES = frozenset({"file", "memory"})
MISSING_TTL_S = 30.0
NAMES_MAX = 4096
DECODED_MAX = 1024


def name_key(symbol: str, namespace: str = "user") -> str:
    qualified = symbol if "/" in symbol else f"{namespace}/{symbol}"
    return xxhash.xxh3_128_hexdigest(packb([FORMAT_VERSION, "rtfs-name", qualified]))


@dataclass(frozen=True)
class PublishedFunction:
    """A function found in L4: its verified bytes and the record that vouches for them."""

    symbol: str
    record: IndexRecord
    data: bytes

    @property
    def pointer(self) -> str:
        return self.record.pointer

    @property
    def signature(self) -> str:
        return self.record.signature.hex()

    @property
    def label(self) -> str:
        return f"{self.record.blob_id[:12]} (key {self.record.key_id[:8]})"


@dataclass(frozen=True)
class Loaded:
    """What `load_or_compile` gives: the function's verified code from L4 (`from_l4`), or the
    top-level code the compiler made for the definition."""

    code: Code
    from_l4: bool
    note: str = ""


class CodeLibrary:
    """Publishes and finds compiled RTFS functions in one L4 index; thread-safe.

    Decoded code is cached by blob id, and what a name resolves to is looked up once per
    library (so one runtime runs one version of a function throughout); both caches are
    bounded LRUs, and "not published" is remembered for `missing_ttl_s` only. Storage failures are
    reported to the caller (`StorageError`), never hidden and never cached.
    """

    def __init__(self, index: L4Index, namespace: str = "user", *,
                 missing_ttl_s: float = MISSING_TTL_S,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.namespace = namespace
        self._decoded: LRUCache[str, Code] = LRUCache(maxsize=DECODED_MAX)
        self._by_name: LRUCache[str, PublishedFunction] = LRUCache(maxsize=NAMES_MAX)
        # "not published" is remembered only for a while: another node may publish it
        self._missing: TTLCache[str, bool] = TTLCache(maxsize=NAMES_MAX, ttl=missing_ttl_s,
                                                      timer=timer)
        self._listeners: list[Callable[[], None]] = []
        self._outage_listeners: list[Callable[[Any], None]] = []
        self._reported: Any = None
        self._lock = threading.Lock()

    @property
    def outage(self) -> Any:
        """The store's `storage.Outage` while it is found down, else None."""
        return self.index.outage

    def on_outage(self, listener: Callable[[Any], None]) -> None:
        """Call `listener(outage)` once per outage, the first time an L4 call finds the
        store down (lookups then miss and publishes are skipped, by the callers)."""
        self._outage_listeners.append(listener)

    def _guard(self, call: Callable[[], T]) -> T:
        """Run an index call; a store found down is reported to the outage listeners once
        and re-raised (as the `StorageUnavailable` it is)."""
        try:
            return call()
        except StorageUnavailable:
            outage = self.index.outage
            with self._lock:
                first = outage is not None and outage != self._reported
                if first:
                    self._reported = outage
            if first:
                for listener in self._outage_listeners:
                    listener(outage)
            raise

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever what a name resolves to may have changed (a name found,
        or a "not published" answer recorded): routers bump their version."""
        self._listeners.append(listener)

    @property
    def store_uri(self) -> str:
        """The URI of the store the index lives in."""
        return str(self.index.store.uri)

    @property
    def on_this_node(self) -> bool:
        """True when the store is on this machine only (`file://`, `memory://`); a tiered
        store counts as off this node, since what it holds reaches its remote side."""
        return self.store_uri.split(":", 1)[0] in LOCAL_SCHEMES

    def publish(self, code: Code) -> IndexRecord:
        """Publish one compiled function under its interface, source and name keys."""
        if code.source_hash is None:
            raise ValueError(f"{code.qualname} has no source hash: compile it first")
        data = encode(code)
        source = code.source_hash.hex()
        record = self._guard(lambda: self.index.publish(code.interface_hash_hex(), source, data))
        self._guard(lambda: self.index.publish(name_key(code.name, self.namespace), source, data))
        return record

    def load_or_compile(self, source_hash: str, compile: Callable[[], Code]) -> Loaded:
        """One trip for a definition: the verified bytecode L4 holds for `source_hash`, else
        what `compile()` makes (published later by the caller, once it knows every name the
        function goes by). L4 is a cache: a store that fails, or bytes that do not verify,
        are a miss, with the reason in `note`."""
        try:
            cached = self.by_source(source_hash)
        except (StorageError, RtfsError) as err:
            return Loaded(compile(), False, f"(L4 lookup failed: {err})")
        if cached is not None:
            return Loaded(cached, True)
        return Loaded(compile(), False)

    def by_source(self, source_hash: str) -> Code | None:
        """The compiled function with this source hash, if a trusted node published it."""
        found = self._guard(lambda: self.index.lookup_source(source_hash))
        if found is None:
            return None
        code = self.decode(found.record.blob_id, found.data)
        if code.source_hash is None or code.source_hash.hex() != source_hash:
            return None  # filed under a hash it does not have: not what we asked for
        return code

    def find_by_name(self, symbol: str) -> PublishedFunction | None:
        """The newest trusted function published under `symbol`, if any.

        A name found keeps its version for this library's life (one run runs one version);
        a name not found is asked again after `missing_ttl_s`.
        """
        with self._lock:
            known = self._by_name.get(symbol)
            if known is not None or symbol in self._missing:
                return known
        key = name_key(symbol, self.namespace)
        found = self._guard(lambda: self.index.lookup_interface(key))
        with self._lock:
            if found is None:
                self._missing[symbol] = True
                published = None
            else:
                published = self._by_name.setdefault(
                    symbol, PublishedFunction(symbol, found.record, found.data))
        for listener in self._listeners:
            listener()
        return published

    def decode(self, blob_id: str, data: bytes) -> Code:
        """Decode and verify bytecode (cached by blob id).

        Raises:
            BytecodeError: the bytes are not valid RTFS bytecode.
        """
        with self._lock:
            code = self._decoded.get(blob_id)
        if code is None:
            code = decode(data)
            if code.freevars:
                raise BytecodeError(f"{code.qualname}: a published function cannot capture "
                                    "variables")
            with self._lock:
                self._decoded[blob_id] = code
        return code
