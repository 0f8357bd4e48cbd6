"""`SplitStore`: blobs in one store, the L4 index records in another, shared by every node.

The IPFS store keeps its index records in the node's MFS, which only that daemon's clients
see: nodes with their own daemons would share nothing. A `SplitStore` keeps the blobs in IPFS
(content-addressed: any node fetches a CID from any peer that has it, over bitswap) and the
records in a store every node reaches, e.g. S3::

    ipfs://127.0.0.1:5001/rtfs-l4?index=s3://fleet-bucket/l4-index

Each node opens that URI with its own daemon's address and signs with its own key; a record's
pointer (`ipfs://<CID>`) lets any other node fetch the bytes, and the SHA-256 and signature
checks of `L4Index` apply as for any store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from storage.base import StoreBase
from storage.outage import Outage


class SplitStore(StoreBase):
    """A `BlobStore` and `RecordStore` whose blobs and records live in two stores.

    Args:
        blobs: the `BlobStore` for blob bytes (e.g. an `IPFSStore`).
        records: the `RecordStore` for index records (e.g. an `S3Store`); only its record
            methods are used.

    `uri` is `<blobs uri>?index=<records uri>`; `close` closes both; the store pickles when
    both do.
    """

    def __init__(self, blobs: Any, records: Any) -> None:
        self.blobs = blobs
        self.records = records
        self.uri = f"{blobs.uri}?index={records.uri}"

    def _init_kwargs(self) -> dict[str, Any]:
        return {"blobs": self.blobs, "records": self.records}

    @property
    def outage(self) -> Outage | None:
        """The outage of either side (blobs first), or None when both answer."""
        return getattr(self.blobs, "outage", None) or getattr(self.records, "outage", None)

    def put(self, data: bytes) -> str:
        self._check_open()
        return self.blobs.put(data)

    def get(self, blob_id: str) -> bytes:
        self._check_open()
        return self.blobs.get(blob_id)

    def contains(self, blob_id: str) -> bool:
        self._check_open()
        return self.blobs.contains(blob_id)

    def delete(self, blob_id: str) -> None:
        self._check_open()
        self.blobs.delete(blob_id)

    def iterate(self) -> Iterator[str]:
        self._check_open()
        return self.blobs.iterate()

    def pointer(self, blob_id: str) -> str:
        self._check_open()
        return self.blobs.pointer(blob_id)

    def fetch_pointer(self, pointer: str, blob_id: str) -> bytes:
        self._check_open()
        return self.blobs.fetch_pointer(pointer, blob_id)

    def put_record(self, group: str, data: bytes) -> str:
        self._check_open()
        return self.records.put_record(group, data)

    def get_record(self, group: str, record_id: str) -> bytes:
        self._check_open()
        return self.records.get_record(group, record_id)

    def list_records(self, group: str) -> list[str]:
        self._check_open()
        return self.records.list_records(group)

    def close(self) -> None:
        """Close both stores. Idempotent."""
        if not self._closed:
            self._closed = True
            self.blobs.close()
            self.records.close()
