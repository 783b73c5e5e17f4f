"""Slot extractors that work on the CPU default, without a capable LLM.

Patterns for identifiers (emails, amounts, and the brand's own formats: order numbers, zip
codes, as its toolset declares them), phrase lists for enums,
fuzzy matching against what the tools returned (an order's items and their options, a
product's variants, the customer's payment methods), and short-answer readers for yes / no /
stop. Each extractor returns None when the message does not give the slot, never a guess:
the engine then asks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from appliance.workflows.expressions import evaluate
from appliance.workflows.schema import Prefix, Slot, SlotFormat

#: The brand's slot formats by name (Toolset.formats).
Formats = Mapping[str, SlotFormat]
NO_FORMATS: Formats = {}

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NAME = r"([A-Za-z][A-Za-z'-]+)\s+([A-Za-z][A-Za-z'-]+)"
#: "my name is Jane Doe" names a person wherever it stands.
_NAME_INTRO = re.compile(rf"\b(?:my name is|my name's|name is|name:)\s+{_NAME}", re.IGNORECASE)
#: "it's Jane Doe", "I'm Jane Doe" only when the two words end the clause: "it's not here." and
#: "I'm so done with this" are not names.
_NAME_SAID = re.compile(
    rf"(?:^|[.!?,]\s*)(?:i am|i'm|im|this is|it's|it is)\s+{_NAME}(?=\s*(?:$|[,.;!]|\d|and\b))",
    re.IGNORECASE)
_NOT_NAMES = frozenset((
    "a", "an", "the", "i", "my", "me", "is", "am", "and", "or", "zip", "code", "postal",
    "email", "order", "please", "yes", "no", "hi", "hello", "hey", "it", "its", "it's",
    "thanks", "thank", "you", "sure", "ok", "okay", "live", "in", "at", "with", "name",
    "not", "been", "so", "very", "really", "just", "still", "already", "here", "there",
    "done", "sorry", "fine", "good", "that", "this", "what", "all", "gone"))
_YES = re.compile(
    r"^(yes|yeah|yep|yup|ya|yea|sure|correct|right|confirm(ed)?|ok(ay)?|please do|go ahead|"
    r"do it|proceed|that'?s (right|correct|fine)|sounds good|absolutely|definitely|of course|"
    r"affirmative|y)\b", re.IGNORECASE)
#: Words after a yes that attach a condition to it or swap what was agreed.
_CONDITION = re.compile(r"\b(but|instead|except|rather|unless|only if|as long as|however)\b",
                        re.IGNORECASE)
_NO = re.compile(
    r"^(no|nope|nah|not really|don'?t|do not|wait|hold on|stop|cancel|never ?mind|n)\b",
    re.IGNORECASE)
_STOP = re.compile(
    r"^(never ?mind|forget (it|that|about it)|stop|cancel that|cancel this|scratch that|"
    r"i changed my mind|no thanks?|nothing|that'?s all|that is all|nothing else|leave it)"
    r"[\s.!]*$", re.IGNORECASE)
_EVERYTHING = re.compile(r"\b(all|everything|both|every item|all items|all of them|the whole)\b",
                         re.IGNORECASE)
_ORIGINAL = re.compile(r"\b(original|same (card|method|payment|one|way)|the one i (paid|used)|"
                       r"how i paid|paid with)\b", re.IGNORECASE)
#: Option values that name nothing on their own ("waterproof: yes").
_NOT_DISTINCTIVE = frozenset({"yes", "no", "true", "false", "none", ""})
_STATE_ZIP = re.compile(r"\b([A-Za-z]{2})\.?\s*,?\s*(\d{5})(?:-\d{4})?\b")
_UNIT = re.compile(r"^(apt|apartment|suite|ste|unit|#|floor|fl|room|building|bldg)\b",
                   re.IGNORECASE)


#: Emails and anything with a digit (order ids, zip codes, amounts).
_IDENTIFIER = re.compile(r"\S+@\S+|\S*\d\S*")


def without_identifiers(text: str) -> str:
    """The message with emails, ids and numbers taken out: what it asks, not for whom."""
    return re.sub(r"\s+", " ", _IDENTIFIER.sub(" ", text)).strip()


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


_INFORMATION = re.compile(
    r"^(how (many|long|much|soon|often)|what('s| is| are| does| happens)|when|why|is there|"
    r"are there|do you|does|which|what if|is it possible|will|would)\b", re.IGNORECASE)


_GREETING = re.compile(r"^((hi|hello|hey|hiya|good (morning|afternoon|evening))\b[\s,.!]*)+",
                       re.IGNORECASE)


def asks_for_information(text: str) -> bool:
    """A question about how things work ("how many days do I have to return an item?"),
    rather than a request to act ("I want to return an item")."""
    return bool(_INFORMATION.match(_GREETING.sub("", text.strip())))


def affirmation(text: str) -> bool | None:
    """True for a yes, False for a no, None when the message is neither. A yes with a
    condition ("yes, but cancel the other order instead") is neither: what was listed is not
    what the customer agreed to, so nothing may be written on it."""
    text = text.strip()
    if yes := _YES.match(text):
        return None if _CONDITION.search(text, yes.end()) else True
    if _NO.match(text):
        return False
    return None


def wants_to_stop(text: str) -> bool:
    """The customer drops what they were doing ("never mind", "forget it")."""
    return bool(_STOP.match(text.strip()))


def extract(slot: Slot, text: str, values: Mapping[str, Any], *, asked: bool,
            current: Any = None, formats: Formats = NO_FORMATS) -> Any:
    """The slot's value in `text`, or None. `asked` is true when the agent's last question
    was for this slot, which allows bare answers ("Jane Doe", "no longer needed"). `current`
    is the slot's value so far: a list slot's correction ("also the keyboard") changes it.
    A slot whose type is one of the brand's `formats` is read with it; one whose format the
    brand does not declare reads nothing."""
    match slot.type:
        case "email":
            found = EMAIL.search(text)
            return found.group(0).lower().rstrip(".") if found else None
        case "first_name" | "last_name":
            name = person_name(text, asked=asked)
            if name is None:
                return None
            return name[0] if slot.type == "first_name" else name[1]
        case "enum":
            return _enum(slot, text, asked=asked)
        case "choice":
            return _choice(slot, text, values, asked=asked)
        case "choices":
            return _choices(slot, text, values, asked=asked, current=current)
        case "variants":
            return _variants(slot, text, values)
        case "address":
            return address(text)
        case "number":
            found = _NUMBER.search(text.replace(",", ""))
            return float(found.group(0)) if found else None
        case "text":
            return text.strip() if asked else None
    slot_format = formats.get(slot.type)
    return formatted(slot_format, text, asked=asked) if slot_format is not None else None


def formatted(slot_format: SlotFormat, text: str, *, asked: bool = False) -> str | None:
    """The first value written in `slot_format` in `text`, normalised; None if there is
    none. The answer to the slot's own question may be the bare value ("4821" when asked
    for a card's last four digits): then a standalone run of text matching the format's
    `pattern` is the value too."""
    for found in re.finditer(slot_format.find, text):
        said = next((group for group in found.groups() if group is not None), found.group(0))
        value = normalised(slot_format, said)
        if re.fullmatch(slot_format.pattern, value):
            return value
    if asked:
        bare = slot_format.pattern.removeprefix("^").removesuffix("$")
        for found in re.finditer(rf"(?<![\w/.-])(?:{bare})(?![\w/-]|\.\w)", text):
            value = normalised(slot_format, found.group(0))
            if re.fullmatch(slot_format.pattern, value):
                return value
    return None


def normalised(slot_format: SlotFormat, value: str) -> str:
    """`value` through the format's normalisers, in order."""
    for step in slot_format.normalise:
        match step:
            case Prefix(prefix=prefix):
                value = value if value.startswith(prefix) else prefix + value
            case "upper":
                value = value.upper()
            case "lower":
                value = value.lower()
            case "digits":
                value = re.sub(r"\D", "", value)
            case "strip_spaces":
                value = re.sub(r"\s", "", value)
    return value


