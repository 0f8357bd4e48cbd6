"""The ModelProvider conformance suite, run against every provider, and the registries."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from delegation.config import load_config, parse_config
from delegation.errors import (
    ConfigError,
    ProviderUnavailable,
    UnknownCapability,
    UnknownProvider,
)
from delegation.providers import (
    CapabilityRegistry,
    CommandProvider,
    ExtractiveSummarizer,
    ModelProvider,
    ModelResult,
    OpenAIChatProvider,
    ProviderRegistry,
    SentimentRulesProvider,
    build_registry,
    proxies_from,
    proxy_for,
    resolve_secrets,
)
from delegation.providers.sentiment import parse_rules
from delegation.targets import LOCAL_PURE, LocalModel, RemoteModel
from delegation.testing import ChatServer, ModelProviderTests
from storage.testservers import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "delegation.toml"

# --- sentiment-rules: checked against hand labels ------------------------------------------

RULES = """
flaky        -2.0
works like a charm  3.0
"""
LABELS = {
    "I love this!": "positive",
    "This is the worst service I have ever used.": "negative",
    "The table is brown.": "neutral",
    "The deploy pipeline is flaky": "negative",  # only the rules rate "flaky"
    "Honestly, it works like a charm": "positive",
    "The café’s crêpes were wonderful": "positive",  # non-ASCII text
}


class TestSentimentRulesProvider(ModelProviderTests):
    prompts = tuple(LABELS)

    def make_provider(self, timer: Callable[[], float] = time.perf_counter) -> ModelProvider:
        return SentimentRulesProvider("sentiment-rules", parse_rules(RULES), timer=timer)

    def check_answer(self, prompt: str, result: ModelResult) -> None:
        label = LABELS[prompt]
        assert result.text == label == result.value["label"]
        compound = result.value["compound"]
        assert {"positive": compound > 0, "negative": compound < 0, "neutral": compound == 0}[label]


# --- extractive-summarizer: checked against which sentences are on topic --------------------

DOCS = {
    "ray": (
        ["Ray is a framework for distributed computing.", True],
        ["The weather was pleasant that day.", False],
        ["Ray schedules tasks and actors across a cluster of machines.", True],
        ["My cat prefers fish.", False],
        ["Actors in Ray hold state while Ray tasks are stateless.", True],
    ),
    "short": (["Only one sentence here.", True],),
}


def doc_text(name: str) -> str:
    return " ".join(s for s, _ in DOCS[name])


class TestExtractiveSummarizer(ModelProviderTests):
    prompts = tuple(doc_text(name) for name in DOCS)
    params = MappingProxyType({"max_sentences": 2})

    def make_provider(self, timer: Callable[[], float] = time.perf_counter) -> ModelProvider:
        return ExtractiveSummarizer("summarizer", max_sentences=3, cost_per_call=0.0, timer=timer)

    def check_answer(self, prompt: str, result: ModelResult) -> None:
        name = next(n for n in DOCS if doc_text(n) == prompt)
        sentences = [s for s, _ in DOCS[name]]
        chosen = [s for s in sentences if s in result.text]
        assert " ".join(chosen) == result.text == result.value  # whole sentences, in order
        assert len(chosen) == min(2, len(sentences))
        assert all(on_topic for s, on_topic in DOCS[name] if s in chosen)


# --- command: checked against what the runner wrote down ------------------------------------

RUNNER = """#!{python}
import json, os, sys
data = sys.stdin.buffer.read().decode("utf-8")
line = json.dumps({{"stdin": data}}) + "\\n"
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.write(fd, line.encode("utf-8"))
os.close(fd)
sys.stdout.write(data.upper() + "\\n")
"""


def write_runner(directory: Path, body: str = RUNNER) -> Path:
    runner = directory / "runner"
    runner.write_text(body.format(python=sys.executable))
    runner.chmod(0o755)
    return runner


class TestCommandProvider(ModelProviderTests):
    prompts = ("write a haiku", "Ça marche", "two\nlines")

    @pytest.fixture(autouse=True)
    def _runner(self, tmp_path: Path) -> None:
        self.log = tmp_path / "seen.jsonl"
        self.runner = write_runner(tmp_path)

    def make_provider(self, timer: Callable[[], float] = time.perf_counter) -> ModelProvider:
        return CommandProvider(
            "codegen",
            [str(self.runner), str(self.log)],
            display="runner",
            timeout_s=60,
            cost_per_call=0.5,
            timer=timer,
        )

    def check_answer(self, prompt: str, result: ModelResult) -> None:
        assert result.text == result.value == prompt.upper()
        seen = [json.loads(line)["stdin"] for line in self.log.read_text().splitlines()]
        assert prompt in seen  # the runner got exactly the prompt on stdin


# --- openai-chat: checked against what the server recorded and sent -------------------------


class TestOpenAIChatProvider(ModelProviderTests):
    prompts = ("Summarize: the cat sat on the mat.", "Traduis: bonjour 👋", "")
    params = MappingProxyType({"system": "be brief"})

    @pytest.fixture(autouse=True)
    def _server(self, chat_server: ChatServer) -> Iterator[None]:
        self.server = chat_server
        yield

    def make_provider(self, timer: Callable[[], float] = time.perf_counter) -> ModelProvider:
        return OpenAIChatProvider(
            "openai",
            base_url=self.server.base_url,
            model="test-model",
            api_key="test-key",
            api_key_env="OPENAI_API_KEY",
            cost_per_call=0.002,
            capabilities=("summarize",),
            timer=timer,
        )

    def check_answer(self, prompt: str, result: ModelResult) -> None:
        matching = [r for r in self.server.completions() if r.last_user_message == prompt]
        assert matching, "the server never received this prompt"
        assert result.text in {r.reply for r in matching}
        for record in matching:
            assert record.status == 200
            assert record.headers["authorization"] == "Bearer test-key"
            assert record.body["model"] == "test-model"
            assert record.body["messages"][0] == {"role": "system", "content": "be brief"}


# --- registries -----------------------------------------------------------------------------


def test_build_registry_from_the_example_config_offline() -> None:
    registry = build_registry(load_config(EXAMPLE), {"PATH": os.defpath})
    assert registry.remote_ids == ("openai", "translator")
    assert registry.local_ids == ("sentiment-rules", "summarizer", "codegen")
    health = {str(t): registry.health(t) for t in registry.targets()}
    assert health["RemoteModel(openai)"].reason == "OPENAI_API_KEY not set"
    assert health["RemoteModel(translator)"].reason == "TRANSLATE_API_KEY not set"
    assert health["LocalModel(codegen)"].reason == "model file models/codegen not found"
    assert health["LocalModel(sentiment-rules)"].ok and health["LocalModel(summarizer)"].ok
    assert registry.infer(LocalModel("sentiment-rules"), "The CI is flaky").text == "negative"


def test_capabilities_come_from_config_in_order() -> None:
    registry = build_registry(load_config(EXAMPLE), {})
    caps = registry.capabilities
    assert caps.targets_for("summarize") == (RemoteModel("openai"), LocalModel("summarizer"))
    assert caps.targets_for("translate") == (RemoteModel("translator"),)
    assert caps.targets_for("sentiment") == (LocalModel("sentiment-rules"),)
    assert "translate" in caps and "fly" not in caps
    with pytest.raises(UnknownCapability, match="'fly'.*known: sentiment, summarize"):
        caps.targets_for("fly")


def test_capability_registry_registration() -> None:
    caps = CapabilityRegistry([("echo", LocalModel("a"))])
    caps.register("echo", RemoteModel("b"))
    caps.register("echo", LocalModel("a"))  # a repeat keeps the first place
    assert caps.targets_for("echo") == (LocalModel("a"), RemoteModel("b"))
    assert caps.capabilities() == ("echo",)


def test_unknown_targets_are_errors() -> None:
    registry = ProviderRegistry(local={"s": ExtractiveSummarizer("s")})
    assert LocalModel("s") in registry and RemoteModel("s") not in registry
    with pytest.raises(UnknownProvider, match=r"RemoteModel\(s\).*LocalModel\(s\)"):
        registry.get(RemoteModel("s"))
    with pytest.raises(KeyError):
        registry.get(LOCAL_PURE)


def test_secrets_and_proxies_are_read_only_from_the_given_mapping() -> None:
    config = load_config(EXAMPLE)
    env = {"OPENAI_API_KEY": "sk-1", "TRANSLATE_API_KEY": "", "https_proxy": "http://p:3128"}
    assert resolve_secrets(config, env) == {"openai": "sk-1", "translator": None}
    assert proxies_from(env) == {"https": "http://p:3128"}
    assert proxies_from({"HTTP_PROXY": "http://q:1"}) == {"http": "http://q:1"}


def test_registry_reaches_the_chat_server_with_the_key_from_environ(
    chat_server: ChatServer,
) -> None:
    config = parse_config(f"""
