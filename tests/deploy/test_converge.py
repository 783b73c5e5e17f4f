"""The Ansible role converged, for real, into a fresh Debian 12 root, and the appliance run there.

`make test-deploy` (scripts/test-deploy.sh) builds the root with debootstrap, mounts /proc, /sys
and /dev/shm in it and runs this module as root; elsewhere it is skipped. Ansible reaches the
root through the chroot connection, with the role exactly as an operator runs it (site.yml, the
wheelhouse from `make wheelhouse`). No systemd runs in a chroot, so the role only enables the
units there (appliance_services_live is false), and this module starts each unit's command the
way systemd would: as its User=, with its Environment=, its LoadCredential= files in a private
directory, its WorkingDirectory= and UMask=.

The tests run in file order and build on each other: converge, migrate, serve, converge again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploy_support import ANSIBLE_DIR, REPO, parse_unit

ROOT = Path(os.environ.get("APPLIANCE_DEPLOY_ROOT", "/nonexistent"))
DEPLOY_VENV = Path(os.environ.get("APPLIANCE_DEPLOY_VENV", "/nonexistent"))

pytestmark = [
    pytest.mark.skipif(
        "APPLIANCE_DEPLOY_ROOT" not in os.environ,
        reason="make test-deploy runs it (root, a Debian 12 root, the wheelhouse)",
    ),
    # Converging installs a few hundred MB of wheels and Debian packages on 2 cores.
    pytest.mark.timeout(1800),
]

UNIT_DIR = "/etc/systemd/system"
SERVICES = ["appliance-migrate.service", "appliance-web.service", "appliance-scheduler.service",
            "appliance-backup.service"]
# What appliance.target pulls in at boot: every service but the backup, which its timer starts.
STARTED_BY_THE_TARGET = [*SERVICES[:3], "appliance-backup.timer"]
# Waiting is not a speed check: a deadline only keeps a broken start from hanging CI.
START_DEADLINE_S = 900


@dataclass
class Converge:
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, int]:
        match = re.search(
            r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", self.output
        )
        assert match, self.output[-4000:]
        return dict(zip(["ok", "changed", "unreachable", "failed"],
                        map(int, match.groups()), strict=True))

    @property
    def changed_tasks(self) -> list[str]:
        """The tasks that reported a change, by name (without the role's "appliance : ")."""
        changed, task = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line[len("TASK ["):].rsplit("]", 1)[0].removeprefix("appliance : ")
            elif line.startswith("changed:") and task not in changed:
                changed.append(task)
        return changed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def bind() -> str:
    return f"127.0.0.1:{_free_port()}"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory, bind: str) -> Path:
    directory = tmp_path_factory.mktemp("inventory")
    (directory / "inventory.ini").write_text(
        "[appliance]\n"
        f"debian12 ansible_host={ROOT} ansible_connection=community.general.chroot"
        " ansible_python_interpreter=/usr/bin/python3\n"
    )
    (directory / "vars.json").write_text(json.dumps({
        "appliance_wheelhouse_src": f"{REPO}/wheelhouse/",
        # Ports of their own: the box's defaults may be taken on the machine running this.
        "appliance_bind": bind,
        "appliance_health_bind": "",
        "appliance_scheduler_metrics_port": 0,
        "appliance_node_name": "debian12",
    }))
    return directory


def _controller_env() -> dict[str, str]:
    """This machine's environment for Ansible, less its pip settings: the chroot connection
    passes the environment into the root, where a box reached over SSH would have none."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    return {**env, "PATH": f"{DEPLOY_VENV}/bin:{os.environ['PATH']}"}


def _converge(inventory: Path, *extra: str, playbook: Path = ANSIBLE_DIR / "site.yml") -> Converge:
    result = subprocess.run(
        [str(DEPLOY_VENV / "bin" / "ansible-playbook"), "-i", str(inventory / "inventory.ini"),
         "-e", f"@{inventory / 'vars.json'}", *extra, str(playbook)],
        capture_output=True, text=True, cwd=ANSIBLE_DIR,
        env={**_controller_env(), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
             "ANSIBLE_ROLES_PATH": str(ANSIBLE_DIR / "roles")},
    )
    return Converge(result.returncode, result.stdout + result.stderr)


@pytest.fixture(scope="module")
def first_converge(inventory: Path) -> Converge:
    return _converge(inventory)


def _ids(name: str, database: str) -> int:
    """The uid or gid of a name in the root's /etc/passwd or /etc/group."""
    for line in (ROOT / "etc" / database).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"{name} is not in the root's /etc/{database}")


