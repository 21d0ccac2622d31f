"""File › Open Sample: the bundled Kvasir-SEG frames and the short synthetic clip (see
samples/ATTRIBUTION.md). Their review sessions autosave under the user directory, never inside the
installed package."""

from __future__ import annotations

from pathlib import Path

from .io import VideoStack, read_image

SAMPLES = Path(__file__).with_name("samples")


def _meta(path: Path, kind: str, **extra) -> dict:
    return {"depthpolyp": {"source": str(path), "kind": kind, "sample": True, **extra}}


def kvasir_frames():
    """Six Kvasir-SEG validation frames (different sizes, so one layer each)."""
    files = sorted((SAMPLES / "frames").glob("*.jpg"))
    return [(read_image(f), {"name": f.stem, "rgb": True, "metadata": _meta(f, "image")}, "image") for f in files]


def clip():
    """The 48-frame synthetic clip (12 fps), read lazily."""
    path = SAMPLES / "clip.mp4"
    stack = VideoStack(path)
    return [(stack, {"name": "clip", "rgb": True, "metadata": _meta(path, "video", fps=stack.fps)}, "image")]
