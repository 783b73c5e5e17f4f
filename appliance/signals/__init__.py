"""Signals: what the appliance computes from text besides replies (sentence embeddings first).

`build_embedder(manifest, settings)` is the one place an embedder is constructed; the
composition root calls it. Nothing loads until first use.
"""

from __future__ import annotations

from appliance.config import Settings
from appliance.errors import ConfigError
from appliance.llm.manifest import Manifest
from appliance.signals.base import Embedder

__all__ = ["Embedder", "build_embedder"]

#: The manifest route naming the embedder of each profile.
EMBED_TASK = "embed"


def build_embedder(manifest: Manifest, settings: Settings) -> Embedder:
    """The active profile's embedder (its `embed` route, exactly one model); loads nothing.

    Raises ConfigError when the route is missing or names more than one model (vectors of two
    models are not comparable, so there is no fallback), or when the entry or its tokenizer is
    not what an embedder needs.
    """
    ids = manifest.route(settings.model_profile, EMBED_TASK)
    if len(ids) != 1 or ids[0] not in manifest.models:
        raise ConfigError(f"manifest: profile {settings.model_profile}.{EMBED_TASK} must name "
                          "exactly one model")
    spec = manifest.models[ids[0]]
    if spec.backend != "onnx":
        raise ConfigError(f"manifest: embedder {spec.id!r} has backend {spec.backend!r}, "
                          "not onnx")
    tokenizer = manifest.models.get(str(spec.options.get("tokenizer", "")))
    if tokenizer is None or tokenizer.path is None:
        raise ConfigError(f"manifest: embedder {spec.id!r} needs tokenizer = <id of a file "
                          "entry>")
    from appliance.signals.onnx_embedder import OnnxEmbedder

    # The embedder runs on the CPU on every profile: a query costs milliseconds there.
    return OnnxEmbedder(spec, tokenizer, threads=settings.llm_threads,
                        verify_cache=settings.model_verify_cache)
