"""Fault injection: hostile and careless input never hangs netbuilder, never fills its memory,
never ends in a traceback, never gives a silently wrong result, and never loses a run.

Each class of fault found by hand has a test here (the malformed-spec corpus is in
test_errors.py, damaged IDX files in test_data.py, images in test_inference.py).
"""

from __future__ import annotations

import copy
import errno
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from conftest import ROOT, tiny_spec, write_spec
from netbuilder import read_spec
from netbuilder.errors import NetbuilderError
from netbuilder.spec.document import parse_spec
from netbuilder.spec.overrides import apply_overrides
from netbuilder.training import loop as loop_module
from netbuilder.training.checkpoint import FORMAT_VERSION, load_checkpoint, spec_fingerprint
from netbuilder.training.folder import LOCK_FILE, default_run_dir
from netbuilder.training.records import read_metrics
from netbuilder.training.run import run_training

BAD = ROOT / "tests" / "specs_bad"
CLI = [sys.executable, str(ROOT / "cli.py")]


def run_process(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI in a fresh process: its result and its peak memory (MiB), from a wrapper that
    reads its own children's rusage (so earlier children of pytest do not count)."""
    wrapper = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(done.returncode)"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    *stderr, peak_kib = done.stderr.rstrip("\n").split("\n")
    done.stderr = "\n".join(stderr)
    return done, int(peak_kib) / 1024


def assert_one_line(done: subprocess.CompletedProcess, fragment: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], done.stderr


# ---------------------------------------------------------------- denial of service


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("alias_bomb.yaml", "once its YAML aliases are expanded"),
        ("giant_weights.yaml", "the model has 90,010,100,010 parameters"),
        ("giant_input.yaml", "one image's layer outputs take"),
        ("lang_repeat_bomb.yaml", "layer instances"),
        ("lang_nested_repeat_bomb.yaml", "layer instances"),
        ("lang_macro_bomb.yaml", "once the macros are expanded"),
    ],
)
@pytest.mark.slow
def test_refused_specs_stay_small_in_a_real_process(name: str, fragment: str) -> None:
    """Refused before the work: within the memory bound (and the timeout; the time it takes
    is bench/latency.py's)."""
    done, peak_mib = run_process("build", str(BAD / name), "--summary")
    assert_one_line(done, fragment)
    assert peak_mib < 1024, f"{peak_mib:.0f} MiB for a refused spec"


def test_special_files_are_refused_without_reading_them(tmp_path: Path, run_cli) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it would block until a writer came
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for path, fragment in (
        (fifo, "is not a regular file"),
        (Path("/dev/zero"), "is not a regular file"),
        (tmp_path / "loop1", "Too many levels of symbolic links"),
        (tmp_path, "is a directory"),
    ):
        result = run_cli("validate", str(path))
        assert result.code == 2 and fragment in result.err, (path, result.err)
        assert len(result.err.strip().splitlines()) == 1


def test_fifo_does_not_hang_a_real_process(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    done, _ = run_process("build", str(tmp_path / "fifo.yaml"), timeout=30)
    assert_one_line(done, "is not a regular file")


def test_huge_and_binary_files_are_refused(tmp_path: Path, run_cli) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: x\nlayers:\n" + "  - relu: {}\n" * 100_000)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: x\n\xff\xfe\x00\x01")
    nul = tmp_path / "nul.yaml"
    nul.write_text("name: x\x00\n")
    bigint = tmp_path / "bigint.yaml"
    bigint.write_text("name: x\ninput: {channels: 1, size: " + "9" * 5000 + "}\n")
    for path, fragment in (
        (huge, "the limit is 262,144"),
        (binary, "not UTF-8"),
        (nul, "invalid YAML: unacceptable character #x0000"),
        (bigint, "Exceeds the limit (4300 digits)"),
    ):
        result = run_cli("validate", str(path))
        assert result.code == 2 and fragment in result.err, (path, result.err)
        assert len(result.err.strip().splitlines()) == 1