def unit_command(unit_name: str, argv: list[str] | None = None,
                 settings: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment with which systemd would start the unit's ExecStart=
    (or `argv` in its place, as the CLI wrapper runs the CLI); `settings` adds APPLIANCE_*
    variables, as a drop-in's Environment= would."""
    unit = parse_unit(ROOT / UNIT_DIR.lstrip("/") / unit_name)
    user = unit.get("Service", "User") or "root"
    group = unit.get("Service", "Group") or user
    uid, gid = _ids(user, "passwd"), _ids(group, "group")
    # LoadCredential=: private copies, readable by the service's user only.
    credentials = f"/run/credentials/{unit_name}"
    host_credentials = ROOT / credentials.lstrip("/")
    host_credentials.mkdir(parents=True, exist_ok=True)
    for spec in unit.all("Service", "LoadCredential"):
        name, source = spec.split(":", 1)
        target = host_credentials / name
        shutil.copyfile(ROOT / source.lstrip("/"), target)
        os.chown(target, uid, gid)
        target.chmod(0o400)
    os.chown(host_credentials, uid, gid)
    host_credentials.chmod(0o500)
    # StateDirectory=: created and owned by the user.
    for state in (unit.get("Service", "StateDirectory") or "").split():
        path = ROOT / "var" / "lib" / state
        path.mkdir(exist_ok=True)
        os.chown(path, uid, gid)
        path.chmod(int(unit.get("Service", "StateDirectoryMode") or "0755", 8))
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/var/lib/appliance", "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
        "CREDENTIALS_DIRECTORY": credentials,
    }
    for value in unit.all("Service", "Environment"):
        for assignment in shlex.split(value.replace("%d", credentials)):
            key, _, val = assignment.partition("=")
            env[key] = val
    env |= settings or {}
    command = argv or shlex.split(unit.get("Service", "ExecStart") or "")
    umask = unit.get("Service", "UMask") or "0022"
    workdir = unit.get("Service", "WorkingDirectory") or "/"
    return [
        "chroot", f"--userspec={uid}:{gid}", "--groups=", str(ROOT),
        "/bin/sh", "-c", 'umask "$0" && cd "$1" && shift && exec "$@"', umask, workdir, *command,
    ], env


def run_unit(unit_name: str, argv: list[str] | None = None, timeout: float = 600,
             stdin: str | None = None,
             settings: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command, env = unit_command(unit_name, argv, settings)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                          input=stdin)


