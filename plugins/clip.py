"""CLIP: image embeddings of instrument files (vector space "clip") and zero-shot labels from a vocabulary.

open_clip (Ilharco et al.) builds the model; its weights are configuration,
never fetched by this code on its own::

    plugins:
      datasette-scisearch:
        taggers:
          clip:
            model: ViT-B-32                         # open_clip architecture
            checkpoint: /models/clip/ViT-B-32.bin   # local weights (state dict, .bin/.pt/.safetensors, or their folder)
            # pretrained: laion2b_s34b_b79k         # or a tag open_clip resolves from its cache
            # model_config: /models/clip/my-arch.json  # an architecture open_clip does not ship
            vocabulary: [nanoparticles, lattice fringes, diffraction pattern]
            min_score: 0.2                          # softmax probability a label needs
            max_labels: 3
            # batch_size: 64                        # images per model batch (256 on a GPU)
            # prompt: "an electron micrograph of {term}"
            # read_workers: 4                       # threads reading a batch's frames in parallel

Raw EM frames are not photographs: a few hot pixels or a bright beam stop
would leave the rest black after a min/max scaling, so frames are stretched
between their 0.5th and 99.5th percentiles (diffraction patterns on a log
scale first, as their previews are), centre-cropped to a square, resized to
the model's input and copied to three channels.  That happens in torch, on
the GPU when there is one, where the model then runs in fp16.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.tagging.tagger import Item, ItemError, Result, Tag, Tagger, TaggerUnavailable

from .helpers.model_options import count_option, number_option

SPACE = "clip"
DEFAULT_ARCHITECTURE = "ViT-B-32"
DEFAULT_PROMPT = "an electron micrograph of {term}"
DEFAULT_VOCABULARY = (
    "nanoparticles",
    "lattice fringes",
    "atomic columns",
    "diffraction pattern",
    "grain boundary",
    "dislocations",
    "nanowire",
    "thin film cross-section",
    "porous material",
    "cell",
    "biological tissue",
    "protein particles in ice",
    "amorphous carbon",
    "crystal facets",
    "empty background",
)
# Reciprocal-space images span decades of intensity; their spots only show on a log scale.
LOG_SCALED_KINDS = frozenset({"diffraction", "4D"})
STRETCH_PERCENTILES = (0.005, 0.995)

HOW_TO_PROVIDE_WEIGHTS = (
    "set 'checkpoint:' under plugins: datasette-scisearch: taggers: clip: in metadata.yml to a local open_clip "
    "checkpoint, with 'model:' naming its architecture, e.g. "
    "{model: ViT-B-32, checkpoint: /models/clip/ViT-B-32-laion2b_s34b_b79k.bin}. To get weights, on a machine "
    "with internet run: python -c \"import open_clip; open_clip.create_model('ViT-B-32', "
    "pretrained='laion2b_s34b_b79k')\" and copy the open_clip_pytorch_model.bin it saved under "
    "~/.cache/huggingface/hub to this machine (or copy that cache folder here and set 'pretrained: "
    "laion2b_s34b_b79k' instead of 'checkpoint:'). The rest of the catalog works without CLIP."
)


@contextlib.contextmanager
def quiet_open_clip():
    """open_clip logs a warning on the root logger whenever it builds a model without weights, which is
    how we build one before loading a checkpoint into it."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _open_clip():
    try:
        import open_clip
        import torch
    except ImportError:
        raise TaggerUnavailable("open_clip is not installed: pip install 'datasette-scisearch[models]'") from None
    return open_clip, torch


def create_clip_model(options: dict[str, Any]):
    """The open_clip model the options describe, on the CPU in fp32, and its architecture name."""
    open_clip, _ = _open_clip()
    architecture = str(options.get("model") or DEFAULT_ARCHITECTURE)
    if options.get("model_config"):
        config = Path(options["model_config"]).expanduser()
        if not config.is_file():
            raise TaggerUnavailable(f"model_config '{config}' under taggers: clip: does not exist")
        open_clip.add_model_config(config)
        architecture = config.stem
    if architecture not in open_clip.list_models():
        raise TaggerUnavailable(
            f"open_clip has no architecture '{architecture}' (taggers: clip: model:); known ones include "
            f"ViT-B-32, ViT-B-16, ViT-L-14, RN50 — 'python -c \"import open_clip; print(open_clip.list_models())\"' "
            f"lists all, and 'model_config:' can name a JSON file of your own"
        )
    if options.get("checkpoint"):
        return _model_from_checkpoint(architecture, Path(options["checkpoint"]).expanduser()), architecture
    if options.get("pretrained"):
        tag = str(options["pretrained"])
        try:
            return open_clip.create_model(architecture, pretrained=tag), architecture
        except Exception as error:  # no cache and no hub here: a sentence, not open_clip's traceback
            raise TaggerUnavailable(
                f"open_clip cannot provide the weights '{tag}' for {architecture} here ({_first_line(error)}); "
                + HOW_TO_PROVIDE_WEIGHTS
            ) from None
    raise TaggerUnavailable("no CLIP checkpoint is configured: " + HOW_TO_PROVIDE_WEIGHTS)