[delegation.remote_providers.openai]
kind = "openai-chat"
base_url = "{chat_server.base_url}"
model = "test-model"
api_key_env = "MY_KEY"
""")
    registry = build_registry(config, {"MY_KEY": "test-key"})
    result = registry.infer(RemoteModel("openai"), "hello")
    assert result.text == chat_server.completions()[-1].reply
    assert registry.health(RemoteModel("openai")).ok


def test_bad_rules_file_fails_the_build_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "s.rules").write_text("good 1.0\nbad\n")
    config = parse_config(
        '[delegation.local_models.s]\nkind = "sentiment-rules"\nrules = "s.rules"\n',
        base_dir=tmp_path,
    )
    with pytest.raises(ConfigError) as info:
        build_registry(config, {})
    assert (info.value.file, info.value.line) == (str(tmp_path / "s.rules"), 2)


def test_runner_environment_never_holds_api_keys(tmp_path: Path) -> None:
    runner = tmp_path / "envdump"
    runner.write_text(f"#!{sys.executable}\nimport json, os\nprint(json.dumps(dict(os.environ)))\n")
    runner.chmod(0o755)
    config = parse_config(f"""
[delegation.remote_providers.openai]
kind = "openai-chat"
base_url = "http://127.0.0.1:9/v1"
model = "m"
api_key_env = "OPENAI_API_KEY"
[delegation.local_models.dump]
kind = "command"
command = ["{runner}"]
""")
    env = {"OPENAI_API_KEY": "sk-secret", "PATH": os.defpath, "MODEL_HOME": "/models"}
    seen = json.loads(build_registry(config, env).infer(LocalModel("dump"), "").text)
    assert seen.get("MODEL_HOME") == "/models" and "OPENAI_API_KEY" not in seen


def _chat_config(base_url: str) -> Any:
    return parse_config(f"""
