"""A small synthetic electron-microscopy facility on disk, to try scisearch without real data.

``build_facility(folder)`` writes a few hundred instrument files in the formats
five real microscopes write (Berkeley EMD, Velox EMD, FEI and Zeiss SEM TIFF,
MRC), named in researchers' shorthand and filed the way a facility disk is
(data/<instrument>/<year>/<user>/<project or date>/), plus the records around
them: a user log whose bookings cover the files' timestamps (a few files were
taken without a booking, as happens), proposals whose abstracts describe the
samples, and papers whose acknowledgements name the proposals.  Nothing is
downloaded; the same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..ingest.normalize import magnification_label
from .formats import write_acquisition
from .programme import PAPERS, PEOPLE, PROPOSALS, Proposal, Recipe
from .scenes import SHOWS, Acquisition, electron_wavelength_nm

FACILITY_ZONE = zoneinfo.ZoneInfo("America/Los_Angeles")
README_MARKER = "scisearch demo facility"

# Per instrument: folder on the facility disk, file format and suffix, and how
# users type its name in the booking system (all match metadata.yml's rules).
INSTRUMENTS = {
    "TEAM 0.5": ("team05", "berkeley-emd", ".emd", ["TEAM 0.5", "TEAM0.5", "team 0.5"]),
    "Themis": ("themis", "velox-emd", ".emd", ["Themis", "Titan Themis", "themis"]),
    "Helios": ("helios", "fei-tiff", ".tif", ["Helios", "Helios NanoLab", "helios"]),
    "Gemini": ("gemini", "zeiss-tiff", ".tif", ["Gemini", "Zeiss Gemini", "GeminiSEM"]),
    "Krios": ("krios", "mrc", ".mrc", ["Krios", "Titan Krios", "krios"]),
}
# Field of view times magnification (m), from the real files in ../shared/data/em:
# TEAM 0.5 STEM at 5.1 Mx spans 12.5 nm, Themis STEM at 7.1 kx 11.2 um, a Ceta
# frame at 27 kx 1.6 um.  SEM software defines magnification against a 127 mm
# wide display.  The Krios value gives a 4.15 A pixel on a 384 px frame at 105 kx.
FIELD_TIMES_MAGNIFICATION_M = {
    "TEAM 0.5 STEM": 0.064,
    "Themis STEM": 0.0794,
    "Themis TEM": 0.0435,
    "SEM": 0.127,
    "Krios TEM": 0.01673,
}
CAMERA_WIDTH_M = 0.0435  # effective width of the diffraction camera at its projector setting
# Formats a recipe may choose instead of its instrument's own, and their suffixes.
FORMAT_SUFFIXES = {"emsa": ".msa", "hspy": ".hspy", "blockfile": ".blo"}
BOOKED_FRACTION = 0.87  # the rest of the files were taken in sessions nobody booked


@dataclass
class Facility:
    """Where the demo facility lives, and the truth about every file written (for tests and demos)."""

    root: Path
    data_dir: Path
    userlog: Path
    proposals: Path
    papers: Path
    files: list[dict] = field(default_factory=list)


@dataclass
class Session:
    instrument: str
    user: str
    proposal: Proposal
    start: dt.datetime
    end: dt.datetime
    booked: bool = True
    acquisitions: list[Acquisition] = field(default_factory=list)


def build_facility(folder: Path, n_files: int = 240, seed: int = 0, progress: bool = True) -> Facility:
    """Write the demo facility into ``folder`` (replacing an earlier demo there) and describe what was written."""
    folder = Path(folder)
    facility = Facility(
        root=folder,
        data_dir=folder / "data",
        userlog=folder / "userlog.csv",
        proposals=folder / "proposals.jsonl",
        papers=folder / "papers.jsonl",
    )
    _clear_earlier_demo(facility)
    sessions = plan_sessions(n_files, seed, facility.data_dir)
    acquisitions = [(session, a) for session in sessions for a in session.acquisitions]
    for session, acquisition in tqdm(acquisitions, desc="writing demo files", unit="file", disable=not progress):
        write_acquisition(acquisition)
        facility.files.append(_manifest_entry(session, acquisition))
    _write_userlog(facility.userlog, sessions)
    _write_jsonl(facility.proposals, [proposal.record() for proposal in PROPOSALS])
    _write_jsonl(facility.papers, PAPERS)
    _write_readme(facility, n_files, seed)
    return facility


def _clear_earlier_demo(facility: Facility) -> None:
    readme = facility.root / "README.txt"
    if facility.data_dir.exists():
        made_by_us = readme.exists() and README_MARKER in readme.read_text(errors="replace")
        if not made_by_us and any(facility.data_dir.iterdir()):
            raise FileExistsError(
                f"'{facility.data_dir}' holds files that build_facility did not write; choose an empty folder"
            )
        shutil.rmtree(facility.data_dir)
    facility.data_dir.mkdir(parents=True)


# ---------------------------------------------------------------- planning


def plan_sessions(n_files: int, seed: int, data_dir: Path) -> list[Session]:
    """Sessions (booked or not) and the acquisitions in each, in time order; no files are written."""
    rng = np.random.default_rng(seed)
    sessions: list[Session] = []
    taken_days: set[tuple[str, dt.date]] = set()  # one session per instrument per day: no double booking
    files_per_instrument = {name: 0 for name in INSTRUMENTS}
    counters: dict = {}  # (user, sample) -> last file number; "formats" -> the recipe formats written so far
    for proposal, count in zip(PROPOSALS, _apportion(n_files, [p.weight for p in PROPOSALS])):
        instruments = sorted({r.instrument for r in proposal.recipes})
        # The first session goes to the proposal's least-used instrument, so small demos still hold every format;
        # the rest of its files are shared among its instruments as its recipes weigh them.
        first = min(instruments, key=lambda name: (files_per_instrument[name], name))
        first_size = int(min(count, rng.integers(3, 10)))
        weights = [sum(r.weight for r in proposal.recipes if r.instrument == name) for name in instruments]
        shares = dict(zip(instruments, _apportion(count - first_size, weights)))
        shares[first] += first_size
        for instrument in [first] + [name for name in instruments if name != first]:
            remaining = shares[instrument]
            while remaining > 0:
                size = first_size if instrument == first and remaining == shares[first] else int(rng.integers(3, 10))
                size = min(size, remaining)
                day = _free_day(rng, proposal, instrument, taken_days)
                session = _session(rng, proposal, instrument, day, size)
                for moment in _acquisition_times(rng, session, size):
                    session.acquisitions.append(_acquisition(rng, session, moment, counters, data_dir))
                sessions.append(session)
                files_per_instrument[instrument] += size
                remaining -= size
    _mark_unbooked(rng, sessions, n_files)
    return sorted(sessions, key=lambda s: s.start)


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights``, rounding by largest remainders."""
    shares = np.array(weights) / sum(weights) * total
    counts = np.floor(shares).astype(int)
    for index in np.argsort(-(shares - counts))[: total - counts.sum()]:
        counts[index] += 1
    return [int(c) for c in counts]


