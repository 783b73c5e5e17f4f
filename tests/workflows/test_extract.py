"""A customer's name, read from what they write: in so many words anywhere, or as a bare
answer when the agent asked for it; never from a sentence that only starts like one."""

from __future__ import annotations

import pytest

from appliance.workflows.extract import formatted, person_name
from appliance.workflows.schema import SlotFormat


@pytest.mark.parametrize(("text", "asked", "name"), [
    ("my name is yusuf rossi", False, ("Yusuf", "Rossi")),
    ("Hi, this is Olivia Ito, 80218", False, ("Olivia", "Ito")),
    ("it's Olivia Ito", False, ("Olivia", "Ito")),
    ("I am Yusuf Rossi and my zip is 19122", False, ("Yusuf", "Rossi")),
    ("Olivia Ito 80218", True, ("Olivia", "Ito")),
    ("olivia ito", True, ("Olivia", "Ito")),
    ("olivia ito", False, None),
])
def test_it_reads_a_name_given_as_one(text: str, asked: bool, name: tuple[str, str]) -> None:
    assert person_name(text, asked=asked) == name


@pytest.mark.parametrize("text", [
    "my package says delivered but it's not here. order #W1847265",
    "you told me 5-7 business days last time too. it's been way more than that",
    "I'M SO DONE WITH THIS. worst customer service ive ever dealt with",
    "I'm looking for my order",
    "it is fine thanks",
    "I already asked the neighbours and checked the mailroom, nothing",
])
def test_a_sentence_that_starts_like_a_name_is_not_one(text: str) -> None:
    assert person_name(text, asked=True) is None


@pytest.mark.parametrize(("text", "name"), [
    ("Ugh. Kenji Tanaka 07/22/1985 Phone: 206-555-0293 Can we hurry up?", ("Kenji", "Tanaka")),
    ("Of course. Kenji Tanaka 07/22/1985 It's kenji.tanaka@outlook.com.", ("Kenji", "Tanaka")),
    ("J. Doe, 80218", ("J", "Doe")),
])
def test_a_bare_name_is_read_from_the_sentence_it_ends(text: str, name: tuple[str, str]) -> None:
    """Words before it in another sentence ("Ugh.", "Of course.") are not the name (what a
    simulated angry or chatty customer showed)."""
    assert person_name(text, asked=True) == name


def test_the_bare_value_answers_its_formats_question() -> None:
    """Asked for a card's last four digits, "4821" or "It's 4821." is the answer; the same
    digits inside a date or a phone number are not, and unasked a bare number is nothing."""
    last_four = SlotFormat(description="a card's last four digits", pattern="^[0-9]{4}$",
                           find=r"ending in (\d{4})\b")
    assert [formatted(last_four, text, asked=True) for text in (
        "4821", "It's 4821.", "noticed 11/12/2025", "call 206-555-0293")] == [
        "4821", "4821", None, None]
    assert formatted(last_four, "4821") is None
