"""The Ansible role in ansible/roles/appliance: it parses, every variable is documented, and what
it renders is what the app and the units expect.

Ansible runs from this interpreter against localhost with a local connection, writing only under
tmp_path; nothing here needs root or a box.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    ANSIBLE_DIR,
    REPO,
    ROLE_DIR,
    SYSTEMD_DIR,
    Ansible,
    load_yaml,
    task_defined_names,
)

VAR = re.compile(r"\bappliance_[a-z0-9_]+\b")
ROLE_FILES = sorted(
    [
        *ROLE_DIR.glob("tasks/*.yml"),
        *ROLE_DIR.glob("handlers/*.yml"),
        *ROLE_DIR.glob("templates/*.j2"),
        ROLE_DIR / "vars" / "main.yml",
    ]
)
TEMPLATES = sorted(ROLE_DIR.glob("templates/*.j2"))


def _jinja(text: str) -> str:
    """Only what Ansible evaluates: {{ ... }}, {% ... %}, and bare `when:`/`that:`/`until:`-style
    conditionals, which are Jinja without the braces."""
    parts = re.findall(r"\{\{.*?\}\}|\{%.*?%\}", text, flags=re.S)
    conditional = re.compile(r"^\s*-?\s*(when|that|until|changed_when|failed_when)\s*:(.*)$")
    in_block = False
    for line in text.splitlines():
        match = conditional.match(line)
        if match:
            parts.append(match.group(2))
            in_block = match.group(2).strip() == ""
        elif in_block and re.match(r"^\s+- ", line):
            parts.append(line)
        else:
            in_block = False
    return "\n".join(parts)


def _variables_used() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in ROLE_FILES:
        for name in VAR.findall(_jinja(path.read_text())):
            used.setdefault(name, set()).add(str(path.relative_to(ROLE_DIR)))
    return used


def test_it_passes_ansible_playbook_syntax_check(ansible: Ansible) -> None:
    result = ansible.run(
        "playbook",
        "--syntax-check",
        "-i",
        str(ANSIBLE_DIR / "inventory.example.ini"),
        str(ANSIBLE_DIR / "site.yml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_defines_every_variable_the_role_uses(
    role_defaults: dict[str, Any], role_vars: dict[str, Any]
) -> None:
    known = set(role_defaults) | set(role_vars) | task_defined_names(ROLE_DIR)
    undefined = {name: files for name, files in _variables_used().items() if name not in known}
    assert undefined == {}


def test_it_uses_every_default(role_defaults: dict[str, Any]) -> None:
    used = _variables_used()
    assert sorted(name for name in role_defaults if name not in used) == []


def test_it_prefixes_every_variable_with_the_role_name(
    role_defaults: dict[str, Any], role_vars: dict[str, Any]
) -> None:
    names = [*role_defaults, *role_vars, *task_defined_names(ROLE_DIR)]
    assert [name for name in names if not name.startswith("appliance_")] == []


def test_it_documents_every_default_with_a_comment() -> None:
    lines = (ROLE_DIR / "defaults" / "main.yml").read_text().splitlines()
    undocumented = [
        line.split(":")[0]
        for previous, line in itertools.pairwise(lines)
        if re.match(r"^appliance_\w+:", line) and not previous.startswith("# ")
    ]
    assert undocumented == []


def test_it_declares_every_default_in_the_argument_specs(
    role_defaults: dict[str, Any], argument_options: dict[str, Any]
) -> None:
    assert sorted(argument_options) == sorted(role_defaults)
    for name, option in argument_options.items():
        assert option.get("description"), f"{name}: no description in argument_specs"
        assert option.get("type"), f"{name}: no type in argument_specs"


@pytest.mark.parametrize(
    "name", ["appliance_secret_key", "appliance_database_url", "appliance_metrics_token",
             "appliance_admin_password"]
)
def test_it_keeps_secrets_out_of_logs(argument_options: dict[str, Any], name: str) -> None:
    assert argument_options[name].get("no_log") is True


def test_it_starts_every_template_with_the_ansible_managed_comment() -> None:
    assert TEMPLATES
    for template in TEMPLATES:
        lines = template.read_text().splitlines()
        first = lines[1] if lines[0].startswith("#!") else lines[0]
        assert first == "{{ ansible_managed | comment }}", template.name


def test_it_installs_every_unit_in_the_repository(role_vars: dict[str, Any]) -> None:
    listed = [
        *role_vars["appliance_core_units"],
        *role_vars["appliance_gpu_units"],
        *role_vars["appliance_llamacpp_units"],
        *role_vars["appliance_backup_units"],
    ]
    assert sorted(listed) == sorted(path.name for path in SYSTEMD_DIR.iterdir())


def test_it_splits_tasks_into_install_configure_and_service_with_tags() -> None:
    main = load_yaml(ROLE_DIR / "tasks" / "main.yml")
    imported = {task["ansible.builtin.import_tasks"]: set(task["tags"]) for task in main}
    assert imported == {
        "install.yml": {"appliance", "appliance_install"},
        "configure.yml": {"appliance", "appliance_configure"},
        "service.yml": {"appliance", "appliance_service"},
    }


def _settings_fields() -> list[dataclasses.Field[Any]]:
    from appliance.config import Settings

    return list(dataclasses.fields(Settings))


def test_it_renders_a_config_file_the_app_accepts(ansible: Ansible, tmp_path: Path) -> None:
    from appliance.config import load_settings

    path = tmp_path / "appliance.toml"
    ansible.render(
        "appliance.toml.j2",
        path,
        {
            "appliance_profile": "gpu",
            "appliance_bind": "0.0.0.0:9000",
            "appliance_reply_models": ["vllm-large", "vllm-small"],
            "appliance_llm_timeout_s": 12.5,
        },
    )
    settings = load_settings(env={"APPLIANCE_CONFIG": str(path)})
    assert settings.model_profile == "gpu"
    assert settings.bind == "0.0.0.0:9000"
    assert settings.reply_models == ("vllm-large", "vllm-small")
    assert settings.llm_timeout_s == 12.5
    assert str(settings.data_dir) == "/var/lib/appliance"
    assert str(settings.model_store) == "/opt/appliance/model_store"


def test_it_writes_every_setting_but_the_secrets(ansible: Ansible, tmp_path: Path) -> None:
    # A setting added to the app's registry needs a role variable (or a reason to be left out).
    path = tmp_path / "appliance.toml"
    ansible.render("appliance.toml.j2", path, {"appliance_reply_models": ["smollm2-135m-instruct"],
                                             "appliance_knowledge_import_dirs": ["/srv/exports"]})
    written = set(tomllib.loads(path.read_text()))
    public = {f.name for f in _settings_fields() if not f.metadata.get("secret")}
    secret = {f.name for f in _settings_fields() if f.metadata.get("secret")}
    assert written == public
    assert written.isdisjoint(secret)


def _env_file(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_it_renders_the_vllm_settings_the_unit_reads(ansible: Ansible, tmp_path: Path) -> None:
    item = {
        "name": "large",
        "model_dir": "/opt/appliance/model_store/vllm-large",
        "args": ["--tensor-parallel-size", "2"],
        "gpus": "0,1",
    }
    env = _env_file(ansible.render("vllm.env.j2", tmp_path / "vllm-large.env", {"item": item}))
    assert env == {
        "APPLIANCE_VLLM_MODEL": "/opt/appliance/model_store/vllm-large",
        "APPLIANCE_VLLM_ARGS": "--tensor-parallel-size 2",
        "CUDA_VISIBLE_DEVICES": "0,1",
    }
    unit = (SYSTEMD_DIR / "appliance-vllm-large.service").read_text()
    assert all(f"${key}" in unit or f"${{{key}}}" in unit for key in env if key.startswith("APP"))


def test_it_leaves_every_gpu_visible_when_no_gpus_are_named(
    ansible: Ansible, tmp_path: Path
) -> None:
    # CUDA_VISIBLE_DEVICES="" would hide every GPU.
    item = {"name": "small", "model_dir": "/m", "args": [], "gpus": ""}
    env = _env_file(ansible.render("vllm.env.j2", tmp_path / "vllm-small.env", {"item": item}))
    assert "CUDA_VISIBLE_DEVICES" not in env


def test_it_renders_the_llamacpp_settings_the_unit_reads(ansible: Ansible, tmp_path: Path) -> None:
    env = _env_file(ansible.render("llamacpp.env.j2", tmp_path / "llamacpp.env"))
    assert env == {
        "APPLIANCE_LLAMACPP_MODEL": "/opt/appliance/model_store/large.gguf",
        "APPLIANCE_LLAMACPP_ALIAS": "large",
        "APPLIANCE_LLAMACPP_ARGS": "--n_ctx 4096",
    }
    unit = (SYSTEMD_DIR / "appliance-llamacpp.service").read_text()
    assert all(f"${key}" in unit or f"${{{key}}}" in unit for key in env)


# --- the GPU plan (tasks/gpu_plan.yml), checked before anything on a GPU box changes ---------


def _gpu_plan(
    ansible: Ansible, tmp_path: Path, **settings: Any
) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "gpu-plan.yml"
    files = [str(ROLE_DIR / "defaults" / "main.yml"), str(ROLE_DIR / "vars" / "main.yml")]
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        f"  vars_files: {json.dumps(files)}\n"
        "  tasks:\n"
        f"    - ansible.builtin.import_tasks: {ROLE_DIR / 'tasks' / 'gpu_plan.yml'}\n"
    )
    return ansible.run("playbook", "-i", "localhost,", "--connection", "local",
                       "-e", json.dumps({"appliance_profile": "gpu", **settings}), str(playbook))


def test_the_default_gpu_plan_fits_one_gpu(ansible: Ansible, tmp_path: Path) -> None:
    result = _gpu_plan(ansible, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_servers_sharing_a_gpu_may_not_ask_for_more_than_0_9_of_it(
    ansible: Ansible, tmp_path: Path
) -> None:
    result = _gpu_plan(ansible, tmp_path, appliance_vllm_small_args=[
        "--gpu-memory-utilization", "0.4"], appliance_vllm_large_gpus="0",
        appliance_vllm_small_gpus="0,1")
    assert result.returncode != 0
    assert "share a GPU and ask for 0.4 + 0.6" in result.stdout
    # Without the flag vLLM takes 0.9 of the GPU: two such servers need GPUs of their own.
    apart = _gpu_plan(ansible, tmp_path, appliance_vllm_small_args=[],
                      appliance_vllm_large_args=[], appliance_vllm_small_gpus="0",
                      appliance_vllm_large_gpus="1")
    assert apart.returncode == 0, apart.stdout + apart.stderr
    together = _gpu_plan(ansible, tmp_path, appliance_vllm_small_args=[],
                         appliance_vllm_large_args=[])
    assert together.returncode != 0 and "0.9 + 0.9" in together.stdout


def test_tensor_parallelism_needs_one_named_gpu_per_shard(ansible: Ansible, tmp_path: Path) -> None:
    shards = ["--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.9"]
    short = _gpu_plan(ansible, tmp_path, appliance_vllm_large_args=shards,
                      appliance_vllm_small_gpus="2", appliance_vllm_large_gpus="0")
    assert short.returncode != 0
    assert "--tensor-parallel-size 2 but appliance_vllm_large_gpus names 1 GPU" in short.stdout
    enough = _gpu_plan(ansible, tmp_path, appliance_vllm_large_args=shards,
                       appliance_vllm_small_gpus="2", appliance_vllm_large_gpus="0, 1")
    assert enough.returncode == 0, enough.stdout + enough.stderr


def test_it_puts_the_vllm_weights_where_the_manifest_checks_them(
    role_defaults: dict[str, Any], role_vars: dict[str, Any]
) -> None:
    manifest = tomllib.loads((REPO / "model_store" / "manifest.toml").read_text())
    directories = {m["served_name"]: m["directory"] for m in manifest["models"]
                   if m["id"].startswith("vllm-")}
    store = role_vars["appliance_model_store_dir"]
    assert {size: role_defaults[f"appliance_vllm_{size}_model_dir"] for size in directories} == {
        size: f"{store}/{directory}" for size, directory in directories.items()}