def person_name(text: str, *, asked: bool) -> tuple[str, str] | None:
    """(first, last) from "my name is Jane Doe", or from a bare "Jane Doe" when asked."""
    for found in (_NAME_INTRO.search(text), _NAME_SAID.search(text)):
        if found and found.group(1).lower() not in _NOT_NAMES and (
                found.group(2).lower() not in _NOT_NAMES):
            return found.group(1).title(), found.group(2).title()
    if not asked:
        return None
    # A bare answer: the words before any number look like a name when they are capitalised
    # ("Olivia Ito, 80218"), or are all there is ("olivia ito"); "I really can't say" is not.
    head = re.split(r"[\d@,;]", text, maxsplit=1)[0]
    # Only the last sentence before them: "Ugh. Kenji Tanaka 07/22/1985", "Of course. Kenji
    # Tanaka" (unless it is too short to be a name: "J. Doe").
    last = re.split(r"(?<=[.!?])\s+", head.strip())[-1]
    if len(re.findall(r"[A-Za-z][A-Za-z'-]+", last)) >= 2:
        head = last
    words_in_head = re.findall(r"[A-Za-z][A-Za-z'-]*", head)
    tokens = [t for t in words_in_head if t.lower() not in _NOT_NAMES and "'" not in t]
    capitalised = [t for t in tokens if t[0].isupper()]
    if 2 <= len(capitalised) <= 3 and len(capitalised) == len(tokens):
        return capitalised[0].title(), capitalised[1].title()
    if len(words_in_head) == 2 and len(tokens) == 2:
        return tokens[0].title(), tokens[1].title()
    return None


