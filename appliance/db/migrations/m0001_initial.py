"""Brands, API keys, admin users, audit log, conversations, messages, turn traces, job runs."""

from __future__ import annotations

import peewee


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        slug = peewee.CharField(max_length=64, unique=True)
        name = peewee.CharField(max_length=200)
        persona = peewee.TextField()
        policy = peewee.TextField()
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()

    class ApiKey(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        name = peewee.CharField(max_length=200)
        prefix = peewee.CharField(max_length=16)
        key_hash = peewee.CharField(max_length=64, unique=True)
        created_at = peewee.DateTimeField()
        last_used_at = peewee.DateTimeField(null=True)
        revoked_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "api_key"

    class AdminUser(Base):
        username = peewee.CharField(max_length=150, unique=True)
        password_hash = peewee.CharField(max_length=255)
        role = peewee.CharField(max_length=32)
        brand = peewee.ForeignKeyField(Brand, null=True, on_delete="CASCADE")
        created_at = peewee.DateTimeField()
        last_login_at = peewee.DateTimeField(null=True)
        disabled = peewee.BooleanField(default=False)

        class Meta:
            table_name = "admin_user"

    class AuditLog(Base):
        at = peewee.DateTimeField(index=True)
        actor = peewee.CharField(max_length=150)
        action = peewee.CharField(max_length=100)
        target = peewee.CharField(max_length=200)
        detail = peewee.TextField(null=True)
        remote_addr = peewee.CharField(max_length=64, null=True)

        class Meta:
            table_name = "audit_log"

    class Conversation(Base):
        public_id = peewee.CharField(max_length=40, unique=True)
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        customer = peewee.TextField()
        channel = peewee.CharField(max_length=32)
        status = peewee.CharField(max_length=32, index=True)
        status_reason = peewee.CharField(max_length=200, null=True)
        created_at = peewee.DateTimeField(index=True)
        updated_at = peewee.DateTimeField()
        closed_at = peewee.DateTimeField(null=True)

    class Message(Base):
        public_id = peewee.CharField(max_length=40, unique=True)
        conversation = peewee.ForeignKeyField(Conversation, on_delete="CASCADE")
        role = peewee.CharField(max_length=16)
        text = peewee.TextField()
        model = peewee.CharField(max_length=100, null=True)
        created_at = peewee.DateTimeField()

    class TurnTrace(Base):
        conversation = peewee.ForeignKeyField(Conversation, on_delete="CASCADE")
        customer_message = peewee.ForeignKeyField(Message, on_delete="CASCADE", backref="+")
        agent_message = peewee.ForeignKeyField(Message, on_delete="CASCADE", backref="+")
        model = peewee.CharField(max_length=100)
        fallback = peewee.BooleanField(default=False)
        prompt_tokens = peewee.IntegerField()
        completion_tokens = peewee.IntegerField()
        latency_ms = peewee.TextField()
        decision = peewee.TextField()
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "turn_trace"

    class JobRun(Base):
        job_id = peewee.CharField(max_length=100, index=True)
        started_at = peewee.DateTimeField()
        finished_at = peewee.DateTimeField(null=True)
        status = peewee.CharField(max_length=16)
        detail = peewee.TextField(null=True)

        class Meta:
            table_name = "job_run"

    return [Brand, ApiKey, AdminUser, AuditLog, Conversation, Message, TurnTrace, JobRun]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)


def down(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
