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
