"""Train every shipped signal classifier from the public datasets and scripts/signals/data.

    .venv/bin/python scripts/train_signals.py                 # all four models
    .venv/bin/python scripts/train_signals.py --only sentiment --data ../shared/data

For each model: build its (text, label) rows, hold out a stratified 20 % (fixed seed), train on
the rest and print held-out metrics, then train again on every row and save the artefact into
model_store/signals/<name>/. Finally print the manifest entries (sha256 and size of each
model.onnx) for model_store/manifest.toml. The run is deterministic: inputs are read in sorted
order and every sample and split uses a fixed seed. How each model's rows are chosen, and why,
is in scripts/signals/README.md; dataset licences and attribution in model_store/signals/README.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.llm.manifest import load_manifest
from appliance.signals import training
from appliance.signals.base import Embedder
from appliance.signals.classifier import TextClassifier
from appliance.signals.onnx_embedder import OnnxEmbedder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OWN_DATA = REPO / "scripts" / "signals" / "data"
STORE = REPO / "model_store"
SEED = 20261125
HOLDOUT = 0.2
OOS = "oos"

#: One labelled example: (text, label).
Row = tuple[str, str]
#: Embeddings, one float32 row per text.
EmbeddingRows = npt.NDArray[np.float32]


# --- the datasets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Datasets:
    """The public datasets under --data, read once, rows in file order."""

    #: Bitext: (utterance, intent, flags); flag W marks offensive language.
    bitext: list[tuple[str, str, str]]
    #: Banking77: (text, category).
    banking77: list[Row]
    #: CLINC150 `train`: (text, intent); `oos_train_plus`: texts.
    clinc_train: list[Row]
    clinc_oos: list[str]
    #: CLINC150 `val` and `oos_val`, which no model trains on (evaluation only).
    clinc_val: list[Row]
    clinc_oos_val: list[str]
    #: CLINC150 intent -> domain.
    clinc_domain: dict[str, str]

    @classmethod
    def read(cls, data: Path) -> Datasets:
        bitext_csv = data / "bitext_customer_support" / "bitext_customer_service_training_8k.csv"
        with bitext_csv.open(encoding="utf-8-sig", newline="") as fh:
            bitext = [(r["utterance"].strip(), r["intent"], r["flags"])
                      for r in csv.DictReader(fh)]
        with (data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as fh:
            banking77 = [(r["text"].strip(), r["category"]) for r in csv.DictReader(fh)]
        clinc = json.loads((data / "clinc150" / "clinc150_train_val.json").read_text())
        domains = json.loads((data / "clinc150" / "domains.json").read_text())
        return cls(
            bitext=bitext,
            banking77=banking77,
            clinc_train=[(str(text).strip(), str(intent)) for text, intent in clinc["train"]],
            clinc_oos=[str(text).strip() for text, _ in clinc["oos_train_plus"]],
            clinc_val=[(str(text).strip(), str(intent)) for text, intent in clinc["val"]],
            clinc_oos_val=[str(text).strip() for text, _ in clinc["oos_val"]],
            clinc_domain={intent: domain for domain, intents in domains.items()
                          for intent in intents},
        )


def _own(name: str) -> list[Row]:
    """A project-written CSV from scripts/signals/data (columns text,label)."""
    with (OWN_DATA / name).open(encoding="utf-8", newline="") as fh:
        return [(r["text"].strip(), r["label"].strip()) for r in csv.DictReader(fh)]


def _sample(texts: Iterable[str], count: int, salt: str) -> list[str]:
    """`count` distinct texts chosen with a fixed seed from the sorted pool (all if fewer)."""
    pool = sorted(set(texts))
    if len(pool) <= count:
        return pool
    return sorted(random.Random(f"{SEED}:{salt}").sample(pool, count))


def _merge(*groups: Iterable[Row]) -> list[Row]:
    """Rows in order, a text kept only the first time it appears (earlier groups win)."""
    seen: set[str] = set()
    rows = []
    for group in groups:
        for text, label in group:
            key = text.casefold()
            if text and key not in seen:
                seen.add(key)
                rows.append((text, label))
    return rows


# --- human_request ----------------------------------------------------------------------------

#: Bitext intents that are a request for a person, or too close to one to call `other`:
#: contact_customer_service mixes "talk to customer service" with "what are your hours".
_BITEXT_NOT_OTHER = {"contact_human_agent", "contact_customer_service"}
#: CLINC intents left out of `other`: "am I talking to a real person" reads as a request for a
#: human, which the project data labels `human`.
_CLINC_NOT_OTHER = {"are_you_a_bot"}
#: Ordinary in-scope requests per dataset, sampled as `other`.
_OTHER_PER_DATASET = 300


def human_request_rows(ds: Datasets) -> list[Row]:
    """Project data, Bitext contact_human_agent as `human`, dataset requests as `other`."""
    human = [(text, "human") for text, intent, _ in ds.bitext if intent == "contact_human_agent"]
    other = [
        *_sample((t for t, i, _ in ds.bitext if i not in _BITEXT_NOT_OTHER),
                 _OTHER_PER_DATASET, "human:bitext"),
        *_sample((t for t, _ in ds.banking77), _OTHER_PER_DATASET, "human:banking77"),
        *_sample((t for t, i in ds.clinc_train if i not in _CLINC_NOT_OTHER),
                 _OTHER_PER_DATASET, "human:clinc"),
    ]
    return _merge(_own("human_request.csv"), human, ((t, "other") for t in other))


# --- sentiment --------------------------------------------------------------------------------

#: Dissatisfaction a few Bitext rows state outright ("I'm not happy with ur service, ...",
#: "you are not being helpful, ..."): part of the held-back angry set, never trained on.
_BITEXT_NEGATIVE = re.compile(
    r"not happy|unhappy|unsatisfied|dissatisfied|not satisfied|not (being )?helpful", re.I)
#: Anger or complaint a Banking77 customer states in so many words ("I am so angry right
#: now!", "your company is awful", "these charges are ridiculous", "!!")...
_BANKING77_ANGRY = re.compile(
    r"\b(angry|furious|livid|hate|sick of|fed up|what the hell|wtf|ridiculous\w*|outrageous|"
    r"unacceptable|stupid|useless|awful|terrible|horrible|disgust\w*|upset\w*|frustrat\w*|"
    r"disappoint\w*|unhappy|not happy|damn)\b|!!", re.I)
#: ...unless the customer blames themselves ("I made a terrible mistake", "I stupidly sent").
_SELF_BLAME = re.compile(r"\b(mistake|goofed|stupidly|typo|confused)\b", re.I)
#: Emotion that disqualifies a dataset request as a `neutral` example (Banking77 has many
#: "I'm still waiting!" rows that read as negative).
_NOT_NEUTRAL = re.compile(
    r"!|\b(still|annoy\w*|upset|frustrat\w*|disappoint\w*|terrible|horrible|awful|angry|"
    r"unacceptable|worst|hate|stupid|useless|ridiculous|fed up|wtf|damn\w*|joke|scam\w*|"
    r"furious|unhappy|rubbish|ugh|forever|ages|again|please help|help me|urgent\w*|"
    r"thank\w*|great|love|happy|glad|appreciate\w*|awesome|excellent|wonderful|helpful)\b",
    re.I)
#: Displeasure that disqualifies an off-topic CLINC150 row as `neutral`. Narrower than
#: _NOT_NEUTRAL on purpose: "tell me a joke", "what's a great pasta place" and "I love this
#: song" are calm, and they are exactly the messages the model must learn to read as calm.
_NOT_CALM = re.compile(
    r"!|\b(annoy\w*|upset|frustrat\w*|disappoint\w*|terrible|horrible|awful|angry|"
    r"unacceptable|worst|hate|stupid|useless|ridiculous|fed up|wtf|damn\w*|scam\w*|furious|"
    r"unhappy|rubbish|ugh)\b", re.I)
#: CLINC domains whose requests are not service requests (thanks, greetings, jokes, yes/no):
#: not in the service-request pool, but in the off-topic one.
_CLINC_NOT_NEUTRAL = {"small_talk", "meta"}
#: The CLINC intent whose rows are thanks: `positive`, not `neutral`.
_CLINC_THANKS = "thank_you"
_NEUTRAL_PER_DATASET = 120
#: Off-topic CLINC150 rows per intent (150 intents, every domain) and out-of-scope rows
#: (`oos_train_plus`) taken as calm examples: the model must have seen jokes, trivia,
#: small talk and unrelated requests to read them as calm rather than as the nearest
#: emotion it knows ("your service is a joke" was the only "joke" it had seen).
_OFF_TOPIC_PER_INTENT = 8
_OFF_TOPIC_OOS = 250
#: Project-written angry and negative rows each joined to a calm dataset request, per label:
#: customers put the complaint and the request in one message ("I hate this company! Can you
#: delete my account?"), where the request's words would otherwise outweigh the complaint.
_COMPLAINT_WITH_REQUEST = 250


def held_back_angry(ds: Datasets) -> list[str]:
    """Angry or complaining messages from the public datasets, never trained on: the
    evaluation set of frustration recall (scripts/bench/signals.py). Bitext rows that state
    dissatisfaction, and Banking77 rows that state anger or a complaint in so many words."""
    bitext = (t for t, _, flags in ds.bitext if "W" not in flags and _BITEXT_NEGATIVE.search(t))
    banking = (t for t, _ in ds.banking77
               if _BANKING77_ANGRY.search(t) and not _SELF_BLAME.search(t))
    return sorted({*bitext, *banking})


def calm_off_topic(ds: Datasets) -> list[str]:
    """Calm off-topic messages never trained on: every CLINC150 `val` row without displeasure
    (thanks included) and `oos_val`. The evaluation set of false frustration."""
    texts = [*(t for t, _ in ds.clinc_val), *ds.clinc_oos_val]
    return sorted({t for t in texts if not _NOT_CALM.search(t)})


def sentiment_rows(ds: Datasets) -> list[Row]:
    """Project data; a sample of calm dataset requests and of off-topic CLINC150 rows as
    `neutral` (its thanks as `positive`). Bitext rows flagged W (swearing) are left out: they
    mix calm requests with a swear word, and the project data defines where profanity sits.
    The held-back angry messages are in no pool."""
    held = set(held_back_angry(ds))
    bitext = [(t, i) for t, i, flags in ds.bitext if "W" not in flags and t not in held]
    banking77 = [t for t, _ in ds.banking77 if t not in held]
    calm = [
        *_sample((t for t, _ in bitext if not _BITEXT_NEGATIVE.search(t)
                  and not _NOT_NEUTRAL.search(t)), _NEUTRAL_PER_DATASET, "sentiment:bitext"),
        *_sample((t for t in banking77 if not _NOT_NEUTRAL.search(t)),
                 _NEUTRAL_PER_DATASET, "sentiment:banking77"),
        *_sample((t for t, i in ds.clinc_train
                  if ds.clinc_domain.get(i) not in _CLINC_NOT_NEUTRAL
                  and not _NOT_NEUTRAL.search(t)), _NEUTRAL_PER_DATASET, "sentiment:clinc"),
    ]
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in ds.clinc_train:
        if not _NOT_CALM.search(text):
            by_intent[intent].append(text)
    thanks = _sample(by_intent.pop(_CLINC_THANKS, []), _OFF_TOPIC_PER_INTENT,
                     "sentiment:off:thanks")
    off_topic = [text for intent in sorted(by_intent) for text in
                 _sample(by_intent[intent], _OFF_TOPIC_PER_INTENT, f"sentiment:off:{intent}")]
    off_topic += _sample((t for t in ds.clinc_oos if not _NOT_CALM.search(t)), _OFF_TOPIC_OOS,
                         "sentiment:off:oos")
    own = _own("sentiment.csv")
    return _merge(own, ((t, "neutral") for t in calm), ((t, "positive") for t in thanks),
                  ((t, "neutral") for t in off_topic), _with_requests(own, calm))


def _with_requests(own: Sequence[Row], requests: Sequence[str]) -> list[Row]:
    """_COMPLAINT_WITH_REQUEST angry and negative rows each, joined to a request (before or
    after it, alternately), keeping the complaint's label; and, for each, the same request
    joined to another request as `neutral`. The pair leaves the request's words no evidence
    either way, and a long message with two requests is no sign of anger: only the complaint
    is. Without the neutral half, "I want to cancel order #W… because I ordered it by
    mistake." read as angry."""
    rng = random.Random(f"{SEED}:sentiment:with-requests")
    pool = sorted(requests)
    rows = []
    for label in ("angry", "negative"):
        complaints = _sample((t for t, lab in own if lab == label), _COMPLAINT_WITH_REQUEST,
                             f"sentiment:with-requests:{label}")
        for i, complaint in enumerate(complaints):
            request, other = rng.choice(pool), rng.choice(pool)
            for first, tag in ((complaint, label), (other, "neutral")):
                first = first if first[-1] in ".!?" else f"{first}."
                rows.append((f"{first} {request}" if i % 2 else f"{request} {first}", tag))
    return rows


