"""Text→image search with the facility's own image model, on demo images it never saw, against chance.

The demo knows what every acquisition's picture shows (``demo/scenes.py: SHOWS``, by its scene), so relevance is
known: a file is relevant to a query when its scene shows every thing the query names ("nanoparticles": the
nanoparticles in an `Au_np` HAADF frame, not an `Au_np` diffraction pattern).  Files of seven kinds of scene are
catalogued (tests/learning_support.py); ``scisearch pretrain``'s library trains on half of them (every other file of
each scene, ``train_ids``), and writes the vectors of all.  Each query is then embedded as search does it (MiniLM →
the learned projection) and the *other* half ranked by their image vectors alone — no tags, no metadata text, no
captions of theirs, no CLIP — and precision@10 counted, for each seed.  The baseline, in the same run, is a random
ranking (its expected precision@10 is the share of relevant files in the held-out half).  Also printed: the time
per 1,000 images per epoch on this machine's CPU.

``--tuned-text N``: the catalog's text model then changes, as when ``scisearch learn --encoder`` switches in a tuned
encoder: all-MiniLM-L6-v2 fine-tuned here on N SciFact title → abstract pairs (``../shared/data/scifact``, one
epoch).  Measured side by side, per seed: queries read by the new model through the old projection (what a
model that did not follow would do) and through the projection refitted to it
(``projection_refit.refit_projection``, what the switch does, here fitted to the training half's image vectors and
captions only), with its time.

Run: .venv/bin/python benchmarks/pretrain.py [--per-class 24] [--epochs 30] [--seeds 2] [--tuned-text 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.demo.scenes import SHOWS  # noqa: E402
from datasette_scisearch.learning import pretrain, projection_refit  # noqa: E402
from tests.learning_support import _choose_acquisitions, build_scene_catalog  # noqa: E402

SCENES = {  # classes of scenes, each drawn in equal numbers
    "diffraction": ("spots", "rings"),
    "atomic columns haadf": ("columns_haadf",),
    "gold nanoparticles at atomic resolution": ("particles_columns_haadf",),
    "particles": ("particles_haadf", "cubes_haadf", "cubes_bf"),
    "hrtem lattice": ("columns_hrtem",),
    "amorphous carbon": ("carbon_bf",),
    "nanowires sem": ("nanowires_sem",),
}
# A held-out file is relevant to a query when its scene shows every one of these (the demo's ground truth,
# demo/scenes.py SHOWS): a file named 'Au_np_…' is relevant to "nanoparticles" only if its picture shows them.
QUERIES = {
    "diffraction pattern": {"diffraction pattern"},
    "atomic resolution HAADF": {"atomic columns", "HAADF"},
    "nanoparticles": {"nanoparticles"},
}
TARGET = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=24, help="demo files per class, half held out (default 24)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=2, help="trainings with different seeds (default 2)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--architectures", default=",".join(pretrain.ARCHITECTURES), help="compared side by side")
    parser.add_argument("--folder", help="build the demo catalog here, or reuse the one built here before")
    parser.add_argument("--tuned-text", type=int, default=0, metavar="N", help="then a text model tuned on N pairs")
    arguments = parser.parse_args()
    started = time.perf_counter()
    folder = Path(arguments.folder or tempfile.mkdtemp(prefix="scisearch-pretrain-"))
    truth = catalog_of_scenes(folder, arguments.per_class)
    print(f"{len(truth)} demo files of {len(SCENES)} classes ready in {time.perf_counter() - started:.0f} s ({folder})")
    train, held_out = split(truth)
    db = open_catalog(folder / "scenes.db")
    architectures = arguments.architectures.split(",")
    tuned = tuned_text_model(folder, arguments.tuned_text) if arguments.tuned_text else None
    columns = architectures + [f"{a} {how}" for a in architectures for how in ("as-was", "refit") if tuned]
    results = {(a, query): [] for a in columns for query in QUERIES}
    for architecture in architectures:
        for seed in range(arguments.seeds):
            report = pretrain.pretrain(db, epochs=arguments.epochs, batch_size=arguments.batch_size, train_ids=train,
                                       seed=seed, architecture=architecture)  # fmt: skip
            print(
                f"{architecture} seed {seed}: {report.images} images, {report.epochs} epochs of batches of "
                f"{report.batch_size} in {report.seconds_training:.1f} s = "
                f"{report.seconds_per_1000_images_epoch:.1f} s per 1,000 images per epoch; "
                f"loss {report.losses[0]:.2f} → {report.losses[-1]:.2f}; label accuracy "
                f"(training images) {report.label_accuracy}"
            )
            ids, matrix = held_out_vectors(db, held_out)
            for query, relevant in QUERIES.items():
                vector, problem = pretrain.embed_query(db, query)
                assert vector is not None, problem
                top = [ids[row] for row in np.argsort(-(matrix @ vector))[:10]]
                results[architecture, query].append(sum(relevant <= SHOWS[truth[i]] for i in top) / 10)
            if tuned is None:
                continue
            as_was = pretrain._loaded(db)
            refit = projection_refit.refit_projection(db, str(tuned), file_ids=train, seed=seed)
            print(
                f"  refitted to the tuned text model in {refit.seconds:.1f} s on {refit.images} image vectors; image → "
                f"own caption {refit.caption_match_before:.2f} before, {refit.caption_match:.2f} after"
            )
            for query, relevant in QUERIES.items():
                for how, vector in (
                    ("as-was", through(as_was, query, tuned)),
                    ("refit", pretrain.embed_query(db, query)[0]),
                ):
                    top = [ids[row] for row in np.argsort(-(matrix @ vector))[:10]]
                    results[f"{architecture} {how}", query].append(sum(relevant <= SHOWS[truth[i]] for i in top) / 10)
    db.close()
    print(f"\nprecision@10 over the {len(held_out)} held-out files (image vectors only), target >= {TARGET}")
    print(f"{'query':28s} " + " ".join(f"{a:>13s}" for a in columns) + f" {'random (expected)':>18s}")
    for query, relevant in QUERIES.items():
        chance = sum(relevant <= SHOWS[truth[i]] for i in held_out) / len(held_out)
        figures = " ".join(f"{np.mean(results[a, query]):13.2f}" for a in columns)
        print(f"{query:28s} {figures} {chance:18.2f}   per seed: {[results[a, query] for a in columns]}")
    print(f"total {time.perf_counter() - started:.0f} s")


def tuned_text_model(folder: Path, pairs: int) -> Path:
    """all-MiniLM-L6-v2 fine-tuned for one epoch on ``pairs`` SciFact title → abstract pairs (kept in ``folder``)."""
    import json

    from datasette_scisearch.learning import encoder

    tuned = folder / f"text-tuned-{pairs}"
    if tuned.exists():
        return tuned
    corpus = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
    documents = [json.loads(line) for line in corpus.read_text().splitlines()[:pairs]]
    model = encoder._base_model()
    model.max_seq_length = 128
    started = time.perf_counter()
    encoder._train(model, [(d["title"], d["text"], None) for d in documents], epochs=1, batch_size=32, progress=None)
    model.save(str(tuned))
    print(
        f"text model tuned on {len(documents)} SciFact title → abstract pairs in {time.perf_counter() - started:.0f} s"
    )
    return tuned


def through(model, query: str, text_model: Path) -> np.ndarray:
    """The query read by ``text_model`` through ``model``'s projection and captions' bank, as they were."""
    import torch

    words = torch.as_tensor(pretrain.text_vectors([query], str(text_model)))
    with torch.inference_mode():
        weights = torch.softmax(model.caption_bank @ words[0] / pretrain.QUERY_TEMPERATURE, dim=0)
        projected = torch.nn.functional.normalize(model.projection((weights @ model.caption_bank)[None]), dim=-1)
    return projected[0].numpy()


def catalog_of_scenes(folder: Path, per_class: int) -> dict[int, str]:
    """File id -> scene of the demo catalog in ``folder``, built there first unless it already is (the truth is
    the programme's plan, which costs nothing to make again)."""
    if not (folder / "scenes.db").exists():
        build_scene_catalog(folder, per_class, scene_classes=SCENES)
    planned = _choose_acquisitions(folder / "data", per_class, list(SCENES), 0, SCENES)
    by_path = {str(acquisition.path): acquisition.scene for acquisition, _ in planned}
    db = open_catalog(folder / "scenes.db")
    truth = {int(file_id): by_path[path] for file_id, path in db.execute("select id, path from files")}
    db.close()
    return truth


def split(truth: dict[int, str]) -> tuple[list[int], list[int]]:
    """Every other file of each scene to train on, the rest held out."""
    train, held_out = [], []
    for scene in sorted(set(truth.values())):
        members = sorted(i for i, c in truth.items() if c == scene)
        train += members[0::2]
        held_out += members[1::2]
    return train, held_out


def held_out_vectors(db, held_out: list[int]) -> tuple[list[int], np.ndarray]:
    rows = db.execute(
        f"select s.item_id, v.embedding from vec_{pretrain.SPACE} v join search_items s on s.id = v.item_rowid "
        "where s.item_type = 'file'"
    ).fetchall()
    keep = set(held_out)
    pairs = [(int(item_id), np.frombuffer(blob, dtype=np.float32)) for item_id, blob in rows if int(item_id) in keep]
    return [i for i, _ in pairs], np.stack([v for _, v in pairs])


if __name__ == "__main__":
    main()
