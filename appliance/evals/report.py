"""The model-risk report (`appliance eval report`): for a regulator, one dated document of what
a brand's agent runs on and how it was judged — the versions live (workflows, knowledge, models
with their sha256, classifiers, thresholds), the latest eval results with pass^k, the history
of runs, the quarantined cases and who changed what (the audit log).

The report is built once as plain sections (a title, notes, tables of text) and written as
HTML or as PDF from them, so both say the same thing.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fpdf import FPDF

from appliance import __version__
from appliance.brands import policy_of
from appliance.db.models import AuditLog, Brand, EvalRun, utcnow
from appliance.services import Services

#: An audit entry's detail as the report shows it at most (a policy change holds the whole
#: policy).
DETAIL_CHARS = 300
#: A PDF table cell's longest text: a row must fit on a page.
PDF_CELL_CHARS = 600
#: How many runs of the history and entries of the audit log the report lists.
HISTORY_RUNS = 60
AUDIT_ENTRIES = 300


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Section:
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    title: str
    generated_at: dt.datetime
    sections: list[Section]


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def _score(scores: dict[str, float], k: str) -> str:
    return f"{scores[k]:.3f}" if k in scores else "-"


def build(services: Services, brand: Brand) -> Report:
    """The brand's report as of now."""
    now = utcnow()
    runs = services.evals.runs(brand, HISTORY_RUNS)
    latest = services.evals.latest(brand)
    policy = policy_of(brand).evals
    summary = Section("Summary", [
        f"Brand: {brand.name} ({brand.slug}).",
        f"Generated: {_when(now)} by Switchboard {__version__} on {platform.node()}.",
        f"Eval policy: floor {policy.floor} (pass^1 a change must reach), tolerance "
        f"{policy.tolerance} (the largest drop allowed), {policy.trials} trial(s) per case.",
        "pass^k is the estimated chance that all k trials of a case pass (C(c,k)/C(n,k), "
        "averaged over cases); quarantined cases are reported apart and never gate.",
    ])
    return Report(f"Model-risk report: {brand.name}", now, [
        summary,
        _versions(services.evals.live_versions(brand)),
        _latest(latest),
        _history(runs),
        _quarantine(services, brand),
        _changes(brand),
    ])


def _versions(live: dict[str, Any]) -> Section:
    knowledge = live["knowledge"]
    thresholds = list(_leaves("", live["thresholds"]))
    return Section("Versions live", [
        f"Knowledge: version {knowledge} published." if knowledge is not None
        else "Knowledge: none published."], [
        Table(("Workflow", "Version", "Version id"),
              [(name, str(v["version"]), str(v["id"])) for name, v in live["workflows"].items()]),
        Table(("Task", "Models in route order"),
              [(task, ", ".join(ids)) for task, ids in live["routes"].items()]),
        Table(("Model", "sha256"),
              [(model_id, sha or "not in the manifest")
               for model_id, sha in live["models"].items()]),
        Table(("Classifier", "Signal", "sha256"),
              [(model_id, str(c["signal"]), c["sha256"] or "-")
               for model_id, c in live["classifiers"].items()]),
        Table(("Threshold", "Value"), thresholds),
    ])


