"""The `search` subcommand (registered by `netbuilder.cli`): Optuna over the spec's `search:`
space; the work is `training.search`'s, the printing is here."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .training.search_options import OBJECTIVES, PRUNERS, SearchOptions

DEFAULTS = SearchOptions()


def register_search(sub: Any, add_set_option: Callable[[argparse.ArgumentParser], None]) -> None:
    search = sub.add_parser(
        "search",
        help="explore the spec's search: space with Optuna, under its requires: budgets",
    )
    search.add_argument("spec")
    search.add_argument(
        "--trials",
        type=int,
        default=DEFAULTS.trials,
        help=f"trials in the study, all workers together (default {DEFAULTS.trials})",
    )
    search.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna RDB URL shared by every process and machine on the study, e.g. "
        "postgresql://user@host/db (default: sqlite file study.db in the search folder)",
    )
    search.add_argument("--study", metavar="NAME", help="study name (default: the spec's name)")
    search.add_argument(
        "--timeout", type=float, metavar="S", help="start no new trial after S seconds"
    )
    search.add_argument("--objective", choices=list(OBJECTIVES), default=DEFAULTS.objective)
    search.add_argument(
        "--pruner",
        choices=list(PRUNERS),
        help="stop poor trials early (default: median; none for two objectives)",
    )
    search.add_argument("--seed", type=int, help="the sampler's seed (trials keep the spec's)")
    search.add_argument(
        "--heartbeat",
        type=int,
        default=DEFAULTS.heartbeat,
        metavar="S",
        help="seconds between a running trial's heartbeats; silent for twice this, it is "
        f"retried (default {DEFAULTS.heartbeat})",
    )
    search.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on this machine, sharing the cores (default 1)",
    )
    search.add_argument("--out", metavar="DIR", help="search folder (default: runs/<study>-search)")
    search.add_argument("--data-dir", metavar="DIR", help="dataset root")
    search.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    add_set_option(search)
    search.set_defaults(handler=cmd_search)


def search_options(args: argparse.Namespace) -> SearchOptions:
    return SearchOptions(
        trials=args.trials,
        storage=args.storage,
        study=args.study,
        timeout=args.timeout,
        objective=args.objective,
        pruner=args.pruner,
        seed=args.seed,
        heartbeat=args.heartbeat,
        workers=args.workers,
    )


def worker_command(args: argparse.Namespace) -> Callable[[Path, int], list[str]]:
    """Worker i's arguments: this search with --workers 1 in the same folder and study."""

    def command(folder: Path, index: int) -> list[str]:
        words = [
            "search",
            args.spec,
            "--trials",
            str(args.trials),
            "--objective",
            args.objective,
            "--heartbeat",
            str(args.heartbeat),
            "--out",
            str(folder),
            "--worker",
        ]
        optional = {
            "--storage": args.storage,
            "--study": args.study,
            "--timeout": args.timeout,
            "--pruner": args.pruner,
            "--data-dir": args.data_dir,
            "--seed": None if args.seed is None else args.seed + index,
        }
        words += [
            item
            for key, value in optional.items()
            if value is not None
            for item in (key, str(value))
        ]
        words += [item for value in args.set for item in ("--set", value)]
        words += [item for value in args.plugin for item in ("--plugin", value)]
        return words

    return command


def cmd_search(args: argparse.Namespace) -> int:
    from .training.search import run_search

    result = run_search(
        args.spec,
        list(args.set),
        search_options(args),
        out=args.out,
        data_dir=args.data_dir,
        worker_command=worker_command(args),
    )
    if args.worker:
        return 0  # started by `--workers N`: the parent reports the study
    best = result.best
    found = (
        "no trial completed"
        if best is None
        else (f"best trial {best.number}: {best.score:.2f}%, {best.params:,} params -> best.yaml")
    )
    print(f"{result.folder}: trials.md, trials.csv, search.png; {found}")
    return 0