def _free_day(rng, proposal: Proposal, instrument: str, taken: set) -> dt.date:
    span = (proposal.end - proposal.start).days
    for _ in range(500):
        day = proposal.start + dt.timedelta(days=int(rng.integers(0, span)))
        if day.weekday() < 5 and (instrument, day) not in taken:
            taken.add((instrument, day))
            return day
    raise RuntimeError(f"no free day left on {instrument} for {proposal.id}")


def _session(rng, proposal: Proposal, instrument: str, day: dt.date, size: int) -> Session:
    user = proposal.users[int(rng.integers(len(proposal.users)))]
    if instrument == "Krios":  # cryo sessions run all day: screening, then data collection
        start_hour, hours = float(rng.choice([8, 8.5, 9])), int(rng.integers(9, 12))
    else:
        start_hour, hours = float(rng.choice(np.arange(8, 14.5, 0.5))), int(rng.integers(2, 6))
    start = dt.datetime.combine(day, dt.time(int(start_hour), int(start_hour % 1 * 60)))
    return Session(instrument, user, proposal, start, start + dt.timedelta(hours=hours))


def _acquisition_times(rng, session: Session, size: int) -> list[dt.datetime]:
    """Times inside the session, at least 10 minutes from its ends (setting up, warming the holder, cleaning up)."""
    first = session.start + dt.timedelta(minutes=10)
    window_s = (session.end - session.start).total_seconds() - 20 * 60
    offsets = np.sort(rng.choice(int(window_s), size=size, replace=False))
    return [first + dt.timedelta(seconds=int(offset)) for offset in offsets]


