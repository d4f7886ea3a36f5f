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

from datasette_scisearch.demo_images import Acquisition, electron_wavelength_nm, write_acquisition

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
    "TEAM 0.5 STEM": 0.064, "Themis STEM": 0.0794, "Themis TEM": 0.0435, "SEM": 0.127, "Krios TEM": 0.01673,
}
CAMERA_WIDTH_M = 0.0435  # effective width of the diffraction camera at its projector setting
BOOKED_FRACTION = 0.87  # the rest of the files were taken in sessions nobody booked


@dataclass(frozen=True)
class Person:
    name: str
    institution: str
    number_width: int  # how many digits this person pads file numbers to
    date_prefix: bool  # '220315_GaAs_NW_...' or not
    folder_style: str  # 'project' or 'date'


@dataclass(frozen=True)
class Recipe:
    """A kind of acquisition a proposal makes on one instrument, and how its files get named."""

    instrument: str
    scene: str  # see demo_images.render
    kind: str  # image, diffraction, stack
    mode: str  # STEM, TEM, SEM
    detector: str
    voltages_kv: tuple
    settings: tuple  # magnifications, or camera lengths (mm) for diffraction
    template: str  # '{short}_{kv}kV_{mag}' and the like; the file number follows unless '{n}' places it
    short: str  # the sample as its user abbreviates it
    sample: str
    crystal: str | None = None
    weight: float = 1.0
    frames: int = 1
    note: str = ""  # what the user writes in the booking's notes


@dataclass(frozen=True)
class Proposal:
    id: str
    title: str
    abstract: str
    pi: str
    institution: str
    start: dt.date
    end: dt.date
    users: tuple
    folder: str  # the project folder its users file data under
    weight: float
    recipes: tuple

    def record(self) -> dict:
        return {
            "id": self.id, "title": self.title, "abstract": self.abstract, "pi": self.pi,
            "institution": self.institution, "start_date": self.start.isoformat(), "end_date": self.end.isoformat(),
        }


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
    counters: dict[tuple[str, str], int] = {}
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
    voltage_kv = float(rng.choice(recipe.voltages_kv))
    setting = float(rng.choice(recipe.settings))
    optics = _optics(rng, recipe, setting, voltage_kv)
    person = PEOPLE[session.user]
    key = (session.user, recipe.short)
    counters[key] = counters.get(key, int(rng.integers(1, 40))) + 1
    name = recipe.template.format(
        short=recipe.short, kv=f"{voltage_kv:g}", mag=_shorthand_magnification(setting), cl=f"{setting:g}mm",
        det=recipe.detector, n="{n}",
    )
    number = f"{counters[key]:0{person.number_width}d}"
    name = name.replace("{n}", number) if "{n}" in name else f"{name}_{number}"
    if person.date_prefix:
        name = f"{moment:%y%m%d}_{name}"
    folder, file_format, suffix, _ = INSTRUMENTS[session.instrument]
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
    if recipe.kind == "diffraction":
        # A camera pixel of width p at camera length L sees scattering vectors p / (wavelength L) apart.
        pixel_inv_nm = CAMERA_WIDTH_M / shape[-1] / (electron_wavelength_nm(voltage_kv) * setting / 1e3)
        return {"magnification": None, "camera_length_mm": setting, "pixel_size_nm": None,
                "pixel_size_inv_nm": pixel_inv_nm, "shape": shape}
    constant = FIELD_TIMES_MAGNIFICATION_M["SEM" if recipe.mode == "SEM" else f"{recipe.instrument} {recipe.mode}"]
    pixel_nm = constant / setting / shape[-1] * 1e9
    if recipe.instrument == "Gemini":
        pixel_nm = float(f"{pixel_nm:.4g}")  # Zeiss writes 'Pixel Size = 12.40 nm': four figures are all a reader gets
    camera_length_mm = None
    if recipe.instrument in ("TEAM 0.5", "Themis"):  # both write the (ADF or projector) camera length with every image
        camera_length_mm = float(rng.choice([85.0, 115.0, 160.0]) if recipe.mode == "STEM" else 378.0)
    return {"magnification": setting, "camera_length_mm": camera_length_mm, "pixel_size_nm": pixel_nm,
            "pixel_size_inv_nm": None, "shape": shape}


