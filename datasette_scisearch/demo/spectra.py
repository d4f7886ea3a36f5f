"""Spectra, spectrum images and 4D scans for the demo facility, and the vendor formats that carry them.

EDS spectra go to EMSA/MAS ``.msa`` text (ISO 22029, what every EDS package
exports), EELS spectrum images to HyperSpy's ``.hspy`` and 4D-STEM scans to
NanoMegas ``.blo`` block files, the last two through RosettaSciIO's writers:
formats the catalog reads only through RosettaSciIO, so the demo exercises the
reader chain.  As for the images, every number the file reports is the one the
data were computed from.
"""

from __future__ import annotations

import warnings

import numpy as np

from .scenes import Acquisition, amorphous, spot_pattern

# X-ray lines (keV) and relative weights of the elements in the demo's samples.
XRAY_LINES = {
    "C": [(0.277, 1.0)],
    "O": [(0.525, 1.0)],
    "Si": [(1.740, 1.0)],
    "Ga": [(1.098, 0.6), (9.251, 1.0), (10.264, 0.15)],
    "As": [(1.282, 0.6), (10.543, 1.0), (11.726, 0.15)],
    "Au": [(2.123, 1.0), (9.713, 0.5), (11.442, 0.2)],
    "Ce": [(0.883, 0.4), (4.840, 1.0), (5.262, 0.5)],
    "Cu": [(0.930, 0.3), (8.046, 1.0), (8.904, 0.15)],  # the grid: in every TEM EDS spectrum
    "Ni": [(0.851, 0.3), (7.478, 1.0)],
    "Mn": [(0.637, 0.3), (5.899, 1.0)],
    "Co": [(0.776, 0.3), (6.930, 1.0)],
    "Sr": [(1.806, 0.8), (14.165, 1.0)],
    "Ti": [(0.452, 0.3), (4.511, 1.0), (4.932, 0.15)],
    "Mo": [(2.293, 1.0), (17.479, 0.6)],
    "S": [(2.307, 1.0)],
}
SAMPLE_ELEMENTS = {
    "Au_110": ["Au", "C"],
    "SrTiO3_001": ["Sr", "Ti", "O"],
    "Si_110": ["Si", "O"],
    "GaAs_110": ["Ga", "As"],
    "CeO2_001": ["Ce", "O"],
    "MoS2_001": ["Mo", "S"],
}
# EELS core-loss edges (eV) in the 280-536 eV window the demo's spectrum images record.
EELS_EDGES = {"C": 284.0, "Ti": 456.0, "O": 532.0, "Ca": 346.0}
EDS_CHANNEL_KEV = 0.01
EELS_OFFSET_EV, EELS_CHANNEL_EV = 280.0, 0.5


def elements_of(crystal: str | None) -> list[str]:
    return SAMPLE_ELEMENTS.get(crystal or "", ["C", "O"]) + ["Cu"]


def eds_spectrum(rng, a: Acquisition) -> np.ndarray:
    """Counts per 10 eV channel: Kramers' bremsstrahlung up to the beam energy, Gaussian lines, detector noise."""
    energy = (np.arange(a.shape[-1]) + 0.5) * EDS_CHANNEL_KEV
    beam = a.voltage_kv
    background = np.where(energy < beam, (beam - energy) / np.maximum(energy, 0.2), 0) * 3.0
    background *= 1 - np.exp(-((energy / 0.8) ** 3))  # absorption in the detector window
    peaks = np.zeros_like(energy)
    for element in elements_of(a.crystal):
        for line_kev, weight in XRAY_LINES[element]:
            if line_kev < beam:
                width = 0.045 + 0.012 * np.sqrt(line_kev)  # an SDD's resolution grows with energy
                peaks += weight * 400 * np.exp(-0.5 * ((energy - line_kev) / width) ** 2)
    return rng.poisson(background + peaks * rng.uniform(0.6, 1.4)).astype(np.float32)


def eels_spectrum_image(rng, a: Acquisition) -> np.ndarray:
    """A map of core-loss spectra: a power-law background and sawtooth edges whose heights follow the map."""
    rows, cols, channels = a.shape
    energy = EELS_OFFSET_EV + np.arange(channels) * EELS_CHANNEL_EV
    thickness = 1 + 0.3 * amorphous(rng, (rows, cols), 3.0)
    background = 2e9 * energy ** (-3.0)
    cube = thickness[..., None] * background[None, None, :]
    for index, onset in enumerate(EELS_EDGES.values()):
        share = np.clip(0.5 + 0.5 * amorphous(rng, (rows, cols), 4.0 + index), 0, None)
        edge = np.where(energy >= onset, (onset / np.maximum(energy, onset)) ** 2.5, 0) * background[0] * 0.15
        cube += share[..., None] * edge[None, None, :]
    return rng.poisson(np.clip(cube, 0, None)).astype(np.float32)


