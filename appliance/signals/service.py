"""Reading the signals of one customer message: the brand's intent, sentiment, human request.

`SignalService.read(brand_slug, text, vector)` runs every classifier on the message's shared
embedding (the turn embeds each message once, for retrieval and for these) and returns
`Signals`: what the supervisor decides on and what the turn trace records. Classifiers come
from the model store's manifest (role `classifier`, option `signal`; a brand's intent model
also names its `brand`). A signal whose model is absent is reported as such, never guessed:
the supervisor's rules that need it do not fire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError, ConfigError
from appliance.llm.manifest import Manifest
from appliance.signals.base import Embedder, Vectors
from appliance.signals.classifier import TextClassifier

log = logging.getLogger(__name__)

#: Generic signals every brand reads, by the manifest's `signal` option.
HUMAN_REQUEST, SENTIMENT, INTENT = "human_request", "sentiment", "intent"
#: The human-request classifier's positive label.
HUMAN_LABEL = "human"
#: How much each sentiment label contributes to frustration (0 = calm, 1 = furious).
FRUSTRATION_WEIGHTS: Mapping[str, float] = {"negative": 0.5, "angry": 1.0}
#: The share of the sentiment model's probability that its negative labels must hold
#: together before a message counts as frustrated at all (see `frustration`).
FRUSTRATION_EVIDENCE = 0.5


def frustration(probabilities: Mapping[str, float]) -> float:
    """0 calm .. 1 furious, from the sentiment model's label probabilities.

    P(angry) + 0.5 * P(negative), but only when the negative labels together hold at least
    FRUSTRATION_EVIDENCE of the probability, that is when the model's reading of the message
    is negative on balance; otherwise 0. A message the model cannot place spreads its
    probability over every label, and the weighted sum of that spread is not evidence of
    anything: three such messages in a row would otherwise read as rising frustration.
    """
    negative = sum(probabilities.get(label, 0.0) for label in FRUSTRATION_WEIGHTS)
    if negative < FRUSTRATION_EVIDENCE:
        return 0.0
    return min(1.0, sum(weight * probabilities.get(label, 0.0)
                        for label, weight in FRUSTRATION_WEIGHTS.items()))


@dataclass(frozen=True)
class Signals:
    """What the classifiers read from one message. Scores are probabilities in [0, 1]."""

    #: The brand's best in-scope intent label, or None when the brand has no intent model.
    intent: str | None = None
    intent_confidence: float = 0.0
    #: The intent model rejected the message as outside the brand's intents.
    out_of_scope: bool = False
    #: Runner-up intents, best first: [[label, probability], ...].
    intent_top: tuple[tuple[str, float], ...] = ()
    sentiment: str | None = None
    #: 0 calm .. 1 furious: P(angry) + 0.5 * P(negative) when the sentiment model reads the
    #: message as negative on balance, else 0 (see `frustration`).
    frustration: float = 0.0
    #: Probability that the customer asks for a human.
    human_request: float = 0.0
    #: Model version per signal that was read; a signal missing here had no model.
    models: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    #: The intent fell below the brand's confidence threshold (or out of its scope): the
    #: reading is "unclear" and the best guess is never presented as what the customer wants.
    unclear: bool = False

    @property
    def intent_read(self) -> str | None:
        """The intent as the agent understood it: None when there is no intent model or the
        reading was unclear."""
        return None if self.unclear or "intent" not in self.models else self.intent

    def trace(self) -> dict[str, Any]:
        data = asdict(self)
        data["intent_top"] = [[label, round(p, 4)] for label, p in self.intent_top]
        for key in ("intent_confidence", "frustration", "human_request"):
            data[key] = round(data[key], 4)
        return data

    @classmethod
    def from_trace(cls, data: Mapping[str, Any] | None) -> Signals:
        """The signals a turn trace recorded (defaults where an older trace has none)."""
        if not data:
            return cls()
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        values["intent_top"] = tuple(
            (str(label), float(p)) for label, p in values.get("intent_top", ()))
        return cls(**values)


@dataclass(frozen=True)
class ClassifierInfo:
    """A classifier the manifest declares, for the admin and the doctor."""

    model_id: str
    signal: str
    brand: str | None
    path: Path | None
    present: bool
    meta: dict[str, Any]


def _by_label(classifier: TextClassifier, text: str, vector: Vectors) -> dict[str, float]:
    """Every label's probability for one text."""
    row = classifier.probabilities([text], vector[None, :])[0]
    return {label: float(p) for label, p in zip(classifier.labels, row, strict=True)}


