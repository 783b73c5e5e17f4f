"""`appliance intents train|eval` through click's CliRunner, with the real embedder and
onnxruntime: a model trained once per module from a CSV the test writes, its evaluation as a
table and as JSON, and the errors for data the commands cannot use."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from appliance.cli import cli

REPO = Path(__file__).resolve().parents[2]
EMPTY_CONFIG = REPO / "tests" / "empty-config.toml"
METRICS = ["accuracy", "macro_f1", "in_scope_accuracy", "oos_precision", "oos_recall",
           "p50_ms", "p95_ms"]
Env = dict[str, str]
OPENERS = ("", "hi,", "hello, quick question:", "please help:")
PHRASES = {
    "track_order": ["where is my order", "my parcel has not arrived", "track my package",
                    "when will my delivery come"],
    "cancel_order": ["cancel my order", "I don't want the order anymore",
                     "please stop my purchase", "how do I cancel what I bought"],
    "change_address": ["change my delivery address", "I moved, update my address",
                       "ship it to a different address", "wrong address on my order"],
    "out_of_scope": ["what is the capital of France", "tell me a joke",
                     "how tall is mount everest", "play some music"],
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """APPLIANCE_* variables for a fresh data dir; no database is needed."""
    return {"APPLIANCE_CONFIG": str(EMPTY_CONFIG),
            "APPLIANCE_DATA_DIR": str(tmp_path_factory.mktemp("data"))}


def invoke(env: Env, *args: str) -> Result:
    """The click command in this process, with only `env` as APPLIANCE_* configuration."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APPLIANCE_")}
    return CliRunner().invoke(cli, list(args), env=unset | env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.stdout


def write_csv(path: Path, rows: list[tuple[str, str]],
              header: tuple[str, str] = ("utterance", "intent")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def training_rows() -> list[tuple[str, str]]:
    return [(f"{opener} {phrase}".strip(), label) for label, phrases in PHRASES.items()
            for opener in OPENERS for phrase in phrases]


@pytest.fixture(scope="module")
def model(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by `appliance intents train` on columns named other than the default."""
    tmp = tmp_path_factory.mktemp("intents")
    data = write_csv(tmp / "train.csv", training_rows())
    out = tmp / "model"
    result = invoke(env, "intents", "train", "--csv", str(data), "--out", str(out),
                    "--text-col", "utterance", "--label-col", "intent",
                    "--oos-label", "out_of_scope")
    assert "wrote" in ok(result)
    return out


@pytest.fixture
def test_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "test.csv", [
        ("has my parcel shipped yet?", "track_order"),
        ("I'd like to cancel the order I placed", "cancel_order"),
        ("please send it to my new address", "change_address"),
        ("who painted the mona lisa", "out_of_scope"),
    ])


def test_it_trains_a_model_directory(model: Path) -> None:
    meta = json.loads((model / "classifier.json").read_text())

    assert (model / "model.onnx").is_file()
    assert meta["name"] == "model"
    assert meta["labels"] == sorted(PHRASES)
    assert meta["oos_label"] == "out_of_scope"
    assert meta["training_data"]["rows"] == len(training_rows())


def test_it_prints_held_out_metrics_after_training(env: Env, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "train.csv", training_rows(), header=("text", "label"))

    out = ok(invoke(env, "intents", "train", "--csv", str(data), "--out",
                    str(tmp_path / "m"), "--oos-label", "out_of_scope"))

    assert "held-out (5 folds)" in out
    for key in ("accuracy", "macro_f1", "in_scope_accuracy", "oos_precision", "oos_recall"):
        assert key in out


def test_it_evaluates_as_a_table(env: Env, model: Path, test_csv: Path) -> None:
    out = ok(invoke(env, "intents", "eval", "--model", str(model), "--csv", str(test_csv),
                    "--text-col", "utterance", "--label-col", "intent",
                    "--oos-label", "out_of_scope"))

    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert names == [*METRICS, "n"]


def test_it_evaluates_as_one_json_object(env: Env, model: Path, test_csv: Path) -> None:
    out = ok(invoke(env, "intents", "eval", "--model", str(model), "--csv", str(test_csv),
                    "--text-col", "utterance", "--label-col", "intent",
                    "--oos-label", "out_of_scope", "--json"))

    result = json.loads(out)
    assert list(result) == [*METRICS, "n"]
    assert result["n"] == 4
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["oos_recall"] is not None
    assert result["p95_ms"] >= result["p50_ms"] > 0


def test_it_gives_no_oos_metrics_for_data_without_oos_rows(env: Env, model: Path,
                                                           tmp_path: Path) -> None:
    data = write_csv(tmp_path / "in-scope.csv", [("where is my order", "track_order"),
                                                 ("cancel my order", "cancel_order")])
    args = ["intents", "eval", "--model", str(model), "--csv", str(data),
            "--text-col", "utterance", "--label-col", "intent"]

    result = json.loads(ok(invoke(env, *args, "--json")))
    table = ok(invoke(env, *args))

    assert result["oos_precision"] is None and result["oos_recall"] is None
    rows = dict(line.split()[:2] for line in table.splitlines()[2:])
    assert rows["oos_precision"] == "-" and rows["oos_recall"] == "-"


def test_it_names_a_missing_column(env: Env, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "train.csv", training_rows())

    result = invoke(env, "intents", "train", "--csv", str(data), "--out", str(tmp_path / "m"))

    assert result.exit_code != 0
    assert "no column 'text', 'label'" in result.output
    assert "'utterance'" in result.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("content", [None, b"\xff\xfe\x00binary\x00\x81", b""],
                         ids=["missing", "binary", "empty"])
def test_it_refuses_a_file_it_cannot_read(env: Env, tmp_path: Path,
                                          content: bytes | None) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_bytes(content)

    result = invoke(env, "intents", "train", "--csv", str(path), "--out", str(tmp_path / "m"))

    assert result.exit_code != 0
    assert str(path) in result.output


def test_it_refuses_fewer_than_two_labels(env: Env, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "one.csv", [("where is my order", "track"),
                                            ("track my parcel", "track")],
                     header=("text", "label"))

    result = invoke(env, "intents", "train", "--csv", str(data), "--out", str(tmp_path / "m"))

    assert result.exit_code != 0
    assert "at least 2 labels" in result.output


def test_it_refuses_a_directory_that_is_not_a_model(env: Env, tmp_path: Path,
                                                    test_csv: Path) -> None:
    result = invoke(env, "intents", "eval", "--model", str(tmp_path), "--csv", str(test_csv),
                    "--text-col", "utterance", "--label-col", "intent")

    assert result.exit_code != 0
    assert "classifier.json" in result.output


def test_it_refuses_to_write_over_a_directory_that_is_not_a_model(env: Env, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "train.csv", training_rows(), header=("text", "label"))

    result = invoke(env, "intents", "train", "--csv", str(data), "--out", str(tmp_path),
                    "--oos-label", "out_of_scope")

    assert result.exit_code != 0
    assert "not a classifier directory" in result.output
    assert data.is_file()
