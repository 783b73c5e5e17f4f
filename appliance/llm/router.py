"""Ordered fallback over chat models, per task.

A task (e.g. "reply") has an ordered list of model ids. The router tries them in order; a
retryable `ModelError` (down, timeout) moves on to the next, and the answer is flagged as a
fallback. A non-retryable error stops at once. Streams can fall back only before their first
token: once text has reached the customer, a failure is reported, not papered over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from appliance.errors import ConfigError, ModelError, ModelUnavailable
from appliance.llm.base import ChatMessage, ChatModel, Completion, GenerationParams, TextDelta


@dataclass(frozen=True)
class Attempt:
    model_id: str
    error_code: str


@dataclass(frozen=True)
class RoutedCompletion:
    completion: Completion
    #: True when a model other than the task's first choice answered.
    fallback: bool
    #: Models tried before the one that answered, and why each failed.
    failed: tuple[Attempt, ...]


MessagesFor = Callable[[ChatModel], Sequence[ChatMessage]]


class ModelRouter:
    def __init__(self, models: Mapping[str, ChatModel], routes: Mapping[str, Sequence[str]]):
        for task, ids in routes.items():
            unknown = [model_id for model_id in ids if model_id not in models]
            if unknown or not ids:
                raise ConfigError(f"route {task!r}: unknown or no models {unknown}")
        self._models = dict(models)
        self._routes = {task: tuple(ids) for task, ids in routes.items()}

    @property
    def models(self) -> dict[str, ChatModel]:
        return dict(self._models)

    def route(self, task: str) -> tuple[str, ...]:
        return self._routes[task]

    def primary(self, task: str) -> ChatModel:
        return self._models[self._routes[task][0]]

    def stream(
        self, task: str, messages_for: MessagesFor, params: GenerationParams
    ) -> Iterator[TextDelta | RoutedCompletion]:
        """Stream from the first model of `task` that answers; end with a RoutedCompletion."""
        failed: list[Attempt] = []
        for index, model_id in enumerate(self._routes[task]):
            model = self._models[model_id]
            started = False
            try:
                for event in model.stream(messages_for(model), params):
                    if isinstance(event, Completion):
                        yield RoutedCompletion(event, fallback=index > 0, failed=tuple(failed))
                        return
                    started = True
                    yield event
            except ModelError as exc:
                if started or not exc.retryable:
                    raise
                failed.append(Attempt(model_id, exc.code))
        tried = ", ".join(f"{a.model_id} ({a.error_code})" for a in failed)
        raise ModelUnavailable(f"no model could answer {task!r}; tried {tried}")

    def complete(
        self, task: str, messages_for: MessagesFor, params: GenerationParams
    ) -> RoutedCompletion:
        for event in self.stream(task, messages_for, params):
            if isinstance(event, RoutedCompletion):
                return event
        raise AssertionError("router stream ended without a completion")

    def close(self) -> None:
        for model in self._models.values():
            model.close()