# --- intent models: brand intents plus an `oos` class from CLINC150 ---------------------------


@dataclass(frozen=True)
class OosPolicy:
    """Which CLINC150 texts are safely outside a brand's intents."""

    #: Whole CLINC domains that overlap the brand.
    domains: frozenset[str]
    #: Single CLINC intents (of other domains) too close to one of the brand's intents.
    intents: frozenset[str]
    #: Any text that mentions the brand's subject matter is dropped, whatever its label:
    #: `oos_train_plus` holds "can you show me my 3-digit credit card verification number".
    words: re.Pattern[str]
    cap: int

    def keeps(self, text: str, intent: str | None, domain_of: dict[str, str]) -> bool:
        if intent is not None and (intent in self.intents
                                   or domain_of.get(intent) in self.domains):
            return False
        return self.words.search(text) is None


#: Dialogue-control and profile intents that are close to any brand's account intents
#: ("change my name", "reset settings") or ambiguous on their own ("cancel").
_META_CLOSE = {"cancel", "change_user_name", "user_name", "reset_settings", "sync_device"}

RETAIL_OOS = OosPolicy(
    # The bank's payment, bill, card-declined and fraud intents overlap payment_issue,
    # check_invoice and get_refund; only its clearly financial-product intents stay.
    domains=frozenset(),
    intents=frozenset({
        *_META_CLOSE, "order", "order_status", "shopping_list", "shopping_list_update",
        "freeze_account", "pin_change", "bill_due", "pay_bill", "account_blocked", "min_payment",
        "bill_balance", "transfer", "order_checks", "balance", "spending_history",
        "transactions", "report_fraud", "replacement_card_duration", "expiration_date",
        "damaged_card", "report_lost_card", "card_declined", "redeem_rewards",
        "rewards_balance", "application_status", "new_card", "international_fees",
    }),
    words=re.compile(
        r"\b(orders?|ordered|ordering|purchas\w*|buy\w*|bought|deliver\w*|ship\w*|packages?|"
        r"parcels?|refund\w*|return\w*|invoices?|bills?|receipts?|pay\w*|paid|cards?|"
        r"accounts?|password|pin|sign(ing)?[ -]?up|regist\w*|newsletters?|subscri\w*|"
        r"unsubscri\w*|reviews?|feedback|complain\w*|cancel\w*|customer (service|support)|"
        r"agents?|shop\w*|stores?|address\w*|track\w*|prices?|discounts?|coupons?|vouchers?|"
        r"profile|log ?in|login|amazon|walmart)\b", re.I),
    cap=1500,
)

