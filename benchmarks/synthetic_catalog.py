"""A synthetic facility catalog of any size, written in bulk: a million items in minutes, not hours.

    python benchmarks/synthetic_catalog.py /tmp/search-1000000.db 1000000

Files (85 %) named in facility shorthand with their metadata, five tags each
and a linked proposal; proposals (5 %) and papers (10 %) written from the real
NSF and SciFact abstracts in ../shared/data; and a 384-d text vector per item,
clustered around the all-MiniLM-L6-v2 vector of the item's topic (random unit
vectors where the model is not installed), so that a query embedded by the real
model has real neighbours.

Going through the library (``refresh_search_items`` after inserting the rows,
``vectors.write_vectors`` per batch) took over an hour for a million items
here: FTS5 indexes each document as its trigger fires, and the documents are
gathered item by item.  This builder writes the rows with plain
``executemany``, writes each search document as ``search/index.py`` would
(same title, body, tags and context, same ``doc_hash``; tests/test_benchmark_catalog.py
checks that ``refresh_search_items`` finds nothing to change), with the FTS5
triggers set aside and the FTS5 index built once at the end ('rebuild'), and
writes vectors straight into sqlite-vec, logging them as every writer does.
The indexes beside the catalog are left for the benchmark to build and time.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import now_utc, open_catalog  # noqa: E402
from datasette_scisearch.search.index import MAX_BODY_CHARS, tag_text  # noqa: E402
from datasette_scisearch.tagging import vectors  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
DIMENSIONS = 384
SPACE_TAGGER = "benchmark_text"  # the query model benchmarks/search.py registers under this name
TOPIC_NOISE = 0.9  # how far an item's vector lies from its topic's (cosine to the topic ~0.6)
CHUNK = 50_000  # rows generated and written at a time: a million rows never sit in memory twice

INSTRUMENTS = {  # name: (modes, voltages, detectors)
    "TEAM 0.5": (["STEM"], [80, 300], ["HAADF", "BF"]),
    "Themis": (["STEM", "TEM"], [60, 200, 300], ["HAADF", "DF4", "BM-Ceta"]),
    "TitanX": (["STEM", "TEM", "EDS"], [80, 200, 300], ["HAADF", "Super-X", "CCD"]),
    "Helios": (["SEM"], [2, 5, 10, 30], ["ETD", "TLD", "ICE"]),
    "Gemini": (["SEM"], [1, 2, 5, 10, 15], ["InLens", "SE2", "BSD"]),
    "Krios": (["TEM"], [300], ["K3", "Falcon"]),
}
SAMPLES = [
    ("Au_np", "gold nanoparticles"),
    ("SrTiO3", "strontium titanate SrTiO3"),
    ("STO", "SrTiO3 bicrystal grain boundary"),
    ("LAO_STO", "LaAlO3 SrTiO3 interface"),
    ("CeO2_cubes", "ceria nanocubes"),
    ("MoS2", "monolayer MoS2"),
    ("graphene", "graphene monolayer"),
    ("Si110", "silicon 110"),
    ("GaAs_NW", "GaAs nanowires"),
    ("NMC811", "NMC811 battery cathode"),
    ("apoferritin", "apoferritin protein"),
    ("Pt_Co", "platinum cobalt catalyst"),
    ("perovskite", "halide perovskite film"),
    ("steel", "stainless steel precipitates"),
    ("zeolite", "zeolite framework"),
    ("TiO2", "titania anatase"),
]
KINDS = {
    "STEM": ["image", "image", "spectrum image"],
    "TEM": ["image", "diffraction", "stack"],
    "SEM": ["image"],
    "EDS": ["spectrum", "spectrum image"],
}
MAGNIFICATIONS = [5e3, 2e4, 1e5, 5e5, 2e6, 7.2e6, 13.5e6]
# A file's tags, best first (distinct scores: the document lists tags by score, and ties would leave the order
# to the table's scan).
TAG_SCORES = (0.95, 0.9, 0.85, 0.8, 0.75)


def sentences(path: Path, field: str) -> list[str]:
    found = []
    for line in path.read_text().splitlines():
        text = json.loads(line).get(field) or ""
        found += [s for s in re.split(r"(?<=\.)\s+", text) if 40 < len(s) < 400]
    return found


def topic_vectors(rng: np.random.Generator, texts: list[str], model: bool = True) -> np.ndarray:
    """MiniLM vectors of the topics' texts (real directions for real queries), else random unit vectors."""
    try:
        if not model:
            raise RuntimeError("asked for random topics")
        from scisearch_taggers.text_vectors import embed_texts, sentence_model

        return np.asarray(embed_texts(sentence_model(), texts), dtype=np.float32)
    except Exception as error:  # no model here: latency is the same, neighbours are not
        print(f"note: topics get random vectors ({error})")
        matrix = rng.standard_normal((len(texts), DIMENSIONS)).astype(np.float32)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _document(item_type: str, item_id: str, title, body, own_tags: str, context: str, now: str) -> tuple:
    """A ``search_items`` row exactly as ``refresh_search_items`` writes it (search/index.py)."""
    document = (title or "", (body or "")[:MAX_BODY_CHARS], own_tags, context or "")
    digest = hashlib.sha1("\x1f".join(document).encode()).hexdigest()
    return (item_type, item_id, *document, digest, now)


