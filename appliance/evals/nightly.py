"""The nightly evals and the runs asked for in the admin: every brand's suites against what is
live, each run kept in the history (appliance/evals/history.py).

A brand is run only against a test system, never production. It qualifies when it has stored
suites and either
- its policy names one (`evals.test_base_url`), or
- its tools point at one of the appliance's demo backends (`demo_retail_url`,
  `demo_bank_url`), which are test systems by construction (the demo brands).
Any other brand is skipped and the job's summary says why.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from appliance.brands import policy_of
from appliance.db.models import Brand, EvalRun, utcnow
from appliance.errors import ApplianceError
from appliance.evals.runner import run_suites
from appliance.services import Services

log = logging.getLogger(__name__)
ACTOR = "scheduler"


def eval_system(services: Services, brand: Brand) -> str | None:
    """The brand's test system the evals may reset and write to, or None when it has none
    (its tools are production, or it has no tools)."""
    policy = policy_of(brand)
    if policy.evals.test_base_url:
        return policy.evals.test_base_url
    toolset = services.workflows.toolset(brand)
    tools_url = policy.tools_base_url or (toolset.base_url if toolset else None)
    settings = services.settings
    demo_backends = {settings.demo_retail_url.rstrip("/"), settings.demo_bank_url.rstrip("/")}
    if tools_url and tools_url.rstrip("/") in demo_backends:
        return tools_url
    return None


def execute(services: Services, run: EvalRun) -> dict[str, Any]:
    """Run a started run's suites (all the brand's, or `run.suite`) and record it; a test
    system that cannot be reached fails the run with why, never counting as a fail."""
    brand = services.brands.get(Brand.get_by_id(run.brand_id).slug)
    try:
        suites = services.suites.suites(brand, run.suite)
        results = run_suites(services, brand, suites, trials=run.trials, seed=run.seed)
    except ApplianceError as exc:
        log.warning("eval run %s of %s not made: %s", run.id, brand.slug, exc.message)
        services.evals.fail(run, exc.message)
        return {"run": run.id, "status": run.status, "error": exc.message}
    found = services.evals.finish(run, results)
    return {"run": run.id, "status": run.status, "pass^1": run.scores["pass_hat_k"].get("1"),
            "regressions": [regression.suite for regression in found]}


def nightly(services: Services, now: dt.datetime | None = None) -> dict[str, Any]:
    """Run every qualifying brand's suites with its trials, once per brand per UTC day: a
    brand whose nightly run of today is running or done is left alone (a failed one, whose
    test system could not be reached, is tried again)."""
    today = (now or utcnow()).replace(hour=0, minute=0, second=0, microsecond=0)
    summary: dict[str, Any] = {}
    for brand in services.brands.all():
        if not services.suites.records(brand):
            continue
        if eval_system(services, brand) is None:
            summary[brand.slug] = {"status": "skipped", "why": "no test system"}
            continue
        if (done := services.evals.nightly_since(brand, today)) is not None:
            summary[brand.slug] = {"status": "skipped", "why": f"run {done.id} today"}
            continue
        run = services.evals.start(brand, "nightly", policy_of(brand).evals.trials, seed=0,
                                   actor=ACTOR)
        summary[brand.slug] = execute(services, run)
    return summary


def requested(services: Services) -> dict[str, Any]:
    """Run the runs asked for in the admin, oldest first; each is claimed first so two
    schedulers never run the same one. A brand without a test system fails its run."""
    summary: dict[str, Any] = {}
    for run in services.evals.queued():
        if not services.evals.claim(run):
            continue
        run = EvalRun.get_by_id(run.id)
        if eval_system(services, Brand.get_by_id(run.brand_id)) is None:
            services.evals.fail(run, "the brand has no test system to run its evals against")
            summary[str(run.id)] = {"status": run.status}
            continue
        summary[str(run.id)] = execute(services, run)
    return summary
