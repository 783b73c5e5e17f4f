"""The one settings registry.

Each setting is a field of `Settings` with a default and help text. Sources, later wins:
defaults < the TOML file (`APPLIANCE_CONFIG`, default /etc/appliance/appliance.toml) <
`APPLIANCE_<NAME>` environment variables. A secret may also come from a file named by
`APPLIANCE_<NAME>_FILE` (systemd credentials, Ansible-managed files). Settings are parsed and
validated once, in `load_settings`; anything wrong raises `ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import secrets
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from appliance.errors import ConfigError

ENV_PREFIX = "APPLIANCE_"
DEFAULT_CONFIG_FILE = Path("/etc/appliance/appliance.toml")
_CHECKOUT = Path(__file__).resolve().parent.parent


def _in_checkout() -> bool:
    """True when running from a source checkout (the package sits beside pyproject.toml)."""
    return (_CHECKOUT / "pyproject.toml").is_file()


def _setting(default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Every setting of the appliance. Empty-string defaults are derived in `load_settings`."""

    data_dir: Path = _setting(
        Path(""), "Directory for all state (database, secrets, indexes). Default: ./var in a "
        "checkout, /var/lib/appliance on a box."
    )
    database_url: str = _setting(
        "", "Database URL: sqlite:///PATH or postgresql://USER:PASS@HOST/DB. "
        "Default: SQLite in WAL mode at DATA_DIR/appliance.db.", secret=True
    )
    secret_key: str = _setting(
        "", "Key that signs admin sessions, CSRF tokens and widget tokens. Default: generated "
        "once into DATA_DIR/secret_key.", secret=True
    )
    bind: str = _setting("127.0.0.1:8080", "Address gunicorn listens on (HOST:PORT).")
    health_bind: str = _setting(
        "127.0.0.1:8081", "Address (HOST:PORT) on which gunicorn's master process answers "
        "GET /healthz for load balancers and monitors, apart from the request threads, so "
        "that a probe never waits behind customers' turns; empty turns it off."
    )
    web_workers: int = _setting(2, "gunicorn worker processes.")
    web_threads: int = _setting(8, "Threads per gunicorn worker (gthread; streams hold one).")
    web_timeout_s: int = _setting(120, "gunicorn worker timeout in seconds.")
    model_store: Path = _setting(
        Path(""), "Directory holding manifest.toml and model files. Default: ./model_store in a "
        "checkout, /opt/appliance/model_store on a box."
    )
    model_profile: str = _setting("cpu", "Model profile from the manifest: cpu or gpu.")
    reply_models: tuple[str, ...] = _setting(
        (), "Ordered model ids for the reply task, everyday replies (the first that answers "
        "wins; reply_large, extraction and summary keep the manifest's routes). A model with "
        "replicas stands for it and them, as in the manifest's routes. "
        "Default: the profile's list in the manifest."
    )
    llm_threads: int = _setting(2, "CPU threads per in-process llama.cpp model.")
    llm_decode_niceness: int = _setting(
        10, "How much lower (Linux nice, 0 to 19) an in-process llama.cpp model generates "
        "than the web requests are served: on cores the model saturates, workflow steps and "
        "template replies get the CPU first. 0: the same priority."
    )
    llm_timeout_s: float = _setting(
        60.0, "Seconds one reply may take in all, fallbacks included. Each model gets what is "
        "left (capped by its manifest timeout_s); while later models could still answer, one "
        "that sends no text within its share of what is left is passed over for the next."
    )
    llm_breaker_failures: int = _setting(
        3, "Consecutive timeouts or failures after which a model's circuit opens: the router "
        "passes the model over without calling it until the cooldown ends."
    )
    llm_breaker_cooldown_s: float = _setting(
        30.0, "Seconds a model's open circuit waits before one trial call; success closes it, "
        "failure opens it again."
    )
    llm_max_reply_tokens: int = _setting(200, "Most tokens in one generated reply.")
    llm_queue_depth: int = _setting(
        4, "Model calls that may wait for a model per web worker, beyond those generating. "
        "A turn that needs the model when its queue is full, or when its expected wait "
        "exceeds the turn's budget (llm_timeout_s), gets 503 overloaded with Retry-After; "
        "turns that need no model (workflow steps, templates, handoffs) never queue."
    )
    llm_http_slots: int = _setting(
        8, "Generations one web worker runs at once on a model served over HTTP (vLLM or a "
        "llama.cpp server batch them); an in-process llama.cpp model runs one at a time."
    )
    max_message_chars: int = _setting(4000, "Longest customer message accepted, in characters.")
    max_request_bytes: int = _setting(64 * 1024, "Largest HTTP request body accepted.")
    rate_limit_key_per_minute: int = _setting(
        600, "Requests per minute one brand API key may make to /v1 (a token bucket holding a "
        "minute's worth, shared by all workers and nodes); over it: 429 rate_limited with "
        "Retry-After. 0: no limit. A brand's policy (rate_limits) may set its own."
    )
    rate_limit_token_per_minute: int = _setting(
        60, "The same per widget token (one customer's conversation in the public widget)."
    )
    rate_limit_address_per_minute: int = _setting(
        300, "The same per client address and brand (the public widget's opening of "
        "conversations included), except the addresses in rate_limit_exempt."
    )
    events_streams_max: int = _setting(
        4, "Event streams (/v1/conversations/{id}/events) one web worker holds at once; keep "
        "it below web_threads so that requests, /healthz included, always find a thread. "
        "Beyond it: 503 overloaded with Retry-After."
    )
    events_streams_per_caller: int = _setting(
        2, "Event streams one API key or widget token holds at once per web worker; beyond "
        "it: 429 rate_limited with Retry-After."
    )
    rate_limit_exempt: tuple[str, ...] = _setting(
        ("127.0.0.1/32", "::1/128"), "Addresses and networks (CIDR) never limited per address "
        "(their keys and widget tokens still are). Behind a reverse proxy, list it in "
        "trusted_proxies so that each customer is limited by their own address."
    )
    trusted_proxies: tuple[str, ...] = _setting(
        (), "Addresses and networks (CIDR) of the reverse proxies in front of the appliance. "
        "A request from one of them is judged by the client its X-Forwarded-For names (the "
        "rightmost hop that is not a trusted proxy): rate limits, "
        "the sign-in throttle, metrics_allow and the audit then see each customer's address. "
        "Empty: the headers are ignored and the connecting address is the client."
    )
    knowledge_import_dirs: tuple[str, ...] = _setting(
        (), "Where knowledge exports are read from: a brand's sources must lie in "
        "<dir>/<slug>/ under one of these, whoever registers them (admin pages or CLI). "
        "Default: DATA_DIR/imports."
    )
    demo_retail_url: str = _setting(
        "http://127.0.0.1:8090", "Where the demo brand Lumen Goods' order system "
        "(`appliance demo-backend retail`) listens; `appliance demo seed` points the brand's "
        "tools at it."
    )
    demo_bank_url: str = _setting(
        "http://127.0.0.1:8091", "Where the demo brand Rho-Bank's systems "
        "(`appliance demo-backend bank`) listen; `appliance demo seed` points the brand's "
        "tools at them."
    )
    conversation_idle_close_minutes: int = _setting(
        24 * 60, "The scheduler closes active conversations idle for this long."
    )
    webhook_timeout_s: float = _setting(
        10.0, "Seconds one webhook delivery attempt may take (connecting, sending and each "
        "wait for the receiver); a slower receiver counts as a failed attempt."
    )
    webhook_max_attempts: int = _setting(
        8, "Attempts per webhook delivery before it is marked failed (retries back off "
        "exponentially from 30 seconds to at most an hour)."
    )
    webhook_console_url: str = _setting(
        "", "Base URL at which the brands' human agents reach the admin console, e.g. "
        "https://switchboard.example.internal; webhook payloads link each conversation's page "
        "under it. Default: the links are paths (/admin/conversations/ID)."
    )
    evals_nightly_hour: int = _setting(
        2, "Hour of the day (UTC, 0-23) at which the scheduler runs every brand's eval suites "
        "against what is live (the evals.nightly job)."
    )
    log_level: str = _setting("INFO", "Log level: DEBUG, INFO, WARNING or ERROR.")
    log_format: str = _setting(
        "text", "Log lines as text or as json (one JSON object a line, for the journal and log "
        "pipelines); both carry the request id, brand and conversation id where known."
    )
    metrics_allow: tuple[str, ...] = _setting(
        ("127.0.0.1/32", "::1/128"), "Addresses and networks (CIDR) that may read /metrics "
        "without a token. Behind a reverse proxy the address judged is the client's when the "
        "proxy is in trusted_proxies, the proxy's otherwise."
    )
    metrics_token: str = _setting(
        "", "Bearer token that reads /metrics from any address (Authorization: Bearer TOKEN). "
        "Default: none, only metrics_allow.", secret=True
    )
    tls_in_front: bool = _setting(
        False, "TLS terminates in front of the appliance (a reverse proxy serves HTTPS): "
        "responses then carry Strict-Transport-Security and the admin session cookie is "
        "marked Secure. Leave off while the admin is reached over plain HTTP."
    )
    login_max_failures: int = _setting(
        5, "Failed admin sign-ins for one username after which its sign-ins are refused (429, "
        "login_throttled) for login_lockout_s; each further failure doubles the wait, up to "
        "login_lockout_max_s. An it_admin lifts it (`appliance users unlock`, the users page)."
    )
    login_max_failures_per_address: int = _setting(
        20, "The same, per client address (higher: an office may share one address)."
    )
    login_lockout_s: int = _setting(60, "Seconds of the first sign-in lock-out.")
    login_lockout_max_s: int = _setting(3600, "Longest sign-in lock-out, in seconds.")
    login_failure_window_s: int = _setting(
        900, "Seconds after the last failed sign-in at which a username's or an address's "
        "failures are forgotten."
    )
    session_idle_minutes: int = _setting(
        30, "An admin session unused for this long ends; the user signs in again."
    )
    session_max_hours: int = _setting(
        12, "An admin session ends this long after sign-in, however busy."
    )
    node_name: str = _setting(
        "", "This node's name: job runs record it, and `appliance scheduler status` names the "
        "leader and the standbys by it (several nodes on one database). Default: the host name."
    )
    backup_keep: int = _setting(
        7, "Scheduled backups (`appliance backup create` without --out, run by "
        "appliance-backup.timer) kept in DATA_DIR/backups; older ones are deleted."
    )
    scheduler_metrics_port: int = _setting(
        9465, "Loopback port on which the scheduler process serves its own Prometheus metrics "
        "(jobs); 0 turns it off."
    )

    def public_items(self) -> list[tuple[str, str, str]]:
        """(name, value, help) for every setting, secrets redacted."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = _redact(f.name, value) if f.metadata["secret"] else _format(value)
            rows.append((f.name, shown, f.metadata["help"]))
        return rows

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def model_verify_cache(self) -> Path:
        """Where model checks remember the files that matched (size, mtime, sha256), so that
        multi-GB weights are hashed once, not at every start or check."""
        return self.data_dir / "model-verify.json"


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _redact(name: str, value: Any) -> str:
    if not value:
        return ""
    if name == "database_url":
        parts = urlsplit(str(value))
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return str(value)
    return "***"


def _parse(name: str, kind: str, raw: Any) -> Any:
    """Coerce a TOML value or an environment string to the field's type."""
    try:
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "Path":
            return Path(str(raw)).expanduser()
        if kind == "tuple[str, ...]":
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if kind == "str" and isinstance(raw, str):
            return raw
        raise ValueError
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: cannot read {raw!r} as {kind}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc


def load_settings(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read and validate settings once: defaults < TOML file < environment < `overrides`."""
    env = os.environ if env is None else env
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    config_file = Path(env.get(f"{ENV_PREFIX}CONFIG", str(DEFAULT_CONFIG_FILE)))
    explicit_file = f"{ENV_PREFIX}CONFIG" in env
    if config_file.is_file():
        for key, raw in _read_toml(config_file).items():
            if key not in fields:
                raise ConfigError(f"config file {config_file}: unknown setting {key!r}")
            values[key] = _parse(key, str(fields[key].type), raw)
    elif explicit_file:
        raise ConfigError(f"config file {config_file} (from {ENV_PREFIX}CONFIG) does not exist")

    for name, f in fields.items():
        var = f"{ENV_PREFIX}{name.upper()}"
        if var in env:
            values[name] = _parse(name, str(f.type), env[var])
        elif f"{var}_FILE" in env:
            if not f.metadata["secret"]:
                raise ConfigError(f"{var}_FILE: only secrets may be read from a file")
            secret_path = Path(env[f"{var}_FILE"])
            try:
                values[name] = secret_path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{var}_FILE: cannot read {secret_path}") from exc

    for key, raw in (overrides or {}).items():
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _parse(key, str(fields[key].type), raw)

    settings = Settings(**values)
    return _derive(settings)


def _derive(settings: Settings) -> Settings:
    """Fill derived defaults and check values that depend on each other."""
    changes: dict[str, Any] = {}
    data_dir = settings.data_dir
    if str(data_dir) in ("", "."):
        data_dir = _CHECKOUT / "var" if _in_checkout() else Path("/var/lib/appliance")
    data_dir = data_dir.resolve()
    changes["data_dir"] = data_dir
    if not settings.database_url:
        changes["database_url"] = f"sqlite:///{data_dir / 'appliance.db'}"
    if not settings.node_name:
        changes["node_name"] = socket.gethostname()
    if not settings.knowledge_import_dirs:
        changes["knowledge_import_dirs"] = (str(data_dir / "imports"),)
    if str(settings.model_store) in ("", "."):
        changes["model_store"] = (
            _CHECKOUT / "model_store" if _in_checkout() else Path("/opt/appliance/model_store")
        )
    if settings.model_profile not in ("cpu", "gpu"):
        raise ConfigError("setting 'model_profile': must be 'cpu' or 'gpu'")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("setting 'log_level': must be DEBUG, INFO, WARNING or ERROR")
    url = changes.get("database_url", settings.database_url)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("setting 'database_url': must start with sqlite:/// or postgresql://")
    for name in ("web_workers", "web_threads", "web_timeout_s", "llm_threads",
                 "llm_max_reply_tokens", "max_message_chars", "max_request_bytes",
                 "conversation_idle_close_minutes", "llm_breaker_failures",
                 "webhook_max_attempts", "login_max_failures",
                 "login_max_failures_per_address", "login_lockout_s", "login_lockout_max_s",
                 "login_failure_window_s", "session_idle_minutes", "session_max_hours",
                 "llm_http_slots", "events_streams_max", "events_streams_per_caller",
                 "backup_keep"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"setting {name!r}: must be at least 1")
    for name in ("llm_timeout_s", "llm_breaker_cooldown_s", "webhook_timeout_s"):
        if not (math.isfinite(getattr(settings, name)) and getattr(settings, name) > 0):
            raise ConfigError(f"setting {name!r}: must be a positive number of seconds")
    if settings.webhook_console_url and not settings.webhook_console_url.startswith(
            ("http://", "https://")):
        raise ConfigError("setting 'webhook_console_url': must start with http:// or https://")
    if settings.log_format not in ("text", "json"):
        raise ConfigError("setting 'log_format': must be text or json")
    for name in ("metrics_allow", "rate_limit_exempt"):
        for network in getattr(settings, name):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigError(f"setting {name!r}: {network!r} is not an address or a "
                                  "network") from exc
    for name in ("rate_limit_key_per_minute", "rate_limit_token_per_minute",
                 "rate_limit_address_per_minute", "llm_queue_depth"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"setting {name!r}: must be 0 or more")
    if not 0 <= settings.scheduler_metrics_port <= 65535:
        raise ConfigError("setting 'scheduler_metrics_port': must be a port from 0 to 65535")
    if not 0 <= settings.llm_decode_niceness <= 19:
        raise ConfigError("setting 'llm_decode_niceness': must be from 0 to 19")
    if not 0 <= settings.evals_nightly_hour <= 23:
        raise ConfigError("setting 'evals_nightly_hour': must be an hour from 0 to 23")
    return dataclasses.replace(settings, **changes)


def ensure_secret_key(settings: Settings) -> Settings:
    """Return settings with a secret key, generating DATA_DIR/secret_key (0600) on first use."""
    if settings.secret_key:
        return settings
    path = settings.data_dir / "secret_key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        # link() fails if another process won the race; both then read the winner's key.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return dataclasses.replace(settings, secret_key=path.read_text().strip())