BANK_OOS = OosPolicy(
    domains=frozenset({"banking", "credit_cards"}),
    # exchange_rate, travel_notification and direct_deposit are Banking77 topics;
    # find_phone is close to lost_or_stolen_phone; payday and income to receiving money.
    intents=frozenset({*_META_CLOSE, "exchange_rate", "travel_notification",
                       "direct_deposit", "payday", "income", "rollover_401k", "find_phone"}),
    words=re.compile(
        r"\b(banks?|banking|cards?|accounts?|money|cash|pay\w*|paid|transfer\w*|balances?|"
        r"deposit\w*|withdr\w*|atms?|pin|credit|debit|loans?|fees?|charg\w*|refund\w*|"
        r"transactions?|exchange|currenc\w*|euros?|dollars?|pounds?|top.?up|wallet|"
        r"apple pay|google pay|statements?|verif\w*|identity|passcode|password|savings?|"
        r"overdraft|cheques?|checking|checkbook|salary|wages?|fraud\w*|stolen|lost|"
        r"scam\w*|mortgage|interest|invest\w*|stocks?|venmo|paypal)\b", re.I),
    cap=1000,
)


def _oos(ds: Datasets, policy: OosPolicy, salt: str) -> list[Row]:
    pool = [t for t in ds.clinc_oos if policy.keeps(t, None, ds.clinc_domain)]
    pool += [t for t, i in ds.clinc_train if policy.keeps(t, i, ds.clinc_domain)]
    return [(t, OOS) for t in _sample(pool, policy.cap, salt)]