def _acquisition(rng, session: Session, moment: dt.datetime, counters: dict, data_dir: Path) -> Acquisition:
    recipes = [r for r in session.proposal.recipes if r.instrument == session.instrument]
    weights = np.array([r.weight for r in recipes])
    recipe = recipes[rng.choice(len(recipes), p=weights / weights.sum())]
    # A recipe with a format of its own (a spectrum, a 4D scan) is written once before chance decides, so that
    # even a small demo holds every kind and every format.
    written = counters.setdefault("formats", set())
    unwritten = [r for r in recipes if r.file_format and r.file_format not in written]
    if unwritten:
        recipe = unwritten[0]
    written.add(recipe.file_format)
    voltage_kv = float(rng.choice(recipe.voltages_kv))
    setting = float(rng.choice(recipe.settings))
    optics = _optics(rng, recipe, setting, voltage_kv)
    person = PEOPLE[session.user]
    key = (session.user, recipe.short)
    counters[key] = counters.get(key, int(rng.integers(1, 40))) + 1
    name = recipe.template.format(
        short=recipe.short,
        kv=f"{voltage_kv:g}",
        mag=_shorthand_magnification(setting),
        cl=f"{setting:g}mm",
        det=recipe.detector,
        n="{n}",
    )
    number = f"{counters[key]:0{person.number_width}d}"
    name = name.replace("{n}", number) if "{n}" in name else f"{name}_{number}"
    if person.date_prefix:
        name = f"{moment:%y%m%d}_{name}"
    folder, file_format, suffix, _ = INSTRUMENTS[session.instrument]
    if recipe.file_format:
        file_format, suffix = recipe.file_format, FORMAT_SUFFIXES[recipe.file_format]
    project = {"project": session.proposal.folder, "date": f"{moment:%Y-%m-%d}"}[person.folder_style]
    path = data_dir / folder / str(moment.year) / session.user / project / f"{name}{suffix}"
    return Acquisition(
        path=path,
        file_format=file_format,
        scene=recipe.scene,
        kind=recipe.kind,
        mode=recipe.mode,
        detector=recipe.detector,
        acquired_at_local=moment,
        acquired_at_epoch=moment.replace(tzinfo=FACILITY_ZONE).timestamp(),
        voltage_kv=voltage_kv,
        sample=recipe.sample,
        user=session.user,
        user_name=person.name,
        crystal=recipe.crystal,
        seed=int(rng.integers(0, 2**31)),
        **optics,
    )


def _optics(rng, recipe: Recipe, setting: float, voltage_kv: float) -> dict:
    """Magnification or camera length, pixel size and frame shape, consistent with one another."""
    shape = _frame_shape(recipe)
    if recipe.kind in ("diffraction", "4D"):
        # A camera pixel of width p at camera length L sees scattering vectors p / (wavelength L) apart.
        pixel_inv_nm = CAMERA_WIDTH_M / shape[-1] / (electron_wavelength_nm(voltage_kv) * setting / 1e3)
        return {
            "magnification": None,
            "camera_length_mm": setting,
            "pixel_size_nm": 0.5 if recipe.kind == "4D" else None,  # a 4D scan's probe step
            "pixel_size_inv_nm": pixel_inv_nm,
            "shape": shape,
        }
    if recipe.kind == "spectrum":  # a point spectrum: the magnification of the image it was taken on
        return {
            "magnification": setting,
            "camera_length_mm": None,
            "pixel_size_nm": None,
            "pixel_size_inv_nm": None,
            "shape": shape,
        }
    scanned = "STEM" if recipe.kind == "spectrum image" else recipe.mode  # a spectrum image is a STEM scan
    constant = FIELD_TIMES_MAGNIFICATION_M["SEM" if recipe.mode == "SEM" else f"{recipe.instrument} {scanned}"]
    width = shape[1] if recipe.kind == "spectrum image" else shape[-1]
    pixel_nm = constant / setting / width * 1e9
    if recipe.instrument == "Gemini":
        pixel_nm = float(f"{pixel_nm:.4g}")  # Zeiss writes 'Pixel Size = 12.40 nm': four figures are all a reader gets
    camera_length_mm = None
    if recipe.kind == "spectrum image":
        camera_length_mm = 30.0  # EELS: a short camera length for a large collection angle
    elif recipe.instrument in (
        "TEAM 0.5",
        "Themis",
    ):  # both write the (ADF or projector) camera length with every image
        camera_length_mm = float(rng.choice([85.0, 115.0, 160.0]) if recipe.mode == "STEM" else 378.0)
    return {
        "magnification": setting,
        "camera_length_mm": camera_length_mm,
        "pixel_size_nm": pixel_nm,
        "pixel_size_inv_nm": None,
        "shape": shape,
    }


