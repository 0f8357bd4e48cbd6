"""Normalisation and the lexical guard in front of the semantic tier.

Embeddings score near-identical texts that mean different things (one number, one negation,
two entities swapped) at cosine 0.99 and above, higher than most true paraphrases. The guard
catches those by construction, before any threshold is consulted:

- `normalize(text)`: NFKC, case-folded, punctuation dropped, whitespace collapsed. Two inputs
  equal after normalisation are the same input (tier 0, an exact hit).
- `guard(a, b)` on two `Features` returns None when the semantic tier may compare the two
  texts, else the reason they must not share an answer: different numbers (digits or number
  words), dates (weekdays, months, today/tomorrow), currencies, scripts or languages,
  negations (counts of "not", "n't", "never", ...; a word against its un-/dis-/non- form;
  a short list of opposites such as on/off, open/closed, include/exclude), the same words in
  another order, named entities in another order, or a named entity swapped for another.

The guard is deliberately blunt: it may refuse a true paraphrase ("two weeks" / "14 days"),
which costs a hit, but what it lets through is only ever compared by cosine. Its rules are
versioned (`GUARD_VERSION`) because a calibration measured with one set of rules does not
hold for another.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

GUARD_VERSION = 1
"""Bump when a rule changes: calibrations made with another version are not used."""

_TOKEN = re.compile(r"[^\W_]+(?:['’.,\-][^\W_]+)*|[$€£¥₹₩₽₺₪₫฿₦₱¢%+#&@]")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_NAME_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[.!?:;]")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")

_NUMBER_WORDS = {
    "zero": 0,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "million": 1_000_000,
    "billion": 1_000_000_000,
    "dozen": 12,
    "first": 1,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "twice": 2,
    "half": 0.5,
}
# "one" and "second" are left out: far more often a pronoun ("a quick one") and a unit of time
# ("second-hand", "a second") than a number, and a refused paraphrase costs a hit.
_TENS = {20, 30, 40, 50, 60, 70, 80, 90}
_MULTIPLIERS = {100, 1000, 1_000_000, 1_000_000_000}

# "may" and "march" are verbs far more often than months; "sun"/"sat" are words too.
_CALENDAR = {
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
    "weekday": "weekday",
    "weekend": "weekend",
    "january": "jan",
    "february": "feb",
    "april": "apr",
    "june": "jun",
    "july": "jul",
    "august": "aug",
    "september": "sep",
    "october": "oct",
    "november": "nov",
    "december": "dec",
    "jan": "jan",
    "feb": "feb",
    "apr": "apr",
    "jun": "jun",
    "jul": "jul",
    "aug": "aug",
    "sept": "sep",
    "oct": "oct",
    "nov": "nov",
    "dec": "dec",
    "today": "today",
    "tomorrow": "tomorrow",
    "yesterday": "yesterday",
    "tonight": "tonight",
    "morning": "morning",
    "afternoon": "afternoon",
    "evening": "evening",
    "am": "am",
    "pm": "pm",
    "a.m": "am",
    "p.m": "pm",
}
_AM_PM = re.compile(r"\d+(am|pm)")

_COLOURS = frozenset(
    [
        "red",
        "blue",
        "green",
        "yellow",
        "orange",
        "purple",
        "pink",
        "black",
        "white",
        "grey",
        "gray",
        "brown",
        "amber",
        "silver",
        "gold",
        "violet",
    ]
)

_CURRENCIES = {
    "$": "usd",
    "dollar": "usd",
    "dollars": "usd",
    "usd": "usd",
    "buck": "usd",
    "bucks": "usd",
    "€": "eur",
    "euro": "eur",
    "euros": "eur",
    "eur": "eur",
    "£": "gbp",
    "gbp": "gbp",
    "pound": "gbp",
    "pounds": "gbp",
    "sterling": "gbp",
    "quid": "gbp",
    "pence": "gbp",
    "¥": "jpy",
    "yen": "jpy",
    "jpy": "jpy",
    "yuan": "cny",
    "rmb": "cny",
    "cny": "cny",
    "₹": "inr",
    "rupee": "inr",
    "rupees": "inr",
    "inr": "inr",
    "₩": "krw",
    "won": "krw",
    "krw": "krw",
    "₽": "rub",
    "rouble": "rub",
    "roubles": "rub",
    "ruble": "rub",
    "rubles": "rub",
    "rub": "rub",
    "₺": "try",
    "lira": "try",
    "₪": "ils",
    "shekel": "ils",
    "shekels": "ils",
    "₫": "vnd",
    "฿": "thb",
    "baht": "thb",
    "₦": "ngn",
    "naira": "ngn",
    "₱": "php",
    "peso": "mxn",
    "pesos": "mxn",
    "mxn": "mxn",
    "¢": "cent",
    "cent": "cent",
    "cents": "cent",
    "cad": "cad",
    "aud": "aud",
    "nzd": "nzd",
    "chf": "chf",
    "franc": "chf",
    "francs": "chf",
    "sek": "sek",
    "nok": "nok",
    "dkk": "dkk",
    "krona": "sek",
    "krone": "nok",
    "btc": "btc",
    "bitcoin": "btc",
    "eth": "eth",
    "ether": "eth",
}

_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "non",
        "never",
        "none",
        "nothing",
        "nobody",
        "nowhere",
        "neither",
        "nor",
        "without",
        "cannot",
        "dont",
        "doesnt",
        "didnt",
        "cant",
        "wont",
        "wouldnt",
        "shouldnt",
        "couldnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "havent",
        "hasnt",
        "hadnt",
        "mustnt",
        "neednt",
        "aint",
        "shant",
        "mightnt",
    }
)
_NEGATING_PREFIXES = ("un", "dis", "non", "in", "im", "il", "ir")

# Pairs of opposites; a text holding one side and not the other, against a text holding the
# other side and not the first, is a negation of it.
_OPPOSITES = (
    ("on", "off"),
    ("open", "closed"),
    ("open", "close"),
    ("opening", "closing"),
    ("enable", "disable"),
    ("include", "exclude"),
    ("included", "excluded"),
    ("including", "excluding"),
    ("accept", "decline"),
    ("accept", "reject"),
    ("allow", "ban"),
    ("allowed", "banned"),
    ("allowed", "forbidden"),
    ("allowed", "prohibited"),
    ("permitted", "prohibited"),
    ("add", "remove"),
    ("increase", "decrease"),
    ("increase", "reduce"),
    ("raise", "lower"),
    ("before", "after"),
    ("buy", "sell"),
    ("buying", "selling"),
    ("import", "export"),
    ("upload", "download"),
    ("start", "stop"),
    ("start", "end"),
    ("arrive", "depart"),
    ("arrival", "departure"),
    ("arrivals", "departures"),
    ("upgrade", "downgrade"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("more", "less"),
    ("most", "least"),
    ("highest", "lowest"),
    ("higher", "lower"),
    ("early", "late"),
    ("earliest", "latest"),
    ("first", "last"),
    ("best", "worst"),
    ("safe", "dangerous"),
    ("true", "false"),
    ("eat", "avoid"),
    ("above", "below"),
    ("inside", "outside"),
    ("in", "out"),
    ("credit", "debit"),
    ("deposit", "withdraw"),
    ("send", "receive"),
    ("sent", "received"),
    ("inbound", "outbound"),
    ("incoming", "outgoing"),
    ("join", "leave"),
    ("win", "lose"),
    ("pass", "fail"),
    ("plus", "minus"),
    ("up", "down"),
    ("left", "right"),
    ("north", "south"),
    ("east", "west"),
    ("men", "women"),
    ("male", "female"),
    ("cheap", "expensive"),
    ("cheapest", "dearest"),
    ("fast", "slow"),
    ("hot", "cold"),
    ("with", "without"),
    ("can", "cannot"),
    ("always", "never"),
    ("all", "none"),
    ("under", "over"),
    ("within", "after"),
    ("full", "part"),
    ("adult", "child"),
    ("adults", "children"),
    ("adults", "kids"),
    ("mens", "womens"),
    ("benefits", "drawbacks"),
    ("advantages", "drawbacks"),
    ("pros", "cons"),
    ("approved", "rejected"),
    ("approve", "reject"),
    ("compulsory", "optional"),
    ("mandatory", "optional"),
    ("required", "optional"),
    ("increased", "decreased"),
    ("rising", "falling"),
    ("domestic", "international"),
    ("home", "abroad"),
    ("landlord", "tenant"),
    ("employer", "employee"),
    ("buyer", "seller"),
    ("import", "export"),
    ("gain", "loss"),
    ("profit", "loss"),
    ("success", "failure"),
    ("valid", "invalid"),
    ("online", "offline"),
)
_OPPOSITE_OF: dict[str, frozenset[str]] = {}
for _x, _y in _OPPOSITES:
    _OPPOSITE_OF[_x] = _OPPOSITE_OF.get(_x, frozenset()) | {_y}
    _OPPOSITE_OF[_y] = _OPPOSITE_OF.get(_y, frozenset()) | {_x}

# Words that mark a Latin-script language and no other of this list (shared ones removed).
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "is",
            "are",
            "what",
            "how",
            "do",
            "does",
            "i",
            "my",
            "you",
            "your",
            "can",
            "to",
            "of",
            "and",
            "it",
            "with",
            "where",
            "when",
            "why",
            "which",
            "this",
            "that",
            "have",
            "has",
            "there",
            "would",
            "should",
            "could",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "les",
            "est",
            "sont",
            "quel",
            "quelle",
            "comment",
            "je",
            "mon",
            "mes",
            "vous",
            "votre",
            "pour",
            "avec",
            "dans",
            "du",
            "des",
            "et",
            "une",
            "qui",
            "où",
            "pas",
            "ne",
            "est-ce",
            "puis-je",
            "mes",
            "leur",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "ist",
            "sind",
            "wie",
            "was",
            "ich",
            "mein",
            "meine",
            "sie",
            "ihr",
            "für",
            "mit",
            "und",
            "ein",
            "eine",
            "nicht",
            "wo",
            "wann",
            "warum",
            "kann",
            "zu",
            "von",
            "den",
            "dem",
            "auf",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "los",
            "las",
            "son",
            "qué",
            "cómo",
            "yo",
            "mis",
            "usted",
            "su",
            "para",
            "con",
            "y",
            "por",
            "dónde",
            "cuándo",
            "puedo",
            "del",
            "lo",
            "tengo",
            "hay",
            "cuánto",
        ]
    ),
    "it": frozenset(
        [
            "il",
            "gli",
            "è",
            "sono",
            "che",
            "come",
            "io",
            "mio",
            "mia",
            "per",
            "e",
            "dove",
            "quando",
            "posso",
            "non",
            "della",
            "sul",
            "quanto",
        ]
    ),
    "pt": frozenset(
        [
            "os",
            "é",
            "são",
            "como",
            "eu",
            "meu",
            "minha",
            "você",
            "para",
            "com",
            "e",
            "uma",
            "onde",
            "quando",
            "posso",
            "não",
            "da",
            "tenho",
            "quanto",
        ]
    ),
    "nl": frozenset(
        [
            "het",
            "een",
            "zijn",
            "wat",
            "hoe",
            "ik",
            "mijn",
            "jij",
            "voor",
            "met",
            "en",
            "waar",
            "wanneer",
            "kan",
            "niet",
            "van",
            "ik",
            "heb",
        ]
    ),
}
_SHARED = {
    w for a in _STOPWORDS for b in _STOPWORDS if a < b for w in _STOPWORDS[a] & _STOPWORDS[b]
}
_MARKERS = {lang: words - _SHARED for lang, words in _STOPWORDS.items()}


@dataclass(frozen=True, slots=True)
class Features:
    """What the guard compares, computed once per text (`features(text)`)."""

    normalized: str
    tokens: tuple[str, ...]
    numbers: tuple[float, ...]
    calendar: frozenset[str]
    colours: frozenset[str]
    currencies: frozenset[str]
    negations: int
    words: frozenset[str]
    stems: frozenset[str]
    seams: frozenset[int]
    script: str | None
    language: str | None
    language_marks: tuple[tuple[str, int], ...]
    names: tuple[str, ...]


def tokenize(text: str) -> list[str]:
    """The text's tokens: NFKC, case-folded, apostrophes dropped inside words."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [t.replace("'", "").replace("’", "") for t in _TOKEN.findall(folded)]


