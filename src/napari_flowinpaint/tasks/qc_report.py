"""The QC report of a repaired stack: one self-contained HTML file made from the provenance
record the output carries (:mod:`.provenance`) and the stacks it names, read one section at
a time.

At the top, what was done (the software, the weights and their SHA-256, the mode and options,
the input and the mask); then a table of the repaired sections, their damaged area and mean
confidence, lowest confidence first; then one contact sheet per section, in that order (the
section above, the damaged section with its mask outlined, the repair, its confidence map
when the run wrote one, the section below; :mod:`.qc_sheets`), pictures shrunk to at most
``size`` pixels a side and embedded in the file (base64 PNG), so that the report is one file
to archive, mail or attach to a methods section, and cannot lose its pictures. The number of
sheets is capped (``max_sheets``, the sections of lowest confidence first); the report says
so, and the table still lists every section.

What ``napari-flowinpaint report`` runs, and ``auto`` by default.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io.targets import stack_file, written_stack
from .provenance import read_provenance, source_metadata
from .qc_sheets import (
    confidence_panel,
    contact_sheet,
    grey_panel,
    grey_range,
    outline_panel,
    shrink,
)

__all__ = ["DEFAULT_SHEETS", "DEFAULT_SIZE", "QCReport", "qc_report_path", "write_qc_report"]

#: Contact sheets in a report unless told otherwise (0.1-0.3 MB each at 256 px, on EM).
DEFAULT_SHEETS = 30
#: The longest side of a picture, in pixels.
DEFAULT_SIZE = 256


@dataclass
class QCReport:
    """What :func:`write_qc_report` wrote.

    Attributes
    ----------
    path : Path
        The HTML file.
    sections : list of dict
        The table's rows (the record's sections: ``z``, ``damaged_pixels``,
        ``mean_confidence``), in the report's order: lowest confidence first.
    sheets : list of int
        The sections shown in contact sheets, in order.
    notes : list of str
        What the report says about itself (sheets capped, a file missing or changed).
    """

    path: Path
    sections: list[dict]
    sheets: list[int]
    notes: list[str] = field(default_factory=list)


def qc_report_path(output) -> Path:
    """The report's default path: ``<stem>-qc.html`` beside ``output`` (``fixed.ome.zarr``
    -> ``fixed-qc.html``, as ``auto`` names its mask and CSV report)."""
    file = stack_file(output)
    return file.with_name(f"{file.name.split('.')[0]}-qc.html")


def _order(row: dict):
    c = row.get("mean_confidence")
    return (c is None, c if c is not None else 0.0, -row["damaged_pixels"], row["z"])


def _open(path, name: str, shape, notes: list, *, sparse: bool = False):
    """The stack at ``path`` as the record names it, or None (and a note) when it is gone or
    no longer of the output's shape."""
    from .io import read_stack

    if path is None:
        return None
    try:
        stack = read_stack(path, name=name, sparse=sparse)
    except (OSError, ValueError) as exc:
        notes.append(f"The {name} {path} could not be read ({exc}); its pictures are left "
                     "out.")
        return None
    if list(stack.shape) != list(shape):
        notes.append(f"The {name} {path} has shape {tuple(stack.shape)}, not the repaired "
                     f"stack's {tuple(shape)}: it was replaced since; its pictures are left out.")
        return None
    return stack


