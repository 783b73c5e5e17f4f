"""Who is calling: a brand's API key, or a widget token scoped to one conversation."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from appliance import logs
from appliance.brands import hash_key, policy_of
from appliance.db.models import Brand
from appliance.errors import AuthenticationError, NotFound
from appliance.ratelimit import Limit
from appliance.web import services_of_app
from appliance.web.proxies import address_in

WIDGET_TOKEN_PREFIX = "sbw_"
WIDGET_TOKEN_MAX_AGE_S = 24 * 3600


@dataclass(frozen=True)
class Principal:
    brand: Brand
    #: Set for widget tokens: the only conversation this caller may touch.
    conversation_id: str | None = None
    #: The rate-limit bucket of the key or token ("key:<hash>", "token:<conversation>").
    bucket: str = ""

    def check_conversation(self, public_id: str) -> None:
        """Widget tokens see their own conversation only; others look like missing ones."""
        if self.conversation_id is not None and self.conversation_id != public_id:
            raise NotFound(f"no conversation {public_id!r}", code="conversation_not_found")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services_of_app().settings.secret_key, salt="widget-token")


def widget_token(brand: Brand, conversation_id: str) -> str:
    return WIDGET_TOKEN_PREFIX + _serializer().dumps({"b": brand.id, "c": conversation_id})


def current_principal() -> Principal:
    """The caller, from the Authorization header; its brand joins the request's log lines.
    Each call spends one request of the caller's rate limits (raises RateLimited)."""
    principal = _principal()
    logs.bind(brand=principal.brand.slug)
    own = policy_of(principal.brand).rate_limits
    settings = services_of_app().settings
    per_minute = (_chosen(own.token_per_minute, settings.rate_limit_token_per_minute)
                  if principal.conversation_id is not None
                  else _chosen(own.key_per_minute, settings.rate_limit_key_per_minute))
    limit_request(principal.brand, Limit(principal.bucket, per_minute))
    return principal


def limit_request(brand: Brand, caller: Limit | None = None) -> None:
    """Spend one request of `caller`'s bucket and of the client address's (per brand, unless
    the address is exempt); raise RateLimited (429, Retry-After) when one is empty."""
    services = services_of_app()
    settings = services.settings
    limits = [] if caller is None else [caller]
    address = request.remote_addr
    if not address_in(address, settings.rate_limit_exempt):
        limits.append(Limit(f"addr:{brand.id}:{address}", _chosen(
            policy_of(brand).rate_limits.address_per_minute,
            settings.rate_limit_address_per_minute)))
    services.rate_limits.take(limits)


def _chosen(brand_value: int | None, setting: int) -> int:
    return setting if brand_value is None else brand_value


def _principal() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'",
                                  code="missing_api_key")
    token = token.strip()
    if token.startswith(WIDGET_TOKEN_PREFIX):
        try:
            claims = _serializer().loads(token[len(WIDGET_TOKEN_PREFIX):],
                                         max_age=WIDGET_TOKEN_MAX_AGE_S)
        except SignatureExpired as exc:
            raise AuthenticationError("widget token expired", code="token_expired") from exc
        except BadSignature as exc:
            raise AuthenticationError("invalid widget token") from exc
        brand = Brand.get_or_none(Brand.id == claims["b"])
        if brand is None:
            raise AuthenticationError("invalid widget token")
        if not policy_of(brand).widget_enabled:
            # Checked on every use: turning the widget off ends the tokens already given out.
            raise AuthenticationError("the brand's chat widget is turned off",
                                      code="widget_disabled")
        return Principal(brand, conversation_id=str(claims["c"]), bucket=f"token:{claims['c']}")
    return Principal(services_of_app().brands.authenticate(token),
                     bucket=f"key:{hash_key(token)[:32]}")
