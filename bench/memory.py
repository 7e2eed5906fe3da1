"""Memory: the summary's torchsummary-style estimate against one real training step.

The estimate (`build --summary`) is for a batch of one: forward/backward = 2 x every counted
activation x 4 bytes. Scaled to the batch size and with the parameter size added (the step
allocates one gradient per weight), it is compared with the peak of the bytes a real step has
allocated beyond what existed before it (weights, optimizer state and the input batch), read
from PyTorch's CPU allocator through the profiler's memory events (`profile_memory=True`).
With `--device cuda` the peak is `torch.cuda.max_memory_allocated` over the step instead.

    python bench/memory.py [--batch-size 128] [--device cpu|cuda] [SPEC ...]
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import netbuilder  # noqa: E402
from netbuilder.report.summary import MB, summarize  # noqa: E402
from netbuilder.training.loop import build_session, train_step  # noqa: E402

DEFAULT_SPECS = ["model5", "squeezenet_v11", "mobilenet_v1"]
INFERENCE_SPECS = [
    "mobilenet_v3_small",
    "mobilenet_v2",
    "efficientnet_b0",
    "mobilenet_v1",
    "squeezenet_v11",
    "resnet18",
    "model5",
]
PLAIN_STEP = ["train.channels_last=false", "train.amp=none", "train.compile=false"]


def estimate_mb(spec: netbuilder.Spec, batch_size: int) -> tuple[float, float]:
    """(forward/backward for the batch, parameter size) in MiB, from the summary."""
    model, plan = netbuilder.compile_spec(spec)
    memory = summarize(model, plan, spec).memory
    return memory.forward_backward * batch_size, memory.params


def measured_peak_mb(spec: netbuilder.Spec, batch_size: int, device: torch.device) -> float:
    """Peak MiB allocated by one fp32 training step beyond what existed before it."""
    session = build_session(spec, spec.train, device, steps_per_epoch=10)
    x = torch.randn(batch_size, *spec.input_shape, device=device)
    y = torch.randint(0, spec.num_classes, (batch_size,), device=device)
    for _ in range(2):  # oneDNN primitives, optimizer state: allocated once, not per step
        train_step(session, x, y)
    session.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        train_step(session, x, y)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / MB
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        train_step(session, x, y)
    return profiled_peak_mb(prof)


def profiled_peak_mb(prof: profile) -> float:
    """The most MiB held at once beyond the start, from the profiler's allocation events."""
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak / MB


def measured_inference_mb(spec: netbuilder.Spec) -> float:
    """Peak MiB the CPU allocator holds during one inference (batch 1, the image included),
    beyond the weights, in inference mode, with PyTorch's native kernels (oneDNN also
    allocates a reordered copy of a conv's weights per call, which is not an activation)."""
    model = netbuilder.build_model(spec).eval()
    with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False):
        for _ in range(2):  # oneDNN primitives: made once, not per call
            model(torch.zeros(1, *spec.input_shape))
        gc.collect()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(torch.zeros(1, *spec.input_shape))
    return profiled_peak_mb(prof)


def inference_table(names: list[str]) -> None:
    from netbuilder.compiler import compile_spec
    from netbuilder.report.memory import peak_activation_memory

    print(
        "\ninference, batch 1, fp32: the summary's peak activation memory against the CPU "
        "allocator's measured peak"
    )
    print(f"{'spec':<20}{'computed':>10}{'measured':>10}{'measured/computed':>19}  peak at")
    for name in names:
        spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml", PLAIN_STEP)
        model, plan = compile_spec(spec, device="meta")
        peak = peak_activation_memory(model, spec.input_shape, [p.node.name for p in plan])
        computed = peak.bytes / MB
        measured = measured_inference_mb(spec)
        print(
            f"{name:<20}{computed:>8.3f}MB{measured:>8.3f}MB{measured / computed:>19.2f}"
            f"  {peak.layer}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--inference-only",
        action="store_true",
        help="only the inference table (peak activation memory)",
    )
    args = parser.parse_args()
    if args.inference_only:
        inference_table(args.specs if args.specs != DEFAULT_SPECS else INFERENCE_SPECS)
        return 0
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {args.device}, batch {args.batch_size}, fp32, "
        "contiguous (NCHW)"
    )
    print(
        f"{'spec':<16}{'fwd/bwd est':>12}{'params':>9}{'estimate':>10}{'measured':>10}"
        f"{'measured/est':>14}"
    )
    for name in args.specs:
        spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml", PLAIN_STEP)
        forward_backward, params = estimate_mb(spec, args.batch_size)
        estimate = forward_backward + params
        measured = measured_peak_mb(spec, args.batch_size, device)
        print(
            f"{name:<16}{forward_backward:>10.1f}MB{params:>7.2f}MB{estimate:>8.1f}MB"
            f"{measured:>8.1f}MB{measured / estimate:>14.2f}"
        )
    if args.device == "cpu":
        inference_table(INFERENCE_SPECS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
