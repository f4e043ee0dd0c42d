"""Write the QC report of a repaired stack: one HTML file, from its provenance record.

``napari-flowinpaint report OUTPUT`` reads the record that ``repair`` and ``auto`` store with
their outputs (and beside them, ``OUTPUT.provenance.json``) and the stacks it names, and
writes ``<stem>-qc.html`` beside OUTPUT: what was done (version, weights, options), a table of
the repaired sections lowest confidence first, and contact sheets (above, damaged with its
mask outlined, repair, confidence, below). The work is
:func:`napari_flowinpaint.tasks.qc_report.write_qc_report`.
"""

from __future__ import annotations

from .common import ProgressBar

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    from ..qc_report import DEFAULT_SHEETS, DEFAULT_SIZE

    parser.add_argument("output", metavar="OUTPUT",
                        help="a stack written by repair or auto (any output format)")
    parser.add_argument("-o", "--html", default=None, metavar="HTML",
                        help="the report to write (default: OUTPUT's name-qc.html beside it)")
    parser.add_argument("--max-sheets", type=int, default=DEFAULT_SHEETS, metavar="N",
                        help=f"at most N contact sheets, lowest confidence first (default "
                             f"{DEFAULT_SHEETS}; the table lists every section)")
    parser.add_argument("--sections", default=None, metavar="LIST",
                        help="the contact sheets of these sections instead, e.g. '3,7-9'")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, metavar="PX",
                        help=f"longest side of a picture in pixels (default {DEFAULT_SIZE})")
    parser.add_argument("--overwrite", action="store_true", help="replace HTML if it exists")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..qc_report import write_qc_report

    with ProgressBar("report", "sheets", disable=args.no_progress) as bar:
        done = write_qc_report(args.output, args.html, max_sheets=args.max_sheets,
                               size=args.size, sections=args.sections,
                               overwrite=args.overwrite, progress=bar)
    print(f"wrote {done.path}: {len(done.sections)} repaired section(s), "
          f"{len(done.sheets)} contact sheet(s), lowest confidence first")
    for note in done.notes:
        print(f"note: {note}")
    return 0
