"""A customer's name, read from what they write: in so many words anywhere, or as a bare
answer when the agent asked for it; never from a sentence that only starts like one."""

from __future__ import annotations

import pytest

from appliance.workflows.extract import person_name


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