def test_many_layers_are_refused_by_the_schema(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "name: x\ninput: {channels: 1, size: 8}\nnum_classes: 10\nlayers: ["
        + ", ".join(["{relu: }"] * 6000)
        + "]\n"
    )
    result = run_cli("validate", str(path))
    assert result.code == 2 and "more than 5,000 layers" in result.err


def test_legitimate_anchors_still_work() -> None:
    text = (
        "name: x\ninput: {channels: 1, size: 8}\nnum_classes: 10\nlayers:\n"
        "  - conv: &block {out_channels: 4, padding: 1}\n  - conv: *block\n"
        "  - conv: {out_channels: num_classes}\n  - gap: {}\n"
    )
    document = parse_spec(text, "anchors.yaml")
    assert document.data["layers"][0]["conv"] == document.data["layers"][1]["conv"]


def test_a_checkpoint_holding_a_giant_spec_is_refused_before_allocating(
    tmp_path: Path, run_cli
) -> None:
    spec = yaml.safe_load((BAD / "giant_weights.yaml").read_text())
    payload = {
        "format_version": FORMAT_VERSION,
        "model": {},
        "epoch": 1,
        "spec": spec,
        "spec_name": "bad",
        "fingerprint": spec_fingerprint(spec),
        "train_config": {},
        "class_names": [str(i) for i in range(10)],
        "history": [],
    }
    torch.save(payload, tmp_path / "giant.pt")
    result = run_cli("predict", str(tmp_path / "giant.pt"), str(tmp_path / "x.png"))
    assert result.code == 2 and "the model has 90,010,100,010 parameters" in result.err


# ---------------------------------------------------------------- silent wrong results


def test_set_on_an_aliased_layer_changes_only_that_layer() -> None:
    text = (
        "name: x\ninput: {channels: 1, size: 8}\nnum_classes: 10\nlayers:\n"
        "  - conv: &c {out_channels: 4}\n  - conv: *c\n  - gap: {}\n"
    )
    changed = apply_overrides(parse_spec(text), ["layers.0.conv.out_channels=8"])
    assert changed.data["layers"][0]["conv"]["out_channels"] == 8
    assert changed.data["layers"][1]["conv"]["out_channels"] == 4