def normalize(text: str) -> str:
    """The text as tier 0 compares it: its tokens joined by single spaces."""
    return " ".join(tokenize(text))


@lru_cache(maxsize=4096)
def features(text: str) -> Features:
    """Everything the guard needs about `text` (cached: lookups repeat texts)."""
    tokens = tuple(tokenize(text))
    parts = [p for t in tokens for p in t.split("-")]
    return Features(
        normalized=" ".join(tokens),
        tokens=tokens,
        numbers=_numbers(parts),
        calendar=_calendar_set(parts),
        colours=frozenset(p for p in parts if p in _COLOURS),
        currencies=frozenset(_CURRENCIES[p] for p in parts if p in _CURRENCIES),
        negations=sum(p in _NEGATIONS for p in parts),
        words=frozenset(parts),
        stems=frozenset(_stem(p) for p in parts),
        seams=_seams(text),
        script=_script(text),
        language=_language(_marks(parts)),
        language_marks=_marks(parts),
        names=tuple(_stem(n) for n in _names(text)),
    )


def guard(a: Features, b: Features) -> str | None:
    """None if the semantic tier may compare `a` and `b`; else why they differ in meaning."""
    for check in _CHECKS:
        reason = check(a, b)
        if reason is not None:
            return reason
    return None


# --- the rules ---------------------------------------------------------------------------


