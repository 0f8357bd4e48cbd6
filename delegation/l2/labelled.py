"""Labelled pairs the project can use: fow-cache's question pairs and generated hard negatives.

`fow_cache_pairs()` reads the 600 customer-service question pairs bundled in the `fow-cache`
package (data by Mabon ap Gwyn, CC BY 4.0; a dev dependency, read where pip installed it,
never copied into this repository): 300 that share an answer (near repeats, paraphrases) and
300 traps (negation, entity swaps, numbers and dates, scope).

`hard_negatives(texts)` makes pairs that must never share an answer from texts that exist:
the same text with one number changed, with its first auxiliary negated, or with two named
entities swapped. They are the cheapest traps for a semantic cache (cosine 0.95-0.99 with
MiniLM) and are labelled by construction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from delegation.l2.errors import PairsFileError
from delegation.l2.pairs import Pair

FOW_CACHE_CREDIT = ("fow-cache question pairs by Mabon ap Gwyn, CC BY 4.0 "
                    "(https://creativecommons.org/licenses/by/4.0/)")

_NEGATABLE = {
    "is": "isn't", "are": "aren't", "can": "can't", "do": "don't", "does": "doesn't",
    "did": "didn't", "will": "won't", "should": "shouldn't", "was": "wasn't",
    "were": "weren't", "has": "hasn't", "have": "haven't", "could": "couldn't",
    "would": "wouldn't",
}
_WORD = re.compile(r"[A-Za-z']+")
_DIGITS = re.compile(r"\d+")
_ENTITY_PAIR = re.compile(r"\b([A-Z][\w'-]*(?: [A-Z][\w'-]*)*) (to|and|or|vs|versus|into|"
                          r"with|than) ([A-Z][\w'-]*(?: [A-Z][\w'-]*)*)\b")


def fow_cache_path() -> Path:
    """The installed `fow_cache/data/pairs.jsonl`.

    Raises:
        PairsFileError: the `fow-cache` package is not installed.
    """
    try:
        root = resources.files("fow_cache")
    except ModuleNotFoundError as e:
        raise PairsFileError("fow_cache/data/pairs.jsonl", None,
                             "the fow-cache package is not installed "
                             "(pip install -e '.[dev]')") from e
    return Path(str(root / "data" / "pairs.jsonl"))


def fow_cache_pairs() -> list[tuple[str, Pair]]:
    """fow-cache's question pairs as `(category, Pair)`, in file order."""
    path = fow_cache_path()
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pair = Pair(row["a"], row["b"], bool(row["same_answer"]))
            out.append((str(row["category"]), pair))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise PairsFileError(str(path), number, f"not a fow-cache pair: {e}") from e
    return out


def hard_negatives(texts: Iterable[str]) -> list[tuple[str, Pair]]:
    """`(kind, Pair(text, changed text, same=False))` for each change that applies to a text;
    kinds are "number", "negation" and "entity-order"."""
    out = []
    for text in dict.fromkeys(texts):
        for kind, change in (("number", change_number), ("negation", negate),
                             ("entity-order", swap_entities)):
            changed = change(text)
            if changed is not None and changed != text:
                out.append((kind, Pair(text, changed, False)))
    return out


def change_number(text: str) -> str | None:
    """`text` with its first number increased by one, or None if it has none."""
    match = _DIGITS.search(text)
    if match is None:
        return None
    return text[:match.start()] + str(int(match.group()) + 1) + text[match.end():]


def negate(text: str) -> str | None:
    """`text` with its first auxiliary verb negated ("Can I" -> "Can't I"), or None."""
    for match in _WORD.finditer(text):
        word = match.group()
        negated = _NEGATABLE.get(word.lower())
        if negated is not None:
            if word[0].isupper():
                negated = negated[0].upper() + negated[1:]
            return text[:match.start()] + negated + text[match.end():]
    return None


def swap_entities(text: str) -> str | None:
    """`text` with two capitalised names around "to", "and", "or", ... swapped, or None."""
    for match in _ENTITY_PAIR.finditer(text):
        first, link, second = match.groups()
        if match.start() == 0 or first == second:  # a sentence-initial word is not a name
            continue
        return text[:match.start()] + f"{second} {link} {first}" + text[match.end():]
    return None
