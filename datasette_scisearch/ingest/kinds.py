"""The kinds of instrument data: one vocabulary for the loaders, the search language and the pages.

A kind says what a dataset *is*, so that filters (``type:diffraction``) and
linking find it whatever format it came in.  It is decided from the dataset's
axes, as HyperSpy decides a signal's class: which axes are the signal (the
detector's) and which navigate (scan positions, frames), what units they carry,
and the signal type the instrument software recorded.

=================  ======================================================================================
kind               how it is decided (axes of length 1 are ignored)
=================  ======================================================================================
spectrum           one axis, spectral (energy in eV/keV, a wavelength, or a spectroscopy signal type:
                   EELS, EDS, CL …) or without any unit
line profile       one axis whose unit is a length: intensity along a line drawn on an image
spectrum image     a spectral signal axis plus one or two navigation axes (a line scan or a map of spectra)
image              two signal axes in real-space units (or none)
diffraction        two signal axes in reciprocal units (1/nm, 1/Å), or a signal type naming diffraction
stack              an image or diffraction pattern plus one navigation axis (frames, tilts, a focal or
                   time series), or a 3D volume
4D                 two navigation axes and two signal axes: a 4D-STEM scan, a scanned diffraction series
=================  ======================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

from .normalize import is_energy, is_length, is_reciprocal

KINDS = ("image", "diffraction", "spectrum", "spectrum image", "line profile", "stack", "4D")

DESCRIPTIONS = {
    "image": "an image in real space (TEM, STEM, SEM, optical)",
    "diffraction": "a diffraction pattern (reciprocal-space axes)",
    "spectrum": "one spectrum: intensity against energy or wavelength (EELS, EDS, CL)",
    "spectrum image": "a spectrum at every point of a line or map (EELS or EDS mapping)",
    "line profile": "intensity along a line across an image",
    "stack": "a series of images or patterns (time, tilt, focus), or a volume",
    "4D": "a pattern at every point of a 2D scan (4D-STEM)",
}

# Signal types (HyperSpy's names, and what DM and TIA write) that make the last axis spectral.
_SPECTROSCOPY = ("EELS", "EDS", "EDX", "CL", "XRF", "PL", "LUMINESCENCE", "SPECTRUM")
_SPECTRAL_AXIS_NAMES = ("energy", "energy loss", "x-ray energy", "wavelength", "wavenumber", "raman shift")


def is_spectroscopy(signal_type: str | None) -> bool:
    text = (signal_type or "").upper()
    return any(word in text for word in _SPECTROSCOPY)


def kind_from_axes(
    sizes: Sequence[int],
    units: Sequence[str],
    navigate: Sequence[bool | None] | None = None,
    signal_type: str | None = None,
    names: Sequence[str] | None = None,
) -> str:
    """The kind of a dataset from its axes, outermost first (``navigate`` True for scan or frame axes, False for
    the detector's, None where the reader does not say)."""
    count = len(sizes)
    units = [str(u or "") for u in units] + [""] * (count - len(units))
    names = [str(n or "").strip().lower() for n in (names or [])] + [""] * count
    navigate = list(navigate or []) + [None] * count
    axes = [(units[i], navigate[i], names[i]) for i in range(count) if int(sizes[i]) > 1]
    if not axes:
        return "spectrum"
    last_unit, _, last_name = axes[-1]
    spectral = is_energy(last_unit) or last_name in _SPECTRAL_AXIS_NAMES or is_spectroscopy(signal_type)
    declared = [a for a in axes if a[1] is False]
    signal_dims = len(declared) if declared and any(a[1] for a in axes) else None
    if signal_dims is None:  # the reader did not say which axes navigate: a spectrum has one, a picture two
        signal_dims = 1 if spectral or len(axes) == 1 else 2
    if signal_dims == 1 or len(axes) == 1:
        if len(axes) == 1:
            return "line profile" if not spectral and is_length(last_unit) else "spectrum"
        return "spectrum image" if spectral else "stack"
    signal_axes = axes[-signal_dims:]
    diffraction = "DIFFRACTION" in (signal_type or "").upper() or all(is_reciprocal(a[0]) for a in signal_axes)
    if len(axes) == 2:
        return "diffraction" if diffraction else "image"
    if len(axes) == 3:
        return "stack"
    return "4D"


def kind_of_shape(shape: Sequence[int], units: Sequence[str], signal_type: str | None = None) -> str:
    """The kind from an array's shape and per-axis units alone (readers that say nothing about navigation)."""
    return kind_from_axes(list(shape), list(units), None, signal_type)
