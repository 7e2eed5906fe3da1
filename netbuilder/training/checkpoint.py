"""Checkpoints: atomic saves, safe loading (`weights_only=True`), a checked layout, and spec
fingerprints.

A checkpoint is a plain dict of tensors and Python scalars/containers, so it loads without
unpickling arbitrary objects; the spec travels inside it so `eval` and `predict` need no YAML.
A file that loads but has the wrong keys or types is refused with one line, like a corrupt one.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..data.files import atomic_write
from ..errors import NetbuilderError, excerpt
from ..limits import MAX_CHECKPOINT_BYTES, megabytes

FORMAT_VERSION = 3  # 3: resolved specs with macros; 2: declared TrainConfig, class names
LAST = "last.pt"
BEST = "best.pt"
ARCHITECTURE_KEYS = ("input", "num_classes", "layers", "blocks")
LAYOUT: dict[str, type | tuple[type, ...]] = {  # key -> the type its value must have
    "format_version": int,
    "model": dict,
    "epoch": int,
    "spec": dict,
    "spec_name": str,
    "fingerprint": str,
    "train_config": dict,
    "class_names": list,
    "history": list,
}


def spec_fingerprint(data: dict[str, Any]) -> str:
    """sha256 of the fields that decide the weights' shapes and meaning, as canonical JSON.

    Training settings, the name and comments are left out: a checkpoint stays usable when only
    they change. The spec is the resolved one (no params or expressions left); its macros
    (`blocks:`) are part of the architecture.
    """
    fields = {key: data.get(key) for key in ARCHITECTURE_KEYS}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically save a checkpoint dict (see `LAYOUT`)."""
    missing = [key for key in LAYOUT if key not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {', '.join(missing)}")
    atomic_write(path, lambda handle: torch.save(payload, handle))


def check_archive(path: Path) -> None:
    """torch.save writes a zip of stored (uncompressed) members: a member that would inflate,
    or members larger than MAX_CHECKPOINT_BYTES in all, are refused from the zip's directory,
    before anything is read (a 4.5 MB file holding a deflated 1 GiB tensor, say)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise NetbuilderError(
            f"cannot read checkpoint {path}: it is corrupt, truncated or not a netbuilder "
            f"checkpoint ({_first_sentence(exc)})"
        ) from None
    packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise NetbuilderError(
            f"{path} is not a checkpoint torch.save wrote: its member {excerpt(packed[0])} is "
            "compressed, and torch.save stores members as they are"
        )
    total = sum(member.file_size for member in members)
    if total > MAX_CHECKPOINT_BYTES:
        raise NetbuilderError(
            f"{path} holds {megabytes(total)}; the limit for a checkpoint is "
            f"{megabytes(MAX_CHECKPOINT_BYTES)}"
        )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True` (no arbitrary code); any damage is a one-line user error."""
    path = Path(path)
    if path.is_dir():
        raise NetbuilderError(
            f"{path} is a directory; expected a checkpoint file such as {path / BEST}"
        )
    if not path.is_file():
        raise NetbuilderError(f"checkpoint not found: {path}")
    check_archive(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as exc:
        raise NetbuilderError(
            f"cannot read checkpoint {path}: it is corrupt, truncated or not a netbuilder "
            f"checkpoint ({_first_sentence(exc)})"
        ) from None
    check_layout(payload, path)
    checked: dict[str, Any] = payload
    return checked


def _first_sentence(exc: Exception) -> str:
    """Torch's reason, cut before its advice to retry with weights_only=False (never safe
    for a file we did not write)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def check_layout(payload: Any, path: Path) -> None:
    """The keys and types netbuilder writes; anything else is not one of its checkpoints."""
    if not isinstance(payload, dict):
        raise NetbuilderError(
            f"{path} is not a netbuilder checkpoint (it holds a "
            f"{type(payload).__name__}, not a dict)"
        )
    version = payload.get("format_version")
    if isinstance(version, int) and version != FORMAT_VERSION:
        raise NetbuilderError(
            f"{path} has checkpoint format {version}; this netbuilder reads format {FORMAT_VERSION}"
        )
    for key, kind in LAYOUT.items():
        if not isinstance(payload.get(key), kind) or isinstance(payload.get(key), bool):
            found = "missing" if key not in payload else type(payload[key]).__name__
            raise NetbuilderError(
                f"{path} is not a netbuilder checkpoint: '{key}' is {found}, "
                f"expected {getattr(kind, '__name__', kind)}"
            )
    if not all(isinstance(v, torch.Tensor) for v in payload["model"].values()):
        raise NetbuilderError(
            f"{path} is not a netbuilder checkpoint: its model weights are not all tensors"
        )


def check_same_spec(payload: dict[str, Any], spec_data: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume with a spec whose architecture differs from the run's."""
    if payload["fingerprint"] == spec_fingerprint(spec_data):
        return
    raise NetbuilderError(
        f"{path} was trained from spec '{payload['spec_name']}', whose architecture (input, "
        f"num_classes, layers or macros) differs from spec '{spec_data.get('name')}'; "
        "resume with the spec the run was started with"
    )


def check_fingerprint(payload: dict[str, Any], path: str | Path) -> None:
    """The stored spec must be the one the weights were trained from (the file was edited or
    assembled from two runs otherwise)."""
    if payload["fingerprint"] != spec_fingerprint(payload["spec"]):
        raise NetbuilderError(
            f"{path}: the spec stored in the checkpoint does not match its "
            "fingerprint; the file was modified after training"
        )


def capture_rng_state() -> dict[str, Any]:
    """Global RNG states (CPU and every CUDA device) as ByteTensors, for an exact resume."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