def cli(*args: str, settings: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`sudo appliance ARGS` on the box: the wrapper runs the CLI with the migration unit's user,
    environment and credentials (tests/deploy/test_cli_wrapper.py checks that it does)."""
    return run_unit("appliance-migrate.service", ["/opt/appliance/venv/bin/appliance", *args],
                    settings=settings)


# --- the first converge --------------------------------------------------------------------


def test_the_first_converge_installs_everything(first_converge: Converge) -> None:
    assert first_converge.returncode == 0, first_converge.output[-6000:]
    assert first_converge.recap["failed"] == 0
    assert first_converge.recap["changed"] > 0
    venv = ROOT / "opt" / "appliance" / "venv"
    assert (venv / "bin" / "appliance").is_file()
    config = ROOT / "etc" / "appliance" / "appliance.toml"
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    secret = ROOT / "etc" / "appliance" / "credentials" / "secret_key"
    assert oct(secret.stat().st_mode & 0o777) == "0o600" and secret.stat().st_uid == 0
    assert len(secret.read_text().strip()) == 64


def test_it_installs_from_the_wheelhouse_alone(first_converge: Converge) -> None:
    wheelhouse = ROOT / "opt" / "appliance" / "wheelhouse"
    shipped = (REPO / "wheelhouse" / "SHA256SUMS").read_text()
    assert (wheelhouse / "SHA256SUMS").read_text() == shipped
    freeze = subprocess.run(
        ["chroot", str(ROOT), "/opt/appliance/venv/bin/pip", "freeze", "--all"],
        capture_output=True, text=True, check=True, env=_controller_env(),
    ).stdout
    constraints = (wheelhouse / "constraints.txt").read_text()
    installed = dict(line.split("==") for line in freeze.splitlines() if "==" in line)
    pinned = dict(line.split("==") for line in constraints.splitlines() if "==" in line)
    assert "switchboard-appliance" in installed
    differing = {name: (version, pinned[name]) for name, version in installed.items()
                 if name in pinned and pinned[name] != version}
    assert differing == {}


def test_it_enables_the_units_at_boot(first_converge: Converge) -> None:
    units = ROOT / UNIT_DIR.lstrip("/")
    wants = units / "appliance.target.wants"
    assert sorted(path.name for path in wants.iterdir()) == sorted(STARTED_BY_THE_TARGET)
    schedule = units / "appliance-backup.timer.d" / "schedule.conf"
    assert "OnCalendar=*-*-* 01:30:00" in schedule.read_text()
    # An absolute link, as systemctl enable writes it, to be read inside the root.
    target = units / "multi-user.target.wants" / "appliance.target"
    assert os.readlink(target) == f"{UNIT_DIR}/appliance.target"


def test_the_service_user_owns_only_its_state(first_converge: Converge) -> None:
    uid = _ids("appliance", "passwd")
    assert (ROOT / "var" / "lib" / "appliance").stat().st_uid == uid
    for path in ["opt/appliance/venv", "opt/appliance/model_store", "etc/appliance"]:
        assert (ROOT / path).stat().st_uid == 0, path


# --- the appliance, run as its units run it ------------------------------------------------


def test_it_migrates_as_the_migration_unit(first_converge: Converge) -> None:
    result = run_unit("appliance-migrate.service")
    assert result.returncode == 0, result.stdout + result.stderr
    database = ROOT / "var" / "lib" / "appliance" / "appliance.db"
    assert database.stat().st_uid == _ids("appliance", "passwd")
    assert oct(database.stat().st_mode & 0o777) == "0o600"  # UMask=0077


def test_appliance_doctor_passes_on_the_box(first_converge: Converge) -> None:
    result = cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def api_key(first_converge: Converge) -> str:
    result = cli("demo", "seed", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return str(json.loads(result.stdout)["keys"]["lumen-goods"])


@contextlib.contextmanager
def serving(units: list[str], bind: str, settings: dict[str, str] | None = None) -> Iterator[str]:
    """The units' processes started as systemd would, until the web app at `bind` is ready."""
    processes = []
    logs = {}
    for name in units:
        command, env = unit_command(name, settings=settings)
        logs[name] = open(ROOT / "tmp" / f"{name}-{bind}.log", "w+")  # noqa: SIM115
        processes.append(subprocess.Popen(command, env=env, stdout=logs[name],
                                          stderr=subprocess.STDOUT, start_new_session=True))
    base = f"http://{bind}"
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=10) as response:
                if response.status == 200:
                    break
        except (OSError, urllib.error.HTTPError):
            pass
        exited = [p.args for p in processes if p.poll() is not None]
        if exited or time.monotonic() > deadline:
            output = "\n".join(log.name + ":\n" + Path(log.name).read_text()[-3000:]
                               for log in logs.values())
            pytest.fail(f"the web app never became ready (exited: {exited})\n{output}")
        time.sleep(1)
    try:
        yield base
    finally:
        for process in processes:
            os.killpg(process.pid, 15)
        for process in processes:
            process.wait(timeout=120)
        for log in logs.values():
            log.close()


@pytest.fixture(scope="module")
def running(first_converge: Converge, bind: str, api_key: str) -> Iterator[str]:
    with serving(["appliance-web.service", "appliance-scheduler.service"], bind) as base:
        yield base