#: Bitext intents the retailer's agent handles other ways: complaints and requests for a person
#: go to the human_request signal and the supervisor.
_RETAIL_EXCLUDED = {"complaint", "contact_human_agent", "contact_customer_service"}


def lumen_goods_rows(ds: Datasets) -> list[Row]:
    """The online retailer: 24 Bitext intents plus `oos`."""
    intents = [(t, i) for t, i, _ in ds.bitext if i not in _RETAIL_EXCLUDED]
    return _merge(intents, _oos(ds, RETAIL_OOS, "oos:lumen-goods"))


def rho_bank_rows(ds: Datasets) -> list[Row]:
    """The retail bank: the 77 Banking77 categories plus `oos`."""
    return _merge(ds.banking77, _oos(ds, BANK_OOS, "oos:rho-bank"))


# --- the models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPlan:
    name: str
    rows: Callable[[Datasets], list[Row]]
    #: The label meaning "none of these" (intent models), else None.
    oos_label: str | None
    #: The label whose precision/recall/F1 against the rest the table reports.
    focus: str | None
    #: Manifest options of the entry.
    signal: str
    brand: str | None = None
    options: training.TrainOptions = field(default_factory=training.TrainOptions)


MODELS = (
    ModelPlan("human-request", human_request_rows, None, "human", "human_request"),
    # Neighbours in the embedding share a topic more than a mood: cross-validation chooses
    # whether they vote at all.
    ModelPlan("sentiment", sentiment_rows, None, "angry", "sentiment",
              options=training.TrainOptions(knn_weights=(0.0, 0.25, 0.5))),
    # Bitext's utterances are variations of templates: the head is near certain on them, so
    # intents left out of training taught the scope model to reject any paraphrase ("where
    # is my package?" scored 0.996 out of scope). Its scope model learns from the
    # out-of-scope rows alone.
    ModelPlan("intent-lumen-goods", lumen_goods_rows, OOS, OOS, "intent", "lumen-goods",
              options=training.TrainOptions(leave_labels_out=False)),
    ModelPlan("intent-rho-bank", rho_bank_rows, OOS, OOS, "intent", "rho-bank"),
)