def address(text: str) -> dict[str, str] | None:
    """A US postal address written on one line: "12 Elm St, Apt 4, Austin, TX 78701"."""
    found = _STATE_ZIP.search(text)
    if found is None:
        return None
    before = text[:found.start()]
    parts = [part.strip(" .") for part in before.split(",") if part.strip(" .")]
    # Find the street: the first part that starts with a house number, or that has one after
    # some words ("actually, make it 77 Pine Road, ...").
    start = next((i for i, part in enumerate(parts) if re.match(r"^\d+\s+\w", part)), None)
    if start is None:
        for index, part in enumerate(parts):
            street = re.search(r"\b\d+\s+[A-Za-z].*$", part)
            if street is not None:
                parts[index], start = street.group(0), index
                break
        else:
            return None
    parts = parts[start:]
    if len(parts) < 2:
        return None
    address1, city = parts[0], parts[-1]
    address2 = ", ".join(p for p in parts[1:-1] if p)
    if not address2 and _UNIT.search(city) and len(parts) == 2:
        return None
    return {"address1": address1, "address2": address2, "city": city,
            "state": found.group(1).upper(), "country": "USA", "zip": found.group(2)}


def _phrase_in(phrase: str, text_words: Sequence[str]) -> bool:
    target = words(phrase)
    n = len(target)
    return n > 0 and any(list(text_words[i:i + n]) == target
                         for i in range(len(text_words) - n + 1))


def _enum(slot: Slot, text: str, *, asked: bool) -> str | None:
    text_words = words(text)
    best: tuple[int, str] | None = None
    for value in slot.values:
        for phrase in (value, *slot.synonyms.get(value, ())):
            if _phrase_in(phrase, text_words):
                score = len(words(phrase))
                if best is None or score > best[0]:
                    best = (score, value)
    if best is not None:
        return best[1]
    if asked:
        phrases = {phrase.lower(): value for value in slot.values
                   for phrase in (value, *slot.synonyms.get(value, ()))}
        close = difflib.get_close_matches(" ".join(text_words), list(phrases), n=1, cutoff=0.75)
        if close:
            return phrases[close[0]]
    return None


def _option_text(option: Any, attributes: Sequence[str]) -> list[str]:
    """The phrases a customer may name an option by."""
    if not isinstance(option, Mapping):
        return [str(option)]
    phrases: list[str] = []
    for attribute in attributes:
        value: Any = option
        for part in attribute.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, Mapping):
            phrases.extend(str(v) for v in value.values())
        elif value is not None:
            phrases.append(str(value))
    return phrases


