"""In-process llama.cpp backend (CPU default).

The model keeps the evaluated states of recent prompts in RAM (`prompt_cache_mb`), so each
brand's fixed system prompt is evaluated once per process, not on every turn.

The model loads lazily on first use, so each gunicorn worker loads its own copy after fork.
One generation runs at a time per process (llama.cpp contexts are not thread-safe): each runs on
the model's own decode thread, and the others wait for it up to their first-token deadline.

The decode thread runs at a lower CPU priority (setting llm_decode_niceness), and so do the
compute threads llama.cpp starts from it. On a box whose cores a model saturates, the web workers'
request threads then get the CPU first: workflow steps and template replies answer sooner
while the model takes what is left (docs/benchmarks.md: at 128 clients, workflow turns' p50
467 ms against 773 ms).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from appliance.errors import ModelError, ModelTimeout, ModelUnavailable
from appliance.llm.base import (
    ChatMessage,
    ChatModel,
    Completion,
    GenerationParams,
    Health,
    ModelSpec,
    TextDelta,
)
from appliance.llm.manifest import verify

#: RAM for the states of recent prompts, per process (manifest option prompt_cache_mb; 0: none).
PROMPT_CACHE_MB = 256

log = logging.getLogger(__name__)

_Event = TextDelta | Completion | BaseException
#: How often the decode thread, waiting for a reader to take an event, checks it is still there.
_HANDOFF_POLL_S = 0.05


class _Job:
    """One generation handed to the decode thread; its events come back through `events`."""

    def __init__(self, run: Callable[[_Job], Generator[TextDelta | Completion, None, None]]
                 ) -> None:
        self.run = run
        # One event ahead of the reader at most: a reader that stops reading holds the model,
        # as the only caller of llama.cpp did before (the next waits, then is told "busy").
        self.events: queue.Queue[_Event | None] = queue.Queue(maxsize=1)
        self.lock = threading.Lock()
        self.started = threading.Event()
        #: Set when the reader has what it wants: the generation ends after the chunk in
        #: progress, and its completion is still handed over.
        self.stop = threading.Event()
        #: Set when the reader has gone (it gave up waiting, or was closed): the decode thread
        #: skips the job, or drops it after the chunk in progress.
        self.gone = threading.Event()

    def stopping(self) -> bool:
        return self.stop.is_set() or self.gone.is_set()

    def begin(self) -> bool:
        """Called by the decode thread: whether to run the job (it was not given up)."""
        with self.lock:
            if self.gone.is_set():
                return False
            self.started.set()
            return True

    def put(self, event: _Event | None) -> bool:
        """Called by the decode thread: hand the reader `event`; False when the reader has
        gone (it gave up or was closed), so the job ends."""
        while not self.gone.is_set():
            try:
                self.events.put(event, timeout=_HANDOFF_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def give_up_unless_started(self) -> bool:
        """Called by the waiting caller: True when the job had not started (it never will)."""
        with self.lock:
            if self.started.is_set():
                return False
            self.gone.set()
            return True


class _DecodeThread:
    """The one thread that loads the model and generates with it, at a lower priority."""

    def __init__(self, name: str, niceness: int) -> None:
        self._niceness = niceness
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        """End the thread once the jobs before now are done."""
        self._jobs.put(None)

    def _loop(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           os.getpriority(os.PRIO_PROCESS, 0) + self._niceness)
        except (AttributeError, OSError):  # not Linux: the thread keeps the process's priority
            log.info("the decode thread runs at the process's priority")
        while (job := self._jobs.get()) is not None:
            if not job.begin():
                continue
            events = job.run(job)
            try:
                for event in events:
                    if not job.put(event):
                        break
                else:
                    job.put(None)
            except BaseException as exc:  # handed to the caller, who raises it
                job.put(exc)
            finally:
                events.close()


class LlamaCppModel(ChatModel):
    def __init__(self, spec: ModelSpec, *, threads: int, niceness: int = 0,
                 verify_cache: Path | None = None) -> None:
        super().__init__(spec)
        self._threads = threads
        self._niceness = niceness
        self._verify_cache = verify_cache
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._decoder: _DecodeThread | None = None

    def _model(self) -> Any:
        with self._load_lock:
            if self._llm is None:
                checked = verify(self.spec, self._verify_cache)
                if not checked.ok:
                    # A missing or altered weights file is never loaded.
                    raise ModelUnavailable(f"model {self.spec.id}: {checked.status}")
                try:
                    import llama_cpp
                    from llama_cpp.llama_cache import LlamaRAMCache
                except ImportError as exc:
                    raise ModelUnavailable("llama-cpp-python is not installed") from exc
                try:
                    self._llm = llama_cpp.Llama(
                        model_path=str(self.spec.path),
                        n_ctx=self.spec.context_tokens,
                        n_threads=self._threads,
                        chat_format=str(self.spec.options.get("chat_format", "chatml")),
                        verbose=False,
                    )
                except (ValueError, RuntimeError, OSError) as exc:
                    raise ModelUnavailable(f"model {self.spec.id} failed to load") from exc
                # llama.cpp reuses the evaluated prefix of the previous prompt by itself; this
                # keeps the states of recent prompts too, so a brand's fixed system prompt is
                # not evaluated again after another brand's turn.
                megabytes = int(self.spec.options.get("prompt_cache_mb", PROMPT_CACHE_MB))
                if megabytes > 0:
                    self._llm.set_cache(LlamaRAMCache(capacity_bytes=megabytes << 20))
            return self._llm

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[TextDelta | Completion]:
        started = time.monotonic()
        deadline = started + params.timeout_s
        # The first-token deadline bounds the wait for the model while another turn generates.
        # Once generation starts it no longer applies: the prompt is evaluated in one call that
        # cannot be interrupted, and a first token that took long is still worth keeping.
        first_by = deadline if params.first_token_timeout_s is None else min(
            deadline, started + params.first_token_timeout_s)
        llm = self._model()
        job = _Job(lambda job: self._generate(llm, messages, params, deadline, job.stopping))
        self._decode_thread().submit(job)
        if not job.started.wait(max(first_by - time.monotonic(), 0.0)) \
                and job.give_up_unless_started():
            raise ModelTimeout(f"model {self.spec.id} is busy")
        given: list[str] = []
        try:
            while (event := job.events.get()) is not None:
                if isinstance(event, BaseException):
                    raise event
                if isinstance(event, Completion):
                    # Stopped by the reader: the reply is what it was given, not the chunk
                    # the decode thread generated before it saw the stop.
                    yield event if not job.stop.is_set() else dataclasses.replace(
                        event, text="".join(given), completion_tokens=len(given),
                        finish_reason="stopped")
                elif not job.stop.is_set():
                    given.append(event.text)
                    yield event
                    if params.stop_when is not None and params.stop_when():
                        job.stop.set()
        finally:
            # A reader that leaves early (the client left, an error) ends the generation
            # after the chunk in progress.
            job.gone.set()

    def _decode_thread(self) -> _DecodeThread:
        with self._load_lock:
            if self._decoder is None:
                self._decoder = _DecodeThread(f"decode-{self.spec.id}", self._niceness)
            return self._decoder

    def _generate(
        self, llm: Any, messages: Sequence[ChatMessage], params: GenerationParams,
        deadline: float, stopping: Callable[[], bool],
    ) -> Generator[TextDelta | Completion, None, None]:
        """Generate on the decode thread, checking the deadline and whether the reader stopped
        after each chunk (llama.cpp cannot be interrupted inside one, so either may come
        late by one chunk's time)."""
        parts: list[str] = []
        finish = "stop"
        # llama-cpp-python compiles the schema to a GBNF grammar that constrains sampling (a
        # schema its converter does not support falls back to "any JSON": callers validate).
        response_format = None if params.json_schema is None else {
            "type": "json_object", "schema": dict(params.json_schema)}
        try:
            chunks = llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                stop=list(params.stop) or None,
                response_format=response_format,
                seed=params.seed,
                stream=True,
            )
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content") or ""
                if text:
                    parts.append(text)
                    yield TextDelta(text)
                if stopping():
                    finish = "stopped"
                    chunks.close()
                    break
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if time.monotonic() > deadline:
                    raise ModelTimeout(f"model {self.spec.id} took longer than "
                                       f"{params.timeout_s:g}s")
        except ValueError as exc:
            # llama.cpp raises ValueError for a prompt longer than the context window.
            raise ModelError(f"model {self.spec.id} rejected the prompt") from exc
        except RuntimeError as exc:
            raise ModelUnavailable(f"model {self.spec.id} failed while generating") from exc
        completion_tokens = len(parts)
        total = int(getattr(llm, "n_tokens", completion_tokens))
        yield Completion(
            text="".join(parts),
            model_id=self.spec.id,
            prompt_tokens=max(total - completion_tokens, 0),
            completion_tokens=completion_tokens,
            finish_reason=finish,
        )

    def count_tokens(self, text: str) -> int:
        llm = self._model()
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def check_health(self) -> Health:
        started = time.monotonic()
        try:
            self.count_tokens("ok")
        except ModelError as exc:
            return Health(False, exc.message)
        return Health(True, "loaded", (time.monotonic() - started) * 1000)

    def close(self) -> None:
        with self._load_lock:
            if self._decoder is not None:
                self._decoder.stop()
                self._decoder = None
            if self._llm is not None:
                self._llm.close()
                self._llm = None
