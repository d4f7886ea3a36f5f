"""Records: user-log sessions, proposals and papers loaded into a real catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from datasette_scisearch import plugins  # noqa: E402
from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.config import load_settings  # noqa: E402
from datasette_scisearch.hookspecs import hookimpl  # noqa: E402
from datasette_scisearch.ingest.loader import RecordError, RecordLoader  # noqa: E402
from datasette_scisearch.ingest.records import ERRORS_LISTED_MAX, RecordsError, load_records  # noqa: E402

from .conftest import REPO, shared_data  # noqa: E402

DATA = Path(__file__).parent / "data" / "records"
AWARDS = ("proposals", "nsf_awards_2017.jsonl")
SCIFACT = ("scifact", "corpus.jsonl")


@pytest.fixture(scope="module")
def real_catalog(tmp_path_factory):
    """NSF awards and SciFact abstracts loaded once for the tests that only read them."""
    awards, scifact = shared_data(*AWARDS), shared_data(*SCIFACT)
    db = open_catalog(tmp_path_factory.mktemp("real") / "catalog.db")
    settings = load_settings(REPO / "metadata.yml")
    summaries = {
        "proposals": load_records(db, "proposals", awards, settings, progress=False),
        "papers": load_records(db, "papers", scifact, settings, progress=False),
    }
    yield db, settings, summaries
    db.close()


def errors_by_line(summary) -> dict[int, str]:
    return {error["line"]: error["message"] for error in summary.errors}


def write_pdf(path: Path, lines: list[str], title: str | None = None) -> Path:
    """A one-page PDF whose text pypdf can extract (TrueType fonts, not Type 3 outlines)."""
    with plt.rc_context({"pdf.fonttype": 42}):
        figure = plt.figure(figsize=(8.5, 11))
        for number, text in enumerate(lines):
            figure.text(0.08, 0.95 - number * 0.03, text, fontsize=10)
        figure.savefig(path, metadata={"Title": title} if title else {})
        plt.close(figure)
    return path


PAPER_LINES = [
    "Atomic Imaging of Antiferroelectric Thin Foils",
    "A. Author, B. Author",
    "Journal of Microscopy (2018), doi:10.1234/JMI.2018.0042",
    "Abstract",
    "We image the nucleation of a ferroelectric phase in free-standing",
    "antiferroelectric foils with in situ transmission electron micro-",
    "scopy and electron holography.",
    "1 Introduction",
    "Capacitors matter.",
    "Acknowledgements",
    "This work was supported by the National Science Foundation under award DMR-1700014",
    "and used the Molecular Foundry.",
    "References",
    "[1] Someone, Nature 1 (2000) 1, doi:10.1038/OTHER.PAPER",
]


# Proposals


def test_all_584_nsf_awards_load_as_proposals(real_catalog):
    db, _, summaries = real_catalog
    assert summaries["proposals"].added == 584
    assert summaries["proposals"].failed == 0
    assert db["proposals"].count == 584


def test_an_award_keeps_its_title_dates_amount_and_programs(real_catalog):
    db, _, _ = real_catalog
    award = db["proposals"].get("1700014")
    assert award["title"] == "Nanoscale Phase Transition in Free-Standing Dielectric Thin Foils"
    assert (award["start_date"], award["end_date"]) == ("2017-07-01", "2020-06-30")
    assert award["amount"] == 261580.0
    assert award["programs"] == "ELECTRONIC/PHOTONIC MATERIALS"
    assert award["institution"] == "Iowa State University"
    assert json.loads(award["details"])["instrument"] == "Continuing grant"
    assert award["source"] == "nsf_awards_2017.jsonl:1"


def test_full_text_search_finds_awards_about_microscopy(real_catalog):
    db, _, _ = real_catalog
    ids = {
        row[0]
        for row in db.execute(
            "select proposals.id from proposals join proposals_fts on proposals.rowid = proposals_fts.rowid "
            "where proposals_fts match 'microscopy'"
        )
    }
    assert len(ids) > 100
    assert "1700014" in ids


def test_reloading_the_awards_adds_nothing_and_leaves_every_row_unchanged(real_catalog):
    db, settings, _ = real_catalog
    again = load_records(db, "proposals", shared_data(*AWARDS), settings, progress=False)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 584)
    assert db["proposals"].count == 584


def test_a_changed_award_counts_as_updated(catalog, settings, tmp_path):
    source = tmp_path / "awards.jsonl"
    lines = shared_data(*AWARDS).read_text().splitlines()[:3]
    source.write_text("\n".join(lines) + "\n")
    load_records(catalog, "proposals", source, settings, progress=False)
    first = json.loads(lines[0])
    first["title"] = "A corrected title"
    source.write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    summary = load_records(catalog, "proposals", source, settings, progress=False)
    assert (summary.added, summary.updated, summary.unchanged) == (0, 1, 2)
    assert catalog["proposals"].get(first["award_id"])["title"] == "A corrected title"


def test_proposals_in_a_csv_with_other_column_names_load_through_the_columns_option(catalog, settings, tmp_path):
    source = tmp_path / "proposals.csv"
    source.write_text("Number,Name,PI,Starts\nP-17,Gold catalysts,Ada Lovelace,2017-09-01\n")
    options = {"columns": {"id": "Number", "title": "Name", "pi": "PI", "start_date": "Starts"}}
    load_records(catalog, "proposals", source, settings, options, progress=False)
    row = catalog["proposals"].get("P-17")
    assert (row["title"], row["pi"], row["start_date"]) == ("Gold catalysts", "Ada Lovelace", "2017-09-01")


# Papers


def test_all_5183_scifact_abstracts_load_as_papers(real_catalog):
    db, _, summaries = real_catalog
    assert summaries["papers"].added == 5183
    assert db["papers"].count == 5183
    assert db["papers"].get("4983")["title"].startswith("Microstructural development of human newborn")


def test_full_text_search_finds_a_scifact_paper_by_a_phrase_of_its_abstract(real_catalog):
    db, _, _ = real_catalog
    ids = [
        row[0]
        for row in db.execute(
            "select papers.id from papers join papers_fts on papers.rowid = papers_fts.rowid where papers_fts match ?",
            ['"nonmyelinated fibers in the corpus callosum"'],
        )
    ]
    assert ids == ["4983"]


def test_reloading_scifact_adds_nothing(real_catalog):
    db, settings, _ = real_catalog
    again = load_records(db, "papers", shared_data(*SCIFACT), settings, progress=False)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 5183)


def test_a_bibtex_entry_with_a_doi_is_stored_under_its_lower_cased_doi(catalog, settings):
    load_records(catalog, "papers", DATA / "references.bib", settings, progress=False)
    paper = catalog["papers"].get("10.1038/nmat9999")
    assert paper["title"] == "Atomic-Resolution STEM Imaging of Antiferroelectric Phase Transitions"
    assert paper["authors"] == "Chen, Wei; Müller, Anna; Smith, John"
    assert (paper["year"], paper["published"], paper["venue"]) == (2018, "2018-03", "Nature Materials")
    assert "DMR-1700014" in paper["funding"]


def test_a_bibtex_entry_without_a_doi_is_stored_under_its_citation_key(catalog, settings):
    load_records(catalog, "papers", DATA / "references.bib", settings, progress=False)
    paper = catalog["papers"].get("garcia2019gold")
    assert paper["venue"] == "Microscopy and Microanalysis"
    assert paper["funding"] == "Work at the Molecular Foundry was supported by the Office of Science."


def test_a_broken_bibtex_entry_is_an_error_at_its_line_and_the_rest_load(catalog, settings):
    summary = load_records(catalog, "papers", DATA / "references.bib", settings, progress=False)
    assert summary.added == 3
    assert list(errors_by_line(summary)) == [22]
    assert "broken2020" in errors_by_line(summary)[22]


def test_a_pdf_gives_its_title_doi_abstract_and_acknowledgement(catalog, settings, tmp_path):
    pdf = write_pdf(tmp_path / "paper.pdf", PAPER_LINES, title="Atomic Imaging of Antiferroelectric Thin Foils")
    summary = load_records(catalog, "papers", pdf, settings, progress=False)
    assert summary.added == 1
    paper = catalog["papers"].get("10.1234/jmi.2018.0042")
    assert paper["title"] == "Atomic Imaging of Antiferroelectric Thin Foils"
    assert paper["abstract"].endswith("in situ transmission electron microscopy and electron holography.")
    assert paper["funding"] == (
        "This work was supported by the National Science Foundation under award "
        "DMR-1700014 and used the Molecular Foundry."
    )
    assert "Capacitors matter." in paper["full_text"]
    assert paper["source"] == "paper.pdf"


def test_a_pdf_without_title_metadata_or_doi_is_named_by_its_first_line_and_hash(catalog, settings, tmp_path):
    pdf = write_pdf(tmp_path / "notes.pdf", ["Beam damage in zeolites", "Some observations."])
    load_records(catalog, "papers", pdf, settings, progress=False)
    (paper,) = catalog["papers"].rows
    assert paper["title"] == "Beam damage in zeolites"
    assert paper["id"].startswith("sha256:")
    assert paper["abstract"] == "Beam damage in zeolites Some observations."


def test_a_corrupt_pdf_is_an_error_row_for_that_file(catalog, settings, tmp_path):
    pdf = tmp_path / "truncated.pdf"
    pdf.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nendobj\n")
    summary = load_records(catalog, "papers", pdf, settings, progress=False)
    assert summary.failed == 1
    (error,) = catalog["ingest_errors"].rows
    assert (error["source"], error["line"], error["loader"]) == (str(pdf.resolve()), 0, "papers_pdf")
    assert "is not a readable PDF" in error["message"]


def test_a_pdf_with_no_text_is_an_error_that_suggests_ocr(catalog, settings, tmp_path):
    pdf = write_pdf(tmp_path / "scan.pdf", [])
    summary = load_records(catalog, "papers", pdf, settings, progress=False)
    assert summary.failed == 1
    assert "run OCR" in summary.errors[0]["message"]


def test_a_folder_of_pdfs_loads_every_pdf_inside_it_and_skips_other_files(catalog, settings, tmp_path):
    folder = tmp_path / "library"
    (folder / "2018").mkdir(parents=True)
    write_pdf(folder / "2018" / "foils.pdf", PAPER_LINES)
    write_pdf(folder / "zeolites.pdf", ["Beam damage in zeolites"])
    (folder / "readme.txt").write_text("not a paper")
    summary = load_records(catalog, "papers", folder, settings, progress=False)
    assert (summary.added, summary.skipped) == (2, 1)
    assert catalog["papers"].get("10.1234/jmi.2018.0042")["source"] == "library/2018/foils.pdf"


# User logs


def test_a_userlog_with_malformed_rows_reports_each_at_its_line(catalog, settings):
    summary = load_records(catalog, "userlog", DATA / "userlog_with_errors.csv", settings, progress=False)
    errors = errors_by_line(summary)
    assert sorted(errors) == [4, 5, 6, 7, 9]
    assert "'instrument'" in errors[4]
    assert "'yesterday morning' is not a date and time" in errors[5]
    assert "before it starts" in errors[6]
    assert "has 4 fields but the header has 6" in errors[7]
    assert "'end'" in errors[9]


def test_a_userlog_with_malformed_rows_still_loads_its_good_rows(catalog, settings):
    summary = load_records(catalog, "userlog", DATA / "userlog_with_errors.csv", settings, progress=False)
    assert (summary.added, summary.failed) == (3, 5)
    users = {row["user"]: row for row in catalog["sessions"].rows}
    assert sorted(users) == ["alice", "bob", "gina"]
    assert users["alice"]["proposal_id"] == "1700014"
    assert users["alice"]["source"] == "userlog_with_errors.csv:2"


def test_userlog_instrument_names_become_canonical_and_join_the_instruments_table(catalog, settings):
    load_records(catalog, "userlog", DATA / "userlog_with_errors.csv", settings, progress=False)
    bob = next(catalog["sessions"].rows_where("user = 'bob'"))
    assert bob["instrument"] == "TitanCubed"  # written 'Titan Cubed 80-300' in the log
    assert {row["name"] for row in catalog["instruments"].rows} == {"TitanCubed", "Themis"}


def test_naive_userlog_times_are_facility_local_time(catalog, settings):
    load_records(catalog, "userlog", DATA / "userlog_with_errors.csv", settings, progress=False)
    bob = next(catalog["sessions"].rows_where("user = 'bob'"))
    # 10/18/2011 1:00 PM to 5:00 PM Pacific daylight time
    assert (bob["start"], bob["end"]) == ("2011-10-18T20:00:00+00:00", "2011-10-19T00:00:00+00:00")


def test_userlog_times_with_an_offset_keep_that_offset(catalog, settings):
    load_records(catalog, "userlog", DATA / "userlog_with_errors.csv", settings, progress=False)
    gina = next(catalog["sessions"].rows_where("user = 'gina'"))
    assert gina["start"] == "2011-10-21T13:00:00+00:00"  # written 09:00-04:00


def test_userlog_column_names_and_time_zone_come_from_the_options(catalog, settings):
    settings.timezone = "UTC"
    options = {
        "columns": {
            "instrument": "Microscope",
            "user": "Researcher",
            "start": "Begin",
            "end": "Finish",
            "proposal_id": "Project",
        },
        "timezone": "America/Los_Angeles",
    }
    load_records(catalog, "userlog", DATA / "bookings_custom_columns.csv", settings, options, progress=False)
    (session,) = catalog["sessions"].rows
    assert session["start"] == "2011-10-19T00:00:00+00:00"  # 17:00 in Berkeley in October
    assert (session["instrument"], session["user"], session["proposal_id"]) == ("TEAM 0.5", "alice", "DMR-1700014")
    assert json.loads(session["details"]) == {"Room": "B72"}


def test_a_userlog_header_without_a_required_column_is_one_error_and_loads_nothing(catalog, settings):
    summary = load_records(catalog, "userlog", DATA / "userlog_without_start.csv", settings, progress=False)
    assert summary.failed == 1
    message = errors_by_line(summary)[1]
    assert "no 'start' column" in message and "'begin'" in message
    assert catalog["sessions"].count == 0


def test_a_json_lines_userlog_reports_bad_json_at_its_line(catalog, settings):
    summary = load_records(catalog, "userlog", DATA / "userlog.jsonl", settings, progress=False)
    assert (summary.added, sorted(errors_by_line(summary))) == (2, [2, 3])
    assert "is not valid JSON" in errors_by_line(summary)[2]


def test_reloading_a_userlog_adds_no_sessions(catalog, settings):
    load_records(catalog, "userlog", DATA / "userlog_with_errors.csv", settings, progress=False)
    again = load_records(catalog, "userlog", DATA / "userlog_with_errors.csv", settings, progress=False)
    assert (again.added, again.updated, again.unchanged, again.failed) == (0, 0, 3, 5)
    assert catalog["sessions"].count == 3
    assert catalog["ingest_errors"].count == 5


def test_errors_of_a_userlog_are_cleared_once_its_rows_are_fixed(catalog, settings, tmp_path):
    source = tmp_path / "userlog.csv"
    shutil.copy(DATA / "userlog_with_errors.csv", source)
    load_records(catalog, "userlog", source, settings, progress=False)
    good_rows = [line for number, line in enumerate(source.read_text().splitlines(), 1) if number not in (4, 5, 6, 7)]
    source.write_text("\n".join(good_rows) + "\n")
    summary = load_records(catalog, "userlog", source, settings, progress=False)
    assert [row["line"] for row in catalog["ingest_errors"].rows] == [5]  # the open-ended session, now line 5
    assert summary.failed == 1


def test_a_booking_repeated_in_the_same_log_is_loaded_once_and_noted(catalog, settings, tmp_path):
    source = tmp_path / "userlog.csv"
    booking = "Themis,alice,2011-10-18 09:00,2011-10-18 12:00\n"
    source.write_text("instrument,user,start,end\n" + booking + booking)
    summary = load_records(catalog, "userlog", source, settings, progress=False)
    assert (summary.added, summary.skipped, catalog["sessions"].count) == (1, 1, 1)
    assert "userlog.csv:3 repeats userlog.csv:2" in summary.notes[0]


def test_a_session_longer_than_a_month_is_refused_as_a_likely_typo(catalog, settings, tmp_path):
    source = tmp_path / "userlog.csv"
    source.write_text("instrument,user,start,end\nThemis,alice,2011-10-18 09:00,2012-10-18 12:00\n")
    summary = load_records(catalog, "userlog", source, settings, progress=False)
    assert "check its end date" in errors_by_line(summary)[2]


def test_the_error_list_of_a_summary_is_capped_but_every_failure_is_counted(catalog, settings, tmp_path):
    source = tmp_path / "userlog.csv"
    source.write_text("instrument,user,start,end\n" + "Themis,x,never,never\n" * 60)
    summary = load_records(catalog, "userlog", source, settings, progress=False)
    assert (summary.failed, len(summary.errors)) == (60, ERRORS_LISTED_MAX)
    assert catalog["ingest_errors"].count == 60


# The load itself


def test_a_load_is_recorded_as_a_finished_job_with_its_counts(catalog, settings):
    summary = load_records(catalog, "userlog", DATA / "userlog_with_errors.csv", settings, progress=False)
    job = catalog["jobs"].get(summary.job_id)
    assert (job["command"], job["status"], job["succeeded"], job["failed"]) == ("load userlog", "done", 3, 5)


def test_a_missing_file_is_a_clear_records_error(catalog, settings, tmp_path):
    with pytest.raises(RecordsError, match="no such file or folder"):
        load_records(catalog, "papers", tmp_path / "nowhere.bib", settings, progress=False)


def test_a_format_no_loader_reads_is_a_records_error_naming_the_supported_formats(catalog, settings, tmp_path):
    spreadsheet = tmp_path / "x.xlsx"
    spreadsheet.write_bytes(b"PK")
    with pytest.raises(RecordsError, match=r"cannot load 'x.xlsx' as papers: supported formats are .*\.bib.*\.pdf"):
        load_records(catalog, "papers", spreadsheet, settings, progress=False)


def test_an_unknown_field_in_the_columns_option_is_a_records_error(catalog, settings):
    with pytest.raises(RecordsError, match="unknown field 'begin' in columns"):
        load_records(catalog, "userlog", DATA / "userlog.jsonl", settings, {"columns": {"begin": "x"}}, progress=False)


class HalfwayFailingLoader(RecordLoader):
    name = "halfway"
    kind = "proposals"
    suffixes = frozenset({".halfway"})

    def read(self, path, options):
        yield {"_line": 1, "id": "P-1", "title": "kept"}
        yield RecordError(2, "a bad record")
        raise RuntimeError("disk went away")


class HalfwayFailingPlugin:
    @hookimpl
    def register_loaders(self, register):
        register(HalfwayFailingLoader())


@pytest.fixture
def halfway_failing_loader():
    plugin = HalfwayFailingPlugin()
    plugins.get_plugin_manager().register(plugin, name="halfway-failing")
    yield
    plugins.get_plugin_manager().unregister(plugin)


def test_a_loader_that_crashes_keeps_the_records_before_and_reports_where_it_stopped(
    catalog, settings, tmp_path, halfway_failing_loader
):
    source = tmp_path / "awards.halfway"
    source.write_text("")
    summary = load_records(catalog, "proposals", source, settings, progress=False)
    assert catalog["proposals"].get("P-1")["title"] == "kept"
    assert errors_by_line(summary) == {2: "a bad record", 3: "loader 'halfway' failed: RuntimeError: disk went away"}
