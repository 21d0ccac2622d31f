"""Model directories, model cards and the model registry.

A model is a directory::

    weights.safetensors   the torch weights (no pickle)
    model.onnx            the inference graph (sigmoids applied), card embedded in its metadata
    card.json             name, version, parent, input size, default threshold, training-data
                          fingerprint, metrics, and the sha256 of each of the two files above

Opening a model (``open_model``) verifies both hashes and refuses a mismatch or a malformed card
with an error naming the file. card.json itself is covered by no hash, but the ONNX graph carries a
copy of the card (every field but ``files``): card.json is checked against that copy and the graph's
input shape (``check_card_against_graph``) where the graph is loaded, not on opening. The engine
(``engine.Predictor``) checks it with the facts of the ONNX Runtime session it creates anyway; its
torch backend and ``depthpolyp info`` read them with the ``onnx`` library
(``ModelDir.check_graph_file``). A graph that neither can parse is refused. The registry lists the models bundled inside
the package and the user's own versions (a per-user data directory), and resolves a model by id, by
name (newest version) or by path.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .io.atomic import atomic_path, file_sha256, write_json
from .paths import user_dir

WEIGHTS = "weights.safetensors"
ONNX = "model.onnx"
CARD = "card.json"
CARD_FORMAT = "depthpolyp-model-card"
INPUT_NAME = "image"
OUTPUT_NAMES = ("segmentation", "depth")
BUNDLED_DIR = Path(__file__).with_name("weights")
DEFAULT_MODEL = "depthpolyp-kvasir"
_REQUIRED = {"name": str, "version": str, "input_size": list, "default_threshold": (int, float), "files": dict}
# Optional fields: the JSON type each must have when present (the dataclass default otherwise).
_OPTIONAL = {"parent": (str, type(None)), "training_data": dict, "metrics": dict, "config": dict,
             "created": str, "description": str, "format": str}
_JSON_TYPE = {str: "a string", list: "a list", dict: "a JSON object", (int, float): "a number",
              (str, type(None)): "a string or null"}
ONNX_CARD_KEY = "depthpolyp_card"  # the ONNX metadata entry that holds the card (export_onnx_model)
# The only card field written after the ONNX export (the sha256 of the files, the graph's included):
# every other field is in the graph's copy of the card and must still match it.
_WRITTEN_AFTER_EXPORT = frozenset({"files"})
_MUST_BE_EMBEDDED = ("name", "version", "input_size", "default_threshold")  # what changes what the model does


class ModelError(ValueError):
    """A model file or card that cannot be used; the message names the file and the problem."""


class ModelTaken(ModelError):
    """The model's folder exists already (a model is never overwritten)."""


