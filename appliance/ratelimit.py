"""Rate limits: token buckets in the database, shared by every gunicorn worker and every node.

A bucket holds up to a minute's worth of requests and refills continuously at its rate. Each
take is a compare-and-set on the bucket's row (UPDATE ... WHERE tokens and updated_at are
what was read), so concurrent workers never both spend the same token and no lock is held
between statements; SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import peewee

from appliance.db.models import RateBucket, utcnow
from appliance.errors import RateLimited

#: A bucket untouched this long is full again: its row can go (the `rate_limits.purge` job).
IDLE_BUCKET = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Limit:
    """One bucket: what it limits ("key:12", "token:conv_…", "addr:3:10.0.0.7") and its rate
    in requests per minute (0: unlimited)."""

    name: str
    per_minute: int

    def refilled(self, tokens: float, since: dt.datetime, now: dt.datetime) -> float:
        elapsed = max(0.0, (now - since).total_seconds())
        return min(float(self.per_minute), tokens + elapsed * self.per_minute / 60)

    def wait_s(self, tokens: float) -> int:
        """Whole seconds until the bucket holds one token again."""
        return math.ceil((1 - tokens) * 60 / self.per_minute)


class RateLimiter:
    """Takes one request from each of a caller's buckets, or refuses with RateLimited."""

    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def take(self, limits: list[Limit], now: dt.datetime | None = None) -> None:
        """Spend one token from every limited bucket in `limits`; raise RateLimited (with the
        longest wait as Retry-After) if any is empty. Buckets before the empty one keep the
        token spent: a refused caller has still made a request."""
        now = now or utcnow()
        for limit in limits:
            if limit.per_minute <= 0:
                continue
            left = self._take_one(limit, now)
            if left is not None:
                raise RateLimited(
                    f"too many requests; retry in {left} s", retry_after_s=left)

    def _take_one(self, limit: Limit, now: dt.datetime) -> int | None:
        """None when a token was spent, else the seconds until one is there."""
        while True:
            row = RateBucket.get_or_none(RateBucket.name == limit.name)
            if row is None:
                try:
                    with self._db.atomic():
                        RateBucket.create(name=limit.name, tokens=limit.per_minute - 1,
                                          updated_at=now)
                    return None
                except peewee.IntegrityError:
                    continue  # another worker made it: take from it
            tokens = limit.refilled(row.tokens, row.updated_at, now)
            if tokens < 1:
                return limit.wait_s(tokens)
            spent = (RateBucket.update(tokens=tokens - 1, updated_at=max(now, row.updated_at))
                     .where((RateBucket.id == row.id) & (RateBucket.tokens == row.tokens)
                            & (RateBucket.updated_at == row.updated_at)).execute())
            if spent == 1:
                return None

    def purge(self, now: dt.datetime | None = None) -> int:
        """Delete buckets idle for IDLE_BUCKET (they would be full); return how many."""
        cutoff = (now or utcnow()) - IDLE_BUCKET
        deleted: int = RateBucket.delete().where(RateBucket.updated_at < cutoff).execute()
        return deleted
