"""The text of the QC report (:mod:`.qc_report`): one HTML page, its pictures embedded, no
script and nothing fetched from elsewhere (it opens offline, in any browser)."""

from __future__ import annotations

from html import escape

__all__ = ["methods_text", "report_html"]

#: A mean confidence below this is marked in the table (0.5: about 6 % of the grey range
#: expected wrong, :data:`~napari_flowinpaint.engine.confidence.HALF_CONFIDENCE_ERROR`).
_LOW = 0.5

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.low td { background: #fde2e2; }
code { font-size: 0.9em; word-break: break-all; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; image-rendering: pixelated; }
figcaption { margin-bottom: 0.3em; } .note { color: #8a4b00; } .methods { background: #f7f7f7;
padding: 0.6em 1em; border-left: 3px solid #bbb; }
"""


def _fmt_conf(value) -> str:
    return "&ndash;" if value is None else f"{value:.3f}"


def _kv(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _code(value) -> str:
    return f"<code>{escape(str(value))}</code>"


def _weights(w) -> str:
    if not w:
        return "none (the optical-flow interpolation alone)"
    return f"{escape(w['name'])}<br>SHA-256 {_code(w['sha256'])}<br>{_code(w['path'])}"


def _options(options: dict) -> str:
    return ", ".join(f"{escape(str(k))} = {escape(str(v))}" for k, v in options.items())


def methods_text(record: dict) -> str:
    """A sentence for a methods section: what was repaired, with what."""
    s, o = record["summary"], record["options"]
    w = record.get("weights")
    total = s["sections"]
    source = {"detected": "detected automatically", "painted": "painted by hand",
              "file": "given as a mask stack"}.get(record["mask"]["source"],
                                                   record["mask"]["source"])
    made = (f"weights {w['name']} (SHA-256 {w['sha256'][:12]}...)" if w
            else "optical-flow interpolation only")
    return (f"{s['repaired']} of {total} sections ({s['damaged_pixels']:,} damaged pixels, "
            f"whose extent was {source}) were repaired from their neighbouring sections with "
            f"napari-flowinpaint {record['software']['version']} ({o.get('method')} stage, "
            f"{o.get('mode')} mode, {made}).")


def _provenance(record: dict) -> str:
    src, mask = record["input"], record["mask"]
    voxel = src.get("voxel_size_nm")
    rows = [("Output", f"{_code(record['output']['path'])}"),
            ("Input", f"{_code(src['path'])}<br>shape {tuple(src['shape'])}, {src['dtype']}"
                      + (f", voxel size {' x '.join(f'{v:g}' for v in voxel)} nm"
                         if voxel else "")
                      + f"<br>metadata SHA-256 {_code(src['metadata_sha256'])}"),
            ("Mask", f"{escape(mask['source'])}"
                     + (f": {_code(mask['path'])}" if mask.get("path") else ""))]
    detection = mask.get("detection")
    if detection:
        d = detection.get("detector") or {}
        rows.append(("Detection", f"{_options(detection.get('options') or {})}<br>detector "
                                  f"{escape(d.get('name', '?'))}, SHA-256 "
                                  f"{_code(d.get('sha256', '?'))}"))
    rows += [("Weights", _weights(record.get("weights"))),
             ("Options", _options(record["options"])),
             ("Confidence map", _code(record["confidence_map"]) if record.get("confidence_map")
              else "not written (<code>repair --confidence</code> writes one)"),
             ("Software", f"{escape(record['software']['name'])} "
                          f"{escape(record['software']['version'])}"),
             ("Date, host", f"{escape(record['date'])}, {escape(record['host'])}")]
    resumed = record["summary"].get("resumed_from_earlier_run")
    if resumed:
        rows.append(("Resumed", f"{resumed} section(s) were finished by an earlier, "
                                "interrupted run of the same command"))
    return _kv(rows)


def _table(rows: list[dict], area: int, sheets: dict) -> str:
    head = ("<tr><th>#</th><th>section</th><th>damaged pixels</th><th>% of section</th>"
            "<th>mean confidence</th><th>sheet</th></tr>")
    body = []
    for i, r in enumerate(rows, 1):
        c = r.get("mean_confidence")
        low = ' class="low"' if c is not None and c < _LOW else ""
        link = f'<a href="#z{r["z"]}">view</a>' if r["z"] in sheets else ""
        body.append(f"<tr{low}><td class=num>{i}</td><td class=num>{r['z']}</td>"
                    f"<td class=num>{r['damaged_pixels']:,}</td>"
                    f"<td class=num>{100 * r['damaged_pixels'] / area:.2f}</td>"
                    f"<td class=num>{_fmt_conf(c)}</td><td>{link}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _sheets(rows: list[dict], sheets: dict, area: int, panels: int, factor: int) -> str:
    if not sheets:
        return "<p>No contact sheet.</p>"
    names = ["the section above (repaired output)", "the damaged section, its mask outlined "
             "in red", "the repair"]
    if panels == 5:
        names.append("its confidence on the damaged pixels (red: least sure, yellow, pale: "
                     "reliable)")
    names.append("the section below (repaired output)")
    shrunk = f", shrunk {factor}x" if factor > 1 else ""
    parts = [f"<p>Left to right: {'; '.join(names)}. One grey scale per row{shrunk}; a "
             "grey panel: no section there.</p>"]
    by_z = {r["z"]: r for r in rows}
    for z, png in sheets.items():
        r = by_z[z]
        text = (f"Section {z}: {r['damaged_pixels']:,} damaged pixels "
                f"({100 * r['damaged_pixels'] / area:.2f} %), mean confidence "
                f"{_fmt_conf(r.get('mean_confidence'))}")
        parts.append(f'<figure id="z{z}"><figcaption>{text}</figcaption>'
                     f'<img src="data:image/png;base64,{png}" alt="{escape(text)}"></figure>')
    return "".join(parts)


def report_html(record: dict, rows: list[dict], sheets: dict, notes: list[str], *, output,
                panels: int, factor: int) -> str:
    """The page: the record's ``rows`` (in the report's order), ``sheets`` (``{z: base64
    PNG}``, in order), ``notes``; ``panels`` per sheet, shrunk ``factor`` times."""
    shape = record["input"]["shape"]
    area = int(shape[1]) * int(shape[2])
    s = record["summary"]
    name = escape(str(output))
    lowest = next((r for r in rows if r.get("mean_confidence") is not None), None)
    lead = (f"{s['repaired']} of {s['sections']} sections repaired, "
            f"{s['damaged_pixels']:,} damaged pixels in all"
            + (f"; lowest mean confidence {lowest['mean_confidence']:.3f} (section "
               f"{lowest['z']})" if lowest else "") + ".")
    note_html = "".join(f'<li class="note">{escape(n)}</li>' for n in notes)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>QC report: {name}</title><style>{_STYLE}</style></head><body>"
            f"<h1>QC report: {name}</h1><p>{lead}</p>"
            + (f"<ul>{note_html}</ul>" if notes else "")
            + f"<p class=\"methods\">{escape(methods_text(record))}</p>"
            f"<h2>What was done</h2>{_provenance(record)}"
            f"<h2>Sections, lowest confidence first</h2>"
            f"<p>Mean confidence over the damaged pixels, 0 to 1 (0.5: about 6 % of the grey "
            f"range expected wrong); rows under 0.5 are marked.</p>{_table(rows, area, sheets)}"
            f"<h2>Contact sheets</h2>{_sheets(rows, sheets, area, panels, factor)}"
            "</body></html>\n")
