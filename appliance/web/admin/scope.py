"""What a signed-in user may see: every brand, or only the one their account is scoped to.

Another brand's resources look exactly like missing ones (404), as in the API.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    found = services_of_app().conversations.find(public_id)
    if found is None or (user.brand_id is not None and found.brand.id != user.brand_id):
        raise NotFound(f"no conversation {public_id!r}", code="conversation_not_found")
    return found


def pending_handoffs(user: AdminUser) -> list[Handoffs]:
    """Per brand this user may see, the conversations the agent handed to a human."""
    conversations = services_of_app().conversations
    waiting = conversations.waiting_for_human(user.brand_id)
    return [Handoffs(brand, waiting[brand.id],
                     conversations.latest_waiting_for_human(brand.id, HANDOFFS_LISTED))
            for brand in sorted(visible_brands(user), key=lambda brand: brand.name)
            if brand.id in waiting]
