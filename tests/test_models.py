"""Model directories: hashes, cards, the registry and torch/ONNX parity."""

import json

import numpy as np
import onnx
import pytest
import torch

from napari_depthpolyp.model import DepthPolyp
from napari_depthpolyp.models import (
    CARD,
    ONNX,
    WEIGHTS,
    ModelCard,
    ModelError,
    NoModelError,
    list_models,
    next_user_model_dir,
    open_model,
    resolve_model,
    user_models_dir,
    write_model,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained network written as a model directory: for file-format tests only."""
    torch.manual_seed(1)
    card = ModelCard(name="format-test", version="0.1", default_threshold=0.4)
    return write_model(tmp_path_factory.mktemp("m") / "format-test-0.1", DepthPolyp().state_dict(), card)


def test_model_directory_has_files_and_hashes(model_dir):
    card = json.loads((model_dir.path / CARD).read_text())
    assert set(card["files"]) == {WEIGHTS, ONNX}
    assert all(len(h) == 64 for h in card["files"].values())
    for key in ("name", "version", "parent", "input_size", "default_threshold", "training_data", "metrics"):
        assert key in card
    meta = {p.key: p.value for p in onnx.load(str(model_dir.onnx_path)).metadata_props}
    assert json.loads(meta["depthpolyp_card"])["name"] == "format-test"


def test_onnx_matches_torch(model_dir):
    import onnxruntime as ort

    net = model_dir.load_torch()
    x = np.random.default_rng(0).random((3, 3, 224, 224), dtype=np.float32)
    sess = ort.InferenceSession(str(model_dir.onnx_path), providers=["CPUExecutionProvider"])
    seg, depth = sess.run(None, {"image": x})
    with torch.inference_mode():
        ref = torch.sigmoid(net(torch.from_numpy(x))).numpy()
    assert seg.shape == depth.shape == (3, 1, 224, 224)
    assert np.abs(seg - ref[:, :1]).max() < 1e-4
    assert np.abs(depth - ref[:, 1:]).max() < 1e-4


def test_tampered_weights_are_refused(model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(model_dir.path, copy)
    with open(copy / WEIGHTS, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match=r"weights\.safetensors.*sha256"):
        open_model(copy)
    # an ONNX graph the card does not list would run unverified: refused too
    shutil.copy(model_dir.path / WEIGHTS, copy / WEIGHTS)
    card = json.loads((copy / "card.json").read_text())
    card["files"].pop("model.onnx", None)
    (copy / "card.json").write_text(json.dumps(card))
    (copy / "model.onnx").write_bytes(b"not the graph the card was made with")
    with pytest.raises(ModelError, match=r"model\.onnx: not listed in the model card"):
        open_model(copy)


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not valid JSON"), ("[]", "JSON object"), ('{"name": "x"}', "lacks the field")],
)
def test_malformed_card_is_refused_with_the_file_name(model_dir, tmp_path, content, message):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(model_dir.path, copy)
    (copy / CARD).write_text(content)
    with pytest.raises(ModelError, match=message) as err:
        open_model(copy)
    assert "card.json" in str(err.value)


def test_registry_lists_and_resolves_user_models(model_dir):
    import shutil

    target = user_models_dir() / "format-test-0.1"
    shutil.copytree(model_dir.path, target, dirs_exist_ok=True)
    ids = [m.id for m in list_models()]
    assert "format-test-0.1" in ids
    assert resolve_model("format-test").path == target
    assert resolve_model("format-test-0.1").path == target
    assert resolve_model(str(model_dir.path)).path == model_dir.path
    with pytest.raises(NoModelError, match="not found"):
        resolve_model("no-such-model")
    path, version = next_user_model_dir("format-test")
    assert not path.exists() and version.startswith("ft.")


def _copy_as_fine_tune(source, target, version):
    """A user model at ``target``: ``source``'s files with ``version`` in its card."""
    import shutil

    shutil.copytree(source, target)
    card = json.loads((target / "card.json").read_text())
    card["version"] = version
    (target / "card.json").write_text(json.dumps(card))
    return target


def test_a_fine_tune_named_like_the_bundled_model_does_not_replace_the_default():
    import shutil

    from napari_depthpolyp.models import DEFAULT_MODEL, _version_key, read_card

    bundled = resolve_model()
    assert bundled.bundled and bundled.card.name == DEFAULT_MODEL
    target = _copy_as_fine_tune(bundled.path, user_models_dir() / f"{DEFAULT_MODEL}-ft.1", "ft.1")
    try:
        assert read_card(target).version == "ft.1"
        assert resolve_model().path == bundled.path  # no flags: still the bundled model
        assert resolve_model(DEFAULT_MODEL).path == target  # by name: the newest version
        assert resolve_model(f"{DEFAULT_MODEL}-ft.1").path == target
    finally:
        shutil.rmtree(target)
    assert sorted(["ft.2", "1.10", "ft.1", "1.2", "1.0"], key=_version_key) == ["1.0", "1.2", "1.10", "ft.1", "ft.2"]


def test_the_first_fine_tune_of_the_bundled_model_is_ft_1():
    """Release numbers ("1.1") are not fine-tune numbers: the first fine-tune is ft.1, the next ft.2."""
    import shutil

    from napari_depthpolyp.models import DEFAULT_MODEL

    bundled = resolve_model()
    assert bundled.card.version != "ft.1"
    path, version = next_user_model_dir(DEFAULT_MODEL)
    assert version == "ft.1" and path.name == f"{DEFAULT_MODEL}-ft.1"
    _copy_as_fine_tune(bundled.path, path, "ft.1")
    try:
        assert next_user_model_dir(DEFAULT_MODEL)[1] == "ft.2"
    finally:
        shutil.rmtree(path)


def test_a_model_is_never_overwritten(model_dir):
    with pytest.raises(ModelError, match="never overwritten"):
        write_model(model_dir.path, DepthPolyp().state_dict(), ModelCard(name="x", version="1"))


def test_export_leaves_the_network_in_its_mode(tmp_path):
    from napari_depthpolyp.models import export_onnx_model

    net = DepthPolyp().eval()
    export_onnx_model(net, tmp_path / "m.onnx", ModelCard(name="x", version="0"))
    assert not any(m.training for m in net.modules())


def test_onnx_matches_torch_at_batch_1(model_dir):
    import onnxruntime as ort

    net = model_dir.load_torch()
    x = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    sess = ort.InferenceSession(str(model_dir.onnx_path), providers=["CPUExecutionProvider"])
    seg, depth = sess.run(None, {"image": x})
    with torch.inference_mode():
        ref = torch.sigmoid(net(torch.from_numpy(x))).numpy()
    assert np.abs(seg - ref[:, :1]).max() < 1e-4
    assert np.abs(depth - ref[:, 1:]).max() < 1e-4


@pytest.fixture(scope="module", params=["dynamo", "legacy"])
def exported(request, tmp_path_factory):
    """The same weights through each exporter: (path, network)."""
    from napari_depthpolyp.models import export_onnx_model

    if request.param == "dynamo":
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    torch.manual_seed(2)
    net = DepthPolyp().eval()
    path = tmp_path_factory.mktemp("export") / f"{request.param}.onnx"
    return export_onnx_model(net, path, ModelCard(name="x", version="0"), exporter=request.param), net


def test_exported_graph_is_static_but_for_the_batch_and_lean(exported):
    """What makes the graph fast under ONNX Runtime (see model/export.py): no shape arithmetic,
    one Gelu node per Mix-FFN, a single Gather (one ISF shuffle), upsampling by scale factors, and
    a few hundred nodes rather than the ~1,500 of a direct export of the network."""
    from collections import Counter

    model = onnx.load(str(exported[0]))
    ops = Counter(n.op_type for n in model.graph.node if n.op_type not in ("Constant", "Identity"))
    assert not {"Shape", "ConstantOfShape", "Expand", "Range", "Unsqueeze"} & set(ops), ops
    assert ops["Gelu"] == 8 and ops["Erf"] == 0
    assert ops["Gather"] == 1
    assert sum(ops.values()) < 350, ops
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(model.graph.input[0]) == ["N", 3, 224, 224]
    assert [dims(o) for o in model.graph.output] == [["N", 1, 224, 224]] * 2
    for node in model.graph.node:
        if node.op_type == "Resize":
            assert list(node.input[3:]) in ([], [""]), "Resize by sizes runs outside ONNX Runtime's NCHWc layout"


@pytest.mark.parametrize("batch", [1, 3])
def test_each_exporter_matches_torch(exported, batch):
    import onnxruntime as ort

    path, net = exported
    x = np.random.default_rng(batch).random((batch, 3, 224, 224), dtype=np.float32)
    seg, depth = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    with torch.inference_mode():
        ref = torch.sigmoid(net(torch.from_numpy(x))).numpy()
    assert np.abs(seg - ref[:, :1]).max() < 1e-4
    assert np.abs(depth - ref[:, 1:]).max() < 1e-4


def test_release_script_writes_the_same_tensors_under_the_release_version(model_dir, tmp_path):
    """scripts/release_model.py: a candidate's tensors, bit for bit, under its release number; the
    card and the ONNX metadata name the new version, the description keeps the working name."""
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    script = Path(__file__).resolve().parents[1] / "scripts" / "release_model.py"
    out = tmp_path / "format-test-1.0"
    argv = [sys.executable, str(script), str(model_dir.path), "--version", "1.0", "--out", str(out)]
    run = subprocess.run(argv, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    released = open_model(out)
    assert released.card.version == "1.0" and released.card.config.get("version") == "1.0"
    assert "trained as format-test-0.1" in released.card.description
    assert released.card.default_threshold == model_dir.card.default_threshold
    before, after = load_file(str(model_dir.weights_path)), load_file(str(released.weights_path))
    assert before.keys() == after.keys() and all(before[k].equal(after[k]) for k in before)
    props = {p.key: p.value for p in onnx.load(str(released.onnx_path)).metadata_props}
    assert json.loads(props["depthpolyp_card"])["version"] == "1.0"
    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 1 and "already exists" in again.stderr