def test_divergence_seen_only_in_the_test_loss_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = loop_module.evaluate_model

    def nan_after_epoch_one(*args: Any, **kwargs: Any) -> Any:
        stats = real(*args, **kwargs)
        if len(list((tmp_path / "run").glob("last.pt"))):
            return stats.__class__(float("nan"), stats.accuracy, stats.confusion)
        return stats

    monkeypatch.setattr(loop_module, "evaluate_model", nan_after_epoch_one)
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 3})))
    with pytest.raises(NetbuilderError, match="diverged: the test loss is nan after epoch 2"):
        run_training(spec, tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


# ---------------------------------------------------------------- no tracebacks


def test_set_errors_name_the_argument_not_a_line(run_cli) -> None:
    result = run_cli("validate", str(ROOT / "specs" / "model5.yaml"), "--set", "train.epochs=2.0")
    assert result.err.strip() == (
        "--set train.epochs=2.0: error: train.epochs: expected an integer, got 2.0"
    )


@pytest.mark.slow
def test_one_cycle_survives_a_four_step_smoke_run(tmp_path: Path) -> None:
    spec = read_spec(
        write_spec(
            tmp_path / "s.yaml",
            tiny_spec(train={"epochs": 1, "batch_size": 128, "schedule": {"name": "onecycle"}}),
        )
    )
    assert run_training(spec, tmp_path / "run", progress=False).epochs == 1


def test_one_cycle_of_two_steps_is_one_line(tmp_path: Path) -> None:
    spec = read_spec(
        write_spec(
            tmp_path / "s.yaml",
            tiny_spec(train={"epochs": 1, "batch_size": 300, "schedule": {"name": "onecycle"}}),
        )
    )
    with pytest.raises(NetbuilderError, match="onecycle needs at least 3 optimizer steps"):
        run_training(spec, tmp_path / "run", progress=False)


@pytest.mark.slow
def test_batchnorm_after_global_pooling_survives_a_lone_last_image(tmp_path: Path) -> None:
    """512 synthetic images in batches of 511 leave one image: BatchNorm1d after `gap` cannot
    train on a batch of one, so the trainer leaves it out."""
    data = tiny_spec(train={"epochs": 1, "batch_size": 511})
    data["layers"][-1:-1] = [{"bn": {}}]  # gap -> bn -> log_softmax
    spec = read_spec(write_spec(tmp_path / "s.yaml", data))
    assert run_training(spec, tmp_path / "run", progress=False).epochs == 1


@pytest.mark.parametrize("case", ["file", "unwritable"])
def test_bad_out_folders_are_one_line(tmp_path: Path, run_cli, case: str) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 1}))
    out = tmp_path / "out"
    out.write_text("a file")
    target = out if case == "file" else out / "run"  # nothing can be created under a file
    result = run_cli("train", str(spec), "--out", str(target), "--no-progress")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result.err
    assert ("is a file" if case == "file" else "cannot create the run folder") in result.err


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 2})))
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_until_full(fd: int) -> None:
        if (tmp_path / "run" / "last.pt").exists():
            raise OSError(28, "No space left on device")
        calls["n"] += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_full)
    with pytest.raises(NetbuilderError, match=r"cannot write .*: No space left on device"):
        run_training(spec, tmp_path / "run", progress=False)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda p: p.pop("model"), "'model' is missing"),
        (lambda p: p.update(epoch="one"), "'epoch' is str, expected int"),
        (lambda p: p.update(model={"w": [1, 2]}), "weights are not all tensors"),
        (lambda p: p.update(spec=[1]), "'spec' is list, expected dict"),
        (lambda p: p.update(class_names="0123456789"), "'class_names' is str"),
    ],
)
@pytest.mark.slow
def test_loadable_but_malformed_checkpoints_are_one_line(
    tmp_path: Path, run_cli, change: Any, fragment: str
) -> None:
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 1})))
    run_training(spec, tmp_path / "run", progress=False)
    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    change(payload)
    torch.save(payload, tmp_path / "bad.pt")
    for command in (
        ["eval", str(tmp_path / "bad.pt")],
        ["predict", str(tmp_path / "bad.pt"), str(tmp_path / "x.png")],
    ):
        result = run_cli(*command)
        assert result.code == 2 and fragment in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_weights_that_do_not_fit_their_spec_are_one_line(tmp_path: Path, run_cli) -> None:
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 1})))
    run_training(spec, tmp_path / "run", progress=False)
    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    payload["model"] = {
        key: value[:1] if value.dim() else value for key, value in payload["model"].items()
    }
    torch.save(payload, tmp_path / "bad.pt")
    result = run_cli("eval", str(tmp_path / "bad.pt"))
    assert result.code == 2 and "the weights do not fit spec 'tiny'" in result.err


