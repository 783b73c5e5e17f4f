"""The sentence gate between a streaming model and the customer."""

from __future__ import annotations

from appliance.agent.draft import SentenceGate


def released(gate: SentenceGate, *chunks: str) -> str:
    pieces = [piece for chunk in chunks for piece in gate.feed(chunk)]
    return "".join([*pieces, *gate.flush()])


def test_it_releases_whole_sentences_that_pass_the_check() -> None:
    gate = SentenceGate(lambda sentence: sentence)

    assert released(gate, "Returns are free. You have ", "30 days to send it back.") == (
        "Returns are free. You have 30 days to send it back.")
    assert gate.text == "Returns are free. You have 30 days to send it back."


def test_a_sentence_that_fails_the_check_stops_the_draft() -> None:
    gate = SentenceGate(lambda sentence: None if "100" in sentence else sentence)

    assert released(gate, "Returns are free. You have 100 days. Bye.") == "Returns are free."
    assert gate.failed


def test_a_model_that_starts_repeating_itself_is_cut_at_the_loop() -> None:
    gate = SentenceGate(lambda sentence: sentence)

    text = released(gate, "Sorry about that. I can help. Sorry ", "about that! I can help.")

    assert text == "Sorry about that. I can help."
    assert gate.ended and not gate.failed


def test_an_unfinished_last_sentence_of_a_draft_cut_off_is_dropped() -> None:
    gate = SentenceGate(lambda sentence: sentence)
    pieces = list(gate.feed("Refunds go back to your card. They usually take 5 to"))

    assert "".join([*pieces, *gate.flush(cut=True)]) == "Refunds go back to your card."


def test_a_finished_last_sentence_of_a_draft_cut_off_is_kept() -> None:
    gate = SentenceGate(lambda sentence: sentence)
    pieces = list(gate.feed('Refunds go back to your card. They take "5 to 7 days."'))

    assert "".join([*pieces, *gate.flush(cut=True)]) == (
        'Refunds go back to your card. They take "5 to 7 days."')


def test_a_draft_that_ended_by_itself_keeps_a_last_sentence_without_a_period() -> None:
    gate = SentenceGate(lambda sentence: sentence)
    pieces = list(gate.feed("Refunds go back to your card. Happy to help"))

    assert "".join([*pieces, *gate.flush()]) == "Refunds go back to your card. Happy to help"


def _substance(sentence: str) -> bool:
    return "30 days" in sentence


def test_pleasantries_wait_for_a_sentence_with_substance_and_go_out_with_it() -> None:
    gate = SentenceGate(lambda sentence: sentence, _substance)

    assert list(gate.feed("Absolutely, happy to help. ")) == []  # held, not yet released
    assert released(gate, "You have 30 days to send it back. Bye now.") == (
        "Absolutely, happy to help. You have 30 days to send it back. Bye now.")
    assert not gate.failed


def test_a_draft_that_says_nothing_of_substance_fails() -> None:
    gate = SentenceGate(lambda sentence: sentence, _substance)

    assert released(gate, "Absolutely, happy to help. What would you like to change?") == ""
    assert gate.failed and gate.text == ""
    assert gate.held == "Absolutely, happy to help. What would you like to change?"


def test_an_empty_draft_fails_when_substance_is_required() -> None:
    gate = SentenceGate(lambda sentence: sentence, _substance)

    assert released(gate, "") == ""
    assert gate.failed
