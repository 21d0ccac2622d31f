"""Inference speed of DepthPolyp on this CPU: torch eager, torch channels_last + inference_mode, and
ONNX Runtime, at batch 1 and 8, 224x224, fp32; flip averaging (``--tta``, ``fps_tta_b*``); plus
end-to-end ``predict`` (decode, network, masks, depth and summary written) on a real video: all 612
CVC-ClinicDB frames in sequence order (../shared/data).

    python benchmarks/bench_inference.py [--model M [--reexport]] [--json OUT] [--seconds 5] [--rounds 5]

Prints params, MACs and frames/s. Without a trained model (``--model``, or the bundled default)
the speed figures use an untrained network, which runs at the same speed; the script says so.

ONNX Runtime runs two graphs of the same weights, interleaved in short bursts (``--rounds`` rounds,
medians reported, so that a load change hits both alike): the model's own ``model.onnx`` (what
``export_onnx_model`` writes, see ``model/export.py``) and a direct export of the network as
published (legacy exporter, dynamic batch axis), as ``fps_onnxruntime_direct_b*``. Their ratio is
``onnx_speedup_b*``. Measure on an idle machine: other processes on the cores distort frames/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_depthpolyp.model import DepthPolyp, count_macs, count_parameters
from napari_depthpolyp.models import ModelCard, NoModelError, export_onnx_model, resolve_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEPTHPOLYP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def rate(fn, batch: int, seconds: float) -> float:
    for _ in range(3):
        fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def interleaved_rates(fns: dict, batch: int, seconds: float, rounds: int) -> dict:
    """Median frames/s of each function, measured in alternating bursts of seconds/rounds."""
    import statistics

    runs: dict = {name: [] for name in fns}
    for r in range(rounds):
        for name in list(fns)[:: 1 if r % 2 == 0 else -1]:
            runs[name].append(rate(fns[name], batch, seconds / rounds))
    return {name: statistics.median(v) for name, v in runs.items()}


def export_direct(net, path: Path) -> Path:
    """The network exported as it stands (legacy exporter, dynamic batch), as the published
    implementation did: the reference the model's own graph is compared with."""
    from napari_depthpolyp.model import ProbabilityWrapper

    with torch.inference_mode():
        torch.onnx.export(
            ProbabilityWrapper(net).eval(), (torch.rand(1, 3, 224, 224),), str(path),
            input_names=["image"], output_names=["segmentation", "depth"], opset_version=17,
            dynamic_axes={"image": {0: "N"}, "segmentation": {0: "N"}, "depth": {0: "N"}}, dynamo=False,
        )
    return path


