"""Command line: the only place that prints or exits. Every user error is one line, exit code 2."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from .cli_train import read_spec
from .errors import NetbuilderError
from .limits import MAX_INPUT_SIZES
from .spec import Spec
from .spec.registry import format_shape

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug, not the user's input
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command killed by SIGPIPE


def load_plugins(modules: Sequence[str]) -> None:
    """Import user modules so their `@register` blocks join the registry. Whatever goes wrong
    in a plugin is the plugin author's to fix: one line naming the module (and the block)."""
    if modules and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `python cli.py` puts the script's folder first, not cwd
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            raise NetbuilderError(
                f"cannot import plugin '{name}': {exc}; it must be importable from the current "
                "directory or PYTHONPATH"
            ) from None
        except NetbuilderError as error:
            raise NetbuilderError(f"plugin '{name}': {error.message}") from None
        except Exception as exc:  # the plugin's own code failed while it was imported
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise NetbuilderError(
                f"plugin '{name}' failed to import: {type(exc).__name__}: {first}"
            ) from None


def check_budgets(spec: Spec, summary: Any = None) -> None:
    """The `requires:` budgets, as `validate`, `build` and `train` check them (torch: late)."""
    from .errors import raise_if_any
    from .report.requirements import budget_errors

    raise_if_any(budget_errors(spec, summary))


def cmd_build(args: argparse.Namespace) -> int:
    if args.input_size:
        return _build_sizes(args)
    spec = read_spec(args.spec, args.set)  # the compiler (and torch) only for a valid spec
    if args.diagram:
        return _build_diagram(spec, args)
    if args.summary or args.format == "json":  # traces a forward pass (real weights when small)
        from .report.formatting import format_json, format_table
        from .report.summary import summarize_spec

        summary = summarize_spec(spec, depth=args.depth)
        check_budgets(spec, summary)
        print(format_json(summary) if args.format == "json" else format_table(summary))
        return 0
    from .compiler import compile_spec

    model, plan = compile_spec(spec, device="meta")  # the plan is enough here
    check_budgets(spec)
    if args.resolved:
        import yaml

        from .compiler.plain import plain_spec

        print(
            yaml.safe_dump(plain_spec(spec, plan), sort_keys=False, default_flow_style=None), end=""
        )
        return 0
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{spec.source}: built {spec.name}: {len(plan)} layers, {params:,} parameters, "
        f"output {format_shape(plan[-1].out_shape)}"
    )
    return 0


