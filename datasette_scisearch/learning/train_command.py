"""``scisearch train``: the command-line face of learning/train.py (the library does the work; this prints)."""

from __future__ import annotations

import json

import click

from .. import jobs
from ..catalog import open_catalog
from ..command_line import ScisearchCommand, catalog_argument
from ..errors import ScisearchError
from . import heads
from . import train as training
from .train import MIN_LABELS_PER_CLASS, RELIABLE_LABELS_PER_CLASS


@click.command(name="train", cls=ScisearchCommand)
@catalog_argument()
@click.option("--tag-set", required=True, help="the name of the set of classes, e.g. morphology")
@click.option(
    "--classes",
    help="comma-separated class names, as experts tag them (e.g. nanoparticles,nanowires,lattice,amorphous)",
)
@click.option(
    "--features",
    default="auto",
    show_default=True,
    help="vector space to learn from: clip, image_texture, image_features, or auto (CLIP where it covers the "
    "labelled items, else the image-analysis space that cross-validates better)",
)
@click.option(
    "--folds", default=5, show_default=True, type=click.IntRange(2, 20), help="cross-validation folds (at most)"
)
@click.option(
    "--baseline-tag",
    "baseline_tags",
    multiple=True,
    metavar="CLASS=TAG",
    help="a machine tag that names CLASS for the baseline (repeat; default: tags equal to or containing the name)",
)
@click.option("--by", "trained_by", help="who trained it (recorded with the model)")
@click.option("--dry-run", is_flag=True, help="train and report the accuracy, but write no model and no tags")
@click.option("--predict-only", is_flag=True, help="tag items added since training with the current model; no training")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def train_command(
    catalog, tag_set, classes, features, folds, baseline_tags, trained_by, dry_run, predict_only, as_json
):
    """Train a head on experts' labels for a tag set, report its cross-validated accuracy against the machine tags
    already there, and write its predictions as tags with source learned:TAG_SET.vN.

    Labels are the tags experts accepted or added with a class's name. At least 2 per class are needed to train
    (the head is then chosen from one label a class, a rough guide); 20 per class give an accuracy worth quoting."""
    db = open_catalog(catalog, create=False)  # a missing catalog is said first, as by every command
    arguments = {"tag_set": tag_set, "classes": classes, "features": features, "dry_run": dry_run}
    try:
        if not predict_only and not classes:
            raise ScisearchError("no classes named", fix="name two or more: --classes nanoparticles,nanowires,lattice")
        with jobs.recorded_job(db, "train --predict-only" if predict_only else "train", arguments) as job:
            if predict_only:
                result = training.predict(db, tag_set).as_dict()
            else:
                result = training.train(
                    db,
                    tag_set,
                    [name for name in classes.split(",") if name.strip()],
                    feature_space=features,
                    actor=trained_by,
                    folds=folds,
                    baseline_tags=_parse_baseline_tags(baseline_tags),
                    write=not dry_run,
                ).as_dict()
            job.total, job.added = result.get("labels") or 0, result.get("tags_written") or 0
            job.notes.append(f"{result.get('source') or 'nothing written'}")
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif predict_only:
        click.echo(
            f"{result['source']}: {result['predictions']} new items predicted on {result['feature_space']}, "
            f"{result['tags_written']} tags written"
        )
    else:
        _print_report(result)


train = train_command  # the name the lead registers: cli.add_command(train)


def _parse_baseline_tags(pairs: tuple[str, ...]) -> dict[str, list[str]] | None:
    mapping: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, tag = pair.partition("=")
        if not sep or not name.strip() or not tag.strip():
            raise ScisearchError(f"--baseline-tag wants CLASS=TAG, not {pair!r}", fix="e.g. nanoparticles=particles")
        mapping.setdefault(name.strip(), []).append(tag.strip())
    return mapping or None


def _print_report(report: dict) -> None:
    classes = report["classes"]
    what = report["source"] or f"{report['tag_set']} (dry run: nothing written)"
    click.echo(
        f"trained {what} on {report['labels']} labelled items ({report['feature_space']} vectors, "
        f"{report['folds']}-fold cross-validation)"
    )
    click.echo(f"  head: {report['head']} (chosen by cross-validation)")
    click.echo(f"  cross-validated accuracy: {report['cv_accuracy']:.3f}")
    click.echo("  probabilities: " + heads.calibration_words(report["temperature"], report["log_loss"]))
    if len(report["heads_compared"]) > 1:
        click.echo(
            "  compared: " + ", ".join(f"{name} {value:.3f}" for name, value in report["heads_compared"].items())
        )
    if report["baseline_covered"]:
        click.echo(
            f"  baseline (machine tags):  {report['baseline_accuracy']:.3f}  — {report['baseline_covered']} of "
            f"{report['labels']} items carry a machine tag naming a class; the rest count as wrong"
        )
    else:
        # An accuracy of 0 would read as a broken baseline; there is simply none to compare with.
        click.echo("  baseline: none — no machine tag on the labelled items names a class (see --baseline-tag)")
    # Rows: the experts' class; columns: labels, then where the head's out-of-fold predictions fell, then how
    # many the baseline got right.
    first = max(len(name) for name in classes + ["class"])
    widths = [max(len(name), 4) for name in classes]
    click.echo(
        f"  {'class':<{first}}  labels  "
        + "  ".join(f"{name:>{w}}" for name, w in zip(classes, widths))
        + ("  baseline right" if report["baseline_covered"] else "")
    )
    for index, (name, row) in enumerate(zip(classes, report["confusion"])):
        cells = "  ".join(f"{count:>{w}}" for count, w in zip(row, widths))
        right = f"  {report['baseline_confusion'][index][index]:>14}" if report["baseline_covered"] else ""
        click.echo(f"  {name:<{first}}  {report['counts'][name]:>6}  {cells}{right}")
    excluded = {key: value for key, value in report["excluded"].items() if value}
    if excluded:
        click.echo("  left out: " + ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in excluded.items()))
    if report["labels_from_rejections"]:
        click.echo(f"  {report['labels_from_rejections']} labels came from rejections that left one class")
    for warning in report["warnings"]:
        click.echo(f"  note: {warning}")
    if report["source"]:
        click.echo(
            f"  wrote {report['tags_written']} tags and {report['predictions']} predictions; removed "
            f"{report['tags_removed']} tags of older versions"
        )
    click.echo(
        f"  (at least {MIN_LABELS_PER_CLASS} labels per class train; "
        f"{RELIABLE_LABELS_PER_CLASS} give a reliable accuracy)"
    )
