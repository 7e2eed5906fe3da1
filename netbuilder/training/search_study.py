"""The Optuna side of a search: its storage (SQLite in the search folder, or any RDB URL), the
study (created once, loaded after, its directions checked), the sampler and the pruner, and
the folder's claim to one study."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NetbuilderError, excerpt
from ..spec import Spec
from .records import RUNS_DIR, write_text
from .search_options import SearchOptions

if TYPE_CHECKING:
    import optuna

STUDY_FILE = "study.db"
STATE_FILE = "search.json"  # the study's name, so a folder never mixes two studies


def storage_url(folder: Path, options: SearchOptions) -> str:
    return options.storage or f"sqlite:///{(folder / STUDY_FILE).resolve()}"


def open_study(spec: Spec, folder: Path, options: SearchOptions) -> optuna.Study:
    """The study, created on first use and loaded after; its directions must match."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(
            storage_url(folder, options),
            heartbeat_interval=options.heartbeat,
            grace_period=2 * options.heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                max_retry=3, inherit_intermediate_values=True
            ),
            engine_kwargs=engine_kwargs(storage_url(folder, options)),
        )
    name = options.study or spec.name
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            pruner=make_pruner(options.chosen_pruner),
            directions=[optuna.study.StudyDirection[d.upper()] for d in options.directions],
            load_if_exists=True,
        )
    except ValueError as error:  # an existing study with other directions
        raise NetbuilderError(f"study {excerpt(name)}: {error}") from None
    wanted = [d.name.lower() for d in study.directions]
    if wanted != list(options.directions):
        raise NetbuilderError(
            f"study {excerpt(name)} optimises {', '.join(wanted)}; this --objective "
            f"{options.objective} would {', '.join(options.directions)}: use another --study"
        )
    study.sampler = make_sampler(options, len(study.get_trials(deepcopy=False)))
    return study


def make_sampler(options: SearchOptions, trials_so_far: int) -> optuna.samplers.BaseSampler:
    """TPE, seeded from --seed and the study's length, so that a restarted search does not
    draw its first start-up trials again; a lie for running trials keeps parallel workers
    from drawing the same point; the budgets as a constraint steer it to networks that fit."""
    import optuna

    seed = None if options.seed is None else options.seed + 1009 * trials_so_far
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLite waits for a writer rather than failing at once when several processes share it."""
    return {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    import optuna

    if name == "median":  # a trial below the median of earlier ones at the same epoch stops
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=2)
    return optuna.pruners.NopPruner()


def claim_folder(folder: Path, study_name: str) -> None:
    """search.json names the study the folder belongs to (never the storage URL: it may hold
    a password); a second study is refused rather than mixed into the same trials/."""
    state = folder / STATE_FILE
    if state.is_file():
        known = json.loads(state.read_text(encoding="utf-8")).get("study")
        if known != study_name:
            raise NetbuilderError(
                f"{folder} holds the search of study {excerpt(str(known))}, not "
                f"{excerpt(study_name)}; choose another --out"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_text(state, json.dumps({"study": study_name}, indent=2) + "\n")


def default_folder(spec: Spec, options: SearchOptions) -> Path:
    """runs/<study>-search: the same command finds the same folder and continues there."""
    return RUNS_DIR / f"{options.study or spec.name}-search"


def quietly_open(spec: Spec, folder: Path, options: SearchOptions) -> optuna.Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the CLI prints a line per trial
    return open_study(spec, folder, options)
