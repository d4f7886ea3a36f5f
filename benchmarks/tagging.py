"""How fast the model taggers run through the tagging pipeline, against the raw models on the same inputs.

    python benchmarks/tagging.py [--texts 2000] [--images 240] [--keybert 200] [--repeat 1]
                                 [--device auto|cpu|cuda] [--gpu]     (--texts 0 or --images 0 skips a part)
    python benchmarks/tagging.py --quick        # CI-size: 200 texts, ~50 images, 30 keyword documents

It prints, in one run:
- MiniLM (text_vectors): items/s of ``SentenceTransformer.encode`` alone on the very passages the tagger
  embeds, and items/s of ``tag_catalog`` running the tagger over a real catalog of NSF awards and SciFact
  abstracts (reading rows, batching, writing vectors into sqlite-vec, provenance, search documents);
- CLIP: images/s of a raw open_clip ViT-B-32 forward pass on tensors made beforehand from the same frames
  (the ceiling), the frames' reading time alone, and images/s of ``tag_catalog`` running the clip tagger over
  a catalog of the demo facility's instrument files (reading, stretching and resizing in torch, the forward
  pass, zero-shot labels, writes).  ViT-B-32 has random weights: speed does not depend on them;
- KeyBERT keywords per second through the pipeline;
- OCR and image-analysis ms/image through the pipeline, where those taggers are installed.

The goal is a pipeline at 0.8x the raw model's throughput or better.  On a GPU (``--gpu``, or ``auto`` when
CUDA is present) the taggers and the raw baselines run on CUDA in fp16.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.config import load_settings  # noqa: E402
from datasette_scisearch.demo import build_facility  # noqa: E402
from datasette_scisearch.ingest.files import load_files  # noqa: E402
from datasette_scisearch.ingest.records import load_records  # noqa: E402
from datasette_scisearch.plugins import get_taggers  # noqa: E402
from datasette_scisearch.tagging.items import file_pixels, iter_items  # noqa: E402
from datasette_scisearch.tagging.pipeline import tag_catalog  # noqa: E402


def choose_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --gpu/--device cuda asked for, but torch sees no CUDA device")
    return requested


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def line(label: str, count: int, seconds: float, unit: str, baseline: float | None = None) -> float:
    rate = count / seconds if seconds > 0 else float("inf")
    ratio = f"  {rate / baseline:5.2f}x raw" if baseline else ""
    print(f"  {label:58} {count:6d} in {seconds:7.2f} s = {rate:8.1f} {unit}{ratio}")
    return rate


def alternate(repeat: int, raw, pipeline):
    """The fastest of ``repeat`` runs of each, taken in turns, so that load from whoever else shares the
    machine falls on both alike: (raw seconds, pipeline's (seconds, stats))."""
    raw_runs, pipeline_runs = [], []
    for _ in range(max(1, repeat)):
        raw_runs.append(raw())
        pipeline_runs.append(pipeline())
    return min(raw_runs), min(pipeline_runs, key=lambda run: run[0])


def run_tagger(db, settings, name: str, item_types: list[str], device: str):
    """One forced run of one tagger through the pipeline: (wall seconds, its stats)."""
    started = time.perf_counter()
    summary = tag_catalog(
        db, settings, tagger_names=[name], item_types=item_types, force=True, device=device, progress=False
    )
    synchronise(device)
    [stats] = summary.taggers
    return time.perf_counter() - started, stats


# --- text: MiniLM and KeyBERT -------------------------------------------------------------------------------------


def write_text_records(scratch: Path, count: int) -> tuple[Path, Path]:
    """NSF awards as proposals, then SciFact abstracts as papers, ``count`` records in all."""
    awards = [json.loads(row) for row in (SHARED / "proposals" / "nsf_awards_2017.jsonl").open()][:count]
    papers = []
    with (SHARED / "scifact" / "corpus.jsonl").open() as corpus:
        for row in corpus:
            if len(awards) + len(papers) >= count:
                break
            papers.append(json.loads(row))
    proposals_file, papers_file = scratch / "awards.jsonl", scratch / "papers.jsonl"
    proposals_file.write_text("".join(json.dumps(award) + "\n" for award in awards))
    papers_file.write_text("".join(json.dumps(paper) + "\n" for paper in papers))
    return proposals_file, papers_file


def text_benchmark(scratch: Path, settings, device: str, n_texts: int, n_keybert: int, repeat: int) -> None:
    from scisearch_taggers.text_vectors import embed_texts, item_prose, sentence_model

    proposals_file, papers_file = write_text_records(scratch, n_texts)
    db = open_catalog(scratch / "text.db")
    load_records(db, "proposals", proposals_file, settings, progress=False)
    load_records(db, "papers", papers_file, settings, progress=False)
    items = [item for kind in ("proposal", "paper") for item in iter_items(db, kind)]
    passages = [item_prose(item) for item in items]
    print(f"\nMiniLM (all-MiniLM-L6-v2) on {device}: {len(items)} NSF awards and SciFact abstracts")

    model = sentence_model(None, device)
    embed_texts(model, passages[:64])  # warm-up: kernels chosen, caches filled, for both runs alike

    def raw_encode() -> float:
        started = time.perf_counter()
        embed_texts(model, passages, batch_size=64)
        synchronise(device)
        return time.perf_counter() - started

    raw_seconds, (seconds, stats) = alternate(
        repeat, raw_encode, lambda: run_tagger(db, settings, "text_vectors", ["proposal", "paper"], device)
    )
    raw = line("raw SentenceTransformer.encode (batch 64)", len(passages), raw_seconds, "items/s")
    line("tag_catalog(text_vectors): rows -> vectors in sqlite-vec", stats.tagged, seconds, "items/s", raw)
    line("  of which inside the tagger (tag_batch)", stats.tagged, stats.seconds, "items/s", raw)

    if n_keybert:
        subset = scratch / "keybert-awards.jsonl"
        subset.write_text("".join(proposals_file.read_text().splitlines(keepends=True)[:n_keybert]))
        keyword_db = open_catalog(scratch / "keybert.db")
        load_records(keyword_db, "proposals", subset, settings, progress=False)
        seconds, stats = run_tagger(keyword_db, settings, "keybert", ["proposal"], device)
        line(f"tag_catalog(keybert): {stats.tags} keywords", stats.tagged, seconds, "items/s")
        keyword_db.close()
    db.close()


# --- images: CLIP, OCR, image analysis ----------------------------------------------------------------------------


def random_vit_b_32_checkpoint(scratch: Path) -> Path:
    import open_clip
    import torch
    from scisearch_taggers.clip import quiet_open_clip

    torch.manual_seed(0)
    with quiet_open_clip():  # it warns that a model made without weights has random ones: that is the point
        model = open_clip.create_model("ViT-B-32")
    checkpoint = scratch / "ViT-B-32-random.pt"
    torch.save(model.state_dict(), checkpoint)
    return checkpoint


def raw_clip_forward(checkpoint: Path, frames: list[np.ndarray], device: str, batch_size: int = 64):
    """A function timing open_clip's encode_image alone, on input tensors prepared before the clock starts."""
    import open_clip
    import torch
    import torch.nn.functional as F

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = open_clip.create_model("ViT-B-32", pretrained=str(checkpoint)).to(device=device, dtype=dtype).eval()
    inputs = []
    for frame in frames:
        grey = torch.as_tensor(frame, dtype=torch.float32)
        grey = (grey - grey.min()) / max(float(grey.max() - grey.min()), 1e-6)
        inputs.append(F.interpolate(grey[None, None], size=(224, 224), mode="bilinear")[0].expand(3, -1, -1))
    batches = [torch.stack(inputs[i : i + batch_size]).to(device, dtype) for i in range(0, len(inputs), batch_size)]
    with torch.inference_mode():
        model.encode_image(batches[0], normalize=True)  # warm-up

    def forward() -> float:
        with torch.inference_mode():
            synchronise(device)
            started = time.perf_counter()
            for batch in batches:
                model.encode_image(batch, normalize=True)
            synchronise(device)
        return time.perf_counter() - started

    return forward


def clip_load_seconds(options: dict, device: str) -> float:
    """How long the clip tagger's load() takes, once per run: the pipeline's fixed cost."""
    from scisearch_taggers.clip import ClipTagger

    tagger = ClipTagger()
    started = time.perf_counter()
    tagger.load(options, device)
    synchronise(device)
    seconds = time.perf_counter() - started
    tagger.close()
    return seconds


def image_benchmark(scratch: Path, settings, device: str, n_files: int, repeat: int) -> None:
    from scisearch_taggers.clip import DEFAULT_VOCABULARY

    started = time.perf_counter()
    facility = build_facility(scratch / "demo", n_files=n_files, progress=False)
    db = open_catalog(scratch / "images.db")
    load_files(db, [facility.data_dir], settings, progress=False)
    items = [item for item in iter_items(db, "file") if item.row.get("kind") != "spectrum"]
    print(
        f"\nImages on {device}: demo facility of {n_files} files, {len(items)} image datasets "
        f"(built and catalogued in {time.perf_counter() - started:.0f} s)"
    )

    file_pixels(items[0].row, 448)  # warm-up: loader modules imported
    started = time.perf_counter()
    frames = [file_pixels(item.row, 448) for item in items]
    line("reading frames alone (file_pixels, 448 px)", len(frames), time.perf_counter() - started, "img/s")

    checkpoint = random_vit_b_32_checkpoint(scratch)
    settings.taggers["clip"] = {"model": "ViT-B-32", "checkpoint": str(checkpoint)}
    images = [frame for frame in frames if frame.ndim == 2]
    forward = raw_clip_forward(checkpoint, images, device)
    load_seconds = clip_load_seconds(settings.taggers["clip"], device)
    raw_seconds, (seconds, stats) = alternate(
        repeat, forward, lambda: run_tagger(db, settings, "clip", ["file"], device)
    )
    raw = line("raw open_clip encode_image (batch 64, tensors ready)", len(images), raw_seconds, "img/s")
    if stats.unavailable:
        print(f"  clip unavailable: {stats.unavailable}")
    else:
        line("tag_catalog(clip): files -> vectors + labels", stats.tagged, seconds, "img/s", raw)
        line("  of which inside the tagger (reading, model load too)", stats.tagged, stats.seconds, "img/s", raw)
        print(
            f"  (the tagger's load: checkpoint, text tower on {len(DEFAULT_VOCABULARY)} prompts: {load_seconds:.2f} s)"
        )
        line("  tag_catalog(clip) less that one-off load", stats.tagged, seconds - load_seconds, "img/s", raw)

    installed = {tagger.name for tagger in get_taggers()}
    for name in ("ocr", "image_analysis"):
        if name not in installed:
            print(f"  {name}: not installed (plugins/{name}.py absent), not timed")
            continue
        seconds, stats = run_tagger(db, settings, name, ["file"], device)
        if stats.unavailable:
            print(f"  {name}: unavailable here: {stats.unavailable}")
            continue
        looked_at = stats.tagged + stats.failed
        per_image = 1000 * seconds / max(looked_at, 1)
        print(
            f"  tag_catalog({name}): {looked_at} images ({stats.not_wanted} not wanted) in {seconds:.2f} s "
            f"= {per_image:.1f} ms/image, {1000 * stats.seconds / max(looked_at, 1):.1f} ms inside the tagger"
        )
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000, help="NSF awards + SciFact abstracts to embed")
    parser.add_argument("--images", type=int, default=240, help="demo facility files to tag")
    parser.add_argument("--keybert", type=int, default=200, help="awards for KeyBERT (0 to skip)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--gpu", action="store_true", help="same as --device cuda")
    parser.add_argument("--repeat", type=int, default=1, help="runs of raw and pipeline, in turns; the best counts")
    parser.add_argument("--quick", action="store_true", help="CI-size run: 200 texts, 48 files, 30 KeyBERT awards")
    args = parser.parse_args()
    if args.quick:
        args.texts, args.images, args.keybert = 200, 48, 30
    if not SHARED.exists():
        sys.exit(f"error: the real data is not at {SHARED} (see its README.md)")
    device = choose_device("cuda" if args.gpu else args.device)
    settings = load_settings(REPO / "metadata.yml")
    get_taggers()  # import every plugin before any clock starts
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}")
    with tempfile.TemporaryDirectory() as scratch:
        if args.texts:
            text_benchmark(Path(scratch), settings, device, args.texts, args.keybert, args.repeat)
        if args.images:
            image_benchmark(Path(scratch), settings, device, args.images, args.repeat)


if __name__ == "__main__":
    main()