def _call(url: str, key: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return dict(json.load(response))


QUESTION = "How long do refunds take?"


@pytest.fixture(scope="module")
def first_turn(running: str, api_key: str) -> tuple[str, dict[str, Any]]:
    conversation = _call(f"{running}/v1/conversations", api_key, {})
    reply = _call(f"{running}/v1/conversations/{conversation['id']}/messages", api_key,
                  {"text": QUESTION})
    return str(conversation["id"]), reply["message"]


def test_it_answers_a_customer_from_its_knowledge(first_turn: tuple[str, dict[str, Any]]) -> None:
    _, message = first_turn
    assert message["role"] == "agent" and message["text"].strip()
    assert message["citations"], message


@pytest.fixture(scope="module")
def backup(first_turn: tuple[str, dict[str, Any]]) -> str:
    """A backup taken as the timer takes it, while web and scheduler run; its path on the box."""
    result = run_unit("appliance-backup.service")
    assert result.returncode == 0, result.stdout + result.stderr
    backups = sorted((ROOT / "var" / "lib" / "appliance" / "backups").iterdir())
    assert len(backups) == 1 and re.fullmatch(r"\d{8}T\d{6}Z", backups[0].name)
    assert not (backups[0] / "secrets.json").exists()
    return f"/var/lib/appliance/backups/{backups[0].name}"


def test_the_backup_unit_takes_a_backup_that_verifies(backup: str) -> None:
    verified = cli("backup", "verify", backup)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_backup_restores_into_an_empty_data_dir_that_serves_the_same(
    backup: str, first_turn: tuple[str, dict[str, Any]], api_key: str, running: str
) -> None:
    """The same box's secret, a new data dir and database: the restored appliance serves the
    same conversation and answers the same question from the same knowledge."""
    uid = _ids("appliance", "passwd")
    data_dir = ROOT / "var" / "lib" / "appliance-restored"
    data_dir.mkdir(mode=0o700)
    os.chown(data_dir, uid, uid)
    restored = {"APPLIANCE_DATA_DIR": "/var/lib/appliance-restored",
                "APPLIANCE_DATABASE_URL": "sqlite:////var/lib/appliance-restored/appliance.db"}
    result = cli("backup", "restore", backup, settings=restored)
    assert result.returncode == 0, result.stdout + result.stderr
    again = cli("backup", "restore", backup, settings=restored)
    assert again.returncode != 0 and "--force" in again.stdout + again.stderr

    conversation_id, message = first_turn
    original = _call(f"{running}/v1/conversations/{conversation_id}", api_key)
    bind = f"127.0.0.1:{_free_port()}"
    with serving(["appliance-web.service"], bind,
                 {**restored, "APPLIANCE_BIND": bind}) as copy:
        assert _call(f"{copy}/v1/conversations/{conversation_id}", api_key) == original
        conversation = _call(f"{copy}/v1/conversations", api_key, {})
        reply = _call(f"{copy}/v1/conversations/{conversation['id']}/messages", api_key,
                      {"text": QUESTION})
    cited = sorted(c["article"] for c in reply["message"]["citations"])
    assert cited == sorted(c["article"] for c in message["citations"])


def test_the_scheduler_leads_on_the_box(running: str) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        result = cli("scheduler", "status", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        status = json.loads(result.stdout)
        if status["leader"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status["leader"] == "debian12"


# --- an upgrade and its rollback -----------------------------------------------------------


def _installed_version(venv: str) -> str:
    return subprocess.run(
        ["chroot", str(ROOT), f"{venv}/bin/python", "-c",
         "import importlib.metadata as m; print(m.version('switchboard-appliance'))"],
        capture_output=True, text=True, check=True, env=_controller_env(),
    ).stdout.strip()


def _later_wheelhouse(work: Path, post: int, migration: str = "") -> tuple[Path, str]:
    """This release's wheelhouse with the appliance's wheel rebuilt as version `.post<post>`,
    carrying `migration` (a module's source) as the next migration."""
    source = work / "source"
    shutil.copytree(REPO / "appliance", source / "appliance",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["pyproject.toml", "README.md"]:
        shutil.copyfile(REPO / name, source / name)
    init = source / "appliance" / "__init__.py"
    match = re.search(r'__version__ = "([^"]+)"', init.read_text())
    assert match
    later = f"{match.group(1)}.post{post}"
    init.write_text(init.read_text().replace(match.group(0), f'__version__ = "{later}"'))
    if migration:
        migrations = source / "appliance" / "db" / "migrations"
        newest = max(int(p.name[1:5]) for p in migrations.glob("m[0-9][0-9][0-9][0-9]_*.py"))
        (migrations / f"m{newest + 1:04d}_upgrade_probe.py").write_text(migration)
    wheelhouse = work / "wheelhouse"
    shutil.copytree(REPO / "wheelhouse", wheelhouse, copy_function=os.link)
    for old in wheelhouse.glob("switchboard_appliance-*.whl"):
        old.unlink()
    subprocess.run([str(REPO / ".venv" / "bin" / "pip"), "wheel", "-q", "--no-deps",
                    "--disable-pip-version-check", "-w", str(wheelhouse), str(source)],
                   check=True, capture_output=True, env=_controller_env())
    (wheelhouse / "SHA256SUMS").unlink()
    sums = subprocess.run(["sha256sum", *sorted(p.name for p in wheelhouse.iterdir())],
                          cwd=wheelhouse, capture_output=True, text=True, check=True).stdout
    (wheelhouse / "SHA256SUMS").write_text(sums)
    return wheelhouse, later


@pytest.fixture(scope="module")
def upgrade(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return _later_wheelhouse(tmp_path_factory.mktemp("upgrade"), 1)


def test_an_upgrade_keeps_the_running_venv_and_a_rollback_restores_it(
    running: str, inventory: Path, upgrade: tuple[Path, str]
) -> None:
    wheelhouse, later = upgrade
    before = _installed_version("/opt/appliance/venv")

    upgraded = _converge(inventory, "-e",
                         json.dumps({"appliance_wheelhouse_src": f"{wheelhouse}/"}))

    assert upgraded.returncode == 0, upgraded.output[-6000:]
    assert "Keep the running release's venv for a rollback" in upgraded.changed_tasks
    assert _installed_version("/opt/appliance/venv") == later
    assert _installed_version("/opt/appliance/venv.previous") == before
    box_wheels = sorted(p.name for p in (ROOT / "opt/appliance/wheelhouse").iterdir())
    assert box_wheels == sorted(p.name for p in wheelhouse.iterdir())

    # The rollback of docs/operations.md: the schema first (nothing to undo here: the upgrade
    # brought no migration), then the previous venv back in place.
    venvs = ROOT / "opt" / "appliance"
    (venvs / "venv").rename(venvs / "venv.failed")
    (venvs / "venv.previous").rename(venvs / "venv")
    assert _installed_version("/opt/appliance/venv") == before
    doctor = cli("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    shutil.rmtree(venvs / "venv.failed")

    # The previous release's wheelhouse converges the rolled-back box without installing.
    back = _converge(inventory)
    assert back.returncode == 0, back.output[-6000:]
    assert "Install the appliance from the wheelhouse" not in back.changed_tasks
    assert not any(p.name.endswith(f"{later}-py3-none-any.whl")
                   for p in (ROOT / "opt/appliance/wheelhouse").iterdir())


# Real DDL and a real change to the customers' rows, then a failure: the shape of a migration
# that meets data its author never saw.
FAILING_MIGRATION = """
import peewee


def up(db: peewee.Database) -> None:
    db.execute_sql("CREATE TABLE upgrade_probe (id INTEGER PRIMARY KEY)")
    db.execute_sql("UPDATE conversation SET status = 'probed'")
    raise RuntimeError("a row the migration did not expect")


def down(db: peewee.Database) -> None:
    db.execute_sql("DROP TABLE upgrade_probe")
"""


def _restore_previous(inventory: Path) -> Converge:
    """The role's own step that puts the previous release back (the one the "Restart appliance"
    handler takes after a failed migration, before it starts the services)."""
    playbook = inventory / "restore_previous.yml"
    playbook.write_text(
        "- hosts: appliance\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: appliance\n"
        "        tasks_from: restore_previous.yml\n"
    )
    return _converge(inventory, playbook=playbook)


def test_an_upgrade_whose_migration_fails_leaves_the_previous_release_serving(
    first_turn: tuple[str, dict[str, Any]], running: str, api_key: str, inventory: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    conversation_id, _ = first_turn
    original = _call(f"{running}/v1/conversations/{conversation_id}", api_key)
    wheelhouse, later = _later_wheelhouse(tmp_path_factory.mktemp("failing"), 2,
                                          FAILING_MIGRATION)
    before = _installed_version("/opt/appliance/venv")
    status_before = cli("db", "status").stdout
    upgraded = _converge(inventory, "-e",
                         json.dumps({"appliance_wheelhouse_src": f"{wheelhouse}/"}))
    assert upgraded.returncode == 0, upgraded.output[-6000:]
    assert _installed_version("/opt/appliance/venv") == later

    # What the handler's first step runs: the new release's migration unit. It fails, naming
    # the migration, and leaves every applied version, table and row as it found them.
    migration = run_unit("appliance-migrate.service")
    assert migration.returncode != 0
    assert "upgrade_probe failed (RuntimeError: a row the migration did not expect)" in (
        migration.stderr)
    status = cli("db", "status").stdout
    assert re.search(r"upgrade_probe\s+pending", status), status
    assert status.count("pending") == 1

    restored = _restore_previous(inventory)
    assert restored.returncode == 0, restored.output[-6000:]
    assert _installed_version("/opt/appliance/venv") == before
    assert _installed_version("/opt/appliance/venv.failed") == later
    assert not (ROOT / "opt/appliance/venv.previous").exists()
    assert cli("db", "status").stdout == status_before

    # The previous release starts as its units start it (an empty migration first) and serves
    # the conversation the failed migration had tried to change.
    assert run_unit("appliance-migrate.service").returncode == 0
    bind = f"127.0.0.1:{_free_port()}"
    with serving(["appliance-web.service"], bind, {"APPLIANCE_BIND": bind}) as url:
        assert _call(f"{url}/v1/conversations/{conversation_id}", api_key) == original

    shutil.rmtree(ROOT / "opt/appliance/venv.failed")
    back = _converge(inventory)
    assert back.returncode == 0, back.output[-6000:]
    assert "Install the appliance from the wheelhouse" not in back.changed_tasks


# --- a bad wheelhouse, a second converge, and the checks over what was installed -----------


@pytest.mark.parametrize("fault", ["altered", "missing", "unlisted"])
def test_a_bad_wheelhouse_stops_the_play_before_it_changes_anything(
    first_converge: Converge, inventory: Path, tmp_path: Path, fault: str
) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    shutil.copytree(REPO / "wheelhouse", wheelhouse, copy_function=os.link)
    victim = next(wheelhouse.glob("jsonschema-*.whl"))
    victim.unlink()  # a hard link: replace the file, never write through to the original
    if fault == "altered":
        victim.write_bytes(b"not a wheel")
    elif fault == "unlisted":
        victim.with_name("extra-1.0-py3-none-any.whl").write_bytes(b"")
        shutil.copyfile(REPO / "wheelhouse" / victim.name, victim)
    bad = _converge(inventory, "-e", json.dumps({"appliance_wheelhouse_src": f"{wheelhouse}/"}))
    assert bad.returncode != 0
    assert bad.recap["changed"] == 0 and bad.changed_tasks == []
    assert "nothing was changed on the box" in bad.output
    named = "extra-1.0-py3-none-any.whl" if fault == "unlisted" else victim.name
    assert named in bad.output


def test_a_second_converge_changes_nothing(first_converge: Converge, inventory: Path) -> None:
    again = _converge(inventory)
    assert again.returncode == 0, again.output[-6000:]
    assert (again.recap["changed"], again.changed_tasks) == (0, [])


def test_the_role_passes_ansible_lint_production() -> None:
    result = subprocess.run(
        [str(DEPLOY_VENV / "bin" / "ansible-lint"), "--profile", "production", "--offline",
         "--nocolor", "roles/appliance", "site.yml"],
        capture_output=True, text=True, cwd=ANSIBLE_DIR,
        env=_controller_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _installed_units() -> list[str]:
    return sorted(path.name for path in (ROOT / UNIT_DIR.lstrip("/")).glob("appliance*")
                  if path.is_file())


def test_the_installed_units_pass_systemd_analyze_verify(first_converge: Converge) -> None:
    units = _installed_units()
    assert "appliance-web.service" in units
    # The box's own systemd-analyze, on the box's own files and binaries. It exits 0 on
    # warnings (an unknown key is "ignoring"), so any output is a finding.
    result = subprocess.run(
        ["chroot", str(ROOT), "systemd-analyze", "verify", "--man=no",
         *[f"{UNIT_DIR}/{unit}" for unit in units]],
        capture_output=True, text=True, timeout=300,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("unit", SERVICES)
def test_each_installed_service_keeps_its_exposure_at_most_2(
    first_converge: Converge, unit: str
) -> None:
    result = subprocess.run(
        ["chroot", str(ROOT), "systemd-analyze", "security", "--offline=yes", "--no-pager",
         f"{UNIT_DIR}/{unit}"],
        capture_output=True, text=True, timeout=300,
    )
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert score, result.stdout + result.stderr
    assert float(score.group(1)) <= 2.0, result.stdout
