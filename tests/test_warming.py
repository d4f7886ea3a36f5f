"""A served catalog is warmed up in the background at start-up: its first search then finds the query path ready."""

from __future__ import annotations

import sqlite_utils
from datasette.app import Datasette

from datasette_scisearch.web import warming

from .test_pages import build_catalog


def served(tmp_path) -> Datasette:
    path = tmp_path / "cat.db"
    build_catalog(path, with_vectors=False)
    return Datasette([str(path)])


def test_each_served_catalog_is_searched_once_in_a_background_thread(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCISEARCH_WARM", "1")
    thread = warming.warm_in_background(served(tmp_path))
    assert thread is not None and thread.daemon
    thread.join(60)
    assert "scisearch: 'cat' warmed up in " in capsys.readouterr().err


def test_warming_up_writes_nothing_and_logs_no_search(tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEARCH_WARM", "1")
    ds = served(tmp_path)
    catalog = tmp_path / "cat.db"
    before = (catalog.stat().st_size, catalog.stat().st_mtime_ns)
    warming.warm_in_background(ds).join(60)
    assert (catalog.stat().st_size, catalog.stat().st_mtime_ns) == before
    private = tmp_path / "cat.private.db"
    logged = sqlite_utils.Database(private)["search_log"].count if private.exists() else 0
    assert logged == 0


def test_warming_is_turned_off_by_scisearch_warm_0(tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEARCH_WARM", "0")
    assert warming.warm_in_background(served(tmp_path)) is None
