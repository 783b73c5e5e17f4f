"""pass^k: the chance that every one of k trials of a case succeeds, estimated from n trials
of which c passed as C(c, k) / C(n, k) (τ-bench's estimator), and averaged over cases.

pass^1 is the plain pass rate; a case that passes once in three trials scores 1/3 at pass^1
and 0 at pass^2, so pass^k falling with k shows an agent that succeeds only sometimes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from math import comb


@dataclass(frozen=True)
class CaseTrials:
    """How one case did over its trials."""

    suite: str
    name: str
    trials: int
    passes: int

    def pass_hat(self, k: int) -> float:
        """C(passes, k) / C(trials, k): the chance k trials drawn from these all passed."""
        if not 1 <= k <= self.trials:
            raise ValueError(f"k must be between 1 and {self.trials}, not {k}")
        return comb(self.passes, k) / comb(self.trials, k)


def tally(outcomes: Iterable[tuple[str, str, bool]]) -> list[CaseTrials]:
    """Each case's trials and passes from (suite, case name, passed) per trial, in the
    order the cases first appear."""
    counts: dict[tuple[str, str], list[int]] = {}
    for suite, name, passed in outcomes:
        count = counts.setdefault((suite, name), [0, 0])
        count[0] += 1
        count[1] += int(passed)
    return [CaseTrials(suite, name, trials, passes)
            for (suite, name), (trials, passes) in counts.items()]


def pass_hat_k(cases: list[CaseTrials]) -> dict[str, float]:
    """{"1": pass^1, ..., "K": pass^K} averaged over `cases`, K the fewest trials any case
    had; {} for no cases."""
    if not cases:
        return {}
    most = min(case.trials for case in cases)
    return {str(k): round(sum(case.pass_hat(k) for case in cases) / len(cases), 4)
            for k in range(1, most + 1)}


def by_suite(cases: list[CaseTrials]) -> dict[str, dict[str, float]]:
    """pass^k per suite (a workflow's name, or a suite's own)."""
    grouped: dict[str, list[CaseTrials]] = defaultdict(list)
    for case in cases:
        grouped[case.suite].append(case)
    return {suite: pass_hat_k(members) for suite, members in sorted(grouped.items())}
