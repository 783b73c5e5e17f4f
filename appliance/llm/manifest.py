"""Read model_store/manifest.toml: the models, the profiles' routes, and file verification."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import ConfigError
from appliance.llm.base import ModelSpec

_REQUIRED = ("id", "role", "profile", "backend", "license", "source")
#: backend -> what it needs beyond _REQUIRED. Chat models and embedders have a context size (an
#: embedder's is the longest input it reads); a plain file (a tokenizer) has none.
_BACKENDS: dict[str, tuple[str, ...]] = {
    "llamacpp": ("context_tokens",),
    "openai_http": ("context_tokens",),
    "onnx": ("context_tokens", "file"),
    "file": ("file",),
}
#: Replicas are the same model served by other boxes, so they must agree on what routes rely on.
_SAME_IN_REPLICAS = ("role", "profile", "backend")


@dataclass(frozen=True)
class Manifest:
    models: dict[str, ModelSpec]
    #: profile -> task -> ordered model ids
    profiles: dict[str, dict[str, tuple[str, ...]]]

    #: Each model that is no replica -> it and its replicas, in manifest order.
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def with_replicas(self, where: str, ids: tuple[str, ...]) -> tuple[str, ...]:
        """`ids` named as a route names them (`where` says which, for the error): each model
        followed by its replicas. ConfigError on an unknown id or a replica's."""
        return _route(where, list(ids), self.groups)

    def route(self, profile: str, task: str) -> tuple[str, ...]:
        """The model ids of `task` in the order tried, each model with replicas followed by them."""
        try:
            return self.profiles[profile][task]
        except KeyError as exc:
            raise ConfigError(f"manifest: profile {profile!r} has no route for {task!r}") from exc


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _spec(entry: dict[str, Any], store: Path) -> ModelSpec:
    missing = [key for key in _REQUIRED if key not in entry]
    if missing:
        raise ConfigError(f"manifest: model {entry.get('id', '?')!r} lacks {', '.join(missing)}")
    if entry["backend"] not in _BACKENDS:
        raise ConfigError(f"manifest: model {entry['id']!r} has unknown backend")
    missing = [key for key in _BACKENDS[entry["backend"]] if key not in entry]
    if missing:
        raise ConfigError(f"manifest: model {entry['id']!r} lacks {', '.join(missing)}")
    path = None
    if "file" in entry:
        base = _package_dir(entry["package"]) if "package" in entry else store
        path = (base / entry["file"]) if base is not None else Path(entry["package"], entry["file"])
    known = {*_REQUIRED, "context_tokens", "file", "package", "sha256", "size", "url",
             "served_name", "timeout_s", "optional", "directory", "replica_of"}
    timeout_s = entry.get("timeout_s")
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float)
        or not 0 < timeout_s < math.inf
    ):
        raise ConfigError(f"manifest: model {entry['id']!r}: timeout_s must be a positive number")
    if not isinstance(entry.get("optional", False), bool):
        raise ConfigError(f"manifest: model {entry['id']!r}: optional must be true or false")
    replica_of = entry.get("replica_of")
    if replica_of is not None and (not isinstance(replica_of, str) or not replica_of):
        raise ConfigError(f"manifest: model {entry['id']!r}: replica_of must be a model id")
    return ModelSpec(
        id=entry["id"], role=entry["role"], profile=entry["profile"], backend=entry["backend"],
        context_tokens=int(entry.get("context_tokens", 0)), license=entry["license"],
        source=entry["source"], path=path, sha256=entry.get("sha256"), size=entry.get("size"),
        url=entry.get("url"), served_name=entry.get("served_name"),
        timeout_s=None if timeout_s is None else float(timeout_s),
        optional=entry.get("optional", False),
        directory=store / entry["directory"] if "directory" in entry else None,
        replica_of=replica_of,
        options={k: v for k, v in entry.items() if k not in known},
    )


def load_manifest(store: Path) -> Manifest:
    """Parse `store/manifest.toml`; raise ConfigError naming what is wrong."""
    path = store / "manifest.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"model manifest {path} cannot be read") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"model manifest {path}: {exc}") from exc
    models = {}
    for entry in raw.get("models", []):
        spec = _spec(entry, store)
        if spec.id in models:
            raise ConfigError(f"manifest: model id {spec.id!r} appears twice")
        models[spec.id] = spec
    groups = _replica_groups(models)
    profiles = {
        name: {task: _route(f"manifest: profile {name}.{task}", ids, groups)
               for task, ids in routes.items()}
        for name, routes in raw.get("profiles", {}).items()
    }
    return Manifest(models=models, profiles=profiles, groups=groups)


