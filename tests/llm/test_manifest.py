"""model_store/manifest.toml: parsing, its errors, and verifying model files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.llm.base import ModelSpec
from appliance.llm.manifest import load_manifest, verify
from appliance.services import TASKS

MODEL_STORE = Path(__file__).resolve().parents[2] / "model_store"
CONTENT = b"not really a gguf, but bytes all the same\n"

MODEL = """
[[models]]
id = "{id}"
role = "small"
profile = "cpu"
backend = "{backend}"
file = "tiny.gguf"
context_tokens = 2048
license = "Apache-2.0"
source = "test"
"""


def write_manifest(store: Path, text: str) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    (store / "manifest.toml").write_text(text)
    return store


def file_spec(path: Path, *, size: int | None = None, sha256: str | None = None) -> ModelSpec:
    return ModelSpec(id="tiny", role="small", profile="cpu", backend="llamacpp",
                     context_tokens=2048, license="test", source="test", path=path,
                     size=size, sha256=sha256)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(CONTENT)
    return path


SHA256 = hashlib.sha256(CONTENT).hexdigest()


# --- verify ---------------------------------------------------------------------------------


def test_it_verifies_a_file_matching_size_and_sha256(model_file: Path) -> None:
    result = verify(file_spec(model_file, size=len(CONTENT), sha256=SHA256))

    assert result.ok
    assert (result.status, result.detail) == ("ok", "sha256 ok")


def test_it_reports_a_size_mismatch(model_file: Path) -> None:
    result = verify(file_spec(model_file, size=len(CONTENT) + 1, sha256=SHA256))

    assert not result.ok
    assert result.status == "mismatch"
    assert result.detail.startswith("size")


def test_it_reports_a_sha256_mismatch(model_file: Path) -> None:
    result = verify(file_spec(model_file, size=len(CONTENT), sha256="0" * 64))

    assert not result.ok
    assert result.status == "mismatch"
    assert result.detail.startswith("sha256")


def test_it_reports_a_missing_file(tmp_path: Path) -> None:
    result = verify(file_spec(tmp_path / "absent.gguf", sha256=SHA256))

    assert not result.ok
    assert result.status == "missing"


def test_it_reports_a_file_without_checksum(model_file: Path) -> None:
    result = verify(file_spec(model_file))

    assert not result.ok
    assert result.status == "no_checksum"


def test_it_counts_a_served_model_as_remote(tmp_path: Path) -> None:
    spec = ModelSpec(id="served", role="large", profile="gpu", backend="openai_http",
                     context_tokens=8192, license="test", source="test",
                     url="http://127.0.0.1:8001/v1", served_name="large")

    result = verify(spec)

    assert result.ok
    assert result.status == "remote"


def _served_directory(tmp_path: Path) -> tuple[ModelSpec, Path]:
    """A vLLM model directory with the SHA256SUMS an operator makes beside the weights."""
    store = write_manifest(tmp_path / "store", """
