"""The audit log of admin changes (admin pages and CLI alike)."""

from __future__ import annotations

from typing import Any

from appliance.db.models import AuditLog


def record(
    actor: str, action: str, target: str, detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> AuditLog:
    """Append one entry. Call inside the same transaction as the change it describes."""
    return AuditLog.create(
        actor=actor, action=action, target=target, detail=detail, remote_addr=remote_addr
    )


def recent(limit: int = 100) -> list[AuditLog]:
    return list(AuditLog.select().order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit))