def _frame_shape(recipe: Recipe) -> tuple[int, ...]:
    """Small frames keep the demo quick: 512 px where atoms must be resolved, 256 px for long stacks."""
    if recipe.kind == "spectrum":
        return (2048,)  # 10 eV channels: 0-20.48 keV
    if recipe.kind == "spectrum image":
        return (24, 24, 512)  # 0.5 eV channels from 280 eV: the C K, Ca L, Ti L and O K edges
    if recipe.kind == "4D":
        return (16, 16, 64, 64)
    if recipe.mode == "SEM":
        return (384, 512)  # 4:3 like SEM scans; the databar comes on top
    if recipe.scene == "cryo_tilt" or (recipe.frames > 1 and recipe.instrument != "Krios"):
        return (recipe.frames, 256, 256)
    if recipe.instrument == "Krios":
        return (recipe.frames, 384, 384)
    return (512, 512)


def _shorthand_magnification(value: float) -> str:
    """13500000 -> '13.5Mx', 500000 -> '500kx', as people write it in file names."""
    return magnification_label(value).replace(" ", "")


def _mark_unbooked(rng, sessions: list[Session], n_files: int) -> None:
    """Turn whole sessions into unbooked evening use until about 13% of the files lie outside any booking.

    Cryo sessions are always booked (a day-long run), and only sessions of up to
    four hours move to 19:00, so none runs past midnight into another folder's date.
    """
    target = round((1 - BOOKED_FRACTION) * n_files)
    unbooked = 0
    for index in rng.permutation(len(sessions)):
        session = sessions[index]
        size = len(session.acquisitions)
        too_long = session.end - session.start > dt.timedelta(hours=4)
        if unbooked >= target or unbooked + size > max(target + 2, 3) or too_long or session.instrument == "Krios":
            continue
        session.booked = False
        unbooked += size
        shift = dt.datetime.combine(session.start.date(), dt.time(19, int(rng.choice([0, 15, 30])))) - session.start
        session.start, session.end = session.start + shift, session.end + shift
        for acquisition in session.acquisitions:
            acquisition.acquired_at_local += shift
            acquisition.acquired_at_epoch = acquisition.acquired_at_local.replace(tzinfo=FACILITY_ZONE).timestamp()


# ---------------------------------------------------------------- records