[[models]]
id = "vllm-large"
role = "large"
profile = "gpu"
backend = "openai_http"
url = "http://127.0.0.1:8002/v1"
served_name = "large"
directory = "vllm-large"
context_tokens = 16384
license = "test"
source = "test"
""")
    directory = store / "vllm-large"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    (directory / "model-00001-of-00001.safetensors").write_bytes(CONTENT)
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                   for p in sorted(directory.iterdir()))
    (directory / "SHA256SUMS").write_text(sums)
    return load_manifest(store).models["vllm-large"], directory


def test_it_verifies_a_served_models_directory_against_its_sha256sums(tmp_path: Path) -> None:
    spec, directory = _served_directory(tmp_path)
    assert spec.directory == directory and spec.path is None

    assert verify(spec).status == "ok"
    assert "2 files" in verify(spec).detail

    (directory / "model-00001-of-00001.safetensors").write_bytes(CONTENT.upper())
    (directory / "config.json").unlink()
    (directory / "stray.bin").write_bytes(b"x")
    broken = verify(spec)
    assert broken.status == "mismatch" and not broken.ok
    assert broken.detail == ("config.json: missing; stray.bin: not in SHA256SUMS; "
                             "model-00001-of-00001.safetensors: sha256 does not match")


def test_it_asks_for_sha256sums_beside_a_served_models_weights(tmp_path: Path) -> None:
    spec, directory = _served_directory(tmp_path)
    (directory / "SHA256SUMS").unlink()
    assert verify(spec).status == "no_checksum"
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()
    assert verify(spec).status == "missing"


def test_it_hashes_a_served_models_weights_once_until_they_change(tmp_path: Path) -> None:
    spec, directory = _served_directory(tmp_path)
    cache = tmp_path / "verified.json"
    assert verify(spec, cache_file=cache).ok
    weights = directory / "model-00001-of-00001.safetensors"
    assert any(key.startswith(f"{weights}:") for key in json.loads(cache.read_text()))
    weights.write_bytes(CONTENT.upper())
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert verify(spec, cache_file=cache).status == "mismatch"


def test_it_reuses_a_cached_check_until_the_file_changes(
    model_file: Path, tmp_path: Path
) -> None:
    spec = file_spec(model_file, size=len(CONTENT), sha256=SHA256)
    cache = tmp_path / "cache" / "verified.json"

    first = verify(spec, cache_file=cache)
    second = verify(spec, cache_file=cache)
    # Same size, other bytes, a later mtime: the cache entry no longer applies.
    model_file.write_bytes(CONTENT.upper())
    stat = model_file.stat()
    os.utime(model_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    third = verify(spec, cache_file=cache)

    assert (first.detail, second.detail) == ("sha256 ok", "sha256 ok (cached)")
    assert third.status == "mismatch"


def test_it_verifies_the_shipped_tiny_model() -> None:
    spec = load_manifest(MODEL_STORE).models["smollm2-135m-instruct"]

    assert verify(spec).status == "ok"


# --- load_manifest --------------------------------------------------------------------------


def test_it_loads_models_and_routes(tmp_path: Path) -> None:
    store = write_manifest(tmp_path, MODEL.format(id="tiny", backend="llamacpp")
                           + 'chat_format = "chatml"\n[profiles.cpu]\nreply = ["tiny"]\n')

    manifest = load_manifest(store)

    spec = manifest.models["tiny"]
    assert spec.path == store / "tiny.gguf"
    assert spec.options == {"chat_format": "chatml"}
    assert manifest.route("cpu", "reply") == ("tiny",)


def test_it_loads_the_shipped_manifest() -> None:
    manifest = load_manifest(MODEL_STORE)

    assert manifest.route("cpu", "reply") == ("smollm2-135m-instruct",)
    assert manifest.route("gpu", "reply")[-1] == "smollm2-135m-instruct"
    assert manifest.models["vllm-small"].url == "http://127.0.0.1:8001/v1"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_it_routes_every_task_on_both_profiles_to_the_local_model_last(profile: str) -> None:
    manifest = load_manifest(MODEL_STORE)

    for task in TASKS:
        route = manifest.route(profile, task)
        assert route[-1] == "smollm2-135m-instruct", task
        assert [manifest.models[m].role for m in route if m != route[-1]] in (
            [], ["small", "large"], ["large", "small"], ["large"]), task


def test_it_starts_the_large_route_with_the_large_model_the_operator_may_supply() -> None:
    manifest = load_manifest(MODEL_STORE)

    assert manifest.route("cpu", "reply_large") == ("cpu-large", "smollm2-135m-instruct")
    assert manifest.route("gpu", "reply_large")[0] == "vllm-large"
    assert manifest.route("gpu", "reply")[0] == "vllm-small"
    assert manifest.models["cpu-large"].optional
    assert not manifest.models["smollm2-135m-instruct"].optional


def test_it_reads_a_models_own_timeout_and_whether_it_is_optional(tmp_path: Path) -> None:
    store = write_manifest(tmp_path, MODEL.format(id="tiny", backend="llamacpp")
                           + "timeout_s = 12\noptional = true\n")

    spec = load_manifest(store).models["tiny"]

    assert (spec.timeout_s, spec.optional, spec.options) == (12.0, True, {})


@pytest.mark.parametrize(("line", "names"), [
    ("timeout_s = 0", "timeout_s must be a positive number"),
    ("timeout_s = \"soon\"", "timeout_s must be a positive number"),
    ("timeout_s = true", "timeout_s must be a positive number"),
    ("optional = \"yes\"", "optional must be true or false"),
])
def test_it_rejects_a_bad_timeout_or_optional_flag(tmp_path: Path, line: str, names: str) -> None:
    store = write_manifest(tmp_path, MODEL.format(id="tiny", backend="llamacpp") + line + "\n")

    with pytest.raises(ConfigError, match=names):
        load_manifest(store)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (MODEL.format(id="odd", backend="ollama"), "unknown backend"),
        (MODEL.format(id="twin", backend="llamacpp") * 2, "'twin' appears twice"),
        (MODEL.format(id="tiny", backend="llamacpp") + '[profiles.cpu]\nreply = ["ghost"]\n',
         "cpu.reply names unknown 'ghost'"),
        (MODEL.format(id="tiny", backend="llamacpp").replace('license = "Apache-2.0"\n', ""),
         "lacks license"),
        ("[[models]\n", "manifest.toml"),
    ],
    ids=["unknown-backend", "duplicate-id", "unknown-route-model", "missing-field", "bad-toml"],
)
def test_it_rejects_a_bad_manifest_naming_the_problem(
    tmp_path: Path, text: str, names: str
) -> None:
    store = write_manifest(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_manifest(store)

    assert names in caught.value.message


def test_it_fails_loudly_without_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_manifest(tmp_path)


def test_it_names_a_missing_route(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, MODEL.format(id="t", backend="llamacpp")))

    with pytest.raises(ConfigError, match="'gpu' has no route for 'reply'"):
        manifest.route("gpu", "reply")


# --- replicas -------------------------------------------------------------------------------

SERVED = """
[[models]]
id = "{id}"
role = "{role}"
profile = "gpu"
backend = "openai_http"
url = "{url}"
served_name = "small"
context_tokens = 8192
license = "test"
source = "test"
"""


def served(model_id: str, *, replica_of: str | None = None, role: str = "small",
           url: str | None = None) -> str:
    text = SERVED.format(id=model_id, role=role, url=url or f"http://{model_id}:8001/v1")
    return text + (f'replica_of = "{replica_of}"\n' if replica_of else "")


def replicas(route: str = "small-a", **last: str) -> str:
    """small-a with two replicas, small-b and small-c (which `last` changes), then tiny."""
    return (f'[profiles.gpu]\nreply = ["{route}", "tiny"]\n'
            + MODEL.format(id="tiny", backend="llamacpp")
            + served("small-a") + served("small-b", replica_of="small-a")
            + served("small-c", **{"replica_of": "small-a", **last}))


def test_it_routes_a_model_with_replicas_to_it_and_them(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, replicas()))

    assert manifest.route("gpu", "reply") == ("small-a", "small-b", "small-c", "tiny")
    specs = manifest.models
    assert (specs["small-a"].replica_of, specs["small-c"].replica_of) == (None, "small-a")
    assert {specs[m].group for m in ("small-a", "small-b", "small-c")} == {"small-a"}
    assert specs["small-c"].options == {}
    # The reply_models setting names models the same way.
    assert manifest.with_replicas("setting reply_models", ("tiny", "small-a")) == (
        "tiny", "small-a", "small-b", "small-c")
    with pytest.raises(ConfigError, match="setting reply_models names 'small-b', a replica of"):
        manifest.with_replicas("setting reply_models", ("small-b",))


@pytest.mark.parametrize(("text", "names"), [
    (replicas(route="small-b"),
     "gpu.reply names 'small-b', a replica of 'small-a': name 'small-a'"),
    (replicas(replica_of="small"), "model 'small-c' (replica_of 'small'): no model has that id"),
    (replicas(replica_of="small-b"),
     "model 'small-c' (replica_of 'small-b'): that model is a replica itself"),
    (replicas(role="large"),
     "model 'small-c' (replica_of 'small-a'): its role 'large' differs from 'small'"),
    (replicas(url="http://small-b:8001/v1"),
     "'small-b' has the same url 'http://small-b:8001/v1'"),
    (MODEL.format(id="tiny", backend="llamacpp") + MODEL.format(id="copy", backend="llamacpp")
     + 'replica_of = "tiny"\n', "only a model served over HTTP (backend openai_http)"),
    (MODEL.format(id="tiny", backend="llamacpp") + "replica_of = 2\n",
     "model 'tiny': replica_of must be a model id"),
], ids=["route-names-a-replica", "unknown", "replica-of-a-replica", "other-role", "same-url",
        "in-process", "not-an-id"])
def test_it_rejects_a_bad_replica_naming_the_problem(
    tmp_path: Path, text: str, names: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_manifest(write_manifest(tmp_path, text))

    assert names in caught.value.message
