"""Brands and their API keys: keys are shown once and stored hashed, revocable, and every
change is audited."""

from __future__ import annotations

import hashlib
from typing import Any

import peewee
import pytest

from appliance import audit
from appliance.brands import KEY_PREFIX, Persona, Policy, persona_of, policy_of, validated
from appliance.db.models import ApiKey, AuditLog, Brand
from appliance.errors import AuthenticationError, Conflict, InvalidRequest, NotFound
from appliance.services import Services

PERSONA = Persona(agent_name="Juniper", tone="Warm and brief.", greeting="Hi, I'm Juniper!")


def _create(services: Services, slug: str = "acme", name: str = "Acme") -> Brand:
    return services.brands.create(slug, name, PERSONA, actor="tester")


def _actions(target: str) -> list[str]:
    return [entry.action for entry in
            AuditLog.select().where(AuditLog.target == target).order_by(AuditLog.id)]


def _every_stored_value(db: peewee.Database) -> list[str]:
    """Every value in every table, as text."""
    values = []
    for table in db.get_tables():
        cursor = db.execute_sql(f'SELECT * FROM "{table}"')
        values += [str(value) for row in cursor.fetchall() for value in row]
    return values


def test_it_stores_keys_hashed_never_in_plaintext(services: Services, db: peewee.Database) -> None:
    _create(services)

    key, token = services.brands.create_key("acme", "website", actor="tester")

    assert token.startswith(KEY_PREFIX)
    stored = ApiKey.get_by_id(key.id)
    assert stored.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.prefix == token[: len(KEY_PREFIX) + 6]
    assert not any(token in value for value in _every_stored_value(db))


def test_it_shows_a_key_only_when_it_is_created(services: Services) -> None:
    _create(services)
    _, token = services.brands.create_key("acme", actor="tester")

    listed = services.brands.keys("acme")

    assert len(listed) == 1
    shown = [str(value) for value in listed[0].__data__.values()]
    assert not any(token in value for value in shown)
    assert not any(token in str(entry.detail) for entry in audit.recent())


def test_it_makes_every_key_different(services: Services) -> None:
    _create(services)

    tokens = {services.brands.create_key("acme", actor="tester")[1] for _ in range(5)}

    assert len(tokens) == 5
    assert all(len(token) > 40 for token in tokens)


def test_it_authenticates_a_live_key_to_its_brand(services: Services) -> None:
    _create(services, "acme")
    _create(services, "globex", "Globex")
    _, acme_token = services.brands.create_key("acme", actor="tester")
    key, globex_token = services.brands.create_key("globex", actor="tester")

    assert services.brands.authenticate(acme_token).slug == "acme"
    assert services.brands.authenticate(globex_token).slug == "globex"
    assert ApiKey.get_by_id(key.id).last_used_at is not None


@pytest.mark.parametrize("token", [
    "", "hunter2", KEY_PREFIX, KEY_PREFIX + "x" * 43, "Bearer " + KEY_PREFIX + "x" * 43,
])
def test_it_refuses_a_key_it_never_issued(services: Services, token: str) -> None:
    _create(services)
    services.brands.create_key("acme", actor="tester")

    with pytest.raises(AuthenticationError):
        services.brands.authenticate(token)


def test_it_refuses_a_revoked_key(services: Services) -> None:
    _create(services)
    key, token = services.brands.create_key("acme", actor="tester")
    _, other = services.brands.create_key("acme", actor="tester")

    revoked = services.brands.revoke_key("acme", key.id, actor="tester")

    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError):
        services.brands.authenticate(token)
    assert services.brands.authenticate(other).slug == "acme", "other keys keep working"


def test_it_revokes_only_keys_of_the_named_brand(services: Services) -> None:
    _create(services, "acme")
    _create(services, "globex", "Globex")
    key, token = services.brands.create_key("acme", actor="tester")

    with pytest.raises(NotFound):
        services.brands.revoke_key("globex", key.id, actor="tester")

    assert services.brands.authenticate(token).slug == "acme"


@pytest.mark.parametrize("slug", ["a", "acme", "lumen-goods", "a1-b2", "x" * 64])
def test_it_accepts_a_good_slug(services: Services, slug: str) -> None:
    assert _create(services, slug).slug == slug


@pytest.mark.parametrize("slug", [
    "", "Acme", "has space", "-lead", "trail-", "under_score", "dot.ted", "x" * 65, "acme/../x",
])
def test_it_rejects_a_bad_slug(services: Services, slug: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _create(services, slug)

    assert caught.value.param == "slug"
    assert Brand.select().count() == 0


def test_it_rejects_a_blank_name(services: Services) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _create(services, "acme", "   ")

    assert caught.value.param == "name"


def test_it_refuses_a_duplicate_slug(services: Services) -> None:
    _create(services, "acme")

    with pytest.raises(Conflict) as caught:
        _create(services, "acme", "Another Acme")

    assert caught.value.code == "brand_exists"
    assert caught.value.status == 409
    assert [b.name for b in Brand.select()] == ["Acme"]
    assert _actions("acme") == ["brand.create"]


def test_it_answers_an_unknown_brand_with_not_found(services: Services) -> None:
    with pytest.raises(NotFound) as caught:
        services.brands.get("nope")

    assert caught.value.code == "brand_not_found"


def test_it_updates_persona_and_policy(services: Services) -> None:
    brand = _create(services)
    persona = PERSONA.model_copy(update={"agent_name": "Ada", "never_say": ("no worries",)})

    services.brands.update("acme", persona=persona, policy=Policy(widget_enabled=False),
                           name="Acme Corp", actor="tester")

    stored = Brand.get_by_id(brand.id)
    assert persona_of(stored) == persona
    assert policy_of(stored).widget_enabled is False
    assert stored.name == "Acme Corp"
    assert stored.updated_at >= brand.updated_at


def test_it_audits_every_change(services: Services) -> None:
    _create(services)
    services.brands.update("acme", name="Acme Corp", actor="editor", remote_addr="10.0.0.7")
    key, _ = services.brands.create_key("acme", "website", actor="it-admin")
    services.brands.revoke_key("acme", key.id, actor="it-admin")
    services.brands.revoke_key("acme", key.id, actor="it-admin")  # already revoked: no entry

    entries = list(AuditLog.select().where(AuditLog.target == "acme").order_by(AuditLog.id))

    assert [(e.actor, e.action) for e in entries] == [
        ("tester", "brand.create"),
        ("editor", "brand.update"),
        ("it-admin", "api_key.create"),
        ("it-admin", "api_key.revoke"),
    ]
    assert entries[0].detail == {"name": "Acme"}
    assert entries[1].detail == {"name": "Acme Corp"}
    assert entries[1].remote_addr == "10.0.0.7"
    assert entries[2].detail == {"key_id": key.id, "name": "website"}
    assert entries[3].detail == {"key_id": key.id}


@pytest.mark.parametrize(("data", "param"), [
    ({"tone": "t", "greeting": "g"}, "agent_name"),
    ({"agent_name": "A", "tone": "t", "greeting": "g", "language": "english"}, "language"),
    ({"agent_name": "A", "tone": "t", "greeting": "g", "mood": "x"}, "mood"),
])
def test_it_names_the_bad_persona_field(data: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validated(Persona, data)

    assert caught.value.param == param
