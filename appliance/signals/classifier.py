"""Text classifiers (intents, sentiment, human request) run with onnxruntime.

A classifier is an artefact directory that `appliance.signals.training` writes:
- `model.onnx`: inputs `text` (string [N, 1], each text as `normalise_text` leaves it) and,
  when the model reads the shared sentence embedding, `embedding` (float [N, dim]); outputs
  `probabilities` (float [N, len(labels)], columns in the order of `labels`) and, for a model
  trained with out-of-scope examples, `out_of_scope` (float [N], the probability that the text
  is none of the in-scope labels).
- `classifier.json`: labels, the out-of-scope label and threshold, the features, the embedder
  the model was trained with, the training data's hash, metrics from held-out folds, library
  versions, and the sha256 of model.onnx (see docs/signals.md).

Contract of `TextClassifier`:
- `load` reads and checks the metadata and the model file's sha256; it opens no session.
  The onnxruntime session opens on first prediction, from the very bytes it hashes again, so
  a process may fork after `load` (never predict before a fork: onnxruntime's threads do not
  survive one; a child that inherited a session raises ModelUnavailable). Sessions run calls
  from several threads at once.
- `predict` never fails on the text itself: empty, huge, binary, foreign or emoji-only text
  gives a Prediction (out of scope, or low confidence). Failures of the model raise
  `ModelUnavailable` (missing, altered or unloadable files) or `ModelError`.
- With an out-of-scope label, a message is out of scope when its `out_of_scope` probability
  is at least `threshold`, or when nothing is left of the text after normalisation. (A model
  without that output rejects when the out-of-scope label scores highest or the best in-scope
  probability is under `threshold`.)
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.errors import ModelError, ModelUnavailable
from appliance.signals.base import Embedder, Vectors

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
META_FILE = "classifier.json"
FORMAT = "appliance-text-classifier"
FORMAT_VERSION = 1
#: Characters of a message the text features read (the embedder truncates on its own).
MAX_CHARS = 1000
#: How many (label, probability) pairs a Prediction carries.
TOP_K = 5

Probabilities = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Prediction:
    """What a classifier read from one text.

    `label` is the best in-scope label, or the out-of-scope label when the text was rejected;
    `confidence` is the best in-scope label's probability; `top` holds up to TOP_K labels
    (the out-of-scope one included) with their probabilities, best first.
    """

    label: str
    confidence: float
    out_of_scope: bool
    top: tuple[tuple[str, float], ...]


def clean_text(text: object) -> str:
    """`text` as valid Unicode: non-strings become "", lone surrogates become U+FFFD."""
    if not isinstance(text, str):
        return ""
    return text.encode("utf-8", "replace").decode("utf-8")


def normalise_text(text: str) -> str:
    """What the text features read: lower case, control characters as spaces, whitespace runs
    collapsed, at most MAX_CHARS characters, one space at each end (so character n-grams mark
    word edges). Done here rather than in ONNX so that training and prediction share it."""
    # Bound the work on huge inputs before anything else; collapsing can only shorten.
    head = clean_text(text)[:MAX_CHARS * 4]
    printable = "".join(ch if ch.isprintable() else " " for ch in head)
    return f" {' '.join(printable.lower().split())[:MAX_CHARS]} "


@dataclass(frozen=True)
class _Session:
    session: Any  # onnxruntime.InferenceSession
    #: The outputs to fetch: probabilities, and out_of_scope when the model has it.
    outputs: list[str]
    pid: int


class TextClassifier:
    """A trained classifier artefact; see the module docstring for the contract."""

    def __init__(self, directory: Path, meta: Mapping[str, Any],
                 embedder: Embedder | None = None) -> None:
        self.directory = directory
        self.meta: Mapping[str, Any] = meta
        self.name: str = str(meta["name"])
        self.labels: tuple[str, ...] = tuple(meta["labels"])
        self.oos_label: str | None = meta.get("oos_label")
        threshold = meta.get("threshold")
        self.threshold: float | None = None if threshold is None else float(threshold)
        #: "out_of_scope": the threshold applies to the model's out_of_scope output;
        #: otherwise to the best in-scope probability.
        self.threshold_on: str | None = meta.get("threshold_on")
        features = meta["features"]
        self.reads_text: bool = features.get("text") is not None
        embedding = features.get("embedding")
        self.embedding_model_id: str | None = embedding["model_id"] if embedding else None
        self.embedding_dim: int | None = int(embedding["dim"]) if embedding else None
        self.model_sha256: str = str(meta["model_sha256"])
        self._embedder = embedder
        self._oos_index = (self.labels.index(self.oos_label)
                           if self.oos_label in self.labels else None)
        self._session: _Session | None = None
        self._inherited = False
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path, *, embedder: Embedder | None = None) -> TextClassifier:
        """The classifier in `directory`, checked (metadata, embedder id, sha256); no session.

        `embedder` embeds texts when `predict` is not given their vector; it must be the
        model the classifier was trained with. Raises ModelUnavailable.
        """
        meta = _read_meta(directory)
        classifier = cls(directory, meta, embedder)
        if (classifier.embedding_model_id and embedder is not None
                and embedder.model_id != classifier.embedding_model_id):
            raise ModelUnavailable(
                f"classifier {classifier.name}: trained on {classifier.embedding_model_id} "
                f"embeddings, but the embedder is {embedder.model_id}")
        classifier._read_model()
        return classifier

    # --- properties ---------------------------------------------------------------------------

    @property
    def needs_embedding(self) -> bool:
        """Whether predictions read the sentence embedding (passed in, or embedded here)."""
        return self.embedding_model_id is not None

    @property
    def version(self) -> str:
        """name@first 12 hex digits of model.onnx's sha256: what traces record."""
        return f"{self.name}@{self.model_sha256[:12]}"

    # --- prediction ---------------------------------------------------------------------------

    def predict(self, text: str, vector: Vectors | None = None) -> Prediction:
        """The prediction for one text; `vector` is its shared embedding, if already made."""
        vectors = None if vector is None else np.asarray(vector, dtype=np.float32)[None, :]
        return self.predict_many([text], vectors)[0]

    def predict_many(self, texts: Sequence[str],
                     vectors: Vectors | None = None) -> list[Prediction]:
        """Predictions for `texts`; `vectors` (one row per text) are their embeddings."""
        empty = [not normalise_text(text).strip() for text in texts]
        probabilities, scope = self.outputs(texts, vectors)
        return [self._decide(probabilities[i], None if scope is None else float(scope[i]),
                             empty[i]) for i in range(len(texts))]

    def probabilities(self, texts: Sequence[str],
                      vectors: Vectors | None = None) -> Probabilities:
        """The model's probabilities, [len(texts), len(labels)], before any rejection."""
        return self.outputs(texts, vectors)[0]

    def outputs(self, texts: Sequence[str], vectors: Vectors | None = None
                ) -> tuple[Probabilities, Probabilities | None]:
        """(probabilities, out-of-scope probability per text, or None without a scope model)."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32), None
        feeds: dict[str, Any] = {}
        if self.reads_text:
            feeds["text"] = np.array([[normalise_text(t)] for t in texts], dtype=object)
        if self.needs_embedding:
            feeds["embedding"] = self._embeddings(texts, vectors)
        session, names = self._get()
        try:
            results = session.run(names, feeds)
        except Exception as exc:  # onnxruntime's errors derive from bare Exception
            raise ModelError(f"classifier {self.name}: inference failed") from exc
        probabilities = np.asarray(results[0], dtype=np.float32)
        scope = np.asarray(results[1], dtype=np.float32) if len(results) > 1 else None
        return probabilities, scope

    def _embeddings(self, texts: Sequence[str], vectors: Vectors | None) -> Vectors:
        if vectors is None:
            if self._embedder is None:
                raise ModelUnavailable(f"classifier {self.name} reads embeddings, but has no "
                                       "embedder and was given no vectors")
            vectors = self._embedder.embed([clean_text(t) for t in texts])
        array: Vectors = np.asarray(vectors, dtype=np.float32)
        if array.shape != (len(texts), self.embedding_dim):
            raise ModelError(f"classifier {self.name}: embeddings of shape {array.shape}, "
                             f"expected ({len(texts)}, {self.embedding_dim})")
        # A NaN row would poison every probability; such a row carries no information.
        return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)

    def _decide(self, probabilities: Probabilities, scope: float | None,
                empty: bool) -> Prediction:
        order = [int(i) for i in np.argsort(-probabilities, kind="stable")]
        top = tuple((self.labels[i], float(probabilities[i])) for i in order[:TOP_K])
        oos = self._oos_index
        best = next(i for i in order if i != oos)
        confidence = float(probabilities[best])
        if oos is None:
            return Prediction(self.labels[best], confidence, False, top)
        if scope is not None and self.threshold_on == "out_of_scope":
            rejected = empty or (self.threshold is not None and scope >= self.threshold)
        else:
            rejected = (empty or order[0] == oos
                        or (self.threshold is not None and confidence < self.threshold))
        return Prediction(self.labels[oos] if rejected else self.labels[best], confidence,
                          rejected, top)

    # --- loading ------------------------------------------------------------------------------

    def _read_model(self) -> bytes:
        """model.onnx's bytes, after checking them against the metadata's sha256."""
        path = self.directory / MODEL_FILE
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelUnavailable(f"classifier {self.name}: {path} is unreadable") from exc
        if hashlib.sha256(data).hexdigest() != self.model_sha256:
            raise ModelUnavailable(f"classifier {self.name}: {path} does not match the "
                                   f"sha256 in {META_FILE}")
        return data

    def _get(self) -> tuple[Any, list[str]]:
        loaded = self._session
        if loaded is not None and loaded.pid == os.getpid():
            return loaded.session, loaded.outputs
        with self._lock:
            if self._session is not None and self._session.pid != os.getpid():
                self._abandon_inherited()
            if self._inherited:
                raise ModelUnavailable(f"classifier {self.name} was loaded before this "
                                       "process forked; load it only after fork")
            if self._session is None:
                session = self._open_session()
                names = {output.name for output in session.get_outputs()}
                outputs = ["probabilities", *(["out_of_scope"] if "out_of_scope" in names
                                              else [])]
                self._session = _Session(session, outputs, os.getpid())
            return self._session.session, self._session.outputs

    def _open_session(self) -> Any:
        data = self._read_model()
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelUnavailable("onnxruntime is not installed") from exc
        options = onnxruntime.SessionOptions()
        # A query costs well under a millisecond: more threads would only add hand-offs.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return onnxruntime.InferenceSession(data, sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors derive from bare Exception
            raise ModelUnavailable(f"classifier {self.name}: model.onnx failed to load") from exc

    def _abandon_inherited(self) -> None:
        """Forget a session opened before fork without freeing it (freeing it may hang)."""
        log.error("classifier %s was loaded before pid %d forked", self.name, os.getpid())
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._session))
        self._session = None
        self._inherited = True

    def close(self) -> None:
        """Release the session; the next prediction opens it again."""
        with self._lock:
            if self._session is not None and self._session.pid != os.getpid():
                self._abandon_inherited()
            self._session = None


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"classifier in {directory}: {META_FILE} is missing or not "
                               "JSON") from exc
    problem = _meta_problem(meta)
    if problem:
        raise ModelUnavailable(f"classifier in {directory}: {META_FILE} {problem}")
    return dict(meta)


def _meta_problem(meta: Any) -> str | None:
    """What is wrong with the metadata, or None."""
    if not isinstance(meta, dict):
        return "is not an object"
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        return f"is not {FORMAT} version {FORMAT_VERSION}"
    labels = meta.get("labels")
    if (not isinstance(labels, list) or len(labels) < 2
            or not all(isinstance(label, str) for label in labels)
            or len(set(labels)) != len(labels)):
        return "needs at least two distinct string labels"
    oos, threshold = meta.get("oos_label"), meta.get("threshold")
    if oos is not None and oos not in labels:
        return f"names oos_label {oos!r}, which is not a label"
    if threshold is not None and not isinstance(threshold, int | float):
        return "has a threshold that is not a number"
    features = meta.get("features")
    if not isinstance(features, dict) or not (features.get("text") or features.get("embedding")):
        return "names no features"
    embedding = features.get("embedding")
    if embedding and not (isinstance(embedding.get("model_id"), str)
                          and isinstance(embedding.get("dim"), int)):
        return "needs the embedding's model_id and dim"
    if not isinstance(meta.get("model_sha256"), str) or not isinstance(meta.get("name"), str):
        return "needs name and model_sha256"
    return None
