"""Labels for files that lack them: demo acquisitions exported as plain PNGs get their mode, kind and magnification
band predicted from their pixels, by heads trained on the files whose instruments recorded them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.learning.metadata_command import predict_metadata_command
from datasette_scisearch.learning.metadata_labels import predict_metadata
from datasette_scisearch.tagging.items import file_pixels
from datasette_scisearch.tagging.pipeline import tag_catalog

from .conftest import REPO
from .learning_support import build_scene_catalog

pytestmark = pytest.mark.slow  # a scene catalog tagged by image analysis, and training

SCENES = {  # one demo scene per group: SEM, STEM, TEM images and TEM diffraction patterns
    "sem": ("nanowires_sem", "particles_sem"),
    "stem": ("particles_haadf", "columns_haadf"),
    "tem": ("columns_hrtem", "carbon_bf"),
    "diffraction": ("spots", "rings"),
}
EXPORTED = 3  # files of each group also exported as a PNG without metadata


@pytest.fixture(scope="module")
def with_exports(tmp_path_factory):
    """A demo catalog of 12 files per group, plus PNG exports of 3 of each, catalogued and tagged like the rest;
    returns the catalog path and, per export's file id, the mode and kind of the file it was exported from."""
    folder = tmp_path_factory.mktemp("exports")
    built = build_scene_catalog(folder, per_class=12, scene_classes=SCENES)
    db = open_catalog(built["path"])
    exports, truth_by_name = folder / "exports", {}
    exports.mkdir()
    for group in SCENES:
        ids = sorted((i for i, c in built["truth"].items() if c == group), key=int)[:EXPORTED]
        for row in db.query(f"select * from files where id in ({','.join(ids)})"):
            frame = np.asarray(file_pixels(row, max_side=1024), dtype=np.float64)
            low, high = np.percentile(frame, [0.5, 99.5])
            grey = np.clip((frame - low) / max(high - low, 1e-9) * 255, 0, 255).astype(np.uint8)
            name = f"export_{row['id']}.png"
            Image.fromarray(grey).save(exports / name)
            truth_by_name[name] = {"mode": row["mode"], "kind": row["kind"]}
    settings = load_settings(REPO / "metadata.yml")
    load_files(db, [exports], settings, progress=False)
    tag_catalog(db, settings, ["image_analysis"], progress=False)
    exported = db.execute("select id, name from files where name like 'export_%'")
    truth = {str(i): truth_by_name[name] for i, name in exported}
    db.close()
    return built["path"], truth


@pytest.fixture
def db_path(with_exports, tmp_path):
    path = tmp_path / "catalog.db"
    shutil.copy(with_exports[0], path)
    return path


def predicted(db, tag_set: str) -> dict[str, str]:
    return {
        str(item_id): tag
        for item_id, tag in db.execute("select item_id, tag from tags where source like ?", [f"learned:{tag_set}.v%"])
    }


def test_exported_pngs_get_the_mode_and_kind_of_the_files_they_came_from(db_path, with_exports):
    truth = with_exports[1]
    db = open_catalog(db_path)
    reports = {report.label: report for report in predict_metadata(db, ["mode", "kind"])}
    modes, kinds = predicted(db, "metadata-mode"), predicted(db, "metadata-kind")
    with_mode = {i: t for i, t in truth.items() if t["mode"]}  # the demo's diffraction files record no mode
    right_mode = sum(modes.get(i) == t["mode"] for i, t in with_mode.items())
    right_kind = sum(kinds.get(i) == t["kind"] for i, t in truth.items())
    print(f"exports: mode {right_mode}/{len(with_mode)}, kind {right_kind}/{len(truth)}; hidden-metadata CV accuracy "
          f"mode {reports['mode'].cv_accuracy}, kind {reports['kind'].cv_accuracy}")  # fmt: skip
    assert len(truth) == 12 and len(with_mode) == 9 and reports["mode"].unknown >= 12
    assert right_mode >= 0.9 * len(with_mode) and right_kind >= 0.9 * len(truth)


def test_only_files_lacking_a_label_are_tagged_with_it(db_path, with_exports):
    db = open_catalog(db_path)
    predict_metadata(db, ["mode"])
    lacking = {str(row[0]) for row in db.execute("select id from files where mode is null")}
    assert set(with_exports[1]) <= lacking
    assert set(predicted(db, "metadata-mode")) <= lacking and len(predicted(db, "metadata-mode")) >= 12


def test_a_predicted_label_names_its_model_and_its_accuracy_on_hidden_metadata(db_path):
    db = open_catalog(db_path)
    [report] = predict_metadata(db, ["mode"])
    tag = next(db.query("select * from tags where source = 'learned:metadata-mode.v1'"))
    assert tag["status"] == "machine" and 0.5 <= tag["score"] <= 1
    assert f"learned head metadata-mode v1 ({report.head}) on {report.feature_space}" in tag["evidence"]
    assert f"CV accuracy {report.cv_accuracy:.2f}" in tag["evidence"]


def test_the_command_reports_each_label_as_json(db_path):
    result = CliRunner().invoke(predict_metadata_command, [str(db_path), "--labels", "mode,magnification", "--json"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.output)
    assert [r["label"] for r in reports] == ["mode", "magnification"] and reports[0]["version"] == 1


def test_an_unknown_label_is_a_message_not_a_traceback(db_path):
    result = CliRunner().invoke(predict_metadata_command, [str(db_path), "--labels", "colour"])
    assert result.exit_code == 1 and result.output.startswith("error: cannot predict 'colour'")