def _build_diagram(spec: Spec, args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report.diagram import write_diagram
    from .report.summary import planned_summary

    summary, plan = planned_summary(spec)
    check_budgets(spec, summary)
    out = write_diagram(summary, plan, Path(args.diagram), args.expand)
    print(f"{out}: diagram of {spec.name} ({'expanded' if args.expand else 'repeats collapsed'})")
    return 0


def _build_sizes(args: argparse.Namespace) -> int:
    """`build SPEC --input-size 28 --input-size 96`: for each size, the output or where the
    spatial size collapses, and the layers whose stride leaves rows or columns unused."""
    if len(args.input_size) > MAX_INPUT_SIZES:
        raise NetbuilderError(
            f"{len(args.input_size)} --input-size values; the limit is "
            f"{MAX_INPUT_SIZES} in one command"
        )
    read_spec(args.spec, args.set)  # the file itself first: no torch for a mistyped spec
    from .report.sizes import format_size_report, size_reports

    reports = size_reports(args.spec, args.set, args.input_size)
    print(format_size_report(args.spec, reports))
    return EXIT_USER_ERROR if any(report.error for report in reports) else 0


def cmd_diff(args: argparse.Namespace) -> int:
    specs = [read_spec(path, args.set) for path in (args.first, args.second)]
    from .report.diff import format_diff
    from .report.summary import summarize_spec

    print(format_diff(*(summarize_spec(spec) for spec in specs)))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    failures = 0
    for path in args.specs:
        try:
            spec = read_spec(path, args.set)
            from .compiler import checked_plan  # only once a spec has been read: no torch before

            checked_plan(spec)  # shapes are part of validity
            check_budgets(spec)
        except NetbuilderError as error:
            print(error, file=sys.stderr)
            failures += 1
        else:
            print(f"{path}: ok")
    return EXIT_USER_ERROR if failures else 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from .report.formatting import format_blocks
    from .spec.registry import BLOCKS

    print(format_blocks(list(BLOCKS)))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .spec.schema import spec_schema

    print(json.dumps(spec_schema(editor=True), indent=2))
    return 0


def cmd_specs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report.zoo import spec_table, with_table
    from .spec.bundled import bundled_dir

    table = spec_table(Path(args.directory) if args.directory else bundled_dir())
    if args.update_readme:
        readme = Path(args.update_readme)
        readme.write_text(with_table(readme.read_text(encoding="utf-8"), table), encoding="utf-8")
        print(f"updated the spec table in {readme}")
    else:
        print(table)
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report.zoo import zoo_page

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(zoo_page(Path(args.specs), Path(args.results)), encoding="utf-8")
    print(f"wrote {out}")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its refusals in netbuilder's form: one located line, exit code 2, no
    usage block (`--help` still prints it). Its subcommand parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        raise NetbuilderError(message, where=self.prog)


def build_parser() -> argparse.ArgumentParser:
    common = OneLineParser(add_help=False)
    common.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first so its @register blocks are available",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    parser = OneLineParser(prog="netbuilder", description=__doc__, parents=[common])
    parser.add_argument("--version", action="version", version=f"netbuilder {__version__}")
    sub = _Subcommands(
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common
    )

    build = sub.add_parser("build", help="compile a spec; --summary prints the layer table")
    build.add_argument("spec")
    build.add_argument("--summary", action="store_true", help="print the layer/shape table")
    build.add_argument("--format", choices=["table", "json"], default="table")
    build.add_argument(
        "--depth",
        type=int,
        default=1,
        help="1: one row per block; 2: also the layers inside each block",
    )
    build.add_argument(
        "--resolved",
        action="store_true",
        help="print the spec with everything resolved (extends, params, "
        "expressions, repeat, macros): a plain spec file",
    )
    build.add_argument(
        "--input-size",
        action="append",
        type=_size,
        metavar="N or HxW",
        help="check the spec at this input size instead (repeatable)",
    )
    build.add_argument(
        "--diagram",
        metavar="FILE",
        help="write a diagram: .mmd (Mermaid), .dot (Graphviz), .svg/.png (needs dot)",
    )
    build.add_argument("--expand", action="store_true", help="--diagram: draw every repeated copy")
    _add_set_option(build)
    build.set_defaults(handler=cmd_build)

    diff = sub.add_parser("diff", help="compare two specs layer by layer, with totals and ratios")
    diff.add_argument("first")
    diff.add_argument("second")
    _add_set_option(diff)
    diff.set_defaults(handler=cmd_diff)

    validate = sub.add_parser("validate", help="check specs; exit 0 when all are valid")
    validate.add_argument("specs", nargs="+")
    _add_set_option(validate)
    validate.set_defaults(handler=cmd_validate)

    sub.add_parser("blocks", help="list the registered blocks and their parameters").set_defaults(
        handler=cmd_blocks
    )
    sub.add_parser("schema", help="print the spec's JSON Schema (draft 2020-12)").set_defaults(
        handler=cmd_schema
    )
    specs = sub.add_parser("specs", help="table of the specs in a directory (markdown)")
    specs.add_argument(
        "directory", nargs="?", default=None, help="a folder of specs (default: the bundled ones)"
    )
    specs.add_argument("--update-readme", metavar="README", help="rewrite its generated section")
    specs.set_defaults(handler=cmd_specs)
    zoo = sub.add_parser("zoo", help="write the model zoo page from the specs and results")
    zoo.add_argument("--specs", default="specs")
    zoo.add_argument("--results", default="results/mnist.json")
    zoo.add_argument("--out", default="docs/zoo.md")
    zoo.set_defaults(handler=cmd_zoo)
    _add_training_commands(sub)
    return parser


def _size(text: str) -> tuple[int, int]:
    """`28` or `224x192` (height x width) for --input-size."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}")
    height = int(parts[0])
    return height, int(parts[-1])


class _Subcommands:
    """Adds every subcommand with the common options, so they work before or after it."""

    def __init__(
        self,
        sub: argparse._SubParsersAction[OneLineParser],
        common: OneLineParser,
    ):
        self._sub = sub
        self._common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return self._sub.add_parser(name, parents=[self._common], **kwargs)


def _add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set input.size=224 (repeatable)",
    )


def _add_training_commands(sub: _Subcommands) -> None:
    from .cli_deploy import register_deploy
    from .cli_search import register_search
    from .cli_train import register_commands

    register_commands(sub, _add_set_option)
    register_deploy(sub, _add_set_option)
    register_search(sub, _add_set_option)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    plugins = _early_plugins(argv)
    debug = "--debug" in argv
    try:
        load_plugins(plugins)  # before parsing, so `blocks` and `schema` see plugin blocks
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
        return code
    except NetbuilderError as error:
        if debug:
            traceback.print_exc()
        rank = os.environ.get("RANK", "0")  # under torchrun, each process says who it is
        print(error if rank == "0" else f"rank {rank}: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    except MemoryError:
        print(f"error: {OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug: one line by default, the traceback with --debug
        if is_out_of_memory(exc):  # torch's allocators raise RuntimeError subclasses
            print(f"error: {OUT_OF_MEMORY} ({first_line(exc)})", file=sys.stderr)
            return EXIT_USER_ERROR
        if debug:
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}; this is a bug in netbuilder, "
            "rerun with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


OUT_OF_MEMORY = (
    "out of memory: the machine could not hold what this asks for; lower "
    "train.batch_size (or train.eval_batch_size), the input size or the widths"
)


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation the machine refused (CPU or GPU), not a bug in netbuilder."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        type(exc).__name__ == "OutOfMemoryError"
        or "can't allocate memory" in text
        or "out of memory" in text.lower()
    )


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _reader_went_away() -> int:
    """`netbuilder schema | head`: the reader closed the pipe; stop quietly, like `cat` does.
    Python would complain again when it flushes stdout at exit, so point it at /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _early_plugins(argv: list[str]) -> list[str]:
    """`--plugin NAME` values, read before argparse runs (plugins may add blocks)."""
    found = []
    for index, word in enumerate(argv):
        if word == "--plugin" and index + 1 < len(argv):
            found.append(argv[index + 1])
        elif word.startswith("--plugin="):
            found.append(word.split("=", 1)[1])
    return found


if __name__ == "__main__":
    sys.exit(main())