def _check_numbers(a: Features, b: Features) -> str | None:
    if a.numbers != b.numbers:
        return f"numbers differ ({_show(a.numbers)} / {_show(b.numbers)})"
    return None


def _check_calendar(a: Features, b: Features) -> str | None:
    if a.calendar != b.calendar:
        return f"dates differ ({_show(a.calendar)} / {_show(b.calendar)})"
    return None


def _check_colours(a: Features, b: Features) -> str | None:
    if a.colours != b.colours:
        return f"colours differ ({_show(a.colours)} / {_show(b.colours)})"
    return None


def _check_currencies(a: Features, b: Features) -> str | None:
    if a.currencies != b.currencies:
        return f"currencies differ ({_show(a.currencies)} / {_show(b.currencies)})"
    return None


def _check_language(a: Features, b: Features) -> str | None:
    if a.script and b.script and a.script != b.script:
        return f"scripts differ ({a.script.lower()} / {b.script.lower()})"
    if a.language and b.language and a.language != b.language:
        return f"languages differ ({a.language} / {b.language})"
    other = _foreign(a, b) or _foreign(b, a)
    if other:
        return f"languages differ ({other})"
    return None


def _foreign(a: Features, b: Features) -> str | None:
    """`a` is surely in one language and `b` has none of its marks but some of another's."""
    if a.language is None:
        return None
    marks = dict(b.language_marks)
    if marks.get(a.language, 0) == 0 and max(marks.values(), default=0) >= 1:
        return f"{a.language} / {max(marks, key=lambda lang: marks[lang])}"
    return None