def _model_from_checkpoint(architecture: str, checkpoint: Path):
    open_clip, _ = _open_clip()
    if checkpoint.is_dir():
        checkpoint = _weights_in(checkpoint)
    if not checkpoint.is_file():
        raise TaggerUnavailable(f"the CLIP checkpoint '{checkpoint}' does not exist; " + HOW_TO_PROVIDE_WEIGHTS)
    with quiet_open_clip():
        model = open_clip.create_model(architecture)
    try:
        open_clip.load_checkpoint(model, str(checkpoint))
    except (AssertionError, KeyError) as error:
        raise _wrong_architecture(checkpoint, architecture, error) from None
    except Exception as error:
        # load_state_dict's mismatch report and an unreadable file are both RuntimeErrors; the report says so.
        if "loading state_dict" in str(error):
            raise _wrong_architecture(checkpoint, architecture, error) from None
        raise TaggerUnavailable(
            f"cannot read the CLIP checkpoint '{checkpoint}' ({_first_line(error)}); it must be an open_clip "
            f"state dict saved with torch.save or as .safetensors"
        ) from None
    return model


def _weights_in(folder: Path) -> Path:
    """The weights file in a folder (a copied model-hub snapshot holds one), safetensors first."""
    for pattern in ("*.safetensors", "*.bin", "*.pt", "*.pth"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise TaggerUnavailable(
        f"the CLIP checkpoint folder '{folder}' holds no .safetensors, .bin, .pt or .pth file; "
        + HOW_TO_PROVIDE_WEIGHTS
    )


def _wrong_architecture(checkpoint: Path, architecture: str, error: Exception) -> TaggerUnavailable:
    return TaggerUnavailable(
        f"the CLIP checkpoint '{checkpoint}' does not fit the architecture '{architecture}' "
        f"({_first_line(error)}); set 'model:' under taggers: clip: to the architecture it was trained as "
        f"(its file name usually says, e.g. ViT-B-16 or ViT-L-14)"
    )


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and "Error(s) in" not in line]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def _vocabulary(options: dict[str, Any]) -> list[str]:
    terms = options.get("vocabulary", DEFAULT_VOCABULARY)
    if isinstance(terms, str) or not terms or not all(isinstance(term, str) and term.strip() for term in terms):
        raise TaggerUnavailable("'vocabulary' under taggers: clip: must be a list of terms, e.g. [nanowire, cell]")
    return [term.strip() for term in terms]


def _prompts(template: str, terms: list[str]) -> list[str]:
    try:
        prompts = [template.format(term=term) for term in terms]
    except (KeyError, IndexError, ValueError):
        prompts = []
    if "{term}" not in template or not prompts:
        raise TaggerUnavailable(
            f"'prompt' under taggers: clip: must contain {{term}} and no other braces, e.g. '{DEFAULT_PROMPT}'"
        )
    return prompts


def stretched_squares(frames: list[np.ndarray], kinds: list[str], size: int, device: str = "cpu"):
    """Frames as an (n, size, size) float32 tensor in [0, 1]: centre crop, antialiased resize, percentile stretch.

    The percentiles are taken after the resize, on size x size pixels for the whole batch at once, rather
    than on each full frame: a sort of 50,000 values instead of 200,000, and those the model will see.
    """
    import torch
    import torch.nn.functional as F

    squares = []
    for frame, kind in zip(frames, kinds):
        height, width = frame.shape
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        crop = np.ascontiguousarray(frame[top : top + side, left : left + side])
        pixels = torch.as_tensor(crop, dtype=torch.float32).to(device)
        finite = torch.isfinite(pixels)
        if not bool(finite.all()):
            fill = pixels[finite].median() if bool(finite.any()) else torch.tensor(0.0, device=device)
            pixels = torch.where(finite, pixels, fill)
        if kind in LOG_SCALED_KINDS:
            pixels = torch.log1p((pixels - pixels.min()).clamp(min=0))
        squares.append(F.interpolate(pixels[None, None], size=(size, size), mode="bilinear", antialias=True)[0, 0])
    batch = torch.stack(squares)
    low, high = torch.quantile(batch.flatten(1), torch.tensor(STRETCH_PERCENTILES, device=device), dim=1)
    span = (high - low)[:, None, None]
    stretched = ((batch - low[:, None, None]) / span.clamp(min=1e-12)).clamp(0, 1)
    return torch.where(span > 0, stretched, torch.zeros_like(stretched))  # a blank frame stays blank


def stretched_square(frame: np.ndarray, size: int, kind: str = "image", device: str = "cpu"):
    """One frame as ``stretched_squares`` makes it: (size, size) in [0, 1]."""
    return stretched_squares([frame], [kind], size, device)[0]


