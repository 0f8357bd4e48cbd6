"""Plainly valid RTFS text: patterns that recognise many forms in one match, in C.

`rtfs.reader` checks a text token by token with `rtfs.builder.Reader`'s own code; these
patterns let it move past long runs of text that cannot hold an error without a Python step
per token. They accept only text that `Reader` reads without error, cut into the same tokens
(every atom ends where the token pattern ends it), so that checking gives the same result
whether a pattern or the token path takes a piece of text:

- symbols of the `sym` token (valid by that pattern), with a type annotation of the same
  kind, and keywords with no `:` inside and no `/` at the end;
- integers, decimal and exponent notation, radix integers with valid digits, ratios with a
  non-zero denominator, `##Inf` `##-Inf` `##NaN`;
- strings whose escapes are all one-character ones;
- up to two quote, syntax-quote, unquote or `^:keyword` prefixes before an item (not
  `^:delegation`: it starts a hint), and `^{...}` (of keywords to simple atoms) before the
  outermost items;
- collections of such items nested at most `LEVELS` deep (a map of pairs whose keys are
  atoms), with blanks, line comments and block comments (none nested) between items, and
  `#_` with what it drops: a name inside any collection, an item inside the collection
  being checked and before a top-level form.

Everything else (block comments, `^{...}` and hints, tagged literals, `\\u` escapes, deeper
nesting, any fault) is left to the token path. Each prefix, `#_` and collection adds one to
the depth `Reader` counts; `DEPTH_MARGIN` bounds what an item can add, so a caller uses the
patterns only where that much depth is left.
"""

from __future__ import annotations

import re
from functools import cache
from itertools import accumulate, islice
from typing import NamedTuple

from rtfs.builder import _D

__all__ = ["BLOCK_FORMS", "DEPTH_MARGIN", "LEVELS", "Patterns", "blanks", "list_end", "patterns"]

BLOCK_FORMS = 64  # top-level forms that `Patterns.block` matches at once
LEVELS = 2  # collections nested this deep inside an item are matched at once
DEPTH_MARGIN = (LEVELS + 1) * 4  # a level adds at most: the collection, two prefixes, `#_`

_END = r"(?![^" + _D + r"])"  # where the token pattern ends an atom
# blanks, a line comment, a block comment with none nested in it
_SEP = r"(?:[\s,]++|;[^\n]*+|\#\|(?:[^|#]++|\|(?!\#)|\#(?!\|))*+\|\#)"
_EXP = r"(?:[eE][+\-]?[0-9]++)?"
_KEYWORD = r":[^" + _D + r":/][^" + _D + r":]*+(?<!/)" + _END
_STRING = r'"[^"\\]*+(?:\\[ntr"\\0bf][^"\\]*+)*+"'
_ATOM = (
    r"(?:(?:(?:[^" + _D + r"#'\d:/+\-.]|[+\-](?![\d.]))[^" + _D + r":]*+"  # the `sym` token
    r"(?::(?:[^" + _D + r"\d:/][^" + _D + r":]*+)?)?"  # and a type annotation (`x:int`, `x:`)
    r"|[+\-]?(?:0[xX][0-9a-fA-F]++|0[oO][0-7]++|0[bB][01]++|[0-9]++/0*+[1-9][0-9]*+"
    r"|[0-9]++(?:\.[0-9]++)?" + _EXP + r"|\.[0-9]++" + _EXP + r"))" + _END
    + r"|" + _KEYWORD
    + r"|##(?:-?Inf|NaN)(?![-\w])"
    + r"|" + _STRING + ")"
)
_NAME = (r"(?:(?:[^" + _D + r"#'\d:/+\-.]|[+\-](?![\d.]))[^" + _D + r":]*+" + _END + "|"
         + _KEYWORD + ")")  # a symbol of the `sym` token or a keyword
_META_VALUE = r"(?:" + _KEYWORD + "|" + _STRING + r"|(?:true|false|nil|[0-9]++)" + _END + ")"
_META_MAP = (r"\{(?:" + _SEP + r"*+" + _KEYWORD + _SEP + r"*+" + _META_VALUE + r")*+" + _SEP
             + r"*+\}")
_META_KEYWORD = r"\^" + _SEP + r"*+(?!:delegation" + _END + r")" + _KEYWORD
_PREFIX = r"(?:['`]|~@?|" + _META_KEYWORD + ")"
_OUTER_PREFIX = r"(?:['`]|~@?|" + _META_KEYWORD + r"|\^" + _SEP + r"*+" + _META_MAP + ")"