def write_qc_report(output, html_path=None, *, max_sheets: int = DEFAULT_SHEETS,
                    size: int = DEFAULT_SIZE, sections=None, overwrite: bool = False,
                    progress: Callable[[int, int], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> QCReport:
    """Write the QC report of a repaired stack (see the module's description).

    Parameters
    ----------
    output : str or Path
        A stack written by ``repair`` or ``auto`` (any output format): its provenance record
        (its sidecar, or the one stored in it) names the input, the mask and the confidence
        map, read one section at a time.
    html_path : str or Path, optional
        Where the report goes; default :func:`qc_report_path`.
    max_sheets : int, keyword-only
        At most this many contact sheets, the sections of lowest confidence first.
    size : int, keyword-only
        The longest side of a picture, in pixels (bigger sections are shrunk by an integer
        factor, block means).
    sections : str or sequence of int, optional, keyword-only
        Show these sections' sheets instead (``"3,7-9"``; repaired ones only).
    overwrite : bool, keyword-only
        Replace an existing report.
    progress : callable(done, total), keyword-only
        Called after each contact sheet.
    should_stop : callable() -> bool, keyword-only
        Polled between sheets; True raises :class:`KeyboardInterrupt` (nothing is written).

    Returns
    -------
    QCReport

    Raises
    ------
    ValueError
        ``output`` carries no record, or the record is not a repair's.
    """
    from ..engine.files import check_output_path, write_text
    from .io import read_stack
    from .repair import format_slices, parse_slices

    if int(max_sheets) < 0 or int(size) < 16:
        raise ValueError(f"max_sheets must be >= 0 and size >= 16 pixels, got {max_sheets} "
                         f"and {size}.")
    record = read_provenance(output)
    if record is None:
        raise ValueError(f"{str(output)!r} carries no provenance record (no sidecar "
                         f"{stack_file(output).name}.provenance.json, nothing stored in it): a "
                         "QC report is made from the record that repair and auto write with "
                         "their outputs. Repair the stack with this version to get one.")
    kind = record.get("output", {}).get("kind")
    if kind != "repaired stack":
        raise ValueError(f"{str(output)!r} is a {kind or 'stack of unknown kind'}, not a "
                         "repaired stack; give the repaired stack its record names, "
                         f"{record.get('output', {}).get('path')!r} for a repair.")
    source = record["input"]
    html_path = Path(html_path) if html_path is not None else qc_report_path(output)
    check_output_path(html_path, protect=(stack_file(output), stack_file(source["path"])),
                      overwrite=overwrite, what="QC report")
    notes: list[str] = []
    out = read_stack(written_stack(output), name="output")
    shape = source["shape"]
    if list(out.shape) != list(shape):
        raise ValueError(f"{str(output)!r} has shape {tuple(out.shape)}, but its record says "
                         f"{tuple(shape)}: the record belongs to another stack.")
    inp = _open(source["path"], "input", shape, notes)
    if inp is not None:
        from .io import read_voxel_size

        now = source_metadata(source["path"], inp, read_voxel_size(source["path"]))
        if now["metadata_sha256"] != source.get("metadata_sha256"):
            notes.append("The input's size or modification time changed since the repair: the "
                         "damaged sections are shown as the input is now.")
    mask = _open(record["mask"].get("path"), "mask", shape, notes, sparse=True)
    conf = _open(record.get("confidence_map"), "confidence map", shape, notes)
    rows = sorted(record["sections"], key=_order)
    if sections is not None:
        wanted = set(parse_slices(sections, shape[0]) if isinstance(sections, str)
                     else (int(z) for z in sections))
        chosen = [r["z"] for r in rows if r["z"] in wanted]
        if not chosen:
            raise ValueError(f"none of the sections {format_slices(wanted)} was repaired; "
                             f"repaired: {format_slices(r['z'] for r in rows) or 'none'}.")
    else:
        chosen = [r["z"] for r in rows[:int(max_sheets)]]
        if len(rows) > len(chosen):
            notes.append(f"Contact sheets of the {len(chosen)} sections of lowest confidence "
                         f"only, of {len(rows)} repaired; the table lists them all. Make "
                         "others with 'napari-flowinpaint report OUTPUT --sections LIST' or "
                         "--max-sheets N.")
    sheets = {}
    for i, z in enumerate(chosen):
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt
        sheets[z] = _sheet(z, out, inp, mask, conf, size)
        if progress is not None:
            progress(i + 1, len(chosen))
    from .qc_html import report_html

    text = report_html(record, rows, sheets, notes, output=output, panels=4 + (conf is not None),
                       factor=max(1, -(-max(shape[1:]) // int(size))))
    write_text(html_path, text, overwrite=overwrite, what="QC report")
    return QCReport(html_path, rows, chosen, notes)


def _sheet(z: int, out, inp, mask, conf, size: int) -> str:
    """The contact sheet of section ``z`` as a base64 PNG."""
    n = out.shape[0]
    repaired = np.asarray(out[z])
    m = None if mask is None else np.asarray(mask[z]) != 0
    grey = grey_range(repaired, m)

    def panel(stack, k):
        return None if stack is None or not 0 <= k < n else grey_panel(
            shrink(np.asarray(stack[k]), size), grey)

    small = None if m is None else shrink(m, size, reduce="max")
    damaged = panel(inp if inp is not None else out, z)
    if small is not None:
        damaged = outline_panel(damaged, small)
    fixed = grey_panel(shrink(repaired, size), grey)
    row = [panel(out, z - 1), damaged, fixed]
    if conf is not None:
        row.append(confidence_panel(fixed, shrink(np.asarray(conf[z]), size), small))
    row.append(panel(out, z + 1))
    return base64.b64encode(contact_sheet(row)).decode("ascii")
