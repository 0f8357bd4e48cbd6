"""Every cluster error pickles, keeps its fields and message, and is caught by its own type
and by the built-in it derives from."""

from __future__ import annotations

import pickle

import pytest

from cluster.errors import (
    ALL_ERRORS,
    ArbiterExists,
    ArbiterTimeout,
    ArbiterUnavailable,
    AuthenticationFailed,
    ClusterError,
    ClusterUnavailable,
    FleetExists,
    FleetNotFound,
    ShardRequestError,
    ShardTimeout,
    ShardUnavailable,
    WireError,
)

SAMPLES: list[tuple[ClusterError, type[BaseException], str]] = [
    (ClusterError("boom"), Exception, "boom"),
    (ClusterUnavailable("127.0.0.1:6379", "connection refused"), ConnectionError,
     "cluster 127.0.0.1:6379 unavailable: connection refused"),
    (AuthenticationFailed("127.0.0.1:6379", "token mismatch"), PermissionError,
     "RAY_AUTH_TOKEN"),
    (ShardUnavailable("shard-1", "actor died"), ConnectionError,
     "cache shard shard-1 unavailable: actor died"),
    (ShardTimeout("shard-2", "no answer within 2 s"), TimeoutError,
     "cache shard shard-2 timed out: no answer within 2 s"),
    (WireError("reply", "not msgpack"), ValueError, "undecodable reply: not msgpack"),
    (ShardRequestError("shard-0", "unknown op 'x'"), RuntimeError, "unknown op 'x'"),
    (FleetNotFound("127.0.0.1:6379", "rtfs"), LookupError, "delegation serve"),
    (FleetExists("rtfs", "a directory actor is already running"), ValueError,
     "already runs in namespace 'rtfs'"),
    (ArbiterUnavailable("gpu", "actor died mid-call"), ConnectionError,
     "arbiter gpu unavailable: actor died mid-call"),
    (ArbiterTimeout("gpu", "no answer within 2 s"), TimeoutError,
     "arbiter gpu timed out: no answer within 2 s"),
    (ArbiterExists("gpu", "rtfs"), ValueError,
     "an arbiter named 'gpu' already runs in namespace 'rtfs'"),
]


def test_every_error_has_a_sample() -> None:
    assert {type(e) for e, _, _ in SAMPLES} == set(ALL_ERRORS)


@pytest.mark.parametrize(("error", "builtin", "text"), SAMPLES,
                         ids=[type(e).__name__ for e, _, _ in SAMPLES])
def test_pickles_and_is_caught_by_its_own_type(error: ClusterError, builtin: type,
                                               text: str) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)
    assert text in str(copy)
    assert isinstance(copy, ClusterError) and isinstance(copy, builtin)
    with pytest.raises(type(error)):
        raise copy


def test_a_timeout_is_also_an_unavailable_shard() -> None:
    with pytest.raises(ShardUnavailable) as caught:
        raise ShardTimeout("s", "slow")
    assert caught.value.shard == "s"