@pytest.mark.slow
def test_piping_into_head_is_quiet() -> None:
    command = (
        f"{sys.executable} cli.py build specs/squeezenet_v11.yaml --format json --depth 3 | head -1"
    )
    done = subprocess.run(
        command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.stdout == "{\n" and "Traceback" not in done.stderr and "Error" not in done.stderr


def test_unexpected_exceptions_are_one_line_without_debug(run_cli, monkeypatch) -> None:
    import netbuilder.cli as cli

    def broken(args: Any) -> int:
        raise KeyError("boom")

    monkeypatch.setattr(cli, "cmd_blocks", broken)
    result = run_cli("blocks")
    assert result.code == 70
    assert result.err.strip().startswith("internal error: KeyError: 'boom'; this is a bug")


# ---------------------------------------------------------------- runs never mix or get lost


@pytest.mark.slow
def test_a_second_training_into_a_busy_folder_is_refused(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 50}))
    first = subprocess.Popen(
        [*CLI, "train", str(spec_path), "--out", str(tmp_path / "run"), "--no-progress"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / "spec.yaml").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        second, _ = run_process(
            "train", str(spec_path), "--out", str(tmp_path / "run"), "--overwrite", "--no-progress"
        )
        assert_one_line(second, f"is in use by another run (pid {first.pid} ")
    finally:
        first.kill()
        first.wait()
    assert (tmp_path / "run" / LOCK_FILE).exists()


def test_spec_names_cannot_steer_the_run_folder() -> None:
    folder = default_run_dir("../../etc/x y")
    assert folder.parent == Path("runs") and ".." not in folder.name and " " not in folder.name
    assert folder.name.startswith("etc_x_y-")
    assert default_run_dir("...").name.startswith("run-")


@pytest.mark.slow
def test_resume_repairs_records_a_kill_left_behind(tmp_path: Path) -> None:
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 2})))
    run_training(spec, tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    (tmp_path / "run" / "metrics.csv").write_text("epoch\n1\n")  # killed before the rewrite
    (tmp_path / "run" / "curves.png").unlink()
    run_training(spec, tmp_path / "run", resume=True, progress=False)
    assert read_metrics(tmp_path / "run" / "metrics.csv") == rows
    assert (tmp_path / "run" / "curves.png").is_file()


@pytest.mark.slow
def test_temp_files_of_a_killed_run_are_cleaned_on_any_start(tmp_path: Path) -> None:
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 1})))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".last.pt.0badf00d.tmp").write_bytes(b"half a checkpoint")
    run_training(spec, tmp_path / "run", progress=False)
    assert not list((tmp_path / "run").glob(".*.tmp"))


# ---------------------------------------------------------------- messages


@pytest.mark.slow
def test_a_checkpoint_needing_a_plugin_says_so(tmp_path: Path, run_cli) -> None:
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 1})))
    run_training(spec, tmp_path / "run", progress=False)
    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    payload["spec"]["layers"][1] = {"my_pool": {}}
    payload["fingerprint"] = spec_fingerprint(payload["spec"])
    torch.save(payload, tmp_path / "plugin.pt")
    result = run_cli("eval", str(tmp_path / "plugin.pt"))
    assert result.code == 2
    assert (
        "uses block 'my_pool', which is not registered; load the module that defines it "
        "with --plugin MODULE" in result.err
    )


@pytest.mark.slow
def test_an_edited_checkpoint_spec_is_reported_as_such_by_eval(tmp_path: Path, run_cli) -> None:
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 1})))
    run_training(spec, tmp_path / "run", progress=False)
    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    payload["spec"] = copy.deepcopy(payload["spec"])
    payload["spec"]["num_classes"] = 9
    torch.save(payload, tmp_path / "edited.pt")
    result = run_cli("eval", str(tmp_path / "edited.pt"))
    assert result.code == 2
    assert "the spec stored in the checkpoint does not match its fingerprint" in result.err


ONE_BY_ONE = (
    "name: bn1x1\ninput: {channels: 1, size: 2}\nnum_classes: 10\nlayers:\n"
    "  - conv_bn: {out_channels: 10, kernel_size: 2}\n  - gap: {}\n"
    "train: {dataset: synthetic, batch_size: 1, epochs: 1}\n"
)


@pytest.mark.parametrize("command", ["validate", "train"])
def test_a_batch_batchnorm_cannot_train_on_is_refused_up_front(
    tmp_path: Path, run_cli, command: str
) -> None:
    spec = tmp_path / "bn.yaml"
    spec.write_text(ONE_BY_ONE)
    extra = ["--out", str(tmp_path / "run"), "--no-progress"] if command == "train" else []
    result = run_cli(command, str(spec), *extra)
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line == (
        f"{spec}:7:41: error: train.batch_size: a batch of 1 cannot train layer "
        "'conv_bn1' (conv_bn): its BatchNorm sees a 1x1 map, one value per channel, "
        "which it cannot normalise; use a batch of 2 or more"
    )
    assert not (tmp_path / "run").exists()
    assert run_cli("validate", str(spec), "--set", "train.batch_size=2").code == 0


