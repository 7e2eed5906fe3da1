"""The `train`, `eval` and `predict` subcommands (registered by `netbuilder.cli`).

Like the rest of the CLI, this is where results are printed; the library only returns them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

from .data.files import is_checkpoint_path, is_onnx_path
from .errors import NetbuilderError
from .spec import Spec
from .spec import read_spec as read_spec_quietly
from .spec.config import DEVICES, FLAG_FIELDS, field_declaration
from .spec.overrides import assignment

EXIT_REQUIREMENT_MISSED = 3  # the run finished but misses its spec's `requires:`


def read_spec(path: str, overrides: list[str] | None = None) -> Spec:
    """`netbuilder.read_spec`, with the spec's notes (an old format, say) shown on stderr."""
    spec = read_spec_quietly(path, overrides)
    for note in spec.document.notes:
        print(note, file=sys.stderr)
    return spec


def register_commands(sub: Any, add_set_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add train/eval/predict to the CLI's subcommands."""
    _add_train(sub, add_set_option)
    _add_eval(sub)
    _add_predict(sub)


def _add_train(sub: Any, add_set_option: Callable[[argparse.ArgumentParser], None]) -> None:
    train = sub.add_parser("train", help="train a spec on its dataset; writes a run folder")
    train.add_argument("spec")
    for path in FLAG_FIELDS:
        _add_field_flag(train, path)
    train.add_argument(
        "--out", metavar="DIR", help="run folder (default: runs/<spec name>-<YYYYmmdd-HHMMSS>)"
    )
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt"
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace the run files already in --out"
    )
    train.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="train once per value (repeat for a grid); --out is the sweep's "
        "folder, with sweep.md, sweep.csv and sweep.png",
    )
    train.add_argument(
        "--data-dir",
        metavar="DIR",
        help="dataset root (default: $NETBUILDER_DATA, ../shared/data or ./data)",
    )
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    add_init_options(train)
    train.add_argument(
        "--freeze",
        nargs="+",
        metavar="LAYER",
        help="keep these layers (names or prefixes) as they start (sets train.freeze)",
    )
    train.add_argument(
        "--no-progress", action="store_true", help="no progress bar; print one plain line per epoch"
    )
    add_set_option(train)
    train.set_defaults(handler=cmd_train)


def _add_field_flag(parser: argparse.ArgumentParser, path: str) -> None:
    """`--batch-size` for train.batch_size: type, choices and help from the config field."""
    kind, arg = field_declaration(path)
    name = path.split(".")[-1]
    options: dict[str, Any] = (
        {"choices": list(get_args(kind))}
        if get_origin(kind) is Literal
        else {"type": kind, "metavar": name.upper()}
    )
    parser.add_argument(
        f"--{name.replace('_', '-')}",
        dest=_flag_dest(path),
        help=f"{arg.doc} (sets train.{path})",
        **options,
    )


def _flag_dest(path: str) -> str:
    return "train_" + path.replace(".", "_")


def _add_eval(sub: Any) -> None:
    evaluate = sub.add_parser(
        "eval",
        help="test a checkpoint, an exported .onnx file (fp32 or int8, run by ONNX Runtime) "
        "or a spec started from --init-from: accuracy and confusion matrix",
    )
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT_ONNX_OR_SPEC")
    add_init_options(evaluate)
    evaluate.add_argument("--data-dir", metavar="DIR", help="dataset root")
    evaluate.add_argument("--device", choices=DEVICES, default="auto")
    evaluate.set_defaults(handler=cmd_eval)


def _add_predict(sub: Any) -> None:
    predict = sub.add_parser("predict", help="classify image files with a checkpoint")
    predict.add_argument("checkpoint")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--top-k", type=int, default=3, help="classes to show per image")
    predict.add_argument("--device", choices=DEVICES, default="cpu")
    predict.set_defaults(handler=cmd_predict)


def train_overrides(args: argparse.Namespace) -> list[str]:
    """`--set` assignments first, then the dedicated flags, which win."""
    overrides = list(args.set)
    for path in FLAG_FIELDS:
        value = getattr(args, _flag_dest(path))
        if value is not None:
            overrides.append(assignment(f"train.{path}", value))
    if args.compile:
        overrides.append("train.compile=true")
    if args.init_from:
        overrides.append(assignment("train.init_from", args.init_from))
    if args.freeze:
        overrides.append(assignment("train.freeze", list(args.freeze)))
    return overrides


