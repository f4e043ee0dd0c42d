"""A record of what was changed: the provenance every output of ``repair``, ``detect`` and
``auto`` (and the napari widget's **Save result...**) carries.

The record is a JSON object (:data:`FORMAT` 1) saying which sections were repaired, with how
many damaged pixels and the mean confidence of each; where the mask came from
(``"file"``, ``"detected"``, ``"painted"`` or ``"none"``); the software version; the weights
(file name and SHA-256); the repair mode and options; the input (its path and a checksum of
its metadata: shape, dtype, voxel size, size and modification time, never of its data, which
would take a read of the whole stack); the date and the host.

It is stored with the output and beside it:

* zarr and OME-Zarr: the attribute ``flowinpaint_provenance`` of the store's root (the
  OME-Zarr group, where the ``ome`` metadata are);
* TIFF (and every format written by :class:`~napari_flowinpaint.tasks.io.StackWriter`): its
  description (ImageJ ``Info``, shown by Fiji's *Image > Show Info*, or the TIFF
  description tag), the JSON after the line :data:`HEADER`;
* every format: a sidecar ``<output>.provenance.json`` (:func:`sidecar_path`).

:func:`read_provenance` finds it again (the sidecar first); the QC report
(:mod:`.qc_report`) is made from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from .io.targets import SECTIONS_JSON, stack_file

__all__ = ["ATTRIBUTE", "FORMAT", "HEADER", "SIDECAR_SUFFIX", "describe", "detect_record",
           "mask_record", "new_record", "painted_record", "parse_description",
           "read_provenance", "repair_record", "section_rows", "sidecar_path",
           "source_metadata", "stamp", "weights_record", "write_sidecar"]

#: Version of the record's layout.
FORMAT = 1
#: The zarr attribute holding the record.
ATTRIBUTE = "flowinpaint_provenance"
#: What the sidecar's name adds to the output's.
SIDECAR_SUFFIX = ".provenance.json"
#: The line before the record's JSON in a description (TIFF).
HEADER = "napari-flowinpaint provenance (JSON):"


def sidecar_path(output) -> Path:
    """Where the sidecar of ``output`` goes: ``<output>.provenance.json`` beside it (beside
    the file for an HDF5 output ``file.h5:/dataset``, the folder for ``out/*.png``)."""
    file = stack_file(output)
    return file.with_name(file.name + SIDECAR_SUFFIX)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sha256_text(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def source_metadata(source, stack, voxel_size=None) -> dict:
    """What identifies a stack without reading it: its absolute path, shape, dtype, voxel
    size, size on disk and modification time, and ``metadata_sha256``, the SHA-256 of these
    (``source`` None: a stack in memory, without path, size and time).

    A folder's (zarr, sections) size and time are those of its own entries (one listing,
    not a walk of every chunk): a store rewritten chunk by chunk keeps them, a replaced one
    does not. A URL (:mod:`.io.remote`) is recorded as it is, without size and time.
    """
    from .io.formats import absolute_source, split_format
    from .io.remote import is_url

    file = None if source is None or is_url(split_format(source)[1]) else stack_file(source)
    size = mtime = None
    try:
        if file is not None:
            st = file.stat()
            size, mtime = st.st_size, st.st_mtime
            if file.is_dir():
                entries = [e.stat() for e in os.scandir(file)]
                size = sum(e.st_size for e in entries)
                mtime = max([mtime, *(e.st_mtime for e in entries)])
    except OSError:
        pass
    meta = {"path": None if source is None else absolute_source(source),
            "shape": [int(s) for s in stack.shape],
            "dtype": str(stack.dtype),
            "voxel_size_nm": None if voxel_size is None else [float(v) for v in voxel_size],
            "size_bytes": size,
            "modified": None if mtime is None else datetime.fromtimestamp(
                mtime, timezone.utc).isoformat(timespec="seconds")}
    meta["metadata_sha256"] = _sha256_text(meta)
    return meta


def weights_record(path) -> dict | None:
    """The name, path and SHA-256 of a weights file (None without one)."""
    if path is None:
        return None
    from .fingerprints import file_digest

    path = Path(path).resolve()
    return {"name": path.name, "path": str(path),
            "sha256": file_digest(path, algorithm="sha256")}


def new_record(command: str, output, *, kind: str, options: dict | None = None) -> dict:
    """The record's common part: the format, the software, what made it (``command``), the
    output (its absolute path and ``kind``: ``"repaired stack"``, ``"confidence map"``,
    ``"damage mask"``), the date (UTC) and the host, and ``options``."""
    from .. import __version__
    from .io.formats import absolute_source

    return {"provenance_format": FORMAT,
            "software": {"name": "napari-flowinpaint", "version": __version__},
            "command": command, "output": {"path": absolute_source(output), "kind": kind},
            "date": _now(), "host": socket.gethostname(), "options": dict(options or {})}


def section_rows(pixels: dict, confidence: dict | None = None, **extra: dict) -> list[dict]:
    """The record's ``sections``: one row per section in z order, ``{"z", "damaged_pixels",
    "mean_confidence"}`` (the mean over its damaged pixels; None when not measured), and a
    value from each of ``extra`` (``name={z: value}``)."""
    confidence = confidence or {}
    rows = []
    for z in sorted(int(z) for z in pixels):
        row = {"z": z, "damaged_pixels": int(pixels[z])}
        if z in confidence:
            c = confidence[z]
            row["mean_confidence"] = None if c is None else round(float(c), 6)
        row.update({k: v[z] for k, v in extra.items() if z in v})
        rows.append(row)
    return rows


def mask_record(source: str, mask=None, masks=None) -> dict:
    """The record's ``mask``: where it came from (``source``), its path and metadata, and,
    when the mask file carries the record of the detection that made it, what that was
    (command, date, options and detector weights)."""
    out: dict = {"source": source, "path": None}
    if mask is None:
        return out
    from .io.formats import absolute_source

    out.update(source_metadata(mask, masks) if masks is not None else
               {"path": absolute_source(mask)})
    try:
        made = read_provenance(mask)
    except (OSError, ValueError):
        made = None
    if made is not None and made.get("command") == "detect":
        out["detection"] = {k: made.get(k) for k in
                            ("date", "software", "options", "detector", "input")}
    return out


def repair_record(output, *, input, stack, voxel, mask, masks, mask_source: str,
                  pixels: dict, means: dict, weights, confidence, options: dict,
                  resumed: int = 0, unmasked=(), command: str = "repair") -> dict:
    """The record of a repair into ``output``: the sections repaired (``pixels``, their
    damaged pixel counts, and ``means``, their mean confidences), the input (``stack``, read
    from ``input``, of voxel size ``voxel``), the mask, the weights file used (None: the
    optical flow alone), the confidence map's path (or None) and the ``options``;
    ``summary`` counts them, with the sections kept from an interrupted run (``resumed``)
    and those asked for whose mask is empty (``unmasked``)."""
    from .io.formats import absolute_source

    record = new_record(command, output, kind="repaired stack", options=options)
    record.update(
        input=source_metadata(input, stack, voxel), mask=mask_record(mask_source, mask, masks),
        weights=weights_record(weights),
        confidence_map=None if confidence is None else absolute_source(confidence),
        sections=section_rows(pixels, means),
        summary={"sections": int(stack.shape[0]), "repaired": len(pixels),
                 "damaged_pixels": int(sum(pixels.values())),
                 "resumed_from_earlier_run": int(resumed),
                 "unmasked": [int(z) for z in unmasked]})
    return record


def painted_record(output, *, source, name: str, stack, voxel, mask: dict, pixels: dict,
                   means: dict, engine) -> dict:
    """The record of a stack saved by the napari widget: the sections repaired there
    (``pixels``, ``means``), the image (its file ``source``, None when it has none, and its
    layer ``name``), the ``mask`` (:func:`mask_record`'s, from the layer) and the settings
    of ``engine``, the widget's :class:`~napari_flowinpaint.engine.FlowInpainter` (None
    when nothing was repaired)."""
    options = {} if engine is None else {
        "stages": engine.method, "flow_method": engine.flow_method, "mode": engine.mode,
        "method": engine.method, "device_used": str(engine.device)}
    weights = getattr(getattr(engine, "weights", None), "path", None)
    record = new_record("napari", output, kind="repaired stack", options=options)
    record.update(
        input=dict(source_metadata(source, stack, voxel), layer=name), mask=mask,
        weights=weights_record(weights), confidence_map=None,
        sections=section_rows(pixels, means),
        summary={"sections": int(stack.shape[0]), "repaired": len(pixels),
                 "damaged_pixels": int(sum(pixels.values())), "resumed_from_earlier_run": 0,
                 "unmasked": []})
    return record


def detect_record(output, *, input, stack, voxel, rows: dict, options: dict,
                  weights) -> dict:
    """The record of a detection into the mask ``output``: the sections found damaged
    (``rows``, ``{z: report row}``, with their damaged pixel counts, regions and whether
    they were flagged), the input, the ``options`` and the ``weights`` file of the
    detector."""
    area = int(stack.shape[1]) * int(stack.shape[2])
    found = {z: int(round(r["damaged_fraction"] * area)) for z, r in rows.items()
             if r["damaged_fraction"] > 0}
    record = new_record("detect", output, kind="damage mask", options=options)
    record.update(
        input=source_metadata(input, stack, voxel), detector=weights_record(weights),
        sections=section_rows(found, regions={z: int(rows[z]["regions"]) for z in found},
                              flagged={z: bool(rows[z]["flagged"]) for z in found}),
        summary={"sections": int(stack.shape[0]), "damaged": len(found),
                 "flagged": sum(bool(r["flagged"]) for r in rows.values()),
                 "damaged_pixels": int(sum(found.values()))})
    return record


def describe(record: dict, head: str | None = None) -> str:
    """The record as a description: ``head`` (a line saying what the data are), then
    :data:`HEADER`, then the JSON (ASCII, as TIFF wants)."""
    text = f"{HEADER}\n{json.dumps(record, indent=1)}"
    return f"{head}\n{text}" if head else text


def parse_description(text) -> dict | None:
    """The record in a description written by :func:`describe`, or None."""
    if not isinstance(text, str) or HEADER not in text:
        return None
    try:
        record = json.loads(text.split(HEADER, 1)[1])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def stamp(target, record: dict, head: str | None = None) -> None:
    """Put ``record`` into an output being written, before it is committed: a
    :class:`~napari_flowinpaint.tasks.parallel.ResumableStore` (its root's attribute
    :data:`ATTRIBUTE`) or a :class:`~napari_flowinpaint.tasks.io.StackWriter` (its
    description, after ``head``)."""
    if hasattr(target, "annotate"):
        target.annotate(root=True, **{ATTRIBUTE: record})
    else:
        target.description = describe(record, head)


def write_sidecar(output, record: dict, *, protect=()) -> Path:
    """Write ``record`` to ``<output>.provenance.json`` (atomically; an old one is replaced:
    it belongs to the output just written).

    Raises
    ------
    OSError
        Saying that the output is written and carries the record, but its sidecar could not
        be written (a full disk, a read-only folder).
    """
    from ..engine.files import write_text

    path = sidecar_path(output)
    try:
        return write_text(path, json.dumps(record, indent=1) + "\n", overwrite=True,
                          protect=protect, what="provenance sidecar")
    except OSError as exc:
        raise type(exc)(exc.errno, f"{output} is written (and its provenance is stored in "
                        f"it), but its sidecar {str(path)!r} could not be: {exc.strerror or exc}"
                        ) from exc


def read_provenance(output) -> dict | None:
    """The provenance record of ``output``: its sidecar's, else the one stored in it (zarr
    attributes, TIFF description); None when it has none.

    Raises
    ------
    FileNotFoundError
        Neither ``output`` nor its sidecar exists.
    ValueError
        The sidecar is not a record (not JSON, or not an object).
    """
    sidecar = sidecar_path(output)
    if sidecar.is_file():
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"the provenance sidecar {str(sidecar)!r} is not valid JSON "
                             f"({exc}); restore it, or delete it to use the record stored in "
                             "the output.") from exc
        if not isinstance(record, dict):
            raise ValueError(f"the provenance sidecar {str(sidecar)!r} holds no record.")
        return record
    file = stack_file(output)
    if not file.exists():
        raise FileNotFoundError(f"{str(output)!r} does not exist (nor its sidecar "
                                f"{str(sidecar)!r}).")
    return _embedded(file)


def _embedded(file: Path) -> dict | None:
    """The record stored in the output ``file`` (its description, or zarr attribute)."""
    suffix = file.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(file) as tif:
            texts = [(tif.imagej_metadata or {}).get("Info")]
            page = tif.pages[0]
            texts += [getattr(page, n, None) for n in ("description", "description1")]
        return next((r for r in map(parse_description, texts) if r is not None), None)
    if suffix == ".zarr":
        import zarr

        try:
            attrs = dict(zarr.open(store=str(file), mode="r").attrs)
        except Exception:  # noqa: BLE001 - zarr raises several kinds for "not a store"
            return None
        record = attrs.get(ATTRIBUTE)
        return record if isinstance(record, dict) else parse_description(
            attrs.get("description"))
    if file.is_dir() and (file / SECTIONS_JSON).is_file():  # a folder of sections
        try:
            meta = json.loads((file / SECTIONS_JSON).read_text(encoding="utf-8"))
        except ValueError:
            return None
        return parse_description(meta.get("description")) if isinstance(meta, dict) else None
    if suffix in (".h5", ".hdf5", ".hdf"):
        import h5py

        found = []
        with h5py.File(file, "r") as f:  # each dataset's (the one written has it)
            f.visititems(lambda _, node: found.append(node.attrs.get("description"))
                         if isinstance(node, h5py.Dataset) else None)
        texts = [t.decode() if isinstance(t, bytes) else t for t in found]
        return next((r for r in map(parse_description, texts) if r is not None), None)
    return None