def test_a_huge_param_behind_repeat_is_refused_before_expanding(run_cli) -> None:
    """`--set params.n=100000000` on a spec whose stages repeat n times."""
    result = run_cli(
        "validate", str(ROOT / "specs" / "resnet8_mnist.yaml"), "--set", "params.n=100000000"
    )
    assert result.code == 2 and "layer instances" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_removing_thousands_of_layers_is_linear(tmp_path: Path) -> None:
    """Edits find layers through an index; 4,900 removes of 5,000 layers stay quick."""
    base = ["name: base", "input: {channels: 1, size: 8}", "num_classes: 10", "layers:"]
    base += [f"  - relu: {{}}\n    name: r{i}" for i in range(4900)]
    base += ["  - conv: {out_channels: num_classes}", "  - gap: {}"]
    (tmp_path / "base.yaml").write_text("\n".join(base) + "\n")
    child = ["extends: base.yaml", "remove:", *(f"  - r{i}" for i in range(4900))]
    (tmp_path / "child.yaml").write_text("\n".join(child) + "\n")
    spec = read_spec(tmp_path / "child.yaml")
    assert [layer.block for layer in spec.layers] == ["conv", "gap"]


# ---------------------------------------------------------------- extends: only specs, never echoed


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("/etc/passwd", "is absolute"),
        ("../../../../../etc/passwd.yaml", "lies outside the spec's folder"),
        ("notes.txt", "is not a spec file name"),
        ("loop1.yaml", "Symlink loop"),
        ("x\0y.yaml", "extends names a spec file"),
        ("not_a_spec.yaml", "not_a_spec.yaml is not a spec"),
    ],
)
def test_extends_reads_only_specs_and_never_prints_a_file(
    tmp_path: Path, run_cli, target: str, fragment: str
) -> None:
    secret = "root:x:0:0:root:/root:/bin/bash"
    (tmp_path / "not_a_spec.yaml").write_text(f"{secret}\n")
    (tmp_path / "notes.txt").write_text(f"{secret}\n")
    (tmp_path / "loop1.yaml").symlink_to(tmp_path / "loop2.yaml")
    (tmp_path / "loop2.yaml").symlink_to(tmp_path / "loop1.yaml")
    spec = tmp_path / "child.yaml"
    spec.write_text(yaml.safe_dump({"extends": target, "name": "child"}))
    result = run_cli("validate", str(spec))
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"{spec}:1:10: error: extends: ") and fragment in line, line
    assert secret not in result.err and "root:x" not in result.err


def test_extends_may_reach_a_sibling_folder_inside_the_working_folder(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`experiments/wide.yaml` extending `../specs/model5.yaml`, run from the project."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "specs" / "model5.yaml").write_text((ROOT / "specs" / "model5.yaml").read_text())
    (tmp_path / "experiments" / "wide.yaml").write_text(
        "extends: ../specs/model5.yaml\nname: wide\n"
    )
    monkeypatch.chdir(tmp_path)
    assert run_cli("validate", "experiments/wide.yaml").code == 0


def test_extends_reads_from_the_folders_the_spec_path_lists(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "model5.yaml").write_text((ROOT / "specs" / "model5.yaml").read_text())
    (tmp_path / "mine").mkdir()
    spec = tmp_path / "mine" / "wide.yaml"
    spec.write_text("extends: ../shared/model5.yaml\nname: wide\n")
    assert run_cli("validate", str(spec)).code == 2  # outside its folder and the working folder
    monkeypatch.setenv("NETBUILDER_SPEC_PATH", str(shared))
    assert run_cli("validate", str(spec)).code == 0


# ---------------------------------------------------------------- --out replaces regular files only


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder", "device"])
def test_export_replaces_only_a_regular_file(tmp_path: Path, run_cli, kind: str) -> None:
    out = tmp_path / "model.onnx"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("kept")
        out.symlink_to(tmp_path / "elsewhere")
    elif kind == "folder":
        out.mkdir()
    else:
        out = Path("/dev/null")
    before = out.lstat()
    result = run_cli(
        "export", str(ROOT / "specs" / "model5.yaml"), "--format", "torchscript", "--out", str(out)
    )
    assert result.code == 2, result.err
    (line,) = result.err.strip().splitlines()
    assert str(out) in line and ("not a regular file" in line or "is a folder" in line)
    after = out.lstat()
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)


