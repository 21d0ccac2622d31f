"""docs/degradations.png: every training degradation on a real Kvasir-SEG val frame, the full random
pipeline with two seeds, and the light fall-off pseudo-depth of the clean frame.

    python examples/make_degradations_figure.py [--data ../shared/data/kvasir-seg] [--out docs/degradations.png]
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
    ap.add_argument("--out", default=str(ROOT / "docs" / "degradations.png"))
    args = ap.parse_args()
    ds = Dataset.open(args.data, split="val")
    image, mask, _ = ds.load(10)
    x = resize_batch([to_float_rgb(image)], 224)[0].permute(1, 2, 0).numpy()
    m = resize_mask(mask, 224)
    degrader = Degrader(DegradeConfig(noise=True))
    tiles = [tile(x, "clean", m)]
    for i, name in enumerate(degrader.names()):
        out, mm = degrader.apply_one(name, x, m, np.random.default_rng(10 + i))
        tiles.append(tile(out, name.replace("_", " "), mm if name == "optical_distortion" else None))
    for seed in (0, 1):
        out, mm = degrade_seeded(x, m, seed=seed)
        tiles.append(tile(out, f"pipeline, seed {seed}", mm))
    tiles.append(tile(LightFalloffTeacher()(x), "fall-off pseudo-depth"))
    cols = 4
    rows = -(-len(tiles) // cols)
    w, h = tiles[0].size
    sheet = Image.new("RGB", (cols * w, rows * h), "white")
    for k, t in enumerate(tiles):
        sheet.paste(t, ((k % cols) * w, (k // cols) * h))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(tiles)} tiles from {ds[10].name})")


if __name__ == "__main__":
    main()
