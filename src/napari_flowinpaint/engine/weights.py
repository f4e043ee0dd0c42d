"""Weights of the learned stages: safetensors tensors plus a JSON side-car, never pickle.

A weights file ``NAME.safetensors`` holds the state dicts of the refined-reference network
(keys ``flow.*``), the guided-inpainting generator (``generator.*``) and, optionally, the
discriminator (``discriminator.*``, only needed to fine-tune). ``NAME.json`` beside it holds the
:class:`~.nets.NetsConfig` (``"architecture"``), the intensity normalisation, the package
version and how the weights were trained. The same metadata is also stored in the safetensors
header, so a lone ``.safetensors`` file still loads.

Two files are bundled, one per repair mode: ``flowinpaint-cpu`` for the textured repair (the
default; the weights that serve segmentation best while staying ahead of the classical
methods in PSNR) and ``flowinpaint-faithful-cpu`` for the faithful one (the least error).
A package with only the first uses it for both modes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .files import atomic_output
from .names import REPAIR_MODES
from .nets import NetsConfig, build_networks

__all__ = ["LearnedWeights", "bundled_weights_path", "load_weights", "save_weights",
           "WEIGHTS_FORMAT"]

#: Version of the file layout written by :func:`save_weights`.
WEIGHTS_FORMAT = 1
_PARTS = ("flow", "generator", "discriminator")
_DEFAULT_NAME = "flowinpaint-cpu"
#: The bundled weights of each repair mode, in the order they are looked for.
_MODE_NAMES = {"textured": (_DEFAULT_NAME,),
               "faithful": ("flowinpaint-faithful-cpu", _DEFAULT_NAME)}


@dataclass
class LearnedWeights:
    """Networks rebuilt from a weights file, in eval mode, on the CPU.

    Attributes
    ----------
    config : NetsConfig
    flow_net, generator : torch.nn.Module
    discriminator : torch.nn.Module or None
        Present when the file holds one (needed only to fine-tune).
    meta : dict
        The JSON side-car (training data, iterations, wall time, validation...).
    path : Path
    """

    config: NetsConfig
    flow_net: torch.nn.Module
    generator: torch.nn.Module
    discriminator: torch.nn.Module | None
    meta: dict = field(default_factory=dict)
    path: Path | None = None


def _candidates(name: str = _DEFAULT_NAME) -> list[Path]:
    here = Path(__file__).resolve()
    # installed wheel: the top-level weights/ folder is packaged as napari_flowinpaint/_weights
    # source checkout / editable install: <repo>/weights next to <repo>/src
    return [here.parents[1] / "_weights" / f"{name}.safetensors",
            here.parents[3] / "weights" / f"{name}.safetensors"]


def _mode_candidates(mode: str) -> list[Path]:
    if mode not in REPAIR_MODES:
        raise ValueError(f"unknown repair mode {mode!r}; expected one of {REPAIR_MODES}.")
    env = os.environ.get("NAPARI_FLOWINPAINT_WEIGHTS")
    return ([Path(env)] if env else []) + [p for name in _MODE_NAMES[mode]
                                           for p in _candidates(name)]


def bundled_weights_path(mode: str = "textured") -> Path | None:
    """Path of the weights shipped with the package for the repair ``mode``, or ``None`` if
    there are none.

    Looked up, in order: the ``NAPARI_FLOWINPAINT_WEIGHTS`` environment variable (then used
    for both modes), the package's ``_weights`` folder (wheel installs), the repository's
    ``weights/`` folder (source checkouts and editable installs). ``mode="faithful"`` takes
    ``flowinpaint-faithful-cpu`` where it is shipped, else the default ``flowinpaint-cpu``.
    """
    for p in _mode_candidates(mode):
        if p.is_file():
            return p
    return None


_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")


def _paths(path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix.lower() in _PICKLE_SUFFIXES:
        raise ValueError(
            f"{p} is a {p.suffix} file: pickle checkpoints are refused (loading one can run "
            "arbitrary code). napari-flowinpaint loads safetensors weights only; give the "
            ".safetensors file (a training run writes weights.safetensors beside checkpoint.pt)."
        )
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    elif p.suffix != ".safetensors":
        p = p.with_name(p.name + ".safetensors")
    return p, p.with_suffix(".json")


def save_weights(path, config: NetsConfig, flow_net, generator, discriminator=None, *,
                 meta: dict | None = None, half: bool = True) -> Path:
    """Write networks to ``path`` (``.safetensors``) and its ``.json`` side-car, atomically.

    Parameters
    ----------
    path : str or Path
        Target file; ``.safetensors`` is appended when missing.
    config : NetsConfig
        The configuration the networks were built from.
    flow_net, generator : torch.nn.Module
    discriminator : torch.nn.Module, optional
    meta : dict, keyword-only
        Extra JSON-able metadata (training data, iterations, wall time, validation...).
    half : bool, keyword-only
        Store float tensors as float16 (half the size; loading upcasts to float32).

    Returns
    -------
    Path of the ``.safetensors`` file.
    """
    tensors = {}
    for part, net in zip(_PARTS, (flow_net, generator, discriminator), strict=True):
        if net is not None:
            tensors.update(_state_tensors(net, part, half))
    from .. import __version__

    info = {
        "format": WEIGHTS_FORMAT,
        "package_version": __version__,
        "architecture": config.to_dict(),
        "normalisation": "each crop mapped to [0, 1] by robust percentiles (0.05 %, 99.95 %) "
                         "of its known pixels; neighbours and reference matched in mean and "
                         "standard deviation to the known part of the damaged section",
        "mask_convention": "1 = damaged pixel",
        "parts": [p for p, n in zip(_PARTS, (flow_net, generator, discriminator), strict=True)
                  if n is not None],
        **(meta or {}),
    }
    return _write_file(path, tensors, info)


def _state_tensors(net, part: str, half: bool) -> dict:
    out = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu()
        if half and v.is_floating_point():
            v = v.to(torch.float16)
        out[f"{part}.{k}"] = v.contiguous()
    return out


def _load_part(net, tensors: dict, part: str, st_path: Path, json_path: Path) -> bool:
    """Load the ``part.*`` tensors into ``net``; False when the file has none."""
    sd = {k[len(part) + 1:]: v for k, v in tensors.items() if k.startswith(part + ".")}
    if not sd:
        return False
    ref = net.state_dict()
    missing = sorted(set(ref) - set(sd))
    extra = sorted(set(sd) - set(ref))
    bad = sorted(k for k in set(ref) & set(sd) if tuple(ref[k].shape) != tuple(sd[k].shape))
    if missing or extra or bad:
        raise ValueError(
            f"{st_path}: the {part} tensors do not match the architecture in "
            f"{json_path.name}: missing {missing[:3]}, unexpected {extra[:3]}, wrong shape "
            f"{bad[:3]}."
        )
    net.load_state_dict({k: v.to(ref[k].dtype) for k, v in sd.items()})
    net.eval()
    return True


def _write_file(path, tensors: dict, info: dict) -> Path:
    """Write tensors + JSON info as ``.safetensors`` and ``.json`` side-car, atomically."""
    from safetensors.torch import save_file

    st_path, json_path = _paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(st_path, what="weights file") as tmp_st, \
            atomic_output(json_path, what="weights side-car") as tmp_js:
        save_file(tensors, str(tmp_st), metadata={"flowinpaint": json.dumps(info)})
        tmp_js.write_text(json.dumps(info, indent=2) + "\n")
    return st_path


def _bad_architecture(json_path: Path, exc: Exception) -> str:
    what = "missing" if isinstance(exc, KeyError) else f"malformed ({exc})"
    return (f"the weights description {json_path} has its 'architecture' {what}; it must be "
            "the .json written beside the .safetensors file by napari-flowinpaint (train, "
            "finetune or save_weights). Restore that file, or use the bundled weights.")


def _read_file(path) -> tuple[dict, dict, Path, Path]:
    """Tensors and JSON info of a weights file, refusing pickles and corrupt files."""
    st_path, json_path = _paths(path)
    if not st_path.is_file():
        raise FileNotFoundError(f"weights file {st_path} does not exist.")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    with open(st_path, "rb") as fh:
        head = fh.read(9)
    # a safetensors file starts with its header's length (8 bytes) and the header's "{";
    # a pickle (protocol 2+) starts with 0x80, a torch.save zip with "PK"
    looks_safetensors = len(head) == 9 and head[8:9] == b"{"
    if not looks_safetensors and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise ValueError(
            f"{st_path} looks like a pickle/torch.save file; napari-flowinpaint only loads "
            "safetensors weights (no pickle, no code execution). Convert it with "
            "napari_flowinpaint.engine.save_weights."
        )
    try:
        tensors = load_file(str(st_path))
        from safetensors import safe_open

        with safe_open(str(st_path), "pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{st_path} is not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from exc
    if json_path.is_file():
        try:
            info = json.loads(json_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{json_path} is not valid JSON: {exc}") from exc
    elif "flowinpaint" in header:
        info = json.loads(header["flowinpaint"])
    else:
        raise ValueError(
            f"{st_path} has no {json_path.name} side-car and no flowinpaint metadata: cannot "
            "tell which architecture it holds."
        )
    return tensors, info, st_path, json_path


def load_weights(path=None, *, mode: str = "textured") -> LearnedWeights:
    """Rebuild the networks stored by :func:`save_weights` (no pickle involved).

    Parameters
    ----------
    path : str or Path, optional
        A ``.safetensors`` file (its ``.json`` side-car is read when present). ``None`` loads
        the bundled weights of ``mode`` (:func:`bundled_weights_path`).
    mode : {"textured", "faithful"}, keyword-only
        Which bundled weights ``path=None`` loads; ignored when ``path`` is given.

    Raises
    ------
    FileNotFoundError
        No such file, or no bundled weights.
    ValueError
        The file is not a safetensors file (e.g. a pickle ``.pt``), is truncated or corrupt,
        or its tensors do not match the architecture it declares. The message names the file.
    """
    if path is None:
        path = bundled_weights_path(mode)
        if path is None:
            raise FileNotFoundError(
                "no bundled weights found (looked in "
                + ", ".join(str(p) for p in _mode_candidates(mode))
                + "); reinstall napari-flowinpaint or pass a weights file."
            )
    tensors, info, st_path, json_path = _read_file(path)
    if info.get("kind") == "detector":
        raise ValueError(f"{st_path} holds damage-detector weights, not inpainting weights; "
                         "load it with load_detector.")
    try:
        config = NetsConfig.from_dict(info["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(_bad_architecture(json_path, exc)) from exc
    nets = dict(zip(_PARTS, build_networks(config), strict=True))
    loaded = {}
    for part, net in nets.items():
        if _load_part(net, tensors, part, st_path, json_path):
            loaded[part] = net
        elif part != "discriminator":
            raise ValueError(f"{st_path} holds no '{part}.*' tensors; expected the {part} "
                             "network's weights.")
    return LearnedWeights(config, loaded["flow"], loaded["generator"],
                          loaded.get("discriminator"), info, st_path)


_DETECTOR_NAME = "detector-cpu"


def bundled_detector_path() -> Path | None:
    """Path of the damage detector's weights shipped with the package, or ``None``."""
    for p in _candidates(_DETECTOR_NAME):
        if p.is_file():
            return p
    return None