def _route(where: str, ids: list[str], groups: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A route's model ids, each model followed by its replicas; `where` names the route."""
    for model_id in ids:
        if model_id not in groups:
            first = next((g for g, members in groups.items() if model_id in members), None)
            if first is None:
                raise ConfigError(f"{where} names unknown {model_id!r}")
            raise ConfigError(f"{where} names {model_id!r}, a replica of {first!r}: name "
                              f"{first!r}, which stands for it and its replicas")
    return tuple(member for model_id in ids for member in groups[model_id])


def _replica_groups(models: dict[str, ModelSpec]) -> dict[str, tuple[str, ...]]:
    """Each model that is no replica -> it and its replicas, in manifest order. A replica is
    served over HTTP, names a model that is no replica itself, agrees with it on
    `_SAME_IN_REPLICAS`, and has a URL of its own."""
    groups = {model_id: [spec] for model_id, spec in models.items() if spec.replica_of is None}
    for spec in models.values():
        if spec.replica_of is None:
            continue
        where = f"manifest: model {spec.id!r} (replica_of {spec.replica_of!r})"
        if spec.replica_of not in models:
            raise ConfigError(f"{where}: no model has that id")
        if spec.replica_of not in groups:
            raise ConfigError(f"{where}: that model is a replica itself; name the model "
                              "all replicas share")
        if spec.backend != "openai_http":
            raise ConfigError(f"{where}: only a model served over HTTP (backend openai_http) "
                              "has replicas")
        first = models[spec.replica_of]
        for key in _SAME_IN_REPLICAS:
            if getattr(spec, key) != getattr(first, key):
                raise ConfigError(f"{where}: its {key} {getattr(spec, key)!r} differs from "
                                  f"{getattr(first, key)!r}")
        twin = next((other.id for other in groups[first.id] if other.url == spec.url), None)
        if twin is not None:
            raise ConfigError(f"{where}: {twin!r} has the same url {spec.url!r}; a replica is "
                              "another server")
        groups[first.id].append(spec)
    return {model_id: tuple(spec.id for spec in group) for model_id, group in groups.items()}


@dataclass(frozen=True)
class Verification:
    model_id: str
    status: str  # ok | missing | mismatch | no_checksum | remote
    detail: str

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "remote")


def file_absent(spec: ModelSpec) -> bool:
    """True when the model lives in a file and the file is not there. A stat, no hashing: cheap
    enough to ask before every call."""
    return spec.path is not None and not spec.path.is_file()


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


CHECKSUMS = "SHA256SUMS"


def verify_directory(spec: ModelSpec, directory: Path,
                     cache_file: Path | None = None) -> Verification:
    """Check a served model's directory against the SHA256SUMS in it (`sha256sum` format, made
    where the weights were downloaded): every listed file there and matching, none unlisted.
    With `cache_file`, files unchanged (size, mtime) since they last matched are not hashed."""
    if not directory.is_dir():
        return Verification(spec.id, "missing", f"{directory} not found")
    sums = directory / CHECKSUMS
    if not sums.is_file():
        return Verification(spec.id, "no_checksum",
                             f"{sums} not found (cd {directory} && sha256sum * > {CHECKSUMS})")
    listed: dict[str, str] = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition(" ")
        if line.strip():
            listed[name.strip().lstrip("*")] = digest
    present = {str(p.relative_to(directory)) for p in directory.rglob("*")
               if p.is_file() and p.name != CHECKSUMS}
    problems = [f"{name}: missing" for name in sorted(set(listed) - present)]
    problems += [f"{name}: not in {CHECKSUMS}" for name in sorted(present - set(listed))]
    cache = _read_cache(cache_file)
    for name in sorted(set(listed) & present):
        stat = (directory / name).stat()
        key = f"{directory / name}:{stat.st_size}:{stat.st_mtime_ns}"
        if cache.get(key) != listed[name]:
            cache[key] = sha256_file(directory / name)
        if cache[key] != listed[name]:
            problems.append(f"{name}: sha256 does not match")
    if problems:
        return Verification(spec.id, "mismatch", "; ".join(problems))
    if cache_file is not None:
        _write_cache(cache_file, cache)
    return Verification(spec.id, "ok", f"sha256 ok ({len(listed)} files, served at {spec.url})")


def verify(spec: ModelSpec, cache_file: Path | None = None) -> Verification:
    """Check a model's file against the manifest's size and sha256 (or a served model's
    directory against its SHA256SUMS).

    With `cache_file`, a file whose size and mtime match a previous successful check is not
    hashed again (hashing a multi-GB model at every worker start would cost seconds).
    """
    if spec.path is None and spec.directory is not None:
        return verify_directory(spec, spec.directory, cache_file)
    if spec.path is None:
        return Verification(spec.id, "remote", f"served at {spec.url}")
    if not spec.path.is_file():
        return Verification(spec.id, "missing", f"{spec.path} not found")
    stat = spec.path.stat()
    if spec.size is not None and stat.st_size != spec.size:
        return Verification(spec.id, "mismatch", f"size {stat.st_size} != {spec.size}")
    if not spec.sha256:
        return Verification(spec.id, "no_checksum", "manifest has no sha256 for this file")
    key = f"{spec.path}:{stat.st_size}:{stat.st_mtime_ns}"
    cache = _read_cache(cache_file)
    if cache.get(key) == spec.sha256:
        return Verification(spec.id, "ok", "sha256 ok (cached)")
    actual = sha256_file(spec.path)
    if actual != spec.sha256:
        return Verification(spec.id, "mismatch", f"sha256 {actual} != {spec.sha256}")
    if cache_file is not None:
        cache[key] = actual
        _write_cache(cache_file, cache)
    return Verification(spec.id, "ok", "sha256 ok")


def _read_cache(path: Path | None) -> dict[str, str]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, cache: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{id(cache)}.tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    tmp.replace(path)