def _concat_ws(*parts) -> str:
    """SQLite's concat_ws(' ', …): the parts that are not null, as text, joined by spaces."""
    return " ".join(str(part) for part in parts if part is not None)


_INSERT_DOCUMENT = (
    "insert into search_items (item_type, item_id, title, body, tags, context, doc_hash, updated_at) "
    "values (?, ?, ?, ?, ?, ?, ?, ?)"
)


def build(path: Path, n_items: int, seed: int = 0, progress: bool = True, topic_model: bool = True) -> dict:
    """Write a catalog of ``n_items`` search documents with their text vectors at ``path`` (replacing it);
    ``topic_model=False`` gives the topics random directions instead of MiniLM's (the tests: no model load)."""
    started = time.perf_counter()
    say = print if progress else (lambda *args, **kwargs: None)
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    path.unlink(missing_ok=True)
    for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    db = open_catalog(path)
    db.execute("pragma synchronous = off")  # a benchmark's scratch catalog: rebuilt, not recovered, after a crash
    abstracts = sentences(SHARED / "scifact" / "corpus.jsonl", "text")
    awards = sentences(SHARED / "proposals" / "nsf_awards_2017.jsonl", "abstract")
    n_proposals, n_papers = max(10, n_items // 20), max(10, n_items // 10)
    n_files = max(0, n_items - n_proposals - n_papers)
    now = now_utc()
    fts_triggers = _set_aside_fts_triggers(db)
    with db.conn:
        proposals = _write_proposals(db, rng, awards, n_proposals, now)
        _write_papers(db, rng, abstracts, proposals, n_papers, now)
    say(f"  {n_proposals:,} proposals, {n_papers:,} papers ({time.perf_counter() - started:.0f} s)", flush=True)
    titles = {proposal[0]: proposal[1] for proposal in proposals}
    for start in range(1, n_files + 1, CHUNK):
        with db.conn:
            _write_files(db, rng, proposals, titles, range(start, min(n_files, start + CHUNK - 1) + 1), now)
        say(f"  files {min(n_files, start + CHUNK - 1):,} of {n_files:,} ({time.perf_counter() - started:.0f} s)")
    with db.conn:
        for sql in fts_triggers:
            db.execute(sql)
        db.execute("insert into search_items_fts(search_items_fts) values('rebuild')")
    say(f"  full-text index built ({time.perf_counter() - started:.0f} s)", flush=True)
    _write_vectors(db, topic_vectors(np_rng, [sample for _, sample in SAMPLES], topic_model), np_rng, say, started)
    db.execute("analyze")
    db.conn.commit()
    db.close()
    return {"items": n_items, "files": n_files, "seconds": round(time.perf_counter() - started, 1)}


def _set_aside_fts_triggers(db) -> list[str]:
    """Drop the triggers that keep FTS5 in step with ``search_items`` (returning their SQL to put back): indexing a
    million documents one trigger at a time is most of the old builder's hour; one 'rebuild' at the end is not."""
    rows = db.execute(
        "select name, sql from sqlite_master where type = 'trigger' and tbl_name = 'search_items' "
        "and sql like '%search_items_fts%'"
    ).fetchall()
    with db.conn:
        for name, _ in rows:
            db.execute(f'drop trigger "{name}"')
    return [sql for _, sql in rows]


def _write_proposals(db, rng: random.Random, awards: list[str], count: int, now: str) -> list[tuple]:
    proposals = []
    for number in range(count):
        _, sample = SAMPLES[number % len(SAMPLES)]
        body = " ".join(rng.choice(awards) for _ in range(rng.randint(4, 10)))
        proposals.append(
            (
                f"P-{2015 + number % 10}-{number:05d}",
                f"{sample.capitalize()}: {' '.join(rng.choice(awards).split()[:8])}",
                f"We will study {sample} by electron microscopy. {body}",
                f"PI {number % 300}",
                f"University {number % 120}",
                f"{2015 + number % 10}-{1 + number % 12:02d}-01",
            )
        )
    db.conn.executemany(
        "insert into proposals (id, title, abstract, pi, institution, start_date) values (?, ?, ?, ?, ?, ?)", proposals
    )
    db.conn.executemany(
        _INSERT_DOCUMENT,
        [_document("proposal", p[0], p[1], p[2], "", _concat_ws(p[0], p[3], p[4]), now) for p in proposals],
    )
    return proposals


def _write_papers(db, rng: random.Random, abstracts: list[str], proposals: list[tuple], count: int, now: str) -> None:
    papers = []
    for number in range(count):
        _, sample = SAMPLES[number % len(SAMPLES)]
        papers.append(
            (
                f"PUB-{number:07d}",
                f"{' '.join(rng.choice(abstracts).split()[:10])} in {sample}",
                " ".join(rng.choice(abstracts) for _ in range(rng.randint(4, 9))),
                f"Author {number % 500}, Author {(number * 7) % 500}",
                2015 + number % 10,
                f"proposal {proposals[number % len(proposals)][0]}",
            )
        )
    db.conn.executemany(
        "insert into papers (id, title, abstract, authors, year, funding) values (?, ?, ?, ?, ?, ?)", papers
    )
    db.conn.executemany(
        _INSERT_DOCUMENT,
        [_document("paper", p[0], p[1], p[2], "", _concat_ws(p[3], p[4], p[5]), now) for p in papers],
    )


def _write_files(db, rng: random.Random, proposals: list[tuple], titles: dict, numbers: range, now: str) -> None:
    files, tags, documents = [], [], []
    for number in numbers:
        instrument = rng.choice(list(INSTRUMENTS))
        modes, voltages, detectors = INSTRUMENTS[instrument]
        mode, voltage, detector = rng.choice(modes), rng.choice(voltages), rng.choice(detectors)
        kind = rng.choice(KINDS[mode])
        sample_number = rng.randrange(len(SAMPLES))
        code, sample = SAMPLES[sample_number]
        magnification = rng.choice(MAGNIFICATIONS)
        mag_text = f"{magnification / 1e6:g}Mx" if magnification >= 1e6 else f"{magnification / 1e3:g}kx"
        name = f"{code}_{voltage}kV_{detector}_{mag_text}_{number:06d}.emd"
        # Files of a sample belong to that sample's proposals.
        proposal = proposals[
            (sample_number + len(SAMPLES) * rng.randrange(max(1, len(proposals) // 16))) % len(proposals)
        ][0]
        year = 2015 + number % 10
        day = f"{year}-{1 + number % 12:02d}-{1 + number % 28:02d}T{number % 24:02d}:00:00"
        search_text = f"{name.replace('_', ' ')} {sample} {instrument} {mode} {detector} {kind} "
        search_text += f"{voltage} kV {voltage}kV {mag_text}"
        files.append(
            (
                number,
                name,
                kind,
                instrument,
                mode,
                detector,
                float(voltage),
                magnification,
                round(0.064 / magnification * 1e9 / 512, 5),
                f"{day}+00:00",
                f"{day}-08:00",
                proposal,
                f"/data/{instrument}/{year}/{name}",
                0,
                f"{rng.getrandbits(256):064x}",
                search_text,
            )
        )
        file_tags = [(mode, "metadata"), (detector, "metadata"), (f"{voltage} kV", "metadata"), (kind, "metadata")]
        file_tags.append((sample, "filenames"))
        for (tag, source), score in zip(file_tags, TAG_SCORES):
            tags.append(("file", str(number), tag, score, source, "machine"))
        own_tags = tag_text((tag, "machine") for tag, _ in file_tags)
        documents.append(
            _document("file", str(number), name, search_text, own_tags, _concat_ws(proposal, titles[proposal]), now)
        )
    db.conn.executemany(
        "insert into files (id, name, kind, instrument, mode, detector, voltage_kv, magnification, pixel_size_nm, "
        "acquired_at, acquired_local, proposal_id, path, dataset, sha256, search_text) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        files,
    )
    db.conn.executemany(
        "insert into tags (item_type, item_id, tag, score, source, status) values (?, ?, ?, ?, ?, ?)", tags
    )
    db.conn.executemany(_INSERT_DOCUMENT, documents)


def _topic(title: str, rowid: int) -> int:
    """The sample a document's title names (its code or its words), else one picked by its rowid."""
    named = (number for number, (code, sample) in enumerate(SAMPLES) if code in title or sample in title)
    return next(named, rowid % len(SAMPLES))


def _write_vectors(db, topics: np.ndarray, np_rng: np.random.Generator, say, started: float) -> None:
    """One text vector per document, near its topic's: the topic named in its title, else one by rowid."""
    table = vectors.ensure_space(db, "text", DIMENSIONS, SPACE_TAGGER)
    db.conn.commit()
    total = db.execute("select count(*) from search_items").fetchone()[0]
    last = 0
    while True:
        rows = db.execute(
            "select id, title from search_items where id > ? order by id limit ?", [last, CHUNK]
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        rowids = np.array([rowid for rowid, _ in rows], dtype=np.int64)
        topic = np.array([_topic(title, rowid) for rowid, title in rows])
        noise = np_rng.standard_normal((len(rows), DIMENSIONS)).astype(np.float32) / np.sqrt(DIMENSIONS)
        matrix = (topics[topic] + TOPIC_NOISE * noise).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)  # stored L2-normalised, as write_vectors does
        with db.conn:
            db.conn.executemany(
                f"insert into [{table}](item_rowid, embedding) values (?, ?)",
                zip(rowids.tolist(), (row.tobytes() for row in matrix)),
            )
            vectors.log_changes(db, "text", rowids.tolist())
        say(f"  vectors {last:,} of {total:,} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[2].strip())
    print(build(Path(sys.argv[1]), int(sys.argv[2])))
