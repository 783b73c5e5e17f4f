"""`appliance users passwd|disable|enable|set-brand|unlock|list`, on the test's database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

from appliance.db.models import AdminSession, AdminUser, AuditLog
from appliance.errors import InvalidRequest
from appliance.services import Services

Invoke = Callable[..., Result]
PASSWORD = "correct horse battery"


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def signed_in(services: Services, username: str) -> str:
    """A session token of `username`, as the sign-in page starts one."""
    return services.sessions.start(services.users.named(username), "127.0.0.1")


def test_it_sets_a_password_and_ends_the_users_sessions(
    invoke: Invoke, services: Services, seeded: dict[str, Any], tmp_path: Path
) -> None:
    services.users.create("vic", PASSWORD, "viewer", actor="test")
    token = signed_in(services, "vic")
    password = tmp_path / "password"
    password.write_text("a brand new password\n")

    ok(invoke("users", "passwd", "vic", "--password-file", str(password)))

    assert services.users.authenticate("vic", "a brand new password") is not None
    assert services.sessions.user_of(token) is None
    assert AuditLog.get(AuditLog.action == "user.set_password").target == "vic"


def test_it_disables_and_enables_a_user(
    invoke: Invoke, services: Services, seeded: dict[str, Any]
) -> None:
    services.users.create("vic", PASSWORD, "viewer", actor="test")
    token = signed_in(services, "vic")

    ok(invoke("users", "disable", "vic"))

    assert services.users.authenticate("vic", PASSWORD) is None
    assert AdminSession.select().count() == 0
    assert services.sessions.user_of(token) is None
    assert "disabled" in ok(invoke("users", "list"))
    ok(invoke("users", "enable", "vic"))
    assert services.users.authenticate("vic", PASSWORD) is not None


def test_it_gives_an_unscoped_agent_a_brand_and_refuses_to_take_it_away(
    invoke: Invoke, services: Services, seeded: dict[str, Any]
) -> None:
    AdminUser.create(username="old-agent", role="human_agent", password_hash="x")
    assert "none (signs in to nothing)" in ok(invoke("users", "list"))

    ok(invoke("users", "set-brand", "old-agent", "rho-bank"))
    refused = invoke("users", "set-brand", "old-agent", "all")

    assert services.users.named("old-agent").brand.slug == "rho-bank"
    assert refused.exit_code == 1
    assert isinstance(refused.exception, InvalidRequest)


def test_it_refuses_a_human_agent_without_a_brand(
    invoke: Invoke, seeded: dict[str, Any], tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text(PASSWORD)

    refused = invoke("users", "create", "ana", "--role", "human_agent",
                     "--password-file", str(password))

    assert refused.exit_code == 1
    assert isinstance(refused.exception, InvalidRequest)
    assert refused.exception.param == "brand"


def test_it_lists_and_lifts_a_lock_out(
    invoke: Invoke, services: Services, seeded: dict[str, Any]
) -> None:
    for _ in range(services.settings.login_max_failures):
        services.login_throttle.failed("admin", "10.0.0.7")
    listed = ok(invoke("users", "list")).splitlines()
    assert any(line.split()[:3] == ["username", "admin", "5"] for line in listed)

    assert "lifted" in ok(invoke("users", "unlock", "admin"))
    again = invoke("users", "unlock", "admin")

    assert again.exit_code == 1
    assert services.login_throttle.lockouts() == []
