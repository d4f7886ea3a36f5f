"""Writing acquisitions in the instrument formats of real files: Berkeley and Velox EMD, FEI and Zeiss TIFF, MRC;
spectra, spectrum images and 4D scans in EMSA, HyperSpy and NanoMegas formats (``spectra``)."""

from __future__ import annotations

import datetime as dt
import json
import os

import h5py
import numpy as np
import tifffile
from ncempy.io import emd, mrc

from . import spectra
from .detector import render
from .scenes import Acquisition, with_databar


def write_acquisition(acquisition: Acquisition) -> None:
    """Render the acquisition and write it in its instrument's format; the file's mtime is the acquisition time."""
    data = render(acquisition)
    acquisition.path.parent.mkdir(parents=True, exist_ok=True)
    acquisition.path.unlink(missing_ok=True)
    {
        "berkeley-emd": _write_berkeley_emd,
        "velox-emd": _write_velox_emd,
        "fei-tiff": _write_fei_tiff,
        "zeiss-tiff": _write_zeiss_tiff,
        "mrc": _write_mrc,
        "emsa": spectra.write_emsa,
        "hspy": spectra.write_hspy,
        "blockfile": spectra.write_blockfile,
    }[acquisition.file_format](acquisition, data)
    # Berkeley EMD and MRC keep no acquisition time a reader can rely on: readers fall back to the mtime.
    os.utime(acquisition.path, (acquisition.acquired_at_epoch, acquisition.acquired_at_epoch))


def _write_berkeley_emd(a: Acquisition, data: np.ndarray) -> None:
    """Berkeley EMD v0.2 through ncempy, with the groups and attributes of TEAM 0.5's own files (Acquisition_18.emd)."""
    diffraction = a.kind == "diffraction"
    step, unit = (a.pixel_size_inv_nm, "1/nm") if diffraction else (a.pixel_size_nm, "n_m")  # TEAM writes 'n_m'
    frame_time_s = 0.5
    dims = [
        (np.arange(n, dtype=np.float32) * np.float32(step), name, np.bytes_(unit.encode()))
        for n, name in zip(data.shape[-2:], ("Y", "X"))
    ]
    if data.ndim == 3:
        dims.insert(0, (np.arange(data.shape[0], dtype=np.float32) * frame_time_s, "time", np.bytes_(b"s")))
    with emd.fileEMD(a.path, readonly=False) as handle:
        group = handle.put_emdgroup("series" if data.ndim == 3 else "single", data, dims)
        if group is None:
            raise RuntimeError(f"ncempy could not write the EMD group of '{a.path}'")
        handle.data.attrs["filename"] = a.path.stem
        times = a.acquired_at_epoch + frame_time_s * np.arange(data.shape[0]) if data.ndim == 3 else a.acquired_at_epoch
        group.create_dataset("acquisition times", data=np.float64(times))
        microscope = handle.microscope.attrs
        microscope["name"] = "TEAM 0.5"
        microscope["high tension"] = np.float64(a.voltage_kv * 1e3)  # volts
        microscope["camera length"] = np.float64(a.camera_length_mm / 1e3)  # metres
        microscope["binning"] = np.int32(4 if diffraction else 1)
        microscope["max binning"] = np.int32(4096)
        microscope["spot size"] = np.int32(7)
        if not diffraction:
            microscope["magnification"] = np.float64(a.magnification)
            microscope["dwell time"] = np.float64(1e-6)  # scanned: readers take a dwell time to mean STEM
            microscope["convergence angle"] = np.float64(0.0249 if a.voltage_kv >= 200 else 0.030)
            microscope["defocus"] = np.float64(np.random.default_rng(a.seed).normal(0, 5e-9))
        handle.user.attrs["User name"] = a.user_name
        handle.sample.attrs["sample name"] = a.sample
        stage = handle.file_hdl.create_group("stage")
        stage.attrs["position"] = np.random.default_rng(a.seed + 1).uniform(-50, 50, 5)
        stage.attrs["type"] = "NCEM TEAM Stage"


def _velox_number(value: float) -> str:
    return f"{value:.17g}"  # Velox writes every number as a string with 17 significant digits


