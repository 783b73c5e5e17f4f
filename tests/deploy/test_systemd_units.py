"""The systemd units in systemd/: one per process, hardened, and consistent with the app.

These read the unit files as text. `systemd-analyze` (verify, security) runs where it is
installed, offline, against a scratch root; it needs no running systemd and no root.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from deploy_support import REPO, SYSTEMD_DIR, Unit

WEB = "appliance-web.service"
SCHEDULER = "appliance-scheduler.service"
MIGRATE = "appliance-migrate.service"
BACKUP = "appliance-backup.service"
VLLM = ("appliance-vllm-small.service", "appliance-vllm-large.service")
LLAMACPP = "appliance-llamacpp.service"
APP_UNITS = (WEB, SCHEDULER, MIGRATE, BACKUP)  # run the `appliance` CLI, hold the database
MODEL_SERVERS = (*VLLM, LLAMACPP)
ALL_SERVICES = (*APP_UNITS, *MODEL_SERVERS)
LONG_RUNNING = (WEB, SCHEDULER, *MODEL_SERVERS)

VENV_BIN = "/opt/appliance/venv/bin"

# Every service carries these, exactly.
COMMON_HARDENING = {
    "User": "appliance",
    "Group": "appliance",
    "UMask": "0077",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallErrorNumber": "EPERM",
}
BASE_FAMILIES = {"AF_UNIX", "AF_INET", "AF_INET6"}

# Directives whose meaning the name says; every other one needs a comment above it (or above
# the paragraph it sits in), as in the miniflux and NixOS units we model these on.
SELF_EXPLANATORY = {
    "Description",
    "Type",
    "User",
    "Group",
    "ExecStart",
    "Restart",
    "RestartSec",
    "TimeoutStopSec",
    "WantedBy",
    "WorkingDirectory",
}


def test_it_ships_one_unit_per_process_and_a_target(unit_files: dict[str, Unit]) -> None:
    assert set(unit_files) == {*ALL_SERVICES, "appliance.target", "appliance-backup.timer"}


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_it_hardens_every_service(service_units: dict[str, Unit], name: str) -> None:
    unit = service_units[name]
    found = {key: unit.get("Service", key) for key in COMMON_HARDENING}
    assert found == COMMON_HARDENING
    assert unit.all("Service", "SystemCallFilter") == ["@system-service", "~@privileged"]


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_it_restricts_socket_families(service_units: dict[str, Unit], name: str) -> None:
    families = set(service_units[name].words("Service", "RestrictAddressFamilies"))
    if name in VLLM:
        # NCCL and Gloo list interfaces with getifaddrs(), which needs a netlink socket.
        assert families == BASE_FAMILIES | {"AF_NETLINK"}
    else:
        assert families == BASE_FAMILIES


@pytest.mark.parametrize("name", [*APP_UNITS, LLAMACPP])
def test_it_gives_cpu_processes_no_device_access(service_units: dict[str, Unit], name: str) -> None:
    unit = service_units[name]
    assert unit.get("Service", "PrivateDevices") == "yes"
    assert unit.all("Service", "DeviceAllow") == []
    assert unit.all("Service", "SupplementaryGroups") == []


@pytest.mark.parametrize("name", VLLM)
def test_it_gives_gpu_units_only_the_nvidia_devices(
    service_units: dict[str, Unit], name: str
) -> None:
    unit = service_units[name]
    assert unit.get("Service", "PrivateDevices") in (None, "no")
    assert unit.get("Service", "DevicePolicy") == "closed"
    allowed = unit.all("Service", "DeviceAllow")
    assert allowed, "a GPU unit must allow the NVIDIA devices"
    for entry in allowed:
        device, _, access = entry.partition(" ")
        assert re.fullmatch(r"(char-nvidia[a-z-]*|/dev/nvidia[a-z0-9-]*)", device), entry
        assert set(access) <= {"r", "w"}, entry
    assert {"char-nvidia-frontend", "char-nvidia-uvm"} <= {e.split()[0] for e in allowed}


@pytest.mark.parametrize("name", MODEL_SERVERS)
def test_it_keeps_model_servers_on_loopback_and_away_from_app_state(
    service_units: dict[str, Unit], name: str
) -> None:
    unit = service_units[name]
    assert unit.get("Service", "IPAddressDeny") == "any"
    assert unit.get("Service", "IPAddressAllow") == "localhost"
    assert "-/var/lib/appliance" in unit.words("Service", "InaccessiblePaths")
    assert unit.all("Service", "LoadCredential") == []
    assert unit.all("Service", "StateDirectory") == []
    exec_start = unit.get("Service", "ExecStart") or ""
    assert "--host 127.0.0.1" in exec_start


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_it_explains_why_write_execute_memory_stays_allowed(
    service_units: dict[str, Unit], name: str
) -> None:
    # Every process loads llama.cpp through ctypes callbacks, onnxruntime, or CUDA/Triton JITs:
    # MemoryDenyWriteExecute=yes would kill it at model load. Setting it needs a reason too.
    unit = service_units[name]
    assert unit.get("Service", "MemoryDenyWriteExecute") in (None, "no")
    assert re.search(r"MemoryDenyWriteExecute= is not set: \S", unit.comments), (
        f"{name}: say in a comment why MemoryDenyWriteExecute= is not set"
    )


@pytest.mark.parametrize("name", APP_UNITS)
def test_it_hands_secrets_over_as_credentials(service_units: dict[str, Unit], name: str) -> None:
    unit = service_units[name]
    # Only the web app serves /metrics, so only it reads the metrics token.
    metrics = ["metrics_token:/etc/appliance/credentials/metrics_token"] if name == WEB else []
    assert unit.all("Service", "LoadCredential") == [
        "secret_key:/etc/appliance/credentials/secret_key",
        "database_url:/etc/appliance/credentials/database_url",
        *metrics,
    ]
    environment = " ".join(unit.all("Service", "Environment"))
    assert "APPLIANCE_SECRET_KEY_FILE=%d/secret_key" in environment
    assert "APPLIANCE_DATABASE_URL_FILE=%d/database_url" in environment
    assert ("APPLIANCE_METRICS_TOKEN_FILE=%d/metrics_token" in environment) == (name == WEB)
    assert "APPLIANCE_CONFIG=/etc/appliance/appliance.toml" in environment
    assert unit.get("Service", "StateDirectory") == "appliance"
    assert unit.get("Service", "StateDirectoryMode") == "0700"
    assert unit.get("Service", "ConfigurationDirectory") == "appliance"


@pytest.mark.parametrize(
    ("name", "command"),
    [
        (WEB, f"{VENV_BIN}/appliance serve"),
        (SCHEDULER, f"{VENV_BIN}/appliance scheduler"),
        (MIGRATE, f"{VENV_BIN}/appliance db migrate"),
        (BACKUP, f"{VENV_BIN}/appliance backup create"),
    ],
)
def test_it_starts_the_documented_cli_commands(
    service_units: dict[str, Unit], name: str, command: str
) -> None:
    assert service_units[name].all("Service", "ExecStart") == [command]


def test_it_serves_each_vllm_model_where_the_manifest_looks(service_units: dict[str, Unit]) -> None:
    manifest = tomllib.loads((REPO / "model_store" / "manifest.toml").read_text())
    served = {m["served_name"]: m["url"] for m in manifest["models"] if m["id"].startswith("vllm-")}
    assert set(served) == {"small", "large"}
    for size, url in served.items():
        unit = service_units[f"appliance-vllm-{size}.service"]
        exec_start = unit.get("Service", "ExecStart") or ""
        port = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/v1", url)
        assert port, url
        assert exec_start.startswith(f"{VENV_BIN}/vllm serve ${{APPLIANCE_VLLM_MODEL}} ")
        assert f"--served-model-name {size} " in exec_start
        assert f"--port {port.group(1)} " in exec_start
        assert unit.get("Service", "EnvironmentFile") == f"/etc/appliance/vllm-{size}.env"
        assert f"/dev/tcp/127.0.0.1/{port.group(1)}" in (unit.get("Service", "ExecStartPost") or "")


def test_it_runs_the_llamacpp_server_on_its_documented_port(service_units: dict[str, Unit]) -> None:
    unit = service_units[LLAMACPP]
    exec_start = unit.get("Service", "ExecStart") or ""
    assert exec_start.startswith(f"{VENV_BIN}/python -m llama_cpp.server ")
    assert "--host 127.0.0.1 --port 8003" in exec_start
    assert unit.get("Service", "EnvironmentFile") == "/etc/appliance/llamacpp.env"


def test_it_starts_the_large_model_after_the_small_one(service_units: dict[str, Unit]) -> None:
    assert "appliance-vllm-small.service" in service_units[VLLM[1]].words("Unit", "After")


@pytest.mark.parametrize("name", [WEB, SCHEDULER])
def test_it_migrates_once_before_web_and_scheduler(
    service_units: dict[str, Unit], name: str
) -> None:
    unit = service_units[name]
    assert MIGRATE in unit.words("Unit", "Requires")
    assert MIGRATE in unit.words("Unit", "After")
    assert not any("migrate" in cmd for cmd in unit.all("Service", "ExecStartPre"))


def test_it_runs_migrations_as_a_oneshot_that_stays_active(service_units: dict[str, Unit]) -> None:
    unit = service_units[MIGRATE]
    assert unit.get("Service", "Type") == "oneshot"
    assert unit.get("Service", "RemainAfterExit") == "yes"
    assert unit.get("Service", "Restart") in (None, "no")


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_it_restarts_long_running_services_on_failure(
    service_units: dict[str, Unit], name: str
) -> None:
    assert service_units[name].get("Service", "Restart") == "on-failure"
    assert service_units[name].get("Service", "Type") == "exec"


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_it_groups_every_service_under_the_target(
    service_units: dict[str, Unit], name: str
) -> None:
    unit = service_units[name]
    assert unit.words("Unit", "PartOf") == ["appliance.target"]
    # The backup runs from its timer only, never at every start of the target.
    wanted_by = [] if name == BACKUP else ["appliance.target"]
    assert unit.words("Install", "WantedBy") == wanted_by


def test_it_backs_up_nightly_from_a_timer_that_catches_up(unit_files: dict[str, Unit]) -> None:
    timer = unit_files["appliance-backup.timer"]
    assert timer.get("Timer", "Unit") == BACKUP
    assert timer.get("Timer", "OnCalendar") == "*-*-* 01:30:00"
    assert timer.get("Timer", "Persistent") == "true"
    assert timer.words("Unit", "PartOf") == ["appliance.target"]
    assert timer.words("Install", "WantedBy") == ["appliance.target"]
    backup = unit_files[BACKUP]
    assert backup.get("Service", "Type") == "oneshot"
    assert MIGRATE in backup.words("Unit", "After")


def test_it_starts_the_target_at_boot(unit_files: dict[str, Unit]) -> None:
    assert unit_files["appliance.target"].words("Install", "WantedBy") == ["multi-user.target"]


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_it_comments_every_non_obvious_directive(service_units: dict[str, Unit], name: str) -> None:
    uncommented = [
        f"{name}:{d.line}: {d.key}="
        for directives in service_units[name].sections.values()
        for d in directives
        if d.key not in SELF_EXPLANATORY and not d.commented
    ]
    assert uncommented == []


# --- systemd-analyze, where it is installed ---------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)
SYSTEM_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def _scratch_root(root: Path, service_units: dict[str, Unit]) -> Path:
    """A file-system root holding our units, the distribution's units and stub executables.

    `systemd-analyze verify` checks that each Exec*= binary exists; the venv is not installed
    here, so stubs stand in for it under --root instead of touching /opt.
    """
    system_units = next((d for d in SYSTEM_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if system_units is None:
        pytest.skip("systemd's own unit files are not installed on this machine")
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(SYSTEMD_DIR, root / "etc/systemd/system")
    for unit in service_units.values():
        for key in ("ExecStart", "ExecStartPre", "ExecStartPost"):
            for command in unit.all("Service", key):
                binary = root / command.lstrip("-+!@:").split()[0].lstrip("/")
                binary.parent.mkdir(parents=True, exist_ok=True)
                binary.write_text("#!/bin/sh\n")
                binary.chmod(0o755)
    return root


@needs_systemd_analyze
def test_it_passes_systemd_analyze_verify(
    service_units: dict[str, Unit], unit_files: dict[str, Unit], tmp_path: Path
) -> None:
    root = _scratch_root(tmp_path / "root", service_units)
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", "--man=no", f"--root={root}", *sorted(unit_files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # verify exits 0 on mere warnings (an unknown key is "ignoring"): any output is a finding.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("name", ALL_SERVICES)
def test_it_keeps_each_service_exposure_low(
    service_units: dict[str, Unit], name: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "security", "--offline=yes", "--no-pager", str(SYSTEMD_DIR / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert score, result.stdout + result.stderr
    # 0 is a sealed box, 10 an unconfined root service; systemd calls below 2.0 "OK".
    assert float(score.group(1)) < 2.0, result.stdout
