"""``scisearch pretrain``: the command-line face of learning/pretrain.py (the library trains; this prints)."""

from __future__ import annotations

import json

import click

from .. import jobs
from ..catalog import open_catalog
from ..command_line import ScisearchCommand, catalog_argument, cluster_of, dask_option, device_option, workers_option
from .pretrain import (
    ARCHITECTURES,
    DEFAULT_ARCHITECTURE,
    MAX_TRAINING_IMAGES,
    MIN_IMAGES,
    SPACE,
    new_images_since_current,
    pretrain,
    refresh_vectors,
)


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
@click.option(
    "--max-images",
    default=MAX_TRAINING_IMAGES,
    show_default=True,
    type=click.IntRange(MIN_IMAGES),
    help="train on a random sample of this many previews where the catalog holds more (vectors are written for all)",
)
@device_option
@click.option("--seed", default=0, show_default=True, type=int, help="random seed (same seed, same model)")
@click.option("--by", "trained_by", help="who trained it (recorded with the model)")
@dask_option
@workers_option
@click.option("--json", "as_json", is_flag=True, help="print the training report as JSON")
@click.option("--quiet", is_flag=True, help="no progress bar")
def pretrain_command(
    catalog, epochs, architecture, batch_size, fine_tune, when_new, vectors_only, max_images, device, seed,
    trained_by, dask, workers, as_json, quiet,
):  # fmt: skip
    """Train the facility's own image encoder on the catalog's previews: a small open_clip vision transformer, from
    scratch, taught the labels its instruments recorded (mode, kind, detector, magnification band) and to match
    captions made from metadata, file-name shorthand and proposal titles, read by the packaged MiniLM through a
    learned projection. Writes a new version of the model into the catalog and the 'facility_image' vector of every
    image file: "more like this", a feature space for 'scisearch train', and text-to-image search without any
    downloaded weights. CPU: about a minute for a few hundred images at the default 30 epochs; a GPU where torch
    sees one. When 'scisearch learn' switches the catalog to a tuned text encoder (or back), the projection is
    refitted to it on its own. With --dask or --workers the vectors of every image are made by a cluster's
    workers (the training runs here: on a GPU where there is one)."""
    db = open_catalog(catalog, create=False)
    missing_only = False
    try:
        if when_new is not None:
            current, arrived = new_images_since_current(db)
            missing_only = not vectors_only and current is not None and arrived < when_new
            vectors_only = vectors_only or missing_only
            fine_tune = current is not None
        arguments = {"epochs": epochs, "architecture": architecture, "fine_tune": fine_tune, "seed": seed}
        options = dict(epochs=epochs, batch_size=batch_size, fine_tune=fine_tune, seed=seed, architecture=architecture,
                       actor=trained_by, device=device, max_images=max_images)  # fmt: skip
        with (
            jobs.recorded_job(db, "pretrain --vectors-only" if vectors_only else "pretrain", arguments) as job,
            cluster_of(dask, workers) as cluster,
        ):
            if vectors_only:
                written = job.updated = refresh_vectors(db, missing_only=missing_only, cluster=cluster)
            elif quiet or as_json:
                report = pretrain(db, cluster=cluster, **options)
            else:
                bar = click.progressbar(
                    length=epochs, label="pretraining (epochs)", file=click.get_text_stream("stderr")
                )
                with bar:
                    report = pretrain(db, cluster=cluster, progress=bar.update, **options)
            if not vectors_only:
                job.total, job.updated = report.images, report.vectors_written
                job.notes.append(f"facility image model v{report.version}")
    finally:
        db.close()
    if vectors_only:
        if as_json:
            click.echo(json.dumps({"trained": False, "vectors_written": written}))
        else:
            which = "images that had none" if missing_only else "every image"
            click.echo(f"no training; {written} image vectors written to the '{SPACE}' space by the current model "
                       f"({which})")  # fmt: skip
        return
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    start = f"fine-tuned from v{report.fine_tuned_from}" if report.fine_tuned_from else "from scratch"
    if report.sampled_from:
        start += f", on a random {report.images:,} of {report.sampled_from:,} previews"
    click.echo(
        f"facility image model v{report.version} ({report.architecture}, {start}): {report.images} images, "
        f"{report.captions} distinct captions, {report.epochs} epochs in {report.seconds_training:.1f} s on "
        f"{report.device} ({report.seconds_per_1000_images_epoch:.1f} s per 1,000 images per epoch)"
    )
    reader = f"the tuned encoder in {report.text_model}" if report.text_model else "the packaged all-MiniLM-L6-v2"
    click.echo(f"captions read by the catalog's text model: {reader}")
    click.echo(f"loss per epoch: first {report.losses[0]:.3f}, last {report.losses[-1]:.3f}")
    for label, accuracy in report.label_accuracy.items():
        click.echo(f"  {label}: {accuracy:.3f} on the training images ({', '.join(report.labels[label])})")
    click.echo(
        f"{report.vectors_written} image vectors written to the '{SPACE}' space; search uses it for text→image, "
        f"item pages for 'more like this', 'scisearch train --features {SPACE}' for heads"
    )
