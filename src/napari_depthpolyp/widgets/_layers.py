"""The layers of a segmented image, created once and then updated in place (never piled up), named
after the source, scaled like it; plus frame-index helpers and an Image-layer chooser.

    <image> polyp mask         Labels, opacity 0.5 — the review session's mask array itself
    <image> depth              Image, 'magma' at opacity 0.45, relative inverse depth (near = bright)
    <image> polyp probability  Image, hidden, the model's polyp probability
"""

from __future__ import annotations

from typing import Any, Collection

import numpy as np
from napari.layers import Image, Labels, Layer
from qtpy.QtWidgets import QComboBox

MASK, DEPTH, PROBABILITY = "polyp mask", "depth", "polyp probability"
ROLE_KEY = "depthpolyp"  # metadata key of everything this plugin records on a layer


def layer_name(image: Layer, role: str) -> str:
    return f"{image.name} {role}"


def rename_with(layers, old: str, new: str) -> None:
    """An image renamed from ``old`` to ``new``: its layers still named after ``old`` follow it (a
    layer the user renamed keeps the user's name)."""
    for layer in layers:
        role = layer.name[len(old) + 1:] if layer is not None and layer.name.startswith(f"{old} ") else None
        if role in (MASK, DEPTH, PROBABILITY):
            layer.name = f"{new} {role}"


def role_of(layer: Layer) -> str | None:
    return (layer.metadata.get(ROLE_KEY) or {}).get("role")


def source_info(image: Image) -> dict[str, Any]:
    """What the reader recorded (source path, kind, frame names, sample flag), falling back to
    napari's own record of the file a layer came from."""
    info = dict(image.metadata.get(ROLE_KEY) or {})
    if not info.get("source") and getattr(image.source, "path", None):
        info["source"] = str(image.source.path)
    return info


def frame_geometry(image: Image) -> tuple[int, tuple[int, int], bool]:
    """(number of frames, (H, W), is_stack) of a 2-D image or a T×H×W stack, RGB or grey."""
    shape = tuple(image.data.shape)
    spatial = shape[:-1] if image.rgb else shape
    if len(spatial) == 2:
        return 1, spatial, False
    if len(spatial) == 3:
        return spatial[0], spatial[1:], True
    raise ValueError(
        f"layer '{image.name}' has shape {shape}; DepthPolyp takes one frame (H×W[×3]) or a stack (T×H×W[×3])"
    )


def frame_data(image: Image, index: int, is_stack: bool) -> np.ndarray:
    return np.asarray(image.data[index] if is_stack else image.data)


def _place(viewer, layer: Layer, source: Layer) -> None:
    """Copy the source's scale and translate (the trailing axes the layer has)."""
    layer.scale = tuple(source.scale)[-layer.ndim:]
    layer.translate = tuple(source.translate)[-layer.ndim:]


def _ensure(viewer, kind, name: str, data, source: Layer, role: str, add, existing: Layer | None = None,
            taken: Collection[Layer] = (), **kwargs) -> Layer:
    """Update ``existing`` (or the layer called ``name``, unless another image's layers, ``taken``,
    hold it) in place, or add the layer once."""
    if existing is None or existing not in viewer.layers:
        existing = viewer.layers[name] if name in viewer.layers else None
        if any(existing is t for t in taken):  # another image's layer that still bears this name
            existing = None
    if isinstance(existing, kind) and role_of(existing) == role:
        if existing.data is not data:
            existing.data = data
        _place(viewer, existing, source)
        return existing
    meta = {ROLE_KEY: {"role": role}}
    layer = add(data, name=name, metadata=meta, **kwargs)
    _place(viewer, layer, source)
    return layer


def ensure_mask_layer(viewer, image: Image, masks: np.ndarray, existing: Labels | None = None,
                      taken: Collection[Layer] = ()) -> Labels:
    layer = _ensure(viewer, Labels, layer_name(image, MASK), masks, image, "mask", viewer.add_labels,
                    existing=existing, taken=taken, opacity=0.5)
    layer.selected_label = 1
    return layer


def ensure_map_layers(viewer, image: Image, probability: np.ndarray, depth: np.ndarray,
                      existing: tuple[Image | None, Image | None] = (None, None),
                      taken: Collection[Layer] = ()) -> tuple[Image, Image]:
    """Probability (hidden) and depth; uint8-quantised maps get limits 0..255, float maps 0..1."""
    top = 255.0 if probability.dtype == np.uint8 else 1.0
    prob = _ensure(viewer, Image, layer_name(image, PROBABILITY), probability, image, "probability",
                   viewer.add_image, existing=existing[0], taken=taken, colormap="viridis", contrast_limits=(0.0, top),
                   visible=False, blending="additive")
    dep = _ensure(viewer, Image, layer_name(image, DEPTH), depth, image, "depth", viewer.add_image,
                  existing=existing[1], taken=taken, colormap="magma", contrast_limits=(0.0, top), opacity=0.45,
                  blending="translucent")
    for layer in (prob, dep):
        layer.contrast_limits_range = (0.0, top)
        layer.contrast_limits = (0.0, top)
    return prob, dep


def record(layer: Layer, **values) -> None:
    """Merge ``values`` into ``layer.metadata['depthpolyp']`` (provenance, source, review counts)."""
    meta = dict(layer.metadata)
    meta[ROLE_KEY] = {**(meta.get(ROLE_KEY) or {}), **values}
    layer.metadata = meta


# ----------------------------------------------------------------------------- frames
def _time_axis(viewer, layer: Layer) -> int:
    return viewer.dims.ndim - layer.ndim


def current_frame(viewer, layer: Layer, n_frames: int) -> int:
    """The frame of ``layer``'s first axis shown at the viewer's current position."""
    if n_frames <= 1:
        return 0
    world = np.asarray(viewer.dims.point)[-layer.ndim:]
    index = int(np.round(layer.world_to_data(world)[0]))
    return int(np.clip(index, 0, n_frames - 1))


def go_to_frame(viewer, layer: Layer, index: int) -> None:
    if layer.ndim < 3:
        return
    point = np.zeros(layer.ndim)
    point[0] = index
    world = layer.data_to_world(point)[0]
    viewer.dims.set_point(_time_axis(viewer, layer), float(world))


# ----------------------------------------------------------------------------- chooser
class ImageLayerCombo(QComboBox):
    """The viewer's Image layers (not our depth / probability layers), kept up to date (also
    when a layer is renamed: items hold the layers themselves)."""

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.setToolTip("The frames to work on: a video, an image folder (a stack) or one image")
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.reordered):
            event.connect(self.reset_choices)
        self.reset_choices()

    def reset_choices(self, event=None) -> None:
        try:
            current = self.value
            layers = [layer for layer in self.viewer.layers if isinstance(layer, Image) and role_of(layer) is None]
            active = self.viewer.layers.selection.active
            want = current if current in layers else (active if active in layers else (layers[-1] if layers else None))
            self.blockSignals(True)
            self.clear()
            for layer in layers:
                layer.events.name.connect(self.reset_choices)  # napari ignores repeated connections
                self.addItem(layer.name, layer)
            if want is not None:
                self.setCurrentIndex(layers.index(want))
            self.blockSignals(False)
            if want is not current:
                self.currentIndexChanged.emit(self.currentIndex())
        except RuntimeError:  # the Qt object is gone (viewer closing)
            pass

    @property
    def value(self) -> Image | None:
        layer = self.currentData()
        return layer if layer is not None and layer in self.viewer.layers else None

    def set_value(self, layer: Image) -> None:
        for i in range(self.count()):
            if self.itemData(i) is layer:
                self.setCurrentIndex(i)
                return