def scan_4d(rng, a: Acquisition) -> np.ndarray:
    """A 4D-STEM scan: at every probe position a zone-axis pattern whose spots dim and brighten with thickness
    and bending, the direct beam drifting slightly with the scan (imperfect descan)."""
    scan_rows, scan_cols, det_rows, det_cols = a.shape
    pattern = spot_pattern(rng, (det_rows, det_cols), a.pixel_size_inv_nm, a.crystal or "Si_110")
    pattern = pattern / (np.percentile(pattern, 99.9) or 1.0)
    thickness = 1 + 0.4 * amorphous(rng, (scan_rows, scan_cols), 2.0)
    cube = np.empty(a.shape, dtype=np.uint8)
    for row in range(scan_rows):
        for col in range(scan_cols):
            shifted = np.roll(pattern, (row // 8, col // 8), axis=(0, 1))
            counts = rng.poisson(np.clip(shifted * 120 * thickness[row, col], 0, None))
            cube[row, col] = np.clip(counts, 0, 255)
    return cube


def write_emsa(a: Acquisition, spectrum: np.ndarray) -> None:
    """EMSA/MAS spectral data file format (ISO 22029): keyword lines, then one count per line."""
    header = [
        ("FORMAT", "EMSA/MAS Spectral Data File"),
        ("VERSION", "1.0"),
        ("TITLE", f"{a.sample} EDS"),
        ("DATE", a.acquired_at_local.strftime("%d-%b-%Y").upper()),
        ("TIME", a.acquired_at_local.strftime("%H:%M:%S")),
        ("OWNER", a.user_name),
        ("NPOINTS", f"{spectrum.size}"),
        ("NCOLUMNS", "1"),
        ("XUNITS", "keV"),
        ("YUNITS", "counts"),
        ("DATATYPE", "Y"),
        ("XPERCHAN", f"{EDS_CHANNEL_KEV:g}"),
        ("OFFSET", "0.0"),
        ("SIGNALTYPE", "EDS"),
        ("BEAMKV   -kV", f"{a.voltage_kv:g}"),
        ("MAGCAM", f"{a.magnification:g}" if a.magnification else "0"),
        ("SPECTRUM", "Spectral Data Starts Here"),
    ]
    lines = [f"#{key:<13}: {value}" for key, value in header]
    lines += [f"{count:g}," for count in spectrum]
    lines.append("#ENDOFDATA   : ")
    a.path.write_text("\r\n".join(lines) + "\r\n", encoding="ascii")


def _axis(name: str, units: str, size: int, scale: float, offset: float = 0.0, navigate: bool = False) -> dict:
    return {"name": name, "units": units, "size": size, "scale": scale, "offset": offset, "navigate": navigate}


def _signal(data: np.ndarray, axes: list[dict], metadata: dict) -> dict:
    """The dictionary RosettaSciIO's writers take (what a HyperSpy signal hands them)."""
    return {
        "data": data,
        "axes": axes,
        "metadata": metadata,
        "original_metadata": {},
        "attributes": {"_lazy": False},
        "learning_results": {},
        "models": {},
        "tmp_parameters": {},
        "package_info": {"name": "hyperspy", "version": "2.0"},
    }


def _general(a: Acquisition, title: str) -> dict:
    return {
        "title": title,
        "date": a.acquired_at_local.date().isoformat(),
        "time": a.acquired_at_local.time().isoformat(timespec="seconds"),
        "authors": a.user_name,
    }


def write_hspy(a: Acquisition, cube: np.ndarray) -> None:
    """An EELS spectrum image as HyperSpy saves it (RosettaSciIO's HSPY writer), with the Gatan-style metadata."""
    from rsciio.hspy import file_writer

    rows, cols, channels = cube.shape
    metadata = {
        "General": _general(a, "EELS Spectrum Image"),  # what Gatan's software titles it
        "Signal": {"signal_type": "EELS", "quantity": "Electrons (Counts)"},
        "Acquisition_instrument": {
            "TEM": {
                "microscope": "Titan Themis 3580",
                "beam_energy": a.voltage_kv,
                "magnification": a.magnification,
                "camera_length": a.camera_length_mm,
                "Detector": {"EELS": {"detector_type": "GIF Quantum"}},
            }
        },
    }
    axes = [
        _axis("y", "nm", rows, a.pixel_size_nm, navigate=True),
        _axis("x", "nm", cols, a.pixel_size_nm, navigate=True),
        _axis("Energy loss", "eV", channels, EELS_CHANNEL_EV, EELS_OFFSET_EV),
    ]
    file_writer(str(a.path), _signal(cube, axes, metadata))


def _serial_date(epoch: float) -> float:
    """Days since 1899-12-30 (the 'serial date' of spreadsheets, which block files use), from a Unix time."""
    return epoch / 86400.0 + 25569.0


def write_blockfile(a: Acquisition, cube: np.ndarray) -> None:
    """A NanoMegas ASTAR block file (RosettaSciIO's writer): 8-bit patterns, a virtual bright field to navigate."""
    from rsciio.blockfile import file_writer

    scan_rows, scan_cols, det_rows, det_cols = cube.shape
    # The writer takes the instrument's numbers only from a header: beam energy in V, camera length in 0.1 mm.
    header = {
        "Beam_energy": int(a.voltage_kv * 1e3),
        "Camera_length": int(a.camera_length_mm * 10),
        "Acquisition_time": _serial_date(a.acquired_at_epoch),  # UTC
        "Note": "",
    }
    metadata = {
        "General": {"title": f"{a.sample} 4D-STEM"},
        "Signal": {"signal_type": "diffraction"},
        "Acquisition_instrument": {"TEM": {"beam_energy": a.voltage_kv, "camera_length": a.camera_length_mm}},
    }
    step_nm = a.pixel_size_nm or 1.0
    axes = [
        _axis("y", "nm", scan_rows, step_nm, navigate=True),
        _axis("x", "nm", scan_cols, step_nm, navigate=True),
        _axis("dy", "1/nm", det_rows, a.pixel_size_inv_nm),
        _axis("dx", "1/nm", det_cols, a.pixel_size_inv_nm),
    ]
    signal = _signal(cube, axes, metadata)
    signal["original_metadata"] = {"blockfile_header": header}
    with warnings.catch_warnings():  # it would convert detector scales to cm, which reciprocal units cannot be
        warnings.simplefilter("ignore", UserWarning)
        file_writer(str(a.path), signal, show_progressbar=False)
