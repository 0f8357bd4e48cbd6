"""L2 and L3 inside the runtime: config tables, the L3 layer, L2 around model calls, state
files, --context and --explain (real MiniLM, real command models, a real chat server)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import msgpack
import pytest

from delegation.config import parse_config
from delegation.errors import ConfigError
from delegation.l2.errors import ContextError, EmbedderUnavailable
from delegation.runtime import CONTEXTS_FILE, L2_ENTRIES_FILE, Runtime
from delegation.testing import ChatServer
from rtfs.errors import HostError

ENV = {"CHAT_KEY": "test-key"}
FAQ = """\
import sys, time
prompt = sys.stdin.read()
time.sleep(float(sys.argv[1]))
print("answer to: " + prompt.strip().lower().rstrip("?"))
"""


def faq_models(tmp_path: Path, fast_s: float = 0.0) -> str:
    script = tmp_path / "faq.py"
    script.write_text(FAQ)
    return textwrap.dedent(f"""
        [delegation.local_models.slow]
        kind = "command"
        command = ["{sys.executable}", "{script}", "0.25"]
        capabilities = ["answer"]
        [delegation.local_models.fast]
        kind = "command"
        command = ["{sys.executable}", "{script}", "{fast_s}"]
        capabilities = ["answer"]
        """)


def runtime(tmp_path: Path, text: str, **kwargs: object) -> Runtime:
    config = parse_config(text, base_dir=tmp_path, state_dir=tmp_path / "state")
    return Runtime(config, environ=ENV, **kwargs)  # type: ignore[arg-type]


def test_l3_decides_per_context_and_l2_serves_repeats_across_runs(tmp_path: Path) -> None:
    # both models are cached, even the fast one (the default caches only local calls slower
    # than 100 ms: see the next test)
    text = (faq_models(tmp_path) + '[delegation.context]\ntenant = "acme"\n'
            '[delegation.l2]\nlocal_min_latency_ms = 0\nshadow_rate = 0\n')
    program = ('[(call :answer "How do I reset my password?")'
               ' (call :answer "how can I reset my password")]')
    first = runtime(tmp_path, text).run(program)
    assert [c.layer for c in first.calls] == ["l3-context", "l3-context"]
    assert {c.target for c in first.calls} == {"LocalModel(slow)", "LocalModel(fast)"}
    assert all("untried here" in c.reason and "tenant=acme" in c.reason for c in first.calls)
    assert [c.l2 for c in first.calls] == ["stored", "stored"]
    state = tmp_path / "state"
    assert (state / CONTEXTS_FILE).is_file() and (state / L2_ENTRIES_FILE).is_file()

    second = runtime(tmp_path, text).run(program)
    assert [c.target for c in second.calls] == ["LocalModel(fast)"] * 2  # learned: faster
    assert all("mean reward" in c.reason for c in second.calls)
    first_call, repeat = second.calls
    assert first_call.l2 == "semantic"  # only the paraphrase was stored under fast
    [hit] = [n for n in first_call.notes if n.startswith("L2 semantic hit")]
    assert "cosine 0.9" in hit and "namespace acme" in hit
    assert repeat.l2 == "exact"
    # the paraphrase's answer (stored under the fast model) served both: nothing ran
    assert list(second.value) == [first.value[1], first.value[1]]


def test_a_fast_free_local_model_is_not_worth_loading_the_embedder_for(tmp_path: Path) -> None:
    # an in-process extractive summarizer: well under local_min_latency_ms (100 ms) however
    # loaded the machine is
    text = ('[delegation.local_models.summarizer]\nkind = "extractive-summarizer"\n'
            '[delegation.static_routes]\n"summarize" = "local-summarizer"\n')
    rt = runtime(tmp_path, text)
    for _ in range(3):
        result = rt.run('(summarize "How do I reset my password? Use the form. It is quick.")')
        assert [c.l2 for c in result.calls] == ["-"]
    assert rt.l2.cache is None  # the embedding model was never loaded


def test_a_call_context_is_its_own_l3_table(tmp_path: Path) -> None:
    text = faq_models(tmp_path) + '[delegation.context]\ntenant = "acme"\n'
    rt = runtime(tmp_path, text)
    for _ in range(3):
        rt.run('(call :answer "what is the refund policy of the shop")')
    staged = rt.run('^{:context {:environment "staging"}} '
                    '(call :answer "what is the refund policy of the shop")')
    [call] = staged.calls
    assert "untried here" in call.reason and "environment=staging" in call.reason
    with pytest.raises(HostError) as info:
        rt.run('^{:context {:budget -1}} (call :answer "x y")')
    assert isinstance(info.value.__cause__, ContextError) and "budget" in str(info.value)


def test_static_routes_outrank_l3_and_l3_needs_a_choice(tmp_path: Path) -> None:
    text = (faq_models(tmp_path) + '[delegation.context]\ntenant = "acme"\n'
            '[delegation.static_routes]\n"answer" = "local-slow"\n')
    result = runtime(tmp_path, text).run('(call :answer "How do I reset my password?")')
    assert result.calls[0].layer == "static-exact"
    one_model = faq_models(tmp_path).split("[delegation.local_models.fast]")[0]
    result = runtime(tmp_path, one_model + '[delegation.context]\ntenant = "a"\n').run(
        '(call :answer "How do I reset my password?")')
    assert result.calls[0].layer != "l3-context"


def test_without_a_context_l3_stays_out(tmp_path: Path) -> None:
    result = runtime(tmp_path, faq_models(tmp_path)).run('(call :answer "hello there you")')
    assert result.calls[0].layer == "capability"
    assert not (tmp_path / "state" / CONTEXTS_FILE).exists() or msgpack.unpackb(
        (tmp_path / "state" / CONTEXTS_FILE).read_bytes())[2] == []


def test_plans_do_not_cross_contexts(tmp_path: Path) -> None:
    rt = runtime(tmp_path, faq_models(tmp_path) + '[delegation.l3]\nenabled = false\n')
    plain = rt.contexts.context("answer", ("x",), None, None, has_source=False)
    from rtfs.values import Keyword, Map

    meta = Map({Keyword("context"): Map({Keyword("tenant"): "acme"})})
    acme = rt.contexts.context("answer", ("x",), meta, None, has_source=False)
    assert plain.task != acme.task
    assert dict(acme.context.values) == {"tenant": "acme"}


def test_remote_calls_are_served_from_l2(tmp_path: Path, chat_server: ChatServer) -> None:
    text = textwrap.dedent(f"""
        [delegation.static_routes]
        "ask" = "remote-chat"
        [delegation.remote_providers.chat]
        kind = "openai-chat"
        base_url = "{chat_server.base_url}"
        model = "test-model"
        api_key_env = "CHAT_KEY"
        cost_per_call = 0.01
        """)
    rt = runtime(tmp_path, text)
    result = rt.run('[(ask "What are the opening hours of the museum?")'
                    ' (ask "what are the opening hours of the museum")'
                    ' (ask "What are the opening hours of the museum on Sunday?")]')
    assert len(chat_server.completions()) == 2  # the repeat was served from L2
    ask1, ask2, ask3 = result.calls
    assert (ask1.l2, ask2.l2) == ("stored", "exact")
    assert ask3.l2 == "stored" and any("guard: dates differ" in n for n in ask3.notes)
    assert result.values[0][0] == result.values[0][1] != result.values[0][2]


def test_sensitive_answers_are_never_written_to_disk(tmp_path: Path) -> None:
    text = faq_models(tmp_path) + textwrap.dedent("""
        [delegation.static_routes]
        "private-answer" = "local-slow"
        "answer" = "local-slow"
        [delegation.security]
        sensitive = ["private-*"]
        """)
    rt = runtime(tmp_path, text)
    rt.run('[(private-answer "my account number is 1234 5678") (answer "the public faq")]')
    rows = msgpack.unpackb((tmp_path / "state" / L2_ENTRIES_FILE).read_bytes())[2]
    assert [row[1] for row in rows] == ["answer"]
    again = rt.run('(private-answer "my account number is 1234 5678")')
    assert again.calls[0].l2 == "exact"  # kept in this process only


def test_a_model_that_cannot_load_turns_l2_off_with_one_warning(tmp_path: Path,
                                                                 chat_server: ChatServer
                                                                 ) -> None:
    class NoModel(Runtime):
        def _make_l2_cache(self):  # type: ignore[no-untyped-def]
            raise EmbedderUnavailable("all-MiniLM-L6-v2-onnx-int8", "package not installed")

    text = (f'[delegation.static_routes]\n"ask" = "remote-chat"\n'
            f'[delegation.remote_providers.chat]\nkind = "openai-chat"\n'
            f'base_url = "{chat_server.base_url}"\nmodel = "test-model"\n'
            f'api_key_env = "CHAT_KEY"\n')
    warnings: list[str] = []
    rt = NoModel(parse_config(text, base_dir=tmp_path, state_dir=tmp_path / "s"), environ=ENV,
                 warn=warnings.append)
    result = rt.run('[(ask "first question here") (ask "first question here")]')
    assert len(result.values[0]) == 2 and len(chat_server.completions()) == 2
    assert warnings == [("L2 off: embedding model all-MiniLM-L6-v2-onnx-int8 unavailable: "
                         "package not installed")]


@pytest.mark.parametrize(("text", "key", "line"), [
    ("[delegation.l2]\nshadow_rate = 3\n", "delegation.l2.shadow_rate", 2),
    ("[delegation.l3]\n\ndiscount = 0\n", "delegation.l3.discount", 3),
    ("[delegation.context]\ntenant = 'a b'\n", "delegation.context.tenant", 2),
    ("[delegation.context]\nlatency_target_ms = -5\n", "delegation.context.latency_target_ms",
     2),
    ("[delegation]\nl2 = 1\n", "delegation.l2", 2),
])
def test_config_tables_are_checked_with_key_and_line(text: str, key: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="d.toml")
    assert (info.value.key_path, info.value.line) == (key, line)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "delegation", *args], check=False,
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_cli_context_and_explain(tmp_path: Path) -> None:
    (tmp_path / "delegation.toml").write_text(faq_models(tmp_path))
    plan = tmp_path / "plan.rtfs"
    plan.write_text('(call :answer "How do I reset my password?")')
    state = str(tmp_path / "state")
    done = _cli(tmp_path, "run", str(plan), "--state-dir", state, "--explain",
                "--context", '{"tenant": "zeta", "latency_target_ms": 200}')
    assert done.returncode == 0, done.stderr
    assert "l3-context" in done.stdout and "latency_target_ms=200, tenant=zeta" in done.stdout
    [header] = [line for line in done.stdout.splitlines() if line.startswith("#  call")]
    assert header.split() == ["#", "call", "target", "decided", "by", "latency", "L1", "L2",
                              "outcome"]
    as_json = _cli(tmp_path, "run", str(plan), "--state-dir", state, "--json",
                   "--context", '{"tenant": "zeta"}')
    [call] = json.loads(as_json.stdout)["calls"]
    assert call["layer"] == "l3-context" and "l2" in call and "notes" in call
    bad = _cli(tmp_path, "run", str(plan), "--state-dir", state, "--context", "{tenant: 1}")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("delegation: context --context: not JSON")
    assert len(bad.stderr.splitlines()) == 1


# --- where L2 pays ---------------------------------------------------------------------


class _Factory:
    def __init__(self) -> None:
        self.built = 0

    def __call__(self) -> object:
        from delegation.l2.cache import SemanticCache
        from delegation.l2.config import L2Config
        from delegation.l2.embedder import HashingEmbedder

        self.built += 1
        return SemanticCache(L2Config(model="hashing-ngram-v1-d256"), HashingEmbedder(256))


def _results(text: str = "") -> tuple[object, object, _Factory]:
    from delegation.l2.serving import ModelResults
    from delegation.learning import Learner

    config = parse_config(text + textwrap.dedent("""
        [delegation.local_models.rules]
        kind = "sentiment-rules"
        [delegation.local_models.priced]
        kind = "sentiment-rules"
        cost_per_call = 0.5
        [delegation.remote_providers.chat]
        kind = "openai-chat"
        base_url = "http://127.0.0.1:9"
        model = "m"
        """))
    learner, factory = Learner(), _Factory()
    return ModelResults(config, learner, factory), learner, factory  # type: ignore[arg-type]


def test_l2_is_asked_only_where_it_pays() -> None:
    from delegation.targets import LOCAL_PURE, LocalModel, RemoteModel

    results, learner, factory = _results()
    args = ("how are you doing today",)
    fast, priced, remote = LocalModel("rules"), LocalModel("priced"), RemoteModel("chat")
    assert results.consult(LOCAL_PURE, "f", args, False) is None  # not a model call
    unmeasured = results.consult(fast, "f", args, False)
    assert unmeasured is not None and unmeasured.found is None and factory.built == 0
    for _ in range(3):
        learner.record("f", fast, True, 0.001)  # type: ignore[attr-defined]
    assert results.consult(fast, "f", args, False).found is None  # type: ignore[union-attr]
    assert results.settle(unmeasured, "x", 0.001, 0.0) == "" and factory.built == 0
    assert results.consult(priced, "f", args, False).found is not None  # type: ignore[union-attr]
    assert results.consult(remote, "g", args, False).found is not None  # type: ignore[union-attr]
    for _ in range(3):
        learner.record("h", fast, True, 0.5)  # type: ignore[attr-defined]
    slow_local = results.consult(fast, "h", args, False)
    assert slow_local is not None and slow_local.found is not None
    assert results.settle(slow_local, "x", 0.5, 0.0).startswith("stored")
    assert factory.built == 1


def test_the_first_lookup_is_warm_up_not_a_lookups_cost() -> None:
    from delegation.l2.serving import ModelResults
    from delegation.learning import Learner
    from delegation.targets import RemoteModel

    config = parse_config('[delegation.remote_providers.chat]\nkind = "openai-chat"\n'
                          'base_url = "http://127.0.0.1:9"\nmodel = "m"\n')
    now = [0.0]
    factory = _Factory()

    def timer() -> float:  # every lookup seems to take 2 s
        now[0] += 1.0
        return now[0]

    results = ModelResults(config, Learner(), factory, timer=timer)  # type: ignore[arg-type]
    before = results.lookup_cost_s
    results.consult(RemoteModel("chat"), "f", ("first contact",), False)
    assert results.lookup_cost_s == before  # loading the store, connecting to shards
    results.consult(RemoteModel("chat"), "f", ("a later lookup",), False)
    assert results.lookup_cost_s > before


def test_l2_disabled_in_config_is_never_asked() -> None:
    from delegation.targets import RemoteModel

    results, _, factory = _results("[delegation.l2]\nenabled = false\n")
    assert results.consult(RemoteModel("chat"), "f", ("a b",), False) is None
    assert factory.built == 0


def test_the_runtime_uses_the_namespace_calibration_the_cli_stores(tmp_path: Path,
                                                                   minilm: object) -> None:
    from dataclasses import replace as replace_field

    from delegation.l2.book import CalibrationBook, shipped_defaults

    default = shipped_defaults()["all-MiniLM-L6-v2-onnx-int8"]
    strict = replace_field(default, threshold=0.999, source="acme's own pairs")
    CalibrationBook.in_state_dir(tmp_path / "state", defaults={}).set("acme", strict)
    text = faq_models(tmp_path) + textwrap.dedent("""
        [delegation.static_routes]
        "answer" = "local-slow"
        [delegation.context]
        tenant = "acme"
        """)
    rt = runtime(tmp_path, text)
    rt.run('(call :answer "how can I reset my password")')
    result = rt.run('(call :answer "How do I reset my password?")')
    [call] = result.calls
    assert call.l2 == "stored"  # 0.984 is below acme's own 0.999
    assert any("threshold 0.999, namespace calibration" in n for n in call.notes)
