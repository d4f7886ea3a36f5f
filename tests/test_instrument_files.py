"""Reading the real instrument files in ../shared/data/em: the values a microscopist would check."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files

from .conftest import REPO, shared_data


class Catalog:
    """A catalog built from the real files, with helpers that read like the checks."""

    def __init__(self, db, summary):
        self.db = db
        self.summary = summary

    def files(self, name: str) -> list[dict]:
        return list(self.db.query("select * from files where name = ? order by dataset", [name]))

    def file(self, name: str) -> dict:
        rows = self.files(name)
        assert len(rows) == 1, f"{name}: expected one dataset, found {len(rows)}"
        return rows[0]

    def error(self, name: str) -> str:
        rows = list(self.db.query("select message from ingest_errors where source like ?", ["%/" + name]))
        assert rows, f"no ingest error recorded for {name}"
        return rows[0]["message"]


@pytest.fixture(scope="module")
def real_catalog(tmp_path_factory):
    em = shared_data("em")
    db = open_catalog(tmp_path_factory.mktemp("real") / "catalog.db")
    summary = load_files(db, [em], load_settings(REPO / "metadata.yml"), progress=False)
    yield Catalog(db, summary)
    db.close()


def test_sto_haadf_image_is_an_80kv_stem_image_at_13_5_mx_on_a_titancubed(real_catalog):
    row = real_catalog.file("16_STOimage_1.ser")
    assert row["kind"] == "image"
    assert row["shape"] == "1024×1024"
    assert row["mode"] == "STEM"
    assert row["voltage_kv"] == 80
    assert row["magnification"] == pytest.approx(13.5e6, rel=0.01)
    assert row["instrument"] == "TitanCubed"
    assert row["instrument_reported"] == "TitanCubed D3147 S-Twin"
    assert row["pixel_size_nm"] == pytest.approx(0.010, rel=0.01)


def test_tia_images_name_the_detector_channel_from_the_emi_display_setup(real_catalog):
    assert real_catalog.file("16_STOimage_1.ser")["detector"] == "HAADF"


def test_sto_image_was_taken_on_18_october_2011_facility_time(real_catalog):
    row = real_catalog.file("16_STOimage_1.ser")
    assert row["acquired_local"].startswith("2011-10-18T18:18:46")
    assert row["acquired_at"] == "2011-10-19T01:18:46+00:00"  # stored in UTC
    assert row["acquired_at_source"] == "metadata"


def test_berkeley_emd_is_200kv_5_1_mx_on_team_05(real_catalog):
    row = real_catalog.file("Acquisition_18.emd")
    assert row["voltage_kv"] == 200
    assert row["magnification"] == pytest.approx(5.1e6)
    assert row["instrument"] == "TEAM 0.5"
    assert row["camera_length_mm"] == pytest.approx(85)
    assert row["pixel_size_nm"] == pytest.approx(0.012246, rel=1e-3)  # written as 'n_m' in the file


def test_berkeley_emd_time_comes_from_its_acquisition_times(real_catalog):
    row = real_catalog.file("Acquisition_18.emd")
    assert row["acquired_at"] == "2019-10-04T19:25:41+00:00"
    assert row["acquired_at_source"] == "metadata"


def test_a_format_without_a_time_falls_back_to_the_modification_time(real_catalog):
    assert real_catalog.file("temp.mrc")["acquired_at_source"] == "file modification time"


@pytest.mark.parametrize(
    "name",
    [
        "Camera Ceta Diffraction Micro.emd",
        "Camera Ceta Imaging Micro.emd",
        "STEM HAADF Diffraction Micro.emd",
        "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd",
    ],
)
def test_velox_files_are_300kv_on_the_themis(real_catalog, name):
    for row in real_catalog.files(name):
        assert row["voltage_kv"] == 300
        assert row["instrument"] == "Themis"
        assert row["acquired_at"].startswith("2020-07-29T16:4")


def test_ceta_diffraction_file_is_classed_as_a_diffraction_pattern(real_catalog):
    row = real_catalog.file("Camera Ceta Diffraction Micro.emd")
    assert row["kind"] == "diffraction"
    assert row["mode"] == "TEM"
    assert row["camera_length_mm"] == pytest.approx(378)


def test_stem_files_stay_images_although_their_metadata_says_diffraction(real_catalog):
    for name in ("STEM HAADF Diffraction Micro.emd", "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"):
        for row in real_catalog.files(name):
            assert row["kind"] == "image"
            assert row["mode"] == "STEM"


def test_a_four_detector_velox_file_gives_one_item_per_detector(real_catalog):
    rows = real_catalog.files("STEM HAADF-DF4-DF2-BF Diffraction Micro.emd")
    assert sorted(row["detector"] for row in rows) == ["BF", "DF2", "DF4", "HAADF"]
    assert len({row["id"] for row in rows}) == 4


def test_carbon_dm3_is_an_eels_spectrum_at_300kv(real_catalog):
    row = real_catalog.file("08_carbon.dm3")
    assert row["kind"] == "spectrum"
    assert row["mode"] == "EELS"
    assert row["voltage_kv"] == 300
    assert row["detector"] == "EF-CCD"
    assert row["acquired_local"].startswith("2017-08-29T13:58:43")


def test_tia_files_of_the_titanx_session_are_stem_images_at_200kv(real_catalog):
    haadf = real_catalog.file("After HAADF 130mm_1.ser")
    laabf = real_catalog.file("After LAABF 1.5m_1.ser")
    assert haadf["instrument"] == laabf["instrument"] == "TitanX"
    assert haadf["camera_length_mm"] == pytest.approx(130)
    assert laabf["camera_length_mm"] == pytest.approx(1500)
    assert haadf["pixel_size_nm"] == pytest.approx(3.27, rel=0.01)


def test_bruker_bcf_is_read_through_rosettasciio_as_an_image_and_an_eds_map(real_catalog):
    image, eds = real_catalog.files("0.bcf")
    assert (image["kind"], image["detector"]) == ("image", "HAADF")
    assert (eds["kind"], eds["mode"]) == ("spectrum image", "EDS")
    assert eds["voltage_kv"] == image["voltage_kv"] == 200
    assert eds["acquired_local"].startswith("2018-11-29T21:52:11")
    assert image["acquired_at"] == eds["acquired_at"]  # one acquisition, one clock


def test_stacks_and_4d_data_are_classed_by_their_dimensions(real_catalog):
    assert real_catalog.file("dmTest_3D_int16_64,65,66.dm4")["kind"] == "stack"
    assert real_catalog.file("temp.mrc")["kind"] == "stack"
    assert real_catalog.file("temp.mrc")["pixel_size_nm"] == pytest.approx(0.2)  # 2 Å
    assert real_catalog.file("emd_type1_stringDims.h5")["kind"] == "4D"


def test_non_square_pixels_report_the_x_pixel_size_in_nm(real_catalog):
    row = real_catalog.file("dmTest_float32_nonSquare_diffPixelSize.dm3")
    assert row["pixel_size_nm"] == pytest.approx(1.0)
    assert row["shape"] == "64×128"


def test_an_emi_without_its_ser_is_an_error_that_names_the_missing_file(real_catalog):
    assert "01_Si110_5images_1.ser" in real_catalog.error("01_Si110_5images.emi")
    assert "missing" in real_catalog.error("01_Si110_5images.emi")


def test_hdf5_that_is_not_emd_is_an_error_saying_so(real_catalog):
    assert "not EMD" in real_catalog.error("au_145mm_68kx_microprobe_01.h5")


def test_a_master_file_without_its_data_file_is_an_error_naming_it(real_catalog):
    message = real_catalog.error("au_145mm_68kx_microprobe_01_master.h5")
    assert "au_145mm_68kx_microprobe_01_data_000001.h5" in message


def test_the_load_reports_three_failures_and_ingests_everything_else(real_catalog):
    summary = real_catalog.summary
    assert summary.failed == 3
    assert summary.added == 16  # 16 data files; .emi partners, LICENSE and the README text are skipped
    assert real_catalog.db["files"].count == 20  # the bcf holds 2 datasets, a Velox file 4


def test_emi_partners_are_not_catalogued_as_items_of_their_own(real_catalog):
    assert real_catalog.db.execute("select count(*) from files where name like '%.emi'").fetchone()[0] == 0


def test_every_dataset_has_a_png_preview_of_the_size_it_claims(real_catalog):
    rows = real_catalog.db.execute(
        "select f.name, f.preview, p.png from files f left join previews p on p.file_id = f.id"
    ).fetchall()
    for name, size, png in rows:
        assert png is not None, name
        image = Image.open(io.BytesIO(png))
        assert f"{image.width}x{image.height}" == size, name
        assert max(image.size) >= 128, name


def test_raw_metadata_is_kept_as_json(real_catalog):
    metadata = json.loads(real_catalog.file("16_STOimage_1.ser")["metadata"])
    assert metadata["Microscope []"] == "TitanCubed D3147 S-Twin"
    assert metadata["High tension [kV]"] == 80


def test_file_text_is_searchable_through_fts(real_catalog):
    rows = real_catalog.db.execute(
        "select f.name from files_fts join files f on f.id = files_fts.rowid where files_fts match 'LAABF'"
    ).fetchall()
    assert [r[0] for r in rows] == ["After LAABF 1.5m_1.ser"]


@pytest.fixture
def em_copy(tmp_path):
    """A writable copy of a few real files, for tests that change them."""
    em = shared_data("em")
    folder = tmp_path / "disk"
    folder.mkdir()
    for name in ("16_STOimage.emi", "16_STOimage_1.ser", "Acquisition_18.emd", "08_carbon.dm3"):
        shutil.copy2(em / name, folder / name)
    return folder


def test_loading_the_same_folder_twice_adds_nothing(catalog, settings, em_copy):
    first = load_files(catalog, [em_copy], settings, progress=False)
    second = load_files(catalog, [em_copy], settings, progress=False)
    assert (first.added, second.added, second.updated, second.unchanged) == (3, 0, 0, 3)
    assert catalog["files"].count == 3


def test_a_new_loader_version_reads_unchanged_files_again(catalog, settings, em_copy):
    from datasette_scisearch.ingest.files import file_loaders

    load_files(catalog, [em_copy], settings, progress=False)
    with catalog.conn:  # as if an older TIA loader, which missed the detector, had read it
        catalog.execute("update files set loader = 'tia-ser:0', detector = null where format = 'ser'")
    again = load_files(catalog, [em_copy], settings, progress=False)
    row = catalog.execute("select detector, loader from files where format = 'ser'").fetchone()
    tia = next(loader for loader in file_loaders() if loader.name == row[1].split(":")[0])
    assert (again.updated, again.unchanged) == (1, 2)
    assert row == ("HAADF", f"{tia.name}:{tia.version}")


def test_a_changed_file_is_updated_in_place(catalog, settings, em_copy):
    load_files(catalog, [em_copy], settings, progress=False)
    before = catalog.execute("select id, sha256 from files where name = '08_carbon.dm3'").fetchone()
    shutil.copy2(shared_data("em", "dmTest_float32_nonSquare_diffPixelSize.dm3"), em_copy / "08_carbon.dm3")
    summary = load_files(catalog, [em_copy], settings, progress=False)
    after = catalog.execute("select id, sha256, kind from files where name = '08_carbon.dm3'").fetchone()
    assert summary.updated == 1
    assert after[0] == before[0] and after[1] != before[1]
    assert after[2] == "image"


def test_a_copy_of_a_catalogued_file_is_not_catalogued_twice(catalog, settings, em_copy):
    (em_copy / "backup").mkdir()
    shutil.copy2(em_copy / "08_carbon.dm3", em_copy / "backup" / "08_carbon_copy.dm3")
    summary = load_files(catalog, [em_copy], settings, progress=False)
    assert (
        catalog.execute(
            "select count(*) from files where sha256 = (select sha256 from files where name = '08_carbon.dm3')"
        ).fetchone()[0]
        == 1
    )
    assert any("same content" in note for note in summary.notes)


def test_a_moved_file_keeps_its_catalog_id(catalog, settings, em_copy):
    load_files(catalog, [em_copy], settings, progress=False)
    old_id = catalog.execute("select id from files where name = '08_carbon.dm3'").fetchone()[0]
    (em_copy / "archive").mkdir()
    (em_copy / "08_carbon.dm3").rename(em_copy / "archive" / "08_carbon.dm3")
    load_files(catalog, [em_copy], settings, progress=False)
    rows = catalog.execute("select id, path from files where name = '08_carbon.dm3'").fetchall()
    assert len(rows) == 1
    assert rows[0][0] == old_id and "/archive/" in rows[0][1]


def test_empty_and_truncated_files_are_errors_and_the_rest_loads(catalog, settings, em_copy):
    (em_copy / "empty.dm3").write_bytes(b"")
    data = (em_copy / "Acquisition_18.emd").read_bytes()
    (em_copy / "truncated.emd").write_bytes(data[:5000])
    summary = load_files(catalog, [em_copy], settings, progress=False)
    messages = {Path(e["source"]).name: e["message"] for e in summary.errors}
    assert "empty" in messages["empty.dm3"]
    assert "truncated.emd" in messages
    assert summary.added == 3


def test_a_file_with_a_non_utf8_name_is_catalogued(catalog, settings, em_copy, tmp_path):
    odd = bytes(em_copy) + b"/Au_np_\xff\xfe_300kV.dm3"
    shutil.copyfile(em_copy / "08_carbon.dm3", odd)
    (em_copy / "08_carbon.dm3").unlink()
    load_files(catalog, [em_copy], settings, progress=False)
    names = [r[0] for r in catalog.execute("select name from files").fetchall()]
    assert any(name.startswith("Au_np_") and "\\xff" in name for name in names)


def test_a_file_that_disappears_during_the_walk_is_an_error(catalog, settings, em_copy, monkeypatch):
    import datasette_scisearch.ingest.files as ingest

    real_walk = ingest.walk

    def walk_then_delete(paths, refused=None, roots=None):
        found = real_walk(paths, refused, roots)
        (em_copy / "08_carbon.dm3").unlink()
        return found

    monkeypatch.setattr(ingest, "walk", walk_then_delete)
    summary = ingest.load_files(catalog, [em_copy], settings, progress=False)
    assert any("disappeared" in e["message"] for e in summary.errors)
    assert summary.added == 2


def test_a_file_the_operating_system_refuses_to_open_is_an_error(catalog, settings, em_copy):
    import socket

    server = socket.socket(socket.AF_UNIX)  # a socket on disk: stat works, open() fails
    server.bind(str(em_copy / "stuck.dm3"))
    try:
        summary = load_files(catalog, [em_copy], settings, progress=False)
    finally:
        server.close()
    messages = {Path(e["source"]).name: e["message"] for e in summary.errors}
    assert messages["stuck.dm3"].startswith("cannot read it")
    assert summary.added == 3


def test_a_file_without_read_permission_is_an_error_naming_the_cause(settings):
    """Run as an unprivileged user (root reads everything): a forked child drops to 'nobody' and loads."""
    em = shared_data("em")
    folder = Path(tempfile.mkdtemp(prefix="scisearch-permissions-"))
    try:
        folder.chmod(0o777)
        for name in ("08_carbon.dm3", "Acquisition_18.emd"):
            shutil.copy2(em / name, folder / name)
            (folder / name).chmod(0o644)
        (folder / "08_carbon.dm3").chmod(0)
        errors = _load_as_nobody(folder, settings)
    finally:
        shutil.rmtree(folder)
    assert [(Path(e["source"]).name, e["message"]) for e in errors] == [
        ("08_carbon.dm3", "permission denied: the catalog's user cannot read it (check its permissions)")
    ]


def _load_as_nobody(folder: Path, settings) -> list[dict]:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, load, report the errors as JSON, exit without pytest's cleanup
        status = 1
        try:
            os.close(reader)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            db = open_catalog(folder / "catalog.db")
            summary = load_files(db, [folder], settings, progress=False)
            os.write(writer, json.dumps(summary.errors).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, "the unprivileged load failed"
    return json.loads(output)


def test_gatan_datasets_outlive_the_memory_map_they_were_read_through():
    import mmap

    from scisearch_loaders.ncempy_formats import GatanDMLoader

    paths = sorted(p for folder in ("em", "em-vendors") for p in shared_data(folder).rglob("*.dm[34]"))
    loader = GatanDMLoader()
    kept = [dataset for path in paths for dataset in loader.read(path)]  # every file's map closed with these alive
    assert len(kept) >= len(paths)
    for dataset in kept:
        for value in [dataset.data, *dataset.metadata.values()]:
            while isinstance(value, np.ndarray) and value.base is not None:
                value = value.base
            assert not isinstance(value, mmap.mmap), f"{dataset.index}: a view into a closed file's map"
