"""Sensitive never leaves this node, whatever name or path a call takes.

Every program below tries to get a sensitive function's argument to the remote provider
through another name (let, def alias, higher-order functions, partial, comp, apply, data
structures, a function returned by a function, an alias under a remote-routed name). The
provider is a real chat-completions server on 127.0.0.1 that records every request: it must
receive none, and the secret must appear nowhere in what it received.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from delegation.config import parse_config
from delegation.runtime import Runtime
from rtfs.errors import RtfsError

SECRET = "SECRET-4d9f"

CONFIG = """
[delegation.static_routes]
"ai-*" = "remote-chat"

[delegation.remote_providers.chat]
kind = "openai-chat"
base_url = "{base_url}"
model = "test-model"
api_key_env = "CHAT_KEY"
timeout_s = 5

[delegation.security]
sensitive = ["private-*"]

[delegation.l4]
store = "{store}"
"""

HINTED = '(defn ^:delegation :remote "chat" private-x [s] (str "local " s))\n'
LOCAL = '(defn private-local [s] (str "local " s))\n'

PROGRAMS = {
    "direct": HINTED + f'(private-x "{SECRET}")',
    "let": HINTED + f'(let [f private-x] (f "{SECRET}"))',
    "def alias": HINTED + f'(def h private-x)\n(h "{SECRET}")',
    "map": HINTED + f'(map private-x ["{SECRET}"])',
    "filter": HINTED + f'(filter private-x ["{SECRET}"])',
    "reduce": HINTED + f'(reduce (fn [acc s] (private-x s)) nil ["{SECRET}"])',
    "partial": HINTED + f'((partial private-x) "{SECRET}")',
    "comp": HINTED + f'((comp str private-x) "{SECRET}")',
    "apply": HINTED + f'(apply private-x ["{SECRET}"])',
    "vector": HINTED + f'((first [private-x]) "{SECRET}")',
    "map value": HINTED + f'((:f {{:f private-x}}) "{SECRET}")',
    "returned": HINTED + f'(defn pick [] private-x)\n((pick) "{SECRET}")',
    "nested alias": HINTED + f'(def h1 private-x)\n(def h2 h1)\n(h2 "{SECRET}")',
    "alias under remote name": LOCAL + f'(def ai-alias private-local)\n(ai-alias "{SECRET}")',
    "partial under remote name":
        LOCAL + f'(def ai-p (partial private-local))\n(ai-p "{SECRET}")',
    "comp under remote name":
        LOCAL + f'(def ai-c (comp str private-local))\n(ai-c "{SECRET}")',
    "partial of partial":
        LOCAL + f'(def ai-pp (partial (partial private-local)))\n(ai-pp "{SECRET}")',
    "alias makes the original sensitive":
        '(defn ai-public [s] s)\n(def private-alias ai-public)\n'
        f'(ai-public "{SECRET}")',
    "call site marks it sensitive": f'^{{:sensitive true}} (ai-ask "{SECRET}")',
}


def make_runtime(tmp_path: Path, base_url: str, store: str | None = None) -> Runtime:
    text = CONFIG.format(base_url=base_url, store=store or (tmp_path / "l4").as_uri())
    return Runtime(parse_config(text, base_dir=tmp_path), environ={"CHAT_KEY": "test-key"},
                   out=io.StringIO())


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_no_path_sends_a_sensitive_argument_remote(tmp_path: Path, chat_server, name: str) -> None:
    runtime = make_runtime(tmp_path, chat_server.base_url)
    try:
        runtime.run(PROGRAMS[name])
    except RtfsError:
        pass  # refusing the call is one allowed outcome; running it locally is the other
    received = chat_server.requests()
    assert received == [], f"{name}: the remote provider received {received}"


# One call site, first warmed by a public function that goes remote (its decision is kept on
# the site), then given the sensitive one: what the site learned must not carry it remote.
PUBLIC = '(defn ^:delegation :remote "chat" ai-public [s] (str "public " s))\n'
WARMED = {
    "one site, public then private": PUBLIC + HINTED
        + '(defn call-it [f s] (f s))\n'
        + f'(call-it ai-public "warm")\n(call-it ai-public "warm")\n(call-it private-x "{SECRET}")',
    "map over both": PUBLIC + HINTED
        + '(map (fn [[f s]] (f s))'
        + f' [[ai-public "warm"] [ai-public "warm"] [private-x "{SECRET}"]])',
    "alias after warming": PUBLIC + LOCAL
        + '(defn call-it [f s] (f s))\n(call-it ai-public "warm")\n'
        + f'(def ai-alias private-local)\n(call-it ai-alias "{SECRET}")',
}


@pytest.mark.parametrize("name", sorted(WARMED))
def test_a_warmed_call_site_never_carries_a_sensitive_argument_remote(
        tmp_path: Path, chat_server, name: str) -> None:
    runtime = make_runtime(tmp_path, chat_server.base_url)
    for _ in range(2):  # and again, with every decision of the first run kept
        try:
            runtime.run(WARMED[name])
        except RtfsError:
            pass
    received = chat_server.requests()
    assert received, f"{name}: the control (the public function) never went remote"
    assert SECRET not in repr(received), f"{name}: the remote provider received {received}"


def test_a_sensitive_call_runs_locally_or_is_refused_and_says_why(tmp_path: Path,
                                                                 chat_server) -> None:
    runtime = make_runtime(tmp_path, chat_server.base_url)
    with pytest.raises(RtfsError):
        runtime.run(PROGRAMS["let"])
    [call] = runtime.last_calls
    assert call.outcome == "refused" and "sensitive" in call.reason


def test_a_non_sensitive_function_still_goes_remote(tmp_path: Path, chat_server) -> None:
    """The control: the same paths reach the provider when nothing is sensitive."""
    runtime = make_runtime(tmp_path, chat_server.base_url)
    program = '(defn ^:delegation :remote "chat" public-x [s] s)\n(let [f public-x] (f "hi"))'
    result = runtime.run(program)
    assert result.value == chat_server.reply_for("test-model", "hi")
    assert len(chat_server.completions()) == 1


SENSITIVE_CODE = f"""
(defn private-greeting [name] (str "{SECRET} for " name))
(defn public-greeting [name] (str "hello " name))
(defn helper [x] x)
(def private-alias helper)
[(private-greeting "a") (public-greeting "b") (helper 1)]
"""


def blobs_hold_secret(index) -> bool:
    store = index.store
    return any(SECRET.encode() in store.get(blob_id) for blob_id in store.iterate())


def test_sensitive_code_is_never_published_off_this_node(tmp_path: Path, chat_server,
                                                          s3_index) -> None:
    runtime = Runtime(make_runtime(tmp_path, chat_server.base_url).config, l4_index=s3_index,
                      out=io.StringIO())
    runtime.run(SENSITIVE_CODE)
    origins = {f.name: (f.origin, f.detail) for f in runtime.last_functions}
    assert origins["public-greeting"][0] == "compiled+published"
    for name in ("private-greeting", "helper"):  # helper is sensitive through its alias
        origin, detail = origins[name]
        assert origin == "compiled" and "sensitive: not published to s3://" in detail
    assert not blobs_hold_secret(s3_index)
    assert list(s3_index.store.iterate()), "the public function was published"


def test_sensitive_code_may_go_to_a_store_on_this_node(tmp_path: Path, chat_server) -> None:
    runtime = make_runtime(tmp_path, chat_server.base_url)
    runtime.run(SENSITIVE_CODE)
    origins = {f.name: f.origin for f in runtime.last_functions}
    assert origins["private-greeting"] == "compiled+published"