_KEY = _ATOM  # a map key that a pattern takes


def _prefixed(item: str, prefix: str = _PREFIX) -> str:
    return "(?:" + prefix + _SEP + "*+){0,2}+" + item


def _collections(item: str) -> str:
    """A list, `#(...)`, vector, set or map of `item`s (a map's keys are atoms)."""
    sep = "(?:" + _SEP + "|#_" + _SEP + "*+" + _NAME + ")"  # and `#_` dropping a name
    many = "(?:" + sep + "|" + item + ")*+"  # an item never starts as a blank does
    pairs = "(?:" + sep + "*+" + _KEY + sep + "*+" + item + ")*+" + sep + "*+"
    return r"(?:#?\(" + many + r"\)|\[" + many + r"\]|#\{" + many + r"\}|\{" + pairs + r"\})"


def _item(levels: int) -> str:
    """A plain item: an atom or a collection of items nested at most `levels` deep."""
    item = _prefixed(_ATOM)
    for level in range(levels):
        prefix = _OUTER_PREFIX if level == levels - 1 else _PREFIX  # `^{...}` outermost only
        item = _prefixed("(?:" + _ATOM + "|" + _collections(item) + ")", prefix)
    return item


class Patterns(NamedTuple):
    top: re.Pattern[str]  # blanks, then one plain top-level form (group 1)
    block: re.Pattern[str]  # `BLOCK_FORMS` plain top-level forms
    items: re.Pattern[str]  # plain items of a list, vector or set (and what is between)
    pairs: re.Pattern[str]  # plain pairs of items of a map (the count stays even)


@cache
def patterns() -> Patterns:
    """The patterns (compiled on first use: about a tenth of a second)."""
    item = _item(LEVELS)
    sep = "(?:" + _SEP + "|#_" + _SEP + "*+" + _item(LEVELS - 1) + ")"
    dropped = "#_" + _SEP + "*+" + _item(LEVELS - 1) + _SEP + "*+"
    top = "(?:" + dropped + ")*+" + item
    return Patterns(re.compile(_SEP + "*+(" + top + ")"),
                    re.compile("(?:" + _SEP + "*+" + top + "){" + str(BLOCK_FORMS) + "}"),
                    re.compile("(?:" + sep + "|" + item + ")*+"),
                    re.compile("(?:" + sep + "*+" + _KEY + sep + "*+" + item + ")*+"))


# -- lists nested deeper than the patterns reach: counted -----------------------------------
# A run of parentheses, blanks and the `sym` and `int` tokens (valid by their patterns; no
# string or comment, which could hold a parenthesis) is valid where its parentheses balance.
_RUN_ITEM = (r"(?:[()]|[\s,]++|(?:(?:[^" + _D + r"#'\d:/+\-.]|[+\-](?![\d.]))[^" + _D
             + r":]*+|[+\-]?\d++)" + _END + ")")
# Runs of 32 tokens, then twice as long each time: what is looked at past the end of a list
# stays within its own length.
_RUNS = tuple(re.compile(_RUN_ITEM + "{1,%d}+" % (32 << k)) for k in range(8))
_NOT_PAREN = re.compile(r"[^()]++")
_PAREN = re.compile(r"[()]")
_STEP = {"(": 1, ")": -1}


def list_end(text: str, start: int, levels_left: int) -> tuple[int, int]:
    """The list whose `(` is at `start`, if it is such a run: (the offset after its `)`, or
    -1 when it is not, nests deeper than `levels_left` or does not close in the run; where
    the run ended)."""
    pos, level, runs = start, 0, 0
    while True:
        found = _RUNS[min(runs, len(_RUNS) - 1)].match(text, pos)
        if found is None:
            return -1, pos
        end = found.end()
        steps = map(_STEP.__getitem__, _NOT_PAREN.sub("", text[pos:end]))
        nesting = list(accumulate(steps, initial=level))
        if 0 in nesting[1:]:
            closing = nesting.index(0, 1)
            if max(nesting[:closing]) > levels_left:
                return -1, end
            paren = next(islice(_PAREN.finditer(text, pos, end), closing - 1, None))
            return paren.end(), end
        if max(nesting) > levels_left:
            return -1, end
        level, pos, runs = nesting[-1], end, runs + 1


def blanks() -> re.Pattern[str]:
    """Blanks and comments as the patterns skip them before a top-level form."""
    return re.compile(_SEP + "*+")
