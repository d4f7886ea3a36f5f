"""The approximate path of the mapped vectors (the nearest inverted lists, scored exactly) against exact search
over the same vectors, on a catalog large enough for it to miss sometimes: the benchmarks' synthetic catalog, whose
vectors lie in clusters around 16 topics (benchmarks/synthetic_catalog.py), where neighbours within a topic are nearly
equidistant and a list boundary can fall between two neighbours."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.search import mapped_vectors, vector_index

from .conftest import shared_data

REPO = Path(__file__).resolve().parent.parent
ITEMS = 30_000


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    shared_data("scifact", "corpus.jsonl")
    spec = importlib.util.spec_from_file_location("synthetic_catalog", REPO / "benchmarks" / "synthetic_catalog.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    path = tmp_path_factory.mktemp("clustered") / "catalog.db"
    builder.build(path, ITEMS, progress=False, topic_model=False)
    db = open_catalog(path)
    mapped_vectors.build(db, "text")
    mapped_vectors.forget()
    yield db, vector_index._build(db, "text", 384, ("exact", 0))
    db.close()
    mapped_vectors.forget()


def nearby_queries(exact: vector_index.SpaceMatrix, count: int = 60) -> list[np.ndarray]:
    """Queries near the catalog's vectors, as a real query lies near the documents about it."""
    rng = np.random.default_rng(5)
    picks = rng.choice(len(exact), count, replace=False)
    return [exact.matrix[i] + 0.5 * rng.standard_normal(384).astype(np.float32) / np.sqrt(384) for i in picks]


def same_ranking(found: list[tuple[int, float]], expected: list[tuple[int, float]]) -> bool:
    """The same items with the same scores in the same order; items whose scores tie (to float32 rounding of one
    dot product) may come in either order."""
    if [round(s, 5) for _, s in found] != [round(s, 5) for _, s in expected]:
        return False
    by_score: dict[float, set] = {}
    for rowid, score in expected:
        by_score.setdefault(round(score, 5), set()).add(rowid)
    return all(rowid in by_score[round(score, 5)] for rowid, score in found)


@pytest.mark.parametrize("k", [10, 100])
def test_the_approximate_index_returns_exact_searchs_answer_wherever_its_recall_is_one(clustered, k):
    db, exact = clustered
    mapped = vector_index.space_matrix(db, "text")
    assert isinstance(mapped, mapped_vectors.MappedSpace) and len(mapped) == ITEMS
    recalls, wrong = [], []
    for number, query in enumerate(nearby_queries(exact)):
        found, expected = mapped.nearest(query, k, approximate=True), exact.nearest(query, k)
        recall = len({r for r, _ in found} & {r for r, _ in expected}) / k
        recalls.append(recall)
        if recall == 1.0 and not same_ranking(found, expected):
            wrong.append(number)
    assert wrong == []
    assert sum(recall == 1.0 for recall in recalls) >= len(recalls) // 2  # most queries are found exactly …
    assert np.mean(recalls) >= 0.95  # … and the rest nearly


def test_below_recall_one_the_approximate_index_returns_true_neighbours_with_their_exact_scores(clustered):
    db, exact = clustered
    mapped = vector_index.space_matrix(db, "text")
    for query in nearby_queries(exact, 20):
        everything = exact.nearest(query, len(exact))
        scores = {rowid: score for rowid, score in everything}
        for rowid, score in mapped.nearest(query, 100, approximate=True):
            assert score == pytest.approx(scores[rowid], abs=1e-5)