def add_init_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--init-from",
        metavar="SOURCE",
        help="start from these weights: a checkpoint or state_dict file, or "
        "torchvision:<Weights>.<NAME> (sets train.init_from)",
    )


def run_dir_argument(args: argparse.Namespace) -> str | None:
    if args.resume and args.out and args.out != args.resume:
        raise NetbuilderError(
            "--resume continues in its own folder; drop --out "
            f"(got --out {args.out} and --resume {args.resume})"
        )
    chosen: str | None = args.resume or args.out
    return chosen


def cmd_train(args: argparse.Namespace) -> int:
    if args.sweep:
        return _train_sweep(args)
    spec = read_spec(args.spec, train_overrides(args))
    from .training.records import format_epoch_line
    from .training.run import run_training

    def print_epoch(row: dict[str, Any]) -> None:
        print(format_epoch_line(row, spec.train.epochs), flush=True)

    result = run_training(
        spec,
        run_dir_argument(args),
        resume=bool(args.resume),
        overwrite=args.overwrite,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        on_epoch=print_epoch if args.no_progress else None,
    )
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports
    print(
        f"{result.run_dir}: {spec.name} trained {result.epochs} epochs on {result.device}; "
        f"test accuracy {result.final_test_acc:.2%}, best {result.best_test_acc:.2%} "
        f"(epoch {result.best_epoch})"
    )
    if result.compile_seconds is not None:
        print(f"compile warm-up: {result.compile_seconds:.1f} s")
    if result.initialised is not None:
        from .training.pretrained import describe_init

        print(f"initialised from {describe_init(result.initialised)}")
    if result.requirement_miss is not None:  # trained, but short of what the spec requires
        print(result.requirement_miss, file=sys.stderr)
        return EXIT_REQUIREMENT_MISSED
    return 0


def _train_sweep(args: argparse.Namespace) -> int:
    from .training.sweep import run_sweep

    folder = run_sweep(
        args.spec,
        train_overrides(args),
        args.sweep,
        run_dir_argument(args),
        resume=bool(args.resume),
        overwrite=args.overwrite,
        data_dir=args.data_dir,
        progress=not args.no_progress,
    )
    print((folder / "sweep.md").read_text(encoding="utf-8"))
    print(f"{folder}: sweep.md, sweep.csv, sweep.png")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if is_onnx_path(args.checkpoint):
        from .export.runtime import evaluate_onnx

        result = evaluate_onnx(args.checkpoint, args.data_dir)
    elif is_checkpoint_path(args.checkpoint):
        from .inference import evaluate_checkpoint

        result = evaluate_checkpoint(args.checkpoint, args.data_dir, args.device)
    elif args.init_from:
        spec = read_spec(args.checkpoint)
        from .inference import evaluate_spec

        result = evaluate_spec(spec, args.init_from, args.data_dir, args.device)
    else:
        raise NetbuilderError(
            f"{args.checkpoint}: eval tests a checkpoint (.pt), an exported .onnx file, or a spec "
            "with the weights --init-from names"
        )
    print(format_evaluation(result))
    return 0


def format_evaluation(result: Any) -> str:
    """Accuracy line, per-class table and confusion matrix, as `eval` prints them."""
    from tabulate import tabulate

    correct = int(result.confusion.diag().sum())
    per_class = tabulate(
        [
            [name, f"{accuracy:.2%}", int(total)]
            for name, accuracy, total in zip(
                result.class_names,
                result.per_class_accuracy,
                result.confusion.sum(dim=1),
                strict=True,
            )
        ],
        headers=["class", "accuracy", "samples"],
        colalign=("left", "right", "right"),
    )
    confusion = tabulate(
        [
            [name, *row]
            for name, row in zip(result.class_names, result.confusion.tolist(), strict=True)
        ],
        headers=["true \\ predicted", *result.class_names],
    )
    return "\n".join(
        [
            f"{result.checkpoint}: spec {result.spec_name}, "
            + ("" if result.epoch is None else f"epoch {result.epoch}, ")
            + f"dataset {result.dataset}",
            f"test loss {result.loss:.4f}, accuracy {result.accuracy:.2%} "
            f"({correct}/{result.num_samples})",
            "",
            per_class,
            "",
            "confusion matrix (rows: true class, columns: predicted class)",
            confusion,
        ]
    )


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import predict

    for prediction in predict(args.checkpoint, args.images, args.top_k, args.device):
        scores = ", ".join(f"{score.name} {score.probability:.1%}" for score in prediction.top)
        print(f"{prediction.image}: {scores}")
    return 0
