from __future__ import annotations

import math
import pickle

import pytest

from rtfs.errors import ALL_ERRORS, RtfsError, UserError
from rtfs.printer import to_display, to_readable
from rtfs.reader import form_to_value, read
from rtfs.values import Keyword, Map, RList, Symbol


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_every_error_survives_pickle(cls):
    err = cls("went wrong", 3, 7)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and (back.message, back.line, back.col) == ("went wrong", 3, 7)
    assert str(back) == "went wrong (3:7)"
    assert isinstance(back, RtfsError)


def test_user_error_keeps_the_thrown_value_through_pickle():
    err = UserError("thrown", 1, 2, Map({Keyword("code"): (1, 2)}))
    assert pickle.loads(pickle.dumps(err)).value == Map({Keyword("code"): (1, 2)})


def test_errors_inherit_the_matching_builtin():
    from rtfs.errors import ArityError, RtfsSyntaxError, UnboundSymbolError

    assert issubclass(RtfsSyntaxError, SyntaxError) and issubclass(ArityError, TypeError)
    assert issubclass(UnboundSymbolError, NameError)


def test_position_is_added_once():
    err = RtfsError("m").at(4, 5)
    assert (err.line, err.col) == (4, 5)
    assert err.at(9, 9) is err


@pytest.mark.parametrize("value, text", [
    (None, "nil"), (True, "true"), (42, "42"), (4.0, "4.0"), (1e20, "1e+20"),
    (math.inf, "##Inf"), (-math.inf, "##-Inf"), (math.nan, "##NaN"), ("a\"b\n", '"a\\"b\\n"'),
    (Keyword("ns/k"), ":ns/k"), (Symbol("s"), "s"), ((1, (2,)), "[1 [2]]"),
    (RList((1, 2)), "(1 2)"), (Map({Keyword("a"): 1, "b": None}), '{:a 1 "b" nil}'),
    (frozenset({10, 2, 1}), "#{1 2 10}"),
])
def test_readable_printing(value, text):
    assert to_readable(value) == text


@pytest.mark.parametrize("text", [
    '[1 2.5 "s\\t" :k sym nil true {:a [1 #{2}]} (quote x)]', "{[1 2] {:n -0.5}}",
])
def test_printing_reads_back_to_an_equal_value(text):
    value = form_to_value(read(text)[0])
    assert form_to_value(read(to_readable(value))[0]) == value


def test_display_leaves_top_level_strings_bare():
    assert to_display("hi") == "hi"
    assert to_display(("hi",)) == '["hi"]'


def test_deep_values_print_without_recursion_errors():
    value = ()
    for _ in range(5000):
        value = (value,)
    assert to_readable(value).startswith("[[[[")
