"""Arbiters, the directory's adverts, peers as providers and federation, without Ray: plain
classes in one process (`tests.cluster.peer_support.PeerFleet`), on a fake clock."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cluster.errors import ShardUnavailable
from cluster.federation import AdvertBook, Federation
from cluster.peers import PeerProvider, hop_budget
from cluster.peers_wire import Advert, PeerRequest, decode_reply, decode_request, encode_request
from delegation.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from delegation.federation import Hops
from delegation.providers.base import ModelProvider, ModelResult, call_deadline
from delegation.providers.sentiment import SentimentRulesProvider
from delegation.targets import RemoteModel, peer_target
from delegation.testing import FakeClock, ModelProviderTests
from rtfs.deadline import Deadline
from rtfs.errors import HostError
from rtfs.router import CallKind, RoutedCall
from rtfs.values import EMPTY_MAP, Keyword, Map
from tests.cluster.peer_support import ORIGIN, X_MODEL, PeerFleet

TEXT = "what a lovely day"


def truth(text: str) -> Map:
    """The answer of the sentiment rules run directly: what only the arbiter with `x` has."""
    value = SentimentRulesProvider("truth").infer(text).value
    return Map((Keyword(k), v) for k, v in value.items())


# --- the directory's adverts ---------------------------------------------------------------

def test_a_silent_arbiter_drops_out_within_two_heartbeats(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    fleet.arbiter("b", X_MODEL, heartbeat_s=1.0)
    listed = [Advert.from_list(a) for a in fleet.directory.arbiters()]
    assert [(a.arbiter, a.serves, a.models) for a in listed] == [("b", ("x",), ("x-model",))]
    fleet.clock.advance(1.9)  # one heartbeat missed: still listed
    assert [a[1] for a in fleet.directory.arbiters()] == ["b"]
    fleet.clock.advance(0.2)  # two missed: gone
    assert fleet.directory.arbiters() == []
    fleet.advertise()  # alive again: back at once
    assert [a[1] for a in fleet.directory.arbiters()] == ["b"]
    assert fleet.directory.withdraw("b") and fleet.directory.arbiters() == []


def test_an_advert_says_what_its_own_healthy_models_serve(tmp_path: Path) -> None:
    toml = X_MODEL + """
[delegation.local_models.broken]
kind = "command"
command = ["./no-such-runner"]
capabilities = ["y"]

[delegation.remote_providers.to-c]
kind = "rtfs-peer"
arbiter = "c"
capabilities = ["z"]

