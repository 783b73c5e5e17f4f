"""`appliance intents train|eval`: train an intent classifier from a CSV, measure one on a CSV.

Both commands are used against public benchmarks by people outside the project: their options
and output are stable. They need the model store (the embedder), not the database.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.errors import ApplianceError
from appliance.llm.manifest import load_manifest
from appliance.signals import build_embedder
from appliance.signals.base import Embedder

F = TypeVar("F", bound=Callable[..., Any])


def register(cli: click.Group) -> None:
    cli.add_command(intents)


@click.group()
def intents() -> None:
    """Intent classifiers: train one from a labelled CSV, measure one on another."""


def data_options(command: F) -> F:
    """The options naming the CSV's columns and the out-of-scope label."""
    for option in reversed((
        click.option("--text-col", default="text", show_default=True,
                     help="Column holding the utterance."),
        click.option("--label-col", default="label", show_default=True,
                     help="Column holding the intent."),
        click.option("--oos-label", default="oos", show_default=True,
                     help="Label of out-of-scope rows (none need be present)."),
    )):
        command = option(command)
    return command


@intents.command("train")
@click.option("--csv", "csv_path", required=True, type=click.Path(path_type=Path),
              help="Training data: a CSV file with a header row.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to write the model to (replaced only once the new one is "
                   "complete).")
@data_options
@pass_cli
def train_command(ctx: CliContext, csv_path: Path, out_dir: Path, text_col: str,
                  label_col: str, oos_label: str) -> None:
    """Train a classifier on CSV rows (text, label) and write it to --out.

    Rows labelled --oos-label teach the model to reject out-of-scope messages; the rejection
    threshold is chosen on held-out folds. Prints the held-out metrics.
    """
    from appliance.signals.training import check_out_dir, save, train

    texts, labels = read_csv(csv_path, text_col, label_col)
    if len(set(labels)) < 2:
        raise click.ClickException(f"{csv_path}: training needs at least 2 labels in column "
                                   f"{label_col!r}, found {len(set(labels))}")
    try:
        check_out_dir(out_dir)
        artefact = train(texts, labels, oos_label=oos_label, embedder=_embedder(ctx),
                         name=out_dir.resolve().name,
                         progress=lambda message: click.echo(message, err=True))
        save(artefact, out_dir)
    except ApplianceError as exc:
        raise click.ClickException(exc.message) from exc
    meta = artefact.meta
    click.echo(f"wrote {out_dir}: {meta['training_data']['rows']} rows, "
               f"{len(meta['labels'])} labels, {meta['model_bytes']:,} bytes, "
               f"threshold {_shown(meta['threshold'], 2)}, {meta['training_seconds']} s")
    metrics = meta["metrics"]
    click.echo(f"held-out ({metrics['folds']} folds):")
    table([(key, _shown(metrics[key])) for key in
           ("accuracy", "macro_f1", "in_scope_accuracy", "oos_precision", "oos_recall")],
          ("metric", "value"))


@intents.command("eval")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="A model directory written by `appliance intents train`.")
@click.option("--csv", "csv_path", required=True, type=click.Path(path_type=Path),
              help="Test data: a CSV file with a header row.")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_cli
def eval_command(ctx: CliContext, model_dir: Path, csv_path: Path, text_col: str,
                 label_col: str, oos_label: str, as_json: bool) -> None:
    """Measure a classifier on CSV rows, one message at a time from raw text.

    Prints accuracy (out-of-scope as a class), macro_f1, in_scope_accuracy (a rejected
    in-scope row counts wrong), oos_precision and oos_recall ("-", or null in JSON, when no
    row is out of scope), and per-message latency p50_ms / p95_ms (embedding included).
    """
    from appliance.signals.classifier import TextClassifier
    from appliance.signals.training import METRIC_KEYS, evaluate

    texts, labels = read_csv(csv_path, text_col, label_col)
    try:
        classifier = TextClassifier.load(model_dir, embedder=_embedder(ctx))
        result = evaluate(classifier, texts, labels, oos_label)
    except ApplianceError as exc:
        raise click.ClickException(exc.message) from exc
    if as_json:
        click.echo(json.dumps(result))
        return
    table([(key, _shown(result[key], 2 if key.endswith("_ms") else 4))
           for key in (*METRIC_KEYS, "n")], ("metric", "value"))


def read_csv(path: Path, text_col: str, label_col: str) -> tuple[list[str], list[str]]:
    """The (texts, labels) of a CSV with a header row; click errors name what is wrong."""
    # A benchmark row can be longer than the csv module's default 128 KiB field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    texts, labels = [], []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            missing = [c for c in (text_col, label_col) if c not in columns]
            if missing:
                raise click.ClickException(
                    f"{path}: no column {', '.join(map(repr, missing))} (columns: "
                    f"{', '.join(map(repr, columns)) or 'none'})")
            for row in reader:
                text, label = row.get(text_col), row.get(label_col)
                if text is None or label is None or not label.strip():
                    raise click.ClickException(f"{path}, line {reader.line_num}: no "
                                               f"{label_col if text is not None else text_col}")
                texts.append(text)
                labels.append(label.strip())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    if not texts:
        raise click.ClickException(f"{path}: no rows")
    return texts, labels


def _embedder(ctx: CliContext) -> Embedder:
    """The configured embedder (it loads on first use)."""
    settings = ctx.settings
    return build_embedder(load_manifest(settings.model_store), settings)


def _shown(value: Any, digits: int = 4) -> str:
    """A metric as printed: "-" when undefined, floats to `digits` decimals."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
