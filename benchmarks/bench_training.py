"""Training throughput of DepthPolyp on this CPU at 224x224, batch 16: the network step alone
(fp32 and bf16 autocast, channels_last) and the whole loop (cache -> augment -> degrade -> teacher ->
step) on real Kvasir-SEG frames.

    python benchmarks/bench_training.py [--steps 8] [--json OUT] [--batches 8 16 32] [--profile]
        [--compile | --malloc | --distill MODEL ... [--rounds 4]]

``--compile`` also measures the fp32 step with the network through ``torch.compile``, interleaved
with the eager step for ``--rounds`` rounds (the first step's compiling is left out of the rate and
printed apart). The trainer does not compile: on the AVX2 machine it gained 0-9 % (docs/benchmarks.md).
``--malloc`` measures the fp32 step with glibc's malloc defaults and with freed memory kept in the
process (``train/memory.py``, what the trainer does), interleaved, with the share of CPU time spent
in the kernel. ``--distill MODEL ...`` measures the whole loop plain and with those models as distillation
teachers (``--distill-from``: their forward passes, through the inference engine, on every batch),
interleaved. ``--batches`` also measures the bf16 network step at other batch sizes (images/s per size).
``--profile`` prints, instead of the rates, where one bf16 step at batch 16 spends its time: the
operators with the most self CPU time, each with its input shapes, from ``torch.profiler``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from napari_depthpolyp.model import DepthPolyp
from napari_depthpolyp.train.losses import MultiTaskLoss
from napari_depthpolyp.train.memory import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEPTHPOLYP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _step_setup(batch: int):
    torch.manual_seed(0)
    net = DepthPolyp().to(memory_format=torch.channels_last)
    crit = MultiTaskLoss()
    opt = torch.optim.AdamW(list(net.parameters()) + list(crit.parameters()), lr=1e-4)
    x = torch.rand(batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    m = (torch.rand(batch, 1, 224, 224) > 0.5).float()
    d = torch.rand(batch, 1, 224, 224)
    return net, crit, opt, x, m, d


def _attention(math_attention: bool):
    from contextlib import nullcontext

    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH]) if math_attention else nullcontext()


def step_rate(bf16: bool, steps: int, batch: int = 16, math_attention: bool = True, compile: bool = False,
              keep_memory: bool = True) -> float:
    """One network step as the training loop takes it (``math_attention``: the math kernel of
    ``scaled_dot_product_attention``, as ``train/loop.py`` uses; False: torch's default, the fused one;
    ``compile``: the network through ``torch.compile``, its random ops drawn as in eager mode;
    ``keep_memory``: glibc keeps freed memory, as in the trainer; False: glibc's defaults)."""
    with keep_freed_memory(keep_memory):
        return _step_rate(bf16, steps, batch, math_attention, compile)


def _step_rate(bf16: bool, steps: int, batch: int, math_attention: bool, compile: bool) -> float:
    net, *rest = _step_setup(batch)
    if compile:
        import torch._inductor.config as inductor_config

        inductor_config.fallback_random = True
        net = torch.compile(net)
    times = []
    with _attention(math_attention):
        for _ in range(steps + 2):
            times.append(_one_step(net, *rest, bf16))
    if compile:
        print(f"{'first compiled step':28s} {times[0]:.0f} s (compiling)", file=sys.stderr)
    times = times[2:]
    return batch * len(times) / sum(times)


def profile_step(steps: int = 3, rows: int = 25) -> str:
    """The operators of a bf16 training step at batch 16 with the most self CPU time, by input shape."""
    from torch.profiler import ProfilerActivity, profile

    args = _step_setup(16)
    with _attention(True):
        for _ in range(2):
            _one_step(*args, True)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                _one_step(*args, True)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = [f"one step: {total / 1e3 / steps:.0f} ms of self CPU time; the top {rows} operators (ms per step, share):"]
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]:
        shapes = ", ".join(str(list(s)) for s in e.input_shapes if s)[:90]
        lines.append(f"  {e.self_cpu_time_total / 1e3 / steps:7.1f} ms {100 * e.self_cpu_time_total / total:5.1f} %"
                     f"  {e.key:36s} x{e.count // steps:<3d} {shapes}")
    return "\n".join(lines)


