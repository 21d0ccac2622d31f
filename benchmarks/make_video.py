"""Encode image frames into a video with PyAV, e.g. a CVC-ClinicDB sequence as a short colonoscopy clip.

    python benchmarks/make_video.py FRAME_OR_FOLDER... --out clip.mp4 --fps 25
    python benchmarks/make_video.py --cvc-sequence 10 --out cvc10.mp4

Folders contribute their images in natural order. Frames must all have the same size; odd sizes are
padded by one pixel (edge-repeated) because libx264/yuv420p needs even sizes (see io.make_video).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

from napari_depthpolyp.io import is_image, list_images, make_video, read_image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CVC = Path(os.environ.get("DEPTHPOLYP_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cvc-clinicdb"


def cvc_sequence_frames(cvc_dir: Path, sequence: int) -> list[Path]:
    """The frames of one CVC-ClinicDB sequence in time order, from ``sequences.csv``."""
    with open(cvc_dir / "sequences.csv", newline="") as fh:
        numbers = sorted(int(row["frame"]) for row in csv.DictReader(fh) if int(row["sequence"]) == sequence)
    if not numbers:
        raise SystemExit(f"{cvc_dir / 'sequences.csv'}: no frames for sequence {sequence}")
    return [cvc_dir / "images" / f"{n}.png" for n in numbers]


def expand(paths: Sequence[Path]) -> list[Path]:
    """Image files as given, folders replaced by their images in natural order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(list_images(path))
        elif is_image(path):
            files.append(path)
        else:
            raise SystemExit(f"{path}: not an image file or folder")
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frames", nargs="*", type=Path, help="image files and/or folders, in order")
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4, .mkv, .avi, .mov)")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--crf", type=int, default=18, help="libx264/libx265 quality, lower is better")
    parser.add_argument("--cvc-sequence", type=int, help="use the frames of this CVC-ClinicDB sequence (1-29)")
    parser.add_argument("--cvc-dir", type=Path, default=DEFAULT_CVC, help=f"CVC-ClinicDB folder (default {DEFAULT_CVC})")
    args = parser.parse_args(argv)

    files = expand(args.frames)
    if args.cvc_sequence is not None:
        files += cvc_sequence_frames(args.cvc_dir, args.cvc_sequence)
    if not files:
        parser.error("give frames or folders, or --cvc-sequence")

    def frames() -> Iterator:
        for file in files:
            yield read_image(file)

    count = make_video(frames(), args.out, fps=args.fps, codec=args.codec, crf=args.crf)
    print(f"wrote {args.out} ({count} frames at {args.fps:g} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
