"""Sentence embeddings with onnxruntime (all-MiniLM-L6-v2 int8 on the CPU by default).

The model and tokenizer load lazily on first use, after their sha256 check, so each gunicorn
worker loads its own copy after fork. Never embed in a process before it forks: onnxruntime's
threads do not survive a fork, so in the child freeing the inherited session hangs and exiting
aborts. A child that finds one raises ModelUnavailable rather than half-work.

Calls run concurrently: `InferenceSession.run` is thread-safe, and the tokenizer is configured
once before it is shared, after which `encode_batch` only borrows it immutably (reconfiguring
it per call is what makes the tokenizers library raise "Already borrowed" under threads).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.errors import ApplianceError, ConfigError, ModelError, ModelUnavailable
from appliance.llm.base import Health, ModelSpec
from appliance.llm.manifest import verify
from appliance.signals.base import Embedder, Vectors

#: Texts per onnxruntime call. Texts are sorted by token count first, so a batch pads only to
#: the longest of texts of similar length.
BATCH_SIZE = 32
log = logging.getLogger(__name__)
_HEALTH_PROBE = "Is the embedding model answering?"


@dataclass(frozen=True)
class _Loaded:
    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any  # tokenizers.Tokenizer
    #: The model's inputs: input_ids, attention_mask and, for BERT-like models, token_type_ids.
    inputs: frozenset[str]
    pid: int


class OnnxEmbedder(Embedder):
    """An ONNX transformer encoder, mean-pooled over the attention mask and L2-normalised.

    `spec` is the manifest's `onnx` entry (its `context_tokens` is the truncation length, its
    `dim` option the vector length); `tokenizer` is the `file` entry holding tokenizer.json.
    `threads` is onnxruntime's intra-op thread count. With `use_cuda`, the CUDA provider is
    used where the installed onnxruntime has it (never initialised before first use).
    """

    def __init__(
        self,
        spec: ModelSpec,
        tokenizer: ModelSpec,
        *,
        threads: int,
        verify_cache: Path | None = None,
        use_cuda: bool = False,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        dim = spec.options.get("dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            raise ConfigError(f"manifest: embedder {spec.id!r} needs a positive integer dim")
        if spec.context_tokens <= 0:
            raise ConfigError(f"manifest: embedder {spec.id!r} needs context_tokens")
        self.spec = spec
        self.tokenizer_spec = tokenizer
        # Truncating at another length gives other vectors: the length is part of the id.
        self.model_id = f"{spec.id}@{spec.context_tokens}"
        self.dim = dim
        self._threads = threads
        self._verify_cache = verify_cache
        self._use_cuda = use_cuda
        self._batch_size = batch_size
        self._loaded: _Loaded | None = None
        #: Set in a forked child that inherited a loaded session; it never loads again.
        self._inherited = False
        self._load_lock = threading.Lock()

    # --- loading ----------------------------------------------------------------------------

    def _get(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None and loaded.pid == os.getpid():
            return loaded
        with self._load_lock:
            if self._loaded is not None and self._loaded.pid != os.getpid():
                self._abandon_inherited()
            if self._inherited:
                raise ModelUnavailable(f"embedder {self.model_id} was loaded before this "
                                       "process forked; load it only after fork")
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _abandon_inherited(self) -> None:
        """Forget a session loaded before fork without freeing it (freeing it hangs)."""
        log.error("embedder %s was loaded before pid %d forked from its parent",
                  self.model_id, os.getpid())
        # An extra reference that nothing releases, so not even interpreter exit frees it.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._loaded))
        self._loaded = None
        self._inherited = True

    def _load(self) -> _Loaded:
        for spec in (self.spec, self.tokenizer_spec):
            checked = verify(spec, self._verify_cache)
            if not checked.ok:
                # A missing or altered file is never loaded.
                raise ModelUnavailable(f"embedder {self.model_id}: {spec.id} {checked.status}")
        try:
            import onnxruntime
            import tokenizers
        except ImportError as exc:
            raise ModelUnavailable("onnxruntime or tokenizers is not installed") from exc
        tokenizer = self._open_tokenizer(tokenizers)
        session = self._open_session(onnxruntime)
        inputs = frozenset(i.name for i in session.get_inputs())
        width = session.get_outputs()[0].shape[-1]
        if not {"input_ids", "attention_mask"} <= inputs or width != self.dim:
            raise ModelUnavailable(f"embedder {self.model_id}: the model file does not match "
                                   f"the manifest (inputs {sorted(inputs)}, width {width})")
        return _Loaded(session, tokenizer, inputs, os.getpid())

    def _open_tokenizer(self, tokenizers: Any) -> Any:
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(self.tokenizer_spec.path))
        except Exception as exc:  # tokenizers raises bare Exception
            raise ModelUnavailable(f"embedder {self.model_id}: tokenizer failed to load") from exc
        # The shipped file pads and truncates to 128 tokens; we pad per batch ourselves.
        tokenizer.enable_truncation(max_length=self.spec.context_tokens)
        tokenizer.no_padding()
        return tokenizer

    def _open_session(self, onnxruntime: Any) -> Any:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        # Idle pool threads would otherwise spin on the cores the LLM decodes on.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if self._use_cuda and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            return onnxruntime.InferenceSession(
                str(self.spec.path), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime's errors derive from bare Exception
            raise ModelUnavailable(f"embedder {self.model_id} failed to load") from exc

    # --- embedding --------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> Vectors:
        out: Vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        loaded = self._get()
        try:
            encodings = loaded.tokenizer.encode_batch(list(texts))
        except Exception as exc:
            raise ModelError(f"embedder {self.model_id}: tokenizing failed") from exc
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        order = np.argsort([len(row) for row in ids], kind="stable")
        for start in range(0, len(order), self._batch_size):
            batch = order[start:start + self._batch_size]
            out[batch] = self._embed_batch(loaded, [ids[i] for i in batch])
        return out

    def _embed_batch(self, loaded: _Loaded, rows: list[npt.NDArray[np.int64]]) -> Vectors:
        width = max(len(row) for row in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in loaded.inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        try:
            (hidden,) = loaded.session.run(None, feeds)
        except Exception as exc:  # onnxruntime's errors derive from bare Exception
            raise ModelError(f"embedder {self.model_id}: inference failed") from exc
        return _mean_pool_normalised(np.asarray(hidden, dtype=np.float32), mask)

    def check_health(self) -> Health:
        started = time.perf_counter()
        try:
            vector = self.embed_one(_HEALTH_PROBE)
        except ApplianceError as exc:
            return Health(False, exc.message, _ms_since(started))
        except Exception as exc:  # health reports every failure; it never raises
            return Health(False, f"{type(exc).__name__}: {exc}", _ms_since(started))
        if not np.isfinite(vector).all() or abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3:
            return Health(False, f"embedder {self.model_id}: vector not unit length",
                          _ms_since(started))
        return Health(True, f"{self.model_id}: {self.dim}-dim vectors", _ms_since(started))

    def close(self) -> None:
        with self._load_lock:
            if self._loaded is not None and self._loaded.pid != os.getpid():
                self._abandon_inherited()
            self._loaded = None


def _mean_pool_normalised(hidden: Vectors, mask: npt.NDArray[np.int64]) -> Vectors:
    """Average the token vectors the mask keeps, then scale each row to unit length."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    mean = summed / np.maximum(weights.sum(axis=1), 1.0)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    pooled: Vectors = (mean / np.maximum(norms, 1e-12)).astype(np.float32)
    return pooled


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
