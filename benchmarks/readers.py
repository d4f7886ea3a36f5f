"""How well the catalog reads vendor files, with RosettaSciIO's own reading of each file as the reference.

    python benchmarks/readers.py [--vendors ../shared/data/em-vendors] [--details]

Loads every file of the folder into a fresh catalog, reads each again with
RosettaSciIO (HyperSpy's reader library, its metadata mapping applied), and
compares, dataset by dataset, the fields both report: kind, shape, acquisition
time, kV, magnification, camera length and instrument.  Prints how many data
files became rows, what was skipped or failed, and the agreement figure (fields
compared, % agreeing); ``--details`` lists every disagreement.  A field counts
only where RosettaSciIO reads a real value (not a placeholder such as 0 kV).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import math
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scisearch_loaders.rosettasciio_formats import camera_length_mm, mapped_metadata  # noqa: E402

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.config import load_settings  # noqa: E402
from datasette_scisearch.ingest.files import load_files  # noqa: E402
from datasette_scisearch.ingest.kinds import kind_from_axes  # noqa: E402
from datasette_scisearch.ingest.normalize import honest_camera_length, honest_magnification, honest_voltage  # noqa: E402

FIELDS = ("kind", "shape", "acquired_at", "voltage_kv", "magnification", "camera_length_mm", "instrument")


def companion_of(path: Path) -> Path | None:
    """Files read together with another one, which make no row of their own (and where the reference reads)."""
    suffix = path.suffix.lower()
    if suffix == ".emi" and list(path.parent.glob(path.stem + "_*.ser")):
        return None
    if suffix == ".hdr" and path.with_suffix(".mib").exists():
        return path.with_suffix(".mib")
    if "_data_" in path.name and suffix == ".h5":
        return path.with_name(path.name.split("_data_")[0] + "_master.h5")
    return None


def reference_path(path: Path) -> Path:
    """Where RosettaSciIO reads a data file's metadata: a TIA .ser's from its .emi (which names the .ser)."""
    if path.suffix.lower() == ".ser":
        emi = path.with_name(path.stem.rsplit("_", 1)[0] + ".emi")
        if emi.exists():
            return emi
    return path


def rosettasciio_signals(path: Path) -> list[dict] | None:
    """The signals RosettaSciIO reads from a file (the first of its plugins for the suffix that can), or None;
    each signal notes the plugin that read it under ``"plugin"``."""
    import rsciio

    suffix = path.suffix.lower().lstrip(".")
    for plugin in rsciio.IO_PLUGINS:
        if suffix not in {e.lower() for e in plugin["file_extensions"]}:
            continue
        try:
            reader = importlib.import_module(plugin["api"]).file_reader
            return [{**signal, "plugin": plugin["name"]} for signal in reader(str(path), lazy=False)]
        except Exception:  # not this plugin's dialect of the suffix (HDF5 files), or not readable at all
            continue
    return None


def reference_values(signal: dict) -> dict:
    """The fields RosettaSciIO reads from one signal, in the catalog's units; absent or placeholder -> None."""
    metadata = mapped_metadata(signal)
    general = metadata.get("General", {})
    microscope = next((v for k, v in (metadata.get("Acquisition_instrument") or {}).items() if k in ("TEM", "SEM")), {})
    axes = signal.get("axes") or []
    shape = tuple(int(n) for n in getattr(signal["data"], "shape", ()) if int(n) > 1)
    signal_type = str((metadata.get("Signal") or {}).get("signal_type") or "")
    return {
        "kind": kind_from_axes(
            [int(a.get("size") or 1) for a in axes],
            [str(a.get("units") or "") for a in axes],
            [a.get("navigate") for a in axes],
            signal_type,
            [str(a.get("name") or "") for a in axes],
        ),
        "shape": shape,
        "acquired_at": _reference_time(general),
        "voltage_kv": honest_voltage(microscope.get("beam_energy")),
        "magnification": honest_magnification(microscope.get("magnification")),
        # in mm, as HyperSpy defines it (one RosettaSciIO reader gives metres: see CAMERA_LENGTH_IN_METRES)
        "camera_length_mm": honest_camera_length(camera_length_mm(microscope.get("camera_length"), signal["plugin"])),
        "instrument": (str(microscope.get("microscope")).strip() or None) if microscope.get("microscope") else None,
    }