[delegation.remote_providers.openai]
kind = "openai-chat"
base_url = "{base_url}"
model = "test-model"
api_key_env = "MY_KEY"
timeout_s = 5
""")


def test_calls_reuse_one_kept_alive_connection(chat_server: ChatServer) -> None:
    registry = build_registry(_chat_config(chat_server.base_url), {"MY_KEY": "test-key"})
    for i in range(5):
        assert registry.infer(RemoteModel("openai"), f"q{i}").text.endswith(f"q{i}")
    assert {r.connection for r in chat_server.completions()} == {1}
    assert chat_server.connections == 1


@pytest.mark.parametrize("no_proxy, reaches", [
    ("127.0.0.1", True), ("localhost,127.0.0.1", True), ("*", True), ("example.com", False),
    (None, False),
])
def test_no_proxy_decides_whether_the_proxy_is_used(chat_server: ChatServer, no_proxy: str | None,
                                                    reaches: bool) -> None:
    """The proxy is a closed port: going through it fails, going around it reaches the
    server."""
    env = {"MY_KEY": "test-key", "http_proxy": f"http://127.0.0.1:{free_port()}"}
    if no_proxy is not None:
        env["NO_PROXY"] = no_proxy
    registry = build_registry(_chat_config(chat_server.base_url), env)
    if reaches:
        assert registry.infer(RemoteModel("openai"), "hi").text.endswith("hi")
    else:
        with pytest.raises(ProviderUnavailable):
            registry.infer(RemoteModel("openai"), "hi")
        assert chat_server.completions() == []


def test_proxy_for_matches_hosts_as_curl_does() -> None:
    proxies = {"https": "http://p:3128", "no": ".internal.example, api.local"}
    assert proxy_for("https://api.openai.com/v1", proxies) == "http://p:3128"
    assert proxy_for("https://models.internal.example/v1", proxies) is None
    assert proxy_for("https://api.local:8443/v1", proxies) is None
    assert proxy_for("http://api.openai.com/v1", proxies) is None  # no http proxy set
