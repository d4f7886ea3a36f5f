"""``scisearch pretrain``: the command-line face of learning/pretrain.py (the library trains; this prints)."""

from __future__ import annotations

import json

import click

from .. import jobs
from ..catalog import open_catalog
from ..command_line import ScisearchCommand, catalog_argument
from .pretrain import ARCHITECTURES, DEFAULT_ARCHITECTURE, SPACE, new_images_since_current, pretrain, refresh_vectors


@click.command(name="pretrain", cls=ScisearchCommand)
@catalog_argument()
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1, 1000), help="passes over the images")
@click.option(
    "--architecture",
    type=click.Choice(list(ARCHITECTURES)),
    default=DEFAULT_ARCHITECTURE,
    show_default=True,
    help="the open_clip vision tower trained from scratch (ignored with --fine-tune, which keeps the current one)",
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(2, 4096), help="images per step")
@click.option("--fine-tune", is_flag=True, help="start from the current version's weights instead of from scratch")
@click.option(
    "--when-new",
    type=click.IntRange(1),
    metavar="N",
    help="incremental: fine-tune the current model only if N or more images arrived since it was trained "
    "(train from scratch when there is none); otherwise only write vectors for the new files",
)
@click.option("--vectors-only", is_flag=True, help="no training: write the current model's vectors for every image")
@click.option("--seed", default=0, show_default=True, type=int, help="random seed (same seed, same model)")
@click.option("--by", "trained_by", help="who trained it (recorded with the model)")
@click.option("--json", "as_json", is_flag=True, help="print the training report as JSON")
@click.option("--quiet", is_flag=True, help="no progress bar")
def pretrain_command(
    catalog, epochs, architecture, batch_size, fine_tune, when_new, vectors_only, seed, trained_by, as_json, quiet
):
    """Train the facility's own image encoder on the catalog's previews: a small open_clip vision transformer, from
    scratch, taught the labels its instruments recorded (mode, kind, detector, magnification band) and to match
    captions made from metadata, file-name shorthand and proposal titles, read by the packaged MiniLM through a
    learned projection. Writes a new version of the model into the catalog and the 'facility_image' vector of every
    image file: "more like this", a feature space for 'scisearch train', and text-to-image search without any
    downloaded weights. CPU: about a minute for a few hundred images at the default 30 epochs."""
    db = open_catalog(catalog, create=False)
    try:
        if when_new is not None:
            current, arrived = new_images_since_current(db)
            vectors_only = vectors_only or (current is not None and arrived < when_new)
            fine_tune = current is not None
        arguments = {"epochs": epochs, "architecture": architecture, "fine_tune": fine_tune, "seed": seed}
        with jobs.recorded_job(db, "pretrain --vectors-only" if vectors_only else "pretrain", arguments) as job:
            if vectors_only:
                written = job.updated = refresh_vectors(db)
            elif quiet or as_json:
                report = pretrain(db, epochs=epochs, batch_size=batch_size, fine_tune=fine_tune, seed=seed,
                                  architecture=architecture, actor=trained_by)  # fmt: skip
            else:
                bar = click.progressbar(
                    length=epochs, label="pretraining (epochs)", file=click.get_text_stream("stderr")
                )
                with bar:
                    report = pretrain(db, epochs=epochs, batch_size=batch_size, fine_tune=fine_tune, seed=seed,
                                      architecture=architecture, actor=trained_by, progress=bar.update)  # fmt: skip
            if not vectors_only:
                job.total, job.updated = report.images, report.vectors_written
                job.notes.append(f"facility image model v{report.version}")
    finally:
        db.close()
    if vectors_only:
        if as_json:
            click.echo(json.dumps({"trained": False, "vectors_written": written}))
        else:
            click.echo(f"no training; {written} image vectors written to the '{SPACE}' space by the current model")
        return
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    start = f"fine-tuned from v{report.fine_tuned_from}" if report.fine_tuned_from else "from scratch"
    click.echo(
        f"facility image model v{report.version} ({report.architecture}, {start}): {report.images} images, "
        f"{report.captions} distinct captions, {report.epochs} epochs in {report.seconds_training:.1f} s "
        f"({report.seconds_per_1000_images_epoch:.1f} s per 1,000 images per epoch)"
    )
    click.echo(f"loss per epoch: first {report.losses[0]:.3f}, last {report.losses[-1]:.3f}")
    for label, accuracy in report.label_accuracy.items():
        click.echo(f"  {label}: {accuracy:.3f} on the training images ({', '.join(report.labels[label])})")
    click.echo(
        f"{report.vectors_written} image vectors written to the '{SPACE}' space; search uses it for text→image, "
        f"item pages for 'more like this', 'scisearch train --features {SPACE}' for heads"
    )
