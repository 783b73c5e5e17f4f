"""Build chat model backends from manifest specs."""

from __future__ import annotations

from appliance.config import Settings
from appliance.errors import ConfigError
from appliance.llm.base import ChatModel, ModelSpec


def build_model(spec: ModelSpec, settings: Settings) -> ChatModel:
    """One backend object per spec; nothing is loaded or connected until first use."""
    if spec.backend == "llamacpp":
        from appliance.llm.llamacpp import LlamaCppModel

        return LlamaCppModel(spec, threads=settings.llm_threads,
                             niceness=settings.llm_decode_niceness,
                             verify_cache=settings.model_verify_cache)
    if spec.backend == "openai_http":
        from appliance.llm.openai_http import OpenAIHttpModel

        return OpenAIHttpModel(spec, timeout_s=settings.llm_timeout_s)
    raise ConfigError(f"model {spec.id!r}: unknown backend {spec.backend!r}")