def _one_step(net, crit, opt, x, m, d, bf16: bool) -> float:
    """Seconds for one forward, loss, backward and optimiser step."""
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = net(x)
    loss = crit(out, m, d)["total"]
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def loop_rate(steps: int, distill_from: list[str] | None = None) -> float | None:
    """The whole loop in the precision the trainer picks on this CPU (bf16 only where it is native),
    over its second epoch of ``steps`` batches (the first pays for the worker's start);
    ``distill_from``: with those teachers."""
    kvasir = SHARED / "kvasir-seg"
    if not kvasir.is_dir():
        print(f"loop: skipped ({kvasir} not found)", file=sys.stderr)
        return None
    from napari_depthpolyp.train import TrainConfig, Trainer

    rates = []

    def progress(e):
        if e["event"] == "epoch":
            rates.append(e["images_per_s"])

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(train_data=[str(kvasir)], val_data=None, epochs=2, max_steps_per_epoch=steps,
                          workers=1, name="bench", warmup_epochs=0, distill_from=distill_from)
        Trainer(cfg, run_dir=Path(tmp) / "run").run(progress=progress, out_dir=Path(tmp) / "model")
    return rates[-1] if rates else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--json")
    ap.add_argument("--batches", type=int, nargs="*", default=[], help="also measure the bf16 step at these batch sizes")
    ap.add_argument("--profile", action="store_true", help="only print where one bf16 step at batch 16 spends its time")
    ap.add_argument("--compile", action="store_true", help="only the fp32 step, eager and compiled, interleaved")
    ap.add_argument("--malloc", action="store_true",
                    help="only the fp32 step with glibc's defaults and with freed memory kept, interleaved")
    ap.add_argument("--distill", nargs="+", metavar="MODEL",
                    help="only the whole loop, plain and with these distillation teachers, interleaved")
    ap.add_argument("--rounds", type=int, default=4, help="rounds of --compile, --malloc or --distill")
    args = ap.parse_args()
    if args.distill:
        for r in range(args.rounds):
            plain, taught = loop_rate(args.steps * 2), loop_rate(args.steps * 2, args.distill)
            if plain is None or taught is None:
                return 1
            print(f"round {r + 1}: whole loop plain {plain:.2f} img/s, with {len(args.distill)} teacher(s) "
                  f"{taught:.2f} img/s ({taught / plain:.2f}x)")
        return 0
    if args.profile:
        print(profile_step())
        return 0
    if args.compile:
        for r in range(args.rounds):
            eager = step_rate(False, args.steps)
            compiled = step_rate(False, args.steps, compile=True)
            print(f"round {r + 1}: fp32 step eager {eager:.2f} img/s, compiled {compiled:.2f} img/s "
                  f"({compiled / eager - 1:+.0%})")
        return 0
    if args.malloc:
        import resource

        for r in range(args.rounds):
            line = []
            for keep in (False, True):
                before = resource.getrusage(resource.RUSAGE_SELF)
                rate = step_rate(False, args.steps, keep_memory=keep)
                after = resource.getrusage(resource.RUSAGE_SELF)
                user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
                line.append(f"{'kept' if keep else 'glibc defaults'} {rate:.2f} img/s "
                            f"({system / (user + system):.0%} in the kernel)")
            print(f"round {r + 1}: fp32 step, " + "; ".join(line))
        return 0
    from napari_depthpolyp.train.loop import bf16_is_native

    res = {
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_is_native(),
        "step_fp32_images_per_s": step_rate(False, args.steps),
        "step_bf16_images_per_s": step_rate(True, args.steps),
        "step_bf16_fused_attention_images_per_s": step_rate(True, args.steps, math_attention=False),
        "loop_images_per_s": loop_rate(args.steps * 2),
    }
    for b in args.batches:
        res[f"step_bf16_batch{b}_images_per_s"] = step_rate(True, args.steps, batch=b)
    for k, v in res.items():
        print(f"{k:28s} {v:.1f}" if isinstance(v, float) else f"{k:28s} {v}")
    if res["loop_images_per_s"]:
        hours = 200 * 800 / res["loop_images_per_s"] / 3600
        print(f"{'200 epochs x 800 frames':28s} {hours:.2f} h (without validation)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
