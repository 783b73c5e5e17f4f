"""Checks of every backend, for `appliance doctor` (and anything else that wants them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.db.migrate import pending
from appliance.errors import ApplianceError
from appliance.llm.base import ChatMessage, GenerationParams
from appliance.llm.manifest import verify
from appliance.services import Services


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    ms: float


def _timed(name: str, probe: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail, ok = probe(), True
    except ApplianceError as exc:
        detail, ok = exc.message, False
    except Exception as exc:  # doctor reports every failure; it never crashes
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Check(name, ok, detail, round((time.perf_counter() - started) * 1000, 1))


def run_checks(services: Services) -> list[Check]:
    settings = services.settings

    def data_dir() -> str:
        probe = settings.data_dir / ".doctor-write-test"
        probe.write_text("ok")
        probe.unlink()
        return f"{settings.data_dir} writable"

    def database() -> str:
        services.db.execute_sql("SELECT 1")  # type: ignore[no-untyped-call]
        return "sqlite (WAL)" if settings.is_sqlite else "postgresql"

    def migrations() -> str:
        waiting = pending(services.db)
        if waiting:
            raise ApplianceError(f"{len(waiting)} pending: run 'appliance db migrate'")
        return "schema current"

    def llama_build() -> str:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode()
        if "AMX" in info:
            raise ApplianceError("llama-cpp-python was built with AMX (GGML_NATIVE=ON); rebuild "
                                 "with CMAKE_ARGS=-DGGML_NATIVE=OFF")
        return "native off, no AMX"

    checks = [
        _timed("data_dir", data_dir),
        _timed("database", database),
        _timed("migrations", migrations),
        _timed("llama.cpp build", llama_build),
    ]
    for model_id, model in services.router.models.items():
        def file_ok(spec=model.spec) -> str:  # type: ignore[no-untyped-def]
            result = verify(spec)
            if not result.ok:
                raise ApplianceError(f"{result.status}: {result.detail}")
            return result.detail

        def answers(model=model) -> str:  # type: ignore[no-untyped-def]
            completion = model.complete(
                [ChatMessage("user", "Say OK.")], GenerationParams(max_tokens=4, timeout_s=60)
            )
            return f"answered in {completion.completion_tokens} tokens"

        checks.append(_timed(f"model {model_id}: file", file_ok))
        checks.append(_timed(f"model {model_id}: generate", answers))
    def embedder() -> str:
        vector = services.embedder.embed_one("doctor check")
        return f"{services.embedder.model_id}: {vector.shape[-1]} dimensions"

    checks.append(_timed("embedder", embedder))
    checks.append(_timed("secret key", lambda: "set" if settings.secret_key else "missing"))
    return checks
