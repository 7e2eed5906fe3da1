"""`python cli.py ...` from a checkout; the installed console script is `netbuilder`.

Started by an interpreter that lacks netbuilder's dependencies (the system `python` rather than
the checkout's `.venv`), it runs itself again with `.venv`'s interpreter when there is one, and
otherwise says in one line what to run: the README's commands work as written.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent
VENV = CHECKOUT / ".venv"
DEPENDENCIES = ("torch", "yaml", "jsonschema", "tabulate")  # what every command needs
RELAUNCHED = "NETBUILDER_RELAUNCHED"  # set on the second start, so it never loops


def missing_dependency() -> str | None:
    return next((name for name in DEPENDENCIES if importlib.util.find_spec(name) is None), None)


def relaunch_or_explain(missing: str) -> None:
    python = VENV / "bin" / "python"
    if python.is_file() and os.environ.get(RELAUNCHED) != "1":
        os.environ[RELAUNCHED] = "1"
        os.execv(python, [str(python), str(CHECKOUT / "cli.py"), *sys.argv[1:]])
    print(
        f"error: {sys.executable} has no '{missing}', one of netbuilder's dependencies; run "
        "`make setup` in the checkout, then this command again (or `. .venv/bin/activate`)",
        file=sys.stderr,
    )
    sys.exit(2)


if __name__ == "__main__":
    missing = missing_dependency()
    if missing is not None:
        relaunch_or_explain(missing)
    from netbuilder.cli import main

    sys.exit(main())
