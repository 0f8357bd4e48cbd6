"""The federation seam, without Ray: which decisions go to a peer, and which never do.

`Peers` is an in-process `Federation` over recording peer providers; the runtime is the real
one. A peer records every call it receives, so "never federated" is checked as "zero calls
reached the peer" (and the directory was not even asked)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from delegation.config import parse_config
from delegation.engine import Layer
from delegation.errors import (
    CallUnavailable,
    ConfigError,
    ProviderUnavailable,
    SecurityViolation,
)
from delegation.federation import CallForwarder, Hops, PeerChoice, forwarded
from delegation.providers.base import BaseProvider, Health, ModelResult
from delegation.runtime import Runtime
from delegation.targets import ExecTarget, RemoteModel, peer_name, peer_target
from delegation.testing import FakeClock
from rtfs.errors import CapabilityError, HostError
from rtfs.router import CallKind, RoutedCall
from rtfs.values import Keyword, Map


class RecordingPeer(BaseProvider):
    """A peer arbiter stand-in: records each forwarded call; answers, fails or is down."""

    def __init__(self, name: str) -> None:
        super().__init__(f"peer:{name}")
        self.name = name
        self.calls: list[RoutedCall] = []
        self.fail = False
        self.healthy = True

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        raise AssertionError("a peer gets the call itself, never a prompt")

    def forward(self, call: RoutedCall) -> tuple[Any, float]:
        self.calls.append(call)
        if self.fail:
            raise ProviderUnavailable(self.id, "arbiter died mid-call")
        return Map({Keyword("served-by"): self.name, Keyword("args"): call.args}), 0.0

    def health(self) -> Health:
        return Health(self.healthy, "advertised" if self.healthy else "stale advert")


class Peers:
    """An in-process `Federation`: peers and what each advertises, ranked as listed."""

    def __init__(self, advertised: dict[str, set[str]], max_hops: int = 3) -> None:
        self.advertised = advertised
        self.peers = {name: RecordingPeer(name) for name in advertised}
        self.max_hops = max_hops
        self.asked: list[tuple[str, Hops]] = []

    def choose(self, symbol: str, hops: Hops) -> Sequence[PeerChoice]:
        self.asked.append((symbol, hops))
        if hops.left <= 0:
            return []
        return [PeerChoice(peer_target(name), f"arbiter {name}")
                for name, serves in self.advertised.items()
                if symbol in serves and name not in hops.visited][:2]

    def provider(self, target: ExecTarget) -> Any:
        name = peer_name(target.id) if isinstance(target, RemoteModel) else None
        return self.peers.get(name) if name is not None else None

    def is_peer(self, target: ExecTarget | None) -> bool:
        return isinstance(target, RemoteModel) and peer_name(target.id) in self.peers

    def received(self) -> int:
        return sum(len(p.calls) for p in self.peers.values())


def runtime(tmp_path: Path, toml: str, peers: Peers, **options: Any) -> Runtime:
    config = parse_config(toml + f'\n[delegation.l4]\nstore = "{(tmp_path / "l4").as_uri()}"\n',
                          base_dir=tmp_path, state_dir=tmp_path / "state")
    return Runtime(config, federation=peers, **options)


ALLOW_B = '[delegation.security]\nallowed_peers = ["b", "c"]\n'


def test_a_capability_nothing_here_provides_runs_on_the_peer_and_is_not_cached(
        tmp_path: Path) -> None:
    peers = Peers({"b": {"x"}})
    rt = runtime(tmp_path, ALLOW_B, peers)
    result = rt.run('(call :x "hello" 2)')
    assert result.value == Map({Keyword("served-by"): "b", Keyword("args"): ("hello", 2)})
    (call,) = result.calls
    assert (call.target, call.layer, call.cache) == ("RemoteModel(peer:b)", "federation", "-")
    assert "nothing on this node provides x" in call.reason and "arbiter b" in call.reason
    forwarded_call = peers.peers["b"].calls[0]
    assert forwarded_call.kind is CallKind.CAPABILITY and forwarded_call.args == ("hello", 2)
    assert rt.plans.get("x", rt.contexts.build(forwarded_call).task) is None  # never a plan
    records = rt.learner.records("x")
    assert records[peer_target("b")].successes == 1  # the outcome feeds the learner


def test_learned_outcomes_never_turn_a_peer_into_a_plan(tmp_path: Path) -> None:
    peers = Peers({"b": {"x"}, "c": {"x"}})
    rt = runtime(tmp_path, ALLOW_B, peers)
    for _ in range(6):  # past the learner's min_calls: it would suggest a peer now
        rt.run('(call :x "hi")')
        (call,) = rt.last_calls
        assert (call.layer, call.cache) == ("federation", "-"), call.reason
    assert rt.learner.best("x") is not None  # the outcomes were learned all the same
    assert rt.plans.stats().puts == 0
    with forwarded(Hops(0)), pytest.raises(CallUnavailable, match="hop limit reached"):
        rt.route_call("x", ("hi",), kind=CallKind.CAPABILITY)  # the learned peer is not used
    assert rt.plans.stats().puts == 0 and peers.received() == 6


def test_an_unavailable_local_model_federates(tmp_path: Path) -> None:
    toml = ALLOW_B + """
