"""Downloads: the original files (partners zipped together), exports of the array, and nothing outside the catalog's
data roots, whatever the URL or the disk tries."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import sqlite_utils
import tifffile
from datasette.app import Datasette
from ncempy.io import mrc
from PIL import Image

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import Settings
from datasette_scisearch.downloads.originals import NotServed, originals_of
from datasette_scisearch.ingest.files import file_loaders, load_files
from datasette_scisearch.ingest.reading import loaders_for, read_dataset

from .conftest import shared_data

# A TIA pair, a 2-D float image, a 3-D stack: one of each thing a download must handle.
FILES = ["16_STOimage_1.ser", "16_STOimage.emi", "08_carbon.dm3", "dmTest_3D_int16_64,65,66.dm3"]
SECRET = "not for download\n"
MOVIE, MOVIE_INFO = "20230101_00001_movie.mrc", "20230101_00001_info.txt"


def build_catalog(folder):
    """A catalog of real files in ``folder/data`` and, beside the data root, a file that must never be served."""
    em = shared_data("em")
    data = folder / "data"
    data.mkdir()
    for name in FILES:
        shutil.copy(em / name, data / name)
    shutil.copy(em / "dmTest_float32_nonSquare_diffPixelSize.dm3", data / "spare.dm3")  # swapped for links by tests
    # A Direct Electron movie and the _info.txt its camera writes beside it: MRC's partner file.
    movie = np.arange(4 * 64 * 64, dtype=np.int16).reshape(4, 64, 64)
    mrc.mrcWriter(str(data / MOVIE), movie, (1.0, 0.1, 0.1))
    (data / MOVIE_INFO).write_text("Timestamp (epoch) = 1672531200\n")
    (folder / "outside").mkdir()
    (folder / "outside" / "secret.txt").write_text(SECRET)
    path = folder / "lab.db"
    db = open_catalog(path)
    load_files(db, [data], Settings(), progress=False, sandbox=False)
    db.close()
    return path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return build_catalog(tmp_path_factory.mktemp("downloads"))


@pytest.fixture
def own_catalog(tmp_path):
    """A catalog of one's own, for a test that changes the disk or the catalog."""
    return build_catalog(tmp_path)


def served(path, **metadata) -> Datasette:
    return Datasette([str(path)], metadata=metadata or None)


def file_id(path, name: str, dataset: int = 0) -> int:
    db = sqlite_utils.Database(path)
    return db.execute("select id from files where name = ? and dataset = ?", [name, dataset]).fetchone()[0]


def file_row(path, file_id_: int) -> dict:
    return next(sqlite_utils.Database(path)["files"].rows_where("id = ?", [file_id_]))


def catalogued_array(path, file_id_: int) -> np.ndarray:
    """The array as the reader chain reads it now, to compare an export with."""
    row = file_row(path, file_id_)
    chain = loaders_for(Path(row["path"]), file_loaders())
    return read_dataset(Path(row["path"]), chain, row["dataset"]).dataset.data


# -- The original files ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_single_file_downloads_with_its_bytes_and_its_name(catalog):
    carbon = file_id(catalog, "08_carbon.dm3")
    response = await served(catalog).client.get(f"/-/scisearch/download/lab/{carbon}")
    assert response.status_code == 200
    assert response.content == (shared_data("em") / "08_carbon.dm3").read_bytes()
    assert 'filename="08_carbon.dm3"' in response.headers["content-disposition"]
    assert response.headers["content-length"] == str(len(response.content))


