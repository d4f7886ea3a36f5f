"""A tiny open_clip model for tests: real open_clip code, random seeded weights, a checkpoint on disk.

No CLIP weights can be downloaded here, so tests build a model of the same
kind as ViT-B-32 (a vision transformer and a text transformer) small enough
to create in a fraction of a second, save its state dict as a checkpoint and
load it through the tagger's ``checkpoint:`` option, exactly as a facility's
real checkpoint is loaded.  Use it from any test module::

    @pytest.fixture(scope="session")
    def tiny_clip(tmp_path_factory):
        return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))

    tagger.load(tiny_clip.options(min_score=0.0), "cpu")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TINY_CLIP_NAME = "scisearch-tiny-clip"
TINY_CLIP_DIMENSIONS = 32
# The text tower keeps CLIP's real vocabulary and context length so open_clip's own tokenizer works with it.
TINY_CLIP_CONFIG = {
    "embed_dim": TINY_CLIP_DIMENSIONS,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@dataclass
class TinyClip:
    name: str
    config: Path
    checkpoint: Path

    def options(self, **more) -> dict:
        """The clip tagger's metadata.yml block for this model."""
        return {"model": self.name, "checkpoint": str(self.checkpoint), **more}


def register_tiny_clip(folder: Path, name: str = TINY_CLIP_NAME) -> Path:
    """Write the tiny architecture as open_clip JSON config ``name``.json and register it with open_clip."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{name}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(config)
    return config


def build_tiny_clip(folder: Path, seed: int = 0) -> TinyClip:
    """Register the tiny architecture, create it with seeded random weights and save them as a checkpoint."""
    import open_clip
    import torch

    config = register_tiny_clip(folder)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP_NAME)
    checkpoint = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), checkpoint)
    return TinyClip(TINY_CLIP_NAME, config, checkpoint)
