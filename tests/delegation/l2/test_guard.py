"""The lexical guard: what must never share an answer, and what may be compared by cosine."""

from __future__ import annotations

import pytest

from delegation.l2.guard import features, guard, normalize, tokenize


def refusal(a: str, b: str) -> str | None:
    result = guard(features(a), features(b))
    reverse = guard(features(b), features(a))
    assert _rule(result) == _rule(reverse), "the guard must be symmetric"
    return result


@pytest.mark.parametrize(("a", "b"), [
    ("How do I update my payment card?", "how do i update my payment card"),
    ("What are your delivery options?", "WHAT ARE YOUR DELIVERY OPTIONS?"),
    ("Where do I send my meter reading?", "   Where do I send my meter reading?   "),
    ("What's the boiling point?", "whats the boiling point"),
    ("Can I freeze my membership?", "Can I freeze my membership!?"),
    ("Ｆｕｌｌｗｉｄｔｈ text", "fullwidth TEXT"),  # NFKC
])
def test_normalisation_makes_trivial_variants_equal(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Transfer 3.5 GBP", "Transfer 35 GBP"),
    ("Is it C?", "Is it C++?"),
    ("Call 555-1234", "Call 555 1234 now"),
])
def test_normalisation_keeps_what_changes_meaning(a: str, b: str) -> None:
    assert normalize(a) != normalize(b)


def test_tokens_keep_numbers_and_symbols() -> None:
    assert tokenize("Send £1,000.50 to Bob's account, 50% now!") == [
        "send", "£", "1,000.50", "to", "bobs", "account", "50", "%", "now"]


@pytest.mark.parametrize(("a", "b", "reason"), [
    # one number
    ("Track order 48213", "Track order 48231", "numbers differ"),
    ("How much is a 23kg checked bag?", "How much is a 32kg checked bag?", "numbers differ"),
    ("What happened in 1066?", "What happened in 1666?", "numbers differ"),
    ("Book a table for two", "Book a table for three", "numbers differ"),
    ("Book a table for two", "Book a table for 3", "numbers differ"),
    ("Remind me in twenty minutes", "Remind me in 25 minutes", "numbers differ"),
    ("Transfer 1,000 dollars", "Transfer 1,500 dollars", "numbers differ"),
    ("Is the 4g plan unlimited?", "Is the 5g plan unlimited?", "numbers differ"),
    # dates and times
    ("Is the clinic open on Monday?", "Is the clinic open on Tuesday?", "dates differ"),
    ("What's the weather today?", "What's the weather tomorrow?", "dates differ"),
    ("Remind me at 7am", "Remind me at 7pm", "dates differ"),
    ("Deliveries in June", "Deliveries in July", "dates differ"),
    # currencies
    ("Convert 100 USD to EUR", "Convert 100 USD to GBP", "currencies differ"),
    ("What does it cost in dollars?", "What does it cost in euros?", "currencies differ"),
    ("Price in $ please", "Price in € please", "currencies differ"),
    # scripts and languages
    ("How do I reset my password?", "Как сбросить мой пароль?", "scripts differ"),
    ("Where is the station?", "駅はどこですか", "scripts differ"),
    ("How do I reset my password?", "Comment je réinitialise mon mot de passe avec le site ?",
     "languages differ"),
    ("Wie ist das Wetter in Berlin und wo ist der Bahnhof?",
     "Comment est le temps à Berlin et où est la gare ?", "languages differ"),
    # negations
    ("Cancel my subscription", "Don't cancel my subscription", "negation differs"),
    ("Is the deposit refundable?", "Is the deposit non-refundable?", "negation differs"),
    ("Is ibuprofen safe with alcohol?", "Is ibuprofen unsafe with alcohol?", "negation differs"),
    ("Can I bring my dog?", "Can I not bring my dog?", "negation differs"),
    ("I can log in", "I cannot log in", "negation differs"),
    ("How do I turn on two-factor authentication?",
     "How do I turn off two-factor authentication?", "opposites"),
    ("Is the shop open on Sundays?", "Is the shop closed on Sundays?", "opposites"),
    ("Which plans include roaming?", "Which plans exclude roaming?", "opposites"),
    ("How much is delivery for orders under £50?", "How much is delivery for orders over £50?",
     "opposites"),
    # order of the same words, of names
    ("dog bites man", "man bites dog", "the same words in another order"),
    ("Transfer money from savings to checking", "Transfer money from checking to savings",
     "the same words in another order"),
    ("How do I transfer my ISA from Hargreaves Lansdown to Vanguard?",
     "I want to move my Vanguard ISA over to Hargreaves Lansdown, what do I do?",
     "names in another order"),
    # a named entity swapped for another
    ("What are the opening hours of the Camden branch?",
     "What are the opening hours of the Brixton branch?", "different names"),
    ("How do I install Python on Windows?", "How do I install Python on Ubuntu?",
     "different names"),
    # colours
    ("What does the red warning light mean?", "What does the amber warning light mean?",
     "colours differ"),
])
def test_hard_negatives_are_refused(a: str, b: str, reason: str) -> None:
    found = refusal(a, b)
    assert found is not None and found.startswith(reason), found


@pytest.mark.parametrize(("a", "b"), [
    ("How do I cancel my subscription?", "I'd like to end my subscription, how do I do that?"),
    ("Do you accept PayPal?", "Can I pay with PayPal?"),
    ("Is the clinic open on Sundays?", "Can I come to the clinic on a Sunday?"),
    ("What's the capital of Australia?", "Which city is Australia's capital?"),
    ("Who is the CEO of Microsoft?", "Who runs Microsoft?"),
    ("What's the interest rate on a 2-year fixed mortgage?",
     "What rate do you offer on two-year fixes?"),
    ("How much is a return ticket from London to Manchester?",
     "What's the price of a London to Manchester return?"),
    # a clause moved to the front before a comma is the same question
    ("How do I merge two cells in a spreadsheet?", "In a spreadsheet, how do I merge two cells?"),
    ("How do I turn off auto-renewal for my subscription?",
     "For my subscription, how do I turn off auto-renewal?"),
    ("Hi, quick one: how do I order a replacement debit card?",
     "How do I order a replacement debit card?"),
])
def test_paraphrases_pass_to_the_cosine(a: str, b: str) -> None:
    assert refusal(a, b) is None


def test_features_are_computed_once_per_text() -> None:
    assert features("How do I reset it?") is features("How do I reset it?")


def test_reason_names_what_differs() -> None:
    assert refusal("Track order 48213", "Track order 48231") == "numbers differ (48213 / 48231)"
    assert refusal("Deliveries on Monday", "Deliveries on Friday") == "dates differ (mon / fri)"


def _rule(reason: str | None) -> str | None:
    """The guard's rule name without its detail."""
    return reason.split(" (")[0] if reason else None