@pytest.mark.asyncio
async def test_a_broken_download_resumes_with_a_range_request(catalog):
    carbon = file_id(catalog, "08_carbon.dm3")
    whole = (shared_data("em") / "08_carbon.dm3").read_bytes()
    ds = served(catalog)
    middle = await ds.client.get(f"/-/scisearch/download/lab/{carbon}", headers={"range": "bytes=1000-"})
    assert middle.status_code == 206
    assert middle.content == whole[1000:]
    assert middle.headers["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    tail = await ds.client.get(f"/-/scisearch/download/lab/{carbon}", headers={"range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == whole[-100:]


@pytest.mark.asyncio
async def test_a_range_outside_the_file_is_a_416_and_several_ranges_get_the_whole_file(catalog):
    carbon = file_id(catalog, "08_carbon.dm3")
    size = (shared_data("em") / "08_carbon.dm3").stat().st_size
    ds = served(catalog)
    outside = await ds.client.get(f"/-/scisearch/download/lab/{carbon}", headers={"range": f"bytes={size}-"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{size}"
    several = await ds.client.get(f"/-/scisearch/download/lab/{carbon}", headers={"range": "bytes=0-1,5-9"})
    assert several.status_code == 200 and len(several.content) == size


@pytest.mark.asyncio
async def test_a_tia_ser_downloads_as_a_zip_with_its_emi_partner(catalog):
    sto = file_id(catalog, "16_STOimage_1.ser")
    response = await served(catalog).client.get(f"/-/scisearch/download/lab/{sto}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="16_STOimage_1.zip"' in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["16_STOimage.emi", "16_STOimage_1.ser"]
    for name in archive.namelist():
        assert archive.read(name) == (shared_data("em") / name).read_bytes()


@pytest.mark.asyncio
async def test_a_zips_entries_carry_each_files_modification_time_on_the_facilitys_clock(catalog):
    import datetime as dt
    import zoneinfo

    sto = file_id(catalog, "16_STOimage_1.ser")
    facility = {"plugins": {"datasette-scisearch": {"timezone": "America/Los_Angeles"}}}
    response = await served(catalog, **facility).client.get(f"/-/scisearch/download/lab/{sto}")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    ser = Path(sqlite_utils.Database(catalog).execute("select path from files where id = ?", [sto]).fetchone()[0])
    for name in archive.namelist():
        modified = (ser.parent / name).stat().st_mtime
        expected = dt.datetime.fromtimestamp(modified, zoneinfo.ZoneInfo("America/Los_Angeles"))
        expected = expected.replace(second=expected.second // 2 * 2)  # a zip keeps time to two seconds
        assert archive.getinfo(name).date_time == expected.timetuple()[:6]


@pytest.mark.asyncio
async def test_a_direct_electron_movie_downloads_as_a_zip_with_its_info_txt(catalog):
    movie = file_id(catalog, MOVIE)
    response = await served(catalog).client.get(f"/-/scisearch/download/lab/{movie}")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == [MOVIE_INFO, MOVIE]
    assert archive.read(MOVIE_INFO) == (catalog.parent / "data" / MOVIE_INFO).read_bytes()
    assert archive.read(MOVIE) == (catalog.parent / "data" / MOVIE).read_bytes()


def test_a_name_with_quotes_and_accents_is_given_plainly_and_in_utf8():
    from datasette_scisearch.web.downloads import content_disposition

    header = content_disposition('Probe "A" – é.dm4')
    assert header.startswith('attachment; filename="Probe _A_ _ _.dm4"; ')
    assert "filename*=UTF-8''Probe%20%22A%22%20%E2%80%93%20%C3%A9.dm4" in header


@pytest.mark.asyncio
async def test_the_item_page_links_to_the_original_and_each_export_that_fits(catalog):
    carbon = file_id(catalog, "08_carbon.dm3")
    page = await served(catalog).client.get(f"/-/scisearch/item/lab/file/{carbon}")
    assert f'href="/-/scisearch/download/lab/{carbon}"' in page.text
    for name in ("tiff", "png", "emd"):
        assert f'href="/-/scisearch/export/lab/{carbon}.{name}"' in page.text
    stack = file_id(catalog, "dmTest_3D_int16_64,65,66.dm3")
    stack_page = await served(catalog).client.get(f"/-/scisearch/item/lab/file/{stack}")
    assert f"/-/scisearch/export/lab/{stack}.tiff" in stack_page.text
    assert f"/-/scisearch/export/lab/{stack}.png" not in stack_page.text  # PNG holds one 2-D image


# -- Refused: traversal, links out of the roots, paths not in the catalog ----------------------------------

TRAVERSALS = [
    "/-/scisearch/download/lab/..%2F..%2F..%2Fetc%2Fpasswd",
    "/-/scisearch/download/lab/%2E%2E%2Fsecret.txt",
    "/-/scisearch/download/lab/%252e%252e%252fsecret.txt",
    "/-/scisearch/download/lab/..",
    "/-/scisearch/download/lab/%2Fetc%2Fpasswd",
    "/-/scisearch/download/lab//etc/passwd",
    "/-/scisearch/download/lab/1%2F..%2F2",
    "/-/scisearch/download/lab/~2Fetc~2Fpasswd",
    "/-/scisearch/download/lab/-1",
    "/-/scisearch/download/lab/99999999999999999999999",
    "/-/scisearch/download/..%2Flab/1",
    "/-/scisearch/download/~2E~2E/1",
    "/-/scisearch/export/lab/..%2F1.tiff",
    "/-/scisearch/export/lab/1.%2E%2E",
    "/-/scisearch/export/lab/1.exe",
    "/-/scisearch/download/lab/1/../../../../etc/passwd",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("url", TRAVERSALS)
async def test_a_traversal_attempt_in_the_url_is_refused_and_serves_nothing(catalog, url):
    response = await served(catalog).client.get(url)
    assert response.status_code in (403, 404), response.text[:300]
    assert "root:" not in response.text and SECRET not in response.text


@pytest.mark.asyncio
async def test_a_catalogued_file_swapped_for_a_link_out_of_the_root_is_refused(own_catalog):
    copy = file_id(own_catalog, "spare.dm3")
    link = own_catalog.parent / "data" / "spare.dm3"
    link.unlink()
    link.symlink_to(own_catalog.parent / "outside" / "secret.txt")
    response = await served(own_catalog).client.get(
        f"/-/scisearch/download/lab/{copy}", headers={"accept": "application/json"}
    )
    assert response.status_code == 403
    assert SECRET not in response.text
    assert "not inside this catalog's data roots (a link leads out of them)" in response.json()["error"]


def test_a_folder_swapped_for_a_link_out_between_the_check_and_the_open_is_refused(own_catalog):
    originals = originals_of(sqlite_utils.Database(own_catalog), file_id(own_catalog, "spare.dm3"))
    data, moved = own_catalog.parent / "data", own_catalog.parent / "outside" / "data"
    data.rename(moved)
    data.symlink_to(moved, target_is_directory=True)
    with pytest.raises(NotServed, match="moved out of this catalog's data roots"):
        originals.open(originals.main)


@pytest.mark.asyncio
async def test_a_link_to_a_file_inside_the_root_is_served(own_catalog):
    copy = file_id(own_catalog, "spare.dm3")
    link = own_catalog.parent / "data" / "spare.dm3"
    link.unlink()
    link.symlink_to(own_catalog.parent / "data" / "08_carbon.dm3")
    response = await served(own_catalog).client.get(f"/-/scisearch/download/lab/{copy}")
    assert response.status_code == 200
    assert response.content == (shared_data("em") / "08_carbon.dm3").read_bytes()


@pytest.mark.asyncio
async def test_a_catalog_row_pointing_outside_every_root_is_refused(own_catalog):
    carbon = file_id(own_catalog, "08_carbon.dm3")
    db = sqlite_utils.Database(own_catalog)
    db.execute("update files set path = ? where id = ?", [str(own_catalog.parent / "outside" / "secret.txt"), carbon])
    db.conn.commit()
    response = await served(own_catalog).client.get(f"/-/scisearch/download/lab/{carbon}")
    assert response.status_code == 403
    assert SECRET not in response.text


@pytest.mark.asyncio
async def test_a_file_under_a_root_no_longer_registered_is_refused(own_catalog):
    db = sqlite_utils.Database(own_catalog)
    db.execute("delete from data_roots")
    db.conn.commit()
    carbon = file_id(own_catalog, "08_carbon.dm3")
    response = await served(own_catalog).client.get(f"/-/scisearch/download/lab/{carbon}")
    assert response.status_code == 403


@pytest.mark.asyncio
async def test_a_file_deleted_after_the_load_is_a_404_that_says_so(own_catalog):
    carbon = file_id(own_catalog, "08_carbon.dm3")
    (own_catalog.parent / "data" / "08_carbon.dm3").unlink()
    response = await served(own_catalog).client.get(
        f"/-/scisearch/download/lab/{carbon}", headers={"accept": "application/json"}
    )
    assert response.status_code == 404
    assert "no longer on disk" in response.json()["error"]


@pytest.mark.asyncio
async def test_a_file_of_a_table_the_visitor_may_not_read_is_refused(catalog):
    ds = served(catalog, databases={"lab": {"tables": {"files": {"allow": {"id": "staff"}}}}})
    carbon = file_id(catalog, "08_carbon.dm3")
    for url in (f"/-/scisearch/download/lab/{carbon}", f"/-/scisearch/export/lab/{carbon}.tiff"):
        response = await ds.client.get(url)
        assert response.status_code == 403, url
    page = await ds.client.get(
        f"/-/scisearch/download/lab/{carbon}", cookies={"ds_actor": ds.sign({"a": {"id": "staff"}}, "actor")}
    )
    assert page.status_code == 200


# -- Exports ----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_tiff_export_opens_with_tifffile_and_holds_the_array(catalog):
    carbon = file_id(catalog, "08_carbon.dm3")
    response = await served(catalog).client.get(f"/-/scisearch/export/lab/{carbon}.tiff")
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "image/tiff"
    assert 'filename="08_carbon.tif"' in response.headers["content-disposition"]
    exported = tifffile.imread(io.BytesIO(response.content))
    np.testing.assert_array_equal(exported, catalogued_array(catalog, carbon))


@pytest.mark.asyncio
async def test_the_tiff_export_of_a_stack_keeps_every_axis(catalog):
    stack = file_id(catalog, "dmTest_3D_int16_64,65,66.dm3")
    response = await served(catalog).client.get(f"/-/scisearch/export/lab/{stack}.tiff")
    exported = tifffile.imread(io.BytesIO(response.content))
    expected = catalogued_array(catalog, stack)
    assert exported.ndim == 3
    np.testing.assert_array_equal(exported, expected)


@pytest.mark.asyncio
async def test_the_hdf5_export_is_berkeley_emd_that_h5py_opens_with_the_array(catalog):
    sto = file_id(catalog, "16_STOimage_1.ser")
    response = await served(catalog).client.get(f"/-/scisearch/export/lab/{sto}.emd")
    assert response.status_code == 200, response.text[:300]
    with h5py.File(io.BytesIO(response.content), "r") as emd:
        assert (emd.attrs["version_major"], emd.attrs["version_minor"]) == (0, 2)
        (group,) = emd["data"].values()
        assert group.attrs["emd_group_type"] == 1
        np.testing.assert_array_equal(group["data"][()], catalogued_array(catalog, sto))
        assert group["dim1"].shape[0] == group["data"].shape[0]


@pytest.mark.asyncio
async def test_the_png_export_of_a_float_image_maps_back_to_the_array_within_one_step(catalog):
    carbon = file_id(catalog, "08_carbon.dm3")
    response = await served(catalog).client.get(f"/-/scisearch/export/lab/{carbon}.png")
    assert response.status_code == 200, response.text[:300]
    image = Image.open(io.BytesIO(response.content))
    expected = catalogued_array(catalog, carbon).astype(np.float64)
    offset, scale = float(image.text["scisearch:offset"]), float(image.text["scisearch:scale"])
    restored = offset + scale * np.asarray(image, dtype=np.float64)
    assert restored.shape == expected.shape
    assert np.max(np.abs(restored - expected)) <= scale


@pytest.mark.asyncio
async def test_a_png_export_of_a_3d_stack_is_refused_with_the_formats_that_fit(catalog):
    stack = file_id(catalog, "dmTest_3D_int16_64,65,66.dm3")
    response = await served(catalog).client.get(
        f"/-/scisearch/export/lab/{stack}.png", headers={"accept": "application/json"}
    )
    assert response.status_code == 400
    assert "tiff" in response.json()["fix"] and "emd" in response.json()["fix"]


def test_a_uint16_image_exports_to_png_exactly(tmp_path):
    from datasette_scisearch.downloads.exports import FORMATS, write_export
    from datasette_scisearch.ingest.loader import Dataset

    data = np.arange(60000, dtype=np.uint16).reshape(200, 300)
    target = write_export(Dataset(data=data), FORMATS["png"], tmp_path / "x.png")
    np.testing.assert_array_equal(np.asarray(Image.open(target)), data)


def test_the_sandbox_reads_a_dataset_with_its_array_like_the_loading_process(catalog):
    from datasette_scisearch.ingest.sandbox import ReaderPool

    stack = file_id(catalog, "dmTest_3D_int16_64,65,66.dm3")
    row = file_row(catalog, stack)
    path = Path(row["path"])
    with ReaderPool() as pool:
        read = pool.read_dataset(path, loaders_for(path, file_loaders()), row["dataset"])
    assert pool.unavailable is None
    np.testing.assert_array_equal(read.dataset.data, catalogued_array(catalog, stack))


@pytest.mark.asyncio
async def test_an_export_of_a_file_changed_into_junk_says_it_cannot_be_read(own_catalog):
    carbon = file_id(own_catalog, "08_carbon.dm3")
    (own_catalog.parent / "data" / "08_carbon.dm3").write_bytes(os.urandom(4096))
    response = await served(own_catalog).client.get(
        f"/-/scisearch/export/lab/{carbon}.tiff", headers={"accept": "application/json"}
    )
    assert response.status_code == 409
    assert "could not be read again" in response.json()["error"]


# -- Every bad URL of these routes is a 4xx, never a 500 -------------------------------------------------------

ROUTE_SHAPES = [
    "/-/scisearch/download/{db}/{id}",
    "/-/scisearch/export/{db}/{id}.tiff",
    "/-/scisearch/export/{db}/{id}.png",
    "/-/scisearch/export/{db}/{id}.{id}",
    "/-/scisearch/sitemap/{db}/{id}.xml",
    "/-/scisearch/datacite/{db}/{id}.json",
]


@pytest.mark.asyncio
async def test_no_bad_id_or_database_in_a_download_sitemap_or_datacite_url_is_answered_with_a_500(catalog):
    from .test_web_errors import BAD_IDS, DATABASES

    ds = served(catalog)
    databases = [name.replace("cat", "lab") for name in DATABASES]
    failures = []
    for shape in ROUTE_SHAPES:
        for database in databases:
            for bad in [*BAD_IDS, "1"]:
                url = shape.format(db=database, id=bad)
                response = await ds.client.get(url)
                if response.status_code >= 500:
                    failures.append((url, response.status_code))
    assert failures == []


@pytest.mark.asyncio
async def test_the_item_json_of_a_file_lists_its_downloads(catalog):
    stack = file_id(catalog, "dmTest_3D_int16_64,65,66.dm3")
    data = (await served(catalog).client.get(f"/-/scisearch/item/lab/file/{stack}.json")).json()
    assert [(d["format"], d["url"]) for d in data["downloads"]] == [
        ("original", f"/-/scisearch/download/lab/{stack}"),
        ("tiff", f"/-/scisearch/export/lab/{stack}.tiff"),
        ("emd", f"/-/scisearch/export/lab/{stack}.emd"),
    ]


@pytest.mark.asyncio
async def test_a_dectris_arina_master_downloads_as_a_zip_with_its_data_file(tmp_path):
    arina = shared_data("em-vendors", "arina")
    data = tmp_path / "arina"
    shutil.copytree(arina, data)
    db = open_catalog(tmp_path / "lab.db")
    load_files(db, [data], Settings(), progress=False, sandbox=False)
    master = db.execute("select id from files where name = 'test_00_master.h5'").fetchone()[0]
    db.close()
    response = await served(tmp_path / "lab.db").client.get(f"/-/scisearch/download/lab/{master}")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["test_00_data_000001.h5", "test_00_master.h5"]
    assert archive.read("test_00_data_000001.h5") == (arina / "test_00_data_000001.h5").read_bytes()


def read_bytes_of(pid: int) -> int:
    """What a process has read through system calls so far (/proc/PID/io's rchar)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


def test_a_download_abandoned_by_its_client_stops_reading_the_file(tmp_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    if not Path("/proc/self/io").exists():
        pytest.skip("needs Linux's /proc/PID/io to see what the server read")
    data = tmp_path / "data"
    data.mkdir()
    big = np.random.default_rng(0).integers(0, 4096, size=(8 * 64, 256, 256)).astype(np.int16)  # 64 MiB
    mrc.mrcWriter(str(data / "big.mrc"), big, (1.0, 0.1, 0.1))
    db = open_catalog(tmp_path / "lab.db")
    load_files(db, [data], Settings(), progress=False, sandbox=False)
    big_id = db.execute("select id from files where name = 'big.mrc'").fetchone()[0]
    db.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(tmp_path / "lab.db"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/versions.json", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        before = read_bytes_of(server.pid)
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            client.sendall(f"GET /-/scisearch/download/lab/{big_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert b"200 OK" in client.recv(1 << 16)
        time.sleep(2)  # time enough to read all 64 MiB many times over
        read = read_bytes_of(server.pid) - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert read < big.nbytes / 2, f"the server read {read:,} bytes of a {big.nbytes:,}-byte file nobody was fetching"


@pytest.mark.asyncio
async def test_a_head_request_gets_the_download_headers_without_the_body(catalog):
    carbon = file_id(catalog, "08_carbon.dm3")
    response = await served(catalog).client.request("HEAD", f"/-/scisearch/download/lab/{carbon}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str((shared_data("em") / "08_carbon.dm3").stat().st_size)
    assert response.content == b""
