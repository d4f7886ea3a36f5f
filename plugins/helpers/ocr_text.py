"""What burned-in text says, normalised: scale bars, voltages, magnifications, working distance, field width.

Microscope exports print their settings in many spellings: "HV 5.00 kV", "EHT = 5.00 kV", "Mag 8 000 x",
"Mag = 8.00 K X", "x8,000", "WD5.1mm" and "Mag8000x" (tesseract often reads the gap away), "200 nm", "5 um",
"5 μm" (Greek mu), "5 µm" (micro sign) or "5 pm" (tesseract's reading of µ).  Each becomes one canonical tag a
search can match: "5 kV", "8000x", "WD 5.1 mm", "200 nm", "5 µm".  A length without a label is taken as a scale
bar's.
"""

from __future__ import annotations

import re

MICRO = "\u00b5"  # the micro sign; tesseract and fonts mix it with the Greek mu (U+03BC)
# tesseract's English model reads the micro sign as "p" ("1pm"); a scale bar in picometres does not occur in
# practice (an atom is 100-300 pm across), so "pm" is read back as the µm it almost always was
_UNITS = {"nm": "nm", "mm": "mm"} | dict.fromkeys(["pm", "um", "\u03bcm", f"{MICRO}m"], f"{MICRO}m")
_LENGTH_LABELS = {"wd": "WD", "hfw": "HFW", "vfw": "VFW", "fov": "FOV", "fw": "FW"}

_NUMBER = r"\d+(?:[.,]\d+)?"
_LENGTH = re.compile(
    rf"(?:\b(?P<label>WD|HFW|VFW|FOV|FW)\s*[:=]?\s*|(?<![\d.,]))(?P<value>{_NUMBER})\s*"
    rf"(?P<unit>pm|nm|um|\u03bcm|{MICRO}m|mm)(?![A-Za-z])",
    re.IGNORECASE,
)
_VOLTAGE = re.compile(rf"(?<![\d.,])(?P<value>{_NUMBER})\s*(?P<unit>kV|MV)(?![A-Za-z])", re.IGNORECASE)
# "8 000", "8,000" and "8.000" are thousands when groups of three follow; a magnification of 8.000x is not a thing
_GROUPED = r"\d{1,3}(?:[ ,.]\d{3})+(?!\d)"
_MAGNIFICATION_AFTER = re.compile(
    rf"(?<![\d.,])(?P<value>{_GROUPED}|{_NUMBER})\s*(?P<prefix>[kKM])?\s*[xX\u00d7](?![A-Za-z\d])"
)
# "x8,000" and "×8000" (the sign written first) only with nothing between sign and number: in "8 000 x 200 nm"
# the x belongs to the 8000
_MAGNIFICATION_BEFORE = re.compile(
    rf"(?<![A-Za-z\d])[xX\u00d7](?P<value>{_GROUPED}|{_NUMBER})\s*(?P<prefix>[kKM])?(?![A-Za-z\d])"
)


def readings(text: str) -> list[str]:
    """The normalised values in recognised text, in the order found, each once."""
    found: list[str] = []
    for match in _LENGTH.finditer(text):
        value = _decimal(match["value"])
        unit = _UNITS[match["unit"].lower()]
        label = _LENGTH_LABELS.get((match["label"] or "").lower())
        found.append(f"{label} {_format(value)} {unit}" if label else f"{_format(value)} {unit}")
    for match in _VOLTAGE.finditer(text):
        value = _decimal(match["value"]) * (1000 if match["unit"].upper() == "MV" else 1)
        found.append(f"{_format(value)} kV")
    for pattern in (_MAGNIFICATION_AFTER, _MAGNIFICATION_BEFORE):
        for match in pattern.finditer(text):
            value = _grouped(match["value"]) * {"k": 1e3, "m": 1e6}.get((match["prefix"] or "").lower(), 1)
            if value >= 1:
                found.append(f"{_format(value)}x")
    return list(dict.fromkeys(found))


def _decimal(text: str) -> float:
    return float(text.replace(",", "."))  # a decimal comma, as European software writes it


def _grouped(text: str) -> float:
    if re.fullmatch(_GROUPED, text):
        return float(re.sub(r"[ ,.]", "", text))
    return _decimal(text)


def _format(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.4g}"