def test_a_write_into_a_read_only_folder_reports_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temp file's cleanup fails too there (EROFS); the error is the write's, one line."""
    from netbuilder.data import files

    def read_only(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.Path, "unlink", read_only)
    with pytest.raises(NetbuilderError, match=r"cannot write .*model.pt: Read-only file system"):
        files.atomic_write_file(tmp_path / "model.pt", read_only)


def test_a_checkpoint_that_would_inflate_is_refused_before_reading(tmp_path: Path, run_cli) -> None:
    """A small file holding a deflated huge member: refused from the zip directory alone."""
    real = tmp_path / "real.pt"
    torch.save({"model": {"w": torch.zeros(4)}}, real)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(real) as source, zipfile.ZipFile(bomb, "w") as target:
        for member in source.infolist():
            target.writestr(member, source.read(member), compress_type=zipfile.ZIP_STORED)
        target.writestr("real/data/1", b"\0" * (64 * 2**20), compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2**20
    for command in (
        ["eval", str(bomb)],
        ["predict", str(bomb), "x.png"],
        ["export", str(bomb), "--out", str(tmp_path / "x.onnx")],
    ):
        result = run_cli(*command)
        assert result.code == 2, result.err
        assert "is compressed, and torch.save stores members as they are" in result.err


def test_a_checkpoint_beyond_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netbuilder.training import checkpoint

    path = tmp_path / "big.pt"
    torch.save({"w": torch.zeros(2**16)}, path)
    monkeypatch.setattr(checkpoint, "MAX_CHECKPOINT_BYTES", 2**16)
    with pytest.raises(NetbuilderError, match=r"holds 0\.3 MB; the limit for a checkpoint is"):
        checkpoint.load_checkpoint(path)


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 64 KB filesystem (tmpfs), for writes that run out of space; skipped where this
    process may not mount one."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["onnx", "exported-program", "torchscript"])
def test_an_export_onto_a_full_disk_is_one_line(full_disk: Path, form: str) -> None:
    """torch's own writers abort the process on a full disk; the model is serialised in
    memory instead, and the write that fails is netbuilder's."""
    out = full_disk / f"model.{form}"
    done, _ = run_process(
        "export", str(ROOT / "specs" / "squeezenet_v11.yaml"), "--format", form, "--out", str(out)
    )
    assert_one_line(done, f"cannot write {out}: No space left on device")
    assert list(full_disk.iterdir()) == []  # no temp file left behind


@pytest.mark.slow
def test_training_onto_a_full_disk_is_one_line(full_disk: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(train={"epochs": 4}))
    done, _ = run_process("train", str(spec), "--out", str(full_disk / "run"), "--no-progress")
    assert done.returncode == 2, done.stderr
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr


def test_an_allocation_the_machine_refuses_is_a_user_error(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's allocators raise RuntimeError; a batch too large for the machine is not a bug."""
    from netbuilder.training import run

    def refused(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
            "can't allocate memory: you tried to allocate 26214400000 bytes."
        )

    monkeypatch.setattr(run, "_train", refused)
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec())
    result = run_cli("train", str(spec), "--out", str(tmp_path / "run"), "--no-progress")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("error: out of memory: ") and "train.batch_size" in line
