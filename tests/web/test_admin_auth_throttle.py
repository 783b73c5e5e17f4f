"""Sign-in throttling per username and per address, kept in the database, with lock-outs an
it_admin lifts; failed and successful sign-ins audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.db.models import AuditLog, LoginThrottle, utcnow
from appliance.services import Services

Login = Callable[[FlaskClient, str, str], TestResponse]
WRONG = "not the password"


def fail(client: FlaskClient, login: Login, username: str, times: int) -> TestResponse:
    """`times` sign-ins with a wrong password; the last answer."""
    response = None
    for _ in range(times):
        response = login(client, username, WRONG)
    assert response is not None
    return response


def test_it_refuses_sign_ins_after_the_failures_allowed_with_a_retry_after(
    client: FlaskClient, seeded: dict[str, Any], login: Login, services: Services
) -> None:
    admin = seeded["admin"]
    limit = services.settings.login_max_failures

    assert fail(client, login, admin["username"], limit - 1).status_code == 401
    locking = login(client, admin["username"], WRONG)
    right_password = login(client, admin["username"], admin["password"])

    for response in (locking, right_password):
        assert response.status_code == 429
        assert 'data-code="login_throttled"' in response.get_data(as_text=True)
        assert int(response.headers["Retry-After"]) == services.settings.login_lockout_s


def test_it_doubles_the_lock_out_with_each_failure_after_one_ended(
    client: FlaskClient, seeded: dict[str, Any], login: Login, services: Services
) -> None:
    username = seeded["admin"]["username"]
    fail(client, login, username, services.settings.login_max_failures)
    # The lock-out has ended (moved into the past rather than waited for).
    LoginThrottle.update(locked_until=utcnow() - dt.timedelta(seconds=1)).execute()

    response = login(client, username, WRONG)

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) == 2 * services.settings.login_lockout_s


def test_it_locks_out_an_address_that_tries_many_usernames(
    client: FlaskClient, seeded: dict[str, Any], login: Login, services: Services
) -> None:
    limit = services.settings.login_max_failures_per_address
    for n in range(limit - 1):
        assert login(client, f"guess-{n}", WRONG).status_code == 401

    assert login(client, "one-more", WRONG).status_code == 429
    # Another username from the same address, the right password too.
    refused = login(client, seeded["admin"]["username"], seeded["admin"]["password"])
    assert refused.status_code == 429


def test_it_counts_failures_in_the_database_across_app_instances(
    client_with: Callable[..., FlaskClient], seeded: dict[str, Any], login: Login,
    services: Services,
) -> None:
    """Two apps stand for two gunicorn workers: one counter."""
    username = seeded["admin"]["username"]
    workers = [client_with(), client_with()]
    for attempt in range(services.settings.login_max_failures - 1):
        assert login(workers[attempt % 2], username, WRONG).status_code == 401

    assert login(workers[1], username, WRONG).status_code == 429
    assert login(workers[0], username, seeded["admin"]["password"]).status_code == 429


def test_it_lets_an_it_admin_lift_a_lock_out(
    client: FlaskClient, seeded: dict[str, Any], login: Login, services: Services
) -> None:
    username = seeded["admin"]["username"]
    fail(client, login, username, services.settings.login_max_failures)
    [lockout] = [found for found in services.login_throttle.lockouts()
                 if found.kind == "username"]
    assert lockout.subject == username

    assert services.login_throttle.unlock(username=username, actor="it")

    assert login(client, username, seeded["admin"]["password"]).status_code == 302
    assert AuditLog.get(AuditLog.action == "user.unlock").target == f"user:{username}"


def test_it_forgets_a_usernames_failures_after_a_right_password(
    client: FlaskClient, seeded: dict[str, Any], login: Login, services: Services
) -> None:
    admin = seeded["admin"]
    limit = services.settings.login_max_failures
    fail(client, login, admin["username"], limit - 1)
    assert login(client, admin["username"], admin["password"]).status_code == 302
    client.delete_cookie("session")

    assert fail(client, login, admin["username"], limit - 1).status_code == 401


def test_it_audits_failed_and_successful_sign_ins(
    client: FlaskClient, seeded: dict[str, Any], login: Login
) -> None:
    username = seeded["admin"]["username"]
    login(client, username, WRONG)
    login(client, "correct horse battery", WRONG)  # a password typed as the username
    login(client, username, seeded["admin"]["password"])

    entries = [(e.action, e.target) for e in AuditLog.select().where(
        AuditLog.action.startswith("admin.login")).order_by(AuditLog.id)]
    assert entries == [("admin.login_failed", username),
                       ("admin.login_failed", "(unknown user)"),
                       ("admin.login", username)]


def test_it_forgets_failures_older_than_the_window(
    client: FlaskClient, seeded: dict[str, Any], login: Login, services: Services
) -> None:
    username = seeded["admin"]["username"]
    fail(client, login, username, services.settings.login_max_failures - 1)
    forgotten = dt.timedelta(seconds=services.settings.login_failure_window_s + 1)
    LoginThrottle.update(last_failure_at=utcnow() - forgotten).execute()

    assert login(client, username, WRONG).status_code == 401

    assert [(row.key, row.failures) for row in LoginThrottle.select().order_by(
        LoginThrottle.key)] == [("addr:127.0.0.1", 1), (f"user:{username}", 1)]