def _scores(slot: Slot, text: str, options: Sequence[Any]) -> list[float]:
    """How well the message names each option: whole phrases named, identifiers quoted."""
    text_words = words(text)
    lowered = text.lower()
    scores = []
    for option in options:
        key = str(option.get(slot.key)) if isinstance(option, Mapping) and slot.key else str(option)
        score = 0.0
        if key.lower() in lowered:
            score += 10
        for phrase in _option_text(option, slot.match_on or ((slot.key,) if slot.key else ())):
            if phrase.lower() in _NOT_DISTINCTIVE:
                continue
            if phrase and phrase.lower() != key.lower() and _phrase_in(phrase, text_words):
                score += len(words(phrase))
            elif phrase and len(phrase) == 4 and phrase.isdigit() and phrase in text:
                score += 5  # the last four digits of a card
        scores.append(score)
    return scores


def _key(slot: Slot, option: Any) -> Any:
    return option.get(slot.key) if isinstance(option, Mapping) and slot.key else option


def _options(slot: Slot, values: Mapping[str, Any]) -> list[Any]:
    options = evaluate(slot.options or "[]", values)
    if isinstance(options, Mapping):
        options = list(options.values())
    return list(options or [])


def _choice(slot: Slot, text: str, values: Mapping[str, Any], *, asked: bool) -> Any:
    """The one option the message names best ("the visa ending 9182", "the original", "my
    card" when only one option is a card)."""
    options = _options(slot, values)
    if not options:
        return None
    if slot.default and _ORIGINAL.search(text):
        default = evaluate(slot.default, values)
        if default is not None:
            return default
    scores = _scores(slot, text, options)
    best = max(scores)
    if best > 0 and scores.count(best) == 1:
        return _key(slot, options[scores.index(best)])
    if best <= 0:
        # A word only one option has ("my card" beside a PayPal account).
        phrases = [(index, phrase.replace("_", " ").lower()) for index, option in
                   enumerate(options) for phrase in _option_text(option, slot.match_on)]
        where = _mentions([phrase for _, phrase in phrases], text)
        found = {index for (index, _), at in zip(phrases, where, strict=True) if at is not None}
        if len(found) == 1:
            return _key(slot, options[found.pop()])
    if asked and len(options) == 1 and affirmation(text):
        return _key(slot, options[0])
    return None


def _choices(slot: Slot, text: str, values: Mapping[str, Any], *, asked: bool,
             current: Sequence[Any] | None = None) -> Any:
    """The options the message names, every one of them ("the headphones and the smart
    watch", "both water bottles"), or all of them ("both", "everything"), or all but some
    ("everything except the vacuum"). With the slot's `current` value (a customer reviewing
    a confirmation), "also the keyboard" adds to it and "not the watch" takes from it."""
    options = _options(slot, values)
    if not options:
        return None
    everything = [_key(slot, option) for option in options]
    excluding = _EXCLUDING.search(text)
    if excluding is not None:
        clause = _CLAUSE_END.split(text[excluding.end():], maxsplit=1)[0]
        removed = _named(slot, clause, options)
        head = text[:excluding.start()]
        base = (everything if _EVERYTHING.search(text[:excluding.end()])
                else _named(slot, head, options) or list(current or ()))
        if removed and base:
            return [key for key in base if key not in removed] or None
    named = _named(slot, text, options)
    if named is None:
        if _EVERYTHING.search(text) or (asked and len(options) == 1 and affirmation(text)):
            return everything
        return None
    if current and _ADDING.search(text):
        return [*current, *(key for key in named if key not in current)]
    return named


#: "everything except the vacuum", "but not the watch", "remove the mat": what follows (to the
#: end of the clause) is taken out.
_EXCLUDING = re.compile(
    r"\b(?:except(?: for)?|but not|all but|everything but|other than|apart from|excluding|"
    r"without|not (?:the|my|that|this|those|these|a|an|any)|remove|drop|take (?:off|out)|"
    r"leave out|minus)\b", re.IGNORECASE)
#: What an item is to become ("for one with capacity 750ml and color black"), up to the next
#: item ("and the bookshelf") or sentence.
_TARGET = re.compile(r"\b(?:for|to|into)\s+(?:one|ones|the one|a|an)\b.*?"
                     r"(?=(?:,|\band\b)\s+the\b|[.;!?]|$)", re.IGNORECASE)