[delegation.static_routes]
"shout" = "local-x-model"
"glob-*" = "local-x-model"
"""
    advert = PeerFleet(tmp_path).arbiter("b", toml, max_concurrency=4).advert()
    assert advert.serves == ("shout", "x")  # not y (unhealthy), z (c's), nor a glob
    assert advert.healthy and "LocalModel(broken)" in advert.health
    assert (advert.in_flight, advert.max_concurrency, advert.served) == (0, 4, 0)
    assert Advert.from_list(advert.to_list()) == advert


def test_a_malformed_advert_is_refused() -> None:
    fleet = PeerFleet(Path("."))
    good = Advert("b", serves=("x",)).to_list()
    for bad in (good[:-1], [2, *good[1:]], good[:3] + ["x", *good[4:]],
                good[:7] + [-1, *good[8:]], good[:12] + [0.0, *good[13:]]):
        with pytest.raises(ValueError):
            fleet.directory.advertise(bad)
    assert fleet.directory.arbiters() == []


# --- serving peer calls --------------------------------------------------------------------

def test_a_call_federates_to_the_only_arbiter_with_the_model(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    fleet.arbiter("a", "")
    b = fleet.arbiter("b", X_MODEL)
    origin = fleet.origin(ORIGIN)
    result = origin.run(f'(call :x "{TEXT}")')
    assert result.value == truth(TEXT)
    (call,) = result.calls
    assert (call.target, call.layer) == ("RemoteModel(peer:b)", "federation")
    assert "arbiter b (advertises x" in call.reason
    assert fleet.received() == {"a": 0, "b": 1} and b.stats.served == 1
    b_call = b.base.learner.records("x")  # what b's own engine decided and learned
    assert [str(t) for t in b_call] == ["LocalModel(x-model)"]


def test_each_request_has_its_own_vm_around_shared_parts(tmp_path: Path) -> None:
    b = PeerFleet(tmp_path).arbiter("b", X_MODEL)
    one, two = b.runtime(), b.runtime()
    assert one.vm is not two.vm and one.vm.globals is not two.vm.globals
    for shared in ("plans", "learner", "registry", "library", "health", "l2", "l3"):
        assert getattr(one, shared) is getattr(two, shared) is getattr(b.base, shared)


def test_an_arbiter_refuses_what_is_sensitive_on_its_node(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    b = fleet.arbiter("b", X_MODEL + '[delegation.security]\nsensitive = ["x"]\n')
    reply = decode_reply(b.handle(request("x", TEXT)))
    assert not reply.ok and reply.why == "refused" and "sensitive on this node" in reply.message
    assert b.stats.refused == 1 and b.base.learner.records("x") == {}


def test_bad_bytes_get_a_bad_request_answer(tmp_path: Path) -> None:
    b = PeerFleet(tmp_path).arbiter("b", X_MODEL)
    for data in (b"", b"\x93\x01\x02", encode_request(req("x", TEXT))[:-3]):
        reply = decode_reply(b.handle(data))
        assert (reply.ok, reply.why) == (False, "bad-request")
    assert b.stats.received == 3 and b.stats.failed == 3


def send(provider: PeerProvider, symbol: str, *args: Any,
         kind: CallKind = CallKind.CAPABILITY) -> Any:
    """Forward a call of `symbol` through `provider`, as the executor would."""
    call = RoutedCall(symbol, kind, None, None, EMPTY_MAP, args, lambda: None)
    return provider.forward(call)[0]


def req(symbol: str, *args: Any, budget_s: float = 5.0) -> PeerRequest:
    return PeerRequest(symbol, CallKind.CAPABILITY, args, EMPTY_MAP, Hops(2), budget_s, "test")


def request(symbol: str, *args: Any, **options: Any) -> bytes:
    return encode_request(req(symbol, *args, **options))


def test_a_peer_that_is_down_hands_the_call_to_another(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    fleet.arbiter("b", X_MODEL)
    fleet.arbiter("c", X_MODEL)
    fleet.transport.down.add("b")
    origin = fleet.origin(ORIGIN)
    for _ in range(6):  # whichever is drawn first, c answers
        assert origin.run(f'(call :x "{TEXT}")').value == truth(TEXT)
    assert fleet.arbiters["c"].stats.served == 6 and fleet.arbiters["b"].stats.received == 0


def test_two_arbiters_forwarding_to_each_other_stop_at_once(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    forward_to = """
[delegation.remote_providers.to-{peer}]
kind = "rtfs-peer"
arbiter = "{peer}"