[delegation.local_models.x-model]
kind = "command"
command = ["./no-such-runner"]
capabilities = ["x"]
"""
    peers = Peers({"b": {"x"}})
    result = runtime(tmp_path, toml, peers).run('(call :x "hi")')
    (call,) = result.calls
    assert call.layer == "federation" and "LocalModel(x-model) unavailable" in call.reason
    assert len(peers.peers["b"].calls) == 1


SENSITIVE = ALLOW_B + '\nsensitive = ["x", "secret-*"]\n'


def test_a_sensitive_call_never_reaches_a_peer_nor_the_directory(tmp_path: Path) -> None:
    peers = Peers({"b": {"x", "secret-fn"}})
    rt = runtime(tmp_path, SENSITIVE, peers)
    with pytest.raises(CapabilityError, match="capability :x"):
        rt.run('(call :x "the secret")')
    with pytest.raises(CapabilityError, match="capability :secret-fn"):
        rt.run('(call :secret-fn "the secret")')
    assert peers.received() == 0 and peers.asked == []
    assert "sensitive and never leaves this node" in rt.last_calls[0].reason


def test_a_call_security_refused_is_never_federated(tmp_path: Path) -> None:
    toml = SENSITIVE + """
[delegation.static_routes]
secret-fn = "remote-chat"

