"""What the publishing commands share: the release gate's `--force --reason` options and its
verdict printed one case a line (`appliance workflows publish|import`, `appliance knowledge
publish|ingest --publish`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from appliance.evals.gate import FORCE_ROLE, Force, GateRefused, GateResult

F = TypeVar("F", bound=Callable[..., Any])


def force_options(command: F) -> F:
    """`--force` and `--reason TEXT`: publish past a refusal, audited with the reason."""
    command = click.option("--reason", help="Why the change is forced (required with "
                           "--force; kept in the audit log).")(command)
    return click.option("--force", is_flag=True, help="Publish even if the release gate "
                        "refuses (it_admin; audited).")(command)


def force_of(force: bool, reason: str | None) -> Force | None:
    """The Force the options ask for. The command line is IT's (a shell on the box), so it
    forces with the it_admin role; the gate still insists on a reason."""
    if not force:
        if reason:
            raise click.UsageError("--reason goes with --force")
        return None
    return Force(reason or "", FORCE_ROLE)


def echo_result(result: GateResult) -> None:
    """The gate's verdict, then each failing case (quarantined ones marked) on its line, on
    stderr: stdout keeps saying what was published."""
    click.echo(f"release gate: {result.summary()}", err=True)
    for failure in result.failures:
        click.echo(f"  FAIL {failure.suite} / {failure.case}: {failure.why}", err=True)
    for failure in result.quarantined:
        click.echo(f"  quarantined {failure.suite} / {failure.case}: {failure.why}", err=True)


def exit_refused(refused: GateRefused) -> NoReturn:
    """Print a refusal with its failing cases and exit 1."""
    echo_result(refused.result)
    click.echo("not published (an it_admin may --force --reason TEXT)", err=True)
    sys.exit(1)
