from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtfs.builder import Reader
from rtfs.errors import RtfsSyntaxError
from rtfs.reader import Atom, HintForm, Seq, form_to_value, read, read_each
from rtfs.values import DelegationHint, HintKind, Keyword, Map, RList, Symbol, TaggedLiteral


def value(text: str):
    [form] = read(text)
    return form_to_value(form)


@pytest.mark.parametrize("text, expected", [
    ("42", 42), ("-17", -17), ("+42", 42), ("-0", 0), ("9223372036854775808", 2**63),
    ("123456789012345678901234567890", 123456789012345678901234567890),
    ("3.14159", 3.14159), ("1.23e4", 12300.0), ("-4.56E-2", -0.0456), ("0x42", 66),
    ("0xFF", 255), ("0o755", 493), ("0b1010", 10), ("1/2", 0.5), ("true", True),
    ("false", False), ("nil", None), ('"a\\nb\\t\\"q\\"\\\\"', 'a\nb\t"q"\\'),
    ('"\\u03b1"', "α"), (":a", Keyword("a")), (":ns/a", Keyword("ns/a")),
    ("ns/name", Symbol("ns/name")), ("[1 [2]]", (1, (2,))), ("{:a 1}", Map({Keyword("a"): 1})),
    ("#{1 2}", frozenset({1, 2})), ("'x", RList((Symbol("quote"), Symbol("x")))),
])
def test_literals(text, expected):
    got = value(text)
    assert got == expected and type(got) is type(expected)


def test_special_floats():
    assert value("##Inf") == math.inf and value("##-Inf") == -math.inf
    assert math.isnan(value("##NaN"))


def test_rtfs2_literals_keep_their_text():
    assert value("550e8400-e29b-41d4-a716-446655440000") == TaggedLiteral(
        "uuid", "550e8400-e29b-41d4-a716-446655440000")
    assert value("2024-01-15T10:30:45.123Z").tag == "timestamp"
    assert value("resource://local/a.txt") == TaggedLiteral("resource", "resource://local/a.txt")


def test_comments_and_positions():
    forms = read(";; line comment\n#| block #| nested |# |#\n  (+ 1\n     x)")
    [call] = forms
    assert (call.line, call.col) == (3, 3)
    x = call.items[2]
    assert isinstance(x, Atom) and x.value is Symbol("x") and (x.line, x.col) == (4, 6)


def test_type_annotation_is_kept_on_the_symbol():
    [vec] = read("[x:int y]")
    assert vec.items[0].value is Symbol("x") and vec.items[0].annotation == "int"
    assert vec.items[1].annotation is None


def test_both_delegation_hint_notations():
    [seed] = read('(defn ai ^:delegation {:target "remote-openai" :sensitive true} [t] t)')
    hint = seed.items[2]
    assert isinstance(hint, HintForm)
    assert hint.hint == DelegationHint(HintKind.TARGET, "remote-openai", (("sensitive", True),))
    [ccos] = read('(defn ^:delegation :remote "gpt4o" add [x y] (+ x y))')
    assert ccos.items[1].hint == DelegationHint(HintKind.REMOTE, "gpt4o")
    [local] = read("(fn ^:delegation :local [x] x)")
    assert local.items[1].hint == DelegationHint(HintKind.LOCAL)
    [model] = read('(fn ^:delegation :local-model "phi" [x] x)')
    assert model.items[1].hint == DelegationHint(HintKind.LOCAL_MODEL, "phi")


def test_metadata_attaches_to_the_next_form():
    [call] = read("^{:sensitive true} (summarize doc)")
    assert isinstance(call, Seq) and call.meta == Map({Keyword("sensitive"): True})
    [sym] = read("^:private x")
    assert sym.meta == Map({Keyword("private"): True})


def test_anonymous_function_shorthand():
    [fn] = read("#(+ % %2 %&)")
    params = [a.value.name for a in fn.items[1].items]
    assert fn.items[0].value is Symbol("fn") and params == ["%1", "%2", "&", "%&"]


