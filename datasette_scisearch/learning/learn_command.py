"""``scisearch learn CATALOG``: turn the search log's clicks into the ranking signal search uses.

Run it from cron, or leave ``--every MINUTES`` running next to the server.  The
web plugin does not learn by itself: ``learn`` reads the whole log, which a
search request should not wait for, and a burst of beacons should not be able
to make the server recompute anything.

``--ranking`` also fits the fusion weights and similarity floors to the
catalog's evidence by cross-validation (``fusion.py``) and keeps them only if
they measured better on held-out queries; ``--rollback`` goes back to the ones
before.  ``--encoder`` fine-tunes the text encoder on the same evidence
(``encoder.py``) and keeps it only if it measured better; then every item's
vector is made again with it while search goes on with the ones in use, and
search switches when all are made (``encoder_switch.py``; ``--reembed`` resumes
a run that was stopped, ``--encoder-rollback`` goes back).  With both, the
encoder comes first and the fusion is fitted to the vectors search switched to.  ``scisearch load
judgments CATALOG FILE`` imports judged pairs to learn from (``judgments.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from tqdm import tqdm

from .. import jobs
from ..catalog import ITEM_TYPES, open_catalog
from ..command_line import ScisearchCommand, catalog_argument
from . import clicks, encoder, encoder_switch, fusion
from .clicks import LearnReport
from .judgments import load_judgments

PROPENSITIES_SHOWN = 10


def describe(report: LearnReport) -> list[str]:
    """The one-screen summary of what was learned."""
    lines = [
        f"learn clicks: {report.searches:,} searches, {report.impressions:,} results shown, "
        f"{report.clicks:,} clicks in {report.seconds:.1f} s",
        f"  counted {report.counted_clicks:,} clicks of {report.counted_impressions:,} impressions "
        "(each actor once per query, item and day)",
        f"  {report.pairs:,} (query, item) signals for {report.queries:,} queries, {report.boosted:,} of them boosts",
    ]
    if not report.searches:
        lines.append("  nothing to learn yet: the search page logs searches and clicks as people use it")
    elif report.debiased:
        shown = ", ".join(f"{k}: {p:.2f}" for k, p in enumerate(report.propensities[:PROPENSITIES_SHOWN], start=1))
        lines.append(f"  examination by position (EM, {report.iterations} iterations): {shown}")
    else:
        lines.append("  not corrected for position bias (--naive)")
    if report.searches:
        lines.append(f"  mean attractiveness once looked at: {report.mean_attractiveness:.3f}")
    return lines


def describe_fusion(report: fusion.FusionReport) -> list[str]:
    """The one-screen summary of a fusion fit."""
    evidence = ", ".join(f"{count:,} {source}" for source, count in sorted(report.evidence.items()))
    lines = [
        f"learn ranking: {report.queries:,} queries ({evidence}), {report.folds}-fold cross-validation "
        f"in {report.seconds:.1f} s",
        f"  held-out nDCG@10 {report.ndcg_in_use:.4f} -> {report.ndcg_fitted:.4f}, "
        f"recall@100 {report.recall_in_use:.4f} -> {report.recall_fitted:.4f}",
        "  weights in use: " + ", ".join(f"{k} {v:g}" for k, v in report.weights_in_use.items()),
        "  fitted:         " + ", ".join(f"{k} {v:g}" for k, v in report.fitted.items()),
    ]
    if report.unseen_by_encoder_only:
        lines.insert(1, "  (only the queries the tuned text encoder in use never trained on: one in five)")
    for source, figures in sorted(report.per_source.items()):
        lines.append(
            f"  {source}: {figures['queries']:,} queries, nDCG@10 {figures['ndcg_in_use']:.4f} -> "
            f"{figures['ndcg_fitted']:.4f}"
        )
    verdict = f"kept as version {report.version}: " if report.accepted and report.version else ""
    lines.append(f"  {verdict}{report.reason}")
    return lines


@click.command(name="learn", cls=ScisearchCommand)
@catalog_argument()
@click.option("--every", type=click.FloatRange(min=0.1), metavar="MINUTES", help="learn again every MINUTES, until ^C")
@click.option("--naive", is_flag=True, help="plain click rates, not corrected for position bias (for comparison)")
@click.option("--signed-in-only", is_flag=True, help="learn only from searches by signed-in actors")
@click.option(
    "--ranking",
    is_flag=True,
    help="also fit the fusion weights and similarity floors to the catalog's evidence (judgments, clicks, "
    "experts' tags, citations) by cross-validation; kept only if they measure better on held-out queries",
)
@click.option("--folds", type=click.IntRange(2, 20), default=fusion.FOLDS, show_default=True, help="with --ranking")
@click.option(
    "--encoder",
    "tune_encoder",
    is_flag=True,
    help="also fine-tune the text encoder on the evidence (in-batch negatives); kept only if it measures better "
    "on held-out queries",
)
@click.option(
    "--max-pairs", type=click.IntRange(16), default=encoder.MAX_PAIRS, show_default=True, help="with --encoder"
)
@click.option("--epochs", type=click.IntRange(1, 20), default=encoder.EPOCHS, show_default=True, help="with --encoder")
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True, max=1e-2),
    default=encoder.LEARNING_RATE,
    show_default=True,
    help="with --encoder: AdamW's peak rate (warm-up, then linear decay)",
)
@click.option(
    "--reembed/--no-reembed",
    default=True,
    show_default=True,
    help="make every item's vector with a kept encoder (or one a stopped run left), then switch search to it",
)
@click.option("--rollback", is_flag=True, help="retire the fitted fusion weights in use and bring back the ones before")
@click.option(
    "--encoder-rollback", is_flag=True, help="switch the text vectors back to the encoder in use before the current one"
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def learn(
    catalog: str,
    every: float | None,
    naive: bool,
    signed_in_only: bool,
    ranking: bool,
    folds: int,
    tune_encoder: bool,
    max_pairs: int,
    epochs: int,
    learning_rate: float,
    reembed: bool,
    rollback: bool,
    encoder_rollback: bool,
    as_json: bool,
) -> None:
    """Learn a position-debiased click signal from the search log of CATALOG (and, with --ranking, the
    fusion weights from all of its evidence)."""
    db = open_catalog(catalog, create=False)
    modes = [name for name, chosen in (("--ranking", ranking), ("--encoder", tune_encoder)) if chosen]
    try:
        if rollback or encoder_rollback:
            wanted = [
                name for name, chosen in (("--rollback", rollback), ("--encoder-rollback", encoder_rollback)) if chosen
            ]
            with jobs.recorded_job(db, " ".join(["learn", *wanted])):
                if rollback:
                    _rollback(db, as_json)
                if encoder_rollback:
                    _encoder_rollback(db, as_json)
            return
        while True:
            switching = False
            # A job a round: a kill shows as that round interrupted, the rounds before it done.
            with jobs.recorded_job(db, " ".join(["learn", *modes]), {"naive": naive, "folds": folds}) as job:
                report = clicks.learn(db, debias=not naive, signed_in_only=signed_in_only)
                click.echo(json.dumps(report.as_dict()) if as_json else "\n".join(describe(report)))
                job.total, job.updated = report.searches, report.pairs
                if tune_encoder:
                    job.notes.append(_learn_encoder(db, max_pairs, epochs, learning_rate, as_json))
                switching = reembed and _waiting_encoder(db)
                if ranking and not switching:
                    job.notes.append(_learn_ranking(db, folds, as_json))
            if switching:
                _reembed(db, as_json)
                # Fitted after the switch: weights fitted to the vectors being replaced would not fit the new ones.
                if ranking:
                    with jobs.recorded_job(db, "learn --ranking", {"folds": folds}) as job:
                        job.notes.append(_learn_ranking(db, folds, as_json))
            if every is None:
                return
            time.sleep(every * 60)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        db.close()


def _learn_ranking(db, folds: int, as_json: bool) -> str:
    progress = None if as_json else (lambda line: click.echo(f"  {line}", err=True))
    report = fusion.learn_fusion(db, folds=folds, progress=progress)
    click.echo(json.dumps(report.as_dict()) if as_json else "\n".join(describe_fusion(report)))
    return f"ranking: {report.reason}"


def _learn_encoder(db, max_pairs: int, epochs: int, learning_rate: float, as_json: bool) -> str:
    progress = None if as_json else (lambda line: click.echo(f"  {line}", err=True))
    report = encoder.learn_encoder(
        db, max_pairs=max_pairs, epochs=epochs, learning_rate=learning_rate, progress=progress
    )
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return f"encoder: {report.reason}"
    click.echo(
        f"learn encoder: {report.pairs:,} pairs, {report.epochs} epoch(s) of batches of {report.batch_size} "
        f"({report.max_seq_length} word pieces) in {report.train_seconds:.0f} s; "
        f"measured in {report.measure_seconds:.0f} s"
    )
    kept = f"  kept as version {report.version} in {report.model_path}: " if report.accepted else "  "
    click.echo(kept + report.reason)
    return f"encoder: {report.reason}"


def _waiting_encoder(db) -> bool:
    return bool(
        db.execute(
            "select 1 from ranking_models where kind = 'encoder' and status in ('trained', 'embedding') limit 1"
        ).fetchone()
    )


def _reembed(db, as_json: bool) -> None:
    waiting = encoder_switch.encoder_row(db)
    job = jobs.start_job(db, "learn --reembed", {"encoder_version": waiting["version"]})
    bar = tqdm(desc=f"re-embedding for encoder v{waiting['version']}", unit="item", disable=as_json, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        report = encoder_switch.reembed(db, waiting["version"], progress=progress)
    except BaseException as error:
        # Vectors made so far are committed: the job says it stopped, and --reembed goes on from there.
        status = "failed" if isinstance(error, Exception) else "interrupted"
        jobs.finish_job(db, job, jobs.Summary("learn --reembed", notes=[str(error)]), status=status)
        raise
    finally:
        bar.close()
    summary = jobs.Summary("learn --reembed", total=report.items, updated=report.embedded, failed=report.refused)
    summary.seconds = report.seconds
    jobs.finish_job(db, job, summary)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    earlier = f" ({report.already:,} made by an earlier run)" if report.already else ""
    refused = f"; {report.refused:,} gave no vector and leave the space" if report.refused else ""
    click.echo(
        f"re-embedded {report.embedded:,} of {report.items:,} items with encoder v{report.version} in "
        f"{report.seconds:.0f} s{earlier}{refused}; search now uses its vectors "
        "(scisearch learn CATALOG --encoder-rollback goes back)"
    )
    for note in report.notes:
        click.echo(f"  {note}")


def _encoder_rollback(db, as_json: bool) -> None:
    notes: list[str] = []
    version = encoder_switch.rollback(db, notes=notes)
    now = f"tuned encoder version {version}" if version else "the text tagger's own model"
    if as_json:
        click.echo(json.dumps({"encoder_version": version, "notes": notes}))
        return
    click.echo(f"rolled back: text vectors now from {now}")
    for note in notes:
        click.echo(f"  {note}")


def _rollback(db, as_json: bool) -> None:
    version = fusion.rollback(db)
    now = f"fitted weights version {version}" if version else "the shipped default weights"
    click.echo(json.dumps({"fusion_version": version}) if as_json else f"rolled back: search now uses {now}")


@click.command(name="judgments", cls=ScisearchCommand)
@catalog_argument("path", count=1, metavar="FILE")
@click.option(
    "--queries",
    type=click.Path(path_type=Path, dir_okay=False),
    help="the query texts for TREC qrels (BEIR queries.jsonl, or ID<TAB>TEXT lines)",
)
@click.option("--type", "item_type", type=click.Choice(ITEM_TYPES), help="the item type every judged id names")
@click.option("--replace", is_flag=True, help="forget the judgments imported before")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def load_judgments_command(catalog, path, queries, item_type, replace, as_json) -> None:
    """Import judged query-item pairs (TREC qrels or JSONL) for 'scisearch learn --ranking' to learn from."""
    db = open_catalog(catalog, create=False)
    try:
        report = load_judgments(db, Path(path), queries=queries, item_type=item_type, replace=replace)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    click.echo(
        f"judgments: {report.imported:,} pairs for {report.queries:,} queries imported from {path}, "
        f"{report.skipped:,} lines skipped"
    )
    for problem in report.problems:
        click.echo(f"  skipped {problem}")
    if report.skipped > len(report.problems):
        click.echo(f"  … and {report.skipped - len(report.problems):,} more")
