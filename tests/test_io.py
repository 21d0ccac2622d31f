"""Headless I/O: images, folders, videos (lazy, random access, damaged files), masks, depth, overlays,
atomic writes. Synthetic data is tiny; the real-data test uses the shortest CVC-ClinicDB sequence."""

from __future__ import annotations

import importlib.util
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_depthpolyp.io import (
    CorruptVideoError,
    FolderStack,
    InputError,
    VideoStack,
    is_image,
    is_video,
    list_images,
    make_video,
    read_depth,
    read_image,
    read_input,
    read_mask,
    read_mask_stack,
    render_overlay,
    write_depth,
    write_mask_png,
    write_mask_stack_tiff,
    write_overlay,
)

ROOT = Path(__file__).resolve().parents[1]
N_FRAMES, HEIGHT, WIDTH, STEP = 40, 48, 64, 6


def synthetic_frame(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Left half: flat grey at index*STEP (the frame's label). Right half: noise (so the file has bulk)."""
    frame = np.full((height, width, 3), index * STEP, np.uint8)
    frame[:, width // 2 :] = np.random.default_rng(index).integers(0, 256, (height, width - width // 2, 3))
    return frame


def frame_label(frame: np.ndarray) -> float:
    """The index a synthetic frame encodes, read from the middle of its flat half."""
    return float(frame[8:40, 4:28].mean()) / STEP


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp" in p.name]


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    assert make_video((synthetic_frame(i) for i in range(N_FRAMES)), path, fps=25) == N_FRAMES
    return path


# -- single images ------------------------------------------------------------------------------------
CASES = [  # (suffix, shape, dtype)
    (".png", (HEIGHT, WIDTH), np.uint8),
    (".png", (HEIGHT, WIDTH, 3), np.uint8),
    (".png", (HEIGHT, WIDTH, 4), np.uint8),
    (".png", (HEIGHT, WIDTH), np.uint16),
    (".bmp", (HEIGHT, WIDTH, 3), np.uint8),
    (".tif", (HEIGHT, WIDTH), np.uint8),
    (".tif", (HEIGHT, WIDTH, 3), np.uint8),
    (".tiff", (HEIGHT, WIDTH, 3), np.uint16),
    (".tif", (HEIGHT, WIDTH, 4), np.uint16),
    (".tif", (HEIGHT, WIDTH), np.uint16),
    (".tif", (HEIGHT, WIDTH), np.float32),
]


@pytest.mark.parametrize("suffix, shape, dtype", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_image_round_trip_keeps_values_and_dtype(tmp_path, suffix, shape, dtype):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        image = rng.random(shape, dtype=np.float32)
    else:
        image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    path = tmp_path / f"img{suffix}"
    if suffix.startswith(".tif"):
        tifffile.imwrite(path, image, photometric="rgb" if image.ndim == 3 else "minisblack")
    else:
        Image.fromarray(image).save(path)

    read = read_image(path)
    assert read.dtype == dtype and read.shape == shape
    np.testing.assert_array_equal(read, image)

    stack = read_input(path)
    assert stack.kind == "image" and stack.shape == (1,) + shape and stack.frame_name(0) == "img"
    np.testing.assert_array_equal(stack[0], image)


def test_jpeg_grayscale_and_rgb(tmp_path):
    gray = np.tile(np.arange(WIDTH, dtype=np.uint8) * 4, (HEIGHT, 1))
    Image.fromarray(gray).save(tmp_path / "g.jpg", quality=95)
    Image.fromarray(np.dstack([gray] * 3)).save(tmp_path / "c.jpeg", quality=95)
    assert read_image(tmp_path / "g.jpg").shape == (HEIGHT, WIDTH)
    rgb = read_image(tmp_path / "c.jpeg")
    assert rgb.shape == (HEIGHT, WIDTH, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb[..., 0].astype(int) - gray).mean() < 3


def test_palette_png_is_expanded_to_rgb(tmp_path):
    Image.fromarray(synthetic_frame(3)).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (HEIGHT, WIDTH, 3)


def test_16bit_colour_png_is_refused_not_silently_reduced(tmp_path):
    # Pillow cannot write one, so build it: IHDR (bit depth 16, colour type 2) + one IDAT.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + np.full((4, 3), 40000, ">u2").tobytes() for _ in range(2))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 2, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    (tmp_path / "rgb16.png").write_bytes(png)
    with pytest.raises(InputError, match="rgb16.png.*16-bit colour"):
        read_image(tmp_path / "rgb16.png")


def test_multipage_tiff_is_a_stack(tmp_path):
    pages = np.random.default_rng(0).integers(0, 255, (5, HEIGHT, WIDTH), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", pages)
    stack = read_input(tmp_path / "stack.tif")
    assert stack.kind == "tiff-stack" and stack.shape == pages.shape
    np.testing.assert_array_equal(stack[2:4], pages[2:4])
    assert stack.frame_name(2) == "stack_000002"
    with pytest.raises(InputError, match="5 frames"):
        read_image(tmp_path / "stack.tif")


def test_frames_are_read_only_and_getitem_copies_are_not(tmp_path):
    Image.fromarray(synthetic_frame(1)).save(tmp_path / "a.png")
    stack = read_input(tmp_path / "a.png")
    with pytest.raises(ValueError):
        stack[0][0, 0, 0] = 1
    assert np.asarray(stack).flags.writeable


def test_type_checks_are_case_insensitive():
    assert is_image("a/B.PNG") and is_image("x.JPeg") and not is_image("x.mp4")
    assert is_video("clip.MP4") and is_video("c.mkv") and not is_video("x.png")


# -- folders ------------------------------------------------------------------------------------------
def test_folder_natural_order_and_lazy_stack(tmp_path):
    for i in (10, 2, 1, 33):
        Image.fromarray(synthetic_frame(i)).save(tmp_path / f"frame{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._frame5.png").write_bytes(b"macOS resource fork")
    assert [p.name for p in list_images(tmp_path)] == ["frame1.png", "frame2.png", "frame10.png", "frame33.png"]

    stack = read_input(tmp_path)
    assert isinstance(stack, FolderStack) and stack.kind == "folder"
    assert stack.shape == (4, HEIGHT, WIDTH, 3) and stack.dtype == np.uint8 and stack.ndim == 4
    assert stack.size == 4 * HEIGHT * WIDTH * 3 and stack.source == tmp_path
    assert [round(frame_label(f)) for f in stack] == [1, 2, 10, 33]
    assert round(frame_label(stack[-1])) == 33 and stack.frame_name(2) == "frame10"
    np.testing.assert_array_equal(stack[2, 5:7, :, 0], synthetic_frame(10)[5:7, :, 0])


def test_folder_with_an_odd_size_image_names_it(tmp_path):
    Image.fromarray(synthetic_frame(0)).save(tmp_path / "f1.png")
    Image.fromarray(synthetic_frame(0, height=50)).save(tmp_path / "f2.png")
    with pytest.raises(InputError, match=r"f2\.png: image is 64×50 px RGB uint8 .* f1\.png is 64×48 px RGB uint8"):
        read_input(tmp_path)


def test_unreadable_inputs_name_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no images found"):
        read_input(tmp_path / "empty")
    with pytest.raises(InputError, match="missing.png: no such file"):
        read_input(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="notes.txt: unsupported file type '.txt'"):
        read_input(tmp_path / "notes.txt")
    (tmp_path / "broken.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(InputError, match="broken.jpg: not a readable image"):
        read_image(tmp_path / "broken.jpg")
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)  # a header claiming 400 megapixels, no pixels
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(InputError, match="bomb.png: refused, larger than any frame"):
        read_input(tmp_path / "bomb.png")


# -- videos -------------------------------------------------------------------------------------------
def test_video_is_lazy_with_random_access(mp4):
    stack = read_input(mp4)
    assert isinstance(stack, VideoStack) and stack.kind == "video"
    assert len(stack) == N_FRAMES and stack.shape == (N_FRAMES, HEIGHT, WIDTH, 3)
    assert stack.dtype == np.uint8 and stack.fps == 25 and stack.source == mp4
    assert len(stack._cache) == 1  # opening decoded only the first frame
    for index in (37, 3, 38, 0, -1, 39, 12):
        assert frame_label(stack[index]) == pytest.approx(index % N_FRAMES, abs=0.4)
    with pytest.raises(IndexError, match="frame 40 is out of range"):
        stack[40]


def test_video_sequential_access_does_not_seek(mp4):
    stack = read_input(mp4)
    stack[20]
    restarts = []
    original = stack._restart
    stack._restart = lambda index: (restarts.append(index), original(index))
    labels = [frame_label(stack[i]) for i in range(21, 30)]
    assert restarts == []
    np.testing.assert_allclose(labels, range(21, 30), atol=0.4)


def test_video_indexing_like_an_array(mp4):
    stack = read_input(mp4)
    assert stack[3, 10:20, :, 0].shape == (10, WIDTH)
    block = stack[30:34]
    assert block.shape == (4, HEIGHT, WIDTH, 3)
    np.testing.assert_allclose([frame_label(f) for f in block], range(30, 34), atol=0.4)
    np.testing.assert_allclose([frame_label(f) for f in stack[-3:]], [37, 38, 39], atol=0.4)
    np.testing.assert_allclose([frame_label(f) for f in stack[[5, 1]]], [5, 1], atol=0.4)
    assert stack[::10].shape[0] == 4 and stack[..., 0].shape == (N_FRAMES, HEIGHT, WIDTH)
    assert stack[5:5].shape == (0, HEIGHT, WIDTH, 3) and stack[5:5, :, :, 0].shape == (0, HEIGHT, WIDTH)
    whole = np.asarray(stack, dtype=np.float32)
    assert whole.shape == stack.shape and whole.dtype == np.float32
    assert stack.frame_name(7) == "clip_000007"


def test_variable_frame_rate_video_is_numbered_in_decoding_order(tmp_path):
    """Timestamps with gaps (a variable frame rate): frame i is the i-th decoded frame, whether it
    is reached in order or by jumping about, and no frame is skipped or shown twice."""
    import fractions

    import av

    rate, stamps = 25, [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 21, 22]
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv444p"
        s.options = {"qp": "0", "bf": "0", "g": "5"}
        s.codec_context.time_base = fractions.Fraction(1, rate)
        for k, pts in enumerate(stamps):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), k * 8, np.uint8), format="rgb24")
            f.pts, f.time_base = pts, fractions.Fraction(1, rate)
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    in_order = VideoStack(path)
    assert [int(round(in_order[i].mean() / 8)) for i in range(len(in_order))] == list(range(len(stamps)))
    jumping = VideoStack(path)
    order = [19, 3, 12, 8, 0, 17, 10, 5]
    assert [int(round(jumping[i].mean() / 8)) for i in order] == order


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_rotated_video_is_read_upright(tmp_path, rotation):
    """A display rotation in the file (a recorder held sideways): frames come upright, as ffmpeg
    shows them (checked against ffmpeg's own autorotation when this was written: upright =
    np.rot90(decoded, rotation / 90))."""
    import av

    image = np.zeros((48, 64, 3), np.uint8)
    image[:8, :16] = 255  # a white block at the top left of the stored picture
    path = tmp_path / f"r{rotation}.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv444p"
        s.options = {"qp": "0"}
        s.set_display_rotation(rotation)
        for k in range(3):
            f = av.VideoFrame.from_ndarray(image, format="rgb24")
            f.pts = k
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    stack = VideoStack(path)
    upright = np.rot90(image, rotation // 90)
    assert stack.shape == (3, *upright.shape)
    for i in (2, 0):  # in order and after a seek back
        assert np.abs(stack[i].astype(int) - upright).mean() < 3


def test_odd_size_avi_is_padded_and_seeks_match_decoding_in_order(tmp_path):
    # mpeg4 in AVI gives many keyframes, so random access really seeks.
    path = tmp_path / "odd.avi"
    make_video((synthetic_frame(i, height=47, width=63) for i in range(20)), path, codec="mpeg4")
    stack = read_input(path)
    assert stack.shape == (20, 48, 64, 3)  # padded by one pixel to even sizes
    in_order = [frame.copy() for frame in read_input(path)]
    for index in np.random.default_rng(0).permutation(20):
        np.testing.assert_array_equal(stack[index], in_order[index])


def test_mkv_without_frame_count_is_counted_without_decoding(tmp_path):
    path = tmp_path / "clip.mkv"
    make_video((synthetic_frame(i) for i in range(12)), path)
    stack = read_input(path)
    assert len(stack) == 12 and len(stack._cache) == 1
    assert frame_label(stack[11]) == pytest.approx(11, abs=0.4)


def test_truncated_video_keeps_its_good_frames(mp4, tmp_path):
    data = mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])

    stack = read_input(cut)
    frames = []
    with pytest.raises(CorruptVideoError) as caught:
        for frame in stack:
            frames.append(frame)
    error = caught.value
    assert 0 < error.frames_ok == error.frame_index == len(frames) < N_FRAMES
    assert "cut.mp4" in str(error) and f"frame {error.frame_index}" in str(error)
    assert len(stack) == error.frame_index  # revised down: everything left is readable
    np.testing.assert_allclose([frame_label(f) for f in frames[:-1]], range(len(frames) - 1), atol=0.4)
    assert frame_label(stack[1]) == pytest.approx(1, abs=0.4)
    assert isinstance(error, InputError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.path, again.frame_index, again.frames_ok, str(again)) == (error.path, error.frame_index, error.frames_ok, str(error))

    # Jumping straight past the damage reports the same first bad frame.
    with pytest.raises(CorruptVideoError) as caught:
        read_input(cut)[37]
    assert caught.value.frame_index == error.frame_index


@pytest.mark.parametrize("content, problem", [(b"", "file is empty"), (b"\x00garbage" * 200, "not a readable video")])
def test_unreadable_video_names_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"bad\.mp4: {problem}"):
        read_input(path)


