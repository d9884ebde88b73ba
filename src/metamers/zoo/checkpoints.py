"""Reading checkpoint files safely: tensors only, and torch hub files checked by hash.

No checkpoint is ever unpickled beyond tensors and plain containers (``weights_only=True``), and
a torch hub file is read only if its SHA-256 starts with the prefix that its name declares: a
planted or corrupt file is refused, naming it. A missing file is a :class:`FileNotFoundError`
naming it and where to put it: nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from metamers.store import CHECKPOINT_LOAD_ERRORS

# torch.hub's convention: a checkpoint is named <name>-<SHA-256 prefix>.<ext>.
HUB_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")


def require_files(checkpoints: list[Path], what: str, how: str) -> None:
    missing = [str(path) for path in checkpoints if not path.exists()]
    if missing:
        raise FileNotFoundError(f"{what}: missing {', '.join(missing)}. {how}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_checkpoint(path: Path, fix: str) -> dict:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, so a file
    whose pickle would run code is refused, not run. ``fix`` ends the error message."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except CHECKPOINT_LOAD_ERRORS as error:
        raise ValueError(f"{path} is not a checkpoint of plain tensors and was not loaded "
                         f"({type(error).__name__}: {str(error)[:300]}). {fix}") from error


def hub_checkpoint(path: Path, url: str) -> dict:
    """A torch hub checkpoint, read only if its SHA-256 starts with the prefix that its file
    name declares (torch.hub checks that only on download), then with ``weights_only=True``."""
    fix = f"Delete it and put the original file from {url} there."
    declared = HUB_HASH_PREFIX.search(path.name)
    if declared is None:
        raise ValueError(f"{path}: the file name declares no SHA-256 prefix "
                         "(<name>-<hash>.pth), so the file cannot be checked. " + fix)
    digest = _sha256(path)
    if not digest.startswith(declared.group(1)):
        raise ValueError(f"{path} has SHA-256 {digest[:16]}..., not the {declared.group(1)} "
                         "its name declares: it is corrupt or was replaced, and was not "
                         "loaded. " + fix)
    return safe_checkpoint(path, fix)