def _velox_metadata(a: Acquisition, data: np.ndarray) -> dict:
    """The JSON Velox stores next to each image, with the keys of the real Themis files in ../shared/data/em."""
    stem = a.mode == "STEM"
    diffraction = a.kind == "diffraction"
    height, width = data.shape[:2]
    if diffraction:
        pixel, unit = a.pixel_size_inv_nm * 1e9, "1/m"
    else:
        pixel, unit = a.pixel_size_nm * 1e-9, "m"
    optics = {
        "GunLensSetting": "3",
        "ExtractorVoltage": "4050",
        "AccelerationVoltage": _velox_number(a.voltage_kv * 1e3),
        "SpotIndex": "9" if stem else "3",
        "Focus": "0",
        "StemFocus": "0",
        "Defocus": "0",
        "HighMagnificationMode": "None" if stem else "SA",
        "OperatingMode": "2" if stem else "1",  # 1 TEM, 2 STEM
        "TemOperatingSubMode": "None" if stem else "BrightField",
        "ProjectorMode": "1" if stem or diffraction else "2",  # 1 diffraction, 2 imaging
        "EFTEMOn": "false",
        "ObjectiveLensMode": "HM",
        "IlluminationMode": "Free",
        "ProbeMode": "2",
        "CameraLength": _velox_number(a.camera_length_mm / 1e3),
    }
    if a.magnification is not None:
        optics["NominalMagnification"] = _velox_number(a.magnification)
    if stem:
        field = _velox_number(a.pixel_size_nm * 1e-9 * width)
        optics["FullScanFieldOfView"] = {"x": field, "y": field}
    detectors = {}
    for index, (name, kind) in enumerate(
        [
            ("BF", "ScanningDetector"),
            ("BM-Ceta", "ImagingDetector"),
            ("DF2", "ScanningDetector"),
            ("DF4", "ScanningDetector"),
            ("HAADF", "ScanningDetector"),
        ]
    ):
        detectors[f"Detector-{index}"] = {
            "DetectorName": name,
            "DetectorType": kind,
            "Inserted": "true" if name == a.detector else "false",
            "Enabled": "true",
        }
    detector_index = next(i for i, d in detectors.items() if d["DetectorName"] == a.detector).split("-")[1]
    custom = {"Aperture[C2].Name": {"type": "string", "value": "50" if stem else "150"}}
    if stem:
        custom["StemMagnification"] = {"type": "double", "value": _velox_number(a.magnification)}
    epoch = str(int(a.acquired_at_epoch))
    return {
        "Core": {
            "MetadataDefinitionVersion": "7.9",
            "MetadataSchemaVersion": "v1/2013/07",
            "guid": "00000000000000000000000000000000",
        },
        "Instrument": {
            "ControlSoftwareVersion": "2.9.1",
            "Manufacturer": "FEI Company",
            "InstrumentId": "3580",
            "InstrumentClass": "Titan",
            "InstrumentModel": "Titan",
            "ComputerName": "THEMISX",
        },
        "Acquisition": {
            "AcquisitionStartDatetime": {"DateTime": epoch},
            "AcquisitionDatetime": {"DateTime": epoch},
            "BeamType": "",
            "SourceType": "XFEG",
        },
        "Optics": optics,
        "EnergyFilter": {"EntranceApertureType": ""},
        "Stage": {
            "Position": {"x": "0", "y": "0", "z": "0"},
            "AlphaTilt": "0",
            "BetaTilt": "0",
            "HolderType": "Single Tilt",
        },
        "Scan": (
            {
                "ScanSize": {"width": str(width), "height": str(height)},
                "DwellTime": "1.0000000000000001e-05",
                "FrameTime": _velox_number(1e-5 * width * height),
            }
            if stem
            else {"ScanSize": {"width": "0", "height": "0"}, "FrameTime": "0.40000000000000002"}
        ),
        "Vacuum": {"VacuumMode": "Ready"},
        "Detectors": detectors,
        "BinaryResult": {
            "AcquisitionUnit": "" if stem else "CameraImage",
            "CompositionType": "",
            "DetectorIndex": detector_index,
            "Detector": a.detector,
            "PixelSize": {"width": _velox_number(pixel), "height": _velox_number(pixel)},
            "PixelUnitX": unit,
            "PixelUnitY": unit,
            "Offset": {"x": _velox_number(-pixel * width / 2), "y": _velox_number(-pixel * height / 2)},
            "Encoding": "" if stem else "Signed",
        },
        "Sample": "",
        "GasInjectionSystems": "",
        "CustomProperties": custom,
    }


