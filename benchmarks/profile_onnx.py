"""Where ONNX Runtime spends its time in the exported DepthPolyp graph: kernel-time share per op type.

    python benchmarks/profile_onnx.py [--model M | --onnx FILE] [--batch 1] [--runs 30] [--threads 2]

Runs the graph under ONNX Runtime's profiler (``SessionOptions.enable_profiling``) with the same
session options as the ``Predictor``, sums the ``*_kernel_time`` events of the timed runs by op type
and prints each type's share of the total kernel time, its count per run and the mean time per run.
Shares are robust to a busy machine in a way absolute frames/s are not. Without ``--model``/``--onnx``
it exports an untrained network (same graph, same speed) with ``export_onnx_model``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def op_shares(onnx_path: str | os.PathLike, batch: int = 1, runs: int = 30, threads: int = 2, warmup: int = 5):
    """{op type: (share of kernel time, nodes per run, mean µs per run)} and the mean kernel ms per run."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((batch, 3, 224, 224), dtype=np.float32)
        for _ in range(warmup + runs):
            sess.run(None, {"image": x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    run_starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    first_timed = run_starts[warmup] if len(run_starts) > warmup else 0
    dur, count = defaultdict(float), defaultdict(int)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first_timed:
            op = e["args"].get("op_name", "?")
            dur[op] += e["dur"]
            count[op] += 1
    total = sum(dur.values())
    table = {op: (dur[op] / total, count[op] / runs, dur[op] / runs) for op in sorted(dur, key=dur.get, reverse=True)}
    return table, total / runs / 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", help="model name or directory (uses its model.onnx)")
    src.add_argument("--onnx", help="an ONNX file")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    if args.onnx:
        path = Path(args.onnx)
    elif args.model:
        from napari_depthpolyp.models import resolve_model

        path = resolve_model(args.model).onnx_path
    else:
        from napari_depthpolyp.model import DepthPolyp
        from napari_depthpolyp.models import ModelCard, export_onnx_model

        path = Path(tempfile.mkdtemp()) / "model.onnx"
        export_onnx_model(DepthPolyp().eval(), path, ModelCard(name="untrained", version="0"))
    table, ms = op_shares(path, args.batch, args.runs, args.threads)
    print(f"{path}  batch {args.batch}, {args.runs} runs, {args.threads} threads: {ms:.2f} ms kernel time per run")
    print(f"{'op type':28s} {'share':>7s} {'nodes':>6s} {'µs/run':>8s}")
    for op, (share, n, us) in table.items():
        print(f"{op:28s} {100 * share:6.1f}% {n:6.0f} {us:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