@pytest.mark.parametrize("text, message, position", [
    ("(+ 1 2", "unclosed '('", (1, 1)),
    ("(+ 1]", "expected ')'", (1, 5)),
    (")", "unexpected closing", (1, 1)),
    ('"abc', "unterminated string", (1, 1)),
    ('"a\\q"', "unknown escape", (1, 3)),
    ("1.2.3", "invalid number", (1, 1)),
    (":a:b", "invalid keyword", (1, 1)), ("::a", "invalid keyword", (1, 1)),
    ("{:a}", "even number", (1, 1)),
    ("\n  ^:delegation :remote 5", "needs a string id", (2, 3)),
    ("#| open", "unterminated block comment", (1, 1)),
])
def test_syntax_errors_carry_positions(text, message, position):
    with pytest.raises(RtfsSyntaxError) as info:
        read(text)
    assert message in info.value.message
    assert (info.value.line, info.value.col) == position


def test_nesting_is_bounded():
    with pytest.raises(RtfsSyntaxError, match="nested deeper"):
        read("(" * 500 + ")" * 500)


def test_read_each_recovers_after_errors():
    items = list(read_each(') (+ 1 2) (f "\\q" (g)) 3 (h'))
    kinds = ["Seq" if isinstance(i, Seq) else type(i).__name__ for i in items]
    assert kinds == ["RtfsSyntaxError", "Seq", "RtfsSyntaxError", "Atom", "RtfsSyntaxError"]
    assert items[3].value == 3


def test_top_level_forms_read_again_only_when_their_items_are_asked_for():
    text = "^{:m 1} (f\n  [x 'y])\n#_ skipped\n'(q r)"
    forms = read(text)
    assert [type(f).__name__ for f in forms] == ["LazySeq", "LazySeq"]
    call, quoted = forms
    assert (call.line, call.col, call.meta) == (1, 9, Map({Keyword("m"): 1}))
    assert [(i.line, i.col) for i in call.items] == [(1, 10), (2, 3)]
    assert call.items[1].items[1].items[0].value is Symbol("quote")
    assert form_to_value(quoted) == RList((Symbol("quote"), RList((Symbol("q"), Symbol("r")))))
    assert call.items is call.items  # read again once, then kept


# -- checking first, building on access: the same forms and errors as building everything --
_DIFF_TOKENS = st.sampled_from([
    "(", ")", "[", "]", "{", "}", "#{", "#(", "'", "`", "~", "~@", "^", "^:delegation",
    "^:private", "^{:a 1}", ":remote", ":local", '"m"', "#_", "#|", "|#", ";", ";c\n", "\n",
    " ", ",", "1", "-2", "1.5", "-2.5e3", "1.", ".5", "0x1F", "1/0", "1/2", "##NaN", "##Nope",
    '"s\\n"', '"\\q"', '"\\u00e9"', '"\\ud800"', '"', ":k", ":a/", ":a:b", "::a", ":", ":/x",
    "x:", "y:int", "nil", "true", "x", "ns/name", "a#b", "é", "١٢", "%", "%1", "&", "+", "-",
    "->", "@", "\\", "#", "#x", "550e8400-e29b-41d4-a716-446655440000", "##Inf", "##-Inf",
    "##Infx", "0o17", "0o8", "0b102", "0xFg", "1/00", "1/007", "1e5", ".5e3", "-.5", "+.5",
    "^:delegation", "^ :k", "{", "(", "[", "#{", "]", ")", "}", "^{:a 1}", "^:a",
])
_rtfs_soup = st.lists(_DIFF_TOKENS, max_size=60).map(lambda ts: " ".join(ts))
_rtfs_glued = st.lists(_DIFF_TOKENS, max_size=60).map("".join)


def _built(text: str) -> list:
    """Every top-level form built by `Reader` as it comes (the reference), or its error."""
    reader = Reader(text)
    out: list = []
    while True:
        token = None
        start = reader.pos
        try:
            token = reader.peek_token()
            if token is None:
                return out
            start = token[2]
            out.append(reader.read_form())
        except RtfsSyntaxError as err:
            if token is not None and token[0] == "close":
                reader.pos = start + 1
            else:
                reader.skip_to_form_end(start)
            out.append(err)


def _outcome(item):
    if isinstance(item, RtfsSyntaxError):
        return ("error", item.message, item.line, item.col)
    return ("form", item)


def _same_as_built(text: str) -> None:
    expected = [_outcome(item) for item in _built(text)]
    for plain in (False, True):
        assert [_outcome(item) for item in read_each(text, use_plain=plain)] == expected, plain
        errors = [e for e in expected if e[0] == "error"]
        if errors:
            with pytest.raises(RtfsSyntaxError) as info:
                read(text, use_plain=plain)
            assert _outcome(info.value) == errors[0]
        else:
            forms = read(text, use_plain=plain)
            assert [("form", f) for f in forms] == expected
            assert forms == [f for _, f in expected]


