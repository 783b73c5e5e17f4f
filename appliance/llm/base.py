"""The chat model interface every LLM backend implements.

Contract:
- `complete` returns a `Completion`; `stream` yields `TextDelta`s and then exactly one
  `Completion` carrying the whole text and token counts.
- Failures raise `ModelUnavailable` (backend down, not loaded, unreachable: retryable),
  `ModelTimeout` (no answer within the deadline: retryable) or `ModelError` (the backend
  answered but the call itself is bad: not retryable). Library exceptions never escape.
- With `GenerationParams.json_schema` set, the text is JSON matching that schema (unless
  `max_tokens` cut it short, so callers parse it and treat a failure as no answer).
- `check_health` never raises; it reports.
- Implementations are safe to call from several threads of one process.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ModelSpec:
    """One model as the manifest describes it (see model_store/manifest.toml)."""

    id: str
    role: str
    profile: str
    backend: str
    context_tokens: int
    license: str
    source: str
    path: Path | None = None
    sha256: str | None = None
    size: int | None = None
    url: str | None = None
    served_name: str | None = None
    #: Seconds one call to this model may take at most, within the task's budget.
    timeout_s: float | None = None
    #: The operator may supply the file or not: while it is absent, routes pass the model over
    #: and checks report it without failing (a task whose only model is absent still fails).
    optional: bool = False
    #: A model served over HTTP from a directory of the model store (vLLM's weights): checked
    #: against the SHA256SUMS in it, never loaded by this process.
    directory: Path | None = None
    #: The model this one is a replica of: the same model served by another box. Routes name
    #: the group (its first model's id) and the router balances among its replicas.
    replica_of: str | None = None
    options: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """The id routes know this model by: its first model's, or its own."""
        return self.replica_of or self.id


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int
    temperature: float = 0.3
    top_p: float = 0.9
    stop: tuple[str, ...] = ()
    #: Seconds for the whole call; the backend raises ModelTimeout past it.
    timeout_s: float = 60.0
    #: Seconds to wait for the first text (the router sets it while other models could still
    #: answer): a server that has sent none by then, or an in-process model still busy with
    #: another turn, raises ModelTimeout. None: only `timeout_s` applies.
    first_token_timeout_s: float | None = None
    #: A JSON schema the reply must match: backends constrain decoding to it (llama.cpp with a
    #: grammar, vLLM with guided decoding), so the text parses as JSON of that shape. The
    #: caller still validates what the values mean. Left out of the hash: a dict is not hashable.
    json_schema: Mapping[str, Any] | None = field(default=None, hash=False)
    #: Asked after each piece of text: True ends the generation there, as if the model had
    #: stopped (finish_reason "stopped"), with the usage so far. A caller that has seen
    #: enough (a draft that failed its checks) stops paying for tokens nobody will read.
    stop_when: Callable[[], bool] | None = field(default=None, hash=False, compare=False)
    #: Fixes the sampler's random draws (llama.cpp's and vLLM's `seed`), so the same prompt
    #: gives the same text; None: the backend's own randomness. The router fills it from
    #: `sampling_seed` when the caller leaves it unset.
    seed: int | None = None


#: The seed for the model calls made inside `sampling_seed` (an eval trial's).
_SAMPLING_SEED: ContextVar[int | None] = ContextVar("sampling_seed", default=None)


@contextlib.contextmanager
def sampling_seed(seed: int | None) -> Iterator[None]:
    """Within the block, model calls on this thread (and contexts copied from it) sample with
    `seed`: an eval trial can be replayed exactly, and trials with different seeds vary as
    customers would see them vary."""
    token = _SAMPLING_SEED.set(seed)
    try:
        yield
    finally:
        _SAMPLING_SEED.reset(token)


def current_sampling_seed() -> int | None:
    """The seed `sampling_seed` set for this context, if any."""
    return _SAMPLING_SEED.get()


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Completion:
    text: str
    model_id: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str
    latency_ms: float = 0.0


class ChatModel(abc.ABC):
    """A chat LLM backend. See the module docstring for the error contract."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @abc.abstractmethod
    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[TextDelta | Completion]:
        """Yield the reply as text deltas, then one final Completion."""

    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        """The whole reply at once."""
        for event in self.stream(messages, params):
            if isinstance(event, Completion):
                return event
        raise AssertionError("stream() ended without a Completion")

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's context (an estimate where no tokenizer is local)."""

    @abc.abstractmethod
    def check_health(self) -> Health:
        """Whether the backend can answer now. Never raises."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the backend's resources (weights, connections)."""