def save_detector(path, net, *, meta: dict | None = None) -> Path:
    """Write a :class:`~napari_flowinpaint.engine.nets.DamageDetectorNet` to ``path``
    (``.safetensors`` + ``.json`` side-car, float16, atomically)."""
    from .. import __version__

    info = {"format": WEIGHTS_FORMAT, "package_version": __version__, "kind": "detector",
            "architecture": {"width": net.width, "in_channels": net.in_channels},
            "normalisation": "grey levels mapped to [0, 1] by the 0.5 and 99.5 percentiles of "
                             "the stack; the network runs at half resolution",
            "mask_convention": "1 = damaged pixel", **(meta or {})}
    return _write_file(path, _state_tensors(net, "detector", True), info)


def load_detector(path=None):
    """The damage detector stored by :func:`save_detector` (bundled one by default), in
    eval mode, with its JSON info as ``net.meta``. Errors as :func:`load_weights`."""
    from .nets.detector import DamageDetectorNet

    if path is None:
        path = bundled_detector_path()
        if path is None:
            raise FileNotFoundError(
                "no bundled detector weights found (looked in "
                + ", ".join(str(p) for p in _candidates(_DETECTOR_NAME))
                + "); reinstall napari-flowinpaint or pass a weights file.")
    tensors, info, st_path, json_path = _read_file(path)
    if info.get("kind") != "detector":
        raise ValueError(f"{st_path} does not hold damage-detector weights "
                         f"(kind {info.get('kind', 'inpainting')!r}).")
    try:
        net = DamageDetectorNet(**info["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(_bad_architecture(json_path, exc)) from exc
    if not _load_part(net, tensors, "detector", st_path, json_path):
        raise ValueError(f"{st_path} holds no 'detector.*' tensors.")
    net.meta = info
    net.path = st_path
    return net
