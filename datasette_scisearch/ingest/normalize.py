"""Units, kinds and times: the small conversions every loader and the core share.

Instrument files write lengths in metres, nanometres, ångström or odd strings
such as Berkeley EMD's 'n_m'; reciprocal units mark a diffraction pattern.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo

_LENGTH_IN_NM = {
    "m": 1e9,
    "mm": 1e6,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "nm": 1.0,
    "a": 0.1,
    "å": 0.1,
    "angstrom": 0.1,
    "pm": 1e-3,
}
_ENERGY_UNITS = {"ev", "kev"}


def _clean_unit(unit) -> str:
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    text = str(unit or "").strip()
    text = text.replace("_", "").replace(" ", "")  # Berkeley EMD writes 'n_m', RosettaSciIO '1 / µm'
    if text in ("A", "Å"):
        return "a"
    return text.lower()


def length_to_nm(value, unit) -> float | None:
    """A pixel size in nm, or None when the unit is not a length or the value is not believable."""
    factor = _LENGTH_IN_NM.get(_clean_unit(unit))
    if factor is None or value is None:
        return None
    try:
        size = float(value) * factor
    except (TypeError, ValueError):
        return None
    # MRC headers and unset scales give 0, 1 'pixel' or absurd values: 1 fm .. 1 mm is believable.
    if not math.isfinite(size) or size <= 1e-6 or size > 1e6:
        return None
    return size


def is_reciprocal(unit) -> bool:
    text = _clean_unit(unit)
    return text.startswith("1/") or text.endswith("^-1") or text.endswith("-1") and text[:-2] in _LENGTH_IN_NM


def is_energy(unit) -> bool:
    return _clean_unit(unit) in _ENERGY_UNITS


def is_length(unit) -> bool:
    return _clean_unit(unit) in _LENGTH_IN_NM


# Instrument software writes placeholders where it knows nothing: magnification 0 or 1, 0 kV, a camera length
# of 0, a clock never set (1970, 1904).  A placeholder stored as a number would match filters it should not, so
# it becomes null (the raw value stays in the row's metadata).
EARLIEST_BELIEVABLE_YEAR = 1990


def honest_voltage(value) -> float | None:
    kv = number(value)
    return kv if kv is not None and kv > 0.01 else None


def honest_magnification(value) -> float | None:
    magnification = number(value)
    return magnification if magnification is not None and magnification > 1 else None


def honest_camera_length(value) -> float | None:
    length = number(value)
    return length if length is not None and length > 0 else None


def honest_time(moment: dt.datetime | None) -> dt.datetime | None:
    return moment if moment is not None and moment.year >= EARLIEST_BELIEVABLE_YEAR else None


def magnification_label(magnification: float) -> str:
    """13500000 -> '13.5 Mx', 25000 -> '25 kx': how microscopists write magnifications."""
    if magnification >= 1e6:
        return f"{magnification / 1e6:.3g} Mx"
    if magnification >= 1e3:
        return f"{magnification / 1e3:.3g} kx"
    return f"{magnification:.3g} x"


def to_utc(moment: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """Aware times are converted; naive ones are read as the facility's local time."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


def iso_utc(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def iso_local(moment: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat(timespec="seconds")


def number(value) -> float | None:
    """A finite float from a metadata value ('80', b'80', '13500000 X', 8e4) or None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        token = value.strip().split(" ")[0] if value.strip() else ""
        try:
            value = float(token)
        except ValueError:
            return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


_DATE_FORMATS = ("%m/%d/%Y", "%d %b %Y", "%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y")
_TIME_FORMATS = ("%I:%M:%S %p", "%H:%M:%S", "%H:%M")


def parse_vendor_datetime(date_value, time_value) -> dt.datetime | None:
    """A naive local time from the separate date and time strings instrument software writes.

    Each vendor uses its own locale's style ('8/29/2017' + '1:58:43 PM' in DM,
    '18 Oct 2021' + '17:12:33' in Zeiss SEM); month-first wins where ambiguous,
    as US-made instrument software writes it.
    """
    if not date_value:
        return None
    date_text, time_text = str(date_value).strip(), str(time_value or "00:00:00").strip()
    for date_format in _DATE_FORMATS:
        for time_format in _TIME_FORMATS:
            try:
                return dt.datetime.strptime(f"{date_text} {time_text}", f"{date_format} {time_format}")
            except ValueError:
                continue
    return None