class SignalService:
    """Runs the manifest's classifiers on messages. Models load on first use, per process."""

    def __init__(self, manifest: Manifest, embedder: Embedder) -> None:
        self._embedder = embedder
        self._generic: dict[str, str] = {}
        self._intents: dict[str, str] = {}
        self._paths: dict[str, Path | None] = {}
        self._signal_of: dict[str, tuple[str, str | None]] = {}
        for spec in manifest.models.values():
            if spec.role != "classifier":
                continue
            signal = str(spec.options.get("signal", ""))
            brand = spec.options.get("brand")
            if signal == INTENT:
                if not isinstance(brand, str) or not brand:
                    raise ConfigError(f"manifest: intent classifier {spec.id!r} needs brand")
                if brand in self._intents:
                    raise ConfigError(f"manifest: brand {brand!r} has two intent classifiers, "
                                      f"{self._intents[brand]!r} and {spec.id!r}")
                self._intents[brand] = spec.id
            elif signal in (HUMAN_REQUEST, SENTIMENT):
                if signal in self._generic:
                    raise ConfigError(f"manifest: two {signal} classifiers, "
                                      f"{self._generic[signal]!r} and {spec.id!r}")
                self._generic[signal] = spec.id
            else:
                raise ConfigError(f"manifest: classifier {spec.id!r} has unknown signal "
                                  f"{signal!r}")
            self._paths[spec.id] = spec.path.parent if spec.path is not None else None
            self._signal_of[spec.id] = (signal, brand if isinstance(brand, str) else None)
        self._loaded: dict[str, TextClassifier | None] = {}
        self._lock = threading.Lock()

    def _classifier(self, model_id: str | None) -> TextClassifier | None:
        """The loaded classifier, or None when its files are absent or fail to load."""
        if model_id is None:
            return None
        if model_id in self._loaded:
            return self._loaded[model_id]
        with self._lock:
            if model_id not in self._loaded:
                self._loaded[model_id] = self._load(model_id)
        return self._loaded[model_id]

    def _load(self, model_id: str) -> TextClassifier | None:
        directory = self._paths.get(model_id)
        if directory is None or not directory.is_dir():
            log.warning("classifier %s is absent; its signal is not read", model_id)
            return None
        try:
            return TextClassifier.load(directory, embedder=self._embedder)
        except ApplianceError:
            log.exception("classifier %s does not load; its signal is not read", model_id)
            return None

    def has_intents(self, brand_slug: str) -> bool:
        return self._classifier(self._intents.get(brand_slug)) is not None

    def read(self, brand_slug: str, text: str, vector: Vectors | None = None) -> Signals:
        """Every signal of `text` for the brand; `vector` is the message's shared embedding."""
        started = time.perf_counter()
        if vector is None:
            vector = self._embedder.embed_one(text)
        values: dict[str, Any] = {"models": {}}
        intents = self._classifier(self._intents.get(brand_slug))
        if intents is not None:
            found = intents.predict(text, vector)
            # The best in-scope intent even when the scope check rejected the message: the
            # supervisor weighs the rejection against the intent's confidence.
            best = next((label for label, _ in found.top if label != intents.oos_label),
                        found.label)
            values.update(intent=best, intent_confidence=found.confidence,
                          out_of_scope=found.out_of_scope, intent_top=found.top)
            values["models"][INTENT] = intents.version
        sentiment = self._classifier(self._generic.get(SENTIMENT))
        if sentiment is not None:
            probabilities = _by_label(sentiment, text, vector)
            values["sentiment"] = max(probabilities, key=probabilities.__getitem__)
            values["frustration"] = frustration(probabilities)
            values["models"][SENTIMENT] = sentiment.version
        human = self._classifier(self._generic.get(HUMAN_REQUEST))
        if human is not None:
            values["human_request"] = _by_label(human, text, vector).get(HUMAN_LABEL, 0.0)
            values["models"][HUMAN_REQUEST] = human.version
        values["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return Signals(**values)

    def classifiers(self) -> list[ClassifierInfo]:
        """Every declared classifier with its metadata (metrics, training data hash)."""
        infos = []
        for model_id, (signal, brand) in sorted(self._signal_of.items()):
            loaded = self._classifier(model_id)
            infos.append(ClassifierInfo(
                model_id, signal, brand, self._paths.get(model_id), loaded is not None,
                dict(loaded.meta) if loaded is not None else {},
            ))
        return infos
