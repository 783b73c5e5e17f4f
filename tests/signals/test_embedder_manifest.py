"""The embedder's entries in model_store/manifest.toml: how they load and that they verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.llm.manifest import Manifest, load_manifest, verify

ENTRY = """
[[models]]
id = "{id}"
role = "{role}"
profile = "cpu"
backend = "{backend}"
file = "f.bin"
license = "Apache-2.0"
source = "test"
"""


def test_it_loads_the_shipped_embedder_and_its_tokenizer(manifest: Manifest) -> None:
    embedder = manifest.models[manifest.route("cpu", "embed")[0]]
    tokenizer = manifest.models[str(embedder.options["tokenizer"])]

    assert (embedder.backend, embedder.role, embedder.context_tokens) == ("onnx", "embedder", 128)
    assert embedder.options == {"dim": 384, "tokenizer": "all-minilm-l6-v2-tokenizer"}
    assert (tokenizer.backend, tokenizer.role, tokenizer.context_tokens) == ("file", "tokenizer", 0)
    assert manifest.route("gpu", "embed") == manifest.route("cpu", "embed")


def test_it_verifies_the_shipped_embedder_files(manifest: Manifest) -> None:
    embedder = manifest.models["all-minilm-l6-v2-int8"]
    tokenizer = manifest.models["all-minilm-l6-v2-tokenizer"]

    assert (verify(embedder).status, verify(tokenizer).status) == ("ok", "ok")


def test_it_needs_context_tokens_for_an_embedder_but_not_for_a_file(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text(ENTRY.format(id="tok", role="tokenizer",
                                                         backend="file"))
    assert load_manifest(tmp_path).models["tok"].context_tokens == 0

    (tmp_path / "manifest.toml").write_text(ENTRY.format(id="emb", role="embedder",
                                                         backend="onnx"))
    with pytest.raises(ConfigError, match="'emb' lacks context_tokens"):
        load_manifest(tmp_path)