def make_cvc_video(out: Path, sequence: int | None = None) -> Path:
    """A 25 frames/s video of one CVC-ClinicDB sequence, or of all 612 frames (29 sequences back to
    back, ~24 s) when ``sequence`` is None."""
    import csv

    from napari_depthpolyp.io import make_video, read_image

    cvc = SHARED / "cvc-clinicdb"
    with open(cvc / "sequences.csv") as fh:
        rows = sorted((int(r["sequence"]), int(r["frame"])) for r in csv.DictReader(fh))
    frames = [f for seq, f in rows if sequence is None or seq == sequence]
    make_video((read_image(cvc / "images" / f"{f}.png") for f in frames), out, fps=25)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--reexport", action="store_true", help="time a fresh export of the model's weights, not its model.onnx")
    ap.add_argument("--json")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved bursts per ONNX Runtime figure")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    try:
        model = resolve_model(args.model)
        net = model.load_torch()
        onnx_path = model.onnx_path
        if args.reexport:
            onnx_path = export_onnx_model(net, Path(tempfile.mkdtemp()) / "model.onnx", model.card)
        label = model.id
    except NoModelError:
        model = None
        net = DepthPolyp().eval()
        tmp = Path(tempfile.mkdtemp())
        onnx_path = export_onnx_model(net, tmp / "model.onnx", ModelCard(name="untrained", version="0"))
        label = "untrained network (no trained model available; speed is the same)"

    res: dict = {"model": label, "params": count_parameters(net), "macs": count_macs(net),
                 "macs_executed": count_macs(net, executed=True), "threads": args.threads,
                 "cpu": os.cpu_count(), "torch": torch.__version__}
    import onnxruntime as ort

    res["onnxruntime"] = ort.__version__
    opts = ort.SessionOptions()  # as Predictor._make_session
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    direct_path = export_direct(net.eval(), Path(tempfile.mkdtemp()) / "direct.onnx")
    direct = ort.InferenceSession(str(direct_path), opts, providers=["CPUExecutionProvider"])
    cl = DepthPolyp().eval()
    cl.load_state_dict(net.state_dict())
    cl = cl.to(memory_format=torch.channels_last)

    for b in (1, 8):
        x = torch.rand(b, 3, 224, 224)
        xn = x.numpy()
        xc = x.contiguous(memory_format=torch.channels_last)

        def eager():
            with torch.no_grad():
                net(x)

        def channels_last():
            with torch.inference_mode():
                cl(xc)

        res[f"fps_torch_eager_b{b}"] = rate(eager, b, args.seconds)
        res[f"fps_torch_cl_b{b}"] = rate(channels_last, b, args.seconds)
        ort_rates = interleaved_rates(
            {"model": lambda: sess.run(None, {"image": xn}), "direct": lambda: direct.run(None, {"image": xn})},
            b, 2 * args.seconds, args.rounds,
        )
        res[f"fps_onnxruntime_b{b}"] = ort_rates["model"]
        res[f"fps_onnxruntime_direct_b{b}"] = ort_rates["direct"]
        res[f"onnx_speedup_b{b}"] = ort_rates["model"] / ort_rates["direct"]

    # same outputs: ONNX Runtime vs torch
    x = torch.rand(4, 3, 224, 224)
    with torch.inference_mode():
        ref = torch.sigmoid(net(x)).numpy()
    seg, depth = sess.run(None, {"image": x.numpy()})
    res["max_abs_diff_onnx_vs_torch"] = float(max(np.abs(seg - ref[:, :1]).max(), np.abs(depth - ref[:, 1:]).max()))
    x1 = x[:1]
    seg, depth = sess.run(None, {"image": x1.numpy()})
    res["max_abs_diff_onnx_vs_torch_b1"] = float(max(np.abs(seg - ref[:1, :1]).max(), np.abs(depth - ref[:1, 1:]).max()))

    from napari_depthpolyp.engine import Predictor

    if model is not None:  # flip averaging (Predictor(tta=True)): four mirrored passes per frame
        tta = Predictor(model, tta=True)
        for b in (1, 8):
            x = torch.rand(b, 3, 224, 224)
            res[f"fps_tta_b{b}"] = rate(lambda: tta.run_batch(x), b, args.seconds)

    if model is not None and (SHARED / "cvc-clinicdb").is_dir():
        from napari_depthpolyp.predict import predict_inputs

        with tempfile.TemporaryDirectory() as tmp:
            video = make_cvc_video(Path(tmp) / "cvc_all.mp4")
            predictor = Predictor(model)
            predictor.run_batch(torch.rand(8, 3, 224, 224))  # the session's first run allocates; not timed
            t0 = time.perf_counter()
            summary = predict_inputs([video], Path(tmp) / "out", predictor)
            elapsed = time.perf_counter() - t0
            res["predict_video_frames"] = summary["n_frames"]
            res["predict_video_fps"] = summary["n_frames"] / elapsed
            res["predict_video_size"] = "384x288"
    elif model is None:
        print("predict_video_fps: skipped (no trained model to run predict with)", file=sys.stderr)
    else:
        print(f"predict_video_fps: skipped ({SHARED / 'cvc-clinicdb'} not found)", file=sys.stderr)

    for k, v in res.items():
        if isinstance(v, float) and k.startswith(("fps", "predict_video_fps")):
            v = f"{v:.1f}"
        elif isinstance(v, float) and k.startswith("onnx_speedup"):
            v = f"{v:.2f}"
        print(f"{k:32s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
