"""Context linking driven by a user log written against the real files' acquisition times."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from zoneinfo import ZoneInfo

import pytest
from datasette.app import Datasette

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.ingest.linking import link_all
from datasette_scisearch.ingest.records import load_records

from .conftest import REPO, shared_data

LOCAL = ZoneInfo("America/Los_Angeles")

# Booked sessions, in the facility's local time, around when the real files were taken:
# 16_STOimage_1.ser 2011-10-18 18:18:46 (TitanCubed), 08_carbon.dm3 2017-08-29 13:58:43 (TEAM 0.5),
# Velox files 2020-07-29 09:48-09:50 (Themis), After HAADF/LAABF 2018-11-29 22:41-22:44 (TitanX).
USER_LOG = """instrument,user,start,end,proposal,notes
TitanCubed D3147,ercius,2011-10-18 17:00,2011-10-18 19:00,DMR-1700014,STO lamella HAADF
TEAM 0.5,ciston,2017-08-29 13:00,2017-08-29 13:55,P-2017-0007,carbon film EELS (booked end a few minutes early)
Themis,ophus,2020-07-29 08:00,2020-07-29 09:49,P-2020-0113,Ceta then STEM
Themis,ophus,2020-07-29 09:49,2020-07-29 12:00,P-2020-0113,second block
TitanX,kisielowski,2018-11-29 20:00,2018-11-29 22:30,P-2018-0421,EDS tomography
TEAM 0.5,ercius,2019-10-04 11:00,2019-10-04 13:00,P-2016-0001,STO laser cut
Krios,cryo,2016-03-02 10:00,2016-03-02 12:00,P-2016-0001,an MRC export without a recorded time
"""

PROPOSALS = [
    {"id": "DMR-1700014", "title": "Polar order at SrTiO3 interfaces", "abstract": "HAADF STEM of strontium titanate."},
    {"id": "P-2017-0007", "title": "Carbon films by EELS", "abstract": "Core-loss spectroscopy of amorphous carbon."},
    {"id": "P-2020-0113", "title": "4D-STEM of oxides", "abstract": "Diffraction imaging."},
]

PAPERS = [
    {
        "id": "10.1000/sto",
        "title": "Atomic-scale polarization in SrTiO3",
        "abstract": "We image STO.",
        "funding": "Supported by NSF award DMR-1700014 and the Molecular Foundry.",
    },
    {"id": "10.1000/other", "title": "Unrelated work", "abstract": "Nothing about the facility proposals."},
]


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("linking")
    catalog = open_catalog(tmp_path / "catalog.db")
    settings = load_settings(REPO / "metadata.yml")
    em = shared_data("em")
    disk = tmp_path / "disk"
    disk.mkdir()
    for name in os.listdir(em):
        if name not in ("LICENSE", "about_dataset.txt", "temp.mrc"):
            shutil.copy2(em / name, disk / name)
    # MRC stores no time or instrument: the Krios export folder names the instrument, and the
    # copy keeps the modification time it had on the instrument PC.
    (disk / "krios").mkdir()
    shutil.copy2(em / "temp.mrc", disk / "krios" / "temp.mrc")
    taken = dt.datetime(2016, 3, 2, 11, 15, tzinfo=LOCAL).timestamp()
    os.utime(disk / "krios" / "temp.mrc", (taken, taken))
    (tmp_path / "userlog.csv").write_text(USER_LOG)
    (tmp_path / "proposals.jsonl").write_text("\n".join(json.dumps(p) for p in PROPOSALS))
    (tmp_path / "papers.jsonl").write_text("\n".join(json.dumps(p) for p in PAPERS))
    load_records(catalog, "proposals", tmp_path / "proposals.jsonl", settings, progress=False)
    load_records(catalog, "papers", tmp_path / "papers.jsonl", settings, progress=False)
    load_records(catalog, "userlog", tmp_path / "userlog.csv", settings, progress=False)
    load_files(catalog, [disk], settings, progress=False)
    summary = link_all(catalog, settings)
    return catalog, summary


def session_of(db, name):
    rows = db.execute(
        "select s.user, s.notes, f.proposal_id from files f left join sessions s on s.id = f.session_id"
        " where f.name = ?",
        [name],
    ).fetchall()
    return rows[0] if rows else None


def link_of(db, name, to_type):
    return db.execute(
        """select l.method, l.confidence, l.evidence from links l join files f on l.from_id = cast(f.id as text)
           where l.from_type = 'file' and l.to_type = ? and f.name = ?""",
        [to_type, name],
    ).fetchone()


def test_the_sto_image_belongs_to_the_titancubed_session_and_its_proposal(linked):
    db, _ = linked
    assert session_of(db, "16_STOimage_1.ser") == ("ercius", "STO lamella HAADF", "DMR-1700014")
    method, confidence, evidence = link_of(db, "16_STOimage_1.ser", "session")
    assert method == "acquisition time in session" and confidence > 0.9
    assert "2011-10-19T01:18:46" in evidence


def test_a_file_just_after_its_session_ends_links_within_the_clock_skew_tolerance(linked):
    db, _ = linked
    assert session_of(db, "08_carbon.dm3")[0] == "ciston"
    method, confidence, evidence = link_of(db, "08_carbon.dm3", "session")
    assert confidence < 0.9 and "within 10 min" in evidence


def test_the_berkeley_emd_links_by_its_recorded_acquisition_time(linked):
    db, _ = linked
    assert session_of(db, "Acquisition_18.emd")[1] == "STO laser cut"


def test_files_fall_into_the_right_one_of_two_adjacent_sessions(linked):
    db, _ = linked
    assert session_of(db, "Camera Ceta Diffraction Micro.emd")[1] == "Ceta then STEM"
    assert session_of(db, "STEM HAADF Diffraction Micro.emd")[1] == "second block"


def test_a_file_outside_every_session_on_its_instrument_stays_unlinked(linked):
    db, _ = linked
    assert session_of(db, "After LAABF 1.5m_1.ser") == (None, None, None)  # 22:44, the session ended 22:30


def test_a_file_without_a_recorded_time_links_by_modification_time_as_weaker_evidence(linked):
    db, summary = linked
    method, confidence, _ = link_of(db, "temp.mrc", "session")
    assert method == "file time in session" and confidence <= 0.5
    assert summary.files_by_modification_time == 1


def test_files_inherit_the_proposal_of_their_session_with_provenance(linked):
    db, summary = linked
    method, _, evidence = link_of(db, "16_STOimage_1.ser", "proposal")
    assert method == "via session" and "session" in evidence
    assert summary.files_with_proposal >= 7


def test_a_paper_that_names_a_proposal_in_its_acknowledgements_is_linked_to_it(linked):
    db, summary = linked
    rows = db.execute("select from_id, method, evidence from links where from_type = 'paper'").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("10.1000/sto", "proposal id in paper")]
    assert "DMR" in rows[0][2] and summary.papers_linked == 1


def test_a_session_booked_under_an_unknown_proposal_is_linked_and_flagged(linked):
    db, summary = linked
    evidence = db.execute(
        "select evidence from links where from_type = 'session' and to_id = 'P-2018-0421'"
    ).fetchone()[0]
    assert "not loaded" in evidence and summary.sessions_with_unknown_proposal == 3


def test_linking_twice_gives_the_same_links(linked, settings):
    db, _ = linked
    before = db.execute("select from_type, from_id, to_type, to_id, method from links order by 1, 2, 3, 4").fetchall()
    link_all(db, settings)
    after = db.execute("select from_type, from_id, to_type, to_id, method from links order by 1, 2, 3, 4").fetchall()
    assert before == after


@pytest.mark.asyncio
async def test_datasette_shows_a_files_session_proposal_and_papers_in_one_query(linked):
    db, _ = linked
    file_id = db.execute("select id from files where name = '16_STOimage_1.ser'").fetchone()[0]
    ds = Datasette([str(db.conn.execute("pragma database_list").fetchone()[2])])
    name = next(iter(ds.databases.keys() - {"_internal", "_memory"}))
    response = await ds.client.get(f"/{name}/file_context.json?file_id={file_id}&_shape=array")
    rows = {row["linked"]: row for row in response.json()}
    assert rows["session"]["method"] == "acquisition time in session"
    assert rows["proposal"]["what"] == "Polar order at SrTiO3 interfaces"
    assert rows["paper"]["id"] == "10.1000/sto" and "DMR" in rows["paper"]["evidence"]
