"""Key -> line mapping for TOML: a hand-written tricky document, and generated documents
whose renderer knows where it put every key."""

from __future__ import annotations

import tomllib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delegation.tomllines import KeyLines

TRICKY = '''\
# comment with = and [brackets] and "quotes"
title = "a # not a comment"
[delegation]            # header comment
default_target = "local-pure"
a.b."c.d" = 1
'quoted key' = 'lit # x'
"with \\"escape\\"" = 2
s = """multi
[not.a.table]
x = 1 """
t = \'\'\'
raw = "no"
\'\'\'
[ delegation . "static_routes" ]
"ai-*" = "remote-openai"
"summarize" = { target = "remote-openai", fallback = "local-x", deep = { k = 1 } }
arr = [
  1,   # one
  { x = 2 },

  "three", ]
when = 1979-05-27 07:32:00Z
[[fleet]]
name = "a"
[[fleet]]
name = "b"
[fleet.extra]
ok = true
[[fleet.items]]
id = 1
'''

EXPECTED = {
    ("title",): 2,
    ("delegation",): 3,
    ("delegation", "default_target"): 4,
    ("delegation", "a"): 5,
    ("delegation", "a", "b"): 5,
    ("delegation", "a", "b", "c.d"): 5,
    ("delegation", "quoted key"): 6,
    ("delegation", 'with "escape"'): 7,
    ("delegation", "s"): 8,
    ("delegation", "t"): 11,
    ("delegation", "static_routes"): 14,
    ("delegation", "static_routes", "ai-*"): 15,
    ("delegation", "static_routes", "summarize"): 16,
    ("delegation", "static_routes", "summarize", "fallback"): 16,
    ("delegation", "static_routes", "summarize", "deep", "k"): 16,
    ("delegation", "static_routes", "arr"): 17,
    ("delegation", "static_routes", "arr", 0): 18,
    ("delegation", "static_routes", "arr", 1): 19,
    ("delegation", "static_routes", "arr", 1, "x"): 19,
    ("delegation", "static_routes", "arr", 2): 21,
    ("delegation", "static_routes", "when"): 22,
    ("fleet",): 23,
    ("fleet", 0): 23,
    ("fleet", 0, "name"): 24,
    ("fleet", 1): 25,
    ("fleet", 1, "name"): 26,
    ("fleet", 1, "extra"): 27,
    ("fleet", 1, "extra", "ok"): 28,
    ("fleet", 1, "items", 0): 29,
    ("fleet", 1, "items", 0, "id"): 30,
}


def test_tricky_document_lines() -> None:
    tomllib.loads(TRICKY)  # the fixture itself must be valid TOML
    lines = KeyLines(TRICKY)
    for path, line in EXPECTED.items():
        assert lines.exact_line(path) == line, path


def test_unknown_paths_fall_back_to_the_nearest_ancestor() -> None:
    lines = KeyLines(TRICKY)
    assert lines.exact_line(("delegation", "nope")) is None
    assert lines.line_of(("delegation", "nope", "deeper")) == 3
    assert lines.line_of(("delegation", "static_routes", "summarize", "target", 7)) == 16
    assert lines.line_of(("nowhere",)) is None


def test_crlf_line_endings() -> None:
    text = "[a]\r\nx = 1\r\n\r\n[b]\r\ny = 2\r\n"
    lines = KeyLines(text)
    assert (lines.exact_line(("a", "x")), lines.exact_line(("b", "y"))) == (2, 5)


# --- generated documents ------------------------------------------------------------------

KEY_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
keys = st.text(KEY_CHARS, min_size=1, max_size=6)
scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.text(KEY_CHARS, max_size=12),
    st.text(st.sampled_from("ab =#[]{}\"'\n.,\\"), max_size=20),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))
trees = st.recursive(
    st.dictionaries(keys, values, max_size=4),
    lambda children: st.dictionaries(keys, st.one_of(values, children), max_size=4),
    max_leaves=20,
)


def toml_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


class Renderer:
    """Writes a tree as TOML in randomly chosen styles and notes each key's line."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.lines: list[str] = []
        self.pending = ""
        self.expected: dict[tuple, int] = {}

    def key(self, k: str) -> str:
        bare = all(c.isascii() and (c.isalnum() or c in "-_") for c in k)
        if bare and self.draw(st.booleans()):
            return k
        if "'" not in k and k.isprintable() and self.draw(st.booleans()):
            return f"'{k}'"
        return toml_string(k)

    def note(self, path: tuple) -> None:
        self.expected.setdefault(path, len(self.lines) + 1 + self.pending.count("\n"))

    def put(self, text: str) -> None:
        self.pending += text

    def emit(self, text: str = "") -> None:
        """End the current statement (after `text`)."""
        self.lines.extend((self.pending + text).split("\n"))
        self.pending = ""

    def scalar(self, v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        literal_ok = "'" not in v and "\n" in v and not v.startswith("\n")
        if literal_ok and all(c == "\n" or c.isprintable() for c in v) and self.draw(st.booleans()):
            return "'''" + v + "'''"  # a multi-line literal string: it moves later lines
        return toml_string(v)

    def inline_value(self, v: Any, path: tuple) -> None:
        if isinstance(v, dict):
            self.put("{ ")
            for i, (k, item) in enumerate(v.items()):
                self.put(", " if i else "")
                self.note(path + (k,))
                self.put(f"{self.key(k)} = ")
                self.inline_value(item, path + (k,))
            self.put(" }")
        elif isinstance(v, list):
            self.put("[")
            for i, item in enumerate(v):
                self.put(", " if i else "")
                self.note(path + (i,))
                self.put(self.scalar(item))
            self.put("]")
        else:
            self.put(self.scalar(v))

    def body(self, path: tuple, table: dict, prefix: str = "", headers: bool = True) -> list:
        deferred = []
        for k, v in table.items():
            p = path + (k,)
            lead = prefix + self.key(k)
            style = (
                self.draw(st.sampled_from(["inline", "dotted", "header"]))
                if isinstance(v, dict)
                else None
            )
            if style == "header" and not headers:
                style = "dotted"
            if style == "dotted" and not v:
                style = "inline"
            if style == "header":
                deferred.append((p, v))
            elif style == "dotted":
                self.body(p, v, lead + ".", headers=False)
            elif isinstance(v, list) and v and self.draw(st.booleans()):
                self.note(p)
                self.emit(f"{lead} = [")
                for i, x in enumerate(v):
                    self.note(p + (i,))
                    self.emit(f"  {self.scalar(x)},  # item")
                self.emit("]")
            else:
                self.note(p)
                self.put(f"{lead} = ")
                self.inline_value(v, p)
                self.emit()
        return deferred

    def document(self, tree: dict) -> str:
        pending = [((), tree, True)]
        while pending:
            path, table, is_root = pending.pop(0)
            if not is_root:
                self.note(path)
                self.emit("[" + ".".join(self.key(k) for k in path) + "]")
            pending[0:0] = [(p, v, False) for p, v in self.body(path, table)]
        return "\n".join(self.lines) + "\n"


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(trees, st.data())
def test_generated_documents_map_every_key_to_its_line(tree: dict, data: st.DataObject) -> None:
    renderer = Renderer(data.draw)
    text = renderer.document(tree)
    assert tomllib.loads(text) == tree, text  # the renderer wrote what it meant to
    lines = KeyLines(text)
    for path, line in renderer.expected.items():
        assert lines.exact_line(path) == line, (path, text)
