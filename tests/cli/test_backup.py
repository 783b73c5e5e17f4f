"""`appliance backup create|verify|restore` on SQLite and PostgreSQL: a backup taken while the
appliance's database is open restores into a new data dir and database, where the restored
secret opens the conversations' vaults; a changed byte, a missing or an added file fails
verification, naming the file; a restore never overwrites data unless forced, nor takes a
backup from a newer schema; scheduled backups keep the newest `backup_keep`."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from click.testing import CliRunner, Result
from psycopg2 import sql
from psycopg2.extensions import parse_dsn
from server_support import EMPTY_CONFIG

from appliance import backup as backups
from appliance.cli import cli
from appliance.config import Settings
from appliance.db.models import Conversation, Message
from appliance.services import Services, build_services

EMAIL = "dana.scully@example.com"


def run(data_dir: Path, database_url: str, *args: str,
        settings: dict[str, str] | None = None) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APPLIANCE_")}
    env |= {"APPLIANCE_CONFIG": str(EMPTY_CONFIG), "APPLIANCE_DATA_DIR": str(data_dir),
            "APPLIANCE_DATABASE_URL": database_url, **(settings or {})}
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def fresh_database(settings: Settings, tmp_path: Path) -> Callable[[], str]:
    """A new empty database of the test's engine to restore into."""

    def make() -> str:
        if settings.is_sqlite:
            return f"sqlite:///{tmp_path / 'restored' / 'appliance.db'}"
        params = parse_dsn(settings.database_url)
        name = f"{params['dbname']}_restore"
        conn = psycopg2.connect(settings.database_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.close()
        return settings.database_url.rsplit("/", 1)[0] + f"/{name}"

    return make


def test_a_backup_restores_into_a_new_box_whose_secret_opens_the_vaults(
        services: Services, settings: Settings, seeded: dict[str, Any], tmp_path: Path,
        fresh_database: Callable[[], str]) -> None:
    brand = services.brands.get("lumen-goods")
    conversation, _ = services.conversations.start(brand, {"email": EMAIL}, "api")
    knowledge = settings.data_dir / "knowledge" / "uploads" / "faq.md"
    knowledge.parent.mkdir(parents=True, exist_ok=True)
    knowledge.write_text("# Shipping\nThree to five days.\n")
    out = tmp_path / "backup"

    made = run(settings.data_dir, settings.database_url, "backup", "create", "--out", str(out),
               "--include-secrets")

    assert made.exit_code == 0, made.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["includes_secrets"] and manifest["schema"] >= 18
    assert "knowledge/uploads/faq.md" in manifest["files"]
    assert (out / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert "secret_key" not in (out / "settings.json").read_text()
    assert run(tmp_path, "sqlite://", "backup", "verify", str(out)).exit_code == 0

    target_dir, target_db = tmp_path / "restored", fresh_database()
    restored = run(target_dir, target_db, "backup", "restore", str(out))

    assert restored.exit_code == 0, restored.output
    assert (target_dir / "knowledge" / "uploads" / "faq.md").read_text().startswith("# Ship")
    copy = build_services(replace(settings, data_dir=target_dir, secret_key="",
                                  database_url=target_db))
    try:
        copy.db.connect(reuse_if_open=True)
        found = Conversation.get(Conversation.public_id == conversation.public_id)
        assert EMAIL not in json.dumps(found.customer)
        assert copy.conversations.customer_view(found)(found.customer)["email"] == EMAIL
        assert Message.select().where(Message.conversation == found.id).count() == 1
    finally:
        copy.close()
    # A second restore into the same place is refused: nothing is overwritten.
    again = run(target_dir, target_db, "backup", "restore", str(out))
    assert again.exit_code != 0 and "not empty" in str(again.exception) + again.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_verify_names_a_changed_missing_or_added_file(
        services: Services, settings: Settings, seeded: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "backup"
    assert run(settings.data_dir, settings.database_url, "backup", "create", "--out",
               str(out)).exit_code == 0
    assert not (out / "secrets.json").exists()

    settings_file = out / "settings.json"
    settings_file.write_text(settings_file.read_text() + " ")
    (out / "model-manifest.toml").unlink()
    (out / "extra.txt").write_text("x")
    checked = run(tmp_path, "sqlite://", "backup", "verify", str(out))

    assert checked.exit_code == 1
    assert "settings.json: checksum does not match" in checked.output
    assert "model-manifest.toml: missing" in checked.output
    assert "extra.txt: not in the manifest" in checked.output
    refused = run(tmp_path / "new", f"sqlite:///{tmp_path / 'new' / 'a.db'}", "backup",
                  "restore", str(out))
    assert refused.exit_code != 0 and "does not verify" in str(refused.exception)
    assert not (tmp_path / "new" / "a.db").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backup_goes_only_into_an_empty_directory(
        services: Services, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "backup"
    out.mkdir()
    (out / "old").write_text("keep me")
    made = run(settings.data_dir, settings.database_url, "backup", "create", "--out", str(out))
    assert made.exit_code != 0 and "not empty" in str(made.exception)
    assert (out / "old").read_text() == "keep me"


def test_restore_with_force_replaces_what_is_there(
        services: Services, settings: Settings, seeded: dict[str, Any], tmp_path: Path,
        fresh_database: Callable[[], str]) -> None:
    brand = services.brands.get("lumen-goods")
    kept, _ = services.conversations.start(brand, {"email": EMAIL}, "api")
    out = tmp_path / "backup"
    assert run(settings.data_dir, settings.database_url, "backup", "create", "--out",
               str(out), "--include-secrets").exit_code == 0
    target_dir, target_db = tmp_path / "restored", fresh_database()
    assert run(target_dir, target_db, "backup", "restore", str(out)).exit_code == 0
    # The restored box lives on: a conversation the backup never saw, a knowledge file.
    box = build_services(replace(settings, data_dir=target_dir, secret_key="",
                                 database_url=target_db))
    try:
        box.db.connect(reuse_if_open=True)
        later, _ = box.conversations.start(box.brands.get("lumen-goods"), {}, "api")
    finally:
        box.close()
    (target_dir / "knowledge").mkdir(exist_ok=True)
    (target_dir / "knowledge" / "later.md").write_text("# Later\n")

    refused = run(target_dir, target_db, "backup", "restore", str(out))
    assert refused.exit_code != 0 and "--force" in str(refused.exception)
    forced = run(target_dir, target_db, "backup", "restore", "--force", str(out))

    assert forced.exit_code == 0, forced.output
    assert not (target_dir / "knowledge" / "later.md").exists()
    box = build_services(replace(settings, data_dir=target_dir, secret_key="",
                                 database_url=target_db))
    try:
        box.db.connect(reuse_if_open=True)
        ids = {c.public_id for c in Conversation.select()}
        assert kept.public_id in ids and later.public_id not in ids
    finally:
        box.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_restore_refuses_a_backup_from_a_newer_schema(
        services: Services, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "backup"
    assert run(settings.data_dir, settings.database_url, "backup", "create", "--out",
               str(out)).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["schema"], manifest["appliance"] = 9999, "99.0.0"
    (out / "manifest.json").write_text(json.dumps(manifest))

    target = tmp_path / "new"
    refused = run(target, f"sqlite:///{target / 'a.db'}", "backup", "restore", str(out))

    assert refused.exit_code != 0
    assert "newer than this appliance knows" in str(refused.exception)
    assert "99.0.0" in str(refused.exception)
    assert not (target / "a.db").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_scheduled_backups_keep_the_newest_and_never_an_operators_directory(
        services: Services, settings: Settings) -> None:
    parent = settings.data_dir / "backups"
    (parent / "before-upgrade").mkdir(parents=True)  # an operator's own
    cut_off = parent / "20261201T013000Z.partial"  # a run that died half-way
    cut_off.mkdir()
    keep_two = replace(settings, backup_keep=2)
    made = []
    for day in (2, 3, 4):
        backup, deleted = backups.create_scheduled(
            keep_two, now=dt.datetime(2026, 12, day, 1, 30, tzinfo=dt.UTC))
        made.append(backup.directory)
        assert backups.verify(backup.directory).ok

    assert sorted(p.name for p in parent.iterdir()) == [
        "20261203T013000Z", "20261204T013000Z", "before-upgrade"]
    assert deleted == [made[0]]

    by_cli = run(settings.data_dir, settings.database_url, "backup", "create",
                 settings={"APPLIANCE_BACKUP_KEEP": "2"})
    assert by_cli.exit_code == 0, by_cli.output
    assert f"deleted {parent / '20261203T013000Z'}" in by_cli.output
    assert len([p for p in parent.iterdir() if p.name != "before-upgrade"]) == 2
    secrets = run(settings.data_dir, settings.database_url, "backup", "create",
                  "--include-secrets")
    assert secrets.exit_code != 0 and "needs --out" in secrets.output
