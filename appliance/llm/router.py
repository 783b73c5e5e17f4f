"""Ordered fallback over chat models, per task, within one time budget.

A task ("reply", "reply_large", "extraction", "summary") has an ordered list of model ids. The
router tries them in order and passes over, without calling it:
- a model whose file is absent (`model_missing`: an optional model the operator has not
  supplied; a stat per call, so a file copied in later is used without a restart);
- a model whose circuit is open (`circuit_open`: it failed repeatedly; see breaker.py);
- a model whose queue is full or whose wait exceeds what is left of the budget (`queue_full`;
  see queue.py). When no model answered and one of them was full, the router raises that
  Overloaded: the box is busy, and the client should retry, not get a canned reply.
A retryable `ModelError` (down, timeout) moves on to the next model, and the answer is flagged
as a fallback (degraded). A non-retryable error stops at once. Streams can fall back only before
their first token: once text has reached the customer, a failure is reported, not papered over.

Replicas: the replicas of one model (manifest `replica_of`: the same model served by other
boxes) stand side by side in a route and are one choice. Among them the healthy ones (file
present, circuit not open, queue not full) go first, the least loaded first (the calls this
process has generating or waiting on each: every node balances on what it sees itself), ties
taken in turn (round robin) so that idle replicas share the calls. A replica that fails is passed
over for the next one, then the rest of the route. An answer from any replica of the first choice
is no fallback: it is the same model.

Time: `params.timeout_s` is the budget of the whole task. Each attempt may use what is left of it
(capped by the model's manifest `timeout_s`), but while other models could still answer, it must
start answering within its share of what is left (what is left divided among it and the models
after it), so a hanging model leaves time for the next one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from itertools import groupby

from appliance import metrics
from appliance.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable, Overloaded
from appliance.llm.base import (
    ChatMessage,
    ChatModel,
    Completion,
    GenerationParams,
    TextDelta,
    current_sampling_seed,
)
from appliance.llm.breaker import BreakerPolicy, CircuitBreaker, Clock
from appliance.llm.manifest import file_absent
from appliance.llm.queue import ModelQueue

#: Attempt codes for models passed over without a call (beside ModelError codes).
MODEL_MISSING, CIRCUIT_OPEN, BUDGET_SPENT = "model_missing", "circuit_open", "budget_spent"
QUEUE_FULL = metrics.QUEUE_FULL


@dataclass(frozen=True)
class Attempt:
    model_id: str
    #: A ModelError code (model_unavailable, model_timeout) or one of the pass-over codes above.
    error_code: str


@dataclass(frozen=True)
class RoutedCompletion:
    completion: Completion
    #: True when a model other than the task's first choice (its first model or a replica of
    #: it) answered.
    fallback: bool
    #: Models tried or passed over before the one that answered, and why.
    failed: tuple[Attempt, ...]
    task: str = ""

    @property
    def degraded(self) -> bool:
        """The answer is not from the task's first choice: a fallback model wrote it."""
        return self.fallback

    @property
    def model_id(self) -> str:
        return self.completion.model_id


@dataclass(frozen=True)
class ModelStatus:
    """What the router knows about one model, for ops (`ModelRouter.status()`)."""

    model_id: str
    #: False when the model's file is absent (the router passes it over).
    present: bool
    optional: bool
    #: The circuit: closed | open | half_open.
    circuit: str
    consecutive_failures: int
    last_error: str | None
    #: While the circuit is open: seconds until one trial call is let through.
    retry_in_s: float | None
    #: task -> the model's place in that task's route (1 = first choice; replicas side by
    #: side share a place).
    tasks: dict[str, int]

    @property
    def available(self) -> bool:
        return self.present and self.circuit != "open"


@dataclass(frozen=True)
class RouteStatus:
    """Which models of a task's route are present, in route order."""

    task: str
    route: tuple[str, ...]
    absent: tuple[str, ...]

    @property
    def present(self) -> tuple[str, ...]:
        return tuple(model_id for model_id in self.route if model_id not in self.absent)

    @property
    def ok(self) -> bool:
        """At least one model of the task can be called."""
        return bool(self.present)


MessagesFor = Callable[[ChatModel], Sequence[ChatMessage]]


