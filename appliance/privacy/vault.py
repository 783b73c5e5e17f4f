"""The token vault: a conversation's personal data, kept apart from what is stored about it.

What the appliance stores of a conversation (messages, turn traces, workflow state, tool-call
logs, handoff packets and the webhooks that carry them) holds typed placeholders, `[CARD_1]`,
`[EMAIL_1]`, in place of what `appliance.privacy.detect` finds. The values behind them live in
the conversation's vault: a JSON map of placeholder to value, sealed with AES-256-GCM under a
key derived (HKDF-SHA256) from the appliance's secret and bound to the conversation's id, in
the conversation's own row, so that it is deleted with the conversation.

During a turn the vault is open in memory: the workflow engine and the brand's tools get the
real values back (a card number reaches the bank's dispute tool), the models get placeholders,
and the customer sees their own email or phone number back but a card, SSN, IBAN or account
number only as its last four (the brand's policy names the kinds shown in full).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.brands import policy_of
from appliance.db.models import Brand, Conversation
from appliance.errors import ApplianceError
from appliance.privacy.detect import ACCOUNT, CARD, IBAN, SSN, Detector, detector_for

PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*)_(\d+)\]")
#: Kinds masked to their last four characters wherever a customer sees them.
MASKED = (CARD, SSN, IBAN, ACCOUNT)
_NONCE = 12


class VaultError(ApplianceError):
    """A vault that does not open: another appliance's secret, or changed bytes."""

    status = 500
    type = "api_error"
    code = "vault_unreadable"


class Vault:
    """One conversation's placeholders and the values behind them."""

    def __init__(self, detector: Detector, entries: dict[str, str] | None = None) -> None:
        self._detector = detector
        self.entries: dict[str, str] = dict(entries or {})
        self._by_value = {value: name for name, value in self.entries.items()}
        self.changed = False

    def _placeholder(self, kind: str, value: str) -> str:
        found = self._by_value.get(value)
        if found is not None:
            return found
        number = 1 + sum(1 for name in self.entries if name.startswith(f"[{kind}_"))
        name = f"[{kind}_{number}]"
        self.entries[name] = value
        self._by_value[value] = name
        self.changed = True
        return name

    def redact(self, text: str) -> str:
        """`text` with what the detector finds, and every value already in the vault,
        replaced by placeholders (the same value is always the same placeholder)."""
        out, at = [], 0
        for span in self._detector.find(text):
            out += [text[at:span.start], self._placeholder(span.kind, span.of(text))]
            at = span.end
        redacted = "".join(out) + text[at:]
        # A value seen before is found again without the words around it (a slot holding
        # "12345678" after "my account number is 12345678"), longest first.
        for value in sorted(self._by_value, key=len, reverse=True):
            if len(value) >= 6 and value in redacted:
                alone = re.compile(rf"(?<![\w@.]){re.escape(value)}(?![\w@])")
                redacted = alone.sub(self._by_value[value], redacted)
        return redacted

    def reveal(self, text: str, shown: Iterable[str] | None = None) -> str:
        """Placeholders back to their values: all of them (for tools and the workflow
        engine), or with `shown` for a customer: those kinds in full, the rest masked to
        their last four."""
        kinds = None if shown is None else set(shown)

        def value(match: re.Match[str]) -> str:
            real = self.entries.get(match.group())
            if real is None:
                return match.group()
            if kinds is None or match.group(1) in kinds:
                return real
            return mask(match.group(1), real)

        return PLACEHOLDER.sub(value, text)

    def redact_json(self, value: Any) -> Any:
        return _walk(value, self.redact)

    def reveal_json(self, value: Any, shown: Iterable[str] | None = None) -> Any:
        kinds = None if shown is None else tuple(shown)
        return _walk(value, lambda text: self.reveal(text, kinds))


def mask(kind: str, value: str) -> str:
    digits = re.sub(r"[^0-9A-Za-z]", "", value)
    if kind == CARD:
        return f"•••• •••• •••• {digits[-4:]}"
    if kind == SSN:
        return f"•••-••-{digits[-4:]}"
    if kind == IBAN:
        return f"{digits[:2]}•• •••• {digits[-4:]}"
    return f"••••{digits[-4:]}"


def _walk(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_walk(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _walk(item, change) for key, item in value.items()}
    return value


class Vaults:
    """Seals and opens conversations' vaults with a key derived from the appliance secret."""

    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"appliance conversation vault").derive(secret.encode("utf-8"))
        self._aead = AESGCM(key)

    def of(self, conversation: Conversation, brand: Brand | None = None) -> Vault:
        """The conversation's vault, open, detecting its brand's own patterns too."""
        policy = policy_of(brand or conversation.brand)
        return self.open(conversation.vault, conversation.public_id, detector_for(policy))

    def open(self, sealed: str | None, conversation_id: str,
             detector: Detector | None = None) -> Vault:
        if not sealed:
            return Vault(detector or Detector())
        raw = base64.b64decode(sealed)
        try:
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:],
                                       conversation_id.encode("utf-8"))
        except InvalidTag:
            raise VaultError(f"the vault of conversation {conversation_id} does not open "
                             "with this appliance's secret") from None
        return Vault(detector or Detector(), json.loads(plain))

    def seal(self, vault: Vault, conversation_id: str) -> str | None:
        if not vault.entries:
            return None
        nonce = os.urandom(_NONCE)
        plain = json.dumps(vault.entries, sort_keys=True).encode("utf-8")
        sealed = self._aead.encrypt(nonce, plain, conversation_id.encode("utf-8"))
        return base64.b64encode(nonce + sealed).decode("ascii")
