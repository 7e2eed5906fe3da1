"""The specs that ship inside the package (netbuilder/bundled, the checkout's specs/), found
by name: `netbuilder build squeezenet_v11` from any folder, `extends: squeezenet_v11`,
`create_model("model5")`. A path that exists always wins over a bundled name. No torch here.
"""

from __future__ import annotations

import difflib
import fnmatch
from importlib import resources
from pathlib import Path

from ..errors import Location, NetbuilderError

SPEC_SUFFIXES = (".yaml", ".yml")


def bundled_dir() -> Path:
    """The folder of bundled specs, wherever the package is installed."""
    return Path(str(resources.files("netbuilder") / "bundled"))


def bundled_names(pattern: str = "*") -> list[str]:
    """The bundled specs' names (file stems) matching a shell-style pattern, sorted."""
    folder = bundled_dir()
    names = sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def bundled_spec(name: str) -> Path | None:
    """The bundled spec called `name` (with or without .yaml); None when there is none."""
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix in SPEC_SUFFIXES else name
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        return None
    path = bundled_dir() / f"{stem}.yaml"
    return path if path.is_file() else None


def find_spec_file(name_or_path: str | Path) -> Path:
    """The file a spec argument names: the path itself where it exists, else the bundled spec
    of that name; neither is one line with a did-you-mean among the bundled names."""
    path = Path(name_or_path)
    if path.exists() or path.is_symlink() or len(path.parts) > 1:
        return path  # a path (in a folder) is only ever that path: its reader says what is wrong
    bundled = bundled_spec(str(name_or_path))
    if bundled is not None:
        return bundled
    stem = path.stem if path.suffix in SPEC_SUFFIXES else path.name
    close = difflib.get_close_matches(stem, bundled_names(), n=1, cutoff=0.7)
    hint = f"; did you mean the bundled spec '{close[0]}'?" if close else ""
    raise NetbuilderError(
        f"spec file not found (nor a bundled spec of that name){hint}", Location(str(path))
    )