def _frame_shape(recipe: Recipe) -> tuple[int, ...]:
    """Small frames keep the demo quick: 512 px where atoms must be resolved, 256 px for long stacks."""
    if recipe.mode == "SEM":
        return (384, 512)  # 4:3 like SEM scans; the databar comes on top
    if recipe.scene == "cryo_tilt" or (recipe.frames > 1 and recipe.instrument != "Krios"):
        return (recipe.frames, 256, 256)
    if recipe.instrument == "Krios":
        return (recipe.frames, 384, 384)
    return (512, 512)


def _shorthand_magnification(value: float) -> str:
    """13500000 -> '13.5Mx', 500000 -> '500kx', as people write it in file names."""
    if value >= 1e6:
        return f"{value / 1e6:g}Mx"
    if value >= 1e3:
        return f"{value / 1e3:g}kx"
    return f"{value:g}x"


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
    }[a.file_format]
    if a.magnification is not None and a.file_format != "mrc":
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
            writer.writerow([
                spellings[int(rng.integers(len(spellings)))], session.user, f"{session.start:%Y-%m-%d %H:%M}",
                f"{session.end:%Y-%m-%d %H:%M}", session.proposal.id, notes,
            ])


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
        "proposals.jsonl  user proposals: id,title,abstract,pi,institution,start_date,end_date",
        "papers.jsonl     publications: id,title,abstract,authors,year,doi,funding (naming proposal ids)",
        "",
        "Files per instrument: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())),
        f"{unbooked} of {len(facility.files)} files were taken in sessions nobody booked (evening use).",
        "Modification times are the acquisition times: copy with 'cp -p' or 'rsync -t' to keep them.",
        "",
    ]
    (facility.root / "README.txt").write_text("\n".join(lines), encoding="utf-8")


# ---------------------------------------------------------------- the facility's people, proposals and papers

PEOPLE = {
    "achen": Person("Alice Chen", "University of California, Berkeley", 4, False, "project"),
    "mgarcia": Person("Miguel Garcia", "University of California, Berkeley", 3, False, "date"),
    "pnair": Person("Priya Nair", "Stanford University", 4, False, "project"),
    "tmueller": Person("Thomas Mueller", "Technical University of Munich", 2, False, "date"),
    "ookafor": Person("Oluwaseun Okafor", "University of California, Santa Barbara", 3, False, "project"),
    "sbrooks": Person("Sam Brooks", "Lawrence Berkeley National Laboratory", 3, True, "date"),
    "kyamada": Person("Kenji Yamada", "University of California, Irvine", 3, False, "project"),
    "lrossi": Person("Laura Rossi", "University of California, San Francisco", 4, False, "date"),
}

_AU = ("Au_np", "Au nanoparticles on amorphous carbon")
_STO = ("STO", "SrTiO3 Sigma-5 (310) tilt bicrystal")
_SI = ("Si110", "Si [110] wafer with stacking faults")
_NW = ("GaAs_NW", "GaAs nanowires on Si(111)")
_CEO2 = ("CeO2_cubes", "CeO2 nanocubes, hydrothermal synthesis")
_NMC = ("NMC811", "NMC811 cathode secondary particles")
_APO = ("apoferritin_grid3", "mouse heavy-chain apoferritin, grid 3")
_MOS2 = ("MoS2", "MoS2 monolayer on holey carbon")
_TEAM_HAADF = ("TEAM 0.5", "columns_haadf", "image", "STEM", "HAADF")
_THEMIS_DP = ("Themis", "spots", "diffraction", "TEM", "BM-Ceta")

