"""The peewee models: the current schema. Migrations in `migrations/` create and change it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import peewee

from appliance.db import database_proxy


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class JSONField(peewee.TextField):
    """JSON stored as text: portable across SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    id = peewee.AutoField()

    class Meta:
        database = database_proxy


class Brand(BaseModel):
    slug = peewee.CharField(max_length=64, unique=True)
    name = peewee.CharField(max_length=200)
    persona = JSONField()
    policy = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "brand"


class ApiKey(BaseModel):
    brand = peewee.ForeignKeyField(Brand, backref="api_keys", on_delete="CASCADE")
    brand_id: int
    name = peewee.CharField(max_length=200)
    prefix = peewee.CharField(max_length=16)
    key_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_key"


class AdminUser(BaseModel):
    username = peewee.CharField(max_length=150, unique=True)
    password_hash = peewee.CharField(max_length=255)
    role = peewee.CharField(max_length=32)
    brand = peewee.ForeignKeyField(Brand, null=True, backref="users", on_delete="CASCADE")
    brand_id: int | None
    created_at = peewee.DateTimeField(default=utcnow)
    last_login_at = peewee.DateTimeField(null=True)
    disabled = peewee.BooleanField(default=False)

    class Meta:
        table_name = "admin_user"


class AuditLog(BaseModel):
    at = peewee.DateTimeField(default=utcnow, index=True)
    actor = peewee.CharField(max_length=150)
    action = peewee.CharField(max_length=100)
    target = peewee.CharField(max_length=200)
    detail = JSONField(null=True)
    remote_addr = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "audit_log"


class Conversation(BaseModel):
    public_id = peewee.CharField(max_length=40, unique=True)
    brand = peewee.ForeignKeyField(Brand, backref="conversations", on_delete="CASCADE")
    brand_id: int
    customer = JSONField()
    channel = peewee.CharField(max_length=32)
    status = peewee.CharField(max_length=32, index=True)
    status_reason = peewee.CharField(max_length=200, null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow)
    closed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "conversation"


class Message(BaseModel):
    public_id = peewee.CharField(max_length=40, unique=True)
    conversation = peewee.ForeignKeyField(Conversation, backref="messages", on_delete="CASCADE")
    conversation_id: int
    role = peewee.CharField(max_length=16)
    text = peewee.TextField()
    model = peewee.CharField(max_length=100, null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "message"


class TurnTrace(BaseModel):
    conversation = peewee.ForeignKeyField(Conversation, backref="traces", on_delete="CASCADE")
    customer_message = peewee.ForeignKeyField(Message, on_delete="CASCADE", backref="+")
    agent_message = peewee.ForeignKeyField(Message, on_delete="CASCADE", backref="+")
    conversation_id: int
    customer_message_id: int
    agent_message_id: int
    model = peewee.CharField(max_length=100)
    fallback = peewee.BooleanField(default=False)
    prompt_tokens = peewee.IntegerField()
    completion_tokens = peewee.IntegerField()
    latency_ms = JSONField()
    decision = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "turn_trace"


class JobRun(BaseModel):
    job_id = peewee.CharField(max_length=100, index=True)
    started_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)
    status = peewee.CharField(max_length=16)
    detail = JSONField(null=True)

    class Meta:
        table_name = "job_run"


ALL_MODELS: tuple[type[BaseModel], ...] = (
    Brand, ApiKey, AdminUser, AuditLog, Conversation, Message, TurnTrace, JobRun,
)