def _manifest_entry(session: Session, a: Acquisition) -> dict:
    recorded = {
        "berkeley-emd": ["instrument", "acquired_at_local", "voltage_kv", "camera_length_mm", "sample", "user_name"],
        "velox-emd": ["instrument", "acquired_at_local", "voltage_kv", "camera_length_mm", "detector", "mode"],
        "fei-tiff": ["instrument", "acquired_at_local", "voltage_kv", "detector", "user"],
        "zeiss-tiff": ["instrument", "acquired_at_local", "voltage_kv", "detector", "user"],
        "mrc": [],
        "emsa": ["acquired_at_local", "voltage_kv"],
        "hspy": ["acquired_at_local", "voltage_kv", "camera_length_mm", "mode"],
        "blockfile": ["voltage_kv", "camera_length_mm"],
    }[a.file_format]
    if a.magnification is not None and a.file_format not in ("mrc", "emsa", "blockfile"):
        recorded.append("magnification")
    if a.pixel_size_nm is not None:
        recorded.append("pixel_size_nm")
    return {
        "path": a.path,
        "instrument": session.instrument,
        "kind": a.kind,
        "acquired_at_local": a.acquired_at_local,
        "voltage_kv": a.voltage_kv,
        "magnification": a.magnification,
        "pixel_size_nm": a.pixel_size_nm,
        "sample": a.sample,
        "detector": a.detector,
        "proposal_id": session.proposal.id,
        "user": a.user,
        "user_name": a.user_name,
        "format": a.file_format,
        "mode": a.mode,
        "camera_length_mm": a.camera_length_mm,
        "pixel_size_inv_nm": a.pixel_size_inv_nm,
        "shape": tuple(a.shape),
        "scene": a.scene,
        "shows": sorted(SHOWS[a.scene]),  # the ground truth of what the picture shows
        "booked": session.booked,
        "recorded": recorded,
    }


def _write_userlog(path: Path, sessions: list[Session]) -> None:
    """The booking system's export: naive local times, instrument names as each user typed them."""
    rng = np.random.default_rng(len(sessions))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instrument", "user", "start", "end", "proposal", "notes"])
        for session in sessions:
            if not session.booked:
                continue
            spellings = INSTRUMENTS[session.instrument][3]
            recipes = {r.note for r in session.proposal.recipes if r.instrument == session.instrument and r.note}
            notes = "; ".join(sorted(recipes)) if rng.random() < 0.8 else ""
            writer.writerow(
                [
                    spellings[int(rng.integers(len(spellings)))],
                    session.user,
                    f"{session.start:%Y-%m-%d %H:%M}",
                    f"{session.end:%Y-%m-%d %H:%M}",
                    session.proposal.id,
                    notes,
                ]
            )


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _write_readme(facility: Facility, n_files: int, seed: int) -> None:
    counts = {}
    for entry in facility.files:
        counts[entry["instrument"]] = counts.get(entry["instrument"], 0) + 1
    unbooked = sum(not entry["booked"] for entry in facility.files)
    lines = [
        f"This is a {README_MARKER}, made by datasette-scisearch's build_facility(n_files={n_files}, seed={seed}).",
        "",
        "Everything here is synthetic: the pictures are computed (lattices, nanoparticles, diffraction",
        "patterns, nanowires, cryo-EM particles) from the numbers their files report, and the people,",
        "proposals and papers are invented.  It exists so that scisearch can be tried without real data.",
        "",
        "data/<instrument>/<year>/<user>/<project or date>/   instrument files, named in shorthand",
        "  team05  TEAM 0.5   Berkeley EMD (.emd, HDF5)    microscope/user/sample attributes, no detector",
        "  themis  Themis     Velox EMD (.emd, HDF5)       JSON metadata, acquisition time as UTC epoch",
        "  helios  Helios     FEI SEM TIFF (.tif)          INI text in tag 34682, local date and time",
        "  gemini  Gemini     Zeiss SEM TIFF (.tif)        CZ_SEM text in tag 34118, local date and time",
        "  krios   Krios      MRC (.mrc)                   pixel size only: instrument from the folder,",
        "                                                  time from the file's modification time",
        "userlog.csv      bookings: instrument,user,start,end,proposal,notes (local time, America/Los_Angeles)",
        "proposals.jsonl  user proposals: id,title,abstract,pi,institution,start_date,end_date; P-2023-0024's",
        "                 embargo_until keeps its data private to its team and staff until that date",
        "papers.jsonl     publications: id,title,abstract,authors,year,doi,funding (naming proposal ids)",
        "",
        "Files per instrument: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())),
        f"{unbooked} of {len(facility.files)} files were taken in sessions nobody booked (evening use).",
        "Modification times are the acquisition times: copy with 'cp -p' or 'rsync -t' to keep them.",
        "",
    ]
    (facility.root / "README.txt").write_text("\n".join(lines), encoding="utf-8")
