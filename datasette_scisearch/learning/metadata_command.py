"""``scisearch predict-metadata``: the command-line face of learning/metadata_labels.py."""

from __future__ import annotations

import json

import click

from ..catalog import open_catalog
from ..command_line import ScisearchCommand, catalog_argument
from .heads import calibration_words
from .metadata_labels import LABELS, predict_metadata


@click.command(name="predict-metadata", cls=ScisearchCommand)
@catalog_argument()
@click.option(
    "--labels",
    default=",".join(LABELS),
    show_default=True,
    help="which labels to predict for files whose metadata lacks them (comma-separated)",
)
@click.option(
    "--features",
    default="auto",
    show_default=True,
    help="vector space to learn from (auto: clip, else image_texture, else image_features)",
)
@click.option("--by", "trained_by", help="who trained it (recorded with each model)")
@click.option("--json", "as_json", is_flag=True, help="print the reports as JSON")
def predict_metadata_command(catalog, labels, features, trained_by, as_json):
    """Learn mode, kind and magnification band from the files whose instruments recorded them, and tag the files
    that lack them (exported PNG/TIFF/JPEG) with the predicted values: machine tags with source
    learned:metadata-LABEL.vN, the calibrated probability as score, and the model and its accuracy on hidden metadata as
    evidence."""
    db = open_catalog(catalog, create=False)
    try:
        reports = predict_metadata(db, [name.strip() for name in labels.split(",") if name.strip()], features,
                                   actor=trained_by)  # fmt: skip
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([report.as_dict() for report in reports], indent=2))
        return
    for report in reports:
        if report.skipped:
            click.echo(f"{report.label}: not predicted — {report.skipped}")
            continue
        click.echo(
            f"{report.label}: learned:{report.tag_set}.v{report.version} ({report.head} on {report.feature_space}) "
            f"from {report.known} files with it; accuracy with it hidden {report.cv_accuracy:.3f}; "
            f"{report.tags_written} of {report.unknown} files lacking it tagged ({', '.join(report.classes)})"
        )
        click.echo(f"  probabilities: {calibration_words(report.temperature, report.log_loss)}")
