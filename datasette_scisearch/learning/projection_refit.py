"""A new text model for the facility image model: its projection refitted when 'scisearch learn' switches the
catalog's text model (learning/encoder_switch.py) to a tuned encoder or back.

The image model reads a query with the catalog's text model through a linear projection into its image space
(learning/pretrain.py).  When that text model changes, the projection is fitted to the new one; the image tower,
hence every stored image vector, stays.
"""

from __future__ import annotations

import json
import time

import numpy as np
import sqlite_utils

from ..tagging import vectors
from .pretrain import (
    EMBED_DIM,
    MAX_BANK,
    MIN_IMAGES,
    SPACE,
    PretrainError,
    PretrainReport,
    current_model,
    model_of_row,
    store_version,
    text_model,
    text_vectors,
    torch_libraries,
)
from .pretrain_data import described_files

RIDGE = 1e-2  # how firmly a refit keeps to the old projection where the captions do not say otherwise


def follow_text_model(db: sqlite_utils.Database) -> PretrainReport | None:
    """After the catalog's text model changed (a tuned encoder switched in or rolled back): refit the current image
    model's projection to the new one, or None when there is no image model or it already reads this one.

    Until then nothing is inconsistent: a query is embedded by the text model the projection was fitted to
    (``embed_query``), which stays on disk (a retired encoder is kept for rollback)."""
    current = current_model(db)
    if current is None or current["weights"] is None:
        return None
    now = text_model(db)
    if json.loads(current["report"]).get("text_model") == now:
        return None
    return refit_projection(db, now)


def refit_projection(
    db: sqlite_utils.Database,
    model_path: str | None,
    *,
    file_ids: list[int] | None = None,
    seed: int = 0,
    actor: str | None = None,
) -> PretrainReport:
    """A new version of the current image model whose projection reads ``model_path``'s text vectors.

    The image tower, hence every stored image vector, is kept.  The projection was learned together with the
    tower; what changed is only how a caption is read.  So the new projection is the smallest change of the old one
    that puts every caption (of the files with an image vector, or of ``file_ids``), read by the new model, where
    the old projection put it read by the old model: a ridge regression towards the old weights, in closed form
    (the old projection itself when the text model did not change).  Trained again by contrast with the images
    instead, on 84 demo images, it fitted its captions better and lost the words it had learned beyond them
    (benchmarks/pretrain.py: "nanoparticles" 1.0 → 0.0 precision@10 on one seed of two)."""
    started = time.perf_counter()
    _, torch = torch_libraries()
    current = current_model(db)
    if current is None or current["weights"] is None:
        raise PretrainError("this catalog has no facility image model", fix="run: scisearch pretrain CATALOG")
    old = json.loads(current["report"])
    model = model_of_row(current)
    pairs = _stored_pairs(db)
    image_vectors, captions = _captioned(db, dict(pairs), file_ids)
    if len(captions) < MIN_IMAGES:
        raise PretrainError(
            f"the image model's space holds {len(captions)} image vectors; a refit needs at least {MIN_IMAGES}",
            fix="write them first: scisearch pretrain CATALOG --vectors-only",
        )
    distinct = sorted(set(captions))
    caption_index = torch.tensor([distinct.index(c) for c in captions])
    images = torch.as_tensor(image_vectors)
    old_text = torch.as_tensor(text_vectors(distinct, old.get("text_model")))
    new_text = torch.as_tensor(text_vectors(distinct, model_path))
    report = PretrainReport(
        images=len(captions), epochs=0, batch_size=0, architecture=old["architecture"],
        fine_tuned_from=current["version"], labels=old["labels"], label_accuracy=old.get("label_accuracy", {}),
        captions=len(distinct), text_model=model_path, projection_only=True,
        caption_match_before=_caption_match(torch, model, images, old_text, caption_index),
    )  # fmt: skip
    fitting_started = time.perf_counter()
    with torch.no_grad():
        weight = model.projection.weight.double()  # (image dimensions, text dimensions)
        reading, placed = new_text.double(), old_text.double() @ weight.T
        gram = reading.T @ reading + RIDGE * torch.eye(reading.shape[1], dtype=torch.float64)
        fitted = torch.linalg.solve(gram, reading.T @ placed + RIDGE * weight.T).T
        model.projection.weight.copy_(fitted.float())
        report.losses.append(round(float(((reading @ fitted.T - placed) ** 2).sum(1).mean()), 6))
    report.seconds_training = round(time.perf_counter() - fitting_started, 3)
    model.eval()
    report.caption_match = _caption_match(torch, model, images, new_text, caption_index)
    bank = new_text[torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed))[:MAX_BANK]]
    model.caption_bank = bank.clone()
    report.vectors_written = len(pairs)
    report.seconds = round(time.perf_counter() - started, 2)
    encoded = np.stack([vector for _, vector in pairs]) if pairs else None
    store_version(
        db, model, json.loads(current["architecture"]), report, actor, ([rowid for rowid, _ in pairs], encoded)
    )
    return report


def _caption_match(torch, model, images, caption_vectors, caption_index) -> float:
    """How often an image's own caption is the nearest of the distinct captions, through the projection."""
    import torch.nn.functional as F

    with torch.no_grad():
        text = F.normalize(model.projection(caption_vectors), dim=-1)
        nearest = (images @ text.T).argmax(dim=1)
    return round(float((nearest == caption_index).float().mean()), 3)


def _stored_pairs(db: sqlite_utils.Database) -> list[tuple[int, np.ndarray]]:
    """(search item rowid, vector) of every file vector in the image model's space."""
    if SPACE not in vectors.spaces(db):
        return []
    return [
        (rowid, np.frombuffer(blob, dtype=np.float32))
        for rowid, blob in db.execute(f"select item_rowid, embedding from [{vectors.table_for(SPACE)}]")
    ]


def _captioned(db: sqlite_utils.Database, by_rowid: dict, file_ids=None) -> tuple[np.ndarray, list[str]]:
    """The stored image vectors (``by_rowid``) of files with a preview (or of ``file_ids``), and each file's
    caption."""
    file_rowids = dict(db.execute("select item_id, id from search_items where item_type = 'file'").fetchall())
    rows, captions = [], []
    for file_id, _, described, _ in described_files(db, file_ids, with_png=False):
        vector = by_rowid.get(file_rowids.get(str(file_id)))
        if vector is not None:
            rows.append(vector)
            captions.append(described)
    return np.stack(rows) if rows else np.zeros((0, EMBED_DIM), np.float32), captions
