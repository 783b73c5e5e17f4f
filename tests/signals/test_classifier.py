"""Training, exporting and running text classifiers, on the real embedder and onnxruntime.

One small intent model (four intents and out-of-scope examples) is trained per module and
shared; tests that need other models train their own on a few rows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from appliance.errors import InvalidRequest, ModelUnavailable
from appliance.signals.classifier import (
    META_FILE,
    MODEL_FILE,
    Prediction,
    TextClassifier,
    normalise_text,
)
from appliance.signals.onnx_embedder import OnnxEmbedder
from appliance.signals.training import (
    METRIC_KEYS,
    Artefact,
    TrainOptions,
    data_sha256,
    evaluate,
    save,
    score,
    train,
)

OPENERS = ("", "hi,", "hello!", "please,", "quick question:")
PHRASES = {
    "card_arrival": [
        "my new card has not arrived yet", "when will my card be delivered",
        "I am still waiting for my card", "where is the card you sent me",
    ],
    "reset_pin": [
        "how do I change my PIN", "I forgot my PIN code", "can I reset the PIN of my card",
        "my PIN is blocked after three wrong tries",
    ],
    "refund_status": [
        "where is my refund", "the refund has not shown up on my account",
        "how long does a refund take", "I returned the item but got no money back",
    ],
    "exchange_rate": [
        "what exchange rate do you use", "how much is one euro in dollars",
        "is the currency conversion rate fair", "why did the exchange rate change",
    ],
    "oos": [
        "what's the weather tomorrow", "tell me a joke", "who won the football match",
        "recommend a good pasta recipe",
    ],
}
BAD_INPUTS = ["", "   \n\t ", "x" * 100_000, "\x00\x01\x7f\ufffd\udcff binary", "🙂🙂🙂",
              "Wo ist meine neue Karte?", "日本語のテキストです", "a" * 50 + " " + "🚀" * 5000]


def rows() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, phrases in PHRASES.items():
        for opener in OPENERS:
            for phrase in phrases:
                texts.append(f"{opener} {phrase}".strip())
                labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def artefact(embedder: OnnxEmbedder) -> Artefact:
    texts, labels = rows()
    return train(texts, labels, oos_label="oos", embedder=embedder, name="test-intents")


@pytest.fixture(scope="module")
def model_dir(artefact: Artefact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(artefact, tmp_path_factory.mktemp("models") / "test-intents")


@pytest.fixture(scope="module")
def classifier(model_dir: Path, embedder: OnnxEmbedder) -> TextClassifier:
    return TextClassifier.load(model_dir, embedder=embedder)


def test_it_writes_the_model_and_its_metadata(model_dir: Path, embedder: OnnxEmbedder) -> None:
    assert sorted(p.name for p in model_dir.iterdir()) == [META_FILE, MODEL_FILE]
    meta = json.loads((model_dir / META_FILE).read_text())
    texts, labels = rows()

    assert meta["name"] == "test-intents"
    assert meta["labels"] == sorted(PHRASES)
    assert meta["oos_label"] == "oos"
    assert 0.0 < meta["threshold"] < 1.0
    assert meta["threshold_on"] == "out_of_scope"
    assert "out of fold" in meta["threshold_rule"]
    assert meta["memory"]["rows"] == len(texts) and meta["memory"]["dtype"] == "int8"
    assert len(meta["scope"]["weights"]) == len(meta["scope"]["features"]) == 9
    assert meta["features"]["embedding"] == {"model_id": embedder.model_id, "dim": 384,
                                             "weight": TrainOptions().embedding_weight}
    assert meta["embedder"] == "all-minilm-l6-v2-int8@128"
    assert meta["training_data"] == {
        "sha256": data_sha256(texts, labels), "rows": len(texts),
        "labels": {label: len(OPENERS) * len(p) for label, p in sorted(PHRASES.items())},
    }
    assert meta["metrics"]["folds"] == 5
    assert set(meta["metrics"]) >= {"accuracy", "macro_f1", "in_scope_accuracy",
                                    "oos_precision", "oos_recall", "threshold_trade_off"}
    assert meta["metrics"]["accuracy"] > 0.8
    assert meta["model_sha256"] == hashlib.sha256((model_dir / MODEL_FILE).read_bytes()).hexdigest()
    assert set(meta["versions"]) >= {"scikit-learn", "skl2onnx", "onnx", "onnxruntime"}
    assert meta["trained_at"].startswith("20")
    assert meta["onnx_check"]["argmax_agreement"] == 1.0


def test_its_scope_model_learns_from_intents_left_out_of_training(
        artefact: Artefact, embedder: OnnxEmbedder) -> None:
    # Each of the 5 folds leaves one of 4 intent groups out of training and holds out its
    # rows of that group: about a quarter of the in-scope rows, as text of unseen intents.
    in_scope_rows = sum(1 for label in rows()[1] if label != "oos")
    metrics = artefact.meta["metrics"]
    assert in_scope_rows / 8 < metrics["unfamiliar_rows"] < in_scope_rows / 2
    assert all({"unfamiliar_recall", "rejected"} <= set(point)
               for point in metrics["threshold_trade_off"])
    assert "labels left out" in artefact.meta["threshold_rule"]

    texts, labels = rows()
    alone = train(texts, labels, oos_label="oos", embedder=embedder,
                  options=TrainOptions(leave_labels_out=False))
    assert alone.meta["metrics"]["unfamiliar_rows"] == 0
    assert all("unfamiliar_recall" not in point
               for point in alone.meta["metrics"]["threshold_trade_off"])
    assert alone.meta["options"]["leave_labels_out"] is False


def _scope_features_from_onnx(model_dir: Path, texts: list[str],
                              vectors: np.ndarray) -> np.ndarray:
    """The scope model's input matrix, as onnxruntime computes it: the model with the
    Concat that feeds the scope weights exposed as an extra output."""
    model = onnx.load(str(model_dir / MODEL_FILE))
    scope_matmul = next(n for n in model.graph.node
                        if n.op_type == "MatMul" and "scope_weights" in str(n.input))
    concat = next(n for n in model.graph.node if scope_matmul.input[0] in n.output)
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        concat.output[0], onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    feeds = {"text": np.array([[normalise_text(t)] for t in texts], dtype=object),
             "embedding": vectors}
    features: np.ndarray = session.run([concat.output[0]], feeds)[0]
    return features


def test_its_scope_features_in_onnx_equal_numpys(artefact: Artefact, model_dir: Path,
                                                 embedder: OnnxEmbedder) -> None:
    texts = ["Has my card been posted?", "I need a new PIN", "what is the capital of France",
             "play some jazz music", *BAD_INPUTS[:2]]
    vectors = embedder.embed(texts)
    memory, oos = artefact.parts.memory, artefact.parts.oos
    assert memory is not None and oos is not None

    ours = _scope_features_from_onnx(model_dir, texts, vectors)
    reference = memory.neighbourhood(vectors, oos, artefact.parts.n_labels)

    assert ours.shape == (len(texts), 9)
    # Columns 2-5: similarities; 6: share off the axes; 7-8: log Mahalanobis distances.
    assert np.allclose(ours[:, 2:], reference, atol=1e-4, rtol=1e-4)


def test_its_density_features_tell_unseen_topics_from_paraphrases(
        artefact: Artefact, embedder: OnnxEmbedder) -> None:
    paraphrases = ["has my card been sent out already?", "I can't remember my PIN",
                   "my refund still isn't here", "what rate do you use to convert currency"]
    unseen = ["what is the capital of France", "play some jazz music",
              "how many calories are in an apple", "book a table for two tonight"]
    memory = artefact.parts.memory
    assert memory is not None and memory.density is not None
    near, far = (memory.density.features(*memory.raw(embedder.embed(t)))
                 for t in (paraphrases, unseen))
    meta = artefact.meta["scope"]

    assert meta["features"][-3:] == [
        "share off the memory's axes",
        "log Mahalanobis distance to the nearest in-scope label",
        "the same minus log distance to all in-scope rows"]
    # Each unseen topic is farther from the nearest intent than any paraphrase, in absolute
    # terms and relative to the in-scope rows as a whole.
    assert far[:, 1].min() > near[:, 1].max()
    assert far[:, 2].min() > near[:, 2].max()
    assert ((near[:, 0] >= 0) & (near[:, 0] < 1)).all()


def test_it_hashes_the_training_data_regardless_of_row_order() -> None:
    texts, labels = rows()

    assert data_sha256(texts[::-1], labels[::-1]) == data_sha256(texts, labels)
    assert data_sha256(texts, labels[1:] + labels[:1]) != data_sha256(texts, labels)


def test_it_exports_one_onnx_model_reading_text_and_embedding(model_dir: Path) -> None:
    model = onnx.load(str(model_dir / MODEL_FILE))

    assert [i.name for i in model.graph.input] == ["text", "embedding"]
    assert [o.name for o in model.graph.output] == ["probabilities", "out_of_scope"]


def test_it_predicts_exactly_as_scikit_learn(artefact: Artefact, classifier: TextClassifier,
                                             embedder: OnnxEmbedder) -> None:
    texts = [*rows()[0][::7], "Has my card been posted?", "I need a new PIN", *BAD_INPUTS]
    vectors = embedder.embed([t.encode("utf-8", "replace").decode() for t in texts])

    ours, our_scope = classifier.outputs(texts, vectors)
    reference, reference_scope = artefact.reference_outputs(texts, vectors)

    assert np.allclose(ours, reference, atol=1e-5)
    assert (ours.argmax(axis=1) == reference.argmax(axis=1)).all()
    assert our_scope is not None and reference_scope is not None
    assert np.allclose(our_scope, reference_scope, atol=1e-5)


def test_it_classifies_new_paraphrases(classifier: TextClassifier) -> None:
    assert classifier.predict("has my card been sent out already?").label == "card_arrival"
    assert classifier.predict("I can't remember my pin number").label == "reset_pin"
    assert classifier.predict("still no refund for my return").label == "refund_status"


def test_it_rejects_out_of_scope_messages(classifier: TextClassifier) -> None:
    found = classifier.predict("what will the weather be like on Saturday?")

    assert found.out_of_scope
    assert found.label == "oos"


def test_it_uses_the_embedding_it_is_given(classifier: TextClassifier,
                                           embedder: OnnxEmbedder) -> None:
    text = "where is my card?"

    assert classifier.predict(text, embedder.embed_one(text)) == classifier.predict(text)
    # Another message's vector changes the answer: the given vector is what is read.
    other = embedder.embed_one("tell me a joke")
    assert classifier.predict(text, other).top != classifier.predict(text).top


@pytest.mark.parametrize("text", BAD_INPUTS, ids=lambda t: repr(t[:12]))
def test_it_answers_bad_input_with_a_prediction(classifier: TextClassifier, text: str) -> None:
    found = classifier.predict(text)

    assert isinstance(found, Prediction)
    assert found.label in classifier.labels
    assert 0.0 <= found.confidence <= 1.0
    assert found.top and sum(p for _, p in found.top) <= 1.0 + 1e-5
    if not text.strip():
        assert found.out_of_scope


def test_it_predicts_many_as_one_by_one(classifier: TextClassifier) -> None:
    texts = ["where is my card", "refund please", "", "what's 2 + 2", "🙂", "my PIN"]

    many = classifier.predict_many(texts)

    for text, found in zip(texts, many, strict=True):
        one = classifier.predict(text)
        assert found.label == one.label and found.out_of_scope == one.out_of_scope
        assert found.confidence == pytest.approx(one.confidence, abs=1e-5)


def test_it_predicts_from_several_threads_at_once(classifier: TextClassifier) -> None:
    texts = ["where is my card", "refund please", "tell me a joke", "reset my pin"]
    expected = classifier.predict_many(texts)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: classifier.predict_many(texts), range(12)))

    assert all([r.label for r in result] == [e.label for e in expected] for result in results)


def test_it_reports_its_version_and_needs(classifier: TextClassifier, model_dir: Path) -> None:
    sha = hashlib.sha256((model_dir / MODEL_FILE).read_bytes()).hexdigest()

    assert classifier.version == f"test-intents@{sha[:12]}"
    assert classifier.needs_embedding
    assert classifier.meta["oos_label"] == "oos"


def test_it_refuses_an_altered_model(model_dir: Path, tmp_path: Path) -> None:
    altered = shutil.copytree(model_dir, tmp_path / "altered")
    data = bytearray((altered / MODEL_FILE).read_bytes())
    data[-1] ^= 0xFF
    (altered / MODEL_FILE).write_bytes(bytes(data))

    with pytest.raises(ModelUnavailable, match="sha256"):
        TextClassifier.load(altered)


def test_it_checks_the_model_again_when_it_opens_it(model_dir: Path, tmp_path: Path,
                                                    embedder: OnnxEmbedder) -> None:
    copy = shutil.copytree(model_dir, tmp_path / "copy")
    loaded = TextClassifier.load(copy, embedder=embedder)  # checked, nothing opened yet
    (copy / MODEL_FILE).write_bytes(b"not a model")

    with pytest.raises(ModelUnavailable, match="sha256"):
        loaded.predict("where is my card")


def test_it_refuses_embeddings_of_another_model(model_dir: Path, tmp_path: Path,
                                                embedder: OnnxEmbedder) -> None:
    other = shutil.copytree(model_dir, tmp_path / "other")
    meta = json.loads((other / META_FILE).read_text())
    meta["features"]["embedding"]["model_id"] = "another-embedder@256"
    (other / META_FILE).write_text(json.dumps(meta))

    with pytest.raises(ModelUnavailable, match="another-embedder@256"):
        TextClassifier.load(other, embedder=embedder)


@pytest.mark.parametrize("content", ["", "{}", '{"format": "something else"}', "[1, 2]"])
def test_it_refuses_metadata_it_cannot_read(model_dir: Path, tmp_path: Path,
                                            content: str) -> None:
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    (broken / META_FILE).write_text(content)

    with pytest.raises(ModelUnavailable, match=META_FILE):
        TextClassifier.load(broken)


def test_it_replaces_an_existing_model_directory_whole(artefact: Artefact,
                                                       tmp_path: Path) -> None:
    target = tmp_path / "models" / "intents"
    target.mkdir(parents=True)
    (target / META_FILE).write_text("{}")
    (target / "stale.txt").write_text("from an older model")

    save(artefact, target)

    assert sorted(p.name for p in target.iterdir()) == [META_FILE, MODEL_FILE]
    assert [p.name for p in target.parent.iterdir()] == ["intents"]  # no temp dirs left


def test_it_never_replaces_a_directory_that_is_not_a_model(artefact: Artefact,
                                                           tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(InvalidRequest, match="not a classifier directory"):
        save(artefact, tmp_path)

    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_it_trains_a_binary_classifier_without_out_of_scope(embedder: OnnxEmbedder,
                                                            tmp_path: Path) -> None:
    texts = [f"{o} {p}".strip() for o in OPENERS for p in (
        "can I talk to a human", "put me through to an agent", "I want a real person")]
    texts += [f"{o} {p}".strip() for o in OPENERS for p in (
        "where is my order", "thanks, that helped", "what are your opening hours")]
    labels = ["human"] * 15 + ["other"] * 15

    artefact = train(texts, labels, embedder=embedder, name="human-request")
    classifier = TextClassifier.load(save(artefact, tmp_path / "human"), embedder=embedder)
    found = classifier.predict("please let me speak with someone real")

    assert artefact.meta["labels"] == ["human", "other"]
    assert artefact.meta["oos_label"] is None and artefact.meta["threshold"] is None
    assert artefact.meta["metrics"]["oos_recall"] is None
    assert found.label == "human" and not found.out_of_scope
    assert {label for label, _ in found.top} == {"human", "other"}


def test_it_trains_on_text_features_alone(tmp_path: Path) -> None:
    texts, labels = rows()

    artefact = train(texts, labels, oos_label="oos", name="text-only",
                     options=TrainOptions(embedding=False))
    classifier = TextClassifier.load(save(artefact, tmp_path / "text-only"))

    assert not classifier.needs_embedding
    assert [i.name for i in onnx.load_from_string(artefact.model).graph.input] == ["text"]
    assert artefact.meta["memory"] is None
    assert len(artefact.meta["scope"]["features"]) == 2  # the head's probabilities only
    assert classifier.predict("my PIN is blocked").label == "reset_pin"


def test_it_refuses_data_with_fewer_than_two_labels(embedder: OnnxEmbedder) -> None:
    with pytest.raises(InvalidRequest, match="at least 2 labels"):
        train(["a", "b", "c"], ["x", "x", "x"], embedder=embedder)


def test_it_evaluates_with_every_metric_and_latency(classifier: TextClassifier) -> None:
    texts = ["where is my card", "I forgot my PIN", "tell me a joke", "how's the weather"]

    result = evaluate(classifier, texts, ["card_arrival", "reset_pin", "oos", "oos"], "oos")

    assert list(result) == [*METRIC_KEYS, "n"]
    assert result["n"] == 4
    assert result["p50_ms"] > 0 and result["p95_ms"] >= result["p50_ms"]
    assert result["oos_recall"] is not None


def test_it_gives_no_out_of_scope_metrics_without_out_of_scope_rows(
        classifier: TextClassifier) -> None:
    result = evaluate(classifier, ["where is my card"], ["card_arrival"], "oos")

    assert result["oos_precision"] is None and result["oos_recall"] is None
    assert result["in_scope_accuracy"] == result["accuracy"]


def test_it_scores_out_of_scope_as_a_class_and_as_a_rejection() -> None:
    gold = ["a", "a", "b", "oos", "oos"]
    predicted = ["a", "oos", "b", "oos", "b"]

    result = score(gold, predicted, "oos")

    assert result["accuracy"] == 0.6
    assert result["in_scope_accuracy"] == round(2 / 3, 4)  # the rejected "a" counts wrong
    assert result["oos_precision"] == 0.5 and result["oos_recall"] == 0.5
    # F1: a = 2/3, b = 2/3, oos = 1/2
    assert result["macro_f1"] == round((2 / 3 + 2 / 3 + 1 / 2) / 3, 4)