#: Where a message goes from one item to the next.
_SEPARATOR = re.compile(r"[,;]|\band\b|\bplus\b|\bwhile\b", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;!?]|\bbut\b|\binstead\b", re.IGNORECASE)
#: "also the keyboard", "add the mat", "the lamp too": added to the items already chosen.
_ADDING = re.compile(r"\b(?:also|add|plus|as well|too)\b", re.IGNORECASE)
#: Words of a product's name that do not name it on their own ("the smart one").
_MODIFIERS = frozenset((
    "smart", "electric", "digital", "portable", "wireless", "indoor", "security", "light",
    "led", "air", "water", "office", "action", "running", "gaming", "hiking", "cycling", "set",
    "kit", "machine", "the", "and"))


def _stem(word: str) -> str:
    """A word without its plural ending, so "headphones" names "Headphones" and "boots"
    names "Hiking Boots"."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _named(slot: Slot, text: str, options: Sequence[Any]) -> list[Any] | None:
    """The options a clause names. An option is named by its name (the first `match_on`
    attribute: in full, or by a word no other option's name shares, "the watch") or by its
    key; among options of the same name, those whose other attributes the message names best
    are meant ("the skateboard (plastic, 28 inch)"). With no name named, the options whose
    attributes it names best ("the blue one"). None when it names none."""
    name_of = (slot.match_on[0] if slot.match_on else slot.key) or ""
    names = [" ".join(_option_text(option, (name_of,))).lower() for option in options]
    found = _mentions(names, text)
    # Told apart by how the customer describes what they have, not what they want instead.
    details = _scores(slot, _TARGET.sub(" ", text), options)
    lowered = text.lower()
    hits: dict[str, list[int]] = {}
    for index, (option, name) in enumerate(zip(options, names, strict=True)):
        if found[index] is not None or str(_key(slot, option)).lower() in lowered:
            hits.setdefault(name, []).append(index)
    if not hits:
        best = max(details)
        if best <= 0:
            return None
        # An option named only by a shared word ("the blue one" beside a better match) is not.
        return [_key(slot, option) for option, score in zip(options, details, strict=True)
                if score >= best or (score >= 2 and score >= best / 2)]
    chosen: list[int] = []
    for name, indices in hits.items():
        best = max(details[index] for index in indices)
        # Several options of one name: those described best.
        described = [index for index in indices if details[index] >= best]
        identical = len({str(_key(slot, options[index])) for index in described}) == 1
        if identical and not _plural(name, text):
            described = described[:1]  # "the water bottle" of two alike is one of them
        chosen += described
    return [_key(slot, options[index]) for index in sorted(chosen)]


def _plural(name: str, text: str) -> bool:
    """Whether the text speaks of several of the named thing: "both", "all", "two", or the
    name's last word in the plural ("the water bottles")."""
    last = (words(name) or [""])[-1]
    said = words(text)
    return bool({"both", "all", "two", "three"} & set(said)) or (
        not last.endswith("s") and f"{last}s" in said)


def _mentions(names: Sequence[str], text: str) -> list[int | None]:
    """For each name, the position (in words) where the text names it: in full, or by a word
    that no other of the names shares ("the watch" beside a Smart Thermostat); else None."""
    stems = [_stem(word) for word in words(text)]
    shared = _shared_words(set(names))
    found: list[int | None] = []
    for name in names:
        name_words = [_stem(word) for word in words(name)]
        n = len(name_words)
        whole = next((i for i in range(len(stems) - n + 1) if n and stems[i:i + n] == name_words),
                     None)
        # The name's last word ("the watch"), or a longer one before it ("the vacuum"); not
        # a short one that other words begin with ("pet hair removal" is no Pet Bed).
        distinctive = {word for position, word in enumerate(name_words)
                       if word not in shared and word not in _MODIFIERS
                       and len(word) >= (3 if position == n - 1 else 5)}
        partial = next((i for i, stem in enumerate(stems) if stem in distinctive), None)
        found.append(whole if whole is not None else partial)
    return found


def _shared_words(names: set[str]) -> set[str]:
    """Words that appear in more than one of the names ("smart" in Smart Watch and Smart
    Thermostat): they do not tell the options apart."""
    seen: dict[str, int] = {}
    for name in names:
        for word in {_stem(word) for word in words(name)}:
            seen[word] = seen.get(word, 0) + 1
    return {word for word, count in seen.items() if count > 1}


def _variants(slot: Slot, text: str, values: Mapping[str, Any]) -> list[str] | None:
    """For each chosen item, the one available variant of the same product that the message
    describes best (option values named that differ from the item's own). When the message
    names each item, each is read from its own part ("the headphones to the black ones and the
    watch to the silver one")."""
    items = evaluate(slot.items or "[]", values) or []
    products = {p.get("product_id"): p for p in evaluate(slot.products or "[]", values) or []
                if isinstance(p, Mapping)}
    chosen: list[str] = []
    for item, part in zip(items, _parts(items, text), strict=True):
        product = products.get(item.get("product_id"))
        if product is None:
            return None
        variant = _variant_named(item, product, part)
        if variant is None:
            return None
        chosen.append(variant)
    return chosen or None


def _parts(items: Sequence[Mapping[str, Any]], text: str) -> list[list[str]]:
    """The words of the message about each item: the clauses that name it and those that
    follow until another item is named ("the 5 ft white bookshelf, and a white rechargeable
    toothbrush"). Of several items of one name, a run of clauses is about the one whose own
    options it describes ("the speaker (green, …) for one with …, and the speaker (black, …)
    for one with …"). The whole message for each when it does not name each item."""
    whole = words(text)
    if len(items) < 2:
        return [whole] * len(items)
    names = [str(item.get("name", "")).lower() for item in items]
    runs: list[tuple[list[int], list[str]]] = []
    for clause in _SEPARATOR.split(text):
        named = [index for index, position in enumerate(_mentions(names, clause))
                 if position is not None]
        if named:
            runs.append((named, [clause]))
        elif runs:
            runs[-1][1].append(clause)
    parts: list[list[str]] = [[] for _ in items]
    for named, clauses in runs:
        said = words(_TARGET.sub(" ", " , ".join(clauses)))
        described = [sum(_phrase_in(str(value), said)
                         for value in (items[index].get("options") or {}).values())
                     for index in named]
        best = max(described)
        if len({names[index] for index in named}) == 1 and described.count(best) == 1:
            named = [named[described.index(best)]]
        for index in named:
            parts[index] += words(" ".join(clauses))
    return parts if all(parts) else [whole] * len(items)


def _values_named(values: Sequence[str], text_words: Sequence[str]) -> set[str]:
    """The option values the words name, lowercased; a value named only as part of a longer
    one ("Wi-Fi" in "Wi-Fi + Cellular") is not."""
    found = {value.lower() for value in values if _phrase_in(value, text_words)}
    return {value for value in found
            if not any(other != value and _phrase_in(value, words(other)) for other in found)}


def _variant_named(item: Mapping[str, Any], product: Mapping[str, Any],
                   text_words: Sequence[str]) -> str | None:
    """The available variant of the item's product (not the item itself) whose option values
    the words name best, when one is clearly best; of those that name as much, the one that
    keeps more of the item's other options ("for one with brightness high")."""
    own = {k: str(v).lower() for k, v in (item.get("options") or {}).items()}
    variants = list((product.get("variants") or {}).values())
    named = _values_named([*own.values(), *(str(value) for variant in variants
                                            for value in (variant.get("options") or {}).values())],
                          text_words)
    best: tuple[float, str] | None = None
    tie = False
    for variant in variants:
        if not variant.get("available") or variant.get("item_id") == item.get("item_id"):
            continue
        score, differs = 0.0, False
        for name, value in (variant.get("options") or {}).items():
            kept = own.get(name) == str(value).lower()
            if str(value).lower() in named:
                differs = differs or not kept
                score += 0.5 if kept else 2
            elif kept:
                score += 0.1  # what the customer does not mention stays as it is
        if not differs:
            continue  # naming the item as it is ("the blue t-shirt") is not a new option
        if best is None or score > best[0]:
            best, tie = (score, variant["item_id"]), False
        elif score == best[0]:
            tie = True
    return None if best is None or tie else best[1]
