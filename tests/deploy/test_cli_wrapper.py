"""The `appliance` wrapper the role installs in /usr/local/sbin: `sudo appliance ...` runs the
CLI through systemd-run as the appliance user, with the same config and credentials as the units.

systemd-run itself cannot run here (no systemd as PID 1, no root needed); a stand-in on PATH
records its options and runs the command the way systemd would, with $CREDENTIALS_DIRECTORY set.
What this checks is the wrapper's own part: options, quoting, stdin and exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import Ansible

VENV_APPLIANCE = "/opt/appliance/venv/bin/appliance"

FAKE_SYSTEMD_RUN = """#!{python}
import json, os, sys
args = sys.argv[1:]
options = []
while args and args[0].startswith("-"):
    options.append(args.pop(0))
env = dict(os.environ, CREDENTIALS_DIRECTORY={creds!r})
for option in options:
    if option.startswith("--setenv="):
        key, _, value = option.removeprefix("--setenv=").partition("=")
        env[key] = value
with open({log!r}, "w") as fh:
    json.dump(options, fh)
command = [arg.replace({venv!r}, {fake!r}) for arg in args]
os.execve(command[0], command, env)
"""

FAKE_APPLIANCE = """#!{python}
import json, os, sys
print(json.dumps({{
    "argv": sys.argv[1:],
    "env": {{k: v for k, v in os.environ.items() if k.startswith("APPLIANCE_")}},
    "stdin": sys.stdin.read(),
}}))
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture(scope="module")
def rendered(ansible: Ansible, tmp_path_factory: pytest.TempPathFactory) -> str:
    return ansible.render("appliance-cli.sh.j2", tmp_path_factory.mktemp("cli") / "appliance")


@pytest.fixture
def wrapper(rendered: str, tmp_path: Path) -> Path:
    path = tmp_path / "appliance"
    _executable(path, rendered)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = tmp_path / "fake-appliance"
    _executable(fake, FAKE_APPLIANCE.format(python=sys.executable))
    _executable(
        bin_dir / "systemd-run",
        FAKE_SYSTEMD_RUN.format(
            python=sys.executable,
            creds=str(tmp_path / "creds"),
            log=str(tmp_path / "options.json"),
            venv=VENV_APPLIANCE,
            fake=str(fake),
        ),
    )
    _executable(bin_dir / "id", '#!/bin/sh\necho "${FAKE_UID:-0}"\n')
    return path


def _run(
    wrapper: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    path = f"{wrapper.parent / 'bin'}:{os.environ['PATH']}"
    return subprocess.run(
        [str(wrapper), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        # The caller's own APPLIANCE_* variables (a test run's) must not reach the stub.
        env={**{k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")},
             "PATH": path, **env},
    )


def test_it_passes_arguments_through_unchanged(wrapper: Path) -> None:
    result = _run(wrapper, "users", "create", "Ada Lovelace", "--role", "it_admin")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["argv"] == [
        "users",
        "create",
        "Ada Lovelace",
        "--role",
        "it_admin",
    ]


def test_it_runs_as_the_appliance_user_with_the_units_credentials(wrapper: Path) -> None:
    result = _run(wrapper, "doctor")
    assert result.returncode == 0, result.stderr
    options = json.loads((wrapper.parent / "options.json").read_text())
    assert "--uid=appliance" in options
    assert "--gid=appliance" in options
    assert "--wait" in options
    assert "--property=LoadCredential=secret_key:/etc/appliance/credentials/secret_key" in options
    assert (
        "--property=LoadCredential=database_url:/etc/appliance/credentials/database_url" in options
    )
    assert "--property=NoNewPrivileges=yes" in options
    assert "--property=UMask=0077" in options
    creds = wrapper.parent / "creds"
    assert json.loads(result.stdout)["env"] == {
        "APPLIANCE_CONFIG": "/etc/appliance/appliance.toml",
        "APPLIANCE_SECRET_KEY_FILE": f"{creds}/secret_key",
        "APPLIANCE_DATABASE_URL_FILE": f"{creds}/database_url",
    }


def test_it_pipes_stdin_when_not_on_a_terminal(wrapper: Path) -> None:
    # How the play hands the first admin's password over: --password-file /dev/stdin.
    result = _run(
        wrapper,
        "users",
        "create",
        "admin",
        "--password-file",
        "/dev/stdin",
        stdin="a long passphrase",
    )
    assert json.loads(result.stdout)["stdin"] == "a long passphrase"
    assert "--pipe" in json.loads((wrapper.parent / "options.json").read_text())


def test_it_returns_the_commands_exit_status(wrapper: Path) -> None:
    assert _run(wrapper, "doctor", FAKE_EXIT="3").returncode == 3


def test_it_refuses_to_run_without_root(wrapper: Path) -> None:
    result = _run(wrapper, "doctor", FAKE_UID="1000")
    assert result.returncode == 1
    assert "sudo appliance doctor" in result.stderr
    assert not (wrapper.parent / "options.json").exists()
