"""Fail the install if llama.cpp was built with AMX or the embedded model is missing."""

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
for model_id in manifest.route("cpu", "reply"):
    result = verify(manifest.models[model_id])
    if not result.ok:
        sys.exit(f"embedded model {model_id}: {result.status} ({result.detail})")
print("install ok: llama.cpp without AMX, embedded model verified")