[delegation.static_routes]
"ping" = "remote-to-{peer}"
"""
    fleet.arbiter("p", forward_to.format(peer="q"))
    fleet.arbiter("q", forward_to.format(peer="p"))
    provider = PeerProvider("to-p", "p", fleet.transport)
    with pytest.raises(ProviderUnavailable) as info:
        send(provider, "ping", "hi")
    assert "not sending it round a loop" in str(info.value)
    assert fleet.received() == {"p": 1, "q": 1}  # p -> q, and q does not send it back


def test_a_chain_of_forwards_stops_at_the_hop_limit(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    chain = ["b", "c", "d", "e"]
    for name, nxt in zip(chain, chain[1:] + ["f"]):
        fleet.arbiter(name, f'[delegation.remote_providers.next]\nkind = "rtfs-peer"\n'
                            f'arbiter = "{nxt}"\n[delegation.static_routes]\n'
                            f'"ping" = "remote-next"\n')
    provider = PeerProvider("to-b", "b", fleet.transport, max_hops=2)
    with pytest.raises(ProviderUnavailable, match="hop limit reached"):
        send(provider, "ping", "hi")
    assert fleet.received() == {"b": 1, "c": 1, "d": 0, "e": 0}


def test_the_deadline_shrinks_at_each_hop(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    seen: list[float] = []
    handle = fleet.transport.call

    def recording(arbiter: str, data: bytes, timeout_s: float) -> bytes:
        seen.append(decode_request(data).budget_s)
        return handle(arbiter, data, timeout_s)

    fleet.transport.call = recording  # type: ignore[method-assign,assignment]
    fleet.arbiter("b", '[delegation.remote_providers.next]\nkind = "rtfs-peer"\n'
                       'arbiter = "c"\ntimeout_s = 60\n'
                       '[delegation.static_routes]\n"x" = "remote-next"\n')
    fleet.arbiter("c", X_MODEL)
    provider = PeerProvider("to-b", "b", fleet.transport, timeout_s=2.0)
    assert send(provider, "x", TEXT) == truth(TEXT)
    # b got 90% of the 2 s less a margin; c got 90% of what b had left (b's own clock
    # stood still), not its configured 60 s.
    assert seen == pytest.approx([hop_budget(2.0), hop_budget(hop_budget(2.0))], abs=1e-9)


def test_a_call_whose_deadline_passed_on_the_way_is_a_timeout(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    b = fleet.arbiter("b", X_MODEL)
    deadline = Deadline.after(0.5, clock=fleet.clock)
    fleet.clock.advance(1.0)
    provider = PeerProvider("to-b", "b", fleet.transport)
    with call_deadline(deadline), pytest.raises(ProviderTimeout, match="too little"):
        send(provider, "x", TEXT)
    assert b.stats.received == 0


def test_the_step_a_peer_runs_stops_at_the_callers_deadline(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    b = fleet.arbiter("b", X_MODEL)
    # published to b's L4 under its name; (spin n) runs n x 100k steps (300: half a minute
    # here, if nothing stopped it)
    b.base.run("(defn spin [n] (reduce + (map (fn [i] (reduce + (range 100000))) (range n))))")
    b._monotonic = time.monotonic  # a real clock: the VM must stop the loop at the deadline
    reply = decode_reply(b.handle(encode_request(PeerRequest(
        "spin", CallKind.FUNCTION, (300,), EMPTY_MAP, Hops(1), 0.3, "test"))))
    assert (reply.ok, reply.why) == (False, "timeout") and "DeadlineExceeded" in reply.message
    small = decode_reply(b.handle(encode_request(PeerRequest(
        "spin", CallKind.FUNCTION, (2,), EMPTY_MAP, Hops(1), 60.0, "test"))))
    assert small.ok and small.value == 2 * sum(range(100000)) and small.layer == "l4"


def test_an_argument_that_cannot_travel_is_named(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    fleet.arbiter("b", X_MODEL)
    origin = fleet.origin(ORIGIN)
    with pytest.raises(HostError, match="argument 2 cannot be sent to a peer"):
        origin.run('(call :x "text" (fn [y] y))')
    assert fleet.received() == {"b": 0}


def test_an_rtfs_error_on_the_peer_comes_back_as_a_provider_error(tmp_path: Path) -> None:
    fleet = PeerFleet(tmp_path)
    fleet.arbiter("b", X_MODEL)
    provider = PeerProvider("to-b", "b", fleet.transport)
    with pytest.raises(ProviderError, match="unbound symbol: no-such-fn"):
        send(provider, "no-such-fn", 1, kind=CallKind.FUNCTION)


# --- the ranking -----------------------------------------------------------------------

class StaticAdverts:
    def __init__(self, *items: Advert) -> None:
        self.items = items

    def adverts(self) -> tuple[Advert, ...]:
        return self.items

    def call(self, arbiter: str, request: bytes, timeout_s: float) -> bytes:
        raise AssertionError("ranking sends nothing")


def test_power_of_two_choices_never_puts_the_busiest_first() -> None:
    fleet = StaticAdverts(
        Advert("idle", serves=("x",), in_flight=0, max_concurrency=4, latency_s=0.002),
        Advert("busy", serves=("x",), in_flight=3, max_concurrency=4, latency_s=0.001),
        Advert("full", serves=("x",), in_flight=4, max_concurrency=4, latency_s=0.0005),
        Advert("sick", serves=("x",), healthy=False),
        Advert("other", serves=("y",)),
        Advert("me", serves=("x",)))
    federation = Federation(fleet, me="me", rng=random.Random(7))
    firsts, pairs = [], set()
    for _ in range(200):
        choices = federation.choose("x", Hops(3, frozenset({"visited"})))
        assert len(choices) == 2
        names = [c.target.id.removeprefix("peer:") for c in choices]
        assert not {"sick", "other", "me"} & set(names)
        firsts.append(names[0])
        pairs.add(frozenset(names))
    assert "full" not in firsts  # it is never better than the one drawn with it
    assert pairs == {frozenset({"idle", "busy"}), frozenset({"idle", "full"}),
                     frozenset({"busy", "full"})}  # every pair gets drawn
    assert federation.choose("x", Hops(3, frozenset({"idle", "busy"})))[0].target == \
        peer_target("full")
    assert federation.choose("x", Hops(0)) == []


def test_a_declared_peer_is_chosen_under_its_own_provider_id() -> None:
    federation = Federation(StaticAdverts(Advert("gpu", serves=("x",))),
                            declared={"gpu": "gpu-peer"})
    (choice,) = federation.choose("x", Hops(3))
    assert choice.target == RemoteModel("gpu-peer")
    assert federation.provider(RemoteModel("gpu-peer")) is None  # the registry has it
    found = federation.provider(peer_target("other"))
    assert isinstance(found, PeerProvider) and found.arbiter == "other"
    assert federation.provider(peer_target("other")) is found


def test_the_advert_book_asks_once_per_ttl_and_keeps_the_last_list() -> None:
    clock, asked = FakeClock(0.0), []
    answers: list[Any] = [[Advert("b")], ShardUnavailable("d", "down"), [Advert("c")]]

    def fetch() -> list[Advert]:
        asked.append(clock.now)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    book = AdvertBook(fetch, ttl_s=1.0, background=False, timer=clock)
    assert [a.arbiter for a in book.get()] == ["b"]
    clock.advance(0.5)
    assert [a.arbiter for a in book.get()] == ["b"] and asked == [0.0]
    clock.advance(0.6)
    assert [a.arbiter for a in book.get()] == ["b"] and book.failures == 1  # down: kept
    clock.advance(0.5)
    assert [a.arbiter for a in book.get()] == ["b"] and len(asked) == 2  # waits a ttl
    clock.advance(0.6)
    assert [a.arbiter for a in book.get()] == ["c"]


# --- a peer is a provider like any other -------------------------------------------------

LABELS = {"what a lovely day": "positive", "this is terrible and sad": "negative",
          "the meeting is at noon": "neutral"}


class TestPeerProvider(ModelProviderTests):
    """The conformance suite against a peer: its answers are arbiter b's model's."""

    prompts = tuple(LABELS)

    @pytest.fixture(autouse=True)
    def _fleet(self, tmp_path: Path) -> None:
        self.fleet = PeerFleet(tmp_path)
        self.fleet.arbiter("b", X_MODEL, max_concurrency=8)

    def make_provider(self, timer: Callable[[], float] = time.perf_counter) -> ModelProvider:
        return PeerProvider("peer:b", "b", self.fleet.transport, capabilities=("x",),
                            timer=timer)

    def check_answer(self, prompt: str, result: ModelResult) -> None:
        expected = SentimentRulesProvider("truth").infer(prompt).value
        assert result.value == expected and result.value["label"] == LABELS[prompt]
