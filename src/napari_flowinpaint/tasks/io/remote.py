"""Volumes read by URL: N5, Neuroglancer precomputed and zarr (OME-Zarr too) on a web server
(``http://``, ``https://``) or in a cloud bucket (``gs://``, ``s3://``), through tensorstore
(the ``tensorstore`` extra), lazily: a section is fetched when it is read.

The format comes from the URL (a ``.n5`` or ``.zarr`` in its path) or is named before it
(``--format precomputed``, i.e. ``precomputed:https://...``; Neuroglancer's own spelling
``precomputed://https://...`` works too). The URL names the dataset itself, since a remote
container cannot be listed; only an N5 pyramid's ``s0`` and an OME-Zarr image's highest
resolution are found from their group's URL. The voxel size comes from the remote metadata,
as for the same formats on disk (:mod:`.tensorstores`, :mod:`.ome`). A chunk missing from an
N5 or zarr image is an error naming its section (:mod:`.chunks`), as on disk. Outputs are
always written to local disk (:mod:`.targets` refuses a URL).
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

__all__ = ["RETRIES", "URL_FORMATS", "is_url", "open_url", "url_format", "url_format_told",
           "url_voxel_size"]

#: The formats a URL is read in.
URL_FORMATS = ("n5", "precomputed", "zarr")
#: How often a failed HTTP request is tried again, and how long it waits (doubling).
RETRIES = {"max_retries": 3, "initial_delay": "0.5s", "max_delay": "4s"}

_URL = re.compile(r"^(?:https?|gs|s3)://[^/\s]", re.IGNORECASE)
_NOISE = re.compile(r"\s*\[[a-z_]+='(?:[^'\\]|\\.)*'\]")  # tensorstore's spec, curl's code
_SPATIAL = ["z", "y", "x"]
_TO_NM = {"nanometer": 1.0, "micrometer": 1e3, "millimeter": 1e6, "angstrom": 0.1,
          "meter": 1e9}


def is_url(path) -> bool:
    """Whether ``path`` is a URL read through tensorstore (``http(s)://``, ``gs://``,
    ``s3://``), not a file."""
    return isinstance(path, str) and bool(_URL.match(path))


def url_format(url: str) -> str | None:
    """``"n5"`` or ``"zarr"`` when a part of the URL's path ends so; else None (say it)."""
    parts = [p.lower() for p in urlsplit(url).path.split("/")]
    for fmt in ("n5", "zarr"):
        if any(p.endswith(f".{fmt}") for p in parts):
            return fmt
    return None


def url_format_told(url: str) -> str:
    """:func:`url_format`, or :class:`ValueError` saying to name the format."""
    fmt = url_format(url)
    if fmt is None:
        raise ValueError(f"cannot tell the format of {url!r} from the URL: name it with "
                         f"--format {'|'.join(URL_FORMATS)} (in Python, 'precomputed:URL').")
    return fmt


def _clean(exc: Exception) -> str:
    return " ".join(_NOISE.sub("", str(exc)).split())


class _Remote:
    """The key-value store under a URL, its JSON files read with clear errors."""

    def __init__(self, url: str, name: str):
        from .tensorstores import import_tensorstore

        self.ts = import_tensorstore("volumes by URL (N5, Neuroglancer precomputed, zarr)")
        self.url, self.name = url.rstrip("/"), name
        self.context = self.ts.Context({f"{kind}_request_retries": RETRIES
                                        for kind in ("http", "gcs", "s3")})
        try:
            self.kv = self.ts.KvStore.open(self.url + "/", context=self.context).result()
        except Exception as exc:  # tensorstore raises ValueError for a bad URL
            raise ValueError(f"{name} {url!r} is not a URL tensorstore reads "
                             f"({_clean(exc)}).") from exc

    def json(self, key: str) -> dict | None:
        """The JSON file ``key`` below the URL, or None when there is none."""
        try:
            got = self.kv.read(key).result()
        except Exception as exc:  # no connection, refused, forbidden...
            raise ValueError(f"{self.name} {self.url!r} could not be reached: reading {key} "
                             f"failed ({_clean(exc)}).") from exc
        if got.state != "value":
            return None
        try:
            return json.loads(bytes(got.value))
        except ValueError as exc:
            raise ValueError(f"{self.name} {self.url!r}: its {key} is not JSON ({exc}); is it "
                             "the URL of the volume?") from exc

    def open(self, spec: dict, fmt: str):
        try:
            return self.ts.open(spec, read=True, context=self.context).result()
        except Exception as exc:
            raise ValueError(f"{self.name} {self.url!r} could not be opened as {fmt} "
                             f"({_clean(exc)}).") from exc


def open_url(url: str, fmt: str | None, name: str = "stack", *, sparse: bool = False):
    """The volume at ``url`` in ``fmt`` (one of :data:`URL_FORMATS`; None: from the URL),
    read lazily, as a :class:`~.tensorstores.TensorStack` (z, y, x) whose ``voxel_size`` is
    that of its metadata (or None). ``sparse``: chunks missing read as the fill value (a
    mask), else reading their section raises :class:`~.chunks.MissingSection`.

    Raises
    ------
    ImportError
        Without tensorstore (the message says how to install it).
    ValueError
        For a format that is not told or cannot be read by URL, a URL that cannot be
        reached, or one that names no volume.
    """
    fmt = fmt or url_format_told(url)
    if fmt not in URL_FORMATS:
        raise ValueError(f"{name} {url!r}: a URL is read as {', '.join(URL_FORMATS)} only, "
                         f"not {fmt}; download the file and give its local path.")
    from .tensorstores import TensorStack, n5_voxel_size, oriented, precomputed_voxel_size

    remote = _Remote(url, name)
    fill_missing = {"fill_missing_data_reads": bool(sparse)}
    if fmt == "precomputed":
        info = remote.json("info")
        if info is None or "scales" not in info:
            raise ValueError(f"{name} {url!r} is no Neuroglancer precomputed volume (no "
                             "'info' file with its scales there).")
        store = remote.open({"driver": "neuroglancer_precomputed", "scale_index": 0,
                             "kvstore": remote.url + "/"}, fmt)
        stack = TensorStack(oriented(store, fmt), url, name, reader="precomputed")
        stack.voxel_size = precomputed_voxel_size(info)
        return stack
    if fmt == "n5":
        where, attrs = "", remote.json("attributes.json") or {}
        if "dimensions" not in attrs:  # a pyramid's group: its s0
            where, attrs = "s0/", remote.json("s0/attributes.json") or {}
        if "dimensions" not in attrs:
            example = (f", e.g. '{remote.url}/setup0/timepoint0/s0'"
                       if remote.url.lower().endswith(".n5") else "")
            raise ValueError(f"{name} {url!r} names no N5 dataset (no attributes.json with "
                             "its dimensions there, nor in s0/); a remote container cannot "
                             f"be listed: give the dataset's URL{example}.")
        store = remote.open({"driver": "n5", "kvstore": f"{remote.url}/{where}",
                             **fill_missing}, fmt)
        stack = TensorStack(oriented(store, fmt), url, name, reader="N5")
        stack.voxel_size = n5_voxel_size(attrs)
        return stack
    return _open_zarr(remote, fill_missing)


def _open_zarr(remote: _Remote, fill_missing: dict):
    """A zarr array (v2 or v3) at the URL, or an OME-Zarr image's highest resolution."""
    from .tensorstores import TensorStack

    url, name = remote.url, remote.name
    meta = remote.json("zarr.json")
    if meta is not None:
        driver, attrs = "zarr3", meta.get("attributes") or {}
        array = meta.get("node_type") == "array"
    else:
        driver, attrs = "zarr", remote.json(".zattrs") or {}
        array = remote.json(".zarray") is not None
    multiscales = (attrs.get("ome") or attrs).get("multiscales")
    where, axes, scale = "", _SPATIAL, attrs.get("voxel_size")
    if not array:
        if not multiscales:
            raise ValueError(f"{name} {url!r} holds no zarr array nor OME-Zarr image; a "
                             "remote store cannot be listed: give the array's URL, e.g. "
                             f"'{url}/raw'.")
        image = multiscales[0]
        level = image["datasets"][0]
        axes = [a["name"] if isinstance(a, dict) else str(a) for a in image.get("axes", [])]
        where, scale = level["path"].strip("/") + "/", _ome_scale(image, level)
    store = remote.open({"driver": driver, "kvstore": f"{url}/{where}", **fill_missing},
                        "zarr")
    axes = axes if len(axes) == store.rank else ["?"] * (store.rank - 3) + _SPATIAL
    lead = store.rank - 3
    if axes[lead:] != _SPATIAL or any(n != 1 for n in store.shape[:lead]):
        raise ValueError(f"{name} {url!r} has the shape {tuple(store.shape)} (axes {axes}); "
                         "expected a 3-D stack of sections (z, y, x), other axes of size 1.")
    stack = TensorStack(store[(0,) * lead] if lead else store, url, name, reader="zarr")
    stack.voxel_size = (tuple(float(v) for v in scale[-3:])
                        if scale is not None and len(scale) >= 3 else None)
    return stack


def _ome_scale(image: dict, level: dict) -> list[float] | None:
    """The (z, y, x) scale in nm of an OME-NGFF image's level, or None without units."""
    scale = next((t.get("scale") for t in level.get("coordinateTransformations", [])
                  if t.get("type") == "scale"), None)
    axes = image.get("axes", [])
    if scale is None or len(axes) != len(scale):
        return None
    units = [a.get("unit") if isinstance(a, dict) else None for a in axes[-3:]]
    if any(u not in _TO_NM for u in units):
        return None
    return [float(s) * _TO_NM[u] for s, u in zip(scale[-3:], units, strict=True)]


def url_voxel_size(url: str, fmt: str | None = None) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` in nm from the metadata of the volume at ``url``, or None."""
    return open_url(url, fmt).voxel_size