def _check_negation(a: Features, b: Features) -> str | None:
    if a.negations != b.negations:
        return f"negation differs ({a.negations} / {b.negations} negating words)"
    flipped = _prefix_flip(a.words, b.words) or _prefix_flip(b.words, a.words)
    if flipped:
        return f"negation differs ({flipped})"
    for word in a.words - b.words:
        for opposite in _OPPOSITE_OF.get(word, ()):
            if opposite in b.words and opposite not in a.words and word not in b.words:
                return f"opposites ({word} / {opposite})"
    return None


def _check_order(a: Features, b: Features) -> str | None:
    reordered = a.tokens != b.tokens and sorted(a.tokens) == sorted(b.tokens)
    if reordered and not (_fronted(a, b) or _fronted(b, a)):
        return "the same words in another order"
    shared = set(a.names) & set(b.names)
    if len(shared) >= 2:
        order_a = [n for n in a.names if n in shared]
        order_b = [n for n in b.names if n in shared]
        if order_a != order_b:
            return f"names in another order ({', '.join(order_a)} / {', '.join(order_b)})"
    only_a = [n for n in a.names if n not in b.stems and n not in shared]
    only_b = [n for n in b.names if n not in a.stems and n not in shared]
    if only_a and only_b:
        return f"different names ({only_a[0]} / {only_b[0]})"
    return None


_CHECKS = (
    _check_numbers,
    _check_calendar,
    _check_colours,
    _check_currencies,
    _check_language,
    _check_negation,
    _check_order,
)


# --- feature extraction ------------------------------------------------------------------