def stratified_split(rows: Sequence[Row], fraction: float, seed: int
                     ) -> tuple[list[Row], list[Row]]:
    """(train, held_out): `fraction` of each label held out (at least one where a label has
    two rows or more), chosen with `seed` from rows sorted by text."""
    by_label: dict[str, list[Row]] = defaultdict(list)
    for row in sorted(rows):
        by_label[row[1]].append(row)
    rng = random.Random(seed)
    train: list[Row] = []
    held: list[Row] = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        count = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        held += group[:count]
        train += group[count:]
    return sorted(train), sorted(held)


# --- training, evaluation, saving -------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Held-out metrics of one model."""

    rows: int
    labels: int
    #: training.evaluate's report: accuracy, macro_f1, oos_recall, latency, ...
    report: dict[str, Any]
    #: Precision, recall and F1 of the plan's focus label against every other label.
    focus: tuple[float, float, float] | None


def precision_recall_f1(gold: Sequence[str], predicted: Sequence[str], label: str
                        ) -> tuple[float, float, float]:
    """Of `label` against the rest."""
    pairs = list(zip(gold, predicted, strict=True))
    hit = sum(g == p == label for g, p in pairs)
    said = sum(p == label for _, p in pairs)
    true = sum(g == label for g, _ in pairs)
    precision = hit / said if said else 0.0
    recall = hit / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class EmbeddingCache:
    """Every text's embedding, computed once per model and shared by its fits."""

    def __init__(self, embedder: Embedder, texts: Sequence[str]) -> None:
        unique = sorted(set(texts))
        self._row = {text: i for i, text in enumerate(unique)}
        self._vectors = embedder.embed(unique)

    def of(self, texts: Sequence[str]) -> EmbeddingRows:
        rows: EmbeddingRows = self._vectors[[self._row[t] for t in texts]]
        return rows


