"""The electron dose a file's page shows, from what its instrument recorded: never a guessed number.

The dose is electrons per Å² of specimen; the dose rate, electrons per Å² per second.  For a scanned probe (STEM)
every pixel receives the whole beam current for the dwell time (times the lines integrated), so

    dose = I · t_dwell · n_lines / (e · Δx²)        dose rate = dose / t_frame

with Δx the scan step (the file's pixel size) and the rate averaged over the frame's time (the recorded frame time,
else the dwell times of the frame's pixels).  A camera image (TEM) lit by a beam of known current needs the area
the beam lights at the specimen, which no file here records: there the page shows the current and exposure and says
why no dose is given.  A value the instrument writes as a placeholder (DigitalMicrograph's probe current 0 nA) is
not a measurement and is left out.

Where the values are found, by format: Velox EMD (``Optics.LastMeasuredScreenCurrent`` in A, ``Scan.DwellTime``,
``Scan.LineIntegrationCount``, ``Scan.FrameTime``, the detector's ``ExposureTime`` in s); RosettaSciIO's HyperSpy
metadata (``Acquisition_instrument.TEM|SEM.beam_current`` in nA unless ``beam_current_units`` says otherwise,
``dwell_time`` and ``exposure`` in s, ``_units`` beside them where the reader kept the file's); DigitalMicrograph
(``Microscope Info Probe Current (nA)``, ``DataBar Exposure Time (s)``); TIA (``DwellTimePath`` in s).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

ELEMENTARY_CHARGE_C = 1.602176634e-19  # exact in the SI since 2019
ANGSTROM_PER_NM = 10.0
SCANNED_KINDS = frozenset({"image", "stack", "spectrum image", "4D", "series"})

_CURRENT_IN_A = {"a": 1.0, "ma": 1e-3, "ua": 1e-6, "µa": 1e-6, "μa": 1e-6, "na": 1e-9, "pa": 1e-12, "fa": 1e-15}
_TIME_IN_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}


@dataclass
class Beam:
    """What the file says of its beam, in SI units, and the dose worked out from it where it can be."""

    current_a: float | None = None
    dwell_s: float | None = None
    exposure_s: float | None = None
    lines_integrated: int = 1
    frame_time_s: float | None = None
    scanned: bool = False
    dose_e_per_a2: float | None = None
    dose_rate_e_per_a2_s: float | None = None
    no_dose_because: str | None = None


def beam_of(row: dict, metadata) -> Beam | None:
    """The beam facts of one file row and its parsed raw metadata; None when the file records none of them."""
    metadata = metadata if isinstance(metadata, dict) else {}
    beam = Beam()
    _read_velox(beam, metadata)
    _read_hyperspy(beam, (metadata.get("metadata") or {}).get("Acquisition_instrument"))
    _read_digitalmicrograph(beam, metadata)
    if beam.dwell_s is None:
        beam.dwell_s = _positive(metadata.get("DwellTimePath"))  # TIA
    if beam.current_a is None and beam.dwell_s is None and beam.exposure_s is None:
        return None
    beam.scanned = beam.scanned or (beam.dwell_s is not None and (row.get("mode") or "").upper() == "STEM")
    _work_out_dose(beam, row)
    return beam


def _work_out_dose(beam: Beam, row: dict) -> None:
    pixel_nm = _positive(row.get("pixel_size_nm"))
    if beam.current_a is None:
        beam.no_dose_because = "the file records no beam current"
        return
    if pixel_nm is None or row.get("kind") not in SCANNED_KINDS:
        beam.no_dose_because = "the file records no pixel size in the specimen"
        return
    if not beam.scanned:
        beam.no_dose_because = "a camera image's dose needs the area the beam lit, which the file does not record"
        return
    if beam.dwell_s is None:
        beam.no_dose_because = "the file records no dwell time"
        return
    pixel_area_a2 = (pixel_nm * ANGSTROM_PER_NM) ** 2
    electrons_per_pixel = beam.current_a * beam.dwell_s * beam.lines_integrated / ELEMENTARY_CHARGE_C
    beam.dose_e_per_a2 = electrons_per_pixel / pixel_area_a2
    frame_time = beam.frame_time_s or _frame_time_from_dwell(beam, row.get("shape"))
    if frame_time:
        beam.dose_rate_e_per_a2_s = beam.dose_e_per_a2 / frame_time


def _frame_time_from_dwell(beam: Beam, shape) -> float | None:
    """The scan's pixels times the dwell (and lines integrated): a frame's time without its fly-back."""
    sizes = [int(n) for n in re.findall(r"\d+", str(shape or ""))]
    if len(sizes) < 2 or beam.dwell_s is None:
        return None
    return sizes[-2] * sizes[-1] * beam.dwell_s * beam.lines_integrated


def _read_velox(beam: Beam, metadata: dict) -> None:
    optics, scan = metadata.get("Optics"), metadata.get("Scan")
    if not isinstance(optics, dict):
        return
    beam.current_a = _positive(optics.get("LastMeasuredScreenCurrent")) or _positive(optics.get("ScreenCurrent"))
    scan = scan if isinstance(scan, dict) else {}
    width = _positive((scan.get("ScanSize") or {}).get("width")) if isinstance(scan.get("ScanSize"), dict) else None
    if width:  # Velox writes a zero scan size for a camera's image
        beam.scanned = True
        beam.dwell_s = _positive(scan.get("DwellTime"))
        beam.frame_time_s = _positive(scan.get("FrameTime"))
        beam.lines_integrated = int(_positive(scan.get("LineIntegrationCount")) or 1)
        return
    exposures = {
        _positive(detector.get("ExposureTime"))
        for detector in (metadata.get("Detectors") or {}).values()
        if isinstance(detector, dict)
    } - {None}
    if len(exposures) == 1:  # several detectors with different exposures: which is this one's is not said
        beam.exposure_s = exposures.pop()


def _read_hyperspy(beam: Beam, instruments) -> None:
    if not isinstance(instruments, dict):
        return
    microscope = instruments.get("TEM") or instruments.get("SEM")
    if not isinstance(microscope, dict):
        return
    if beam.current_a is None:
        unit = str(microscope.get("beam_current_units") or "nA")
        beam.current_a = _in_unit(microscope.get("beam_current"), unit, _CURRENT_IN_A)
    detectors = microscope.get("Detector") if isinstance(microscope.get("Detector"), dict) else {}
    for place in (microscope, *[d for d in detectors.values() if isinstance(d, dict)]):
        if beam.dwell_s is None:
            beam.dwell_s = _in_unit(place.get("dwell_time"), str(place.get("dwell_time_units") or "s"), _TIME_IN_S)
        if beam.exposure_s is None:
            beam.exposure_s = _in_unit(place.get("exposure"), str(place.get("exposure_units") or "s"), _TIME_IN_S)
    if str(microscope.get("acquisition_mode") or "").upper() == "STEM" and beam.dwell_s is not None:
        beam.scanned = True


def _read_digitalmicrograph(beam: Beam, metadata: dict) -> None:
    if beam.current_a is None:
        beam.current_a = _in_unit(metadata.get("Microscope Info Probe Current (nA)"), "nA", _CURRENT_IN_A)
    if beam.exposure_s is None:
        beam.exposure_s = _positive(metadata.get("DataBar Exposure Time (s)"))


def _in_unit(value, unit: str, factors: dict[str, float]) -> float | None:
    factor = factors.get(unit.strip().lower())
    number = _positive(value)
    return None if factor is None or number is None else number * factor


def _positive(value) -> float | None:
    """A recorded number, or None for what is missing, not a number, or a zero placeholder."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


