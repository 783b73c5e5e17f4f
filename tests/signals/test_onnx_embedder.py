"""The ONNX embedder on the real all-MiniLM-L6-v2 int8 model and real sentences."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from appliance.config import Settings, load_settings
from appliance.errors import ConfigError, ModelUnavailable
from appliance.llm.base import ModelSpec
from appliance.llm.manifest import Manifest
from appliance.signals import build_embedder
from appliance.signals.onnx_embedder import BATCH_SIZE, OnnxEmbedder

MODEL_STORE = Path(__file__).resolve().parents[2] / "model_store"
EMPTY_CONFIG = Path(__file__).resolve().parents[1] / "empty-config.toml"
SENTENCES = [
    "How do I reset my PIN?",
    "I forgot my card PIN",
    "What's the weather like today?",
    "My parcel has not arrived and the tracking page has not changed since Monday.",
    "Can I return shoes I bought online to a store?",
    "",
    "Refund",
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_it_embeds_sentences_as_unit_vectors_of_384_dims(embedder: OnnxEmbedder) -> None:
    vectors = embedder.embed(SENTENCES)

    assert vectors.shape == (len(SENTENCES), 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dim == 384


def test_it_places_paraphrases_closer_than_unrelated_sentences(embedder: OnnxEmbedder) -> None:
    pin, forgot, weather = embedder.embed(SENTENCES[:3])

    assert cosine(pin, forgot) > 0.6
    assert cosine(pin, forgot) > cosine(pin, weather) + 0.4
    assert cosine(pin, forgot) > cosine(forgot, weather) + 0.4


def test_it_gives_the_same_vectors_batched_as_one_by_one(embedder: OnnxEmbedder) -> None:
    # More texts than one batch, in mixed lengths, so sorting and padding are exercised.
    texts = [f"{SENTENCES[i % len(SENTENCES)]} {'and more words ' * (i % 5)}".strip()
             for i in range(BATCH_SIZE + 9)]

    batched = embedder.embed(texts)
    one_by_one = np.stack([embedder.embed_one(text) for text in texts])

    assert np.allclose(batched, one_by_one, atol=1e-5)


def test_it_returns_an_empty_matrix_for_no_texts(embedder: OnnxEmbedder) -> None:
    vectors = embedder.embed([])

    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_it_truncates_very_long_text_to_the_context_length(embedder: OnnxEmbedder) -> None:
    body = "The delivery was late and the box was damaged. " * 400  # ~4,000 tokens

    first, second = embedder.embed([body + "Refund me.", body + "Thank you!"])

    assert np.allclose(np.linalg.norm(first), 1.0, atol=1e-5)
    # Only the first context_tokens (128) tokens are read: different endings make no difference.
    assert np.allclose(first, second, atol=1e-6)


def test_it_embeds_from_several_threads_at_once(embedder: OnnxEmbedder) -> None:
    expected = embedder.embed(SENTENCES)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: embedder.embed(SENTENCES), range(16)))

    for vectors in results:
        assert np.allclose(vectors, expected, atol=1e-5)


# A fresh interpreter: this test process has onnxruntime loaded already, and onnxruntime's
# threads do not survive a fork, which is the very thing under test.
FORK_SCRIPT = """
import os, sys
from pathlib import Path
from appliance.errors import ModelUnavailable
from appliance.llm.manifest import load_manifest
from appliance.signals.onnx_embedder import OnnxEmbedder

manifest = load_manifest(Path(sys.argv[1]))
embedder = OnnxEmbedder(manifest.models[sys.argv[2]], manifest.models[sys.argv[3]], threads=2)
if sys.argv[4] == "loaded":
    embedder.embed_one("the parent embeds before forking")
