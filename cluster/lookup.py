"""Named-actor lookups bounded in time.

`ray.get_actor` asks the GCS, and with the GCS gone (the head died) it waits for Ray's own
`gcs_server_request_timeout_seconds`, 60 s, whatever the caller's deadline. A shard or peer
call that must first find its actor would then wait that long, holding whatever lock it
holds (a run's write-behind flush did, for minutes). `lookup_actor` waits at most the
caller's time: the lookup runs in a daemon thread, and a lookup that gives up goes on there,
so the next caller for the same actor waits on it instead of starting another.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import ray

_lock = threading.Lock()
_inflight: dict[tuple[str, str], Future[Any]] = {}


def lookup_actor(name: str, namespace: str, timeout_s: float) -> Any:
    """The handle of the actor `name` in `namespace`, found within `timeout_s`.

    Raises:
        ValueError: no such actor (Ray's own answer).
        TimeoutError: the GCS did not answer in time (the lookup goes on in the background).
    """
    key = (namespace, name)
    with _lock:
        found = _inflight.get(key)
        if found is None:
            found = _inflight[key] = Future()
            threading.Thread(target=_look, args=(key, found), name=f"lookup-{name}",
                             daemon=True).start()
    try:
        return found.result(timeout=max(0.0, timeout_s))
    except FutureTimeout:
        raise TimeoutError(f"the GCS did not answer a lookup of {name!r} within "
                           f"{timeout_s:.3g} s (is the Ray head down?)") from None


def _look(key: tuple[str, str], future: Future[Any]) -> None:
    namespace, name = key
    try:
        future.set_result(ray.get_actor(name, namespace=namespace))
    except BaseException as err:  # delivered to every caller waiting on it
        future.set_exception(err)
    finally:
        with _lock:
            _inflight.pop(key, None)
