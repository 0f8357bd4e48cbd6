"""Labelled data: fow-cache's pairs, generated hard negatives, and how the guard meets them."""

from __future__ import annotations

from collections import Counter

import pytest

from delegation.l2.guard import features, guard
from delegation.l2.labelled import (
    change_number,
    fow_cache_pairs,
    hard_negatives,
    negate,
    swap_entities,
)

# Questions in another language than the stored one must not get the stored answer (it is in
# the wrong language). Written for these tests.
LANGUAGE_PAIRS = [
    ("How do I reset my password?", "Comment est-ce que je réinitialise mon mot de passe ?"),
    ("How do I reset my password?", "Wie kann ich mein Passwort zurücksetzen?"),
    ("Where is my order?", "¿Dónde está mi pedido? ¿Cuándo llega?"),
    ("What are your opening hours?", "Quels sont vos horaires d'ouverture pour le magasin ?"),
    ("Can I pay with a credit card?", "Kann ich mit einer Kreditkarte bezahlen und wo?"),
    ("How long does delivery take?", "Quanto tempo leva a entrega para a minha casa?"),
    ("Where is the nearest station?", "Dov'è la stazione più vicina e quando parte il treno?"),
    ("Is breakfast included?", "Is het ontbijt inbegrepen en wat kost het?"),
    ("How do I cancel my order?", "Как отменить мой заказ?"),
    ("How much does shipping cost?", "送料はいくらですか"),
]


def test_fow_cache_pairs_are_installed_and_balanced() -> None:
    pairs = fow_cache_pairs()
    assert len(pairs) == 600
    assert Counter(p.same for _, p in pairs) == {True: 300, False: 300}
    categories = Counter(c for c, _ in pairs)
    assert categories["paraphrase"] == 200 and categories["negation"] == 75


def test_generators() -> None:
    assert change_number("Track order 48213") == "Track order 48214"
    assert change_number("No digits here") is None
    assert negate("Can I return it after 14 days?") == "Can't I return it after 14 days?"
    assert negate("Where is my parcel?") == "Where isn't my parcel?"
    assert negate("Tell me a joke") is None
    assert swap_entities("Trains from London to Manchester") == "Trains from Manchester to London"
    assert swap_entities("London to Paris") is None  # sentence-initial: not surely a name
    kinds = Counter(kind for kind, _ in hard_negatives(["Fly from Paris to Rome on day 3",
                                                        "Is it open?"]))
    assert kinds == {"number": 1, "negation": 1, "entity-order": 1}


def test_the_guard_refuses_every_generated_hard_negative() -> None:
    texts = [t for _, p in fow_cache_pairs() for t in (p.a, p.b)]
    generated = hard_negatives(texts)
    assert len(generated) > 500
    passed = [(kind, p.a, p.b) for kind, p in generated
              if guard(features(p.a), features(p.b)) is None]
    assert passed == []


@pytest.mark.parametrize(("a", "b"), LANGUAGE_PAIRS)
def test_the_guard_refuses_another_language(a: str, b: str) -> None:
    reason = guard(features(a), features(b))
    assert reason is not None and reason.startswith(("languages differ", "scripts differ"))
