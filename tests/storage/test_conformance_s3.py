"""The conformance suite against S3: moto's server over real HTTP, and in-process `mock_aws`.

Ground truth: `get_object`/`put_object` through a second boto3 client, not the store's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from storage import open_store
from storage.s3 import S3Store
from storage.testing import BlobStoreTests, read_pickled
from storage.testservers import MotoServer


class S3GroundTruth(BlobStoreTests):
    scheme = "s3"
    raw: Any = None  # a second client on the same bucket, set by the fixture

    def _read(self, store: S3Store, key: str) -> bytes | None:
        try:
            return self.raw.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        except self.raw.exceptions.NoSuchKey:
            return None

    def raw_read(self, store: S3Store, blob_id: str) -> bytes | None:
        return self._read(store, f"{store.prefix}blobs/{blob_id}")

    def raw_corrupt(self, store: S3Store, blob_id: str, data: bytes) -> None:
        self.raw.put_object(Bucket=store.bucket, Key=f"{store.prefix}blobs/{blob_id}", Body=data)

    def raw_read_record(self, store: S3Store, group: str, record_id: str) -> bytes | None:
        return self._read(store, f"{store.prefix}records/{group}/{record_id}")

    def raw_corrupt_record(self, store: S3Store, group: str, rid: str, data: bytes) -> None:
        key = f"{store.prefix}records/{group}/{rid}"
        self.raw.put_object(Bucket=store.bucket, Key=key, Body=data)


class TestS3StoreOverHTTP(S3GroundTruth):
    """Against moto's ThreadedMotoServer on 127.0.0.1, opened by URI as users do."""

    @pytest.fixture
    def store(self, moto_server: MotoServer, bucket: str) -> Iterator[Any]:
        self.raw = moto_server.client()
        store = open_store(f"s3://{bucket}/some/prefix", **moto_server.client_args())
        yield store
        store.close()


class TestS3StoreMockAWS(S3GroundTruth):
    """Against moto's in-process `mock_aws`, with no prefix."""

    @pytest.fixture
    def store(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            self.raw = boto3.client("s3", region_name="us-east-1")
            self.raw.create_bucket(Bucket="mock-bucket")
            store = S3Store("mock-bucket", region_name="us-east-1")
            yield store
            store.close()

    def read_in_another_process(
        self, pickled: bytes, blob_id: str, group: str, record_id: str
    ) -> tuple[bytes, bytes]:
        """`mock_aws` lives in this process only: unpickle and read here instead."""
        return read_pickled(pickled, blob_id, group, record_id)