class ModelRouter:
    """Routes each task to its models in order. Thread-safe; one per process.

    `clock` (monotonic seconds) drives the breakers and the task budget; tests inject one.
    """

    def __init__(
        self, models: Mapping[str, ChatModel], routes: Mapping[str, Sequence[str]], *,
        breaker: BreakerPolicy | None = None, clock: Clock = time.monotonic,
        queues: Mapping[str, ModelQueue] | None = None,
    ) -> None:
        for task, ids in routes.items():
            unknown = [model_id for model_id in ids if model_id not in models]
            if unknown or not ids:
                raise ConfigError(f"route {task!r}: unknown or no models {unknown}")
        self._models = dict(models)
        self._routes = {task: tuple(ids) for task, ids in routes.items()}
        #: task -> its choices in order: a model, or replicas of one model side by side.
        self._choices = {
            task: tuple(tuple(ids) for _, ids in groupby(route, self._group))
            for task, route in self._routes.items()
        }
        #: group -> calls so far, whose count picks the replica that goes first among equals.
        self._turns: dict[str, int] = {}
        self._turns_lock = threading.Lock()
        self._clock = clock
        #: Models without a queue are called without admission (tests that build a router).
        self._queues = dict(queues or {})
        policy = breaker or BreakerPolicy()
        self._breakers = {
            model_id: CircuitBreaker(model_id, policy, clock) for model_id in self._models
        }

    @property
    def models(self) -> dict[str, ChatModel]:
        """Every model a route names, present or not."""
        return dict(self._models)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self._routes)

    def route(self, task: str) -> tuple[str, ...]:
        return self._routes[task]

    def primary(self, task: str) -> ChatModel:
        return self._models[self._routes[task][0]]

    def status(self) -> dict[str, ModelStatus]:
        """Per model: present or absent, its circuit, consecutive failures, last error."""
        result = {}
        for model_id, model in self._models.items():
            breaker = self._breakers[model_id].state()
            result[model_id] = ModelStatus(
                model_id=model_id, present=not file_absent(model.spec),
                optional=model.spec.optional, circuit=breaker.state,
                consecutive_failures=breaker.consecutive_failures,
                last_error=breaker.last_error, retry_in_s=breaker.retry_in_s,
                tasks={task: place for task in self._routes
                       if (place := self.place(task, model_id)) is not None},
            )
        return result

    def route_status(self, task: str) -> RouteStatus:
        route = self._routes[task]
        absent = tuple(m for m in route if file_absent(self._models[m].spec))
        return RouteStatus(task, route, absent)

    def stream(
        self, task: str, messages_for: MessagesFor, params: GenerationParams
    ) -> Iterator[TextDelta | RoutedCompletion]:
        """Stream from the first model of `task` that answers; end with a RoutedCompletion.

        Raises ModelUnavailable when no model could answer (each tried or passed over), or the
        error of a model that failed after its first token or refused the request.
        """
        budget_end = self._clock() + params.timeout_s
        failed: list[Attempt] = []
        busy: Overloaded | None = None
        for model_id, place, later in self._plan(task):
            model = self._models[model_id]
            if file_absent(model.spec):
                failed.append(Attempt(model_id, MODEL_MISSING))
                metrics.record_model_request(model_id, metrics.MISSING)
                continue
            remaining = budget_end - self._clock()
            if remaining <= 0:
                failed.append(Attempt(model_id, BUDGET_SPENT))
                break
            permit = self._breakers[model_id].allow()
            if permit is None:
                failed.append(Attempt(model_id, CIRCUIT_OPEN))
                metrics.record_model_request(model_id, metrics.BREAKER_OPEN)
                continue
            attempt = self._attempt_params(params, model, remaining, later)
            started = False
            done: Completion | None = None
            try:
                # The slot is held while the model generates, and freed before the result
                # goes out: a caller that stops reading then holds nothing.
                with self._admission(model_id, remaining):
                    for event in model.stream(messages_for(model), attempt):
                        if isinstance(event, Completion):
                            done = event
                            break
                        started = True
                        yield event
                if done is None:
                    raise ModelUnavailable(f"model {model_id} ended its reply early")
                permit.success()
                _record_answer(done, fallback=place > 0)
                yield RoutedCompletion(done, fallback=place > 0, failed=tuple(failed),
                                       task=task)
                return
            except Overloaded as exc:
                busy = exc
                failed.append(Attempt(model_id, QUEUE_FULL))
                metrics.record_model_request(model_id, metrics.QUEUE_FULL)
            except ModelError as exc:
                metrics.record_model_request(
                    model_id, metrics.TIMEOUT if isinstance(exc, ModelTimeout) else metrics.ERROR)
                if exc.retryable:
                    permit.failure(exc.code)
                else:
                    permit.success()  # it answered, refusing this request: it is up
                if started or not exc.retryable:
                    raise
                failed.append(Attempt(model_id, exc.code))
            finally:
                permit.release()  # the caller stopped reading, or a bug: no verdict
        if busy is not None:
            raise busy
        tried = ", ".join(f"{a.model_id} ({a.error_code})" for a in failed)
        raise ModelUnavailable(f"no model could answer {task!r}; tried {tried}")

    def _group(self, model_id: str) -> str:
        return self._models[model_id].spec.group

    def place(self, task: str, model_id: str) -> int | None:
        """The model's place in the task's route (1 = first choice; replicas side by side share
        one), None when the route does not name it."""
        return next((place for place, choice in enumerate(self._choices[task], 1)
                     if model_id in choice), None)

    def _plan(self, task: str) -> Iterator[tuple[str, int, tuple[str, ...]]]:
        """Each model to try: its id, its choice's place (0 = first choice), the models after
        it. A choice's replicas are ordered when the attempts reach it."""
        choices = self._choices[task]
        for place, choice in enumerate(choices):
            ordered = self._order(choice)
            after = tuple(model_id for later in choices[place + 1:] for model_id in later)
            for index, model_id in enumerate(ordered):
                yield model_id, place, ordered[index + 1:] + after

    def _order(self, choice: tuple[str, ...]) -> tuple[str, ...]:
        """Replicas in the order to try them (see the module docstring); the unhealthy last,
        to be passed over as any model is."""
        if len(choice) == 1:
            return choice
        group = self._group(choice[0])
        with self._turns_lock:
            turn = self._turns.get(group, 0)
            self._turns[group] = turn + 1
        first = turn % len(choice)
        in_turn = choice[first:] + choice[:first]
        return tuple(sorted(in_turn, key=lambda m: (not self._healthy(m), self._load(m))))

    def _healthy(self, model_id: str) -> bool:
        queue = self._queues.get(model_id)
        return self._could_answer(model_id) and not (queue is not None and queue.full)

    def _load(self, model_id: str) -> int:
        queue = self._queues.get(model_id)
        return 0 if queue is None else queue.admitted

    def _admission(self, model_id: str, budget_s: float) -> AbstractContextManager[None]:
        queue = self._queues.get(model_id)
        return nullcontext() if queue is None else queue.admitted_within(budget_s)

    def queue(self, model_id: str) -> ModelQueue | None:
        """The admission queue of `model_id` in this process, if it has one."""
        return self._queues.get(model_id)

    def _attempt_params(
        self, params: GenerationParams, model: ChatModel, remaining: float,
        later: Sequence[str],
    ) -> GenerationParams:
        """This attempt's share of the budget (see the module docstring)."""
        timeout = min(remaining, model.spec.timeout_s or remaining)
        others = sum(1 for model_id in later if self._could_answer(model_id))
        first_token = None
        if others:
            first_token = min(timeout, remaining / (others + 1))
            if params.first_token_timeout_s is not None:
                first_token = min(first_token, params.first_token_timeout_s)
        elif params.first_token_timeout_s is not None:
            first_token = min(timeout, params.first_token_timeout_s)
        seed = params.seed if params.seed is not None else current_sampling_seed()
        return replace(params, timeout_s=timeout, first_token_timeout_s=first_token, seed=seed)

    def _could_answer(self, model_id: str) -> bool:
        return (not file_absent(self._models[model_id].spec)
                and self._breakers[model_id].would_allow())

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


def _record_answer(completion: Completion, *, fallback: bool) -> None:
    metrics.record_model_request(completion.model_id,
                                 metrics.FALLBACK if fallback else metrics.OK)
    metrics.record_model_tokens(completion.model_id, completion.prompt_tokens,
                                completion.completion_tokens)