def _write_velox_emd(a: Acquisition, data: np.ndarray) -> None:
    """Velox EMD as h5py sees the real files: /Data/Image/<uuid>/{Data (H,W,frames), Metadata (JSON bytes, n x 1)}."""
    ids = np.random.default_rng(a.seed + 2)
    image_id, text_id = ids.bytes(16).hex(), ids.bytes(16).hex()
    text = h5py.string_dtype()
    frames = data[..., None]
    metadata = np.zeros((60000, 1), dtype=np.uint8)  # Velox pads the JSON to a fixed 60000 bytes
    encoded = np.frombuffer(json.dumps(_velox_metadata(a, data), indent=4).encode(), dtype=np.uint8)
    metadata[: len(encoded), 0] = encoded
    started = a.acquired_at_local  # the log is written in the microscope PC's local time
    log = "".join(
        f"{(started + dt.timedelta(seconds=delay)):%Y-%m-%d %H:%M:%S} {what} acquisition for experiment of type "
        f"{'Stem' if a.mode == 'STEM' else 'Camera'}\n"
        for delay, what in ((0, "Started"), (2, "Finished"))
    )
    with h5py.File(a.path, "w") as handle:
        group = handle.create_group(f"Data/Image/{image_id}")
        group.create_dataset("Data", data=frames, chunks=frames.shape, maxshape=(*frames.shape[:2], None))
        group.create_dataset("Metadata", data=metadata, chunks=metadata.shape, maxshape=(60000, None))
        group.create_dataset("FrameLookupTable", data=np.zeros(1, np.uint32), maxshape=(None,))
        quoted = json.dumps({"text": log.replace(" ", "%20").replace(":", "%3A").replace("\n", "%0A")})
        handle.create_dataset(f"Data/Text/{text_id}", data=[quoted], dtype=text)
        handle.create_dataset("Experiment", data=[json.dumps({"log": f"/Data/Text/{text_id}"})], dtype=text)
        handle.create_dataset("Version", data=['{\n    "version": "8",\n    "format": "Velox"\n}\n'], dtype=text)
        handle.create_dataset("Info", data=['{\n    "applicationVersion": "2.11.0.899"\n}\n'], dtype=text)


def _scale_bar(field_width_nm: float, width_px: int) -> tuple[int, str]:
    """A round length near a fifth of the field of view, in pixels, with its label."""
    target = field_width_nm / 5
    exponent = 10 ** np.floor(np.log10(target))
    length_nm = max(step * exponent for step in (1, 2, 5) if step * exponent <= target)
    label = f"{length_nm / 1000:g} um" if length_nm >= 1000 else f"{length_nm:g} nm"
    return round(length_nm / field_width_nm * width_px), label


def _write_fei_tiff(a: Acquisition, image8: np.ndarray) -> None:
    """FEI/Thermo SEM TIFF: an INI text in private tag 34682 (FEI_HELIOS) and a databar under the image."""
    height, width = image8.shape
    pixel_m = a.pixel_size_nm * 1e-9
    field_width_m = pixel_m * width  # equals 0.127 m / magnification: FEI files store no magnification
    moment = a.acquired_at_local
    working_distance_m = float(np.random.default_rng(a.seed + 3).uniform(3.8, 4.3)) * 1e-3
    sections = {
        "User": {"Date": f"{moment:%m/%d/%Y}", "Time": f"{moment:%I:%M:%S %p}", "User": a.user, "UserText": ""},
        "System": {
            "Type": "DualBeam",
            "Source": "FEG",
            "Column": "Elstar",
            "FinalLens": "Elstar",
            "Chamber": "xT-SDB",
            "Stage": "5AxesMotorized",
            "Scan": "PIA 2.0",
            "Acq": "PIA 2.0",
            "EucWD": "0.004",
            "SystemType": "Helios NanoLab 660",
            "DisplayWidth": "0.124",
            "DisplayHeight": "0.0931",
        },
        "Beam": {"HV": f"{a.voltage_kv * 1e3:g}", "Beam": "EBeam", "Scan": "EScan", "ImageMode": "Normal"},
        "EBeam": {
            "Source": "FEG",
            "ColumnType": "Elstar",
            "HV": f"{a.voltage_kv * 1e3:g}",
            "HFW": repr(field_width_m),
            "VFW": repr(pixel_m * height),
            "WD": repr(working_distance_m),
            "BeamCurrent": "1.0000000000000001e-10",
            "BeamMode": "1",
        },
        "Scan": {
            "InternalScan": "true",
            "Dwelltime": "1e-06",
            "PixelWidth": repr(pixel_m),
            "PixelHeight": repr(pixel_m),
            "HorFieldsize": repr(field_width_m),
            "VerFieldsize": repr(pixel_m * height),
            "FrameTime": f"{1e-6 * width * height:g}",
        },
        "Stage": {
            "StageX": "0.00213",
            "StageY": "-0.00102",
            "StageZ": repr(working_distance_m),
            "StageR": "0",
            "StageT": "0.9076",
            "WorkingDistance": repr(working_distance_m),
        },
        "Image": {
            "ResolutionX": str(width),
            "ResolutionY": str(height),
            "DigitalContrast": "1",
            "MagCanvasRealWidth": "0.127",
            "MagnificationMode": "4",
            "ZoomFactor": "1",
        },
        "Detectors": {"Number": "1", "Name": a.detector, "Mode": "SE"},
    }
    text = "\r\n".join(
        f"[{section}]\r\n" + "\r\n".join(f"{key}={value}" for key, value in entries.items()) + "\r\n"
        for section, entries in sections.items()
    )
    bar_px, bar_label = _scale_bar(field_width_m * 1e9, width)
    fields = [
        f"HV {a.voltage_kv:.2f} kV",
        f"mag {a.magnification:,.0f} x".replace(",", " "),
        f"HFW {field_width_m * 1e6:.2f} um",
        f"det {a.detector}",
        f"WD {working_distance_m * 1e3:.1f} mm",
    ]
    image = with_databar(image8, fields, bar_px, bar_label)
    tifffile.imwrite(a.path, image, extratags=[(34682, "s", 0, text, True)])


