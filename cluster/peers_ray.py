"""The transport between arbiters over Ray: `RayPeerTransport`, a `PeerTransport`.

One actor call per peer call, its wait bounded by the call's time; Ray's errors become
`ArbiterUnavailable` (the actor is gone, died mid-call, cannot be placed) or `ArbiterTimeout`
(and a task's own error, which the arbiter never raises for a call's failure, its text). The
adverts come from the directory actor through an `AdvertBook`: at most one directory call per
`advert_ttl_s`, refreshed in the background.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError

from cluster.errors import ArbiterTimeout, ArbiterUnavailable, FleetNotFound
from cluster.federation import AdvertBook
from cluster.lookup import lookup_actor
from cluster.peers_wire import Advert, arbiter_actor_name


class RayPeerTransport:
    """`PeerTransport` over the arbiter actors of one namespace (None: this driver's) and
    the adverts its directory actor `directory` keeps."""

    def __init__(self, directory: str, namespace: str | None = None, *,
                 advert_ttl_s: float = 1.0, timeout_s: float = 2.0) -> None:
        self.directory = directory
        self._namespace = namespace
        self.timeout_s = timeout_s
        self._handles: dict[str, Any] = {}
        self._book = AdvertBook(self._fetch_adverts, advert_ttl_s)

    @property
    def advert_ttl_s(self) -> float:
        return self._book.ttl_s

    @advert_ttl_s.setter
    def advert_ttl_s(self, value: float) -> None:
        self._book.ttl_s = value

    @property
    def namespace(self) -> str:
        return self._namespace or ray.get_runtime_context().namespace

    def call(self, arbiter: str, request: bytes, timeout_s: float) -> bytes:
        if not ray.is_initialized():
            raise ArbiterUnavailable(arbiter, "not connected to a fleet (run with --cluster)")
        deadline = time.monotonic() + timeout_s  # finding the arbiter's actor counts too
        handle = self._handle(arbiter, timeout_s)
        try:
            ref = handle.handle.remote(request)
            return bytes(ray.get(ref, timeout=max(0.0, deadline - time.monotonic())))
        except GetTimeoutError:
            raise ArbiterTimeout(arbiter, f"no answer within {timeout_s:.3g} s") from None
        except RayTaskError as err:
            raise ArbiterUnavailable(arbiter, f"{type(err.cause).__name__}: {err.cause}"
                                     ) from None
        except RayError as err:
            self._handles.pop(arbiter, None)  # a restarted or replaced actor: look it up again
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ArbiterUnavailable(arbiter, first_line) from None

    def _handle(self, arbiter: str, timeout_s: float) -> Any:
        handle = self._handles.get(arbiter)
        if handle is None:
            try:
                handle = lookup_actor(arbiter_actor_name(arbiter), self.namespace, timeout_s)
            except ValueError:
                raise ArbiterUnavailable(arbiter, "no such arbiter in the fleet") from None
            except TimeoutError as err:
                raise ArbiterTimeout(arbiter, str(err)) from None
            self._handles[arbiter] = handle
        return handle

    def adverts(self) -> Sequence[Advert]:
        return self._book.get() if ray.is_initialized() else ()

    def _fetch_adverts(self) -> list[Advert]:
        try:
            deadline = time.monotonic() + self.timeout_s
            directory = lookup_actor(self.directory, self.namespace, self.timeout_s)
            found: list[Any] = ray.get(directory.arbiters.remote(),
                                       timeout=max(0.0, deadline - time.monotonic()))
        except ValueError:
            raise FleetNotFound("this cluster", self.namespace) from None
        except RayError as err:
            raise ArbiterUnavailable(self.directory, f"the directory did not answer: "
                                                     f"{type(err).__name__}") from None
        except TimeoutError as err:  # the lookup (Ray's own timeout is a RayError too)
            raise ArbiterTimeout(self.directory, str(err)) from None
        return [Advert.from_list(advert) for advert in found]


_transports: dict[str | None, RayPeerTransport] = {}


def transport_for(namespace: str | None, directory: str, advert_ttl_s: float | None = None
                  ) -> RayPeerTransport:
    """This process's transport to the arbiters of `namespace` (None: its driver's), their
    adverts read from the directory actor `directory` at most every `advert_ttl_s` (None:
    as already set, else the default)."""
    found = _transports.get(namespace)
    if found is None:
        found = _transports.setdefault(namespace, RayPeerTransport(directory, namespace))
    if advert_ttl_s is not None:
        found.advert_ttl_s = advert_ttl_s
    return found
