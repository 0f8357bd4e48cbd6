"""`S3Store`: blobs as objects in an S3 bucket (AWS, MinIO, LocalStack, moto).

Object keys under the store's prefix:

    <prefix>blobs/<blob id>
    <prefix>records/<namespace>/<hex>/<record id>

The boto3 client is injectable; `make_s3_client` builds one with bounded timeouts and retries,
the default credential chain and endpoint resolution (boto3 itself honours
`AWS_ENDPOINT_URL`). A connection-level failure (refused, reset, timed out) latches the
store down (`storage.outage`); S3 error answers (missing key, missing bucket, access denied)
do not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

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
from storage.uris import parse_s3_uri

__all__ = ["S3Store", "make_s3_client", "parse_s3_uri"]

T = TypeVar("T")
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Failures that mean the endpoint is not answering, as opposed to S3 answering "no".
_DOWN_ERRORS = (BotoConnectionError, HTTPClientError)


def make_s3_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    max_attempts: int = 2,
    **boto3_args: Any,
) -> Any:
    """Build a boto3 S3 client with bounded timeouts and retries.

    `max_attempts` counts every try: the default 2 retries a refused connection once,
    after at most a second of backoff (botocore's standard mode), so a dead endpoint costs
    about a second, and one that never answers `2 * read_timeout_s`. Credentials, region and
    endpoint come from boto3's default chain (environment, config files, instance roles;
    `AWS_ENDPOINT_URL` included) unless given here; `boto3_args` (e.g. `aws_access_key_id`)
    go to `boto3.client` as they are.
    """
    config = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        # botocore's `max_attempts` counts retries only; `total_max_attempts` counts every try
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        s3={"addressing_style": "path"},
    )
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config, **boto3_args
    )


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _MISSING_CODES


class S3Store(StoreBase):
    """A `BlobStore` and `RecordStore` in an S3 bucket.

    Args:
        bucket: the bucket; it must exist.
        prefix: key prefix for everything this store writes ('' or ending in '/').
        client: a boto3 S3 client; the store closes it only if it made it. A store given a
            client cannot be pickled (a client holds connections and credentials), and the
            timeouts of `client_args` do not apply to it.
        down_for_s: how long the store fails at once after a connection-level failure
            (None: for the rest of its life); see `storage.outage`.
        timer: the monotonic clock of the outage latch.
        **client_args: arguments of `make_s3_client` (`endpoint_url`, `region_name`,
            `connect_timeout_s`, `read_timeout_s`, `max_attempts`, credentials) when no client
            is given; the store makes its client on first use, and a pickled copy makes its own
            from the same arguments.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        down_for_s: float | None = DEFAULT_DOWN_FOR_S,
        timer: Callable[[], float] = time.monotonic,
        **client_args: Any,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}"
        self._client = client
        self._client_args = None if client is not None else client_args
        self._client_lock = threading.Lock()
        self._latch = OutageLatch(self.uri, down_for_s=down_for_s, timer=timer)

    def _init_kwargs(self) -> dict[str, Any]:
        if self._client_args is None:
            raise TypeError(
                f"an S3Store given a client cannot be pickled ({self.uri}): "
                "open it with client arguments (endpoint_url=, region_name=, ...) instead"
            )
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "down_for_s": self._latch.down_for_s,
            "timer": self._latch.timer,
            **self._client_args,
        }

    @property
    def outage(self) -> Outage | None:
        """The current outage of the endpoint, or None while calls go to it."""
        return self._latch.outage

    @property
    def client(self) -> Any:
        """The boto3 client (made on first use when the store was not given one)."""
        self._check_open()
        client = self._client
        if client is None:
            with self._client_lock:  # boto3's client factory is not thread-safe
                if self._client is None:
                    self._client = make_s3_client(**(self._client_args or {}))
                client = self._client
        return client

    def blob_key(self, blob_id: str) -> str:
        """The object key that holds (or would hold) a blob."""
        return f"{self.prefix}blobs/{check_blob_id(blob_id)}"

    def _call(self, action: str, fn: Callable[[Any], T], missing: str | None = None) -> T:
        """Run `fn(client)`, mapping errors: a missing key -> BlobNotFound (when `missing`
        names what was asked for), a connection-level failure -> StoreDown (latched), any
        other failure -> StorageUnavailable."""
        self._check_open()
        self._latch.check()
        try:
            return fn(self.client)
        except ClientError as e:
            if missing is not None and _is_missing(e):
                raise BlobNotFound(missing, self.uri) from None
            raise StorageUnavailable(self.uri, f"{action}: {_describe(e)}") from e
        except _DOWN_ERRORS as e:
            raise self._latch.trip(f"{action}: {_describe(e)}") from e
        except BotoCoreError as e:
            raise StorageUnavailable(self.uri, f"{action}: {_describe(e)}") from e

    def _get_object(self, bucket: str, key: str, blob_id: str) -> bytes:
        def get(client: Any) -> bytes:
            with client.get_object(Bucket=bucket, Key=key)["Body"] as body:
                return body.read()

        return self._call(f"get {key}", get, missing=blob_id)

    def _put_object(self, key: str, data: bytes) -> None:
        self._call(
            f"put {key}", lambda c: c.put_object(Bucket=self.bucket, Key=key, Body=data)
        )

    def _exists(self, key: str) -> bool:
        try:
            self._call(
                f"head {key}", lambda c: c.head_object(Bucket=self.bucket, Key=key), missing=key
            )
        except BlobNotFound:
            return False
        return True

    def _list_names(self, key_prefix: str) -> list[str]:
        def names(client: Any) -> list[str]:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=key_prefix
            )
            return [
                obj["Key"][len(key_prefix) :] for page in pages for obj in page.get("Contents", ())
            ]

        return self._call(f"list {key_prefix}", names)

    def put(self, data: bytes) -> str:
        data = as_bytes(data)
        blob_id = blob_id_of(data)
        self._put_object(self.blob_key(blob_id), data)
        return blob_id

    def get(self, blob_id: str) -> bytes:
        data = self._get_object(self.bucket, self.blob_key(blob_id), blob_id)
        return verified(blob_id, data, self.uri)

    def contains(self, blob_id: str) -> bool:
        return self._exists(self.blob_key(blob_id))

    def delete(self, blob_id: str) -> None:
        key = self.blob_key(blob_id)
        if not self._exists(key):
            raise BlobNotFound(blob_id, self.uri)
        self._call(f"delete {key}", lambda c: c.delete_object(Bucket=self.bucket, Key=key))

    def iterate(self) -> Iterator[str]:
        names = self._list_names(f"{self.prefix}blobs/")
        return (name for name in names if is_blob_id(name))

    def pointer(self, blob_id: str) -> str:
        key = self.blob_key(blob_id)
        if not self._exists(key):
            raise BlobNotFound(blob_id, self.uri)
        return f"s3://{self.bucket}/{key}"

    def fetch_pointer(self, pointer: str, blob_id: str) -> bytes:
        check_blob_id(blob_id)
        parts = urlsplit(pointer)
        if parts.scheme != "s3" or not parts.netloc or len(parts.path) < 2:
            raise StoreURIError(pointer, "expected s3://bucket/key")
        data = self._get_object(parts.netloc, parts.path[1:], blob_id)
        return verified(blob_id, data, pointer)

    def _record_key(self, group: str, record_id: str) -> str:
        return f"{self.prefix}records/{check_group(group)}/{check_blob_id(record_id)}"

    def put_record(self, group: str, data: bytes) -> str:
        data = as_bytes(data)
        record_id = blob_id_of(data)
        self._put_object(self._record_key(group, record_id), data)
        return record_id

    def get_record(self, group: str, record_id: str) -> bytes:
        key = self._record_key(group, record_id)
        data = self._get_object(self.bucket, key, f"{group}/{record_id}")
        return verified(record_id, data, self.uri)

    def list_records(self, group: str) -> list[str]:
        names = self._list_names(f"{self.prefix}records/{check_group(group)}/")
        return [name for name in names if is_blob_id(name)]

    def close(self) -> None:
        """Close the client's connection pool if this store made the client. Idempotent."""
        with self._client_lock:
            client, self._client = self._client, None
            owned, self._closed = self._client_args is not None, True
        if client is not None and owned:
            client.close()


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
