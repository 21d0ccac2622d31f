"""Headless reading and writing of frames, videos, masks, depth maps and overlays.

No Qt, napari or magicgui here: the CLI, the engine and the napari plugin all build on this package.
Start with :func:`read_input`, which turns a video, an image folder or an image file into a lazy
T×H×W[×C] stack. Every "bad input" problem raises :class:`InputError` with the file named.
"""

from .atomic import atomic_open, atomic_path, write_json
from .errors import CorruptVideoError, InputError
from .images import (
    IMAGE_EXTENSIONS,
    FolderStack,
    is_image,
    is_mask_like,
    list_images,
    read_depth,
    read_frames,
    read_image,
    read_mask,
    read_mask_stack,
)
from .sources import read_input
from .stack import ArrayStack, FrameStack
from .video import VIDEO_EXTENSIONS, VideoStack, is_video
from .writers import make_video, render_overlay, write_depth, write_mask_png, write_mask_stack_tiff, write_overlay

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ArrayStack",
    "CorruptVideoError",
    "FolderStack",
    "FrameStack",
    "InputError",
    "VideoStack",
    "atomic_open",
    "atomic_path",
    "is_image",
    "is_mask_like",
    "is_video",
    "list_images",
    "make_video",
    "read_depth",
    "read_frames",
    "read_image",
    "read_input",
    "read_mask",
    "read_mask_stack",
    "render_overlay",
    "write_depth",
    "write_json",
    "write_mask_png",
    "write_mask_stack_tiff",
    "write_overlay",
]
