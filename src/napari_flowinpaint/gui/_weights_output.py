"""Where the Fine-tune dialog writes its weights: the default file, and the checks made on
the chosen output before any work (a folder, an existing file, an unwritable place)."""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["DEFAULT_DETECTOR_OUTPUT", "DEFAULT_OUTPUT", "is_weights_file", "output_problem"]

#: Where the fine-tuned weights go unless the user picks another file.
DEFAULT_OUTPUT = Path.home() / "flowinpaint-finetuned.safetensors"
#: Where the adapted detector goes unless the user picks another file.
DEFAULT_DETECTOR_OUTPUT = Path.home() / "flowinpaint-detector-adapted.safetensors"


def is_weights_file(path: Path) -> bool:
    """Whether ``path`` looks like a safetensors file: an 8-byte little-endian header length,
    then a JSON header that fits in the file."""
    if path.suffix != ".safetensors":
        return False
    try:
        with path.open("rb") as file:
            head = file.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    return (len(head) == 9 and head[8:9] == b"{"
            and 8 + int.from_bytes(head[:8], "little") <= size)


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot receive the weights, or None when it can."""
    if str(path) in ("", "."):
        return "Choose an output weights file (.safetensors)."
    if path.is_dir():
        return (f"The output {path} is a folder; choose a file in it, e.g. "
                f"{path / DEFAULT_OUTPUT.name}.")
    # finetune writes <path>.safetensors when path has another suffix, and a .json beside it;
    # it never writes over a file (a stopped run resumes from its checkpoint, not from these)
    weights = path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")
    for file in dict.fromkeys((path, weights)):
        if file.exists() and not is_weights_file(file):
            return (f"The output {file} already exists and is not a weights file "
                    "(.safetensors); choose a new .safetensors file. Other files are never "
                    "written over.")
        if file.exists():
            return (f"The output {file} already exists; choose a new file name, or delete "
                    "the old weights first. Existing weights are never written over.")
    if weights.with_suffix(".json").exists():
        return (f"The file {weights.with_suffix('.json')} already exists, where the "
                "description of the weights (.json) would go; choose another output name.")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"Cannot write {path}: {folder} is a file, not a folder. Choose another output."
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return (f"Cannot write to the folder {folder} ({exc.strerror or exc}); choose another "
                "output file.")
    return None
