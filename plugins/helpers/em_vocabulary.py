"""What electron microscopists' words mean: elements, compounds, detectors, abbreviations.

Data, not logic: the metadata tagger uses it to spell detectors one way and
name elements, the filenames tagger to decode the shorthand people type into
file and folder names.  A facility adds its own words in metadata.yml
(``taggers: filenames: dictionary:``) rather than here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ------------------------------------------------------------------ elements

_ELEMENT_TABLE = """
H hydrogen He helium Li lithium Be beryllium B boron C carbon N nitrogen O oxygen F fluorine Ne neon
Na sodium Mg magnesium Al aluminium Si silicon P phosphorus S sulfur Cl chlorine Ar argon K potassium Ca calcium
Sc scandium Ti titanium V vanadium Cr chromium Mn manganese Fe iron Co cobalt Ni nickel Cu copper Zn zinc
Ga gallium Ge germanium As arsenic Se selenium Br bromine Kr krypton Rb rubidium Sr strontium Y yttrium
Zr zirconium Nb niobium Mo molybdenum Tc technetium Ru ruthenium Rh rhodium Pd palladium Ag silver Cd cadmium
In indium Sn tin Sb antimony Te tellurium I iodine Xe xenon Cs caesium Ba barium La lanthanum Ce cerium
Pr praseodymium Nd neodymium Pm promethium Sm samarium Eu europium Gd gadolinium Tb terbium Dy dysprosium
Ho holmium Er erbium Tm thulium Yb ytterbium Lu lutetium Hf hafnium Ta tantalum W tungsten Re rhenium Os osmium
Ir iridium Pt platinum Au gold Hg mercury Tl thallium Pb lead Bi bismuth Po polonium At astatine Rn radon
Fr francium Ra radium Ac actinium Th thorium Pa protactinium U uranium Np neptunium Pu plutonium Am americium
Cm curium Bk berkelium Cf californium Es einsteinium Fm fermium Md mendelevium No nobelium Lr lawrencium
Rf rutherfordium Db dubnium Sg seaborgium Bh bohrium Hs hassium Mt meitnerium Ds darmstadtium Rg roentgenium
Cn copernicium Nh nihonium Fl flerovium Mc moscovium Lv livermorium Ts tennessine Og oganesson
"""
_pairs = _ELEMENT_TABLE.split()
ELEMENTS: dict[str, str] = dict(zip(_pairs[0::2], _pairs[1::2]))
ELEMENT_BY_NAME: dict[str, str] = {name: symbol for symbol, name in ELEMENTS.items()}
ELEMENT_BY_NAME.update({"aluminum": "Al", "sulphur": "S", "cesium": "Cs"})

# Symbols that are also everyday words or shorthand ('In', 'As', 'No', 'Np' for nanoparticle, 'Ts' for tilt
# series, 'Cs' for spherical aberration), and the radioactive or synthetic elements nobody images: standing
# alone in a name they are not an element.  Inside a formula ('InAs', 'GaAs') they are.
AMBIGUOUS_SYMBOLS = frozenset(
    "In As At Be He No Am Es Ho Re Pa Po Ne Na Cs Md Ts Np Cm Pm Mt Db Ds Bh Hs Rg Cn Nh Fl Mc Lv Og Fm Bk Cf Lr"
    " Rf Sg Ac Tc Fr Ra Rn Pu Th".split()
)
# Lower-case spellings people really use for a sample ('au_145mm_68kx'); 'sn', 'mo', 'ta', 'al' are words
# or serial numbers more often than tin, molybdenum, tantalum or aluminium.
LOWERCASE_SYMBOLS = frozenset("au ag pt pd cu fe ni ti zn zr mg mn cr rh ru ir si ge ga pb".split())
# Element names that a formula's constituents are not worth naming for: nearly every sample holds them.
COMMON_CONSTITUENTS = frozenset("H C N O F P S Cl Br I".split())

# ------------------------------------------------------------------ compounds

# Formula as written -> names people search for.
COMPOUNDS: dict[str, list[str]] = {
    "SrTiO3": ["strontium titanate"],
    "LaAlO3": ["lanthanum aluminate"],
    "BaTiO3": ["barium titanate"],
    "PbTiO3": ["lead titanate"],
    "BiFeO3": ["bismuth ferrite"],
    "SrRuO3": ["strontium ruthenate"],
    "LaNiO3": ["lanthanum nickelate"],
    "LaMnO3": ["lanthanum manganite"],
    "YBa2Cu3O7": ["yttrium barium copper oxide", "cuprate superconductor"],
    "TiO2": ["titanium dioxide", "titania"],
    "CeO2": ["ceria", "cerium oxide"],
    "ZrO2": ["zirconia"],
    "HfO2": ["hafnia"],
    "Al2O3": ["alumina", "aluminium oxide"],
    "SiO2": ["silica", "silicon dioxide"],
    "ZnO": ["zinc oxide"],
    "MgO": ["magnesium oxide"],
    "NiO": ["nickel oxide"],
    "CuO": ["copper oxide"],
    "Cu2O": ["cuprous oxide", "copper oxide"],
    "Fe3O4": ["magnetite", "iron oxide"],
    "Fe2O3": ["hematite", "iron oxide"],
    "Co3O4": ["cobalt oxide"],
    "SnO2": ["tin oxide"],
    "In2O3": ["indium oxide"],
    "Ga2O3": ["gallium oxide"],
    "VO2": ["vanadium dioxide"],
    "MoO3": ["molybdenum trioxide"],
    "WO3": ["tungsten trioxide"],
    "MoS2": ["molybdenum disulfide"],
    "MoSe2": ["molybdenum diselenide"],
    "WS2": ["tungsten disulfide"],
    "WSe2": ["tungsten diselenide"],
    "GaN": ["gallium nitride"],
    "AlN": ["aluminium nitride"],
    "InN": ["indium nitride"],
    "TiN": ["titanium nitride"],
    "BN": ["boron nitride"],
    "Si3N4": ["silicon nitride"],
    "GaAs": ["gallium arsenide"],
    "InAs": ["indium arsenide"],
    "AlAs": ["aluminium arsenide"],
    "InP": ["indium phosphide"],
    "GaP": ["gallium phosphide"],
    "InSb": ["indium antimonide"],
    "SiC": ["silicon carbide"],
    "TiC": ["titanium carbide"],
    "WC": ["tungsten carbide"],
    "B4C": ["boron carbide"],
    "CdSe": ["cadmium selenide"],
    "CdS": ["cadmium sulfide"],
    "CdTe": ["cadmium telluride"],
    "ZnS": ["zinc sulfide"],
    "ZnSe": ["zinc selenide"],
    "PbS": ["lead sulfide"],
    "PbSe": ["lead selenide"],
    "Bi2Se3": ["bismuth selenide", "topological insulator"],
    "Bi2Te3": ["bismuth telluride"],
    "CsPbBr3": ["caesium lead bromide", "halide perovskite"],
    "LiCoO2": ["lithium cobalt oxide", "battery cathode"],
    "LiFePO4": ["lithium iron phosphate", "battery cathode"],
    "NaCl": ["sodium chloride"],
    "CaF2": ["calcium fluoride"],
    "H2O": ["water", "ice"],
    "CO2": ["carbon dioxide"],
}

# ------------------------------------------------------------------ detectors


@dataclass(frozen=True)
class Detector:
    """One detector under its canonical spelling, what else to call it, and the mode it implies."""

    name: str
    aliases: tuple[str, ...]
    also: tuple[str, ...] = ()
    mode: str | None = None  # STEM for annular detectors; None where the detector is used in several modes


DETECTORS = [
    Detector("HAADF", ("haadf", "ha-adf"), ("high-angle annular dark-field", "Z-contrast"), "STEM"),
    Detector("MAADF", ("maadf",), ("medium-angle annular dark-field",), "STEM"),
    Detector("LAADF", ("laadf",), ("low-angle annular dark-field",), "STEM"),
    Detector("ADF", ("adf",), ("annular dark-field",), "STEM"),
    Detector("LAABF", ("laabf",), ("low-angle annular bright-field",), "STEM"),
    Detector("ABF", ("abf",), ("annular bright-field",), "STEM"),
    Detector("DF2", ("df2",), ("annular dark-field",), "STEM"),
    Detector("DF4", ("df4",), ("annular dark-field",), "STEM"),
    Detector("DF-S", ("df-s", "dfs"), ("annular dark-field",), "STEM"),
    Detector("DF-I", ("df-i", "dfi"), ("annular dark-field",), "STEM"),
    Detector("iDPC", ("idpc",), ("integrated differential phase contrast",), "STEM"),
    Detector("DPC", ("dpc",), ("differential phase contrast",), "STEM"),
    Detector("BF", ("bf", "bright field", "brightfield", "bright-field"), ("bright-field",)),
    Detector("DF", ("df", "dark field", "darkfield", "dark-field"), ("dark-field",)),
    Detector("Ceta", ("ceta", "bm-ceta", "bm ceta", "ceta-d", "ceta 16m", "ceta-16m"), ("Ceta camera",)),
    Detector("EF-CCD", ("ef-ccd", "efccd", "ef ccd"), ("energy-filter camera",)),
    Detector("UltraScan", ("ultrascan", "ultrascan 1000", "us1000", "us4000"), ("Gatan UltraScan camera",)),
    Detector("OneView", ("oneview", "one view"), ("Gatan OneView camera",)),
    Detector("Orius", ("orius",), ("Gatan Orius camera",)),
    Detector("K2", ("k2", "k2 summit", "k2 is"), ("direct electron detector",)),
    Detector("K3", ("k3", "k3-is", "k3 is"), ("direct electron detector",)),
    Detector("Falcon", ("falcon", "falcon 3", "falcon 4", "falcon 4i", "falcon4i"), ("direct electron detector",)),
    Detector("EMPAD", ("empad",), ("pixel array detector", "4D-STEM"), "STEM"),
    Detector("GIF", ("gif", "gif quantum", "gif quantum er", "gif continuum"), ("Gatan imaging filter",)),
    Detector("SuperX", ("superx", "super-x", "super x"), ("Super-X EDS detector",), "EDS"),
    Detector("ETD", ("etd",), ("Everhart-Thornley detector", "secondary electrons"), "SEM"),
    Detector("TLD", ("tld",), ("through-the-lens detector", "secondary electrons"), "SEM"),
    Detector("ICD", ("icd",), ("in-column detector",), "SEM"),
    Detector("InLens", ("inlens", "in-lens", "in lens"), ("in-lens detector", "secondary electrons"), "SEM"),
    Detector("SE2", ("se2",), ("secondary electrons",), "SEM"),
    Detector("CBS", ("cbs",), ("concentric backscatter detector", "backscattered electrons"), "SEM"),
    Detector("BSE", ("bse", "bsd"), ("backscattered electrons",), "SEM"),
    Detector("ESB", ("esb",), ("energy-selective backscatter detector", "backscattered electrons"), "SEM"),
    Detector("AsB", ("asb",), ("angle-selective backscatter detector", "backscattered electrons"), "SEM"),
]
_DETECTOR_BY_ALIAS = {alias: detector for detector in DETECTORS for alias in (detector.name.lower(), *detector.aliases)}
# Velox numbers the four Super-X quadrants (SuperXG21 … SuperXG24); Bruker writes SuperX-EDS and the like.
_SUPERX = re.compile(r"^super[\s_-]?x", re.IGNORECASE)


def canonical_detector(reported: str | None) -> Detector | None:
    """The known detector a reported name means ('BM-Ceta' -> Ceta, 'SuperXG21' -> SuperX), or None."""
    text = " ".join(str(reported or "").split()).lower()
    if not text:
        return None
    if text in _DETECTOR_BY_ALIAS:
        return _DETECTOR_BY_ALIAS[text]
    if _SUPERX.match(text):
        return _DETECTOR_BY_ALIAS["superx"]
    return None


STEM_DETECTORS = frozenset(d.name for d in DETECTORS if d.mode == "STEM")

# ------------------------------------------------------------------ shorthand

# Case-sensitive abbreviations and acronyms -> tags.  The first tag is the canonical spelling.
ABBREVIATIONS: dict[str, list[str]] = {
    "STO": ["STO", "SrTiO3", "strontium titanate"],
    "LAO": ["LAO", "LaAlO3", "lanthanum aluminate"],
    "BTO": ["BTO", "BaTiO3", "barium titanate"],
    "PTO": ["PTO", "PbTiO3", "lead titanate"],
    "BFO": ["BFO", "BiFeO3", "bismuth ferrite"],
    "SRO": ["SRO", "SrRuO3", "strontium ruthenate"],
    "LSMO": ["LSMO", "lanthanum strontium manganite"],
    "YBCO": ["YBCO", "YBa2Cu3O7", "yttrium barium copper oxide", "cuprate superconductor"],
    "PZT": ["PZT", "lead zirconate titanate"],
    "YSZ": ["YSZ", "yttria-stabilised zirconia"],
    "ITO": ["ITO", "indium tin oxide"],
    "LCO": ["LCO", "LiCoO2", "lithium cobalt oxide", "battery cathode"],
    "LFP": ["LFP", "LiFePO4", "lithium iron phosphate", "battery cathode"],
    "NMC": ["NMC", "lithium nickel manganese cobalt oxide", "battery cathode"],
    "NMC111": ["NMC111", "NMC", "lithium nickel manganese cobalt oxide", "battery cathode"],
    "NMC532": ["NMC532", "NMC", "lithium nickel manganese cobalt oxide", "battery cathode"],
    "NMC622": ["NMC622", "NMC", "lithium nickel manganese cobalt oxide", "battery cathode"],
    "NMC811": ["NMC811", "NMC", "lithium nickel manganese cobalt oxide", "battery cathode"],
    "NCA": ["NCA", "lithium nickel cobalt aluminium oxide", "battery cathode"],
    "hBN": ["hBN", "hexagonal boron nitride", "BN"],
    "h-BN": ["hBN", "hexagonal boron nitride", "BN"],
    "BN": ["BN", "boron nitride"],
    "CNT": ["CNT", "carbon nanotubes"],
    "CNTs": ["CNT", "carbon nanotubes"],
    "MWCNT": ["MWCNT", "multi-walled carbon nanotubes", "carbon nanotubes"],
    "SWCNT": ["SWCNT", "single-walled carbon nanotubes", "carbon nanotubes"],
    "rGO": ["rGO", "reduced graphene oxide"],
    "GO": ["GO", "graphene oxide"],
    "MOF": ["MOF", "metal-organic framework"],
    "COF": ["COF", "covalent organic framework"],
    "QD": ["quantum dots"],
    "QDs": ["quantum dots"],
    "NP": ["nanoparticles"],
    "NPs": ["nanoparticles"],
    "NW": ["nanowires"],
    "NWs": ["nanowires"],
    "NR": ["nanorods"],
    "NRs": ["nanorods"],
    "NC": ["nanocrystals"],
    "NCs": ["nanocrystals"],
    "GB": ["grain boundary"],
    "GBs": ["grain boundary"],
    "C60": ["C60", "fullerene"],
    "aC": ["amorphous carbon"],
    "SiNx": ["SiNx", "silicon nitride"],
    "SiN": ["SiN", "silicon nitride"],
    "SiOx": ["SiOx", "silicon oxide"],
    # techniques and modes
    "TEM": ["TEM"],
    "STEM": ["STEM"],
    "SEM": ["SEM"],
    "HRTEM": ["HRTEM", "high-resolution TEM", "TEM"],
    "HREM": ["HRTEM", "high-resolution TEM", "TEM"],
    "HRSTEM": ["high-resolution STEM", "STEM"],
    "EFTEM": ["EFTEM", "energy-filtered TEM"],
    "EELS": ["EELS", "electron energy-loss spectroscopy"],
    "EDS": ["EDS", "X-ray spectroscopy"],
    "EDX": ["EDS", "X-ray spectroscopy"],
    "XEDS": ["EDS", "X-ray spectroscopy"],
    "SI": ["spectrum image"],
    "DP": ["diffraction pattern", "diffraction"],
    "DPs": ["diffraction pattern", "diffraction"],
    "SAED": ["SAED", "selected-area electron diffraction", "diffraction"],
    "SAD": ["SAED", "selected-area electron diffraction", "diffraction"],
    "CBED": ["CBED", "convergent-beam electron diffraction", "diffraction"],
    "NBED": ["NBED", "nanobeam electron diffraction", "diffraction"],
    "NBD": ["NBED", "nanobeam electron diffraction", "diffraction"],
    "PED": ["precession electron diffraction", "diffraction"],
    "4DSTEM": ["4D-STEM", "STEM"],
    "FIB": ["FIB", "focused ion beam"],
    "TS": ["tilt series", "tomography"],
    "DW": ["dose-weighted"],
    "EBSD": ["EBSD", "electron backscatter diffraction"],
}
# Short lower-case shorthand that means something only as a whole token ('Au_np_300kV'), never inside a
# longer word ('diffPixelSize' is a different pixel size, not a diffraction pattern).
WHOLE_TOKEN_SHORTHAND: dict[str, list[str]] = {
    "np": ["nanoparticles"],
    "nps": ["nanoparticles"],
    "nw": ["nanowires"],
    "nws": ["nanowires"],
    "gb": ["grain boundary"],
    "diff": ["diffraction"],
    "dp": ["diffraction pattern", "diffraction"],
    "ref": ["reference"],
    "cal": ["calibration"],
    "tomo": ["tomography"],
    "ts": ["tilt series", "tomography"],
    "sto": ["STO", "SrTiO3", "strontium titanate"],
    "eels": ["EELS", "electron energy-loss spectroscopy"],
    "eds": ["EDS", "X-ray spectroscopy"],
    "edx": ["EDS", "X-ray spectroscopy"],
    "stem": ["STEM"],
    "tem": ["TEM"],
    "sem": ["SEM"],
    "saed": ["SAED", "selected-area electron diffraction", "diffraction"],
    "cbed": ["CBED", "convergent-beam electron diffraction", "diffraction"],
    "hrtem": ["HRTEM", "high-resolution TEM", "TEM"],
    "fib": ["FIB", "focused ion beam"],
}
# Words (matched without regard to case, also inside longer names such as 'grid3' or 'STOimage').
WORDS: dict[str, list[str]] = {
    "nanoparticle": ["nanoparticles"],
    "nanoparticles": ["nanoparticles"],
    "nanowire": ["nanowires"],
    "nanowires": ["nanowires"],
    "nanorod": ["nanorods"],
    "nanorods": ["nanorods"],
    "nanotube": ["nanotubes"],
    "nanotubes": ["nanotubes"],
    "nanocube": ["nanocubes"],
    "nanocubes": ["nanocubes"],
    "cubes": ["nanocubes"],
    "nanosheet": ["nanosheets"],
    "nanosheets": ["nanosheets"],
    "nanocrystal": ["nanocrystals"],
    "nanocrystals": ["nanocrystals"],
    "graphene": ["graphene"],
    "film": ["thin film"],
    "films": ["thin film"],
    "thinfilm": ["thin film"],
    "lamella": ["lamella", "FIB lamella"],
    "lamellae": ["lamella", "FIB lamella"],
    "grid": ["grid"],
    "cryo": ["cryo-EM"],
    "cryoem": ["cryo-EM"],
    "tomography": ["tomography"],
    "tomogram": ["tomography"],
    "tiltseries": ["tilt series", "tomography"],
    "diffraction": ["diffraction"],
    "insitu": ["in situ"],
    "operando": ["operando", "in situ"],
    "heating": ["in situ heating", "in situ"],
    "biasing": ["in situ biasing", "in situ"],
    "liquid": ["liquid cell"],
    "bicrystal": ["bicrystal", "grain boundary"],
    "interface": ["interface"],
    "heterostructure": ["heterostructure"],
    "superlattice": ["superlattice"],
    "catalyst": ["catalyst"],
    "catalysts": ["catalyst"],
    "cathode": ["battery cathode"],
    "anode": ["battery anode"],
    "battery": ["battery"],
    "cycled": ["cycled"],
    "pristine": ["pristine"],
    "reference": ["reference"],
    "calibration": ["calibration"],
    "overview": ["overview"],
    "survey": ["overview"],
    "atlas": ["atlas", "overview"],
    "montage": ["montage"],
    "mapping": ["map"],
    "linescan": ["line scan"],
    "spectrum": ["spectrum"],
    "series": ["series"],
    "microprobe": ["microprobe"],
    "nanoprobe": ["nanoprobe"],
    "defocus": ["defocus series"],
    "apoferritin": ["apoferritin", "protein"],
    "ferritin": ["ferritin", "protein"],
    "protein": ["protein"],
    "virus": ["virus"],
    "ribosome": ["ribosome", "protein"],
    "liposome": ["liposome"],
    "zeolite": ["zeolite"],
    "perovskite": ["perovskite"],
    "ceria": ["CeO2", "ceria", "cerium oxide"],
    "titania": ["TiO2", "titania", "titanium dioxide"],
    "alumina": ["Al2O3", "alumina"],
    "silica": ["SiO2", "silica"],
    "zirconia": ["ZrO2", "zirconia"],
    "magnetite": ["Fe3O4", "magnetite"],
    "hematite": ["Fe2O3", "hematite"],
    "steel": ["steel"],
    "alloy": ["alloy"],
    "polymer": ["polymer"],
}
# Shorthand written with a separator inside ('a-C', 'in_situ', '4D-STEM'): matched on the whole name, any of
# _ - . or space (or none) between the parts.
PHRASES: list[tuple[str, list[str], bool]] = [  # (parts joined by spaces, tags, case-sensitive)
    ("a C", ["amorphous carbon"], True),
    ("in situ", ["in situ"], False),
    ("4D STEM", ["4D-STEM", "STEM"], False),
    ("thin film", ["thin film"], False),
    ("tilt series", ["tilt series", "tomography"], False),
    ("grain boundary", ["grain boundary"], False),
    ("h BN", ["hBN", "hexagonal boron nitride", "BN"], True),
    ("spectrum image", ["spectrum image"], False),
]


def magnification_band(magnification: float) -> str:
    """The band a microscopist would put a magnification in (TEM/STEM: atoms need more than a million times)."""
    if magnification < 10_000:
        return "low magnification"
    if magnification < 1_000_000:
        return "medium magnification"
    return "high magnification"


# ------------------------------------------------------------------ categories


def _listed(listed: str) -> list[str]:
    """Tags written one after another, '|' between them (many have spaces inside)."""
    return [" ".join(tag.split()) for tag in listed.split("|")]


# What the vocabulary's tags are about, for the pages' tag groups (``TAG_CATEGORIES`` in the core).  Tags of the
# vocabulary not named here are materials (SrTiO3, graphene, zeolite, steel …).
TECHNIQUE_TAGS = frozenset(
    _listed(
        """TEM | STEM | SEM | HRTEM | high-resolution TEM | high-resolution STEM | EFTEM | energy-filtered TEM | EELS |
        electron energy-loss spectroscopy | EDS | X-ray spectroscopy | diffraction | SAED |
        selected-area electron diffraction | CBED | convergent-beam electron diffraction | NBED |
        nanobeam electron diffraction | precession electron diffraction | 4D-STEM | FIB | focused ion beam |
        tomography | EBSD | electron backscatter diffraction | cryo-EM | in situ | in situ heating | in situ biasing |
        operando | liquid cell | microprobe | nanoprobe"""
    )
)
FEATURE_TAGS = frozenset(
    _listed(
        """nanoparticles | nanowires | nanorods | nanotubes | nanocubes | nanosheets | nanocrystals | quantum dots |
        grain boundary | interface | heterostructure | superlattice | thin film | lamella | FIB lamella | bicrystal |
        atomic resolution"""
    )
)
KIND_OF_DATA_TAGS = frozenset(
    _listed(
        "diffraction pattern | spectrum image | spectrum | map | line scan | series | tilt series | "
        "defocus series | montage"
    )  # fmt: skip
)
# Why the data was taken, or its state: neither the specimen nor how it was seen.
OTHER_TAGS = frozenset(_listed("reference | calibration | overview | atlas | pristine | cycled | dose-weighted | grid"))
# What kind of reading (filenames' ``Meaning.kind``) a tag came from, where its words do not say more.
_CATEGORY_OF_READING = {
    "unit": "setting",
    "zone axis": "setting",
    "detector": "instrument",
    "element": "material",
    "ambiguous": "material",
    "lowercase": "material",
    "compound": "material",
    "formula": "material",
    "abbreviation": "material",
    "word": "material",
    "phrase": "material",
}


def category_of(text: str, reading: str | None = None) -> str | None:
    """The category of a vocabulary tag ('EELS' a technique, 'nanoparticles' a feature, '300 kV' a setting), or
    None when neither its words nor how it was read say."""
    if text in TECHNIQUE_TAGS:
        return "technique"
    if text in FEATURE_TAGS:
        return "feature"
    if text in KIND_OF_DATA_TAGS:
        return "kind"
    if text in OTHER_TAGS:
        return "other"
    if text.startswith("zone axis"):
        return "setting"
    return _CATEGORY_OF_READING.get(reading or "")