def test_closed_video_reopens_on_access(mp4):
    with read_input(mp4) as stack:
        stack[10]
    assert frame_label(stack[25]) == pytest.approx(25, abs=0.4)


# -- masks, depth, overlays ---------------------------------------------------------------------------
def test_mask_png_round_trip(tmp_path):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:30, 20:50] = True
    write_mask_png(tmp_path / "m.png", mask)
    stored = np.asarray(Image.open(tmp_path / "m.png"))
    assert stored.dtype == np.uint8 and set(np.unique(stored)) == {0, 255}
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    with pytest.raises(TypeError, match="threshold"):
        write_mask_png(tmp_path / "p.png", mask.astype(np.float32))


def test_read_mask_binarises_jpeg_rgb_and_01_masks(tmp_path):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[8:40, 16:48] = True
    Image.fromarray(np.dstack([mask.astype(np.uint8) * 255] * 3)).save(tmp_path / "m.jpg", quality=75)
    assert (read_mask(tmp_path / "m.jpg") != mask).mean() < 0.01
    Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "labels.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "labels.png"), mask)


def test_read_mask_label_valued_masks(tmp_path):
    """0/1/2 labels (another tool's PNG) and a 0/1 mask saved as JPEG (values 0..3 or so) are
    polyp wherever non-zero, not empty (they are below the 0/255 cut of 127)."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[8:40, 16:48] = True
    labels = mask.astype(np.uint8)
    labels[8:40, 32:48] = 2
    Image.fromarray(labels).save(tmp_path / "labels012.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "labels012.png"), mask)
    Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "m01.jpg", quality=90)
    assert (read_mask(tmp_path / "m01.jpg") != mask).mean() < 0.02


def test_read_mask_refuses_a_photo_naming_the_file(tmp_path):
    """The mask readers (predict, review import, datasets) refuse an image that is clearly not a
    mask; a stack names its frame. Masks of two values are never refused."""
    ramp = np.tile(np.linspace(0, 255, WIDTH).astype(np.uint8), (HEIGHT, 1))
    Image.fromarray(synthetic_frame(20)).save(tmp_path / "photo.png")
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    for name in ("photo.png", "ramp.png"):
        with pytest.raises(InputError, match=rf"{tmp_path / name}: not a binary mask: \d+% of its pixels are grey"):
            read_mask(tmp_path / name)
    masks = np.zeros((3, HEIGHT, WIDTH), np.uint8)
    masks[:, 10:20, 10:20] = 255
    masks[2] = ramp
    tifffile.imwrite(tmp_path / "stack.tif", masks, photometric="minisblack")
    with pytest.raises(InputError, match=rf"{tmp_path / 'stack.tif'}: not a binary mask \(frame 2\)"):
        read_mask_stack(tmp_path / "stack.tif")
    two = np.where(np.arange(WIDTH)[None] < 32, 100, 200).astype(np.uint8).repeat(HEIGHT, axis=0)
    Image.fromarray(two).save(tmp_path / "two.png")  # two grey values: binary, the higher is polyp
    assert read_mask(tmp_path / "two.png").sum() == HEIGHT * 32


def test_mask_stack_tiff_from_a_generator(tmp_path):
    masks = np.random.default_rng(0).random((6, HEIGHT, WIDTH)) > 0.5
    write_mask_stack_tiff(tmp_path / "masks.tif", (m for m in masks))
    np.testing.assert_array_equal(read_mask_stack(tmp_path / "masks.tif"), masks)
    assert tifffile.imread(tmp_path / "masks.tif").max() == 255


def test_depth_png_is_16bit_and_tiff_is_float(tmp_path):
    depth = np.random.default_rng(0).random((HEIGHT, WIDTH)).astype(np.float32)
    write_depth(tmp_path / "d.png", depth)
    assert np.asarray(Image.open(tmp_path / "d.png")).dtype == np.uint16
    back = read_depth(tmp_path / "d.png")
    assert back.dtype == np.float32 and np.abs(back - depth).max() <= 0.5 / 65535 + 1e-7
    write_depth(tmp_path / "d.tif", depth)
    np.testing.assert_array_equal(read_depth(tmp_path / "d.tif"), depth)
    with pytest.raises(ValueError, match=r"\.jpg"):
        write_depth(tmp_path / "d.jpg", depth)


def test_overlay_tints_the_mask_and_draws_its_contour(tmp_path):
    frame = np.full((HEIGHT, WIDTH), 100, np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:30, 10:30] = True
    out = render_overlay(frame, mask, color=(255, 0, 0), alpha=0.5, contour_width=1)
    assert out.shape == (HEIGHT, WIDTH, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (100, 100, 100)  # outside untouched
    assert tuple(out[10, 15]) == (255, 0, 0)  # contour
    assert tuple(out[20, 20]) == (178, 50, 50)  # tinted inside
    write_overlay(tmp_path / "o.png", frame, mask)
    write_overlay(tmp_path / "o.jpg", frame, mask)
    assert read_image(tmp_path / "o.png").shape == read_image(tmp_path / "o.jpg").shape == (HEIGHT, WIDTH, 3)


# -- atomic writes ------------------------------------------------------------------------------------
def test_failed_writes_leave_no_partial_target_and_no_temp_files(tmp_path):
    def frames_then_crash():
        for i in range(5):
            yield synthetic_frame(i)
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="camera unplugged"):
        make_video(frames_then_crash(), tmp_path / "clip.mp4")
    assert not (tmp_path / "clip.mp4").exists()

    write_mask_stack_tiff(tmp_path / "masks.tif", np.ones((2, 4, 4), bool))
    before = (tmp_path / "masks.tif").read_bytes()
    with pytest.raises(ValueError, match="mask 1 has shape"):
        write_mask_stack_tiff(tmp_path / "masks.tif", [np.zeros((4, 4), bool), np.zeros((5, 4), bool)])
    assert (tmp_path / "masks.tif").read_bytes() == before
    assert no_temp_files(tmp_path)


def test_the_core_imports_no_gui():
    """Every module of the headless core (all but the napari shell: widgets/, _reader, _writer,
    _sample_data) imports without napari, magicgui or a Qt binding (docs/architecture.md)."""
    code = """