PROPOSALS = [
    Proposal(
        "P-2021-0042", "Atomic-scale structure of supported gold nanoparticle catalysts",
        "Gold nanoparticles smaller than 5 nm oxidise CO at room temperature, but only on some supports and only "
        "while they stay small. We will image Au nanoparticles on amorphous carbon and on CeO2 by aberration-"
        "corrected HAADF-STEM at 300 kV, follow their sintering in situ during heating, and measure their lattice "
        "spacing from diffraction ring patterns, to relate particle size, shape and strain to catalytic activity.",
        "Rosa Delgado", "University of California, Berkeley", dt.date(2021, 2, 1), dt.date(2022, 1, 31),
        ("achen", "mgarcia"), "Au_catalyst", 1.3, (
            Recipe(*_TEAM_HAADF, (300,), (1.8e6, 2.55e6, 3.6e6), "{short}_{kv}kV_HAADF", *_AU, "Au_110", 3,
                   note="HAADF of Au/C"),
            Recipe("TEAM 0.5", "particles_series", "stack", "STEM", "HAADF", (300,), (1.3e6, 1.8e6),
                   "{short}_insitu_{kv}kV_series", *_AU, "Au_110", 1, frames=10, note="in-situ heating series"),
            Recipe("TEAM 0.5", "rings", "diffraction", "TEM", "camera", (300,), (480, 600), "{short}_DP_{cl}", *_AU,
                   weight=1, note="ring patterns"),
            Recipe("Themis", "particles_haadf", "image", "STEM", "HAADF", (300,), (160e3, 225e3, 320e3),
                   "{short}_HAADF_{mag}", "AuCeO2", "Au/CeO2 catalyst powder", weight=2, note="low-mag HAADF survey"),
            Recipe("Themis", "carbon_bf", "image", "TEM", "BM-Ceta", (300,), (300e3,), "aC_ref_{mag}", "aC",
                   "amorphous carbon support film", weight=0.5, note="carbon reference for CTF"),
        ),
    ),
    Proposal(
        "P-2021-0057", "Grain boundaries and interfaces in SrTiO3",
        "Oxygen vacancies segregate to grain boundaries in strontium titanate and control its conductivity. We will "
        "resolve the atomic columns at a Sigma-5 tilt boundary in an SrTiO3 bicrystal and at LaAlO3/SrTiO3 "
        "interfaces with HAADF-STEM at 80 and 300 kV on TEAM 0.5, and record [001] selected-area diffraction "
        "patterns to check orientation and strain across the boundary.",
        "David Kim", "Stanford University", dt.date(2021, 4, 1), dt.date(2022, 3, 31),
        ("pnair",), "STO_bicrystal", 1.0, (
            Recipe(*_TEAM_HAADF, (80, 300), (7.2e6, 10e6, 13.5e6), "{short}_{kv}kV_{mag}", *_STO, "SrTiO3_001", 3,
                   note="atomic-resolution HAADF of the boundary"),
            Recipe(*_TEAM_HAADF, (300,), (10e6, 13.5e6), "{short}_{kv}kV_{mag}", "LAO_STO",
                   "LaAlO3/SrTiO3 heterostructure", "SrTiO3_001", 1, note="LAO/STO interface"),
            Recipe(*_THEMIS_DP, (300,), (380, 480, 600), "{short}_001_DP_{cl}", *_STO, "SrTiO3_001", 1.5,
                   note="SAED on [001]"),
        ),
    ),
    Proposal(
        "P-2021-0063", "Stacking faults and twins in silicon for power devices",
        "Stacking faults nucleated during epitaxy degrade silicon power devices. We will prepare FIB lamellae of "
        "Si wafers on the Helios, image the dumbbells of the Si [110] projection and the faults and twin "
        "boundaries between them by HAADF-STEM, and index [110] zone-axis diffraction patterns to identify the "
        "defect types and their density.",
        "Anna Weber", "Technical University of Munich", dt.date(2021, 6, 1), dt.date(2022, 5, 31),
        ("tmueller",), "Si_defects", 1.0, (
            Recipe(*_TEAM_HAADF, (300,), (10e6, 13.5e6, 20e6), "{short}_HAADF_{mag}", *_SI, "Si_110", 3,
                   note="dumbbells and stacking faults"),
            Recipe(*_THEMIS_DP, (300,), (300, 380), "{short}_DP_{cl}", *_SI, "Si_110", 2, note="[110] zone axis DPs"),
            Recipe("Helios", "lamella_sem", "image", "SEM", "ETD", (5, 2), (2500, 5000, 10000),
                   "{short}_lamella_{kv}kV_{mag}", "Si110", "Si [110] FIB lamella", weight=1.5,
                   note="lamella thinning"),
        ),
    ),
    Proposal(
        "P-2022-0013", "Polytypism in self-catalysed GaAs nanowires",
        "GaAs nanowires grown by molecular beam epitaxy switch between zinc-blende and wurtzite stacking, which "
        "changes their band structure. We will survey nanowire density, length and diameter on Si(111) by SEM, "
        "image the stacking sequence of single wires by high-resolution TEM, and use selected-area diffraction "
        "to measure the polytype fractions as a function of growth temperature.",
        "Grace Liu", "University of California, Santa Barbara", dt.date(2022, 1, 17), dt.date(2023, 1, 13),
        ("ookafor", "sbrooks"), "GaAs_NW", 1.3, (
            Recipe("Helios", "nanowires_sem", "image", "SEM", "TLD", (5,), (10e3, 20e3, 50e3),
                   "{short}_{kv}kV_{mag}", *_NW, weight=3, note="NW survey, 45 deg tilt"),
            Recipe("Gemini", "nanowires_sem", "image", "SEM", "InLens", (3, 5), (10e3, 25e3),
                   "{short}_{kv}kV_{mag}", *_NW, weight=1.5, note="NW density"),
            Recipe("Themis", "columns_hrtem", "image", "TEM", "BM-Ceta", (300,), (1.5e6, 1.9e6, 2.5e6),
                   "{short}_HRTEM_{mag}", *_NW, "GaAs_110", 2, note="HRTEM of single wires"),
            Recipe(*_THEMIS_DP, (300,), (480, 600), "{short}_SAED_{cl}", *_NW, "GaAs_110", 1, note="SAED"),
        ),
    ),
    Proposal(
        "P-2022-0031", "Shape-controlled ceria nanocubes for low-temperature oxidation",
        "Ceria nanocubes expose {100} facets that store and release oxygen more readily than octahedra. We will "
        "measure the size and shape distribution of hydrothermally grown CeO2 nanocubes by bright-field TEM and "
        "SEM, and image their surfaces by HAADF-STEM before and after reduction, as supports for gold "
        "nanoparticle catalysts.",
        "Rosa Delgado", "University of California, Berkeley", dt.date(2022, 3, 1), dt.date(2023, 2, 28),
        ("achen", "kyamada"), "ceria_cubes", 1.0, (
            Recipe("Themis", "cubes_bf", "image", "TEM", "BM-Ceta", (300,), (300e3, 500e3), "{short}_BF_{mag}",
                   *_CEO2, "CeO2_001", 3, note="BF TEM of cubes"),
            Recipe("Themis", "cubes_haadf", "image", "STEM", "HAADF", (300,), (450e3, 640e3), "{short}_HAADF_{mag}",
                   *_CEO2, "CeO2_001", 2, note="HAADF surfaces"),
            Recipe("Gemini", "cubes_sem", "image", "SEM", "InLens", (2,), (100e3, 200e3), "{short}_{kv}kV_{mag}",
                   *_CEO2, weight=1.5, note="SEM size distribution"),
        ),
    ),
    Proposal(
        "P-2022-0048", "Cracking of nickel-rich cathode particles during cycling",
        "Nickel-rich NMC811 cathodes lose capacity as their secondary particles crack along grain boundaries. We "
        "will image pristine and cycled NMC811 particles by SEM with secondary-electron detectors, and cut "
        "cross-sections with the focused ion beam, to count intergranular cracks against cycle number.",
        "Hiroshi Tanaka", "University of California, Irvine", dt.date(2022, 6, 1), dt.date(2023, 5, 31),
        ("kyamada",), "NMC811", 0.8, (
            Recipe("Gemini", "particles_sem", "image", "SEM", "SE2", (5, 10), (2e3, 5e3), "{short}_{det}_{mag}",
                   *_NMC, weight=3, note="pristine vs cycled particles"),
            Recipe("Helios", "particles_sem", "image", "SEM", "ETD", (5,), (2.5e3, 5e3),
                   "{short}_cycled_{kv}kV_{mag}", *_NMC, weight=1.5, note="cycled particles before FIB"),
        ),
    ),
    Proposal(
        "P-2023-0009", "Apoferritin as a resolution benchmark for the facility cryo-EM",
        "Mouse heavy-chain apoferritin is the standard test specimen for single-particle cryo-EM. We will collect "
        "dose-fractionated movies of apoferritin in vitreous ice on the Titan Krios, and tilt series for "
        "subtomogram averaging, to benchmark the microscope, the detector and the processing pipeline.",
        "Ellen Park", "University of California, San Francisco", dt.date(2023, 1, 9), dt.date(2023, 12, 15),
        ("lrossi",), "apoferritin", 0.8, (
            Recipe("Krios", "cryo_movie", "stack", "TEM", "K3", (300,), (105e3,), "{short}", *_APO, weight=3,
                   frames=8, note="apoferritin SPA movies"),
            Recipe("Krios", "cryo_sum", "image", "TEM", "K3", (300,), (105e3,), "{short}_{n}_DW", *_APO, weight=1,
                   note="dose-weighted sums"),
            Recipe("Krios", "cryo_tilt", "stack", "TEM", "K3", (300,), (53e3,), "{short}_TS", *_APO, weight=1,
                   frames=21, note="tilt series"),
        ),
    ),
    Proposal(
        "P-2023-0024", "Point defects in monolayer MoS2 at low voltage",
        "Sulfur vacancies set the electronic properties of monolayer molybdenum disulfide, but the beam creates "
        "them too. We will image suspended MoS2 monolayers on holey carbon by HAADF-STEM at 60 and 80 kV, below "
        "the knock-on threshold, count single and double sulfur vacancies, and confirm the monolayer by its "
        "hexagonal diffraction pattern.",
        "David Kim", "Stanford University", dt.date(2023, 2, 1), dt.date(2024, 1, 31),
        ("pnair", "sbrooks"), "MoS2", 0.9, (
            Recipe(*_TEAM_HAADF, (60, 80), (10e6, 13.5e6), "{short}_{kv}kV_HAADF_{mag}", *_MOS2, "MoS2_001", 3,
                   note="low-kV HAADF, vacancy counting"),
            Recipe(*_THEMIS_DP, (80,), (600, 770), "{short}_DP_{cl}", *_MOS2, "MoS2_001", 1, note="hexagonal DPs"),
        ),
    ),
]