def _leaves(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    """Each number, flag or word in `value` as (dotted name, value); lists (phrases, not
    thresholds) are left out."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(f"{prefix}{key}.", inner)
    elif not isinstance(value, list):
        yield prefix.rstrip("."), json.dumps(value)


def _latest(run: EvalRun | None) -> Section:
    if run is None or not run.scores:
        return Section("Latest results", ["No eval run has been recorded."])
    ks = sorted(run.scores["pass_hat_k"], key=int)
    per_suite = [(suite, *(_score(scores, k) for k in ks))
                 for suite, scores in run.scores["by_suite"].items()]
    per_suite.append(("all (not quarantined)",
                      *(_score(run.scores["pass_hat_k"], k) for k in ks)))
    if run.scores["quarantined"]:
        per_suite.append(("quarantined (not gating)",
                          *(_score(run.scores["quarantined"], k) for k in ks)))
    failures = [(case["suite"], case["name"], f"{case['passes']}/{case['trials']}",
                 "; ".join(dict.fromkeys(problem for failure in case["failures"]
                                         for problem in failure["problems"])))
                for case in run.cases if case["failures"]]
    return Section("Latest results", [
        f"Run {run.id} ({run.trigger}), finished {_when(run.finished_at)}, {run.trials} "
        f"trial(s) per case, seed {run.seed}, on {run.node or 'an unnamed node'}."], [
        Table(("Suite", *(f"pass^{k}" for k in ks)), per_suite),
        Table(("Suite", "Case failed", "Passes", "Why"), failures),
    ])


def _history(runs: Sequence[EvalRun]) -> Section:
    rows = []
    for run in runs:
        scores = (run.scores or {}).get("pass_hat_k", {})
        last = max(scores, key=int) if scores else None
        regressed = ", ".join(r["suite"] for r in run.regressions or [])
        rows.append((str(run.id), _when(run.finished_at or run.created_at), run.trigger,
                     run.suite or "all", str(run.trials), run.status, _score(scores, "1"),
                     f"{scores[last]:.3f} (k={last})" if last else "-",
                     regressed or (run.error or "")))
    return Section("History", [f"The latest {HISTORY_RUNS} runs, newest first."], [
        Table(("Run", "When", "Trigger", "Suites", "Trials", "Status", "pass^1", "pass^k",
               "Regressed suites / error"), rows)])


def _quarantine(services: Services, brand: Brand) -> Section:
    rows = [(suite.name, case.name, case.quarantine or "")
            for suite in services.suites.suites(brand) for case in suite.cases
            if case.quarantine]
    return Section("Quarantined cases", [
        "Run and reported, never gating or alerting."], [
        Table(("Suite", "Case", "Why quarantined"), rows)])


def _trimmed(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + " ..."


def _changes(brand: Brand) -> Section:
    entries = (AuditLog.select().where((AuditLog.target == brand.slug)
                                       | AuditLog.target.startswith(f"{brand.slug}/"))
               .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(AUDIT_ENTRIES))
    rows = [(_when(entry.at), entry.actor, entry.action, entry.target,
             _trimmed(json.dumps(entry.detail, sort_keys=True)) if entry.detail else "")
            for entry in entries]
    return Section("Changes", [
        f"Who changed what for this brand, from the audit log (the latest {AUDIT_ENTRIES}; "
        f"details longer than {DETAIL_CHARS} characters are cut, the audit log keeps them "
        "whole)."],
        [Table(("When", "Who", "What", "Target", "Detail"), rows)])


# -- writing it out ----------------------------------------------------------------------

def to_html(report: Report) -> str:
    """The report as one self-contained HTML page (no scripts, no external files)."""
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(report.title)}</title>",
           "<style>body{font:14px/1.4 sans-serif;margin:2em;max-width:70em}"
           "table{border-collapse:collapse;margin:.5em 0 1.5em}"
           "th,td{border:1px solid #999;padding:.2em .5em;text-align:left;"
           "vertical-align:top}</style></head><body>",
           f"<h1>{html.escape(report.title)}</h1>"]
    for section in report.sections:
        out.append(f"<section><h2>{html.escape(section.title)}</h2>")
        out += [f"<p>{html.escape(note)}</p>" for note in section.notes]
        for table in section.tables:
            if not table.rows:
                out.append(f"<p>No {html.escape(table.headers[0].lower())} rows.</p>")
                continue
            out.append("<table><thead><tr>" + "".join(
                f'<th scope="col">{html.escape(h)}</th>' for h in table.headers)
                + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                    for row in table.rows]
            out.append("</tbody></table>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _latin1(value: str) -> str:
    """fpdf2's core fonts are Latin-1: anything else shows as '?'."""
    return value.encode("latin-1", "replace").decode("latin-1")


def to_pdf(report: Report) -> bytes:
    """The report as a PDF (A4 landscape, fpdf2's core fonts)."""
    pdf = FPDF(orientation="landscape")
    pdf.set_creation_date(report.generated_at.replace(tzinfo=dt.UTC))
    pdf.set_title(_latin1(report.title))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 9, _latin1(report.title), new_x="LMARGIN", new_y="NEXT")
    for section in report.sections:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, _latin1(section.title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        for note in section.notes:
            pdf.multi_cell(0, 5, _latin1(note), new_x="LMARGIN", new_y="NEXT")
        for table in section.tables:
            if not table.rows:
                pdf.multi_cell(0, 5, _latin1(f"No {table.headers[0].lower()} rows."),
                               new_x="LMARGIN", new_y="NEXT")
                continue
            pdf.set_font("Helvetica", size=7)
            with pdf.table(text_align="LEFT") as out:
                for row in (table.headers, *table.rows):
                    out.row([_latin1(cell[:PDF_CELL_CHARS]) for cell in row])
            pdf.set_font("Helvetica", size=9)
            pdf.ln(2)
    return bytes(pdf.output())