import importlib, pathlib, sys
import napari_depthpolyp as pkg
root = pathlib.Path(pkg.__path__[0])  # listed from the files: walking packages would import widgets/
names = [".".join(("napari_depthpolyp", *p.relative_to(root).with_suffix("").parts)) for p in root.rglob("*.py")]
core = sorted(n.removesuffix(".__init__") for n in names if not n.split(".")[1].startswith(("_", "widgets")))
for name in core:
    importlib.import_module(name)
gui = {m.split(".")[0] for m in sys.modules} & {"napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6"}
print(len(core), sorted(gui))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, gui = result.stdout.strip().split(" ", 1)
    assert int(n) >= 25 and gui == "[]", result.stdout  # the whole core was imported, and nothing of the GUI


# -- real data ----------------------------------------------------------------------------------------
def test_cvc_sequence_to_video_and_back(cvc_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("make_video_script", ROOT / "benchmarks" / "make_video.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    files = script.cvc_sequence_frames(cvc_dir, 10)  # the shortest sequence: 6 frames
    out = tmp_path / "cvc10.mp4"
    assert script.main(["--cvc-sequence", "10", "--cvc-dir", str(cvc_dir), "--out", str(out), "--fps", "25"]) == 0

    video = read_input(out)
    first = read_image(files[0])
    assert len(video) == len(files) and video.shape[1:] == first.shape and video.fps == 25
    for index in (len(files) - 1, 0, 2):
        original = read_image(files[index]).astype(np.float32)
        assert np.abs(video[index].astype(np.float32) - original).mean() < 4  # crf 18: near-lossless
    assert no_temp_files(tmp_path)
