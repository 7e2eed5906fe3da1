"""The `export` and `profile` subcommands (registered by `netbuilder.cli`): a model as it
ships (ONNX fp32 or int8, an exported program, TorchScript) and what it costs where it runs.
The work is `export`'s; the printing is here."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from .cli_train import add_init_options, read_spec
from .data.files import is_checkpoint_path
from .errors import NetbuilderError
from .spec.registry import format_shape

AddSetOption = Callable[[argparse.ArgumentParser], None]


def register_deploy(sub: Any, add_set_option: AddSetOption) -> None:
    _add_export(sub, add_set_option)
    _add_profile(sub, add_set_option)


def _add_export(sub: Any, add_set_option: AddSetOption) -> None:
    export = sub.add_parser(
        "export",
        help="write a checkpoint's (or a spec's) model as ONNX (fp32 or int8), an exported "
        "program or TorchScript",
    )
    export.add_argument("source", metavar="CHECKPOINT_OR_SPEC")
    export.add_argument(
        "--format", choices=("onnx", "exported-program", "torchscript"), default="onnx"
    )
    export.add_argument("--out", required=True, metavar="FILE")
    export.add_argument(
        "--int8",
        action="store_true",
        help="ONNX only: static int8 quantization (QDQ, per-channel weights) with ONNX "
        "Runtime, calibrated on training images; prints and stores fp32 and int8 test accuracy",
    )
    export.add_argument(
        "--calibration",
        type=int,
        metavar="N",
        help="--int8: calibrate on N training images (default 512)",
    )
    export.add_argument(
        "--keep-fp32",
        action="append",
        default=[],
        metavar="NODE",
        help="--int8: leave this ONNX node in float (repeatable), for a layer int8 hurts",
    )
    export.add_argument("--data-dir", metavar="DIR", help="--int8: dataset root")
    add_init_options(export)
    add_set_option(export)
    export.set_defaults(handler=cmd_export)


def _check_int8_options(args: argparse.Namespace) -> None:
    if args.int8 and args.format != "onnx":
        raise NetbuilderError(f"--int8 is for --format onnx, not {args.format}")
    if not args.int8 and (args.calibration is not None or args.keep_fp32):
        raise NetbuilderError("--calibration and --keep-fp32 go with --int8")


def cmd_export(args: argparse.Namespace) -> int:
    _check_int8_options(args)
    spec = None if is_checkpoint_path(args.source) else read_spec(args.source, args.set)
    from .export import export, load_exportable, untrained_exportable

    item = load_exportable(args.source) if spec is None else untrained_exportable(spec)
    state = "trained" if item.trained else "untrained (from the spec)"
    if args.init_from:
        from .training.pretrained import describe_init, initialise_from

        state = f"initialised from {describe_init(initialise_from(item.model, args.init_from))}"
    summary = (
        f"{item.spec.name}, {state}, input {format_shape(item.spec.input_shape)}, "
        f"{len(item.class_names)} classes"
    )
    if not args.int8:
        print(f"{export(item, args.format, args.out)}: {args.format}, {summary}")
        return 0
    from .export.quantize import CALIBRATION_IMAGES, write_int8

    calibration = CALIBRATION_IMAGES if args.calibration is None else args.calibration
    report = write_int8(item, args.out, calibration, args.data_dir, tuple(args.keep_fp32))
    kept = f", kept in fp32: {', '.join(report.kept_fp32)}" if report.kept_fp32 else ""
    print(
        f"{args.out}: onnx int8 (QDQ, per-channel weights, {report.calibration_images} "
        f"calibration images{kept}), {summary}\n"
        f"test accuracy: fp32 {report.fp32_accuracy:.2%}, int8 {report.int8_accuracy:.2%} "
        f"({round(-report.drop_points, 2) + 0.0:+.2f} points); "
        f"size: fp32 {report.fp32_bytes / 1024:,.1f} KiB, int8 {report.int8_bytes / 1024:,.1f} KiB"
    )
    return 0


def _add_profile(sub: Any, add_set_option: AddSetOption) -> None:
    profile = sub.add_parser(
        "profile",
        help="measured time per layer (batch 1 and a throughput batch), and end-to-end "
        "ONNX Runtime fp32/int8 latency",
    )
    profile.add_argument("source", metavar="SPEC_OR_CHECKPOINT")
    profile.add_argument(
        "--batch-size", type=int, default=64, help="the throughput batch (default 64)"
    )
    profile.add_argument(
        "--runtime",
        choices=("auto", "torch", "onnxruntime"),  # export.latency.Runtime; no torch here
        default="auto",
        help="torch: eager only; onnxruntime: also ONNX Runtime (required); auto: ONNX "
        "Runtime when the export extra is installed",
    )
    profile.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    profile.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    profile.add_argument(
        "--repeats", type=int, default=20, help="timed repeats per figure (default 20)"
    )
    profile.add_argument("--format", choices=("table", "json"), default="table")
    add_set_option(profile)
    profile.set_defaults(handler=cmd_profile)


def _check_profile_options(args: argparse.Namespace) -> None:
    for flag, value in (("--batch-size", args.batch_size), ("--repeats", args.repeats)):
        if value < 1:
            raise NetbuilderError(f"{flag} must be at least 1, got {value}")
    if args.threads is not None and args.threads < 1:
        raise NetbuilderError(f"--threads must be at least 1, got {args.threads}")
    if args.device == "cuda" and args.runtime == "onnxruntime":
        raise NetbuilderError("--runtime onnxruntime times the CPU provider; drop --device cuda")


def cmd_profile(args: argparse.Namespace) -> int:
    _check_profile_options(args)
    spec = None if is_checkpoint_path(args.source) else read_spec(args.source, args.set)
    import torch

    from .export import load_exportable, untrained_exportable
    from .export.latency import Runtime, profile_exportable
    from .report.profile_table import format_profile, profile_json
    from .training.device import resolve_device

    device = resolve_device(args.device)  # one line when CUDA is asked for and absent
    if args.threads:
        torch.set_num_threads(args.threads)
    item = load_exportable(args.source) if spec is None else untrained_exportable(spec)
    runtime: Runtime = "torch" if device.type == "cuda" and args.runtime == "auto" else args.runtime
    profile = profile_exportable(
        item, args.batch_size, str(device), runtime, args.threads, args.repeats
    )
    if args.format == "json":
        print(json.dumps(profile_json(profile), indent=2))
    else:
        print(format_profile(profile))
    return 0
