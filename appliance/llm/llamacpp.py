"""In-process llama.cpp backend (CPU default).

The model keeps the evaluated states of recent prompts in RAM (`prompt_cache_mb`), so each
brand's fixed system prompt is evaluated once per process, not on every turn.

The model loads lazily on first use, so each gunicorn worker loads its own copy after fork.
One generation runs at a time per process (llama.cpp contexts are not thread-safe); others wait
for the lock up to their deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
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


class LlamaCppModel(ChatModel):
    def __init__(self, spec: ModelSpec, *, threads: int, verify_cache: Path | None = None) -> None:
        super().__init__(spec)
        self._threads = threads
        self._verify_cache = verify_cache
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

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
        if not self._run_lock.acquire(timeout=max(first_by - time.monotonic(), 0.0)):
            raise ModelTimeout(f"model {self.spec.id} is busy")
        try:
            yield from self._generate(llm, messages, params, deadline)
        finally:
            self._run_lock.release()

    def _generate(
        self, llm: Any, messages: Sequence[ChatMessage], params: GenerationParams,
        deadline: float,
    ) -> Iterator[TextDelta | Completion]:
        """Generate, checking the deadline after each chunk (llama.cpp cannot be interrupted
        inside one, so the check may come late by one chunk's time)."""
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
                    if params.stop_when is not None and params.stop_when():
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
            if self._llm is not None:
                self._llm.close()
                self._llm = None
