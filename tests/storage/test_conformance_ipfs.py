"""The conformance suite against a real IPFS daemon started by this test session, alone and
with its index records in S3.

Ground truth: a plain ipfshttpclient client: `files/stat` for the CID the store linked, then
`cat`, and `pin/ls` for the pin.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import ipfshttpclient
import pytest

from storage import BlobNotFound, SplitStore, open_store
from storage.ipfs import IPFSStore
from storage.testing import GROUP, BlobStoreTests
from storage.testservers import MotoServer


class IPFSGroundTruth(BlobStoreTests):
    scheme = "ipfs"
    raw: Any = None  # a plain ipfshttpclient client on the daemon, set by the fixture

    def _read(self, path: str) -> bytes | None:
        try:
            cid = self.raw.files.stat(path)["Hash"]
        except ipfshttpclient.exceptions.ErrorResponse as e:
            assert "does not exist" in str(e)
            return None
        return self.raw.cat(cid)

    def _replace(self, path: str, data: bytes) -> None:
        cid = self.raw.add_bytes(data)
        self.raw.files.rm(path)
        self.raw.files.cp(f"/ipfs/{cid}", path)


class TestIPFSStore(IPFSGroundTruth):
    @pytest.fixture
    def store(self, ipfs_uri: str, ipfs_raw: Any) -> Iterator[Any]:
        self.raw = ipfs_raw
        store = open_store(ipfs_uri)
        yield store
        store.close()

    def raw_read(self, store: IPFSStore, blob_id: str) -> bytes | None:
        return self._read(f"{store.root}/blobs/{blob_id}")

    def raw_corrupt(self, store: IPFSStore, blob_id: str, data: bytes) -> None:
        self._replace(f"{store.root}/blobs/{blob_id}", data)

    def raw_read_record(self, store: IPFSStore, group: str, record_id: str) -> bytes | None:
        return self._read(f"{store.root}/records/{group}/{record_id}")

    def raw_corrupt_record(self, store: IPFSStore, group: str, rid: str, data: bytes) -> None:
        self._replace(f"{store.root}/records/{group}/{rid}", data)

    def test_put_pins_its_content(self, store: IPFSStore) -> None:
        blob_id = store.put(b"pin me")
        cid = self.raw.files.stat(f"{store.root}/blobs/{blob_id}")["Hash"]
        assert self.raw.pin.ls(cid, type="recursive")["Keys"][cid]["Type"] == "recursive"
        assert store.pointer(blob_id) == f"ipfs://{cid}"
        store.delete(blob_id)
        with pytest.raises(Exception, match="not pinned"):
            self.raw.pin.ls(cid, type="recursive")

    def test_pointer_resolves_without_the_mapping(self, store: IPFSStore, ipfs_uri: str) -> None:
        """Another store (another MFS root, as on another machine) follows the CID."""
        blob_id = store.put(b"published elsewhere")
        stranger = open_store(ipfs_uri + "-stranger")
        assert not stranger.contains(blob_id)
        assert stranger.fetch_pointer(store.pointer(blob_id), blob_id) == b"published elsewhere"
        stranger.close()

    def test_blob_written_by_another_client_is_seen(self, store: IPFSStore) -> None:
        cid = self.raw.add_bytes(b"from outside")
        blob_id = "0" * 32
        self.raw.files.mkdir(f"{store.root}/blobs", parents=True)
        self.raw.files.cp(f"/ipfs/{cid}", f"{store.root}/blobs/{blob_id}")
        assert store.contains(blob_id)
        with pytest.raises(Exception, match="corrupted"):
            store.get(blob_id)  # bytes that do not hash to the name are refused
        assert self.raw.cat(cid) == io.BytesIO(b"from outside").read()

    def test_blob_deleted_by_another_client_is_gone(self, store: IPFSStore, ipfs_uri: str) -> None:
        """No per-process cache keeps serving a blob that another client of the node deleted."""
        blob_id = store.put(b"deleted elsewhere")
        assert store.get(blob_id) == b"deleted elsewhere"
        other = open_store(ipfs_uri)
        other.delete(blob_id)
        other.close()
        assert self.raw_read(store, blob_id) is None
        with pytest.raises(BlobNotFound):
            store.get(blob_id)
        assert not store.contains(blob_id)

    def test_root_removed_by_another_client_is_made_again(self, store: IPFSStore) -> None:
        store.put(b"first")
        self.raw.files.rm(store.root, recursive=True)
        blob_id = store.put(b"after the root was removed")
        assert self.raw_read(store, blob_id) == b"after the root was removed"


class TestSplitStore(IPFSGroundTruth):
    """Blobs on the daemon, index records in a moto S3 bucket (the fleet's shared index),
    opened by URI with the bucket reached through boto3's environment variables. Ground
    truth: the daemon's MFS for blobs, a plain boto3 client for records."""

    @pytest.fixture
    def store(
        self,
        ipfs_uri: str,
        ipfs_raw: Any,
        moto_server: MotoServer,
        bucket: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[Any]:
        env = moto_server.client_args()
        monkeypatch.setenv("AWS_ENDPOINT_URL", env["endpoint_url"])
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", env["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", env["aws_secret_access_key"])
        monkeypatch.setenv("AWS_DEFAULT_REGION", env["region_name"])
        self.raw, self.s3, self.bucket = ipfs_raw, moto_server.client(), bucket
        store = open_store(f"{ipfs_uri}?index=s3://{bucket}/index")
        assert isinstance(store, SplitStore)
        yield store
        store.close()

    def raw_read(self, store: SplitStore, blob_id: str) -> bytes | None:
        return self._read(f"{store.blobs.root}/blobs/{blob_id}")

    def raw_corrupt(self, store: SplitStore, blob_id: str, data: bytes) -> None:
        self._replace(f"{store.blobs.root}/blobs/{blob_id}", data)

    def raw_read_record(self, store: SplitStore, group: str, record_id: str) -> bytes | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=f"index/records/{group}/{record_id}")
        except self.s3.exceptions.NoSuchKey:
            return None
        return obj["Body"].read()

    def raw_corrupt_record(self, store: SplitStore, group: str, rid: str, data: bytes) -> None:
        key = f"index/records/{group}/{rid}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def test_records_are_not_in_the_daemon(self, store: SplitStore) -> None:
        store.put_record(GROUP, b"in the bucket only")
        assert self._read(f"{store.blobs.root}/records") is None
