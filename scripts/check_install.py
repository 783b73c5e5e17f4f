"""Fail the install if llama.cpp was built with AMX or an embedded model or file is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import llama_cpp

from appliance.llm.manifest import load_manifest, verify

info = llama_cpp.llama_print_system_info().decode()
if "AMX" in info:
    sys.exit("llama-cpp-python was built with AMX (it crashes here): rm -rf .cache/wheels .venv "
             "and run make again")
manifest = load_manifest(Path(__file__).resolve().parent.parent / "model_store")
embedders = manifest.route("cpu", "embed")
# An embedder names its tokenizer file in the manifest (`tokenizer = "<id>"`).
tokenizers = [str(manifest.models[m].options["tokenizer"]) for m in embedders]
for model_id in [*manifest.route("cpu", "reply"), *embedders, *tokenizers]:
    result = verify(manifest.models[model_id])
    if not result.ok:
        sys.exit(f"embedded model {model_id}: {result.status} ({result.detail})")
print("install ok: llama.cpp without AMX, embedded models verified")