pid = os.fork()
if pid == 0:
    try:
        print(f"child {embedder.embed_one('hello')[:2]}", flush=True)
    except ModelUnavailable as exc:
        print(f"child refused: {exc.message}", flush=True)
        os._exit(3)  # a normal exit would abort in onnxruntime's inherited state
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print(f"child exit {os.waitstatus_to_exitcode(status)}")
print(f"parent {embedder.embed_one('hello')[:2]}")
"""


def run_fork_script(model_spec: ModelSpec, tokenizer_spec: ModelSpec, parent: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(MODEL_STORE), model_spec.id, tokenizer_spec.id,
         parent],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_it_loads_in_a_forked_child_when_the_parent_never_embedded(
    model_spec: ModelSpec, tokenizer_spec: ModelSpec
) -> None:
    child, child_exit, parent = run_fork_script(model_spec, tokenizer_spec, "lazy")

    assert child_exit == "child exit 0"
    assert child.removeprefix("child ") == parent.removeprefix("parent ")


def test_it_refuses_in_a_forked_child_when_the_parent_had_embedded(
    model_spec: ModelSpec, tokenizer_spec: ModelSpec
) -> None:
    child, child_exit, parent = run_fork_script(model_spec, tokenizer_spec, "loaded")

    assert child.startswith("child refused: embedder all-minilm-l6-v2-int8@128 was loaded before "
                            "this process forked")
    assert child_exit == "child exit 3"
    assert parent.startswith("parent [")


def test_it_reports_health(embedder: OnnxEmbedder) -> None:
    health = embedder.check_health()

    assert health.ok
    assert health.detail == "all-minilm-l6-v2-int8@128: 384-dim vectors"
    assert health.latency_ms > 0


# --- files that fail verification -----------------------------------------------------------


@pytest.fixture
def altered_copy(model_spec: ModelSpec, tmp_path: Path) -> Path:
    """A copy of the model of the same size with one byte changed."""
    assert model_spec.path is not None
    path = tmp_path / "model.onnx"
    shutil.copyfile(model_spec.path, path)
    with path.open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return path


@pytest.mark.parametrize("which", ["model", "tokenizer"])
def test_it_refuses_a_missing_file(
    model_spec: ModelSpec, tokenizer_spec: ModelSpec, tmp_path: Path, which: str
) -> None:
    if which == "model":
        model_spec = replace(model_spec, path=tmp_path / "absent.onnx")
    else:
        tokenizer_spec = replace(tokenizer_spec, path=tmp_path / "absent.json")
    embedder = OnnxEmbedder(model_spec, tokenizer_spec, threads=1)

    with pytest.raises(ModelUnavailable, match="missing"):
        embedder.embed(["hello"])
    health = embedder.check_health()
    assert not health.ok
    assert "missing" in health.detail


def test_it_refuses_an_altered_model_file(
    model_spec: ModelSpec, tokenizer_spec: ModelSpec, altered_copy: Path, tmp_path: Path
) -> None:
    embedder = OnnxEmbedder(replace(model_spec, path=altered_copy), tokenizer_spec, threads=1,
                            verify_cache=tmp_path / "verify.json")

    with pytest.raises(ModelUnavailable, match="mismatch") as caught:
        embedder.embed_one("hello")

    assert caught.value.retryable


def test_it_needs_no_model_for_no_texts(
    model_spec: ModelSpec, tokenizer_spec: ModelSpec, tmp_path: Path
) -> None:
    embedder = OnnxEmbedder(replace(model_spec, path=tmp_path / "absent.onnx"), tokenizer_spec,
                            threads=1)

    assert embedder.embed([]).shape == (0, 384)


# --- build_embedder -------------------------------------------------------------------------


def _settings(tmp_path: Path) -> Settings:
    return load_settings(overrides={"data_dir": str(tmp_path / "data"), "llm_threads": 1},
                         env={"APPLIANCE_CONFIG": str(EMPTY_CONFIG)})


def test_it_builds_the_profiles_embedder_from_the_manifest(
    manifest: Manifest, tmp_path: Path
) -> None:
    embedder = build_embedder(manifest, _settings(tmp_path))

    assert isinstance(embedder, OnnxEmbedder)
    assert (embedder.model_id, embedder.dim) == ("all-minilm-l6-v2-int8@128", 384)
    assert embedder.tokenizer_spec.id == "all-minilm-l6-v2-tokenizer"
    assert embedder.embed_one("hello").shape == (384,)
    assert (tmp_path / "data" / "model-verify.json").is_file()


def test_it_refuses_two_embedders_in_one_route(manifest: Manifest, tmp_path: Path) -> None:
    ids = manifest.route("cpu", "embed")
    two = replace(manifest, profiles={"cpu": {"embed": ids * 2}})

    with pytest.raises(ConfigError, match="exactly one model"):
        build_embedder(two, _settings(tmp_path))


def test_it_refuses_an_embedder_without_a_tokenizer(manifest: Manifest, tmp_path: Path) -> None:
    spec = manifest.models["all-minilm-l6-v2-int8"]
    alone = replace(manifest, models={spec.id: spec})

    with pytest.raises(ConfigError, match="needs tokenizer"):
        build_embedder(alone, _settings(tmp_path))