def fit_and_save(rows: Sequence[Row], plan: ModelPlan, embedder: Embedder,
                 vectors: EmbeddingCache, out_dir: Path) -> TextClassifier:
    """Train on `rows`, save the artefact into `out_dir`, and load it back as shipped."""
    texts = [t for t, _ in rows]
    artefact = training.train(
        texts, [label for _, label in rows], oos_label=plan.oos_label, embedder=embedder,
        vectors=vectors.of(texts), name=plan.name, options=plan.options,
        progress=lambda message: print(f"  {plan.name}: {message}", file=sys.stderr))
    training.save(artefact, out_dir)
    return TextClassifier.load(out_dir, embedder=embedder)


def held_out(rows: Sequence[Row], plan: ModelPlan, embedder: Embedder,
             vectors: EmbeddingCache) -> Scores:
    """Train on 80 % of the rows (stratified, fixed seed) and score the saved model on the
    rest, through the classifier the appliance loads."""
    train, test = stratified_split(rows, HOLDOUT, SEED)
    texts, gold = [t for t, _ in test], [label for _, label in test]
    with tempfile.TemporaryDirectory() as tmp:
        classifier = fit_and_save(train, plan, embedder, vectors, Path(tmp) / plan.name)
        report = training.evaluate(classifier, texts, gold, plan.oos_label)
        predicted = [p.label for p in classifier.predict_many(texts, vectors.of(texts))]
        classifier.close()
    _print_mistakes(test, predicted, plan.name)
    focus = precision_recall_f1(gold, predicted, plan.focus) if plan.focus else None
    return Scores(len(rows), len(set(gold)), report, focus)


def _print_mistakes(test: Sequence[Row], predicted: Sequence[str], name: str) -> None:
    """The most frequent confusions and a few examples, so weak data shows where it is weak."""
    wrong = [(text, gold, p) for (text, gold), p in zip(test, predicted, strict=True)
             if gold != p]
    for (gold, p), count in Counter((g, p) for _, g, p in wrong).most_common(8):
        print(f"  {name}: {count} x {gold} -> {p}", file=sys.stderr)
    for text, gold, p in wrong[:15]:
        print(f"  {name}: {gold} -> {p}: {text!r}", file=sys.stderr)


