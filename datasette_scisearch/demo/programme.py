"""The demo facility's people, their proposals and the papers those produced: the story the files tell."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


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
    scene: str  # see detector.render
    kind: str  # image, diffraction, stack, spectrum, spectrum image, 4D
    mode: str  # STEM, TEM, SEM, EDS, EELS
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
    file_format: str | None = None  # None: the instrument's own (an EDS export, a 4D scan are written apart)


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
    # A proprietary period the facility extended (a patent filing, say): the record states its own release date,
    # so the demo always holds one proposal whose data only its team and staff see (periods.py).
    embargo_until: dt.date | None = None

    def record(self) -> dict:
        extra = {"embargo_until": self.embargo_until.isoformat()} if self.embargo_until else {}
        return extra | {
            "id": self.id,
            "title": self.title,
            "abstract": self.abstract,
            "pi": self.pi,
            "institution": self.institution,
            "start_date": self.start.isoformat(),
            "end_date": self.end.isoformat(),
        }


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
        "P-2021-0042",
        "Atomic-scale structure of supported gold nanoparticle catalysts",
        "Gold nanoparticles smaller than 5 nm oxidise CO at room temperature, but only on some supports and only "
        "while they stay small. We will image Au nanoparticles on amorphous carbon and on CeO2 by aberration-"
        "corrected HAADF-STEM at 300 kV, follow their sintering in situ during heating, and measure their lattice "
        "spacing from diffraction ring patterns, to relate particle size, shape and strain to catalytic activity.",
        "Rosa Delgado",
        "University of California, Berkeley",
        dt.date(2021, 2, 1),
        dt.date(2022, 1, 31),
        ("achen", "mgarcia"),
        "Au_catalyst",
        1.3,
        (
            Recipe(
                "TEAM 0.5",
                "particles_columns_haadf",
                "image",
                "STEM",
                "HAADF",
                (300,),
                (1.8e6, 2.55e6, 3.6e6),
                "{short}_{kv}kV_HAADF",
                *_AU,
                "Au_110",
                3,
                note="HAADF of Au/C",
            ),
            Recipe(
                "TEAM 0.5",
                "particles_series",
                "stack",
                "STEM",
                "HAADF",
                (300,),
                (1.3e6, 1.8e6),
                "{short}_insitu_{kv}kV_series",
                *_AU,
                "Au_110",
                1,
                frames=10,
                note="in-situ heating series",
            ),
            Recipe(
                "TEAM 0.5",
                "rings",
                "diffraction",
                "TEM",
                "camera",
                (300,),
                (480, 600),
                "{short}_DP_{cl}",
                *_AU,
                weight=1,
                note="ring patterns",
            ),
            Recipe(
                "Themis",
                "particles_haadf",
                "image",
                "STEM",
                "HAADF",
                (300,),
                (160e3, 225e3, 320e3),
                "{short}_HAADF_{mag}",
                "AuCeO2",
                "Au/CeO2 catalyst powder",
                weight=2,
                note="low-mag HAADF survey",
            ),
            Recipe(
                "Themis",
                "carbon_bf",
                "image",
                "TEM",
                "BM-Ceta",
                (300,),
                (300e3,),
                "aC_ref_{mag}",
                "aC",
                "amorphous carbon support film",
                weight=0.5,
                note="carbon reference for CTF",
            ),
        ),
    ),
    Proposal(
        "P-2021-0057",
        "Grain boundaries and interfaces in SrTiO3",
        "Oxygen vacancies segregate to grain boundaries in strontium titanate and control its conductivity. We will "
        "resolve the atomic columns at a Sigma-5 tilt boundary in an SrTiO3 bicrystal and at LaAlO3/SrTiO3 "
        "interfaces with HAADF-STEM at 80 and 300 kV on TEAM 0.5, and record [001] selected-area diffraction "
        "patterns to check orientation and strain across the boundary.",
        "David Kim",
        "Stanford University",
        dt.date(2021, 4, 1),
        dt.date(2022, 3, 31),
        ("pnair",),
        "STO_bicrystal",
        1.0,
        (
            Recipe(
                *_TEAM_HAADF,
                (80, 300),
                (7.2e6, 10e6, 13.5e6),
                "{short}_{kv}kV_{mag}",
                *_STO,
                "SrTiO3_001",
                3,
                note="atomic-resolution HAADF of the boundary",
            ),
            Recipe(
                *_TEAM_HAADF,
                (300,),
                (10e6, 13.5e6),
                "{short}_{kv}kV_{mag}",
                "LAO_STO",
                "LaAlO3/SrTiO3 heterostructure",
                "SrTiO3_001",
                1,
                note="LAO/STO interface",
            ),
            Recipe(
                *_THEMIS_DP,
                (300,),
                (380, 480, 600),
                "{short}_001_DP_{cl}",
                *_STO,
                "SrTiO3_001",
                1.5,
                note="SAED on [001]",
            ),
            Recipe(
                "Themis",
                "eels_si",
                "spectrum image",
                "EELS",
                "GIF Quantum",
                (300,),
                (2.55e6, 3.6e6),
                "{short}_EELS_SI_{mag}",
                *_STO,
                "SrTiO3_001",
                weight=0.7,
                note="Ti L and O K maps across the boundary",
                file_format="hspy",
            ),
        ),
    ),
    Proposal(
        "P-2021-0063",
        "Stacking faults and twins in silicon for power devices",
        "Stacking faults nucleated during epitaxy degrade silicon power devices. We will prepare FIB lamellae of "
        "Si wafers on the Helios, image the dumbbells of the Si [110] projection and the faults and twin "
        "boundaries between them by HAADF-STEM, and index [110] zone-axis diffraction patterns to identify the "
        "defect types and their density.",
        "Anna Weber",
        "Technical University of Munich",
        dt.date(2021, 6, 1),
        dt.date(2022, 5, 31),
        ("tmueller",),
        "Si_defects",
        1.0,
        (
            Recipe(
                *_TEAM_HAADF,
                (300,),
                (10e6, 13.5e6, 20e6),
                "{short}_HAADF_{mag}",
                *_SI,
                "Si_110",
                3,
                note="dumbbells and stacking faults",
            ),
            Recipe(*_THEMIS_DP, (300,), (300, 380), "{short}_DP_{cl}", *_SI, "Si_110", 2, note="[110] zone axis DPs"),
            Recipe(
                "Helios",
                "lamella_sem",
                "image",
                "SEM",
                "ETD",
                (5, 2),
                (2500, 5000, 10000),
                "{short}_lamella_{kv}kV_{mag}",
                "Si110",
                "Si [110] FIB lamella",
                weight=1.5,
                note="lamella thinning",
            ),
        ),
    ),
    Proposal(
        "P-2022-0013",
        "Polytypism in self-catalysed GaAs nanowires",
        "GaAs nanowires grown by molecular beam epitaxy switch between zinc-blende and wurtzite stacking, which "
        "changes their band structure. We will survey nanowire density, length and diameter on Si(111) by SEM, "
        "image the stacking sequence of single wires by high-resolution TEM, and use selected-area diffraction "
        "to measure the polytype fractions as a function of growth temperature.",
        "Grace Liu",
        "University of California, Santa Barbara",
        dt.date(2022, 1, 17),
        dt.date(2023, 1, 13),
        ("ookafor", "sbrooks"),
        "GaAs_NW",
        1.3,
        (
            Recipe(
                "Helios",
                "nanowires_sem",
                "image",
                "SEM",
                "TLD",
                (5,),
                (10e3, 20e3, 50e3),
                "{short}_{kv}kV_{mag}",
                *_NW,
                weight=3,
                note="NW survey, 45 deg tilt",
            ),
            Recipe(
                "Gemini",
                "nanowires_sem",
                "image",
                "SEM",
                "InLens",
                (3, 5),
                (10e3, 25e3),
                "{short}_{kv}kV_{mag}",
                *_NW,
                weight=1.5,
                note="NW density",
            ),
            Recipe(
                "Themis",
                "columns_hrtem",
                "image",
                "TEM",
                "BM-Ceta",
                (300,),
                (1.5e6, 1.9e6, 2.5e6),
                "{short}_HRTEM_{mag}",
                *_NW,
                "GaAs_110",
                2,
                note="HRTEM of single wires",
            ),
            Recipe(*_THEMIS_DP, (300,), (480, 600), "{short}_SAED_{cl}", *_NW, "GaAs_110", 1, note="SAED"),
        ),
    ),
    Proposal(
        "P-2022-0031",
        "Shape-controlled ceria nanocubes for low-temperature oxidation",
        "Ceria nanocubes expose {100} facets that store and release oxygen more readily than octahedra. We will "
        "measure the size and shape distribution of hydrothermally grown CeO2 nanocubes by bright-field TEM and "
        "SEM, and image their surfaces by HAADF-STEM before and after reduction, as supports for gold "
        "nanoparticle catalysts.",
        "Rosa Delgado",
        "University of California, Berkeley",
        dt.date(2022, 3, 1),
        dt.date(2023, 2, 28),
        ("achen", "kyamada"),
        "ceria_cubes",
        1.0,
        (
            Recipe(
                "Themis",
                "cubes_bf",
                "image",
                "TEM",
                "BM-Ceta",
                (300,),
                (300e3, 500e3),
                "{short}_BF_{mag}",
                *_CEO2,
                "CeO2_001",
                3,
                note="BF TEM of cubes",
            ),
            Recipe(
                "Themis",
                "cubes_haadf",
                "image",
                "STEM",
                "HAADF",
                (300,),
                (450e3, 640e3),
                "{short}_HAADF_{mag}",
                *_CEO2,
                "CeO2_001",
                2,
                note="HAADF surfaces",
            ),
            Recipe(
                "Gemini",
                "cubes_sem",
                "image",
                "SEM",
                "InLens",
                (2,),
                (100e3, 200e3),
                "{short}_{kv}kV_{mag}",
                *_CEO2,
                weight=1.5,
                note="SEM size distribution",
            ),
            Recipe(
                "Themis",
                "eds_spectrum",
                "spectrum",
                "EDS",
                "Super-X",
                (300,),
                (160e3, 320e3),
                "{short}_EDS_{kv}kV",
                *_CEO2,
                "CeO2_001",
                weight=0.7,
                note="EDS of single cubes",
                file_format="emsa",
            ),
        ),
    ),
    Proposal(
        "P-2022-0048",
        "Cracking of nickel-rich cathode particles during cycling",
        "Nickel-rich NMC811 cathodes lose capacity as their secondary particles crack along grain boundaries. We "
        "will image pristine and cycled NMC811 particles by SEM with secondary-electron detectors, and cut "
        "cross-sections with the focused ion beam, to count intergranular cracks against cycle number.",
        "Hiroshi Tanaka",
        "University of California, Irvine",
        dt.date(2022, 6, 1),
        dt.date(2023, 5, 31),
        ("kyamada",),
        "NMC811",
        0.8,
        (
            Recipe(
                "Gemini",
                "particles_sem",
                "image",
                "SEM",
                "SE2",
                (5, 10),
                (2e3, 5e3),
                "{short}_{det}_{mag}",
                *_NMC,
                weight=3,
                note="pristine vs cycled particles",
            ),
            Recipe(
                "Helios",
                "particles_sem",
                "image",
                "SEM",
                "ETD",
                (5,),
                (2.5e3, 5e3),
                "{short}_cycled_{kv}kV_{mag}",
                *_NMC,
                weight=1.5,
                note="cycled particles before FIB",
            ),
        ),
    ),
    Proposal(
        "P-2023-0009",
        "Apoferritin as a resolution benchmark for the facility cryo-EM",
        "Mouse heavy-chain apoferritin is the standard test specimen for single-particle cryo-EM. We will collect "
        "dose-fractionated movies of apoferritin in vitreous ice on the Titan Krios, and tilt series for "
        "subtomogram averaging, to benchmark the microscope, the detector and the processing pipeline.",
        "Ellen Park",
        "University of California, San Francisco",
        dt.date(2023, 1, 9),
        dt.date(2023, 12, 15),
        ("lrossi",),
        "apoferritin",
        0.8,
        (
            Recipe(
                "Krios",
                "cryo_movie",
                "stack",
                "TEM",
                "K3",
                (300,),
                (105e3,),
                "{short}",
                *_APO,
                weight=3,
                frames=8,
                note="apoferritin SPA movies",
            ),
            Recipe(
                "Krios",
                "cryo_sum",
                "image",
                "TEM",
                "K3",
                (300,),
                (105e3,),
                "{short}_{n}_DW",
                *_APO,
                weight=1,
                note="dose-weighted sums",
            ),
            Recipe(
                "Krios",
                "cryo_tilt",
                "stack",
                "TEM",
                "K3",
                (300,),
                (53e3,),
                "{short}_TS",
                *_APO,
                weight=1,
                frames=21,
                note="tilt series",
            ),
        ),
    ),
    Proposal(
        "P-2023-0024",
        "Point defects in monolayer MoS2 at low voltage",
        "Sulfur vacancies set the electronic properties of monolayer molybdenum disulfide, but the beam creates "
        "them too. We will image suspended MoS2 monolayers on holey carbon by HAADF-STEM at 60 and 80 kV, below "
        "the knock-on threshold, count single and double sulfur vacancies, and confirm the monolayer by its "
        "hexagonal diffraction pattern.",
        "David Kim",
        "Stanford University",
        dt.date(2023, 2, 1),
        dt.date(2024, 1, 31),
        ("pnair", "sbrooks"),
        "MoS2",
        0.9,
        (
            Recipe(
                *_TEAM_HAADF,
                (60, 80),
                (10e6, 13.5e6),
                "{short}_{kv}kV_HAADF_{mag}",
                *_MOS2,
                "MoS2_001",
                3,
                note="low-kV HAADF, vacancy counting",
            ),
            Recipe(*_THEMIS_DP, (80,), (600, 770), "{short}_DP_{cl}", *_MOS2, "MoS2_001", 1, note="hexagonal DPs"),
            Recipe(
                "TEAM 0.5",
                "scan_4d",
                "4D",
                "STEM",
                "4D Camera",
                (300,),
                (115, 160),
                "{short}_4DSTEM_{cl}",
                *_MOS2,
                "MoS2_001",
                weight=0.7,
                note="4D-STEM of the monolayer",
                file_format="blockfile",
            ),
        ),
        embargo_until=dt.date(2031, 1, 31),
    ),
]


def _paper(number, year, title, abstract, authors, proposals, sentence="This work used the facility under proposal"):
    return {
        "id": f"PUB-{year}-{number:03d}",
        "title": title,
        "abstract": abstract,
        "authors": ", ".join(authors),
        "year": year,
        "doi": f"10.5555/scisearch-demo.{year}.{number:03d}",  # 10.5555: the example DOI prefix
        "funding": f"{sentence} {' and '.join(proposals)}. Supported by the invented Demo Science Foundation.",
    }


PAPERS = [
    _paper(
        1,
        2022,
        "Sintering-resistant gold nanoparticles on ceria observed by in situ HAADF-STEM",
        "Supported gold catalysts deactivate as their nanoparticles coarsen. Time series of aberration-corrected "
        "HAADF-STEM images during heating to 400 C show Au nanoparticles on CeO2 nanocubes keep their size while "
        "those on amorphous carbon coalesce.",
        ["Alice Chen", "Miguel Garcia", "Kenji Yamada", "Rosa Delgado"],
        ["P-2021-0042", "P-2022-0031"],
    ),
    _paper(
        2,
        2022,
        "Size-dependent lattice contraction in sub-5 nm gold nanoparticles",
        "Electron diffraction ring patterns and atomic-resolution images of Au nanoparticles between 2 and 6 nm "
        "show the fcc lattice parameter shrinking by up to 1.5% as particles get smaller.",
        ["Miguel Garcia", "Alice Chen", "Rosa Delgado"],
        ["P-2021-0042"],
        "Electron microscopy was performed at the facility (user proposal",
    ),
    _paper(
        3,
        2022,
        "Atomic structure and oxygen vacancies at a Sigma-5 grain boundary in SrTiO3",
        "HAADF-STEM at 80 and 300 kV resolves the Sr and Ti-O columns of a (310) tilt grain boundary in a "
        "strontium titanate bicrystal; column intensities reveal oxygen-deficient structural units.",
        ["Priya Nair", "David Kim"],
        ["P-2021-0057"],
    ),
    _paper(
        4,
        2023,
        "Termination of LaAlO3/SrTiO3 interfaces imaged at low voltage",
        "Atomic-resolution STEM of LaAlO3 films on SrTiO3 identifies the TiO2-terminated interface and its "
        "intermixing width.",
        ["Priya Nair", "Sam Brooks", "David Kim"],
        ["P-2021-0057"],
    ),
    _paper(
        5,
        2022,
        "Stacking faults and twin boundaries in FIB-prepared silicon lamellae",
        "Focused-ion-beam lamellae of epitaxial silicon imaged along [110] show intrinsic stacking faults and "
        "Sigma-3 twins; zone-axis diffraction confirms their habit planes.",
        ["Thomas Mueller", "Anna Weber"],
        ["P-2021-0063"],
    ),
    _paper(
        6,
        2023,
        "Zinc-blende and wurtzite polytypism in self-catalysed GaAs nanowires",
        "Scanning electron microscopy of GaAs nanowire arrays and high-resolution TEM of single wires relate "
        "the fraction of wurtzite segments to growth temperature.",
        ["Oluwaseun Okafor", "Sam Brooks", "Grace Liu"],
        ["P-2022-0013"],
    ),
    _paper(
        7,
        2023,
        "Facet-dependent oxygen storage of CeO2 nanocubes",
        "Bright-field TEM and HAADF-STEM of ceria nanocubes before and after reduction show {100} surfaces "
        "reconstructing while the cube shape is kept; gold nanoparticles anchor at cube edges.",
        ["Kenji Yamada", "Alice Chen", "Rosa Delgado"],
        ["P-2022-0031", "P-2021-0042"],
    ),
    _paper(
        8,
        2023,
        "Intergranular cracking in cycled NMC811 secondary particles",
        "SEM of pristine and cycled nickel-rich NMC811 cathode particles, with FIB cross-sections, shows cracks "
        "along primary grain boundaries growing with cycle number.",
        ["Kenji Yamada", "Hiroshi Tanaka"],
        ["P-2022-0048"],
        "We acknowledge the electron microscopy facility, proposal",
    ),
    _paper(
        9,
        2024,
        "A 2.1 A apoferritin benchmark for facility cryo-EM",
        "Single-particle analysis of mouse heavy-chain apoferritin from dose-fractionated movies reaches 2.1 A; "
        "tilt series of the same grids give a subtomogram average at 4 A.",
        ["Laura Rossi", "Ellen Park"],
        ["P-2023-0009"],
    ),
    _paper(
        10,
        2024,
        "Sulfur vacancy dynamics in monolayer MoS2 imaged at 60 kV",
        "Low-voltage HAADF-STEM of suspended monolayer MoS2 counts single and double sulfur vacancies and their "
        "migration under the beam; diffraction confirms the monolayer.",
        ["Sam Brooks", "Priya Nair", "David Kim"],
        ["P-2023-0024"],
    ),
]