def _paper(number, year, title, abstract, authors, proposals, sentence="This work used the facility under proposal"):
    return {
        "id": f"PUB-{year}-{number:03d}", "title": title, "abstract": abstract, "authors": ", ".join(authors),
        "year": year, "doi": f"10.5555/scisearch-demo.{year}.{number:03d}",  # 10.5555: the example DOI prefix
        "funding": f"{sentence} {' and '.join(proposals)}. Supported by the invented Demo Science Foundation.",
    }


PAPERS = [
    _paper(1, 2022, "Sintering-resistant gold nanoparticles on ceria observed by in situ HAADF-STEM",
           "Supported gold catalysts deactivate as their nanoparticles coarsen. Time series of aberration-corrected "
           "HAADF-STEM images during heating to 400 C show Au nanoparticles on CeO2 nanocubes keep their size while "
           "those on amorphous carbon coalesce.",
           ["Alice Chen", "Miguel Garcia", "Kenji Yamada", "Rosa Delgado"], ["P-2021-0042", "P-2022-0031"]),
    _paper(2, 2022, "Size-dependent lattice contraction in sub-5 nm gold nanoparticles",
           "Electron diffraction ring patterns and atomic-resolution images of Au nanoparticles between 2 and 6 nm "
           "show the fcc lattice parameter shrinking by up to 1.5% as particles get smaller.",
           ["Miguel Garcia", "Alice Chen", "Rosa Delgado"], ["P-2021-0042"],
           "Electron microscopy was performed at the facility (user proposal"),
    _paper(3, 2022, "Atomic structure and oxygen vacancies at a Sigma-5 grain boundary in SrTiO3",
           "HAADF-STEM at 80 and 300 kV resolves the Sr and Ti-O columns of a (310) tilt grain boundary in a "
           "strontium titanate bicrystal; column intensities reveal oxygen-deficient structural units.",
           ["Priya Nair", "David Kim"], ["P-2021-0057"]),
    _paper(4, 2023, "Termination of LaAlO3/SrTiO3 interfaces imaged at low voltage",
           "Atomic-resolution STEM of LaAlO3 films on SrTiO3 identifies the TiO2-terminated interface and its "
           "intermixing width.",
           ["Priya Nair", "Sam Brooks", "David Kim"], ["P-2021-0057"]),
    _paper(5, 2022, "Stacking faults and twin boundaries in FIB-prepared silicon lamellae",
           "Focused-ion-beam lamellae of epitaxial silicon imaged along [110] show intrinsic stacking faults and "
           "Sigma-3 twins; zone-axis diffraction confirms their habit planes.",
           ["Thomas Mueller", "Anna Weber"], ["P-2021-0063"]),
    _paper(6, 2023, "Zinc-blende and wurtzite polytypism in self-catalysed GaAs nanowires",
           "Scanning electron microscopy of GaAs nanowire arrays and high-resolution TEM of single wires relate "
           "the fraction of wurtzite segments to growth temperature.",
           ["Oluwaseun Okafor", "Sam Brooks", "Grace Liu"], ["P-2022-0013"]),
    _paper(7, 2023, "Facet-dependent oxygen storage of CeO2 nanocubes",
           "Bright-field TEM and HAADF-STEM of ceria nanocubes before and after reduction show {100} surfaces "
           "reconstructing while the cube shape is kept; gold nanoparticles anchor at cube edges.",
           ["Kenji Yamada", "Alice Chen", "Rosa Delgado"], ["P-2022-0031", "P-2021-0042"]),
    _paper(8, 2023, "Intergranular cracking in cycled NMC811 secondary particles",
           "SEM of pristine and cycled nickel-rich NMC811 cathode particles, with FIB cross-sections, shows cracks "
           "along primary grain boundaries growing with cycle number.",
           ["Kenji Yamada", "Hiroshi Tanaka"], ["P-2022-0048"],
           "We acknowledge the electron microscopy facility, proposal"),
    _paper(9, 2024, "A 2.1 A apoferritin benchmark for facility cryo-EM",
           "Single-particle analysis of mouse heavy-chain apoferritin from dose-fractionated movies reaches 2.1 A; "
           "tilt series of the same grids give a subtomogram average at 4 A.",
           ["Laura Rossi", "Ellen Park"], ["P-2023-0009"]),
    _paper(10, 2024, "Sulfur vacancy dynamics in monolayer MoS2 imaged at 60 kV",
           "Low-voltage HAADF-STEM of suspended monolayer MoS2 counts single and double sulfur vacancies and their "
           "migration under the beam; diffraction confirms the monolayer.",
           ["Sam Brooks", "Priya Nair", "David Kim"], ["P-2023-0024"]),
]
