"""Online backups: `appliance backup create|verify|restore`.

A backup is a directory:
- the database: `appliance.db`, made with SQLite's online backup API (consistent while web and
  scheduler keep writing), or `database.dump`, PostgreSQL's `pg_dump --format=custom`;
- `knowledge/`: the data dir's knowledge (uploaded sources and the published indexes);
- `model-manifest.toml`: the model store's manifest the data was made with;
- `settings.json`: the effective settings, secrets left out; `secrets.json` (mode 0600) only
  with `--include-secrets`: the appliance's `secret_key`, without which the conversations'
  vaults and customers' subject keys cannot be read (docs/privacy.md);
- `manifest.json`: the appliance version, the schema version, the database engine, when, and
  the sha256 and size of every other file. `verify` checks them and the copied SQLite
  database's integrity; `restore` verifies first, refuses a backup whose schema is newer than
  this code knows, then restores into an empty data dir and an empty database (or, with
  `force`, over what is there).

Scheduled backups (`appliance backup create` without `--out`, which appliance-backup.timer
runs) go to DATA_DIR/backups/<UTC time>: written under a `.partial` name and renamed when
complete, so a backup cut off half-way is never taken for one, and only the newest
`backup_keep` are kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.config import Settings, ensure_secret_key
from appliance.db import open_database
from appliance.db.migrate import applied_versions, available
from appliance.errors import Conflict, InvalidRequest
from appliance.private_files import write_private

MANIFEST = "manifest.json"
SQLITE_FILE = "appliance.db"
PG_FILE = "database.dump"
SECRETS_FILE = "secrets.json"
FORMAT = 1
SCHEDULED_DIR = "backups"
_STAMP = re.compile(r"\d{8}T\d{6}Z")


@dataclass(frozen=True)
class Backup:
    directory: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Check:
    ok: bool
    problems: list[str]


def sqlite_path(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def create(settings: Settings, out: Path, include_secrets: bool = False) -> Backup:
    """Write a backup of the running appliance into `out` (new or empty)."""
    if out.exists() and any(out.iterdir()):
        raise Conflict(f"{out} is not empty: back up into a new directory",
                       code="backup_exists")
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    db = open_database(settings.database_url)
    with db.connection_context():
        schema = max(applied_versions(db), default=0)
    if settings.is_sqlite:
        engine = "sqlite"
        source = sqlite3.connect(sqlite_path(settings))
        target = sqlite3.connect(out / SQLITE_FILE)
        try:
            with target:
                source.backup(target)
            # One self-contained file: no WAL beside it to lose or to leave out of the sums.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
            source.close()
    else:
        engine = "postgresql"
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={out / PG_FILE}",
              f"--dbname={settings.database_url}"])
    knowledge = settings.data_dir / "knowledge"
    if knowledge.is_dir():
        shutil.copytree(knowledge, out / "knowledge")
    manifest_file = settings.model_store / "manifest.toml"
    if manifest_file.is_file():
        shutil.copyfile(manifest_file, out / "model-manifest.toml")
    shown = {f.name: value for f in fields(settings) if not f.metadata["secret"]
             for value in [getattr(settings, f.name)]}
    (out / "settings.json").write_text(json.dumps(shown, indent=2, default=str) + "\n")
    if include_secrets:
        write_private(out / SECRETS_FILE,
                      json.dumps({"secret_key": ensure_secret_key(settings).secret_key}))
    manifest = {
        "format": FORMAT, "appliance": __version__, "schema": schema, "engine": engine,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "includes_secrets": include_secrets, "files": _files(out),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Backup(out, manifest)


def create_scheduled(settings: Settings,
                     now: dt.datetime | None = None) -> tuple[Backup, list[Path]]:
    """A new backup under DATA_DIR/backups, then the oldest deleted beyond `backup_keep`.
    Returns the backup and what was deleted. Secrets stay out (they are in /etc/appliance)."""
    parent = settings.data_dir / SCHEDULED_DIR
    parent.mkdir(parents=True, exist_ok=True)
    name = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    final = parent / name
    if final.exists():
        raise Conflict(f"{final} exists: one scheduled backup a second", code="backup_exists")
    partial = parent / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    made = create(settings, partial)
    partial.rename(final)
    # Only our own names: a directory an operator put there is never deleted. Partial ones
    # older than this backup were cut off (a crash, a full disk) and go too.
    backups = sorted(p for p in parent.iterdir() if p.is_dir() and _STAMP.fullmatch(p.name))
    stale = [p for p in parent.iterdir() if p.is_dir() and p.name.endswith(".partial")
             and _STAMP.fullmatch(p.name.removesuffix(".partial")) and p.name < name]
    deleted = backups[: max(0, len(backups) - settings.backup_keep)] + sorted(stale)
    for path in deleted:
        shutil.rmtree(path)
    return Backup(final, made.manifest), deleted


def verify(directory: Path) -> Check:
    """Check a backup without restoring it: its manifest, every file's size and sha256, no
    file added, and the SQLite copy's integrity."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return Check(False, [f"{MANIFEST}: unreadable ({exc.__class__.__name__})"])
    if manifest.get("format") != FORMAT:
        return Check(False, [f"{MANIFEST}: format {manifest.get('format')!r} is not {FORMAT}"])
    problems = []
    expected: dict[str, dict[str, Any]] = manifest.get("files", {})
    found = _files(directory)
    for name, entry in sorted(expected.items()):
        actual = found.get(name)
        if actual is None:
            problems.append(f"{name}: missing")
        elif actual != entry:
            problems.append(f"{name}: checksum does not match")
    problems += [f"{name}: not in the manifest" for name in sorted(set(found) - set(expected))]
    database = SQLITE_FILE if manifest.get("engine") == "sqlite" else PG_FILE
    if database not in expected:
        problems.append(f"{database}: not in the manifest")
    elif database == SQLITE_FILE and not problems:
        connection = sqlite3.connect(f"file:{directory / SQLITE_FILE}?mode=ro&immutable=1",
                                     uri=True)
        try:
            result = connection.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            connection.close()
        if result != "ok":
            problems.append(f"{SQLITE_FILE}: integrity check: {result}")
    return Check(not problems, problems)