def _reference_time(general: dict) -> tuple[str, dt.datetime] | None:
    date, time = general.get("date"), general.get("time")
    if not date:
        return None
    try:
        moment = dt.datetime.fromisoformat(f"{date}T{str(time or '00:00:00')[:8]}")
    except ValueError:
        return None
    zone = str(general.get("time_zone") or "").strip()
    if zone in ("UTC", "Z", "GMT"):
        return "utc", moment
    if zone[:1] in "+-" and len(zone) >= 5:
        offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:]))
        return "utc", moment - offset if zone[0] == "+" else moment + offset
    return "local", moment


def catalog_values(row: dict) -> dict:
    acquired = None
    if row["acquired_at_source"] not in ("file modification time",):
        acquired = {
            "utc": dt.datetime.fromisoformat(row["acquired_at"]).replace(tzinfo=None),
            "local": dt.datetime.fromisoformat(row["acquired_local"]).replace(tzinfo=None),
        }
    return {
        "kind": row["kind"],
        "shape": tuple(int(n) for n in (row["shape"] or "").split("×") if n and int(n) > 1),
        "acquired_at": acquired,
        "voltage_kv": row["voltage_kv"],
        "magnification": row["magnification"],
        "camera_length_mm": row["camera_length_mm"],
        "instrument": row["instrument_reported"],
    }


def agrees(field: str, ours, reference) -> bool:
    if ours is None:
        return False
    if field == "acquired_at":
        clock, moment = reference
        return abs((ours[clock] - moment).total_seconds()) < 1.5
    if field == "instrument":  # the catalog may add what tells two of a model apart (Velox: id, computer name)
        ours, reference = (" ".join(str(v).split()).lower() for v in (ours, reference))
        return ours == reference or ours.startswith(reference + " ")
    if field in ("voltage_kv", "magnification", "camera_length_mm"):
        return math.isclose(float(ours), float(reference), rel_tol=1e-3)
    return ours == reference


def compare(folder: Path, settings, details: bool) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as scratch:
        db = open_catalog(Path(scratch) / "vendors.db")
        summary = load_files(db, [folder], settings, progress=False)
        rows_by_path: dict[str, list[dict]] = {}
        for row in db.query("select * from files order by path, dataset"):
            rows_by_path.setdefault(row["path"], []).append(row)
        errors = {row["source"]: row["message"] for row in db.query("select source, message from ingest_errors")}
        db.close()
    compared = agreeing = 0
    files_read = files_with_rows = 0
    disagreements: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix.lower() in (".txt", ".md") or companion_of(path) is not None:
            continue
        if path.suffix.lower() == ".emi" and list(path.parent.glob(path.stem + "_*.ser")):
            continue
        signals = rosettasciio_signals(reference_path(path))
        if signals is None:
            continue
        files_read += 1
        rows = rows_by_path.get(str(path.resolve()), [])
        name = str(path.relative_to(folder))
        if not rows:
            disagreements.append(f"{name}: no row ({errors.get(str(path.resolve()), 'skipped')})")
            compared += len(FIELDS)
            continue
        files_with_rows += 1
        for index, signal in enumerate(signals):
            if index >= len(rows):
                disagreements.append(f"{name} #{index}: RosettaSciIO reads a dataset the catalog lacks")
                continue
            reference, ours = reference_values(signal), catalog_values(rows[index])
            for field in FIELDS:
                if reference[field] is None:
                    continue
                compared += 1
                if agrees(field, ours[field], reference[field]):
                    agreeing += 1
                else:
                    mine = ours[field]
                    if field == "acquired_at" and mine:
                        mine = mine[reference[field][0]]
                    theirs = reference[field][1] if field == "acquired_at" else reference[field]
                    disagreements.append(f"{name} #{index} {field}: catalog {mine!r}, RosettaSciIO {theirs!r}")
    print(f"\n{folder}: RosettaSciIO reads {files_read} data files; {files_with_rows} became catalog rows")
    print(f"  load: {summary.added} added, {summary.failed} failed, {summary.skipped} skipped")
    print(f"  fields compared: {compared}, agreeing: {agreeing} ({100 * agreeing / max(compared, 1):.1f}%)")
    if details:
        for line in disagreements:
            print("   ", line)
    return compared, agreeing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vendors", type=Path, default=REPO.parent / "shared" / "data" / "em-vendors")
    parser.add_argument("--details", action="store_true", help="list every field that disagrees")
    args = parser.parse_args()
    if not args.vendors.exists():
        sys.exit(f"{args.vendors} not found: give the folder of vendor files with --vendors")
    logging.disable(logging.WARNING)  # RosettaSciIO's readers log freely about odd files
    warnings.filterwarnings("ignore")
    compare(args.vendors.resolve(), load_settings(REPO / "metadata.yml"), args.details)


if __name__ == "__main__":
    main()
