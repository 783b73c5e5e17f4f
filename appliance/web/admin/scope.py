"""What a signed-in user may see: every brand, or only the one their account is scoped to.

Another brand's resources look exactly like missing ones (404), as in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import peewee

from appliance.agent.conversations import PENDING_HUMAN
from appliance.db.models import AdminUser, Brand, Conversation
from appliance.errors import NotFound
from appliance.web import services_of_app

#: Conversations listed per brand among those waiting for a human (the count covers all).
HANDOFFS_LISTED = 10


@dataclass(frozen=True)
class Handoffs:
    """A brand's conversations waiting for a human: how many, and the latest few."""

    brand: Brand
    count: int
    latest: list[Conversation]


def visible_brands(user: AdminUser) -> list[Brand]:
    return [
        brand for brand in services_of_app().brands.all()
        if user.brand_id is None or brand.id == user.brand_id
    ]


def brand_for(user: AdminUser, slug: str) -> Brand:
    """The brand `slug` if this user may see it; NotFound otherwise."""
    brand = services_of_app().brands.get(slug)
    if user.brand_id is not None and brand.id != user.brand_id:
        raise NotFound(f"no brand {slug!r}", code="brand_not_found")
    return brand


def recent_conversations(user: AdminUser, limit: int = 20) -> list[Conversation]:
    """The most recently active conversations this user may see."""
    return services_of_app().conversations.recent(limit, brand_id=user.brand_id)


def conversation_for(user: AdminUser, public_id: str) -> Conversation:
    """The conversation `public_id` if it belongs to a brand this user may see."""
    row = (
        Conversation.select(Conversation, Brand).join(Brand)
        .where(Conversation.public_id == public_id).first()
    )
    if row is None or (user.brand_id is not None and row.brand.id != user.brand_id):
        raise NotFound(f"no conversation {public_id!r}", code="conversation_not_found")
    return services_of_app().conversations.get(row.brand, public_id)


def pending_handoffs(user: AdminUser) -> list[Handoffs]:
    """Per brand this user may see, the conversations the agent handed to a human."""
    counts = (
        Conversation.select(Conversation.brand, peewee.fn.COUNT(Conversation.id))
        .where(Conversation.status == PENDING_HUMAN).group_by(Conversation.brand)
    )
    if user.brand_id is not None:
        counts = counts.where(Conversation.brand == user.brand_id)
    waiting = dict(cast(list[tuple[int, int]], list(counts.tuples())))
    found = []
    for brand in sorted(visible_brands(user), key=lambda brand: brand.name):
        if brand.id not in waiting:
            continue
        latest = list(
            Conversation.select().where(
                (Conversation.brand == brand.id) & (Conversation.status == PENDING_HUMAN))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(HANDOFFS_LISTED)
        )
        found.append(Handoffs(brand, waiting[brand.id], latest))
    return found