def restore(settings: Settings, directory: Path, force: bool = False) -> dict[str, Any]:
    """Restore a verified backup into this appliance's empty data dir and database; with
    `force`, over the database and knowledge that are there (web and scheduler stopped)."""
    check = verify(directory)
    if not check.ok:
        raise InvalidRequest("the backup does not verify: " + "; ".join(check.problems),
                             code="backup_invalid")
    manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    engine = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest["engine"] != engine:
        raise InvalidRequest(f"the backup is of a {manifest['engine']} database; this "
                             f"appliance's database_url is {engine}", code="backup_engine")
    known = max((m.version for m in available()), default=0)
    if manifest["schema"] > known:
        raise InvalidRequest(
            f"the backup's schema ({manifest['schema']}, appliance {manifest['appliance']}) is "
            f"newer than this appliance knows ({known}, appliance {__version__}): restore it "
            "with that release or a later one", code="backup_schema_newer")
    knowledge = settings.data_dir / "knowledge"
    secret = settings.data_dir / "secret_key"
    if not force and ((knowledge.exists() and any(knowledge.iterdir())) or (
            manifest["includes_secrets"] and secret.exists())):
        raise Conflict(f"{settings.data_dir} is not empty: restore into a new data dir, or "
                       "pass --force to replace what is there", code="restore_not_empty")
    if engine == "sqlite":
        target = sqlite_path(settings)
        if target.exists() and not force:
            raise Conflict(f"{target} exists: restore into a new data dir, or pass --force "
                           "to replace it", code="restore_not_empty")
        target.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{directory / SQLITE_FILE}?mode=ro&immutable=1",
                                     uri=True)
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)
        finally:
            copy.close()
            source.close()
    else:
        db = open_database(settings.database_url)
        with db.connection_context():
            if db.get_tables() and not force:
                raise Conflict("the database is not empty: restore into a new one, or pass "
                               "--force to replace it", code="restore_not_empty")
        # --clean: with force, every object in the dump is dropped before it is recreated.
        _run(["pg_restore", "--no-owner", "--exit-on-error", "--clean", "--if-exists",
              f"--dbname={settings.database_url}", str(directory / PG_FILE)])
    # The knowledge is replaced only once the database is: a restore that fails before leaves
    # the data dir's knowledge as it was.
    if force:
        shutil.rmtree(knowledge, ignore_errors=True)
    if (directory / "knowledge").is_dir():
        shutil.copytree(directory / "knowledge", knowledge, dirs_exist_ok=True)
    if manifest["includes_secrets"]:
        secrets = json.loads((directory / SECRETS_FILE).read_text())
        write_private(secret, secrets["secret_key"] + "\n")
    return manifest


def _files(directory: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under `directory` but the manifest, by relative path."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            found[str(path.relative_to(directory))] = {"sha256": digest,
                                                       "bytes": path.stat().st_size}
    return found


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        # The command line holds the database URL: name the tool, not its arguments.
        raise InvalidRequest(f"{command[0]} failed: {done.stderr.strip()[-500:]}",
                             code="backup_tool_failed")
