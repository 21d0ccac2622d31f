"""docs/degradations.png: every training degradation on a real Kvasir-SEG val frame, the full random
pipeline with two seeds, and the light fall-off pseudo-depth of the clean and of a degraded frame.

    python examples/make_degradations_figure.py [--data ../shared/data/kvasir-seg] [--frame NAME]
                                                [--out docs/degradations.png]

Green outlines are the mask returned with the frame (the optical distortion warps it with the image).
The reference's distortion (k <= 0.05) moves pixels by at most ~4 px at 224 px, invisible at this
size, so its tile also shows k = 0.3 to make the warp (and the mask following it) visible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from napari_depthpolyp.dataset import Dataset
from napari_depthpolyp.degrade import DegradeConfig, Degrader, degrade_seeded
from napari_depthpolyp.depth import LightFalloffTeacher
from napari_depthpolyp.preprocess import resize_batch, resize_mask, to_float_rgb

ROOT = Path(__file__).resolve().parents[1]


def tile(img: np.ndarray, label: str, mask: np.ndarray | None = None) -> Image.Image:
    rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, -1)
    im = Image.fromarray(rgb)
    if mask is not None:  # outline of the (possibly warped) mask
        edge = mask ^ np.roll(mask, 1, 0) | mask ^ np.roll(mask, 1, 1)
        arr = np.asarray(im).copy()
        arr[edge] = (0, 255, 0)
        im = Image.fromarray(arr)
    canvas = Image.new("RGB", (im.width, im.height + 18), "white")
    canvas.paste(im, (0, 18))
    ImageDraw.Draw(canvas).text((4, 3), label, fill="black")
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kvasir-seg"))
    ap.add_argument("--frame", default="cju1cqc7n4gpy0855jt246k68", help="val frame (a polyp and a dark lumen)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "degradations.png"))
    args = ap.parse_args()
    ds = Dataset.open(args.data, split="val")
    index = list(ds.names).index(args.frame)
    image, mask, _ = ds.load(index)
    x = resize_batch([to_float_rgb(image)], 224)[0].permute(1, 2, 0).numpy()
    m = resize_mask(mask, 224)
    degrader = Degrader(DegradeConfig(noise=True))
    teacher = LightFalloffTeacher()
    tiles = [tile(x, "clean", m)]
    for i, name in enumerate(degrader.names()):
        out, mm = degrader.apply_one(name, x, m, np.random.default_rng(10 + i))
        label = name.replace("_", " ") + (" (optional, off)" if name == "sensor_noise" else "")
        tiles.append(tile(out, label, mm if name == "optical_distortion" else None))
        if name == "optical_distortion":
            strong = Degrader(DegradeConfig(distort_limit=0.3))
            # k is the distortion's first draw: pick a seed with a strong (barrel) k for display
            seed = next(s for s in range(100) if np.random.default_rng(s).uniform(-1, 1) < -0.8)
            out, mm = strong.apply_one(name, x, m, np.random.default_rng(seed))
            tiles.append(tile(out, "optical distortion, k=0.3 (shown)", mm))
    for seed in (0, 1):
        out, mm = degrade_seeded(x, m, seed=seed)
        tiles.append(tile(out, f"pipeline, seed {seed}", mm))
    tiles.append(tile(teacher(x), "fall-off depth (clean)"))
    tiles.append(tile(teacher(out), f"fall-off depth (seed {seed})"))
    cols = 5
    rows = -(-len(tiles) // cols)
    w, h = tiles[0].size
    sheet = Image.new("RGB", (cols * w, rows * h), "white")
    for k, t in enumerate(tiles):
        sheet.paste(t, ((k % cols) * w, (k // cols) * h))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(tiles)} tiles from {args.frame})")


if __name__ == "__main__":
    main()