# -- As the page writes them ----------------------------------------------------------------------------


def _scaled(value: float, units: list[tuple[float, str]]) -> str:
    for factor, unit in units:
        if value >= factor:
            return f"{value / factor:.3g} {unit}"
    factor, unit = units[-1]
    return f"{value / factor:.3g} {unit}"


def current_text(amperes: float) -> str:
    return _scaled(amperes, [(1e-6, "µA"), (1e-9, "nA"), (1e-12, "pA"), (1e-15, "fA")])


def time_text(seconds: float) -> str:
    return _scaled(seconds, [(1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")])


def amount_text(value: float, unit: str) -> str:
    """Three significant figures, in scientific notation where a plain number would hide them."""
    shown = f"{value:.3g}" if 1e-3 <= value < 1e5 else f"{value:.2e}".replace("e-0", "e-").replace("e+0", "e+")
    return f"{shown} {unit}"


def beam_rows(beam: Beam | None) -> list[tuple[str, str, str]]:
    """(column, label, value) rows for the item page's list, each value with its unit."""
    if beam is None:
        return []
    rows = []
    if beam.current_a is not None:
        rows.append(("beam_current", "Beam current", current_text(beam.current_a)))
    if beam.dwell_s is not None:
        rows.append(("dwell_time", "Dwell time", time_text(beam.dwell_s)))
    if beam.exposure_s is not None:
        rows.append(("exposure", "Exposure", time_text(beam.exposure_s)))
    if beam.dose_e_per_a2 is not None:
        rows.append(("dose", "Electron dose", amount_text(beam.dose_e_per_a2, "e⁻/Å²")))
    if beam.dose_rate_e_per_a2_s is not None:
        rows.append(("dose_rate", "Dose rate", amount_text(beam.dose_rate_e_per_a2_s, "e⁻/Å²/s") + " (frame average)"))
    if beam.dose_e_per_a2 is None and beam.no_dose_because and beam.current_a is not None:
        rows.append(("dose", "Electron dose", f"not given: {beam.no_dose_because}"))
    return rows