def _zeiss_magnification(value: float) -> str:
    return f"{value / 1e3:.2f} K X" if value >= 1e3 else f"{value:.0f} X"


def _write_zeiss_tiff(a: Acquisition, image8: np.ndarray) -> None:
    """Zeiss SmartSEM TIFF: 'AP_KEY' lines each followed by 'Label = value unit' in private tag 34118 (CZ_SEM)."""
    width = image8.shape[1]
    moment = a.acquired_at_local
    working_distance_mm = float(np.random.default_rng(a.seed + 3).uniform(2.5, 6.0))
    entries = [
        ("SV_SERIAL_NUMBER", "Serial No. = GeminiSEM 500"),
        ("SV_USER_NAME", f"User Name = {a.user}"),
        ("AP_MAG", f"Mag = {_zeiss_magnification(a.magnification)}"),
        ("AP_ACTUALKV", f"EHT = {a.voltage_kv:.2f} kV"),
        ("AP_MANUALKV", f"EHT Target = {a.voltage_kv:.2f} kV"),
        ("AP_WD", f"WD = {working_distance_mm:.1f} mm"),
        ("AP_PIXEL_SIZE", f"Pixel Size = {a.pixel_size_nm:.4g} nm"),
        ("AP_IPROBE", "I Probe = 200.0 pA"),
        ("DP_DETECTOR_CHANNEL", f"Signal A = {a.detector}"),
        ("DP_DETECTOR_TYPE", f"Detector = {a.detector}"),
        ("DP_SCANRATE", "Scan Speed = 7"),
        ("AP_DATE", f"Date :{moment:%d %b %Y}"),
        ("AP_TIME", f"Time :{moment:%H:%M:%S}"),
    ]
    text = "0\r\n0\r\n" + "".join(f"{key}\r\n{line}\r\n" for key, line in entries)
    bar_px, bar_label = _scale_bar(a.pixel_size_nm * width, width)
    fields = [
        f"EHT = {a.voltage_kv:.2f} kV",
        f"WD = {working_distance_mm:.1f} mm",
        f"Signal A = {a.detector}",
        f"Mag = {_zeiss_magnification(a.magnification)}",
        f"Date :{moment:%d %b %Y}",
    ]
    image = with_databar(image8, fields, bar_px, bar_label)
    tifffile.imwrite(a.path, image, extratags=[(34118, "s", 0, text, True)])


def _write_mrc(a: Acquisition, data: np.ndarray) -> None:
    """MRC through ncempy: the header holds the voxel size in ångström and nothing else a catalog could use."""
    voxel_a = a.pixel_size_nm * 10
    mrc.mrcWriter(str(a.path), np.ascontiguousarray(data), (voxel_a, voxel_a, voxel_a))
    if not a.path.exists() or a.path.stat().st_size < 1024 + data.nbytes:
        raise RuntimeError(f"ncempy could not write '{a.path}' (dtype {data.dtype})")
