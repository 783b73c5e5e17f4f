"""The scaled topology: site.yml's plays per group, the example inventory, what the appliance role
installs on a model node, and the web nodes' manifest that docs/operations.md shows.

Ansible runs from this interpreter against localhost; nothing here needs root or a box.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from deploy_support import ANSIBLE_DIR, LB_ROLE_DIR, REPO, ROLE_DIR, Ansible, load_yaml, parse_unit

from appliance.llm.manifest import load_manifest, verify

SCALED = ANSIBLE_DIR / "inventory.scaled.example.ini"


def _value(ansible: Ansible, name: str, **settings: Any) -> Any:
    """A variable of the appliance role as it comes out with `settings` set."""
    result = ansible.run(
        "adhoc", "localhost", "--connection", "local", "-m", "ansible.builtin.debug",
        "-a", f"var={name}", "-e", f"@{ROLE_DIR / 'defaults' / 'main.yml'}",
        "-e", f"@{ROLE_DIR / 'vars' / 'main.yml'}", "-e", json.dumps(settings))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.split("=>", 1)[1])[name]


def test_site_yml_passes_the_syntax_check_with_the_scaled_inventory(ansible: Ansible) -> None:
    result = ansible.run("playbook", "--syntax-check", "-i", str(SCALED),
                         str(ANSIBLE_DIR / "site.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_yml_keeps_the_single_box_play_and_adds_one_per_group() -> None:
    plays = load_yaml(ANSIBLE_DIR / "site.yml")
    assert [(play["hosts"], [r["role"] for r in play["roles"]]) for play in plays] == [
        ("appliance", ["appliance"]), ("model", ["appliance"]), ("web", ["appliance"]),
        ("lb", ["lb"])]
    single, model = plays[0], plays[1]
    assert set(single) == {"name", "hosts", "become", "gather_facts", "roles"}
    assert model["vars"] == {"appliance_profile": "gpu", "appliance_app_enabled": False}


def test_the_example_inventory_has_every_group_and_no_database_host(ansible: Ansible) -> None:
    result = ansible.run("inventory", "-i", str(SCALED), "--list")
    assert result.returncode == 0, result.stderr
    groups = json.loads(result.stdout)
    assert {name: len(groups.get(name, {}).get("hosts", [])) for name in
            ("lb", "web", "model", "db")} == {"lb": 1, "web": 2, "model": 2, "db": 0}
    hostvars = groups["_meta"]["hostvars"]
    lb_address = hostvars[groups["lb"]["hosts"][0]]["ansible_host"]
    web = [hostvars[host] for host in groups["web"]["hosts"]]
    assert {json.dumps(h["appliance_trusted_proxies"]) for h in web} == {
        json.dumps([f"{lb_address}/32"])}
    model = hostvars[groups["model"]["hosts"][0]]
    assert sorted(model["appliance_model_server_clients"]) == sorted(
        f"{h['ansible_host']}/32" for h in web)


def test_the_example_inventory_passes_the_load_balancers_checks(
        ansible: Ansible, tmp_path: Path) -> None:
    # The role's own check, its defaults below the inventory's variables as in a real run.
    playbook = tmp_path / "check.yml"
    playbook.write_text(
        "- hosts: lb\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.import_role:\n"
        f"        name: {LB_ROLE_DIR}\n"
        "        tasks_from: check.yml\n"
    )
    result = ansible.run("playbook", "-i", str(SCALED), "--connection", "local", str(playbook))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_model_node_runs_its_model_servers_and_nothing_else(ansible: Ansible) -> None:
    model = {"appliance_profile": "gpu", "appliance_app_enabled": False}
    assert _value(ansible, "appliance_units", **model) == [
        "appliance.target", "appliance-vllm-small.service", "appliance-vllm-large.service"]
    assert _value(ansible, "appliance_backups_scheduled", **model) is False


def test_a_single_box_runs_what_it_always_ran(ansible: Ansible) -> None:
    assert _value(ansible, "appliance_units", appliance_profile="gpu") == [
        "appliance.target", "appliance-migrate.service", "appliance-web.service",
        "appliance-scheduler.service", "appliance-vllm-small.service",
        "appliance-vllm-large.service", "appliance-backup.timer"]


def _env(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_a_model_node_serves_its_web_nodes_alone(ansible: Ansible, tmp_path: Path) -> None:
    clients = ["10.20.0.11/32", "10.20.0.12/32"]
    dropin = tmp_path / "clients.conf"
    ansible.render("model-server-clients.conf.j2", dropin,
                   {"appliance_model_server_clients": clients})
    assert parse_unit(dropin).words("Service", "IPAddressAllow") == clients
    # The unit still denies everyone else; the drop-in only adds to its allow list.
    unit = parse_unit(REPO / "systemd" / "appliance-vllm-small.service")
    assert unit.words("Service", "IPAddressDeny") == ["any"]
    item = {"name": "small", "model_dir": "/m", "args": ["--max-model-len", "8192"], "gpus": ""}
    served = _env(ansible.render("vllm.env.j2", tmp_path / "served.env",
                                 {"item": item, "appliance_model_server_clients": clients}))
    # After the unit's own --host 127.0.0.1, so it wins; loopback stays reachable for the unit's
    # ExecStartPost= probe.
    assert served["APPLIANCE_VLLM_ARGS"] == "--max-model-len 8192 --host 0.0.0.0"
    alone = _env(ansible.render("vllm.env.j2", tmp_path / "alone.env", {"item": item}))
    assert alone["APPLIANCE_VLLM_ARGS"] == "--max-model-len 8192"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.index("\n## ", start)
    return text[start:end]


def test_the_web_nodes_manifest_in_the_guide_loads_with_its_replicas(tmp_path: Path) -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", _section(guide, "### The scaled topology"),
                          flags=re.S)
    shown = tomllib.loads(block)
    manifest = tomllib.loads((REPO / "model_store" / "manifest.toml").read_text())
    manifest["profiles"]["cpu"] = shown["profiles"]["cpu"]
    changed = {entry["id"]: entry for entry in shown["models"]}
    manifest["models"] = [changed.pop(entry["id"], entry) for entry in manifest["models"]]
    manifest["models"] += list(changed.values())
    (tmp_path / "manifest.toml").write_text(tomli_w.dumps(manifest))

    loaded = load_manifest(tmp_path)

    assert loaded.route("cpu", "reply") == (
        "vllm-small", "vllm-small-2", "vllm-large", "vllm-large-2", "smollm2-135m-instruct")
    # The weights are checked on the model nodes; on a web node the servers are remote.
    assert {verify(loaded.models[m]).status for m in loaded.models if m.startswith("vllm-")} == {
        "remote"}


def test_the_guide_documents_the_scaled_topology_in_place() -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    processes = guide[guide.index("## Processes and ports"):guide.index("\n## Install")]
    assert processes.index("#### One scheduler leads") < processes.index(
        "### The scaled topology")
    section = _section(guide, "### The scaled topology")
    for words in ("A web node is lost", "A model server is lost", "scheduler is lost",
                  "PostgreSQL fails over", "no active health checks",
                  "we do not install or manage PostgreSQL"):
        assert words.lower() in section.lower(), words

