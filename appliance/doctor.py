"""Checks of every backend, for `appliance doctor` (and anything else that wants them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from appliance.db.migrate import pending
from appliance.errors import ApplianceError
from appliance.llm.base import ChatMessage, ChatModel, GenerationParams, ModelSpec
from appliance.llm.manifest import verify
from appliance.llm.router import RouteStatus
from appliance.services import Services
from appliance.signals.service import ClassifierInfo


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
    # One line per check (a database error spans several: the statement, a caret under it).
    return Check(name, ok, " ".join(detail.split()),
                 round((time.perf_counter() - started) * 1000, 1))


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

    schema = _timed("migrations", migrations)
    checks = [
        _timed("data_dir", data_dir),
        _timed("database", database),
        schema,
        _timed("llama.cpp build", llama_build),
    ]
    checks += _model_checks(services)
    checks += [_task_check(services, task) for task in services.router.tasks]

    def embedder() -> str:
        vector = services.embedder.embed_one("doctor check")
        return f"{services.embedder.model_id}: {vector.shape[-1]} dimensions"

    checks.append(_timed("embedder", embedder))
    checks += _classifier_checks(services)
    checks.append(_timed("secret key", lambda: "set" if settings.secret_key else "missing"))
    if schema.ok:  # the sources' table is as this version reads it
        checks.append(_timed("knowledge import folders", partial(_import_folders, services)))
    return checks


def _import_folders(services: Services) -> str:
    """Every knowledge source lies in its brand's import folder; one registered before folders
    were per brand is still read, and named here until it is moved."""
    outside = services.knowledge.outside_import_folders()
    if outside:
        named = "; ".join(f"{s.brand.slug} source {s.id}: {s.location}" for s in outside)
        raise ApplianceError(
            f"{len(outside)} source(s) outside their brand's import folder ({named}): move "
            "each into <import dir>/<slug>/ and run 'appliance knowledge sources edit "
            "--brand SLUG ID --path NEW'")
    return "every source inside its brand's folder"


def _model_checks(services: Services) -> list[Check]:
    """Per routed model: its file against the manifest, and a real generation. An absent
    optional model gets one line, ok: its tasks' lines say what answers instead."""
    checks = []
    status = services.router.status()
    for model_id, model in services.router.models.items():
        if not status[model_id].present:
            checks.append(_timed(f"model {model_id}: file", partial(_absent, model)))
            continue
        checks.append(_timed(f"model {model_id}: file",
                             partial(_file_ok, model.spec, services.settings.model_verify_cache)))
        checks.append(_timed(f"model {model_id}: generate", partial(_answers, model)))
    return checks


def _classifier_checks(services: Services) -> list[Check]:
    """Per signal classifier: it loads (sha256 against its metadata) and reads a message."""

    def check(info: ClassifierInfo) -> str:
        if not info.present:
            raise ApplianceError(f"absent or not loading: {info.path}")
        read = services.signals.read(info.brand or "", "I would like to talk to a person.")
        metrics = info.meta.get("metrics", {})
        scope = f"brand {info.brand}" if info.brand else "all brands"
        return (f"{info.signal} ({scope}), held-out accuracy {metrics.get('accuracy', '?')}; "
                f"read in {read.latency_ms:.1f} ms")

    return [_timed(f"classifier {info.model_id}", partial(check, info))
            for info in services.signals.classifiers()]


def _file_ok(spec: ModelSpec, cache_file: Path) -> str:
    result = verify(spec, cache_file)
    if not result.ok:
        raise ApplianceError(f"{result.status}: {result.detail}")
    return result.detail


def _answers(model: ChatModel) -> str:
    completion = model.complete(
        [ChatMessage("user", "Say OK.")], GenerationParams(max_tokens=4, timeout_s=60)
    )
    return f"answered in {completion.completion_tokens} tokens"


def _absent(model: ChatModel) -> str:
    if not model.spec.optional:
        raise ApplianceError(f"missing: {model.spec.path} not found")
    name = model.spec.path.name if model.spec.path else model.spec.id
    return f"absent, optional (operator supplies {name})"


def _absence(model: ChatModel) -> str:
    """Why a model is absent, in the words an operator acts on."""
    path = model.spec.path
    if model.spec.optional and path is not None:
        return f"{model.spec.id} absent (operator supplies {path.name})"
    return f"{model.spec.id} absent ({path} not found)"


def _task_check(services: Services, task: str) -> Check:
    """A task passes while one model of its route is present; absent ones are named."""
    router = services.router

    def route() -> str:
        status: RouteStatus = router.route_status(task)
        absent = "; ".join(_absence(router.models[m]) for m in status.absent)
        if not status.ok:
            raise ApplianceError(f"no model present: {absent}")
        chain = " -> ".join(status.present)
        if not absent:
            return chain
        if status.route[0] in status.absent:
            return f"{absent}; falls back to {chain}"
        return f"{chain}; {absent}"

    return _timed(f"task {task}", route)
