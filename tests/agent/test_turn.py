"""The turn pipeline: fallback past a dead model, the canned reply, all-or-nothing persistence,
history bounded to the model's context, and the checks on a drafted reply."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_cpp.llama_chat_format import format_chatml
from model_stores import write_store

from appliance.agent.conversations import (
    CANNED_MODEL,
    HISTORY_TOKENS,
    MAX_HISTORY_MESSAGES,
    TurnResult,
    bounded_prompt,
)
from appliance.agent.persona import clean_reply, system_prompt
from appliance.brands import Persona, Policy
from appliance.config import Settings
from appliance.db.migrate import migrate
from appliance.db.models import Brand, Conversation, Message, TurnTrace
from appliance.errors import Conflict, InvalidRequest, PayloadTooLarge
from appliance.llm.llamacpp import LlamaCppModel
from appliance.llm.manifest import load_manifest
from appliance.services import Services, build_services

REPO = Path(__file__).resolve().parents[2]
TINY = "smollm2-135m-instruct"
DEAD = "dead-http"
UNAVAILABLE = "Our team is away right now; please call 555-0100 and we will help you."
PERSONA = Persona(
    agent_name="Juniper", tone="Warm and brief.", greeting="Hi, I'm Juniper. How can I help?",
    never_say=("As an AI", "no worries"),
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def model_store(tmp_path: Path) -> Path:
    """A model store with a model served on a closed port besides the real models."""
    dead = {
        "id": DEAD, "role": "large", "profile": "gpu", "backend": "openai_http",
        "url": f"http://127.0.0.1:{_closed_port()}/v1", "served_name": "large",
        "context_tokens": 8192, "license": "test", "source": "nothing listens here",
    }
    return write_store(tmp_path / "model_store", reply=[TINY], extra=(dead,))


@pytest.fixture
def services_with(
    settings: Settings, model_store: Path
) -> Iterator[Callable[[list[str]], Services]]:
    """services_with(reply_models): Services on a migrated database, replies routed as given."""
    built: list[Services] = []

    def build(reply_models: list[str]) -> Services:
        services = build_services(dataclasses.replace(
            settings, model_store=model_store, reply_models=tuple(reply_models)))
        services.db.connect(reuse_if_open=True)
        migrate(services.db)
        built.append(services)
        return services

    yield build
    for services in built:
        services.close()


def _brand(services: Services) -> Brand:
    return services.brands.create("acme", "Acme", PERSONA,
                                  Policy(unavailable_message=UNAVAILABLE), actor="test")


def _turn(services: Services, brand: Brand, conversation_id: str, text: str) -> TurnResult:
    events = list(services.conversations.reply(brand, conversation_id, text))
    result = events[-1]
    assert isinstance(result, TurnResult)
    return result


def _stored(conversation: Conversation) -> tuple[int, int]:
    messages = Message.select().where(Message.conversation == conversation).count()
    traces = TurnTrace.select().where(TurnTrace.conversation == conversation).count()
    return messages, traces


def test_it_falls_back_past_a_dead_model_and_records_why(
    services_with: Callable[[list[str]], Services]
) -> None:
    services = services_with([DEAD, TINY])
    brand = _brand(services)
    conversation, _ = services.conversations.start(brand, {}, "web")

    result = _turn(services, brand, conversation.public_id, "Hello, where is my parcel?")

    assert result.fallback is True
    assert result.message.model == TINY
    assert result.message.text.strip()
    assert result.usage["completion_tokens"] > 0
    trace = TurnTrace.get(TurnTrace.agent_message == result.message.id)
    assert trace.model == TINY
    assert trace.fallback is True
    assert trace.decision["action"] == "reply"
    assert trace.decision["failed"] == [[DEAD, "model_unavailable"]]


def test_it_sends_the_canned_message_and_hands_off_when_no_model_answers(
    services_with: Callable[[list[str]], Services]
) -> None:
    services = services_with([DEAD])
    brand = _brand(services)
    conversation, _ = services.conversations.start(brand, {}, "web")

    result = _turn(services, brand, conversation.public_id, "Hello?")

    policy = Policy.model_validate(brand.policy)
    assert result.message.text == f"{UNAVAILABLE} {policy.handoff_message}"
    assert result.message.model == CANNED_MODEL
    assert result.fallback is True
    assert result.usage == {"prompt_tokens": 0, "completion_tokens": 0}
    trace = TurnTrace.get(TurnTrace.agent_message == result.message.id)
    assert trace.model == CANNED_MODEL
    assert (trace.decision["action"], trace.decision["rule"]) == ("escalate",
                                                                   "no_model_answered")
    assert trace.decision["error"] == "model_unavailable"
    assert (result.conversation.status, result.conversation.status_reason) == (
        "pending_human", "no_model_answered")
    roles = [m.role for m in services.conversations.messages(conversation)]
    assert roles == ["agent", "customer", "agent"]


def test_it_leaves_nothing_half_written_when_saving_a_turn_fails(
    services_with: Callable[[list[str]], Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = services_with([DEAD])
    brand = _brand(services)
    conversation, _ = services.conversations.start(brand, {}, "web")
    before = _stored(conversation)
    updated_at = Conversation.get_by_id(conversation.id).updated_at

    def crash(cls: type[TurnTrace], /, **fields: Any) -> TurnTrace:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(TurnTrace, "create", classmethod(crash))
    with pytest.raises(RuntimeError, match="disk on fire"):
        _turn(services, brand, conversation.public_id, "Is anyone there?")
    monkeypatch.undo()

    assert before == (1, 0)
    assert _stored(conversation) == before
    assert not Message.select().where(Message.role == "customer").exists()
    assert Conversation.get_by_id(conversation.id).updated_at == updated_at


@pytest.mark.parametrize(("conversation_state", "text", "error"), [
    ("active", "   ", InvalidRequest),
    ("active", "x" * 5000, PayloadTooLarge),
    ("closed", "Hello?", Conflict),
])
def test_it_checks_a_turn_before_generating_anything(
    services_with: Callable[[list[str]], Services], conversation_state: str, text: str,
    error: type[Exception],
) -> None:
    services = services_with([DEAD])
    brand = _brand(services)
    conversation, _ = services.conversations.start(brand, {}, "web")
    if conversation_state == "closed":
        services.conversations.close(brand, conversation.public_id)

    # Raised by the call itself, not when the reply is iterated.
    with pytest.raises(error):
        services.conversations.reply(brand, conversation.public_id, text)

    assert _stored(conversation) == (1, 0)


# --- the prompt ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppModel]:
    spec = load_manifest(REPO / "model_store").models[TINY]
    model = LlamaCppModel(spec, threads=2,
                          verify_cache=tmp_path_factory.mktemp("verify") / "cache.json")
    yield model
    model.close()


def _history(count: int, words: int) -> list[Message]:
    roles = ("customer", "agent")
    return [
        Message(role=roles[i % 2],
                text=f"Message {i}: " + " ".join(f"parcel{i}-{w}" for w in range(words)))
        for i in range(count)
    ]


def _rendered_tokens(model: LlamaCppModel, messages: list[Any]) -> int:
    """Tokens the prompt takes once the chat template wraps it, as llama.cpp will see it."""
    prompt = format_chatml([{"role": m.role, "content": m.content} for m in messages]).prompt
    return model.count_tokens(prompt)


@pytest.mark.parametrize("reply_tokens", [24, 200, 1000])
def test_it_bounds_history_to_the_models_context(
    tiny_model: LlamaCppModel, reply_tokens: int
) -> None:
    history = _history(MAX_HISTORY_MESSAGES, words=60)
    system = system_prompt("Acme", PERSONA)
    everything = [*history, Message(role="customer", text="And where is my parcel now?")]
    assert sum(tiny_model.count_tokens(m.text) for m in everything) > \
        tiny_model.spec.context_tokens, "the history must not fit, or nothing is tested"

    # A history budget larger than the context: the context is what bounds it.
    prompt = bounded_prompt(tiny_model, system, history, "And where is my parcel now?",
                            reply_tokens, history_tokens=10_000)

    assert _rendered_tokens(tiny_model, prompt) <= tiny_model.spec.context_tokens - reply_tokens
    assert prompt[0].role == "system" and prompt[0].content == system
    assert prompt[-1].role == "user" and prompt[-1].content == "And where is my parcel now?"
    kept = [m.content for m in prompt[1:-1]]
    assert 0 < len(kept) < len(history)
    assert kept == [m.text for m in history[-len(kept):]], "the most recent history is kept"


def test_it_keeps_only_the_recent_history_that_fits_its_budget(tiny_model: LlamaCppModel) -> None:
    history = _history(MAX_HISTORY_MESSAGES, words=3)

    prompt = bounded_prompt(tiny_model, "Be brief.", history, "Thanks!", 24,
                            history_tokens=HISTORY_TOKENS)

    kept = [m.content for m in prompt[1:-1]]
    assert 0 < len(kept) < len(history)
    assert kept == [m.text for m in history[-len(kept):]], "the most recent history is kept"
    assert sum(tiny_model.count_tokens(text) for text in kept) <= HISTORY_TOKENS


def test_it_keeps_a_short_history_whole_with_chat_roles(tiny_model: LlamaCppModel) -> None:
    history = _history(4, words=2)

    prompt = bounded_prompt(tiny_model, "Be brief.", history, "Thanks!", 24,
                            history_tokens=HISTORY_TOKENS)

    assert [(m.role, m.content) for m in prompt] == [
        ("system", "Be brief."),
        *[("user" if m.role == "customer" else "assistant", m.text) for m in history],
        ("user", "Thanks!"),
    ]


# --- the checks on a draft ----------------------------------------------------------------


@pytest.mark.parametrize(("draft", "cleaned"), [
    ("As an AI, I cannot see parcels. Your parcel ships today.", "Your parcel ships today."),
    ("Your parcel ships today. as an ai model I know this!", "Your parcel ships today."),
    ("No worries! Your refund is on its way.", "Your refund is on its way."),
    ("Agent: Your parcel ships today.", "Your parcel ships today."),
    ("Assistant: Your parcel ships today.", "Your parcel ships today."),
    ("Juniper: Your parcel ships today.", "Your parcel ships today."),
    ("Your parcel ships today.\nCustomer: thanks, and my refund?", "Your parcel ships today."),
    ("Your parcel ships today.<|im_end|>\n<|im_start|>user\nok", "Your parcel ships today."),
    ("Hi, I'm Emily from Acme. How can I help?", "Hi, I'm Juniper from Acme. How can I help?"),
    ("Note: returns take 5 days.", "Note: returns take 5 days."),
])
def test_it_cleans_a_draft_reply(draft: str, cleaned: str) -> None:
    assert clean_reply(draft, PERSONA) == cleaned


def test_it_drops_a_draft_made_only_of_banned_sentences() -> None:
    assert clean_reply("As an AI I cannot help. No worries though!", PERSONA) == ""


def test_it_writes_the_persona_into_the_system_prompt() -> None:
    prompt = system_prompt("Acme", PERSONA)

    assert "Juniper" in prompt
    assert "Acme" in prompt
    assert PERSONA.tone in prompt
    assert all(phrase in prompt for phrase in PERSONA.never_say)
