"""Training text classifiers, and measuring them.

`train(texts, labels, ...)` builds three parts and exports them as one ONNX model that
`TextClassifier` runs without scikit-learn:

1. a linear head (LinearSVC, one-vs-rest) over TF-IDF of word 1-2-grams and character
   2-5-grams of the normalised text beside the shared sentence embedding (scaled by
   `embedding_weight` so that it is not drowned by the sparse features);
2. a nearest-neighbour memory of the training embeddings (centred, projected on their main
   axes, int8): the labels of the `knn_neighbours` most similar rows vote, and the votes
   multiply the head's probabilities with a weight chosen on held-out folds;
3. with out-of-scope rows (labelled `oos_label`), a scope model: a logistic regression on how
   sure the head is (best in-scope and out-of-scope probabilities), how close the message is
   to the in-scope and out-of-scope examples, and how well Gaussians of the in-scope
   embeddings explain it (Mahalanobis distance to the nearest label's, relative to that of
   all in-scope rows, and the share of the embedding off the memory's main axes). Its
   output, `out_of_scope` in [0, 1], rejects a message at `threshold`.

Before the final fit, `folds`-fold cross-validation on the training data gives the metrics
recorded in the artefact, the softmax temperature (fitted to the held-out scores, so that
probabilities mean something), the neighbour weight, the scope model's training rows and the
threshold. A second cross-validation leaves a group of in-scope labels out of each fold's
training: its held-out rows of those labels are text of intents the model has never seen, and
join the out-of-scope rows as the scope model's positives, so that the scope model learns what
unfamiliar text looks like to the model, not only what the few out-of-scope examples look like.
The threshold is chosen on cross-fitted scope probabilities (each fold's from a scope model
fitted on the other folds): the one that rejects the most held-out out-of-scope and unfamiliar
rows while costing at most `reject_budget` of held-out in-scope accuracy. Nothing outside the
training rows plays a part. The final model's ONNX outputs are checked against scikit-learn
and numpy on a sample before the artefact is returned.

The same trainer serves every label set: a brand's intents (from its workflows' example
utterances), the generic sentiment and human-request classifiers, binary or multi-class, with
or without out-of-scope rows. scikit-learn, skl2onnx and onnx are imported here only.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.errors import InvalidRequest, ModelError
from appliance.signals.base import Embedder, Vectors
from appliance.signals.classifier import (
    FORMAT,
    FORMAT_VERSION,
    MAX_CHARS,
    META_FILE,
    MODEL_FILE,
    TextClassifier,
    clean_text,
    normalise_text,
)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
ProgressFn = Callable[[str], None]
#: Word tokens: ASCII letters and digits. onnxruntime's tokenizer (RE2) and Python's `re`
#: agree on this class, so the ONNX features equal scikit-learn's exactly.
TOKEN_PATTERN = r"[a-z0-9]+"
#: ONNX opsets of the exported model.
OPSETS = {"": 17, "ai.onnx.ml": 3}
#: Rows on which the ONNX model is compared with scikit-learn after training.
CHECK_ROWS = 200
#: Largest difference in any output between ONNX and scikit-learn that passes.
CHECK_TOLERANCE = 1e-4
#: Floor of the neighbour votes before their log: a label no neighbour voted for is
#: penalised, not ruled out.
VOTE_FLOOR = 1e-4
#: Added to a similarity to keep a memory row out of a maximum (similarities are >= -1).
EXCLUDED = -4.0
#: Neighbours whose mean similarity is a scope feature.
SCOPE_NEIGHBOURS = 5
#: Added to the covariances of the density model before inverting them (after shrinkage).
COVARIANCE_RIDGE = 1e-6
#: Floor of a squared distance or a norm before its log or a division.
DISTANCE_FLOOR = 1e-9
#: Scope features the memory adds (see `_Memory.neighbourhood`).
NEIGHBOURHOOD_FEATURES = 7


@dataclass(frozen=True)
class TrainOptions:
    """How a classifier is trained; recorded in the artefact. Defaults were chosen by 5-fold
    cross-validation on Banking77 and CLINC150 (see docs/signals.md)."""

    #: Use TF-IDF features of the text.
    text: bool = True
    #: Use the sentence embedding, in the head and as the neighbour memory (needs an
    #: embedder, or vectors).
    embedding: bool = True
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    #: Vocabulary caps: they bound the model file (a float16 weight per feature and label).
    max_word_features: int = 4000
    max_char_features: int = 12000
    #: Character n-grams seen in fewer rows are dropped.
    char_min_df: int = 2
    #: Scale of the (unit) embedding against the (unit) TF-IDF blocks.
    embedding_weight: float = 3.0
    #: LinearSVC regularisation (smaller is stronger).
    C: float = 0.5
    #: Neighbours that vote, the softness of their votes (a similarity this much below the
    #: nearest one weighs 1/e as much), the memory's dimensions and its largest row count.
    knn_neighbours: int = 10
    knn_temperature: float = 0.05
    knn_dims: int = 192
    max_memory_rows: int = 20000
    #: Weight of the neighbour votes (0: the head alone). With several, the one with the best
    #: held-out accuracy, then log-likelihood, is used; 0.5 alone was best on Banking77.
    knn_weights: tuple[float, ...] = (0.5,)
    #: Held-out in-scope accuracy the out-of-scope threshold may cost, at most.
    reject_budget: float = 0.01
    #: Teach the scope model unfamiliar text beside the out-of-scope rows: in a second
    #: cross-validation each fold also leaves a group of in-scope labels out of training, and
    #: its rows of those labels become out-of-scope examples (needs 3 in-scope labels).
    leave_labels_out: bool = True
    #: Held-out folds for metrics and calibration (at most the smallest label's row count).
    folds: int = 5
    seed: int = 0


@dataclass
class Artefact:
    """A trained classifier: the ONNX model, its metadata, and the fitted parts (not saved)."""

    model: bytes
    meta: dict[str, Any]
    parts: _Parts = field(repr=False)

    def reference_outputs(self, texts: Sequence[str],
                          vectors: Vectors | None = None) -> tuple[Floats, Floats | None]:
        """(probabilities, out-of-scope probability or None) computed with scikit-learn and
        numpy, for checking the ONNX model."""
        return self.parts.outputs(texts, vectors)

    def reference_probabilities(self, texts: Sequence[str],
                                vectors: Vectors | None = None) -> Floats:
        return self.parts.outputs(texts, vectors)[0]


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    oos_label: str | None = None,
    embedder: Embedder | None = None,
    vectors: Vectors | None = None,
    name: str = "classifier",
    options: TrainOptions | None = None,
    progress: ProgressFn | None = None,
) -> Artefact:
    """Train a classifier on `texts` and their `labels`.

    `oos_label` names the out-of-scope label (None: every label is in scope; a label that no
    row carries is ignored). `vectors` are the texts' embeddings if already made; otherwise
    `embedder` embeds them. Raises InvalidRequest for unusable data (lengths differ, fewer
    than two labels) and ModelError if the exported model disagrees with scikit-learn.
    """
    options = options or TrainOptions()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    texts, labels = [clean_text(t) for t in texts], [str(label) for label in labels]
    label_set = _check_data(texts, labels, options)
    if oos_label not in label_set:
        oos_label = None
    model_id, vectors = _embeddings(texts, vectors, embedder, options, say)
    y = np.array([label_set.index(label) for label in labels], dtype=np.int64)
    oos = label_set.index(oos_label) if oos_label is not None else None

    splits = _splits(y, options)
    say(f"cross-validating ({len(splits)} folds)")
    held = _cross_validate(texts, vectors, y, len(label_set), oos, options, splits)
    temperature = _fit_temperature(held.scores, y)
    logits = held.scores / temperature
    knn_weight = _choose_knn_weight(logits, held.votes, y, options)
    probabilities = _softmax(_blend(logits, held.votes, knn_weight))
    scope, threshold, scope_held = None, None, None
    trade_off: list[dict[str, float]] = []
    if oos is not None:
        rows = _ScopeRows.held_out(_scope_features(_softmax(logits), oos, held.neighbourhood),
                                   y == oos, splits)
        unfamiliar = _label_out_splits(y, oos, splits, options)
        if unfamiliar:
            say(f"cross-validating with labels left out ({len(unfamiliar)} folds)")
            rows = rows.with_unfamiliar(_unfamiliar_features(
                texts, vectors, y, len(label_set), oos, options, unfamiliar, temperature))
        scope = _Scope.fit(rows.features, rows.is_oos)
        scope_held = rows.cross_fitted()
        threshold, trade_off = _choose_threshold(probabilities, scope_held[:len(y)], y, oos,
                                                 options.reject_budget,
                                                 scope_held[len(y):])
    predicted = _decide(probabilities, oos,
                        None if scope_held is None else scope_held[:len(y)], threshold)
    metrics: dict[str, Any] = {
        "folds": len(splits),
        **score([label_set[i] for i in y], [label_set[i] for i in predicted], oos_label),
    }
    if trade_off:
        metrics["threshold_trade_off"] = trade_off
        metrics["unfamiliar_rows"] = len(scope_held) - len(y) if scope_held is not None else 0

    say("fitting on all rows")
    parts = _Parts.fit(texts, vectors, y, len(label_set), oos, options, temperature,
                       knn_weight, scope)
    model = _to_onnx(parts, options)
    meta = _meta(name, label_set, oos_label, threshold, options, model_id, vectors,
                 texts, labels, metrics, parts, model)
    artefact = Artefact(model, meta, parts)
    meta["onnx_check"] = _check_onnx(artefact, texts, vectors)
    meta["training_seconds"] = round(time.perf_counter() - started, 1)
    return artefact


def save(artefact: Artefact, out_dir: Path) -> Path:
    """Write the artefact to `out_dir` atomically: a complete new directory replaces an
    existing one, never a half-written one. Returns `out_dir`.

    Raises InvalidRequest when `out_dir` exists and is neither empty nor a classifier (it
    would be deleted).
    """
    out_dir = check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (staging / MODEL_FILE).write_bytes(artefact.model)
        (staging / META_FILE).write_text(json.dumps(artefact.meta, indent=2, ensure_ascii=False)
                                         + "\n", encoding="utf-8")
        for path in (staging / MODEL_FILE, staging / META_FILE):
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        staging.chmod(0o755)
        if out_dir.exists():
            retired = out_dir.with_name(f".{out_dir.name}.old.{os.getpid()}")
            out_dir.rename(retired)
            staging.rename(out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def check_out_dir(out_dir: Path) -> Path:
    """`out_dir`, resolved, if `save` may write there: absent, empty, or a classifier."""
    out_dir = out_dir.resolve()
    if out_dir.exists() and not (out_dir.is_dir() and (
            (out_dir / META_FILE).is_file() or not any(out_dir.iterdir()))):
        raise InvalidRequest(f"{out_dir} exists and is not a classifier directory; "
                             "choose a new or empty directory")
    return out_dir


# --- measuring ----------------------------------------------------------------------------------

#: The keys `evaluate` returns besides `n`, in the order the CLI prints them.
METRIC_KEYS = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_precision", "oos_recall",
               "p50_ms", "p95_ms")


def evaluate(classifier: TextClassifier, texts: Sequence[str], labels: Sequence[str],
             oos_label: str | None = "oos") -> dict[str, Any]:
    """Metrics of `classifier` on labelled texts, and its latency.

    Each text is classified alone, from raw text (embedding included when the model reads
    it), and timed (after one untimed call that opens the models). A rejected text counts as
    a prediction of `oos_label`. Returns the METRIC_KEYS and `n`; oos metrics are None when
    no row is labelled `oos_label`.
    """
    if texts:
        classifier.predict(texts[0])
    predicted, seconds = [], []
    for text in texts:
        started = time.perf_counter()
        found = classifier.predict(text)
        seconds.append(time.perf_counter() - started)
        predicted.append(oos_label if found.out_of_scope and oos_label else found.label)
    result: dict[str, Any] = score(list(labels), [str(p) for p in predicted], oos_label)
    ms = np.asarray(seconds) * 1000
    result["p50_ms"] = round(float(np.percentile(ms, 50)), 3) if len(ms) else None
    result["p95_ms"] = round(float(np.percentile(ms, 95)), 3) if len(ms) else None
    result["n"] = len(predicted)
    return {key: result[key] for key in (*METRIC_KEYS, "n")}


def score(gold: Sequence[str], predicted: Sequence[str],
          oos_label: str | None) -> dict[str, float | None]:
    """accuracy (all rows, out-of-scope as a class), macro F1 over the gold labels,
    in-scope accuracy (a rejected in-scope row is wrong), and precision and recall of
    out-of-scope predictions (None without out-of-scope rows, or without such predictions
    for precision)."""
    g, p = np.asarray(gold, dtype=object), np.asarray(predicted, dtype=object)
    if len(g) == 0:
        return dict.fromkeys(("accuracy", "macro_f1", "in_scope_accuracy", "oos_precision",
                              "oos_recall"))
    correct = g == p
    f1s = []
    for label in sorted(set(gold)):
        tp = float(np.sum((g == label) & correct))
        fp, fn = float(np.sum((p == label) & ~correct)), float(np.sum((g == label) & ~correct))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    is_oos = g == oos_label if oos_label is not None else np.zeros(len(g), dtype=bool)
    said_oos = p == oos_label if oos_label is not None else np.zeros(len(g), dtype=bool)
    in_scope = ~is_oos
    has_oos = bool(is_oos.any())
    return {
        "accuracy": _round(correct.mean()),
        "macro_f1": _round(np.mean(f1s)),
        "in_scope_accuracy": _round(correct[in_scope].mean()) if in_scope.any() else None,
        "oos_precision": (_round(np.sum(is_oos & said_oos) / said_oos.sum())
                          if has_oos and said_oos.any() else None),
        "oos_recall": _round(np.sum(is_oos & said_oos) / is_oos.sum()) if has_oos else None,
    }


def data_sha256(texts: Sequence[str], labels: Sequence[str]) -> str:
    """Hash of the sorted (text, label) rows: the same data in any order hashes the same."""
    digest = hashlib.sha256()
    for text, label in sorted(zip(texts, labels, strict=True)):
        digest.update(json.dumps([text, label], ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def _round(value: Any) -> float:
    return round(float(value), 4)


# --- data ---------------------------------------------------------------------------------------

def _check_data(texts: list[str], labels: list[str], options: TrainOptions) -> list[str]:
    """The sorted label set; raises InvalidRequest for data that cannot train a classifier."""
    if len(texts) != len(labels):
        raise InvalidRequest(f"{len(texts)} texts but {len(labels)} labels")
    label_set = sorted(set(labels))
    if len(label_set) < 2:
        raise InvalidRequest(f"training needs at least 2 labels, found {len(label_set)}")
    if not (options.text or options.embedding):
        raise InvalidRequest("training needs text or embedding features")
    return label_set


def _embeddings(texts: list[str], vectors: Vectors | None, embedder: Embedder | None,
                options: TrainOptions, say: ProgressFn) -> tuple[str | None, Vectors | None]:
    if not options.embedding:
        return None, None
    if embedder is None:
        raise InvalidRequest("embedding features need an embedder")
    if vectors is None:
        say(f"embedding {len(texts)} texts")
        vectors = embedder.embed(texts)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(texts), embedder.dim):
        raise InvalidRequest(f"vectors of shape {vectors.shape} for {len(texts)} texts")
    return embedder.model_id, vectors


def _folds(y: Ints, options: TrainOptions) -> int:
    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    return max(2, min(options.folds, smallest, len(y) // 2))


# --- the parts ----------------------------------------------------------------------------------

class _Features:
    """TF-IDF of words and characters of the normalised text, beside the weighted embedding."""

    def __init__(self, options: TrainOptions) -> None:
        self.options = options
        self.vectorizers: list[Any] = []

    def fit(self, texts: Sequence[str]) -> _Features:
        if self.options.text:
            normalised = [normalise_text(t) for t in texts]
            self.vectorizers = [self._fit_words(normalised), self._fit_chars(normalised)]
        return self

    def _fit_words(self, normalised: list[str]) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        o = self.options

        def vectorizer(vocabulary: list[str] | None = None) -> Any:
            return TfidfVectorizer(lowercase=False, token_pattern=TOKEN_PATTERN,
                                   ngram_range=o.word_ngrams, vocabulary=vocabulary,
                                   max_features=None if vocabulary else o.max_word_features,
                                   dtype=np.float32)

        capped = vectorizer().fit(normalised)
        # ONNX matches an n-gram only if each of its words is in the vocabulary too; a cap
        # can keep "i periodically" and drop "periodically", so put such words back.
        words = set(capped.vocabulary_)
        words |= {w for gram in capped.vocabulary_ for w in gram.split(" ")}
        if len(words) == len(capped.vocabulary_):
            return capped
        return vectorizer(sorted(words)).fit(normalised)

    def _fit_chars(self, normalised: list[str]) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        o = self.options
        min_df = o.char_min_df if len(normalised) >= 10 * o.char_min_df else 1
        return TfidfVectorizer(lowercase=False, analyzer="char", ngram_range=o.char_ngrams,
                               min_df=min_df, max_features=o.max_char_features,
                               dtype=np.float32).fit(normalised)

    def transform(self, texts: Sequence[str], vectors: Vectors | None) -> Any:
        from scipy.sparse import csr_matrix, hstack

        blocks: list[Any] = []
        if self.vectorizers:
            normalised = [normalise_text(t) for t in texts]
            blocks += [v.transform(normalised) for v in self.vectorizers]
        if vectors is not None:
            weighted = np.asarray(vectors, dtype=np.float32) * self.options.embedding_weight
            blocks.append(csr_matrix(weighted))
        return hstack(blocks, format="csr", dtype=np.float32)


def _fit_linear(x: Any, y: Ints, n_labels: int, options: TrainOptions) -> tuple[Floats, Floats]:
    """One-vs-rest LinearSVC as [labels, features] weights and [labels] biases."""
    from sklearn.svm import LinearSVC

    svc = LinearSVC(C=options.C, random_state=options.seed)
    svc.fit(x, y)
    coef = np.zeros((n_labels, x.shape[1]))
    intercept = np.full(n_labels, -1e3)  # a label absent from these rows never wins
    seen = svc.classes_
    if len(seen) == 2:  # scikit-learn keeps one row for two classes: the positive side
        coef[seen[1]], intercept[seen[1]] = svc.coef_[0] / 2, svc.intercept_[0] / 2
        coef[seen[0]], intercept[seen[0]] = -svc.coef_[0] / 2, -svc.intercept_[0] / 2
    else:
        coef[seen], intercept[seen] = svc.coef_, svc.intercept_
    return coef, intercept


@dataclass
class _Memory:
    """Training embeddings for nearest-neighbour votes: centred, projected on their main
    axes, unit length, int8."""

    mean: npt.NDArray[np.float32]  # [dim]
    projection: npt.NDArray[np.float16]  # [dim, dims]
    rows: npt.NDArray[np.int8]  # [rows, dims]
    scale: float
    labels: Ints  # [rows]
    neighbours: int
    temperature: float
    #: With an out-of-scope label: the in-scope rows' density, for scope features.
    density: _Density | None = None

    @classmethod
    def build(cls, vectors: Vectors, y: Ints, options: TrainOptions,
              oos: int | None = None) -> _Memory:
        """The memory of (at most `options.max_memory_rows` of) the rows; with `oos`, also
        the density of the in-scope rows in the memory's space."""
        keep = _subsample(y, options.max_memory_rows, options.seed)
        chosen = np.asarray(vectors[keep], dtype=np.float64)
        mean = chosen.mean(axis=0)
        _, _, axes = np.linalg.svd(chosen - mean, full_matrices=False)
        projection = axes[:options.knn_dims].T.astype(np.float16)
        projected = _unit((chosen - mean) @ projection.astype(np.float64))
        scale = float(np.abs(projected).max()) / 127 or 1.0
        rows = np.round(projected / scale).astype(np.int8)
        memory = cls(mean.astype(np.float32), projection, rows, scale, y[keep],
                     min(options.knn_neighbours, len(keep)), options.knn_temperature)
        if oos is not None and (y != oos).any():
            _, raw = memory.raw(vectors)
            memory.density = _Density.fit(raw[y != oos], y[y != oos])
        return memory

    def raw(self, vectors: Vectors) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(centred embeddings, their projection on the memory's axes before unit length)."""
        centred = np.asarray(vectors, dtype=np.float32) - self.mean
        return centred, centred @ self.projection.astype(np.float32)

    def project(self, vectors: Vectors) -> npt.NDArray[np.float32]:
        projected: npt.NDArray[np.float32] = _unit(self.raw(vectors)[1]).astype(np.float32)
        return projected

    def similarities(self, vectors: Vectors) -> npt.NDArray[np.float32]:
        """[texts, rows] cosine similarities in the memory's space."""
        stored = self.rows.astype(np.float32) * np.float32(self.scale)
        result: npt.NDArray[np.float32] = self.project(vectors) @ stored.T
        return result

    def votes(self, similarities: npt.NDArray[np.float32], n_labels: int) -> Floats:
        """Each label's share of the neighbours' votes, weighted by similarity."""
        nearest = np.argsort(-similarities, axis=1, kind="stable")[:, :self.neighbours]
        values = np.take_along_axis(similarities, nearest, axis=1).astype(np.float64)
        weights = np.exp((values - values[:, :1]) / self.temperature)
        votes = np.zeros((len(similarities), n_labels))
        for j in range(nearest.shape[1]):
            np.add.at(votes, (np.arange(len(votes)), self.labels[nearest[:, j]]), weights[:, j])
        result: Floats = votes / votes.sum(axis=1, keepdims=True)
        return result

    def centroids(self, oos: int, n_labels: int) -> npt.NDArray[np.float32]:
        """[dims, in-scope labels with rows] unit mean of each in-scope label's rows."""
        stored = self.rows.astype(np.float32) * np.float32(self.scale)
        means = [stored[self.labels == k].mean(axis=0) for k in range(n_labels)
                 if k != oos and (self.labels == k).any()]
        centroids: npt.NDArray[np.float32] = _unit(np.stack(means)).T.astype(np.float32)
        return centroids

    def neighbourhood(self, vectors: Vectors, oos: int, n_labels: int) -> Floats:
        """Scope features from the memory (NEIGHBOURHOOD_FEATURES columns): similarity to
        the nearest in-scope centroid, to the nearest in-scope row, mean similarity to the
        SCOPE_NEIGHBOURS nearest in-scope rows, similarity to the nearest out-of-scope row,
        then the density's features (`_Density.features`). Needs a memory built with `oos`."""
        assert self.density is not None, "the memory was built without an out-of-scope label"
        similarities = self.similarities(vectors)
        is_oos = self.labels == oos
        centroid = (self.project(vectors) @ self.centroids(oos, n_labels)).max(axis=1)
        in_scope = -np.sort(-(similarities + EXCLUDED * is_oos), axis=1)
        nearest = in_scope[:, :min(SCOPE_NEIGHBOURS, int((~is_oos).sum()))]
        out_of_scope = (similarities + EXCLUDED * ~is_oos).max(axis=1)
        return np.column_stack([centroid, nearest[:, 0], nearest.mean(axis=1), out_of_scope,
                                self.density.features(*self.raw(vectors))])


@dataclass
class _Density:
    """Gaussians of the in-scope rows in the memory's projected space (before unit length):
    one per label around its mean with a covariance shared by all labels, and one around the
    mean of all in-scope rows ("relative Mahalanobis distance", Ren et al. 2021). Text of
    a topic the model never saw lies off the labels' Gaussians and, more than in-scope text,
    off the memory's main axes; the similarities to single rows miss both.

    Distances are computed in whitened coordinates (`x @ whiten`, where whiten @ whiten.T is
    the inverse covariance), so that the ONNX graph needs only matrix products."""

    whiten: npt.NDArray[np.float32]  # [dims, dims], shared by the labels
    means: npt.NDArray[np.float32]  # [labels, dims], whitened
    background_whiten: npt.NDArray[np.float32]  # [dims, dims]
    background_mean: npt.NDArray[np.float32]  # [dims], whitened

    @classmethod
    def fit(cls, raw: npt.NDArray[np.float32], y: Ints) -> _Density:
        x = np.asarray(raw, dtype=np.float64)
        labels, index = np.unique(y, return_inverse=True)
        means = np.stack([x[index == k].mean(axis=0) for k in range(len(labels))])
        whiten = _whitening(x - means[index])
        background = x.mean(axis=0)
        background_whiten = _whitening(x - background)
        return cls(whiten.astype(np.float32), (means @ whiten).astype(np.float32),
                   background_whiten.astype(np.float32),
                   (background @ background_whiten).astype(np.float32))

    def features(self, centred: npt.NDArray[np.float32],
                 raw: npt.NDArray[np.float32]) -> Floats:
        """[texts, 3]: the share of the centred embedding off the memory's axes, the log of
        the squared Mahalanobis distance to the nearest label, and that log minus the log of
        the distance to all in-scope rows."""
        off_axes = 1 - (raw ** 2).sum(axis=1) / np.maximum((centred ** 2).sum(axis=1),
                                                          DISTANCE_FLOOR)
        w = raw @ self.whiten
        squared = ((w ** 2).sum(axis=1, keepdims=True) - 2 * w @ self.means.T
                   + (self.means ** 2).sum(axis=1))
        nearest = np.log(np.maximum(squared.min(axis=1), DISTANCE_FLOOR))
        background = ((raw @ self.background_whiten - self.background_mean) ** 2).sum(axis=1)
        relative = nearest - np.log(np.maximum(background, DISTANCE_FLOOR))
        return np.column_stack([off_axes, nearest, relative]).astype(np.float64)


def _whitening(residuals: Floats) -> Floats:
    """W with W @ W.T the inverse of the residuals' covariance, shrunk towards a multiple of
    the identity by the Ledoit-Wolf estimate: with few rows per dimension (a brand's first
    few dozen examples) the sample covariance is singular, and distances along the axes it
    never saw would be arbitrary; with many rows the shrinkage all but vanishes."""
    from sklearn.covariance import ledoit_wolf

    covariance, _ = ledoit_wolf(residuals, assume_centered=True)
    covariance += COVARIANCE_RIDGE * np.eye(len(covariance))
    result: Floats = np.linalg.cholesky(np.linalg.inv(covariance))
    return result


def _subsample(y: Ints, limit: int, seed: int) -> Ints:
    """Row indices, at most `limit`, keeping every label's share (and every label)."""
    if len(y) <= limit:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == k))[:max(1, len(y[y == k]) * limit // len(y))]
            for k in np.unique(y)]
    return np.sort(np.concatenate(keep))


def _unit(x: Any) -> Any:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class _Scope:
    """P(out of scope) = sigmoid(features @ weights + bias), features from `_scope_features`."""

    weights: Floats
    bias: float

    @classmethod
    def fit(cls, features: Floats, is_oos: npt.NDArray[np.bool_]) -> _Scope:
        from sklearn.linear_model import LogisticRegression

        mean, std = features.mean(axis=0), np.maximum(features.std(axis=0), 1e-6)
        model = LogisticRegression(class_weight="balanced", max_iter=1000)
        model.fit((features - mean) / std, is_oos)
        weights = model.coef_[0] / std
        return cls(weights, float(model.intercept_[0] - (mean * weights).sum()))

    def probability(self, features: Floats) -> Floats:
        result: Floats = 1 / (1 + np.exp(-(features @ self.weights + self.bias)))
        return result


def _scope_features(probabilities: Floats, oos: int, neighbourhood: Floats | None) -> Floats:
    """log of the best in-scope probability, log of the out-of-scope probability, and the
    memory's neighbourhood features when there is a memory."""
    in_scope = probabilities.copy()
    in_scope[:, oos] = 0.0
    columns = [np.log(in_scope.max(axis=1) + 1e-9), np.log(probabilities[:, oos] + 1e-9)]
    features = np.column_stack(columns)
    return features if neighbourhood is None else np.hstack([features, neighbourhood])


@dataclass
class _Parts:
    """Everything the ONNX model computes, fitted, with the same computation in numpy."""

    features: _Features
    weights: npt.NDArray[np.float16]  # [features, labels], temperature folded in
    bias: npt.NDArray[np.float32]  # [labels]
    memory: _Memory | None
    knn_weight: float
    scope: _Scope | None
    oos: int | None
    n_labels: int

    @classmethod
    def fit(cls, texts: list[str], vectors: Vectors | None, y: Ints, n_labels: int,
            oos: int | None, options: TrainOptions, temperature: float, knn_weight: float,
            scope: _Scope | None) -> _Parts:
        features = _Features(options).fit(texts)
        coef, intercept = _fit_linear(features.transform(texts, vectors), y, n_labels, options)
        memory = _Memory.build(vectors, y, options, oos) if vectors is not None else None
        return cls(features, (coef.T / temperature).astype(np.float16),
                   (intercept / temperature).astype(np.float32), memory, knn_weight, scope,
                   oos, n_labels)

    def outputs(self, texts: Sequence[str],
                vectors: Vectors | None) -> tuple[Floats, Floats | None]:
        texts = [clean_text(t) for t in texts]
        x = self.features.transform(texts, vectors)
        logits = np.asarray(x @ self.weights.astype(np.float32), dtype=np.float64) + self.bias
        votes = neighbourhood = None
        if self.memory is not None and vectors is not None:
            votes = self.memory.votes(self.memory.similarities(vectors), self.n_labels)
            if self.scope is not None and self.oos is not None:
                neighbourhood = self.memory.neighbourhood(vectors, self.oos, self.n_labels)
        probabilities = _softmax(_blend(logits, votes, self.knn_weight))
        if self.scope is None or self.oos is None:
            return probabilities, None
        features = _scope_features(_softmax(logits), self.oos, neighbourhood)
        return probabilities, self.scope.probability(features)


def _blend(logits: Floats, votes: Floats | None, weight: float) -> Floats:
    """The head's logits plus `weight` times the log of the neighbours' votes."""
    if votes is None or weight == 0:
        return logits
    result: Floats = logits + weight * np.log(votes + VOTE_FLOOR)
    return result


def _softmax(logits: Floats) -> Floats:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: Floats = exp / exp.sum(axis=1, keepdims=True)
    return result


# --- held-out folds -----------------------------------------------------------------------------

@dataclass
class _HeldOut:
    """Each row's outputs from parts trained on the other folds."""

    scores: Floats  # the head's [rows, labels]
    votes: Floats | None  # the neighbours' [rows, labels]
    neighbourhood: Floats | None  # the memory's scope features, with an oos label


def _splits(y: Ints, options: TrainOptions) -> list[tuple[Ints, Ints]]:
    """(train rows, held-out rows) of each fold: stratified when every label has a row in
    each fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    folds = _folds(y, options)
    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=options.seed)
                if smallest >= folds else KFold(folds, shuffle=True, random_state=options.seed))
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros(len(y)), y)]


def _label_out_splits(y: Ints, oos: int, splits: list[tuple[Ints, Ints]],
                      options: TrainOptions) -> list[tuple[Ints, Ints]]:
    """The folds of `splits`, each training without one group of in-scope labels and holding
    out only its rows of that group: text of intents the model has never seen. Empty when
    the option is off or there are fewer than 3 in-scope labels (a fold must keep 2)."""
    labels = np.array(sorted(set(y.tolist()) - {oos}))
    if not options.leave_labels_out or len(labels) < 3:
        return []
    groups = min(len(splits), len(labels))
    group_of = dict(zip(np.random.default_rng(options.seed).permutation(labels).tolist(),
                        np.arange(len(labels)) % groups, strict=True))
    row_group = np.array([group_of.get(label, -1) for label in y.tolist()])
    result = []
    for k, (train_rows, test_rows) in enumerate(splits):
        group = k % groups
        result.append((train_rows[row_group[train_rows] != group],
                       test_rows[row_group[test_rows] == group]))
    return result


def _cross_validate(texts: list[str], vectors: Vectors | None, y: Ints, n_labels: int,
                    oos: int | None, options: TrainOptions,
                    splits: list[tuple[Ints, Ints]]) -> _HeldOut:
    """Each held-out row's outputs from parts trained on its fold's training rows (rows no
    fold holds out stay zero)."""
    held = _HeldOut(np.zeros((len(y), n_labels)),
                    np.zeros((len(y), n_labels)) if vectors is not None else None,
                    np.zeros((len(y), NEIGHBOURHOOD_FEATURES))
                    if vectors is not None and oos is not None else None)
    for train_rows, test_rows in splits:
        part = [texts[i] for i in train_rows]
        test = [texts[i] for i in test_rows]
        part_vectors = vectors[train_rows] if vectors is not None else None
        test_vectors = vectors[test_rows] if vectors is not None else None
        features = _Features(options).fit(part)
        coef, intercept = _fit_linear(features.transform(part, part_vectors), y[train_rows],
                                      n_labels, options)
        held.scores[test_rows] = np.asarray(features.transform(test, test_vectors) @ coef.T) \
            + intercept
        if part_vectors is not None and test_vectors is not None:
            memory = _Memory.build(part_vectors, y[train_rows], options, oos)
            assert held.votes is not None
            held.votes[test_rows] = memory.votes(memory.similarities(test_vectors), n_labels)
            if held.neighbourhood is not None and oos is not None:
                held.neighbourhood[test_rows] = memory.neighbourhood(test_vectors, oos,
                                                                     n_labels)
    return held


def _unfamiliar_features(texts: list[str], vectors: Vectors | None, y: Ints, n_labels: int,
                         oos: int, options: TrainOptions, splits: list[tuple[Ints, Ints]],
                         temperature: float) -> tuple[Floats, Ints]:
    """(scope features, fold) of the rows that `_label_out_splits` holds out."""
    held = _cross_validate(texts, vectors, y, n_labels, oos, options, splits)
    rows = np.concatenate([test_rows for _, test_rows in splits])
    fold = np.concatenate([np.full(len(test_rows), k) for k, (_, test_rows)
                           in enumerate(splits)])
    neighbourhood = held.neighbourhood[rows] if held.neighbourhood is not None else None
    return _scope_features(_softmax(held.scores[rows] / temperature), oos, neighbourhood), fold


@dataclass
class _ScopeRows:
    """The scope model's training rows: every row's held-out scope features, then the
    unfamiliar rows (all out of scope), each with the fold that held it out."""

    features: Floats
    is_oos: npt.NDArray[np.bool_]
    fold: Ints

    @classmethod
    def held_out(cls, features: Floats, is_oos: npt.NDArray[np.bool_],
                 splits: list[tuple[Ints, Ints]]) -> _ScopeRows:
        fold = np.zeros(len(features), dtype=np.int64)
        for k, (_, test_rows) in enumerate(splits):
            fold[test_rows] = k
        return cls(features, is_oos, fold)

    def with_unfamiliar(self, unfamiliar: tuple[Floats, Ints]) -> _ScopeRows:
        features, fold = unfamiliar
        return _ScopeRows(np.vstack([self.features, features]),
                          np.concatenate([self.is_oos, np.ones(len(features), dtype=bool)]),
                          np.concatenate([self.fold, fold]))

    def cross_fitted(self) -> Floats:
        """Each row's P(out of scope) from a scope model fitted on the other folds' rows, so
        that the threshold is chosen on probabilities the scope model did not fit."""
        result = np.zeros(len(self.features))
        for k in np.unique(self.fold):
            fit = self.fold != k
            if len(np.unique(self.is_oos[fit])) < 2:
                fit = np.ones(len(self.fold), dtype=bool)
            result[self.fold == k] = _Scope.fit(self.features[fit], self.is_oos[fit]) \
                .probability(self.features[self.fold == k])
        return result


def _fit_temperature(scores: Floats, y: Ints) -> float:
    """The softmax temperature that minimises the held-out negative log-likelihood."""
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        p = _softmax(scores / np.exp(log_t))[rows, y]
        return float(-np.log(np.maximum(p, 1e-12)).mean())

    grid = np.linspace(np.log(1e-3), np.log(10.0), 60)
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = np.linspace(best - 0.15, best + 0.15, 31)
    return round(float(np.exp(fine[int(np.argmin([nll(t) for t in fine]))])), 5)


def _choose_knn_weight(logits: Floats, votes: Floats | None, y: Ints,
                       options: TrainOptions) -> float:
    """The neighbour weight with the best held-out accuracy, then log-likelihood."""
    if votes is None:
        return 0.0
    rows = np.arange(len(y))

    def quality(weight: float) -> tuple[float, float]:
        blended = _blend(logits, votes, weight)
        log_likelihood = np.log(np.maximum(_softmax(blended)[rows, y], 1e-12)).mean()
        return float((blended.argmax(axis=1) == y).mean()), float(log_likelihood)

    return max(sorted(options.knn_weights), key=quality)


def _decide(probabilities: Floats, oos: int | None, scope: Floats | None,
            threshold: float | None) -> Ints:
    """Predicted label indices, as TextClassifier decides them (oos when rejected)."""
    if oos is None:
        return np.asarray(probabilities.argmax(axis=1))
    in_scope = probabilities.copy()
    in_scope[:, oos] = -1.0
    best = in_scope.argmax(axis=1)
    if scope is not None and threshold is not None:
        rejected = scope >= threshold
    else:
        rejected = probabilities.argmax(axis=1) == oos
    return np.where(rejected, oos, best)


def _choose_threshold(probabilities: Floats, scope: Floats, y: Ints, oos: int,
                      budget: float, unfamiliar: Floats) -> tuple[float, list[dict[str, float]]]:
    """The threshold on P(out of scope) that rejects the most held-out out-of-scope rows
    (the unfamiliar rows' `unfamiliar` probabilities counted with them) while held-out
    in-scope accuracy stays within `budget` of what it is without rejecting (the middle one
    of thresholds that do equally well), and the trade-off around it."""
    is_oos = y == oos
    best_in_scope = np.where(np.arange(probabilities.shape[1]) == oos, -1.0,
                             probabilities).argmax(axis=1)
    unrejected = float((best_in_scope == y)[~is_oos].mean())
    rejectable = np.concatenate([scope[is_oos], unfamiliar])
    curve = []
    for threshold in np.round(np.arange(0.01, 1.0, 0.01), 2):
        predicted = _decide(probabilities, oos, scope, float(threshold))
        point = {"threshold": float(threshold),
                 "in_scope_accuracy": _round((predicted == y)[~is_oos].mean()),
                 "oos_recall": _round((predicted == oos)[is_oos].mean())}
        if len(unfamiliar):
            point["unfamiliar_recall"] = _round((unfamiliar >= threshold).mean())
        point["rejected"] = _round((rejectable >= threshold).mean())
        curve.append(point)
    allowed = [i for i, point in enumerate(curve)
               if point["in_scope_accuracy"] >= unrejected - budget] or [len(curve) - 1]
    def key(i: int) -> tuple[float, float]:
        return curve[i]["rejected"], curve[i]["in_scope_accuracy"]

    # Of thresholds that tie (small, separable data), the middle one: the lowest would
    # reject any paraphrase a little less familiar than the training rows.
    tied = [i for i in allowed if key(i) == max(key(j) for j in allowed)]
    best = tied[len(tied) // 2]
    shown = sorted({*range(max(0, best - 30), min(len(curve), best + 31), 10), best})
    return curve[best]["threshold"], [curve[i] for i in shown]


# --- export -------------------------------------------------------------------------------------

class _Graph:
    """Nodes and constants of the ONNX graph being built, with unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, name: str, value: Any) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, outputs: int = 1,
           **attributes: Any) -> Any:
        from onnx import helper

        self._count += 1
        names = [out] if out else [f"{op_type.lower()}_{self._count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names


def _to_onnx(parts: _Parts, options: TrainOptions) -> bytes:
    """One ONNX model: inputs `text` and/or `embedding`; outputs `probabilities` and, with a
    scope model, `out_of_scope`."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    inputs, outputs, opsets = [], [], dict(OPSETS)
    blocks = _text_blocks(g, parts.features, opsets)
    if blocks:
        inputs.append(helper.make_tensor_value_info("text", TensorProto.STRING, [None, 1]))
    if options.embedding:
        dim = parts.memory.mean.shape[0] if parts.memory is not None else 0
        inputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, dim]))
        blocks.append(g.op("Mul", "embedding", g.const(
            "embedding_weight", _f32(options.embedding_weight))))
    features = g.op("Concat", *blocks, axis=1)
    weights = g.op("Cast", g.const("head_weights", parts.weights), to=TensorProto.FLOAT)
    logits = g.op("Add", g.op("MatMul", features, weights), g.const("head_bias", parts.bias))
    blended, memory_nodes = logits, None
    if parts.memory is not None:
        memory_nodes = _knn_nodes(g, parts.memory, parts.n_labels)
        if parts.knn_weight:
            floor = g.op("Add", memory_nodes.votes, g.const("vote_floor", _f32(VOTE_FLOOR)))
            blended = g.op("Add", logits, g.op("Mul", g.op("Log", floor), g.const(
                "knn_weight", _f32(parts.knn_weight))))
    g.op("Softmax", blended, out="probabilities", axis=1)
    outputs.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                 [None, parts.n_labels]))
    if parts.scope is not None and parts.oos is not None:
        _scope_nodes(g, parts, g.op("Softmax", logits, axis=1), memory_nodes)
        outputs.append(helper.make_tensor_value_info("out_of_scope", TensorProto.FLOAT, [None]))
    graph = helper.make_graph(g.nodes, "text_classifier", inputs, outputs,
                              initializer=g.initializers)
    model = helper.make_model(graph, producer_name="appliance.signals.training",
                              opset_imports=[helper.make_opsetid(d, v)
                                             for d, v in sorted(opsets.items())])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _text_blocks(g: _Graph, features: _Features, opsets: dict[str, int]) -> list[str]:
    """The vectorizers as skl2onnx converts them, all reading input `text`."""
    from onnx import compose
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    blocks = []
    for i, vectorizer in enumerate(features.vectorizers):
        with warnings.catch_warnings():
            # skl2onnx warns that character analyzers "may not work"; train() checks them.
            warnings.simplefilter("ignore", UserWarning)
            part = convert_sklearn(
                vectorizer, initial_types=[("text", StringTensorType([None, 1]))],
                target_opset=OPSETS,
                # Only used if a vectorizer lowercases (ours do not: normalise_text does);
                # this box has no en_US.UTF-8, onnxruntime's default locale.
                options={id(vectorizer): {"locale": "C.UTF-8"}},
            )
        part = compose.add_prefix(part, f"tfidf{i}_")
        g.op("Identity", "text", out=part.graph.input[0].name)
        g.nodes.extend(part.graph.node)
        g.initializers.extend(part.graph.initializer)
        blocks.append(part.graph.output[0].name)
        for opset in part.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    return blocks


@dataclass(frozen=True)
class _MemoryNodes:
    """Names of the memory's outputs in the graph."""

    centred: str  # the embedding minus the memory's mean
    raw: str  # centred, projected on the memory's axes
    projected: str  # raw at unit length
    similarities: str  # to every memory row
    votes: str  # each label's share of the neighbours' votes


def _knn_nodes(g: _Graph, memory: _Memory, n_labels: int) -> _MemoryNodes:
    """Nodes computing the projected query, its similarities to the memory, and the votes."""
    from onnx import TensorProto

    centred = g.op("Sub", "embedding", g.const("memory_mean", memory.mean))
    projection = g.op("Cast", g.const("memory_projection", memory.projection),
                      to=TensorProto.FLOAT)
    raw = g.op("MatMul", centred, projection)
    norm = g.op("Max", g.op("ReduceL2", raw, axes=[1], keepdims=1),
                g.const("norm_floor", _f32(1e-12)))
    projected = g.op("Div", raw, norm)
    stored = g.op("Mul", g.op("Cast", g.const("memory_rows", memory.rows.T), to=TensorProto.FLOAT),
                  g.const("memory_scale", _f32(memory.scale)))
    similarities = g.op("MatMul", projected, stored)
    values, indices = g.op("TopK", similarities, g.const("knn_k", _i64(memory.neighbours)),
                           outputs=2, axis=1, largest=1, sorted=1)
    nearest = g.op("Slice", values, g.const("zero", _i64(0)), g.const("one", _i64(1)),
                   g.const("axis1", _i64(1)))
    weights = g.op("Exp", g.op("Div", g.op("Sub", values, nearest),
                               g.const("knn_temperature", _f32(memory.temperature))))
    labels = g.op("Gather", g.const("memory_labels", memory.labels.astype(np.int32)), indices,
                  axis=0)
    one_hot = g.op("OneHot", g.op("Cast", labels, to=TensorProto.INT64),
                   g.const("n_labels", _i64(n_labels)),
                   g.const("off_on", _f32(0.0, 1.0)), axis=-1)
    weighted = g.op("Mul", one_hot, g.op("Unsqueeze", weights,
                                         g.const("axis2", _i64(2))))
    votes = g.op("ReduceSum", weighted, "axis1", keepdims=0)
    total = g.op("ReduceSum", votes, "axis1", keepdims=1)
    return _MemoryNodes(centred, raw, projected, similarities, g.op("Div", votes, total))


def _scope_nodes(g: _Graph, parts: _Parts, head_probabilities: str,
                 nodes: _MemoryNodes | None) -> None:
    """Nodes computing `out_of_scope` from the head's probabilities and the memory."""
    assert parts.scope is not None and parts.oos is not None
    oos, n_labels = parts.oos, parts.n_labels
    mask = np.ones(n_labels, dtype=np.float32)
    mask[oos] = 0
    eps = g.const("log_floor", _f32(1e-9))
    best = g.op("ReduceMax", g.op("Mul", head_probabilities, g.const("in_scope_mask", mask)),
                axes=[1], keepdims=1)
    oos_probability = g.op("Gather", head_probabilities, g.const("oos_index", _i64(oos)),
                           axis=1)
    columns = [g.op("Log", g.op("Add", best, eps)), g.op("Log", g.op("Add", oos_probability, eps))]
    memory = parts.memory
    if memory is not None and nodes is not None:
        projected, similarities = nodes.projected, nodes.similarities
        is_oos = (memory.labels == oos).astype(np.float32)
        nearest = min(SCOPE_NEIGHBOURS, int((1 - is_oos).sum()))
        centroid = g.op("MatMul", projected, g.const("centroids", memory.centroids(oos, n_labels)))
        columns.append(g.op("ReduceMax", centroid, axes=[1], keepdims=1))
        in_scope = g.op("Add", similarities, g.const("exclude_oos", EXCLUDED * is_oos))
        top, _ = g.op("TopK", in_scope, g.const("scope_k", _i64(nearest)), outputs=2,
                      axis=1, largest=1, sorted=1)
        columns.append(g.op("Slice", top, "zero", "one", "axis1"))
        columns.append(g.op("ReduceMean", top, axes=[1], keepdims=1))
        out_of_scope = g.op("Add", similarities, g.const("exclude_in_scope",
                                                         EXCLUDED * (1 - is_oos)))
        columns.append(g.op("ReduceMax", out_of_scope, axes=[1], keepdims=1))
        assert memory.density is not None
        columns += _density_nodes(g, memory.density, nodes)
    features = g.op("Concat", *columns, axis=1)
    z = g.op("Add", g.op("MatMul", features, g.const(
        "scope_weights", parts.scope.weights.astype(np.float32)[:, None])),
        g.const("scope_bias", _f32(parts.scope.bias)))
    g.op("Reshape", g.op("Sigmoid", z), g.const("flat", _i64(-1)), out="out_of_scope")


def _density_nodes(g: _Graph, density: _Density, nodes: _MemoryNodes) -> list[str]:
    """Nodes computing `_Density.features`, each a [N, 1] column."""
    floor = g.const("distance_floor", _f32(DISTANCE_FLOOR))

    def squared_norm(x: str) -> str:
        return str(g.op("ReduceSum", g.op("Mul", x, x), "axis1", keepdims=1))

    def log_floor(x: str) -> str:
        return str(g.op("Log", g.op("Max", x, floor)))

    off_axes = g.op("Sub", g.const("density_one", _f32(1.0)),
                    g.op("Div", squared_norm(nodes.raw),
                         g.op("Max", squared_norm(nodes.centred), floor)))
    w = g.op("MatMul", nodes.raw, g.const("density_whiten", density.whiten))
    cross = g.op("MatMul", w, g.const("density_means", density.means.T))
    squared = g.op("Add", g.op("Sub", squared_norm(w), g.op("Mul", cross, g.const(
        "density_two", _f32(2.0)))), g.const("density_mean_norms",
                                             (density.means ** 2).sum(axis=1)))
    nearest = log_floor(g.op("ReduceMin", squared, axes=[1], keepdims=1))
    background = g.op("Sub", g.op("MatMul", nodes.raw, g.const(
        "density_background_whiten", density.background_whiten)),
        g.const("density_background_mean", density.background_mean))
    relative = g.op("Sub", nearest, log_floor(squared_norm(background)))
    return [off_axes, nearest, relative]


def _f32(*values: float) -> npt.NDArray[np.float32]:
    return np.array(values, dtype=np.float32)


def _i64(*values: int) -> Ints:
    return np.array(values, dtype=np.int64)


def _check_onnx(artefact: Artefact, texts: list[str], vectors: Vectors | None) -> dict[str, Any]:
    """Compare the ONNX model with scikit-learn on a sample; raise ModelError on a mismatch."""
    import onnxruntime

    rows = np.random.default_rng(0).permutation(len(texts))[:CHECK_ROWS]
    sample = [texts[i] for i in rows]
    sample_vectors = vectors[rows] if vectors is not None else None
    expected, expected_scope = artefact.reference_outputs(sample, sample_vectors)
    session = onnxruntime.InferenceSession(artefact.model, providers=["CPUExecutionProvider"])
    feeds: dict[str, Any] = {}
    if artefact.parts.features.vectorizers:
        feeds["text"] = np.array([[normalise_text(t)] for t in sample], dtype=object)
    if sample_vectors is not None:
        feeds["embedding"] = sample_vectors
    names = [o.name for o in session.get_outputs()]
    actual = dict(zip(names, session.run(names, feeds), strict=True))
    difference = float(np.abs(actual["probabilities"] - expected).max())
    if expected_scope is not None:
        difference = max(difference, float(np.abs(actual["out_of_scope"] - expected_scope).max()))
    agree = float((actual["probabilities"].argmax(axis=1) == expected.argmax(axis=1)).mean())
    if difference > CHECK_TOLERANCE:
        raise ModelError(f"the ONNX export differs from scikit-learn by {difference:.2g}")
    return {"rows": len(rows), "max_abs_difference": float(f"{difference:.3g}"),
            "argmax_agreement": agree}


# --- metadata -----------------------------------------------------------------------------------

def _meta(name: str, label_set: list[str], oos_label: str | None, threshold: float | None,
          options: TrainOptions, model_id: str | None, vectors: Vectors | None,
          texts: list[str], labels: list[str], metrics: dict[str, Any], parts: _Parts,
          model: bytes) -> dict[str, Any]:
    text_features = None
    if options.text:
        text_features = {
            "normalisation": f"normalise_text: lower case, whitespace collapsed, first "
                             f"{MAX_CHARS} characters",
            "word_ngrams": list(options.word_ngrams), "char_ngrams": list(options.char_ngrams),
            "vocabulary": [len(v.vocabulary_) for v in parts.features.vectorizers],
        }
    embedding = None
    if model_id is not None and vectors is not None:
        embedding = {"model_id": model_id, "dim": int(vectors.shape[1]),
                     "weight": options.embedding_weight}
    memory = parts.memory
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "labels": label_set,
        "oos_label": oos_label,
        "threshold": threshold,
        "threshold_on": "out_of_scope" if threshold is not None else None,
        "threshold_rule": (
            f"the most out-of-scope rows rejected, out of fold (with the rows of in-scope "
            f"labels left out of training{'' if options.leave_labels_out else ': off'}; the "
            f"scope model cross-fitted), while in-scope accuracy out of fold stays within "
            f"{options.reject_budget} of its value without rejection"
            if threshold is not None else None),
        "features": {"text": text_features, "embedding": embedding},
        "head": {"kind": "LinearSVC one-vs-rest, softmax with a fitted temperature",
                 "weights": "float16"},
        "memory": None if memory is None else {
            "rows": len(memory.labels), "dims": memory.rows.shape[1], "dtype": "int8",
            "neighbours": memory.neighbours, "temperature": memory.temperature,
            "weight": parts.knn_weight},
        "scope": None if parts.scope is None else {
            "features": ["log best in-scope probability", "log out-of-scope probability",
                         *(["nearest in-scope centroid", "nearest in-scope row",
                            f"mean of {SCOPE_NEIGHBOURS} nearest in-scope rows",
                            "nearest out-of-scope row", "share off the memory's axes",
                            "log Mahalanobis distance to the nearest in-scope label",
                            "the same minus log distance to all in-scope rows"]
                           if memory is not None else [])],
            "weights": [round(float(w), 6) for w in parts.scope.weights],
            "bias": round(parts.scope.bias, 6)},
        "embedder": model_id,
        "options": {k: list(v) if isinstance(v, tuple) else v
                    for k, v in asdict(options).items()},
        "training_data": {"sha256": data_sha256(texts, labels), "rows": len(texts),
                          "labels": dict(sorted(Counter(labels).items()))},
        "metrics": metrics,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "model_bytes": len(model),
    }


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
