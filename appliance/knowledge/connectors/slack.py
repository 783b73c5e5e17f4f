"""A Slack workspace export folder: channels.json (and groups.json for private channels),
users.json (org_users.json on Enterprise Grid), and one folder per channel holding a JSON array of
messages per day, `<channel>/<YYYY-MM-DD>.json`. Direct messages are not read.

A thread is one document: replies are filed under the day they were posted, so threads are rebuilt
across day files from `thread_ts` (a reply's parent ts; the parent carries its own ts there too).
A message nobody replied to is a thread of one. Joins, leaves, topic changes and other subtype
noise, and messages from bots and apps, are dropped. Slack's markup is undone: <@U123> becomes
"@Real Name", <#C123|name> "#name", <https://x|label> "label (https://x)", &amp; "&".

external_id is `channel/thread_ts`; the title is the first message's first line; sections are the
messages as "Name: text"; updated_at is the last reply's time.

options: `channels` (list of channel names or ids) limits the channels read; `workspace_url`
(e.g. "https://northwind.slack.com") makes locations permalinks instead of `channel/thread_ts`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import InvalidRequest
from appliance.knowledge.base import DocumentError, RawDocument, Section, SourceError
from appliance.knowledge.connectors._common import (
    BadDocument,
    child_file,
    first_line,
    is_inside,
    parse_date,
    read_bytes,
    source_root,
)

#: Subtypes that are people talking; every other subtype (channel_join, channel_leave,
#: channel_topic, bot_message, pinned_item, ...) is noise.
_CONVERSATION = {None, "thread_broadcast", "file_share", "me_message"}
_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.json")
_MARKUP = re.compile(r"<([^<>]*)>")


@dataclass
class _Thread:
    ts: str
    messages: dict[str, Mapping[str, Any]] = field(default_factory=dict)


def read(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument | DocumentError]:
    """Read a Slack export folder; see the module docstring."""
    root = source_root(path)
    if not root.is_dir():
        raise SourceError(f"{path} is not a Slack export folder")
    channels = _channels(root)
    if channels is None:
        if any(root.iterdir()):
            raise SourceError(f"{path} is not a Slack export: no channels.json")
        return
    users = _users(root)
    wanted = _wanted_channels(options, channels)
    workspace_url = _workspace_url(options)
    by_name = {channel["name"]: channel["id"] for channel in channels}
    for channel in channels:
        if wanted is None or channel["name"] in wanted or channel["id"] in wanted:
            yield from _channel(root, channel["name"], channel["id"], users, by_name, workspace_url)


def _load_json(file: Path) -> Any:
    try:
        return json.loads(read_bytes(file))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
        raise BadDocument(f"not valid JSON: {exc}") from exc


def _channels(root: Path) -> list[dict[str, str]] | None:
    """Public then private channels as {"id", "name"}; None when there is no channels.json."""
    listed: list[dict[str, str]] = []
    found = False
    for name in ("channels.json", "groups.json"):
        file = child_file(root, name)
        if file is None:
            continue
        found = True
        try:
            data = _load_json(file)
        except BadDocument as exc:
            raise SourceError(f"{name} cannot be read: {exc}") from exc
        if not isinstance(data, list):
            raise SourceError(f"{name} is not a list of channels")
        listed += [
            {"id": str(item.get("id", "")), "name": str(item["name"])}
            for item in data
            if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]
        ]
    return listed if found else None


def _users(root: Path) -> dict[str, str]:
    """User id → the name people know them by: real name, then display name, then handle."""
    for name in ("users.json", "org_users.json"):
        file = child_file(root, name)
        if file is None:
            continue
        try:
            data = _load_json(file)
        except BadDocument as exc:
            raise SourceError(f"{name} cannot be read: {exc}") from exc
        return {
            str(user.get("id")): _person(user)
            for user in (data if isinstance(data, list) else [])
            if isinstance(user, dict)
        }
    return {}


def _person(user: Mapping[str, Any]) -> str:
    profile = user.get("profile")
    if not isinstance(profile, dict):
        profile = {}
    for value in (profile.get("real_name"), user.get("real_name"), profile.get("display_name"),
                  user.get("name")):  # fmt: skip
        if isinstance(value, str) and value.strip():
            return value.strip()
    return str(user.get("id", "someone"))


def _wanted_channels(options: Mapping[str, Any], channels: list[dict[str, str]]) -> set[str] | None:
    wanted = options.get("channels")
    if wanted is None:
        return None
    if not isinstance(wanted, list) or not all(isinstance(name, str) for name in wanted):
        raise InvalidRequest("channels must be a list of channel names", param="channels")
    known = {channel["name"] for channel in channels} | {channel["id"] for channel in channels}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise InvalidRequest(
            f"no such channel in this export: {', '.join(unknown)}", param="channels"
        )
    return set(wanted)


def _workspace_url(options: Mapping[str, Any]) -> str | None:
    value = options.get("workspace_url")
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise InvalidRequest("workspace_url must be an http(s) URL", param="workspace_url")
    return value.rstrip("/")


def _channel(
    root: Path,
    name: str,
    channel_id: str,
    users: Mapping[str, str],
    channels: Mapping[str, str],
    workspace_url: str | None,
) -> Iterator[RawDocument | DocumentError]:
    folder = root / name
    if not folder.is_dir():
        return  # a channel with no messages in the exported range
    if not is_inside(root, folder):
        yield DocumentError(name, "refused: it leads outside the source root")
        return
    threads: dict[str, _Thread] = {}
    for day in sorted(p.name for p in folder.iterdir() if _DAY_FILE.fullmatch(p.name)):
        file = child_file(root, name, day)
        if file is None:
            yield DocumentError(f"{name}/{day}", "refused: it leads outside the source root")
            continue
        try:
            messages = _load_json(file)
        except BadDocument as exc:
            yield DocumentError(f"{name}/{day}", str(exc))
            continue
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, dict) and _is_conversation(message, users):
                ts = str(message["ts"])
                thread_ts = str(message.get("thread_ts") or ts)
                threads.setdefault(thread_ts, _Thread(thread_ts)).messages[ts] = message
    markup = _Markup(users, {cid: cname for cname, cid in channels.items()})
    for thread in sorted(threads.values(), key=lambda thread: float(thread.ts)):
        document = _document(name, channel_id, thread, users, markup, workspace_url)
        if document is not None:
            yield document


def _is_conversation(message: Mapping[str, Any], users: Mapping[str, str]) -> bool:
    return (
        message.get("type", "message") == "message"
        and message.get("subtype") in _CONVERSATION
        and not message.get("bot_id")
        and isinstance(message.get("ts"), str)
        and _number(message["ts"])
    )


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _document(
    channel: str,
    channel_id: str,
    thread: _Thread,
    users: Mapping[str, str],
    markup: _Markup,
    workspace_url: str | None,
) -> RawDocument | None:
    ordered = [thread.messages[ts] for ts in sorted(thread.messages, key=float)]
    said: list[tuple[str, str, str]] = []  # (ts, who, text)
    for message in ordered:
        text = markup.undo(str(message.get("text") or "")).strip()
        files = [str(f.get("title") or f.get("name")) for f in message.get("files") or []
                 if isinstance(f, dict) and (f.get("title") or f.get("name"))]  # fmt: skip
        if files:
            text = "\n".join(filter(None, [text, *(f"[file: {title}]" for title in files)]))
        if text:
            said.append((str(message["ts"]), _speaker(message, users), text))
    if not said:
        return None
    external_id = f"{channel}/{thread.ts}"
    location = (
        f"{workspace_url}/archives/{channel_id}/p{thread.ts.replace('.', '')}"
        if workspace_url and channel_id
        else external_id
    )
    return RawDocument(
        external_id=external_id,
        title=first_line(said[0][2]),
        sections=tuple(Section("", f"{who}: {text}") for _, who, text in said),
        location=location,
        updated_at=parse_date(said[-1][0]),
        author=said[0][1],
        metadata={
            "channel": channel,
            "participants": sorted({who for _, who, _ in said}),
            "replies": len(said) - 1,
        },
    )


def _speaker(message: Mapping[str, Any], users: Mapping[str, str]) -> str:
    user = str(message.get("user", ""))
    if user in users:
        return users[user]
    profile = message.get("user_profile")
    if isinstance(profile, dict):
        return _person({"id": user, "profile": profile})
    return user or "someone"


class _Markup:
    """Undoes Slack's message markup, naming people and channels from the export."""

    def __init__(self, users: Mapping[str, str], channels: Mapping[str, str]) -> None:
        self.users = users
        self.channels = channels

    def undo(self, text: str) -> str:
        text = _MARKUP.sub(self._replace, text)
        # Slack escapes only these three; &amp; last so "&amp;lt;" stays "&lt;".
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _replace(self, match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            return "@" + (self.users.get(target[1:]) or label or target[1:])
        if target.startswith("#"):
            return "#" + (label or self.channels.get(target[1:], target[1:]))
        if target.startswith("!"):
            special = target[1:].split("^", 1)[0]
            if special in ("here", "channel", "everyone"):
                return "@" + special
            return label or "@" + special
        if target.startswith("mailto:"):
            return label or target[len("mailto:") :]
        if label and label != target:
            return f"{label} ({target})"
        return target