class NoModelError(ModelError):
    """No trained model is available under the asked name."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModelCard:
    name: str
    version: str
    input_size: list[int] = field(default_factory=lambda: [224, 224])
    default_threshold: float = 0.5
    parent: str | None = None
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=now_iso)
    description: str = ""
    format: str = CARD_FORMAT

    @property
    def id(self) -> str:
        return f"{self.name}-{self.version}" if self.version else self.name

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Any, source: Path) -> "ModelCard":
        """The card in ``data`` (card.json's content), each known field checked for its type and the
        values that decide what the model does (input size, threshold, file hashes) for their range."""
        if not isinstance(data, dict):
            raise ModelError(f"{source}: a model card must be a JSON object, got {type(data).__name__}")

        def wrong(key: str, expected: str) -> ModelError:
            return ModelError(f"{source}: model card field '{key}' must be {expected}, got {_shown(data[key])}")

        for key, kind in _REQUIRED.items():
            if key not in data:
                raise ModelError(f"{source}: model card lacks the field '{key}'")
            if not isinstance(data[key], kind) or isinstance(data[key], bool):
                raise wrong(key, _JSON_TYPE[kind])
        for key, kind in _OPTIONAL.items():
            if key in data and not isinstance(data[key], kind):
                raise wrong(key, _JSON_TYPE[kind])
        if not data["name"].strip():
            raise wrong("name", "a non-empty string")
        size = data["input_size"]
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise wrong("input_size", "two positive integers [height, width]")
        threshold = data["default_threshold"]
        if not (math.isfinite(threshold) and 0 < threshold < 1):
            raise wrong("default_threshold", "a probability strictly between 0 and 1")
        for name, digest in data["files"].items():
            if name in ("", ".", "..") or "/" in name or "\\" in name:
                raise ModelError(f"{source}: model card field 'files' lists {name!r}, which is not a file name "
                                 "in the model directory")
            if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                raise ModelError(f"{source}: model card field 'files' gives {name} the sha256 {_shown(digest)}, "
                                 "not 64 hexadecimal digits")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _shown(value: Any, limit: int = 60) -> str:
    """A card value as an error message shows it: JSON, cut short when long."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ModelDir:
    """A verified model directory."""

    path: Path
    card: ModelCard
    bundled: bool = False

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX

    def sha256(self, name: str = WEIGHTS) -> str:
        return self.card.files.get(name, "")

    def provenance(self) -> dict[str, Any]:
        return {"model": self.card.name, "version": self.card.version, "sha256": self.sha256(), "path": str(self.path)}

    def check_graph(self, metadata: dict[str, str], inputs: dict[str, list[int | str | None]],
                    outputs: list[str]) -> None:
        """:func:`check_card_against_graph` with the facts about this model's graph (metadata,
        inputs as name -> dims, output names), e.g. from the ONNX Runtime session the engine made."""
        check_card_against_graph(self.card, self.path / CARD, metadata, inputs.get(INPUT_NAME), outputs,
                                 self.onnx_path, input_names=list(inputs))

    def check_graph_file(self) -> None:
        """:meth:`check_graph` with the facts read by the ``onnx`` library (for the paths that make no
        ONNX Runtime session); nothing to check for a torch-only model (no model.onnx)."""
        if self.onnx_path.is_file():
            self.check_graph(*read_graph_facts(self.onnx_path))

    def load_torch(self):
        """A ``DepthPolyp`` in eval mode with this model's weights."""
        from safetensors.torch import load_file

        from .model import DepthPolyp

        net = DepthPolyp()
        try:
            state = load_file(str(self.weights_path))
            net.load_state_dict(state, strict=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{self.weights_path}: cannot be loaded as DepthPolyp weights ({exc})") from exc
        return net.eval()


def read_card(path: str | os.PathLike) -> ModelCard:
    path = Path(path)
    card_path = path / CARD if path.is_dir() else path
    if not card_path.is_file():
        raise ModelError(f"{card_path}: no model card (card.json) found")
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{card_path}: model card is not valid JSON ({exc})") from exc
    return ModelCard.from_dict(data, card_path)


def open_model(path: str | os.PathLike, *, bundled: bool = False, verify: bool = True) -> ModelDir:
    """Open a model directory, checking the card's fields and that every file the card lists matches
    its sha256 (``verify=False``, listing the registry: the card alone). card.json against the graph
    is checked where the graph is loaded: :meth:`ModelDir.check_graph` / :meth:`ModelDir.check_graph_file`."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: not a model directory")
    card = read_card(path)
    if WEIGHTS not in card.files:
        raise ModelError(f"{path / CARD}: the card lists no {WEIGHTS}")
    if (path / ONNX).is_file() and ONNX not in card.files:  # the engine would run it unverified
        raise ModelError(f"{path / ONNX}: not listed in the model card, so it cannot be verified; "
                         "remove it or write the model again")
    for name, expected in card.files.items():
        file = path / name
        if not file.is_file():
            raise ModelError(f"{file}: listed in the model card but missing")
        if verify and file_sha256(file) != expected:
            raise ModelError(
                f"{file}: sha256 does not match the model card (file changed or tampered with); refusing to load it"
            )
    return ModelDir(path=path, card=card, bundled=bundled)


# --------------------------------------------------------------------------------------------
# card.json against the ONNX graph
# --------------------------------------------------------------------------------------------


def read_graph_facts(onnx_path: str | os.PathLike) -> tuple[dict[str, str], dict[str, list[int | str | None]], list[str]]:
    """(metadata, inputs as name -> dims, output names) of the ONNX file at ``onnx_path``, read with
    the ``onnx`` library, for the paths that create no ONNX Runtime session (the torch backend,
    ``depthpolyp info``). A dimension is an int, a symbolic name, or None when unknown. ``import onnx``
    alone takes seconds, so it happens here only."""
    import onnx

    onnx_path = Path(onnx_path)
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
        if not model.HasField("graph"):
            raise ValueError("no graph in it")
    except Exception as exc:  # protobuf's DecodeError, OSError, ...
        raise ModelError(f"{onnx_path}: not a loadable ONNX graph ({exc})") from exc

    def dims(value) -> list[int | str | None]:
        return [getattr(d, d.WhichOneof("value")) if d.WhichOneof("value") else None
                for d in value.type.tensor_type.shape.dim]

    initializers = {t.name for t in model.graph.initializer}  # listed as inputs by old exports
    metadata = {p.key: p.value for p in model.metadata_props}
    inputs = {v.name: dims(v) for v in model.graph.input if v.name not in initializers}
    return metadata, inputs, [v.name for v in model.graph.output]


def check_card_against_graph(card: ModelCard, card_path: Path, metadata: dict[str, str],
                             input_dims: list[int | str | None] | None, outputs: list[str], onnx_path: Path,
                             *, input_names: Sequence[str] = ()) -> None:
    """Refuse a graph the engine cannot feed or read, a card whose input size is not the graph's,
    and a card.json changed since the export: every field but ``files`` must equal the graph's copy.
    ``metadata``, ``input_dims`` (the dims of the input 'image', None when there is no such input; a
    dim is an int, a symbolic name or None) and ``outputs`` are facts about the graph, taken from an
    ONNX Runtime session or :func:`read_graph_facts`; ``input_names`` only names the inputs in the
    message when 'image' is not one."""
    if input_dims is None:
        raise ModelError(f"{onnx_path}: not a DepthPolyp graph (no input '{INPUT_NAME}'; "
                         f"inputs: {', '.join(map(repr, input_names)) or 'none'})")
    if list(outputs) != list(OUTPUT_NAMES):
        raise ModelError(f"{onnx_path}: not a DepthPolyp graph (outputs {list(outputs)}, "
                         f"expected {list(OUTPUT_NAMES)})")
    if len(input_dims) != 4 or (input_dims[1] not in (3, None) and not isinstance(input_dims[1], str)):
        raise ModelError(f"{onnx_path}: not a DepthPolyp graph (input '{INPUT_NAME}' has shape {input_dims}, "
                         "expected [N, 3, height, width])")
    static = [d if isinstance(d, int) and d > 0 else None for d in input_dims[2:]]
    if all(static) and static != list(card.input_size):
        raise ModelError(f"{card_path}: model card field 'input_size' is {card.input_size}, but the graph "
                         f"{onnx_path} takes {static[0]}x{static[1]} frames")
    if ONNX_CARD_KEY not in metadata:
        raise ModelError(f"{onnx_path}: carries no '{ONNX_CARD_KEY}' metadata, so {CARD} cannot be checked "
                         "against it; write the model again")
    try:
        embedded = json.loads(metadata[ONNX_CARD_KEY])
    except json.JSONDecodeError as exc:
        raise ModelError(f"{onnx_path}: its '{ONNX_CARD_KEY}' metadata is not valid JSON ({exc})") from exc
    if not isinstance(embedded, dict):
        raise ModelError(f"{onnx_path}: its '{ONNX_CARD_KEY}' metadata is not a JSON object")
    ours = card.to_dict()
    differ = []
    for key in ModelCard.__dataclass_fields__:
        if key in _WRITTEN_AFTER_EXPORT:
            continue
        if key not in embedded:
            if key in _MUST_BE_EMBEDDED:
                raise ModelError(f"{onnx_path}: its '{ONNX_CARD_KEY}' metadata lacks the field '{key}'")
            continue  # a field an older export did not write
        if json.dumps(ours[key], sort_keys=True) != json.dumps(embedded[key], sort_keys=True):
            short = max(len(_shown(ours[key])), len(_shown(embedded[key]))) < 60
            differ.append(f"'{key}' is {_shown(ours[key])}, the graph's {_shown(embedded[key])}" if short
                          else f"'{key}' differs")
    if differ:
        raise ModelError(f"{card_path}: does not match the card embedded in {onnx_path} ({'; '.join(differ)}): "
                         f"{CARD} was changed after the model was written; refusing to load it")


def write_model(
    out_dir: str | os.PathLike,
    state_dict: dict,
    card: ModelCard,
    *,
    export_onnx: bool = True,
    overwrite: bool = False,
) -> ModelDir:
    """Write weights (+ ONNX) and the card with their hashes. Written to a temporary directory and
    renamed into place, so a half-written model never appears under its name."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ModelTaken(f"{out_dir}: already exists; a model is never overwritten")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # a folder of its own for each writer: two fine-tunes finishing at once never share one
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    state = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt", "model": card.id})
    files = {WEIGHTS: file_sha256(tmp / WEIGHTS)}
    if export_onnx:
        from .model import DepthPolyp

        net = DepthPolyp()
        net.load_state_dict(state, strict=True)
        export_onnx_model(net.eval(), tmp / ONNX, card)
        files[ONNX] = file_sha256(tmp / ONNX)
    card.files = files
    write_json(tmp / CARD, card.to_dict())
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)
    try:  # a rename never replaces a folder with files in it: whoever renames first has the name
        os.rename(tmp, out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if out_dir.exists():
            raise ModelTaken(f"{out_dir}: written by another run meanwhile; a model is never overwritten") from exc
        raise
    return open_model(out_dir)


EXPORT_OPSET = 20  # the first opset with a Gelu operator; onnxruntime >= 1.17 runs it


def export_onnx_model(
    net,
    out_path: str | os.PathLike,
    card: ModelCard | None = None,
    opset: int = EXPORT_OPSET,
    exporter: str | None = None,
) -> Path:
    """Export the inference graph: input ``image`` [N,3,224,224] in [0,1], outputs ``segmentation``
    and ``depth`` [N,1,224,224] after sigmoid, dynamic batch; the card goes into the metadata.

    What is exported is ``ExportView(net)`` (``model/export.py``): the same function and weights
    arranged for ONNX Runtime's CPU provider (BatchNorm folded, encoder tokens as Gemm-ready
    matrices, one layout change per convolution, a decoder that stays in ONNX Runtime's blocked
    NCHWc layout). Only the batch dimension is symbolic, so the graph carries no Shape arithmetic.
    The file is standard ONNX (no contrib operators): the fusions ONNX Runtime makes when it loads
    it (Conv+ReLU, Transpose+MatMul, the NCHWc layout and its reorders) depend on the machine's
    instruction set, so they are left to load time rather than saved (saving them gained nothing).
    ``opset`` below ``EXPORT_OPSET`` is raised to it: its Gelu operator is one kernel where the Erf
    expansion is five nodes.

    ``exporter``: ``"dynamo"`` (``torch.onnx.export(dynamo=True)``, needs the ``onnxscript``
    package), ``"legacy"`` (the TorchScript exporter) or None, dynamo when onnxscript is installed.
    Both give the same operators; ONNX Runtime ran the dynamo graph 2-3 % faster on an idle 2-core
    CPU (and up to 20 % faster when the cores were contended).
    """
    import importlib.util

    import onnx

    from .model import INPUT_SIZE
    from .model.export import ExportView

    size = tuple(card.input_size if card else [INPUT_SIZE, INPUT_SIZE])
    view = ExportView(net, size)  # reads the weights; leaves the caller's network as it is
    if exporter is None:
        exporter = "dynamo" if importlib.util.find_spec("onnxscript") else "legacy"
    model = _export_view(view, size, max(opset, EXPORT_OPSET), exporter)
    for output in model.graph.output:  # the legacy exporter leaves them symbolic after Resize
        for dim, value in zip(output.type.tensor_type.shape.dim[1:], (1, *size)):
            dim.dim_value = value
    model.ir_version = min(model.ir_version, 9)  # opset 20 needs no more; onnxruntime 1.17 reads 9
    if card is not None:
        meta = {k: v for k, v in card.to_dict().items() if k != "files"}
        onnx.helper.set_model_props(model, {"depthpolyp_card": json.dumps(meta)})
    model.producer_name = "napari-depthpolyp"
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        onnx.save(model, str(tmp))
    return out_path


def _export_view(view, size: tuple[int, int], opset: int, exporter: str):
    """The ONNX ModelProto of ``view`` with a symbolic batch ``N``, from the chosen exporter."""
    import io
    import logging
    import warnings

    import onnx
    import torch

    names = {"input_names": [INPUT_NAME], "output_names": list(OUTPUT_NAMES), "opset_version": opset}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # exporter internals, not ours to act on
        warnings.simplefilter("ignore", DeprecationWarning)
        if exporter == "legacy":
            buf = io.BytesIO()
            axes = {name: {0: "N"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
            torch.onnx.export(view, (torch.rand(1, 3, *size),), buf, dynamic_axes=axes, dynamo=False, **names)
            return onnx.load_from_string(buf.getvalue())
        if exporter != "dynamo":
            raise ValueError(f"exporter must be 'dynamo' or 'legacy', got {exporter!r}")
        log = logging.getLogger("torch.onnx")
        level = log.level
        log.setLevel(logging.ERROR)  # "torchvision is not installed" notices
        try:
            return torch.onnx.export(
                view,
                (torch.rand(2, 3, *size),),  # batch 2: a batch of 1 would be specialised as a constant
                dynamic_shapes=({0: torch.export.Dim("N", min=1)},),
                dynamo=True,
                optimize=True,
                verbose=False,
                **names,
            ).model_proto
        finally:
            log.setLevel(level)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def user_models_dir() -> Path:
    return user_dir() / "models"


def list_models(skipped: list[ModelError] | None = None) -> list[ModelDir]:
    """Bundled models first, then user versions; unreadable directories are skipped (not hidden:
    their errors are appended to ``skipped`` when given, and ``depthpolyp info`` on the path shows
    why). Only the cards are read (the files' hashes are checked when a model is opened)."""
    found: list[ModelDir] = []
    for root, bundled in ((BUNDLED_DIR, True), (user_models_dir(), False)):
        if not root.is_dir():
            continue
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                found.append(open_model(sub, bundled=bundled, verify=False))
            except ModelError as exc:
                if skipped is not None:
                    skipped.append(exc)
    return found


def _version_key(version: str):
    """Orders "1.0" < "1.2" < "1.10" < "ft.1" < "ft.2": numbers numerically, and a word (a fine-tune's
    "ft") after any number, so that mixed versions compare instead of raising."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"[.\-]", version)]


def resolve_model(spec: str | os.PathLike | None = None) -> ModelDir:
    """A path to a model directory, a model id (``name-version``), or a name (newest version).
    ``None`` is the default bundled model."""
    if isinstance(spec, ModelDir):
        return spec
    if spec is not None and (Path(spec).is_dir() or os.sep in str(spec)):
        return open_model(spec)
    wanted = spec or DEFAULT_MODEL
    models = list_models()
    for m in models:
        if m.id == wanted or m.path.name == wanted:
            return open_model(m.path, bundled=m.bundled)
    named = [m for m in models if m.card.name == wanted]
    if spec is None and any(m.bundled for m in named):
        # no model named: the bundled default, even when the user's fine-tunes share its name
        named = [m for m in named if m.bundled]
    if named:
        best = max(named, key=lambda m: _version_key(m.card.version))
        return open_model(best.path, bundled=best.bundled)
    if spec is None:
        raise NoModelError(
            "No trained DepthPolyp model is bundled with this installation yet, and no user model is "
            "registered. Train one with `depthpolyp train` or pass --model PATH; random weights are "
            "never used in place of a model."
        )
    available = ", ".join(m.id for m in models) or "none"
    raise NoModelError(f"model '{spec}' not found (available: {available})")


def _issued_file(name: str) -> Path:
    return user_models_dir() / f".{name}.issued.json"


def _last_issued(name: str) -> int:
    """The highest fine-tune number of ``name`` ever written (0: none, or an unreadable record)."""
    try:
        return int(json.loads(_issued_file(name).read_text(encoding="utf-8")).get("last", 0))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0


def issued_version(name: str, version: str) -> None:
    """Remember that ``version`` of ``name`` was written, so that its number is never issued again,
    even after its folder is deleted (a saved choice or a child's ``parent`` would then name another
    model)."""
    if not (version.startswith("ft.") and version[3:].isdigit()):
        return
    if int(version[3:]) > _last_issued(name):
        write_json(_issued_file(name), {"last": int(version[3:])})


def next_user_model_dir(name: str) -> tuple[Path, str]:
    """A fresh directory and version for a new user model called ``name``: never an existing one,
    nor one issued before and deleted since."""
    root = user_models_dir()
    versions = [m.card.version for m in list_models() if m.card.name == name]
    # Only fine-tunes ("ft.N") count: a bundled "1.1" must not make the first fine-tune "ft.2".
    n = 1 + max([int(v[3:]) for v in versions if v.startswith("ft.") and v[3:].isdigit()] + [_last_issued(name)])
    version = f"ft.{n}"
    path = root / f"{name}-{version}"
    while path.exists():
        n += 1
        version = f"ft.{n}"
        path = root / f"{name}-{version}"
    return path, version
