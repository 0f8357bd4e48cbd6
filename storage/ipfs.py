"""`IPFSStore`: blobs added to an IPFS node through its RPC API (Kubo or js-ipfs).

Each put adds the bytes (pinned) and links the resulting CID into the node's MFS at
`<root>/blobs/<blob id>`, so the blob id -> CID mapping lives on the node, where every
client of it sees the same store; records live at `<root>/records/<group>/<record id>`.
Pointers are `ipfs://<CID>`, which any node that can fetch the CID resolves: a blob fetched
through a pointer is linked and pinned here too, so this node serves it to its peers from then
on. With `ipfs://...?index=URI` the records live in a shared record store instead (see
`storage.shared`), so nodes with their own daemons share one index.

Timeouts: every RPC has `connect_timeout_s` and `read_timeout_s`; a `cat` of a CID this node
lacks asks the daemon to give up after `fetch_timeout_s` (a CID no peer provides is a missing
blob, not a dead daemon). A refused connection or a timeout latches the store down
(`storage.outage`); an error answer from the daemon does not.

RPCs used (all checked against a daemon by the test suite): `add` (pinning), `cat`,
`pin/rm`, `files/mkdir`, `files/cp`, `files/stat`, `files/read`, `files/ls`, `files/rm`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import ipfshttpclient
from cachetools import LRUCache
from ipfshttpclient import exceptions as ipfs_errors

from storage.base import StoreBase
from storage.errors import BlobNotFound, StorageUnavailable, StoreURIError
from storage.outage import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_DOWN_FOR_S,
    DEFAULT_READ_TIMEOUT_S,
    Outage,
    OutageLatch,
)
from storage.protocol import (
    as_bytes,
    blob_id_of,
    check_blob_id,
    check_group,
    is_blob_id,
    verified,
)
from storage.uris import DEFAULT_IPFS_ROOT, parse_ipfs_uri

__all__ = ["DEFAULT_API_ADDR", "IPFSStore", "parse_ipfs_uri"]

# ipfshttpclient 0.8.0a2 passes urllib3 a keyword that urllib3 2.x deprecates, on every
# connection; the warning is about that library, not about anything a caller can change.
warnings.filterwarnings(
    "ignore", message="The 'strict' parameter is no longer needed", category=FutureWarning
)

log = logging.getLogger(__name__)
DEFAULT_API_ADDR = "/ip4/127.0.0.1/tcp/5001"
DEFAULT_ROOT = DEFAULT_IPFS_ROOT
DEFAULT_FETCH_TIMEOUT_S = 5.0
_ADDR_RE = re.compile(r"/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d+)(?:/https?)?")
_MISSING_MARKERS = ("does not exist", "not found", "no link named")
_FETCH_MISSING_MARKERS = (*_MISSING_MARKERS, "timed out")  # no peer gave the CID in time
# Failures that mean the daemon is not answering, as opposed to answering with an error.
_DOWN_ERRORS = (ipfs_errors.ConnectionError, ipfs_errors.TimeoutError, ipfs_errors.ProtocolError)


def _is_missing(error: Exception, markers: tuple[str, ...] = _MISSING_MARKERS) -> bool:
    text = str(error).lower()
    return isinstance(error, ipfs_errors.ErrorResponse) and any(
        marker in text for marker in markers
    )


def _host_port(api_addr: str) -> str:
    """`/ip4/127.0.0.1/tcp/5001[/http]` -> `127.0.0.1:5001`, for URIs and messages."""
    match = _ADDR_RE.fullmatch(api_addr)
    if match is None:
        return api_addr.replace("/", "_")
    host = f"[{match[2]}]" if match[1] == "ip6" else match[2]
    return f"{host}:{match[3]}"


class IPFSStore(StoreBase):
    """A `BlobStore` and `RecordStore` on an IPFS node.

    Args:
        api_addr: the node's RPC API multiaddr, e.g. `/ip4/127.0.0.1/tcp/5001`.
        root: the MFS directory that holds this store's blob and record links.
        connect_timeout_s: how long to wait for the daemon to accept a connection.
        read_timeout_s: how long to wait for the daemon's answer (between bytes).
        fetch_timeout_s: how long the daemon looks for a CID it lacks before `fetch_pointer`
            calls the blob missing.
        down_for_s: how long the store fails at once after a refused connection or a
            timeout (None: for the rest of its life); see `storage.outage`.
        timer: the monotonic clock of the outage latch.
        client_factory: builds a client for an address (default `ipfshttpclient.Client`;
            the version check of `ipfshttpclient.connect` is skipped on purpose, since it
            rejects daemons that speak the same RPC API, such as js-ipfs 0.18). It must
            pickle for the store to pickle (a class or a module-level function does).
        cid_cache_size: how many blob id -> CID mappings `pointer` remembers.

    Clients are made per thread on first use and are never pickled: a pickled store carries
    its address and settings, and the copy connects on its own.
    """

    def __init__(
        self,
        api_addr: str = DEFAULT_API_ADDR,
        root: str = DEFAULT_ROOT,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S,
        down_for_s: float | None = DEFAULT_DOWN_FOR_S,
        timer: Callable[[], float] = time.monotonic,
        client_factory: Any = None,
        cid_cache_size: int = 4096,
    ) -> None:
        if not root.startswith("/") or root == "/":
            raise StoreURIError(root, "the MFS root must be an absolute path below '/'")
        self.api_addr = api_addr
        self.root = root.rstrip("/")
        self.uri = f"ipfs://{_host_port(api_addr)}{self.root}"
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.fetch_timeout_s = fetch_timeout_s
        self._latch = OutageLatch(self.uri, down_for_s=down_for_s, timer=timer)
        self._factory_arg = client_factory
        self._factory = client_factory or ipfshttpclient.Client
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._cids: LRUCache[str, str] = LRUCache(maxsize=cid_cache_size)
        self._made_dirs: set[str] = set()

    def _init_kwargs(self) -> dict[str, Any]:
        return {
            "api_addr": self.api_addr,
            "root": self.root,
            "connect_timeout_s": self.connect_timeout_s,
            "read_timeout_s": self.read_timeout_s,
            "fetch_timeout_s": self.fetch_timeout_s,
            "down_for_s": self._latch.down_for_s,
            "timer": self._latch.timer,
            "client_factory": self._factory_arg,
            "cid_cache_size": int(self._cids.maxsize),
        }

    @property
    def outage(self) -> Outage | None:
        """The current outage of the daemon, or None while calls go to it."""
        return self._latch.outage

    @property
    def client(self) -> Any:
        """This thread's RPC client (clients keep a connection session, one per thread)."""
        self._check_open()
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                client = self._factory(
                    self.api_addr,
                    session=True,
                    timeout=(self.connect_timeout_s, self.read_timeout_s),
                )
            except ipfs_errors.Error as e:
                raise StorageUnavailable(self.uri, f"cannot connect: {e}") from e
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _call(
        self,
        what: str,
        fn: Any,
        *args: Any,
        missing: str | None = None,
        missing_markers: tuple[str, ...] = _MISSING_MARKERS,
        **kw: Any,
    ) -> Any:
        """Run one RPC, mapping its errors: missing content -> BlobNotFound (when `missing`
        names what was asked for), no answer -> StoreDown (latched), else StorageUnavailable."""
        self._latch.check()
        try:
            return fn(*args, **kw)
        except _DOWN_ERRORS as e:
            raise self._latch.trip(f"{what}: {type(e).__name__}: {e}") from e
        except ipfs_errors.Error as e:
            if missing is not None and _is_missing(e, missing_markers):
                raise BlobNotFound(missing, self.uri) from None
            raise StorageUnavailable(self.uri, f"{what}: {type(e).__name__}: {e}") from e

    def _mkdir(self, directory: str) -> None:
        if directory not in self._made_dirs:
            self._call("files/mkdir", self.client.files.mkdir, directory, parents=True)
            self._made_dirs.add(directory)

    def _link(self, directory: str, name: str, data: bytes) -> str:
        """Add `data` (pinned) and link its CID at `directory/name`; return the CID."""
        cid = self._call("add", self.client.add_bytes, data, opts={"pin": "true"})
        self._mkdir(directory)
        path = f"{directory}/{name}"
        for _ in range(3):  # writers race to link the same name: whoever wins, it holds `cid`
            try:
                self._call("files/cp", self.client.files.cp, f"/ipfs/{cid}", path)
                return cid
            except StorageUnavailable as e:
                if "did not exist" in e.reason:  # another client removed our directory
                    self._made_dirs.discard(directory)
                    self._mkdir(directory)
                    continue
                if "already has entry" not in e.reason:
                    raise
            current = self._stat_cid(path, name, required=False)
            if current == cid:
                return cid
            if current is not None:  # a damaged or foreign link: replace it
                try:
                    self._call("files/rm", self.client.files.rm, path, missing=name)
                except BlobNotFound:
                    pass  # another writer removed it first
        raise StorageUnavailable(self.uri, f"{path} keeps changing under concurrent writers")

    def _stat_cid(self, path: str, name: str, *, required: bool = True) -> str | None:
        try:
            return self._call("files/stat", self.client.files.stat, path, missing=name)["Hash"]
        except BlobNotFound:
            if required:
                raise
            return None

    def _blob_path(self, blob_id: str) -> str:
        self._check_open()
        return f"{self.root}/blobs/{check_blob_id(blob_id)}"

    def cid_of(self, blob_id: str) -> str:
        """The CID a blob is linked to (remembered after the first look-up).

        Raises:
            BlobNotFound: no such blob.
        """
        path = self._blob_path(blob_id)
        with self._clients_lock:
            cid = self._cids.get(blob_id)
        if cid is None:
            cid = self._stat_cid(path, blob_id)
            self._remember(blob_id, cid)
        return cid  # type: ignore[return-value]

    def _remember(self, blob_id: str, cid: str | None) -> None:
        with self._clients_lock:  # cachetools caches are not thread-safe
            if cid is None:
                self._cids.pop(blob_id, None)
            else:
                self._cids[blob_id] = cid

    def put(self, data: bytes) -> str:
        data = as_bytes(data)
        blob_id = blob_id_of(data)
        self._remember(blob_id, self._link(f"{self.root}/blobs", blob_id, data))
        return blob_id

    def get(self, blob_id: str) -> bytes:
        # Read through the MFS link, not a remembered CID: a blob another client deleted
        # must not stay readable here.
        path = self._blob_path(blob_id)
        data = self._call("files/read", self.client.files.read, path, missing=blob_id)
        return verified(blob_id, data, self.uri)

    def contains(self, blob_id: str) -> bool:
        return self._stat_cid(self._blob_path(blob_id), blob_id, required=False) is not None

    def delete(self, blob_id: str) -> None:
        path = self._blob_path(blob_id)
        cid = self._stat_cid(path, blob_id)
        self._remember(blob_id, None)
        self._call("files/rm", self.client.files.rm, path, missing=blob_id)
        try:
            self._call("pin/rm", self.client.pin.rm, cid)
        except StorageUnavailable as e:
            if "not pinned" not in str(e):
                raise

    def _list(self, directory: str) -> list[str]:
        try:
            listing = self._call("files/ls", self.client.files.ls, directory, missing=directory)
        except BlobNotFound:
            return []
        return [entry["Name"] for entry in listing.get("Entries") or ()]

    def iterate(self) -> Iterator[str]:
        return (name for name in self._list(f"{self.root}/blobs") if is_blob_id(name))

    def pointer(self, blob_id: str) -> str:
        return f"ipfs://{self.cid_of(blob_id)}"

    def fetch_pointer(self, pointer: str, blob_id: str) -> bytes:
        """Fetch `ipfs://<CID>` (from this node or, through it, from its peers), verify it,
        and link it here (pinned), so later reads are local and peers can fetch it from us."""
        check_blob_id(blob_id)
        parts = urlsplit(pointer)
        if parts.scheme != "ipfs" or not parts.netloc or parts.path not in ("", "/"):
            raise StoreURIError(pointer, "expected ipfs://<CID>")
        data = self._call(
            "cat",
            self.client.cat,
            parts.netloc,
            missing=blob_id,
            missing_markers=_FETCH_MISSING_MARKERS,
            opts={"timeout": f"{round(self.fetch_timeout_s * 1000)}ms"},
            timeout=(self.connect_timeout_s, self.fetch_timeout_s + self.read_timeout_s),
        )
        verified(blob_id, data, pointer)
        try:
            self._remember(blob_id, self._link(f"{self.root}/blobs", blob_id, data))
        except StorageUnavailable as e:  # the bytes are good; keeping a copy is a bonus
            log.warning("IPFS store %s: cannot keep fetched blob %s: %s", self.uri, blob_id, e)
        return data

    def put_record(self, group: str, data: bytes) -> str:
        data = as_bytes(data)
        record_id = blob_id_of(data)
        self._link(f"{self.root}/records/{check_group(group)}", record_id, data)
        return record_id

    def get_record(self, group: str, record_id: str) -> bytes:
        path = f"{self.root}/records/{check_group(group)}/{check_blob_id(record_id)}"
        name = f"{group}/{record_id}"
        data = self._call("files/read", self.client.files.read, path, missing=name)
        return verified(record_id, data, self.uri)

    def list_records(self, group: str) -> list[str]:
        names = self._list(f"{self.root}/records/{check_group(group)}")
        return [name for name in names if is_blob_id(name)]

    def close(self) -> None:
        """Close every thread's client session. Idempotent."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
            self._closed = True
        for client in clients:
            client.close()
        self._local = threading.local()