def _fronted(a: Features, b: Features) -> bool:
    """True if `b` is `a` with a trailing clause moved to the front before a comma:
    "how do I merge two cells in a spreadsheet" / "in a spreadsheet, how do I merge two
    cells" (a rotation of the words at a comma of `b`; a swap of two entities is not one)."""
    n = len(a.tokens)
    return any(b.tokens == a.tokens[n - k :] + a.tokens[: n - k] for k in b.seams if 0 < k < n)


def _seams(text: str) -> frozenset[int]:
    """Token positions that follow a comma, colon or semicolon in `text`."""
    seams, count = set(), 0
    folded = unicodedata.normalize("NFKC", text).casefold()
    for match in re.finditer(_TOKEN.pattern + r"|[,;:]", folded):
        if match.group() in ",;:":
            seams.add(count)
        else:
            count += 1
    return frozenset(seams)


def _stem(word: str) -> str:
    """A crude plural/possessive stem, so that "sundays" meets "sunday"."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _numbers(parts: list[str]) -> tuple[float, ...]:
    found: list[float] = []
    pending: float | None = None  # number words combine: "twenty one", "two hundred"
    for part in parts:
        word = _NUMBER_WORDS.get(part)
        if word is not None:
            pending = _combine(pending, word)
            continue
        if pending is not None:
            found.append(pending)
            pending = None
        found.extend(_digit_numbers(part))
    if pending is not None:
        found.append(pending)
    return tuple(sorted(found))


def _combine(pending: float | None, word: float) -> float:
    if pending is None:
        return word
    if word in _MULTIPLIERS:
        return pending * word
    if pending in _TENS and word < 10:
        return pending + word
    if pending >= 100 and word < 100:
        return pending + word
    return word


def _digit_numbers(part: str) -> list[float]:
    out = []
    for match in _DIGITS.findall(part):
        text = match.replace(",", "") if _THOUSANDS.fullmatch(match) else match.replace(",", ".")
        try:
            out.append(float(text))
        except ValueError:  # "1.2.3": a version, compared by its digit groups
            out.extend(float(g) for g in text.split(".") if g)
    return out


def _calendar_set(parts: list[str]) -> frozenset[str]:
    found = {c for p in parts if (c := _calendar(p))}
    found.update(m.group(1) for p in parts if (m := _AM_PM.fullmatch(p)))
    return frozenset(found)


def _calendar(part: str) -> str | None:
    found = _CALENDAR.get(part)
    if found is None and part.endswith("s"):
        found = _CALENDAR.get(part[:-1])
    return found


def _prefix_flip(words: frozenset[str], other: frozenset[str]) -> str | None:
    for word in words - other:
        for prefix in _NEGATING_PREFIXES:
            stem = word[len(prefix) :]
            if word.startswith(prefix) and len(stem) >= 3 and stem in other and stem not in words:
                return f"{word} / {stem}"
    return None


def _script(text: str) -> str | None:
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            script = name.split(" ", 1)[0] if name else "UNKNOWN"
            if script in ("HIRAGANA", "KATAKANA"):
                script = "CJK"  # Japanese mixes kana and kanji in one sentence
            counts[script] = counts.get(script, 0) + 1
    return max(counts, key=lambda s: counts[s]) if counts else None


def _marks(parts: list[str]) -> tuple[tuple[str, int], ...]:
    """How many words of each language's marker list the text holds."""
    return tuple((lang, sum(p in marks for p in parts)) for lang, marks in _MARKERS.items())


def _language(marks: tuple[tuple[str, int], ...]) -> str | None:
    """The text's language when at least two marker words point to it and no tie."""
    ranked = sorted(marks, key=lambda item: -item[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    return best if top >= 2 and top > second else None


def _names(text: str) -> tuple[str, ...]:
    """Capitalised words that do not start a sentence, case-folded, in order."""
    out = []
    start = True
    for raw in _NAME_TOKEN.findall(unicodedata.normalize("NFKC", text)):
        if raw in ".!?:;":
            start = True
            continue
        if not start and raw[0].isupper() and raw != "I" and not raw.startswith("I'"):
            out.append(raw.casefold().replace("'", "").replace("’", ""))
        start = False
    return tuple(out)


def _show(values: object) -> str:
    items = sorted(values, key=str) if isinstance(values, frozenset) else list(values)  # type: ignore[call-overload]
    return ", ".join(_fmt(v) for v in items) or "none"


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