class ClipTagger(Tagger):
    name = "clip"
    version = "2"  # 2: tags name their category
    tag_category = "feature"  # its vocabulary names what an image shows
    description = "open_clip image embeddings (vector space 'clip') and zero-shot labels from a microscopy vocabulary"
    applies_to = frozenset({"file"})
    needs_pixels = True
    uses_gpu = True
    batch_size = 64
    vector_spaces = {SPACE: 512}  # ViT-B-32's; load() sets the loaded model's

    def __init__(self) -> None:
        self.model = None
        self.model_name = ""

    def wants(self, item: Item) -> bool:
        return item.row.get("kind") != "spectrum"  # a 1-D spectrum has no picture to look at

    def load(self, options: dict[str, Any], device: str = "cpu") -> None:
        open_clip, torch = _open_clip()
        self.terms = _vocabulary(options)
        self.prompts = _prompts(str(options.get("prompt", DEFAULT_PROMPT)), self.terms)
        self.min_score = number_option(options, self.name, "min_score", 0.2, 0.0, 1.0)
        self.max_labels = count_option(options, self.name, "max_labels", 3, low=0)
        self.workers = count_option(options, self.name, "read_workers", 4, high=64)
        # A GPU encodes a few hundred images in the time a CPU does one; give it more per batch.
        self.batch_size = count_option(options, self.name, "batch_size", 256 if device.startswith("cuda") else 64)
        model, architecture = create_clip_model(options)
        weights = Path(options["checkpoint"]).name if options.get("checkpoint") else options.get("pretrained")
        self.model_name = f"{architecture} ({weights})"
        self.device = device
        self.dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.tokenizer = open_clip.get_tokenizer(architecture)
        preprocess = open_clip.get_model_preprocess_cfg(model)
        size = preprocess.get("size", 224)
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = torch.tensor(preprocess.get("mean", (0.5, 0.5, 0.5)), device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocess.get("std", (0.5, 0.5, 0.5)), device=device).view(1, 3, 1, 1)
        self.logit_scale = float(model.logit_scale.detach().exp().clamp(max=100))
        self.prompt_vectors = self._encode_texts(self.prompts)
        self.vector_spaces = {SPACE: int(self.prompt_vectors.shape[1])}

    def tag_batch(self, items: list[Item]):
        self._loaded()
        # Reading a frame is file I/O and decompression, most of it outside the GIL: overlap it.
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(items)))) as pool:
            frames = list(pool.map(self._frame, items))
        readable = [(item, frame) for item, frame in zip(items, frames) if not isinstance(frame, ItemError)]
        for item, frame in zip(items, frames):
            if isinstance(frame, ItemError):
                yield item, frame
        if not readable:
            return
        vectors = self.encode_frames([frame for _, frame in readable], [item.row.get("kind") for item, _ in readable])
        probabilities = (self.logit_scale * vectors @ self.prompt_vectors.T).softmax(dim=-1)
        # One copy off the device for the whole batch, not one per item.
        vectors, probabilities = vectors.cpu().numpy(), probabilities.cpu()
        for (item, _), vector, row in zip(readable, vectors, probabilities):
            yield item, Result(tags=self._labels(row), vectors={SPACE: vector})

    def encode_frames(self, frames: list[np.ndarray], kinds: list[str | None] | None = None):
        """Normalised float32 image embeddings of 2-D frames, one row each (a torch tensor on the device)."""
        import torch

        kinds = kinds or ["image"] * len(frames)
        with torch.inference_mode():
            batch = stretched_squares(frames, [kind or "image" for kind in kinds], self.input_size, self.device)
            batch = ((batch[:, None].expand(-1, 3, -1, -1) - self.mean) / self.std).to(self.dtype)
            return self.model.encode_image(batch, normalize=True).float()

    def embed_query(self, text: str, space: str) -> np.ndarray | None:
        if space != SPACE or not text.strip():
            return None
        self._loaded()
        return self._encode_texts([text.strip()])[0].cpu().numpy()

    def close(self) -> None:
        self.model = None

    def _frame(self, item: Item) -> np.ndarray | ItemError:
        try:
            frame = item.pixels(2 * self.input_size)  # twice the input: the antialiased resize does the rest
        except Exception as error:  # the message of PixelsUnavailable or the loader is what the user sees
            return ItemError(f"cannot read its pixels: {error}")
        frame = np.squeeze(np.asarray(frame))
        if frame.ndim != 2 or min(frame.shape) < 2:
            return ItemError(f"CLIP needs a 2-D image; this dataset's representative frame has shape {frame.shape}")
        return frame

    def _labels(self, probabilities) -> list[Tag]:
        order = probabilities.argsort(descending=True)[: self.max_labels].tolist()
        count = len(self.terms)
        return [
            Tag(
                self.terms[index],
                round(float(probabilities[index]), 4),
                f"CLIP zero-shot: '{self.prompts[index]}' at {float(probabilities[index]):.0%} among {count} terms",
            )
            for index in order
            if float(probabilities[index]) >= self.min_score
        ]

    def _encode_texts(self, texts: list[str]):
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(texts).to(self.device)
            return self.model.encode_text(tokens, normalize=True).float()

    def _loaded(self) -> None:
        if self.model is None:
            raise RuntimeError("ClipTagger.load() must be called before tagging")


@hookimpl
def register_taggers(register):
    register(ClipTagger())
