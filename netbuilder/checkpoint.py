"""Checkpoints: atomic writes, safe loading (`weights_only=True`) and spec fingerprints.

A checkpoint is a plain dict of tensors and Python scalars/containers, so it loads without
unpickling arbitrary objects; the spec travels inside it so `eval` and `predict` need no YAML.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import secrets
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from .errors import NetbuilderError

FORMAT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"
TEMP_SUFFIX = ".tmp"  # temp files are ".<name>.<random>.tmp" next to their target
ARCHITECTURE_KEYS = ("input", "num_classes", "width_multiplier", "layers")
REQUIRED_KEYS = ("format_version", "model", "epoch", "spec", "spec_name", "fingerprint")


def spec_fingerprint(data: dict[str, Any]) -> str:
    """sha256 of the fields that decide the weights' shapes and meaning, as canonical JSON.

    Training settings, the name and comments are left out: a checkpoint stays usable when only
    they change. An absent width_multiplier counts as its default 1.0.
    """
    fields = {key: data.get(key) for key in ARCHITECTURE_KEYS}
    if fields["width_multiplier"] is None:
        fields["width_multiplier"] = 1.0
    fields["width_multiplier"] = float(fields["width_multiplier"])
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temp file in the same folder, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never half of either:
    the data is fsynced before the rename, and the folder after it so the rename itself lasts.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    # os.open with 0o666 lets the umask decide the mode, as for any new file (mkstemp: 0o600)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def _fsync_dir(folder: Path) -> None:
    """Persist a rename; some platforms (Windows) cannot open a folder, which is fine there."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete temp files a killed run left behind (they never replaced anything)."""
    removed = []
    for stale in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically save a checkpoint dict (see `REQUIRED_KEYS`)."""
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {', '.join(missing)}")
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True` (no arbitrary code); any damage is a one-line user error."""
    path = Path(path)
    if not path.is_file():
        raise NetbuilderError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        raise NetbuilderError(
            f"cannot read checkpoint {path}: it is corrupt, truncated or not a netbuilder "
            f"checkpoint ({_first_sentence(exc)})"
        ) from None
    _check_payload(payload, path)
    return payload


def _first_sentence(exc: Exception) -> str:
    """Torch's reason, cut before its advice to retry with weights_only=False (never safe
    for a file we did not write)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def _check_payload(payload: Any, path: Path) -> None:
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED_KEYS):
        raise NetbuilderError(f"{path} is not a netbuilder checkpoint (expected a dict with "
                              f"{', '.join(REQUIRED_KEYS)})")
    if payload["format_version"] != FORMAT_VERSION:
        raise NetbuilderError(f"{path} has checkpoint format {payload['format_version']!r}; "
                              f"this netbuilder reads format {FORMAT_VERSION}")


def check_same_spec(payload: dict[str, Any], spec_data: dict[str, Any], path: str | Path) -> None:
    """Refuse to mix weights and a spec whose architecture differs."""
    if payload["fingerprint"] == spec_fingerprint(spec_data):
        return
    raise NetbuilderError(
        f"{path} was trained from spec '{payload['spec_name']}', whose architecture (input, "
        f"num_classes, width_multiplier or layers) differs from spec '{spec_data.get('name')}'; "
        "resume with the spec the run was started with"
    )


def capture_rng_state() -> dict[str, Any]:
    """Global RNG states (CPU and every CUDA device) as ByteTensors, for an exact resume."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