[delegation.remote_providers.chat]
kind = "openai-chat"
base_url = "http://127.0.0.1:9"
model = "m"
"""
    peers = Peers({"b": {"secret-fn"}})
    rt = runtime(tmp_path, toml, peers)
    with pytest.raises(HostError) as info:
        rt.run('(call :secret-fn "the secret")')
    assert isinstance(info.value.__cause__, SecurityViolation)
    assert rt.last_calls[0].layer == "security"
    assert peers.received() == 0 and peers.asked == []


def test_a_peer_outside_the_allow_list_gets_nothing(tmp_path: Path) -> None:
    peers = Peers({"z": {"x"}})
    rt = runtime(tmp_path, ALLOW_B, peers)
    with pytest.raises(CapabilityError, match="capability :x"):
        rt.run('(call :x "hi")')
    assert peers.received() == 0
    assert "not in the security allow-list" in rt.last_calls[0].reason


@pytest.mark.parametrize("level", ["high", "maximum"])
def test_a_strict_security_level_does_not_federate(tmp_path: Path, level: str) -> None:
    peers = Peers({"b": {"x"}})
    rt = runtime(tmp_path, ALLOW_B + f'level = "{level}"\n', peers)
    with pytest.raises(CapabilityError, match="capability :x"):
        rt.run('(call :x "hi")')
    assert peers.received() == 0 and peers.asked == []
    assert f"security level {level}" in rt.last_calls[0].reason


def test_a_peer_that_fails_mid_call_hands_the_call_to_the_second_peer(tmp_path: Path) -> None:
    peers = Peers({"b": {"x"}, "c": {"x"}})
    peers.peers["b"].fail = True
    result = runtime(tmp_path, ALLOW_B, peers).run('(call :x "hi")')
    assert result.value[Keyword("served-by")] == "c"
    (call,) = result.calls
    assert call.target == "RemoteModel(peer:c)" and call.layer == "federation"
    assert "RemoteModel(peer:b) failed, ran on RemoteModel(peer:c)" in call.reason
    assert "arbiter died mid-call" in call.attempts[0]


def test_a_dead_peer_fails_clearly_then_its_circuit_keeps_calls_away(tmp_path: Path) -> None:
    peers = Peers({"b": {"x"}})
    peers.peers["b"].fail = True
    clock = FakeClock()
    rt = runtime(tmp_path, ALLOW_B, peers, monotonic=clock)
    for _ in range(3):  # the breaker's threshold
        with pytest.raises(HostError, match="arbiter died mid-call") as info:
            rt.run('(call :x "hi")')
        assert isinstance(info.value.__cause__, ProviderUnavailable)
        assert rt.last_calls[0].outcome == "unavailable"
    with pytest.raises(CapabilityError, match="capability :x"):
        rt.run('(call :x "hi")')
    assert len(peers.peers["b"].calls) == 3  # the open circuit sent nothing more
    assert "circuit open" in rt.last_calls[0].reason


def test_hops_travel_with_a_forwarded_call_and_run_out(tmp_path: Path) -> None:
    peers = Peers({"b": {"x"}, "c": {"x"}})
    rt = runtime(tmp_path, ALLOW_B, peers)
    with forwarded(Hops(2, frozenset({"a", "b"}))):
        value = rt.route_call("x", ("hi",), kind=CallKind.CAPABILITY)
    assert value[Keyword("served-by")] == "c"  # b was visited already
    assert peers.asked[-1] == ("x", Hops(2, frozenset({"a", "b"})))
    with forwarded(Hops(0, frozenset({"a"}))), \
            pytest.raises(CapabilityError, match="capability :x"):
        rt.route_call("x", ("hi",), kind=CallKind.CAPABILITY)
    assert "hop limit reached (visited a)" in rt.router.take_records()[-1].reason
    assert rt.route_call("x", ("hi",), kind=CallKind.CAPABILITY)  # a fresh call: all hops


def test_a_call_that_runs_here_is_not_federated(tmp_path: Path) -> None:
    toml = ALLOW_B + '[delegation.local_models.rules]\nkind = "sentiment-rules"\n'
    peers = Peers({"b": {"tone", "+"}})
    result = runtime(tmp_path, toml, peers).run('[(call :tone "what a lovely day") (+ 1 2)]')
    assert [c.layer for c in result.calls] == ["capability"]
    assert result.value[1] == 3 and peers.received() == 0 and peers.asked == []


def test_peer_providers_are_call_forwarders() -> None:
    assert isinstance(RecordingPeer("b"), CallForwarder)
    assert Layer.FEDERATION.value == "federation"


def test_allowed_peers_is_validated_with_key_and_line() -> None:
    config = parse_config('[delegation.security]\nallowed_peers = ["gpu-*", "b"]\n')
    assert config.security.remote_allowed("peer:gpu-7")
    assert config.security.remote_allowed("peer:b")
    assert not config.security.remote_allowed("peer:c") and not config.security.remote_allowed("b")
    with pytest.raises(ConfigError, match=r"f\.toml:2: delegation\.security\.allowed_peers\[1\]"):
        parse_config('[delegation.security]\nallowed_peers = ["ok", " bad"]\n', source="f.toml")