@settings(max_examples=int(os.environ.get("RTFS_FUZZ_EXAMPLES", "400")), deadline=None)
@given(st.one_of(_rtfs_soup, _rtfs_glued))
def test_checking_first_gives_the_forms_and_errors_building_gives(text):
    _same_as_built(text)


@pytest.mark.parametrize("text", [
    "(do (f x) [1 2.5 :k \"s\"] {:a (g)} #{x} #(+ % 1))\n(+ 1 2)",
    "((((((((x))))))))", "[" * 127 + "]" * 127, "(" * 129 + ")" * 129,
    "{:a 1 :b}", "{:a 1 (f) 2 :c}", "[1 2 #_ 3]", "(f #_ #_ a b c)", "{:a #_ :b 1}",
    "(f ^:x [1] ^{:y 2} (g) ^:delegation :local)", "(f ^:x ^:delegation :local)",
    "[:a/ 1]", "[:ok :a:b]", "(f \"\\u0041\\n\" \"\\x\")", "(f ; comment )\n x)",
    "#| c |# (f #| (( |# x)", "(f 1.5e3 0x10 1/2 -0.5 +1 -x +)", "(let [x:int 1] x)",
    "[é ١٢ a#b x'] {:k 'v}", "(f) ) (g)", "(f]", "(f \"unterminated",
    "(f (g #_ x y) #| c |# z)", "(f #| a #| nested |# b |# x)", "(f (g #_ :k/ y))",
    "[(a ^{:doc \"d\"} [b])]", "(f ^{:a (g)} x)", "(f ^{:a 1} ^:b [c])", "(f #_ (g (h x)))",
    "(f (g #| ) |# x))", "(f (g \"(\" (h ;)\n x)))", "(a (b (c (d (e 1 -2 x)))))",
    "(a (b (c (d (e :k)))))", "(a (b (c (d (e \"s\")))))", "(a (b (c (d (e)]))))",
    '(f "\\ud83d\\ude00")', '(f "\\udc00")', '(f "a\\\\ud800")', '(f "\\ud800\\ud800")',
    '(f "\\ud800" "\\q")', '(f "\\u12")', '(f "\\ud83d\\ude00 \\u00e9\\n\\\\")',
    "(a (b (c (d (e (f (g x y) z) (h)))))) (i)", "(a (b (c (d (e (f (g x :a/)))))))",
    "(a (b (c (d (e (f (g x]))))))", "(a (b (c (d (e (f (g x))))))", "(a (b (c (d (e (f 'g)))))))",
])
def test_checking_first_agrees_on_chosen_shapes(text):
    _same_as_built(text)


@pytest.mark.parametrize("levels", range(112, 130))
def test_checking_first_agrees_near_the_nesting_bound(levels):
    inner = "(a '(b ^:m [c #_ (d) {:k ~@[e]}]) `#{f})"
    _same_as_built("(" * levels + inner + ")" * levels)
    _same_as_built("[" * levels + "#_ " + inner + "x" + "]" * levels)


def test_checking_first_agrees_on_every_corpus_program(corpus):
    programs = sorted(corpus.glob("*.rtfs"))
    assert programs
    for program in programs:
        _same_as_built(program.read_text(encoding="utf-8"))


def test_forms_found_again_in_blocks_come_out_as_built():
    units = ["(+ 1 2)", "x", ":k", '"s"', "[1 2]", "#_ (skip) (f\n  y)", "'q", "{:a 1}",
             "(g ; c\n)", "#(* % 2)", "^:m (h)"]
    text = "\n".join(units[i % len(units)] + " " * (i % 3) for i in range(300)) + "\n(z"
    with pytest.raises(RtfsSyntaxError):
        read(text, use_plain=True)
    text = text[:-3]
    _same_as_built(text)
    forms, built = read(text, use_plain=True), _built(text)
    assert len(forms) == len(built) == 300
    for index in (299, 0, 64, 63, 200, 5, -1, -300):  # any order: a block is found again
        assert forms[index] == built[index]
    assert forms[10:140:7] == built[10:140:7]
    with pytest.raises(IndexError):
        forms[300]
