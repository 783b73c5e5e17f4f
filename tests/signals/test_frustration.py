"""Frustration means frustration: the shipped sentiment model, read as a turn reads it.

Calm, playful and off-topic messages (written here, and public out-of-scope queries no signal
model trains on) stay below the default brand policy's levels; clearly angry messages reach
the handoff level. Runs the real embedder and the shipped classifiers through SignalService.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.brands import Supervision
from appliance.llm.manifest import Manifest
from appliance.signals.onnx_embedder import OnnxEmbedder
from appliance.signals.service import FRUSTRATION_EVIDENCE, SignalService, frustration

POLICY = Supervision()
BRAND = "lumen-goods"
OOS_SAMPLE = Path(__file__).parent / "data" / "clinc150_oos_val_sample.txt"

#: Playful, chatty and off-topic messages, none of them in the training data.
CALM = [
    "can you tell me a joke about cats",
    "tell me a joke about dogs",
    "do you know any good puns?",
    "haha that's a good one, tell me another joke",
    "lol you're funny",
    "knock knock",
    "I'm bored, entertain me",
    "write me a poem about the sea",
    "sing me a song",
    "what's your favourite colour?",
    "do you like cats or dogs better?",
    "are you a robot or a person?",
    "what is the meaning of life?",
    "what's the weather going to be like tomorrow?",
    "who won the world cup in 2018?",
    "how tall is the eiffel tower?",
    "what's 17 times 23?",
    "can you recommend a good pizza place nearby?",
    "tell me something interesting",
    "nah, never mind",
    "hello there!",
    "good morning :)",
]

#: Customers who are plainly angry, in the words of a support queue.
ANGRY = [
    "this is the third time I ask, your service is useless",
    "I am absolutely furious, my order never arrived and nobody answers",
    "you people are a joke, I want my money back NOW",
    "this is ridiculous!!! I've been waiting three weeks for a refund",
    "worst company ever, I'm going to report you",
    "I'm sick of your excuses, fix my account today",
    "stop wasting my time and give me a refund",
    "I hate this bank, every month there's another hidden fee",
]


def _public_oos() -> list[str]:
    lines = OOS_SAMPLE.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def signals(manifest: Manifest, embedder: OnnxEmbedder) -> Iterator[SignalService]:
    service = SignalService(manifest, embedder)
    assert service.read(BRAND, "hello").models.get("sentiment"), "no sentiment model shipped"
    yield service


@pytest.mark.parametrize("text", CALM)
def test_calm_playful_and_off_topic_messages_are_not_frustrated(signals: SignalService,
                                                                text: str) -> None:
    # Below the level rising frustration needs, let alone the handoff level.
    assert signals.read(BRAND, text).frustration < POLICY.frustration_rising_min


def test_public_out_of_scope_queries_are_not_frustrated(signals: SignalService) -> None:
    texts = _public_oos()
    assert len(texts) == 40
    frustrated = {text: signals.read(BRAND, text).frustration for text in texts}
    assert {text: score for text, score in frustrated.items()
            if score >= POLICY.frustration_threshold} == {}


@pytest.mark.parametrize("text", ANGRY)
def test_angry_messages_reach_the_handoff_level(signals: SignalService, text: str) -> None:
    read = signals.read(BRAND, text)
    assert read.sentiment == "angry"
    assert POLICY.frustration_threshold <= read.frustration <= 1.0


def test_frustration_needs_negative_evidence() -> None:
    # Probability spread over every label is no reading of anger.
    assert frustration({"angry": 0.3, "negative": 0.15, "neutral": 0.3, "positive": 0.25}) == 0
    assert frustration({"neutral": 0.9, "positive": 0.1}) == 0
    # A negative reading counts half, an angry one fully; never above 1.
    assert frustration({"negative": 0.8, "neutral": 0.2}) == pytest.approx(0.4)
    assert frustration({"angry": 0.9, "negative": 0.1}) == pytest.approx(0.95)
    assert frustration({"angry": 1.0, "negative": 1.0}) == 1.0
    # The gate is on the negative labels together, so mixed anger still counts.
    at_gate = {"angry": FRUSTRATION_EVIDENCE / 2, "negative": FRUSTRATION_EVIDENCE / 2}
    assert frustration(at_gate) == pytest.approx(0.75 * FRUSTRATION_EVIDENCE)