def table(results: dict[str, Scores], plans: dict[str, ModelPlan]) -> str:
    """The held-out metrics as a text table."""
    head = (f"{'model':<20} {'rows':>6} {'labels':>6} {'accuracy':>8} {'macro_f1':>8} "
            f"{'in_scope':>8} {'oos_rec':>7}  focus label: precision / recall / F1")
    lines = [head, "-" * len(head)]
    for name, s in results.items():
        focus = ""
        if s.focus is not None:
            p, r, f = s.focus
            focus = f"{plans[name].focus}: {p:.3f} / {r:.3f} / {f:.3f}"
        oos = s.report.get("oos_recall")
        in_scope = s.report["in_scope_accuracy"] if oos is not None else None
        lines.append(f"{name:<20} {s.rows:>6} {s.labels:>6} {s.report['accuracy']:>8.3f} "
                     f"{s.report['macro_f1']:>8.3f} {_cell(in_scope):>8} {_cell(oos):>7}"
                     f"  {focus}")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


#: Licences of the data each model was trained on (the models themselves are ours).
_DATA_LICENCES = {
    "human-request": "CDLA-Sharing-1.0 (Bitext), CC-BY-4.0 (Banking77), CC-BY-3.0 (CLINC150)",
    "sentiment": "CDLA-Sharing-1.0 (Bitext), CC-BY-4.0 (Banking77), CC-BY-3.0 (CLINC150)",
    "intent-lumen-goods": "CDLA-Sharing-1.0 (Bitext), CC-BY-3.0 (CLINC150)",
    "intent-rho-bank": "CC-BY-4.0 (Banking77), CC-BY-3.0 (CLINC150)",
}


def manifest_entry(plan: ModelPlan, out_dir: Path, context_tokens: int) -> str:
    """The [[models]] entry of model_store/manifest.toml for a saved classifier."""
    model_file = out_dir / "model.onnx"
    data = model_file.read_bytes()
    lines = [
        "[[models]]",
        f'id = "{plan.name}"',
        'role = "classifier"',
        'profile = "cpu"',
        'backend = "onnx"',
        f'file = "{model_file.relative_to(STORE).as_posix()}"',
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"',
        f"size = {len(data)}",
        "# The embedder's input length: the classifier reads its vectors.",
        f"context_tokens = {context_tokens}",
        f'signal = "{plan.signal}"',
        *([f'brand = "{plan.brand}"'] if plan.brand else []),
        f'license = "project model; training data {_DATA_LICENCES[plan.name]}"',
        'source = "scripts/train_signals.py; data and attribution in model_store/signals/'
        'README.md"',
    ]
    return "\n".join(lines)


def build_embedder() -> OnnxEmbedder:
    """The appliance's CPU embedder, exactly as the manifest declares it."""
    manifest = load_manifest(STORE)
    spec = manifest.models[manifest.route("cpu", "embed")[0]]
    tokenizer = manifest.models[str(spec.options["tokenizer"])]
    return OnnxEmbedder(spec, tokenizer, threads=os.cpu_count() or 1)


def main(argv: Sequence[str] | None = None) -> int:
    plans = {plan.name: plan for plan in MODELS}
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"the public datasets directory (default {DEFAULT_DATA})")
    parser.add_argument("--only", choices=sorted(plans), help="train this model only")
    args = parser.parse_args(argv)
    chosen = [plans[args.only]] if args.only else list(MODELS)
    datasets = Datasets.read(args.data)
    embedder = build_embedder()
    results: dict[str, Scores] = {}
    entries = []
    for plan in chosen:
        rows = sorted(plan.rows(datasets))
        counts = dict(sorted(Counter(label for _, label in rows).items()))
        print(f"{plan.name}: {len(rows)} rows {counts}", file=sys.stderr)
        vectors = EmbeddingCache(embedder, [t for t, _ in rows])
        results[plan.name] = held_out(rows, plan, embedder, vectors)
        out_dir = STORE / "signals" / plan.name
        fit_and_save(rows, plan, embedder, vectors, out_dir).close()
        entries.append(manifest_entry(plan, out_dir, embedder.spec.context_tokens))
    embedder.close()
    print(table(results, plans))
    print("\n# model_store/manifest.toml entries\n")
    print("\n\n".join(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
