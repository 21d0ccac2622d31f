"""Build the samples bundled with the package (File > Open Sample, the demo, the tests).

Reproducible from ../shared/data/kvasir-seg: six frames of the *val* split (never training
frames) chosen at spread-out polyp sizes, reduced to 384 px on the long side, with their masks; and
a short clip made from three of them with simulated camera motion (a smooth zoom/pan/roll path)
and seeded degradations (motion blur tied to the camera speed, flickering light, specular
highlights), with the ground-truth masks moved along.

    python scripts/make_samples.py [--data ../shared/data/kvasir-seg]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from napari_depthpolyp.dataset import Dataset
from napari_depthpolyp.degrade import DegradeConfig, Degrader
from napari_depthpolyp.io import make_video, write_mask_png, write_mask_stack_tiff

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_depthpolyp" / "samples"
LONG_SIDE = 384
CLIP_SIZE = (256, 320)  # H, W (even, for H.264)
FRAMES_PER_SHOT = 16


def _resize(img: np.ndarray, long_side: int, resample) -> np.ndarray:
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    size = (max(2, round(w * s)), max(2, round(h * s)))
    return np.asarray(Image.fromarray(img).resize(size, resample))


def _camera(img: np.ndarray, mask: np.ndarray, t: float, rng_phase: float):
    """One frame of a smooth camera path over a still frame: zoom, pan and roll."""
    from skimage.transform import AffineTransform, warp

    h, w = CLIP_SIZE
    zoom = 1.15 + 0.12 * math.sin(2 * math.pi * (0.5 * t + rng_phase))
    angle = math.radians(6 * math.sin(2 * math.pi * (0.35 * t + rng_phase)))
    tx = 0.06 * w * math.sin(2 * math.pi * (0.6 * t + rng_phase))
    ty = 0.05 * h * math.cos(2 * math.pi * (0.45 * t + rng_phase))
    src_h, src_w = img.shape[:2]
    scale = max(h / src_h, w / src_w) * zoom
    centre_src = np.array([src_w / 2, src_h / 2])
    centre_out = np.array([w / 2 + tx, h / 2 + ty])
    c, s = math.cos(angle), math.sin(angle)
    m = np.array([[scale * c, -scale * s, 0], [scale * s, scale * c, 0], [0, 0, 1.0]])
    m[:2, 2] = centre_out - m[:2, :2] @ centre_src
    tf = AffineTransform(matrix=m)
    frame = warp(img, tf.inverse, output_shape=(h, w), mode="reflect", preserve_range=True)
    mk = warp(mask.astype(float), tf.inverse, output_shape=(h, w), order=0, mode="reflect") > 0.5
    return frame.astype(np.float32) / 255.0, mk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir-seg"))
    args = ap.parse_args()
    ds = Dataset.open(args.data, split="val")
    areas = []
    for i in range(len(ds)):
        _, mask, _ = ds.load(i)
        areas.append(mask.mean())
    order = np.argsort(areas)
    picks = [int(order[int(q * (len(order) - 1))]) for q in (0.1, 0.3, 0.5, 0.65, 0.8, 0.95)]

    frames_dir = OUT / "frames"
    masks_dir = OUT / "masks"
    frames_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    names = []
    stills = []
    for k, i in enumerate(picks):
        image, mask, _ = ds.load(i)
        name = ds[i].name
        small = _resize(image, LONG_SIDE, Image.BILINEAR)
        small_mask = _resize(mask.astype(np.uint8) * 255, LONG_SIDE, Image.BILINEAR) > 127
        Image.fromarray(small).save(frames_dir / f"{k:02d}_{name}.jpg", quality=92)
        write_mask_png(masks_dir / f"{k:02d}_{name}.png", small_mask)
        names.append(f"{k:02d}_{name}")
        stills.append((small, small_mask))

    degrader = Degrader(DegradeConfig(motion_blur_p=0.0, optical_distortion_p=0.0, jpeg_p=0.0, fog_p=0.15))
    rng = np.random.default_rng(2026)
    clip, clip_masks = [], []
    for shot, (img, mask) in enumerate([stills[1], stills[3], stills[4]]):
        phase = rng.random()
        prev = None
        for f in range(FRAMES_PER_SHOT):
            frame, mk = _camera(img, mask, f / FRAMES_PER_SHOT, phase)
            frame, mk = degrader(frame, mk, rng)
            if prev is not None:  # motion blur from the camera speed: average with the last frame
                frame = np.clip(0.65 * frame + 0.35 * prev, 0, 1)
            prev = frame
            clip.append((frame * 255 + 0.5).astype(np.uint8))
            clip_masks.append(mk)
    make_video(clip, OUT / "clip.mp4", fps=12, crf=20)
    write_mask_stack_tiff(OUT / "clip_masks.tif", clip_masks)
    (OUT / "samples.json").write_text(
        json.dumps(
            {
                "frames": names,
                "clip": {"file": "clip.mp4", "masks": "clip_masks.tif", "n_frames": len(clip), "fps": 12,
                         "made_from": [names[1], names[3], names[4]]},
                "source": "Kvasir-SEG val split (CC BY 4.0), see ATTRIBUTION.md",
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {len(names)} frames and a {len(clip)}-frame clip to {OUT}")


if __name__ == "__main__":
    main()
