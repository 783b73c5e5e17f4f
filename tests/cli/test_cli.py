"""The `appliance` command: a few runs end to end as a real process (`python -m appliance`), the
rest through click's CliRunner, all against a real database in a temp data dir."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from model_stores import write_store

from appliance import __version__
from appliance.cli import cli
from appliance.config import load_settings
from appliance.db.models import JobRun
from appliance.errors import AuthenticationError, InvalidRequest, NotFound
from appliance.identity import signature
from appliance.services import Services, build_services
from appliance.web import create_app

REPO = Path(__file__).resolve().parents[2]
EMPTY_CONFIG = REPO / "tests" / "empty-config.toml"
TEST_REPLY_TOKENS = 24
TINY = "smollm2-135m-instruct"
KEY = re.compile(r"^sbk_[A-Za-z0-9_-]{43}$")
BRAND = ["brands", "create", "acme", "--name", "Acme", "--agent-name", "Juniper",
         "--tone", "Warm and brief.", "--greeting", "Hi, I'm Juniper!"]
Env = dict[str, str]


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> Env:
    """APPLIANCE_* variables for a fresh data dir and database; nothing from the machine."""
    return {
        "APPLIANCE_CONFIG": str(EMPTY_CONFIG),
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "APPLIANCE_DATABASE_URL": database_url,
        "APPLIANCE_LLM_MAX_REPLY_TOKENS": str(TEST_REPLY_TOKENS),
    }


def run(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m appliance ARGS` as its own process."""
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return subprocess.run([sys.executable, "-m", "appliance", *args], env=process_env | env,
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


def invoke(env: Env, *args: str, input: str | None = None) -> Result:
    """The click command in this process, with only `env` as APPLIANCE_* configuration."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APPLIANCE_")}
    return CliRunner().invoke(cli, list(args), env=unset | env, input=input)


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.stdout


@pytest.fixture
def services_for() -> Iterator[Callable[[Env], Services]]:
    """services_for(env): the Services the CLI would build from `env`, to check its work."""
    built: list[Services] = []

    def build(env: Env) -> Services:
        services = build_services(load_settings(env=env))
        services.db.connect(reuse_if_open=True)
        built.append(services)
        return services

    yield build
    for services in built:
        services.close()


@pytest.fixture
def bad_checksum_store(tmp_path: Path) -> Path:
    """A model store whose manifest has a wrong sha256 for the cpu reply model."""
    return write_store(tmp_path / "bad_store", reply=[TINY],
                       changed={TINY: {"sha256": "0" * 64}})


# --- end to end, as a real process --------------------------------------------------------


def test_it_prints_only_the_new_key_and_the_key_works(
    env: Env, services_for: Callable[[Env], Services]
) -> None:
    ok(invoke(env, "db", "migrate"))
    ok(invoke(env, *BRAND))

    done = run(env, "brands", "key", "create", "acme", "--name", "website")

    assert done.returncode == 0, done.stderr
    assert KEY.match(done.stdout.rstrip("\n")), done.stdout
    assert done.stdout.count("\n") == 1
    token = done.stdout.strip()
    client = create_app({"TESTING": True}, services=services_for(env)).test_client()
    response = client.post("/v1/conversations", json={},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201
    assert response.get_json()["brand"] == "acme"


def test_it_fails_clearly_for_an_unknown_brand(env: Env) -> None:
    ok(invoke(env, "db", "migrate"))

    done = run(env, "brands", "key", "create", "no-such-brand")

    assert done.returncode == 1
    assert done.stdout == ""
    assert "no brand 'no-such-brand'" in done.stderr
    assert "Traceback" not in done.stderr


def test_it_fails_clearly_for_an_unknown_job(env: Env) -> None:
    ok(invoke(env, "db", "migrate"))

    done = run(env, "jobs", "run", "no.such.job")

    assert done.returncode == 1
    assert "no job 'no.such.job'" in done.stderr
    assert "conversations.close_idle" in done.stderr, "the message lists the known jobs"
    assert "Traceback" not in done.stderr


# --- through CliRunner --------------------------------------------------------------------


def test_it_prints_its_version(env: Env) -> None:
    assert __version__ in ok(invoke(env, "--version"))


def test_it_shows_config_with_secrets_redacted(env: Env) -> None:
    env = env | {
        "APPLIANCE_SECRET_KEY": "sk-do-not-print-me",
        "APPLIANCE_DATABASE_URL": "postgresql://app:pa55-do-not-print@db.local:5432/app",
    }

    shown = ok(invoke(env, "config", "show", "--help-text"))

    assert "sk-do-not-print-me" not in shown
    assert "pa55-do-not-print" not in shown
    assert "postgresql://app:***@db.local:5432/app" in shown
    assert re.search(r"^secret_key\s+\*\*\*\s", shown, re.MULTILINE)
    assert re.search(r"^bind\s+127\.0\.0\.1:8080\s", shown, re.MULTILINE)


def test_it_migrates_and_then_finds_the_schema_current(env: Env) -> None:
    first = ok(invoke(env, "db", "migrate"))
    second = ok(invoke(env, "db", "migrate"))

    assert "applied 0001 initial" in first
    assert second.strip() == "schema is current"
    assert re.search(r"^0001\s+initial\s+applied$", ok(invoke(env, "db", "status")), re.M)


def test_it_rolls_back_only_when_confirmed(
    env: Env, services_for: Callable[[Env], Services]
) -> None:
    ok(invoke(env, "db", "migrate"))

    declined = invoke(env, "db", "rollback", "--target", "0", input="n\n")
    assert declined.exit_code != 0
    assert "brand" in services_for(env).db.get_tables()

    assert "rolled back 0001 initial" in ok(invoke(env, "db", "rollback", "--target", "0",
                                                   "--yes"))
    assert "brand" not in services_for(env).db.get_tables()


def test_it_seeds_the_demo_idempotently(
    env: Env, services_for: Callable[[Env], Services]
) -> None:
    ok(invoke(env, "db", "migrate"))

    # Credentials only: the demo knowledge's idempotent seeding is covered in tests/knowledge.
    first = json.loads(ok(invoke(env, "demo", "seed", "--json", "--no-knowledge")))
    second = json.loads(ok(invoke(env, "demo", "seed", "--json", "--no-knowledge")))

    assert first == second
    services = services_for(env)
    assert sorted(b.slug for b in services.brands.all()) == ["lumen-goods", "rho-bank"]
    for slug, token in first["keys"].items():
        assert services.brands.authenticate(token).slug == slug
        assert len(services.brands.keys(slug)) == 1
    admin = first["admin"]
    assert services.users.authenticate(admin["username"], admin["password"]) is not None


def test_it_shows_a_brand_without_its_keys(env: Env) -> None:
    ok(invoke(env, "db", "migrate"))
    ok(invoke(env, *BRAND))
    token = ok(invoke(env, "brands", "key", "create", "acme")).strip()

    shown = json.loads(ok(invoke(env, "brands", "show", "acme")))
    listed = ok(invoke(env, "brands", "key", "list", "acme"))

    assert shown["persona"]["agent_name"] == "Juniper"
    assert shown["keys"][0]["prefix"] == token[:10]
    assert token not in json.dumps(shown)
    assert token not in listed


def test_it_revokes_a_key(env: Env, services_for: Callable[[Env], Services]) -> None:
    ok(invoke(env, "db", "migrate"))
    ok(invoke(env, *BRAND))
    token = ok(invoke(env, "brands", "key", "create", "acme")).strip()
    key_id = json.loads(ok(invoke(env, "brands", "show", "acme")))["keys"][0]["id"]

    ok(invoke(env, "brands", "key", "revoke", "acme", str(key_id)))

    assert re.search(r"\srevoked$", ok(invoke(env, "brands", "key", "list", "acme")), re.M)
    with pytest.raises(AuthenticationError):
        services_for(env).brands.authenticate(token)


def test_it_creates_lists_and_revokes_identity_secrets(
    env: Env, services_for: Callable[[Env], Services]
) -> None:
    ok(invoke(env, "db", "migrate"))
    ok(invoke(env, *BRAND))
    secret = ok(invoke(env, "brands", "identity-secret", "create", "acme")).strip()
    services = services_for(env)
    acme = services.brands.get("acme")
    signed = {"id": "c1", "signature": signature(secret, "c1")}
    assert services.identity.customer(acme, signed, public=True)["assurance"] == "asserted"

    listed = ok(invoke(env, "brands", "identity-secret", "list", "acme"))
    secret_id = services.identity.secrets(acme)[0].id
    ok(invoke(env, "brands", "identity-secret", "revoke", "acme", str(secret_id)))

    assert secret not in listed and re.search(r"\slive$", listed, re.M)
    assert re.search(r"\srevoked$",
                     ok(invoke(env, "brands", "identity-secret", "list", "acme")), re.M)
    with pytest.raises(AuthenticationError):
        services_for(env).identity.customer(acme, signed, public=True)


def test_it_creates_a_user_from_a_password_file(
    env: Env, tmp_path: Path, services_for: Callable[[Env], Services]
) -> None:
    ok(invoke(env, "db", "migrate"))
    ok(invoke(env, *BRAND))
    password = tmp_path / "password"
    password.write_text("correct horse battery staple\n")

    out = ok(invoke(env, "users", "create", "rosa", "--role", "cx_editor", "--brand", "acme",
                    "--password-file", str(password)))

    assert out.strip() == "created user rosa (cx_editor)"
    user = services_for(env).users.authenticate("rosa", "correct horse battery staple")
    assert user is not None
    assert user.role == "cx_editor"
    assert user.brand is not None
    assert user.brand.slug == "acme"


def test_it_leaves_an_existing_user_alone_with_exist_ok(
    env: Env, tmp_path: Path, services_for: Callable[[Env], Services]
) -> None:
    ok(invoke(env, "db", "migrate"))
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("correct horse battery staple\n")
    second.write_text("another long password here\n")
    create = ["users", "create", "rosa", "--role", "it_admin", "--exist-ok"]

    assert ok(invoke(env, *create, "--password-file", str(first))).strip() == (
        "created user rosa (it_admin)"
    )
    assert ok(invoke(env, *create, "--password-file", str(second))).strip() == "user rosa exists"
    again = invoke(env, *create[:-1], "--password-file", str(second))

    assert again.exit_code == 1
    users = services_for(env).users
    assert users.authenticate("rosa", "correct horse battery staple") is not None
    assert users.authenticate("rosa", "another long password here") is None


def test_it_refuses_a_short_password(env: Env, tmp_path: Path) -> None:
    ok(invoke(env, "db", "migrate"))
    password = tmp_path / "password"
    password.write_text("short\n")

    result = invoke(env, "users", "create", "rosa", "--role", "viewer",
                    "--password-file", str(password))

    assert result.exit_code == 1
    assert isinstance(result.exception, InvalidRequest)
    assert result.exception.param == "password"


def test_it_runs_a_job_by_hand_and_records_the_run(
    env: Env, services_for: Callable[[Env], Services]
) -> None:
    ok(invoke(env, "db", "migrate"))

    out = json.loads(ok(invoke(env, "jobs", "run", "conversations.close_idle")))

    assert out == {"job": "conversations.close_idle", "status": "ok", "detail": {"closed": 0}}
    services_for(env)  # binds the models to the database the CLI used
    runs = list(JobRun.select())
    assert [(r.job_id, r.status, r.detail) for r in runs] == [
        ("conversations.close_idle", "ok", {"closed": 0})
    ]
    assert runs[0].finished_at is not None
    assert runs[0].finished_at >= runs[0].started_at


def test_it_lists_jobs(env: Env) -> None:
    listed = ok(invoke(env, "jobs", "list"))

    assert "conversations.close_idle" in listed
    assert "models.health" in listed


def test_it_refuses_an_unknown_job(env: Env) -> None:
    ok(invoke(env, "db", "migrate"))

    result = invoke(env, "jobs", "run", "no.such.job")

    assert result.exit_code == 1
    assert isinstance(result.exception, NotFound)


def test_it_verifies_the_model_files(env: Env) -> None:
    out = ok(invoke(env, "models", "verify"))

    assert re.search(rf"^{TINY}\s+ok\s+required\s", out, re.MULTILINE)


def test_it_fails_verification_for_a_wrong_checksum(env: Env, bad_checksum_store: Path) -> None:
    result = invoke(env | {"APPLIANCE_MODEL_STORE": str(bad_checksum_store)},
                    "models", "verify")

    assert result.exit_code == 1
    assert re.search(rf"^{TINY}\s+mismatch\s+required\s", result.stdout, re.MULTILINE)


def _doctor_rows(out: str) -> dict[str, str]:
    lines = out.splitlines()
    assert re.match(r"^check\s+result\s+ms\s+detail$", lines[0])
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        match = re.match(r"^(.+?)\s{2,}(ok|FAIL)\s{2,}[\d.]+", line)
        assert match, line
        rows[match.group(1)] = match.group(2)
    return rows


def _doctor_details(out: str) -> dict[str, str]:
    return {match.group(1): match.group(2) for match in re.finditer(
        r"^(.+?)\s{2,}(?:ok|FAIL)\s{2,}[\d.]+\s+(.*)$", out, re.MULTILINE)}


def test_it_passes_doctor_on_a_good_setup(env: Env) -> None:
    ok(invoke(env, "db", "migrate"))

    out = ok(invoke(env, "doctor"))

    rows = _doctor_rows(out)
    assert set(rows) >= {"data_dir", "database", "migrations", "llama.cpp build",
                         f"model {TINY}: file", f"model {TINY}: generate", "secret key",
                         "model cpu-large: file", "task reply", "task reply_large",
                         "task extraction", "task summary"}
    assert set(rows.values()) == {"ok"}
    # The CPU default ships without the large model: reported, not failed.
    details = _doctor_details(out)
    assert details["model cpu-large: file"] == "absent, optional (operator supplies large.gguf)"
    assert details["task reply_large"] == (
        f"cpu-large absent (operator supplies large.gguf); falls back to {TINY}")
    assert details["task reply"] == TINY


def test_it_fails_doctor_when_a_tasks_only_model_is_absent(env: Env, tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", reply=["cpu-large"])
    env = env | {"APPLIANCE_MODEL_STORE": str(store)}
    ok(invoke(env, "db", "migrate"))

    result = invoke(env, "doctor")

    assert result.exit_code == 1
    failed = {name for name, state in _doctor_rows(result.stdout).items() if state == "FAIL"}
    assert failed == {"task reply"}
    assert _doctor_details(result.stdout)["task reply"] == (
        "no model present: cpu-large absent (operator supplies large.gguf)")


def test_it_fails_doctor_with_a_wrong_model_checksum(env: Env, bad_checksum_store: Path) -> None:
    env = env | {"APPLIANCE_MODEL_STORE": str(bad_checksum_store)}
    ok(invoke(env, "db", "migrate"))

    result = invoke(env, "doctor")

    assert result.exit_code == 1
    failed = {name for name, state in _doctor_rows(result.stdout).items() if state == "FAIL"}
    assert failed == {f"model {TINY}: file", f"model {TINY}: generate"}
    assert "2 check(s) failed" in result.stderr


def test_it_fails_doctor_while_migrations_are_pending(env: Env) -> None:
    result = invoke(env, "doctor")

    assert result.exit_code == 1
    assert _doctor_rows(result.stdout)["migrations"] == "FAIL"

