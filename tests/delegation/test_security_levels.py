"""`[delegation.security] level` and `allowed_remote_providers`, against a recording server.

standard: any layer may pick an allowed remote provider. high: only a static route or a hint
may send a call remote. maximum: only a static route, and no code is published off the node.
An absent allow-list allows every declared remote provider; a given one allows only those.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from delegation.config import parse_config
from delegation.runtime import Runtime
from rtfs.errors import RtfsError

CONFIG = """
[delegation.static_routes]
"ai-*" = "remote-chat"

[delegation.remote_providers.chat]
kind = "openai-chat"
base_url = "{base_url}"
model = "test-model"
api_key_env = "CHAT_KEY"
capabilities = ["analyze"]

[delegation.remote_providers.other]
kind = "openai-chat"
base_url = "{base_url}"
model = "test-model"
api_key_env = "CHAT_KEY"

[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"
capabilities = ["analyze"]

[delegation.security]
{security}

[delegation.l4]
store = "{store}"
"""

ROUTED = '(ai-ask "routed")'
HINTED = '(defn ^:delegation :remote "chat" helper [s] s) (helper "hinted")'
CAPABILITY = '(call :analyze "capability")'
METADATA = '^{:delegated-agent "chat"} (summarize-it "metadata")'


def run(tmp_path: Path, server, security: str, program: str) -> tuple[object, list[str]]:
    """The program's value (or the error), and the prompts the remote provider received."""
    text = CONFIG.format(base_url=server.base_url, security=security,
                         store=(tmp_path / "l4").as_uri())
    runtime = Runtime(parse_config(text, base_dir=tmp_path), environ={"CHAT_KEY": "test-key"},
                      out=io.StringIO())
    try:
        value: object = runtime.run(program).value
    except RtfsError as err:
        value = err
    return value, [r.last_user_message for r in server.completions()]


@pytest.mark.parametrize("program, prompt, remote_at", [
    (ROUTED, "routed", {"standard", "high", "maximum"}),
    (HINTED, "hinted", {"standard", "high"}),
    (CAPABILITY, "capability", {"standard"}),
    (METADATA, "metadata", {"standard"}),
])
@pytest.mark.parametrize("level", ["standard", "high", "maximum"])
def test_what_each_level_lets_leave_the_node(tmp_path: Path, chat_server, level: str,
                                             program: str, prompt: str,
                                             remote_at: set[str]) -> None:
    value, prompts = run(tmp_path, chat_server, f'level = "{level}"', program)
    if level in remote_at:
        assert prompts == [prompt]
    else:
        assert prompts == [], f"{level} let {prompt!r} reach the remote provider"


def test_high_serves_a_capability_from_a_local_provider_instead(tmp_path: Path,
                                                               chat_server) -> None:
    value, prompts = run(tmp_path, chat_server, 'level = "high"', CAPABILITY)
    assert prompts == [] and not isinstance(value, RtfsError)  # sentiment-rules answered


def test_an_absent_allow_list_allows_every_declared_provider(tmp_path: Path,
                                                            chat_server) -> None:
    program = '^{:delegated-agent "other"} (x "to-other")'
    _, prompts = run(tmp_path, chat_server, "", program)
    assert prompts == ["to-other"]


def test_a_given_allow_list_allows_only_those(tmp_path: Path, chat_server) -> None:
    security = 'allowed_remote_providers = ["chat"]'
    _, prompts = run(tmp_path, chat_server, security, '^{:delegated-agent "other"} (x "no")')
    assert prompts == []
    _, prompts = run(tmp_path, chat_server, security, ROUTED)
    assert prompts == ["routed"]


def test_maximum_publishes_no_code_off_this_node(tmp_path: Path, chat_server,
                                                 s3_index) -> None:
    text = CONFIG.format(base_url=chat_server.base_url, security='level = "maximum"',
                         store=(tmp_path / "l4").as_uri())
    runtime = Runtime(parse_config(text, base_dir=tmp_path), l4_index=s3_index,
                      out=io.StringIO())
    runtime.run("(defn plain [x] (* x 2)) (plain 21)")
    [record] = runtime.last_functions
    assert record.origin == "compiled" and "security level maximum" in record.detail
    assert list(s3_index.store.iterate()) == []
