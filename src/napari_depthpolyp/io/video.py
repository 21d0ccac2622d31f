"""Reading videos (mp4/avi/mov/mkv/...) as lazy T×H×W×3 uint8 RGB stacks through PyAV.

Nothing is decoded up front except the first frame (to check the file): the frame count comes from
the container's metadata (or, when the container has none, e.g. mkv, from one pass that reads packets
without decoding them) and the frame size from the codec. A frame is fetched by seeking to the
nearest keyframe before it and decoding forward; reading the next frame just continues decoding,
so playing or processing a video in order is as fast as plain decoding. Recently decoded frames are
kept in a small LRU cache for scrubbing back and forth in napari.

Frames are located by their timestamps, assuming a constant frame rate (what endoscopy recorders
write). If seeking in a file turns out to be unreliable, the stack falls back to decoding from the
start, which is slower but exact.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import CorruptVideoError, InputError, check_file
from .stack import FrameStack

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")

# Frames ahead of the decoder position that are reached by decoding on rather than by seeking.
_DECODE_AHEAD = 32


def is_video(path: str | os.PathLike) -> bool:
    """True if the file name has a video extension (see ``VIDEO_EXTENSIONS``; case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


class VideoStack(FrameStack):
    """A video file as a lazy T×H×W×3 uint8 RGB stack with random frame access.

    ``fps`` is the average frame rate (``None`` if the file does not say). Frame ``i`` is the i-th
    frame in decoding order. Seeks place frames by their timestamps while those step one frame at
    a time; a file whose timestamps do not (a variable frame rate) is read in order from then on.
    A truncated or damaged video raises :class:`CorruptVideoError` at the first frame that cannot be decoded; the stack then
    shrinks ``len()`` to that frame so every earlier frame remains readable. Iterating yields every
    good frame, then raises. Safe to index from several threads.
    """

    kind = "video"

    def __init__(self, path: str | os.PathLike, cache_size: int = 16):
        path = check_file(path)
        container = _open(path)
        try:
            if not container.streams.video:
                raise InputError(f"{path}: contains no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if not (width and height):
                raise InputError(f"{path}: the video's frame size is unknown (damaged header?)")
            count = stream.frames or _count_packets(path)
            if not count:
                raise InputError(f"{path}: contains no video frames")
        except BaseException:
            container.close()
            raise
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self._rate = Fraction(rate) if rate else None
        self._container = container
        self._decoder = container.decode(stream)
        self._next: int | None = 0  # index of the frame the decoder yields next; None = unknown (after a seek)
        self._verified = 0  # frames 0.._verified-1 have been decoded
        self._start_pts = None
        self._turns = 0  # quarter turns (counterclockwise) that stand a frame upright
        super().__init__(path, (height, width, 3), np.uint8, count, cache_size)
        try:
            first = self._next_decoded(0)
        except BaseException:
            self.close()
            raise
        # A display rotation (a phone or a recorder held sideways): frames are turned upright, as
        # ffmpeg and every player show them, so that napari, the network and the exports agree.
        self._turns = round((getattr(first, "rotation", 0) or 0) / 90) % 4
        if self._turns % 2:
            self.frame_shape = (width, height, 3)
        self._start_pts = first.pts
        self._seekable = first.pts is not None and self._rate is not None and stream.time_base is not None
        if self._seekable and stream.duration and stream.frames:
            # a duration that is not frames / rate: the timestamps skip (a variable frame rate), and a
            # seek would place frames by a timestamp that is not their place in decoding order
            spanned = float(stream.duration * stream.time_base * self._rate)
            self._seekable = abs(spanned - stream.frames) <= max(1.0, 0.01 * stream.frames)
        self._next, self._verified = 1, 1
        self._remember(0, self._to_rgb(first))

    def close(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
            self._container, self._decoder, self._next = None, None, None

    # -- decoding ----------------------------------------------------------------------------------
    def _read_frame(self, index: int) -> np.ndarray:
        if not (self._decoder is not None and self._next is not None and self._next <= index < self._next + _DECODE_AHEAD):
            self._restart(index)
        while True:
            frame = self._next_decoded(index)
            if frame.pts is not None and self._seekable:
                got = round((frame.pts - self._start_pts) * self._stream.time_base * self._rate)
                if self._next is not None and got != self._next:
                    # Decoding in order, the timestamps do not step one frame at a time (a variable
                    # frame rate, or dropped frames): from here on a frame's index is its place in
                    # decoding order, never its timestamp, and frames placed by timestamp are dropped.
                    self._seekable = False
                    self._cache.clear()
                    self._restart(index)
                    continue
            else:
                got = self._next
            if got is None or (self._next is None and got > index):
                # A frame we cannot place, or a seek that overshot: stop trusting seeks in this file.
                self._seekable = False
                self._restart(index)
                continue
            self._next = got + 1
            if got <= self._verified:
                self._verified = max(self._verified, got + 1)
            array = self._to_rgb(frame)
            if got >= index:
                return array
            self._remember(got, array)

    @property
    def _stream(self):
        return self._container.streams.video[0]

    def _restart(self, index: int) -> None:
        """Position the decoder at or before frame ``index``: seek if possible, else reopen at frame 0."""
        if self._container is not None and self._seekable:
            pts = self._start_pts + math.floor(Fraction(index) / (self._rate * self._stream.time_base))
            self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
            self._next = None
        else:
            if self._container is not None:
                self._container.close()
            self._container = _open(self.source)
            self._next = 0
        self._decoder = self._container.decode(self._stream)

    def _next_decoded(self, index: int) -> av.VideoFrame:
        try:
            return next(self._decoder)
        except StopIteration:
            detail = "the file ends early"
        except av.error.FFmpegError as exc:
            detail = str(exc)
        bad = self._next if self._next is not None else index
        self._decoder, self._next = None, None  # restart on the next access
        self._length = min(self._length, bad)
        for stale in [i for i in self._cache if i >= bad]:
            del self._cache[stale]
        raise CorruptVideoError(self.source, bad, min(self._verified, bad), detail)

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        height, width, _ = self.frame_shape
        if self._turns % 2:
            height, width = width, height
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        return np.ascontiguousarray(np.rot90(rgb, self._turns)) if self._turns else rgb


def _open(path: Path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({exc.strerror or exc})") from exc


def _count_packets(path: Path) -> int:
    """Count video packets (one per frame) by demuxing only, for containers without a frame count."""
    count = 0
    with _open(path) as container:
        try:
            for packet in container.demux(container.streams.video[0]):
                count += packet.size > 0
        except av.error.FFmpegError:
            pass  # a damaged tail: count what demuxes; decoding reports the damage at the exact frame
    return count
