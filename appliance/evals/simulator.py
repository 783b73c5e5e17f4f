"""Simulated customers: a goal (cases.py `Goal`: who the customer is, what they want, what
they accept, how they talk) played against the agent, turn by turn.

`SimulatedCustomer` is deterministic and runs on the CPU default. It opens with one of the
goal's phrasings of its request, then reads each agent reply:
- a reply matching one of the goal's `replies` gets that answer (an offer, a choice);
- a confirmation ("To confirm: … (yes/no)") is said yes to when it holds everything the goal
  `accepts`, else the customer says it is not right; a customer who changes their mind
  answers the first confirmation with the facts they first gave otherwise ("Actually, …");
- an offer to do what they came for ("… Just say yes.") is taken;
- a question gets every fact it asks for (by the fact's words: `asked`, or the defaults
  below), phrased by the persona;
- "anything else?" ends the conversation; so does a handoff, or saying the same thing a
  third time.
Phrasing is drawn from templates with the trial's seed, so trials vary and a seed repeats.

`LlmCustomer` plays the same goal with the model routed to the `simulate` task (the GPU
profile routes a capable one; the CPU default has none).

The simulator answers for its own mistakes: `contradictions` finds what it said that its goal
does not hold (an id or an email of the same shape as a fact's, but another value, or a fact
still at its first value when the conversation ended). A failed case with one is the
simulator's failure, not the agent's, and is reported as such.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from appliance.evals.cases import Goal
from appliance.llm.base import ChatMessage, GenerationParams
from appliance.llm.router import ModelRouter

#: The words by which agents ask for the usual facts; a goal adds its own (`asked`).
ASKED: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "name": ("your name", "full name", "first and last name", "name on"),
    "first_name": ("first name", "your name", "full name"),
    "last_name": ("last name",),
    "zip": ("zip",),
    "order": ("which order", "what order", "order number", "order id"),
    "reason": ("why", "reason"),
    "date_of_birth": ("date of birth", "birth"),
    "phone": ("phone",),
    "address": ("address",),
    "card": ("which card", "last four", "last 4", "card ending", "card number"),
    "items": ("which item", "what item"),
    "payment": ("payment method", "refund go", "price difference", "pay with"),
    "code": ("code",),
    "amount": ("how much", "amount"),
    "date": ("when did", "what date", "which date"),
}
#: A confirmation of what the agent is about to do. A yes/no question ("Shall I send it by
#: standard or expedited shipping?", "Have you contacted the merchant (yes/no)?") is answered
#: from the facts first, and taken as a confirmation when no fact answers it.
_CONFIRMATION = ("to confirm", "shall i go ahead", "should i go ahead", "is that right",
                 "is this correct")
_YES_NO = ("(yes/no)", "shall i", "should i")
#: The agent offers to do what the customer came for ("Would you like me to do that for you
#: now? Just say yes."): they take it.
_OFFER = ("just say yes", "would you like me to")
_ANYTHING_ELSE = ("anything else",)
#: A fact's value as the persona says it, and their sentences around it.
_ANSWER = ("{value}", "It's {value}.", "{label}: {value}")
_PERSONA = {
    "plain": ("{answer}",),
    "terse": ("{values}",),
    "chatty": ("Sure! {answer} Thanks so much for helping me with this.",
               "Of course. {answer} I really appreciate it!"),
    "angry": ("{answer} This is taking way too long.", "Ugh. {answer} Can we hurry up?"),
    "changes_mind": ("{answer}",),
}
_YES = ("Yes, please go ahead.", "Yes.", "Yes, that's right.")
_NOT_RIGHT = ("No, that's not right.", "No, that isn't what I asked for.")
_DONE = ("No, that's all. Thank you!", "That's everything, thanks.")
#: Turns at the most before the customer gives up.
MAX_TURNS = 14


@dataclass
class SimulatedCustomer:
    """Plays `goal`: `opening()` first, then `answer(reply)` to each agent reply until it
    returns None (the customer is done)."""

    goal: Goal
    seed: str = "0"
    said: list[str] = field(default_factory=list)
    #: Facts still at their first value (a customer who will change their mind).
    uncorrected: set[str] = field(default_factory=set)
    #: What the customer could not answer: questions the goal has no fact for.
    unanswered: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._draw = random.Random(f"{self.seed}:{self.goal.name}")
        if self.goal.persona == "changes_mind":
            self.uncorrected = {name for name, fact in self.goal.facts.items() if fact.first}

    def opening(self) -> str:
        text = self._fill(self._draw.choice(self.goal.wants))
        self.said.append(text)
        return text

    def answer(self, reply: str) -> str | None:
        text = reply.lower()
        if len(self.said) >= MAX_TURNS or self.said[-1] in _DONE:
            return None
        if any(cue in text for cue in _ANYTHING_ELSE):
            return None if self.said[-1] in _DONE else self._say(self._draw.choice(_DONE))
        for rule in self.goal.replies:  # the goal's own answers come first
            if any(cue.lower() in text for cue in rule.when):
                say = rule.say if isinstance(rule.say, str) else self._draw.choice(rule.say)
                return self._say(self._fill(say))
        if any(cue in text for cue in _CONFIRMATION):
            return self._say(self._confirm(text))
        if any(cue in text for cue in _OFFER):
            return self._say(self._draw.choice(_YES))
        asked = [name for name in self.goal.facts if self._asks_for(name, text)]
        if asked:
            return self._say(self._phrase(asked))
        if any(cue in text for cue in _YES_NO):
            return self._say(self._confirm(text))
        if "?" in reply:
            self.unanswered.append(reply)
        # Nothing it can answer: say again what it wants, as a customer would.
        return self._say(self._fill(self._draw.choice(self.goal.wants)))

    def _confirm(self, text: str) -> str:
        """Yes to a confirmation that holds what the goal accepts; the first one read back
        to a customer who changes their mind gets their correction instead."""
        if self.uncorrected:
            values = " and ".join(self.goal.facts[name].value
                                  for name in sorted(self.uncorrected))
            self.uncorrected = set()
            return f"Actually, sorry, I meant: {values}."
        if all(phrase.lower() in text for phrase in self.goal.accepts):
            return self._draw.choice(_YES)
        return self._draw.choice(_NOT_RIGHT)

    def _asks_for(self, name: str, text: str) -> bool:
        words = self.goal.asked.get(name) or ASKED.get(name) or (name.replace("_", " "),)
        return any(word.lower() in text for word in words)

    def _value(self, name: str) -> str:
        fact = self.goal.facts[name]
        return fact.first if name in self.uncorrected and fact.first else fact.value

    def _phrase(self, names: Sequence[str]) -> str:
        values = [self._value(name) for name in names]
        answers = [self._draw.choice(_ANSWER).format(
            value=value, label=name.replace("_", " ").capitalize())
            for name, value in zip(names, values, strict=True)]
        template = self._draw.choice(_PERSONA[self.goal.persona])
        return template.format(answer=" ".join(answers), values=", ".join(values))

    def _fill(self, template: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: self._value(m.group(1)), template)

    def _say(self, text: str) -> str | None:
        """Say `text`; a customer who would say the same thing a third time gives up."""
        if self.said[-2:] == [text, text]:
            return None
        self.said.append(text)
        return text


class LlmCustomer:
    """Plays `goal` with the model routed to `simulate`: the goal's facts and persona in its
    instructions, the conversation so far as its context. It says DONE when finished."""

    def __init__(self, goal: Goal, router: ModelRouter, seed: int = 0) -> None:
        self.goal = goal
        self.said: list[str] = []
        self.unanswered: list[str] = []
        self.uncorrected: set[str] = set()
        self._router = router
        self._seed = seed
        self._history: list[ChatMessage] = []

    def _instructions(self) -> str:
        facts = "\n".join(f"- {name.replace('_', ' ')}: {fact.value}"
                          for name, fact in self.goal.facts.items())
        return (
            "You are a customer chatting with a company's support agent. Write only the "
            "customer's next message, short, in plain words. Use only these facts, exactly as "
            f"written:\n{facts}\nWhat you want: {self.goal.wants[0]}\n"
            f"How you talk: {self.goal.persona.replace('_', ' ')}.\n"
            "Say yes to a confirmation only if it matches what you want. When the agent asks "
            "if there is anything else, or your request is done, reply with just DONE.")

    def opening(self) -> str:
        text = re.sub(r"\{(\w+)\}", lambda m: self.goal.facts[m.group(1)].value,
                      self.goal.wants[0])
        self._history.append(ChatMessage("assistant", text))
        self.said.append(text)
        return text

    def answer(self, reply: str) -> str | None:
        if len(self.said) >= MAX_TURNS:
            return None
        self._history.append(ChatMessage("user", reply))
        messages = [ChatMessage("system", self._instructions()), *self._history]
        params = GenerationParams(max_tokens=80, temperature=0.7, seed=self._seed)
        text = self._router.complete("simulate", lambda model: messages,
                                     params).completion.text.strip()
        if not text or text.upper().startswith("DONE"):
            return None
        self._history.append(ChatMessage("assistant", text))
        self.said.append(text)
        return text


#: What either simulator offers the runner.
Customer = SimulatedCustomer | LlmCustomer


def contradictions(goal: Goal, customer: Customer) -> list[str]:
    """What the customer said that its goal does not hold: a value of the same shape as a
    fact's (an email, an id, a date, a card's digits) that is not that fact's value, and facts
    still at their first value when the conversation ended."""
    found = [f"never corrected {name} to {goal.facts[name].value!r}"
             for name in sorted(customer.uncorrected)]
    said = " ".join(customer.said)
    # What the goal holds is never a contradiction: take it out, then look for its shapes.
    known = sorted({value for fact in goal.facts.values() for value in (fact.value, fact.first)
                    if value}, key=len, reverse=True)
    for value in known:
        said = re.sub(re.escape(value), " ", said, flags=re.IGNORECASE)
    for name, fact in goal.facts.items():
        shape = _shape(fact.value)
        if shape is not None:
            found += [f"said {match.group(0)!r} for {name} ({fact.value!r} in the goal)"
                      for match in re.finditer(shape, said)]
    return found


def _shape(value: str) -> str | None:
    """A pattern for values written like `value` (its digits any digits, its letters as
    they are), or None for a value with no digits and no @ (a name, a reason)."""
    if "@" in value:
        return r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    if not re.search(r"\d", value):
        return None
    pattern = re.sub(r"\d", r"\\d", re.escape(value))
    return rf"(?<![\w/.-]){pattern}(?![\w/-]|\.\w)"
