"""Steps run for a caller from outside this node (`Runtime(remote_caller=...)`): this node's
sensitive functions, models and providers are out of reach; the same programs run normally
for a local caller (the control in each test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from delegation.config import parse_config
from delegation.context import CallContext
from delegation.engine import Decision, Layer
from delegation.errors import SecurityViolation
from delegation.remotecaller import RemoteCaller, RemoteCallerEngine
from delegation.runtime import Runtime
from delegation.targets import LOCAL_PURE, LocalModel
from rtfs.errors import HostError, UnboundSymbolError

CONFIG = """
[delegation.static_routes]
"tone" = "local-sentiment-rules"

[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"

[delegation.security]
sensitive = ["private-*", "str"]

[delegation.l4]
store = "file://l4"
"""

CALLER = RemoteCaller("test")


def runtime(tmp_path: Path, caller: RemoteCaller | None = CALLER, **kwargs: object) -> Runtime:
    config = parse_config(CONFIG, base_dir=tmp_path, state_dir=tmp_path / "state")
    return Runtime(config, remote_caller=caller, **kwargs)  # type: ignore[arg-type]


def refusal(info: pytest.ExceptionInfo[BaseException]) -> SecurityViolation:
    """The `SecurityViolation` behind a refused call (the VM reports it as a host error)."""
    err: BaseException | None = info.value
    while err is not None and not isinstance(err, SecurityViolation):
        err = err.__cause__
    assert isinstance(err, SecurityViolation), repr(info.value)
    return err


def test_a_sensitive_function_is_refused_for_a_remote_caller(tmp_path: Path) -> None:
    program = "(defn private-total [xs] (reduce + xs)) (private-total [1 2 3])"
    assert runtime(tmp_path, caller=None).run(program).value == 6
    with pytest.raises(HostError) as info:
        runtime(tmp_path).run(program)
    assert "private-total is sensitive" in str(refusal(info))


def test_this_nodes_models_are_refused_unless_allowed(tmp_path: Path) -> None:
    program = '[(tone "I love it") (call :sentiment "great")]'
    local = runtime(tmp_path, caller=None).run(program).value
    assert all(v is not None for v in local)
    rt = runtime(tmp_path)
    with pytest.raises(HostError) as info:
        rt.run(program)
    assert "LocalModel(sentiment-rules) is this node's" in str(refusal(info))
    [record] = rt.last_calls
    assert record.outcome == "refused" and record.layer == "security"
    allowed = RemoteCaller("test", frozenset({"tone", "sentiment"}))
    assert runtime(tmp_path, caller=allowed).run(program).value == local


def test_a_sensitive_builtin_cannot_be_reached_as_a_value(tmp_path: Path) -> None:
    program = "(map str [1 2])"
    assert runtime(tmp_path, caller=None).run(program).value == ("1", "2")
    with pytest.raises(HostError) as info:
        runtime(tmp_path).run(program)
    assert "str is sensitive" in str(refusal(info))


def test_published_code_never_binds_a_sensitive_dependency(tmp_path: Path) -> None:
    publisher = runtime(tmp_path, caller=None)
    publisher.run("(defn private-double [x] (* x 2)) (defn doubled [xs] (map private-double xs))")
    assert {f.origin for f in publisher.last_functions} == {"compiled+published"}
    # a fresh node knows `doubled` only from L4: for a local caller its dependency is bound
    assert runtime(tmp_path, caller=None).run("(doubled [1 2])").value == (2, 4)
    rt = runtime(tmp_path)
    with pytest.raises(UnboundSymbolError, match="private-double"):
        rt.run("(doubled [1 2])")
    assert "private-double" not in rt.vm.globals
    assert rt.last_calls[0].target.startswith("L4CacheHit")


def test_a_read_only_runtime_publishes_nothing(tmp_path: Path) -> None:
    runtime(tmp_path, caller=None).run("(defn once [x] x)")  # the store exists
    rt = runtime(tmp_path, read_only=True)
    rt.run("(defn twice [x] (* 2 x)) (twice 4)")
    [record] = rt.last_functions
    assert (record.origin, record.detail) == ("compiled", "not published (read-only runtime)")
    assert runtime(tmp_path, caller=None).library.find_by_name("twice") is None


class _Fixed:
    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    def decide(self, ctx: CallContext) -> Decision:
        return self.decision


def test_a_model_fallback_is_withheld_and_a_refusal_keeps_the_replaced_decision() -> None:
    ctx = CallContext("f", 0, 0)
    model = LocalModel("m")
    kept = RemoteCallerEngine(_Fixed(Decision(LOCAL_PURE, Layer.DEFAULT, "d", fallback=model)),
                              CALLER).decide(ctx)
    assert kept.target == LOCAL_PURE and kept.fallback is None
    assert kept.withheld is not None and "LocalModel(m) is this node's" in kept.withheld
    original = Decision(model, Layer.CAPABILITY, "c")
    refused = RemoteCallerEngine(_Fixed(original), CALLER).decide(ctx)
    assert (refused.target, refused.layer, refused.replaced) == (None, Layer.SECURITY, original)
    sensitive = CallContext("f", 0, 0, sensitive=True)
    assert RemoteCallerEngine(_Fixed(Decision(LOCAL_PURE, Layer.DEFAULT, "d")),
                              CALLER).decide(sensitive).target is None
