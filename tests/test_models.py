"""Model directories: hashes, cards, the registry and torch/ONNX parity."""

import json
import re

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
    read_graph_facts,
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
    """A user model at ``target``: ``source``'s weights with ``version`` in its card. Torch only: the
    graph's embedded card names ``source``'s version, so a copy that kept it would be refused."""
    import shutil

    target.mkdir(parents=True)
    shutil.copy(source / WEIGHTS, target / WEIGHTS)
    card = json.loads((source / "card.json").read_text())
    card["version"] = version
    card["files"].pop(ONNX, None)
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


def test_a_deleted_fine_tunes_number_is_not_issued_again(tmp_path):
    """ft.2 deleted: the next fine-tune is ft.3, not a second ft.2 that a saved choice or a child's
    card would take for the first."""
    import shutil

    from napari_depthpolyp.models import issued_version

    path, version = next_user_model_dir("numbered")
    assert version == "ft.1"
    issued_version("numbered", "ft.1")
    issued_version("numbered", "ft.2")
    assert next_user_model_dir("numbered")[1] == "ft.3"  # ft.2's folder is gone (never made, here)
    shutil.rmtree(path, ignore_errors=True)


def test_two_writers_of_one_model_never_mix_their_files(tmp_path, monkeypatch):
    """Two runs finishing together each write in a folder of their own; the one that renames second
    gets ModelTaken, leaves nothing behind, and the first one's model is whole."""
    import os

    import napari_depthpolyp.models as models

    target = tmp_path / "m-ft.1"
    net = DepthPolyp()
    real_rename = os.rename

    def other_run_first(src, dst):  # the other run's rename lands between our check and ours
        monkeypatch.setattr(models.os, "rename", real_rename)
        write_model(dst, net.state_dict(), ModelCard(name="m", version="ft.1"), export_onnx=False)
        return real_rename(src, dst)

    monkeypatch.setattr(models.os, "rename", other_run_first)
    with pytest.raises(models.ModelTaken, match="another run"):
        write_model(target, net.state_dict(), ModelCard(name="m", version="ft.1"), export_onnx=False)
    monkeypatch.setattr(models.os, "rename", real_rename)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-ft.1"]  # no .partial folder left
    assert models.open_model(target).card.version == "ft.1"


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


# --------------------------------------------------------------------------------------------
# card.json against the graph's copy of the card (D5), card values (D6), unparsable graphs (D7)
# --------------------------------------------------------------------------------------------


def _bundled_copy(tmp_path, edit=None, name="copy"):
    """A copy of the bundled model directory, ``edit(card)`` applied to its card.json."""
    import shutil

    bundled = resolve_model()
    assert bundled.bundled
    copy = tmp_path / name
    shutil.copytree(bundled.path, copy)
    if edit is not None:
        card = json.loads((copy / CARD).read_text())
        edit(card)
        (copy / CARD).write_text(json.dumps(card))
    return copy


def _replace_graph(copy, data: bytes):
    """``copy``'s model.onnx replaced by ``data``, its card.json rehashed to match (tampering that
    the sha256 alone cannot see)."""
    import hashlib

    (copy / ONNX).write_bytes(data)
    card = json.loads((copy / CARD).read_text())
    card["files"][ONNX] = hashlib.sha256(data).hexdigest()
    (copy / CARD).write_text(json.dumps(card))


def test_every_card_field_but_the_hashes_is_embedded_in_the_bundled_graph():
    """What the check relies on: export_onnx_model writes the whole card but ``files`` into the graph's
    metadata, and nothing changes card.json after that (the bundled model, a release, loads)."""
    bundled = resolve_model()
    card = json.loads((bundled.path / CARD).read_text())
    embedded = json.loads(read_graph_facts(bundled.onnx_path)[0]["depthpolyp_card"])
    assert set(card) - set(embedded) == {"files"}
    assert {k: v for k, v in card.items() if k != "files"} == embedded


def test_the_session_and_the_onnx_library_give_the_check_the_same_facts():
    """The ONNX backend checks with the facts of its ONNX Runtime session, the torch backend and
    ``info`` with those of the onnx library: both must see the same graph."""
    import onnxruntime as ort

    path = resolve_model().onnx_path
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    from_session = (sess.get_modelmeta().custom_metadata_map, {i.name: list(i.shape) for i in sess.get_inputs()},
                    [o.name for o in sess.get_outputs()])
    assert read_graph_facts(path) == from_session
    assert from_session[1:] == ({"image": ["N", 3, 224, 224]}, ["segmentation", "depth"])


def _refused_by_the_engine(model_path, match, backends=("onnx",)) -> list[str]:
    """The ModelError messages of ``Predictor(model_path)`` on each backend (each must raise one
    matching ``match``). The directory itself opens: its files match their hashes."""
    from napari_depthpolyp.engine import Predictor

    open_model(model_path)
    messages = []
    for backend in backends:
        with pytest.raises(ModelError, match=match) as err:
            Predictor(str(model_path), backend=backend)
        messages.append(str(err.value))
    return messages


@pytest.mark.parametrize(
    "field, value",
    [
        ("default_threshold", 0.9),
        ("name", "another-model"),
        ("version", "9.9"),
        ("parent", None),
        ("description", "edited by hand"),
        ("metrics", {"val": {"val_dice_clean": 0.99}}),
        ("training_data", {}),
        ("config", {"threshold": 0.9}),
        ("created", "2020-01-01T00:00:00+00:00"),
    ],
)
def test_a_card_edited_after_the_export_is_refused(tmp_path, field, value):
    copy = _bundled_copy(tmp_path, lambda card: card.__setitem__(field, value))
    [message] = _refused_by_the_engine(copy, "does not match the card embedded in")
    assert str(copy / CARD) in message and str(copy / ONNX) in message and f"'{field}'" in message
    assert "\n" not in message


def test_an_edited_card_is_refused_by_the_torch_backend_and_by_info_too(tmp_path, capsys):
    from napari_depthpolyp.cli import main

    copy = _bundled_copy(tmp_path, lambda card: card.__setitem__("default_threshold", 0.9))
    wanted = f"{copy / CARD}: does not match the card embedded in {copy / ONNX} ('default_threshold' is 0.9, "
    for message in _refused_by_the_engine(copy, "does not match the card embedded in", backends=("onnx", "torch")):
        assert message.startswith(wanted)
    assert main(["info", "--model", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert wanted in err and len(err.splitlines()) == 1, err


def test_a_card_input_size_that_is_not_the_graphs_is_refused(tmp_path):
    copy = _bundled_copy(tmp_path, lambda card: card.__setitem__("input_size", [256, 256]))
    [message] = _refused_by_the_engine(copy, r"'input_size' is \[256, 256\], but the graph .* takes 224x224")
    assert message.startswith(f"{copy / CARD}: ")


def test_a_torch_only_model_with_an_edited_card_still_opens(tmp_path):
    """Without a graph there is no embedded card to compare with: the hashes alone are checked."""
    def torch_only(card):
        card["files"].pop(ONNX)
        card["default_threshold"] = 0.45

    copy = _bundled_copy(tmp_path, torch_only)
    (copy / ONNX).unlink()
    model = open_model(copy)
    assert model.card.default_threshold == 0.45 and not model.onnx_path.exists()
    from napari_depthpolyp.engine import Predictor

    predictor = Predictor(str(copy))  # no graph: the torch backend, nothing to check against
    assert predictor.backend == "torch" and predictor.threshold == 0.45


def test_a_graph_without_the_embedded_card_is_refused(tmp_path):
    copy = _bundled_copy(tmp_path)
    model = onnx.load(str(copy / ONNX), load_external_data=False)
    del model.metadata_props[:]
    _replace_graph(copy, model.SerializeToString())
    _refused_by_the_engine(copy, r"model\.onnx: carries no 'depthpolyp_card' metadata", backends=("onnx", "torch"))


@pytest.mark.parametrize(
    "field, value",
    [
        ("input_size", []),
        ("input_size", ["a"]),
        ("input_size", [224]),
        ("input_size", [224, 224, 224]),
        ("input_size", [0, 224]),
        ("input_size", [224.0, 224.0]),
        ("input_size", [True, True]),
        ("default_threshold", 5),
        ("default_threshold", 0),
        ("default_threshold", 1),
        ("default_threshold", -0.2),
        ("default_threshold", float("nan")),
        ("default_threshold", True),
        ("default_threshold", "0.3"),
        ("metrics", "oops"),
        ("metrics", None),
        ("config", []),
        ("training_data", "kvasir"),
        ("parent", 7),
        ("name", ""),
        ("version", 1.7),
        ("description", 3),
        ("files", {"weights.safetensors": 5}),
        ("files", {"../../../etc/passwd": "0" * 64}),
    ],
)
def test_a_card_value_out_of_range_is_refused_naming_card_json_and_the_field(tmp_path, field, value):
    """The card is checked before any file: a directory holding only the card.json is enough."""
    card = json.loads((resolve_model().path / CARD).read_text())
    card[field] = value
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(ModelError) as err:
        open_model(folder)
    message = str(err.value)
    assert message.startswith(f"{folder / CARD}: model card field '{field}' ") and "\n" not in message


def test_the_models_command_lists_the_good_models_and_names_a_broken_one(tmp_path, monkeypatch, capsys):
    from napari_depthpolyp.cli import main

    monkeypatch.setenv("DEPTHPOLYP_USER_DIR", str(tmp_path / "user"))
    card = json.loads((resolve_model().path / CARD).read_text())
    card["metrics"] = "oops"
    broken = user_models_dir() / "broken-1"
    broken.mkdir(parents=True)
    (broken / CARD).write_text(json.dumps(card))
    skipped = []
    assert [m.bundled for m in list_models(skipped)] == [True]
    assert len(skipped) == 1 and "'metrics'" in str(skipped[0])
    assert main(["models"]) == 2
    out, err = capsys.readouterr()
    assert resolve_model().id in out and "broken-1" not in out
    wanted = f"{broken / CARD}: model card field 'metrics' must be a JSON object, got 'oops'"
    assert err.strip() == f"depthpolyp models: error: {wanted}"
    import shutil

    card["metrics"] = {"val": "not a dict"}  # a valid card whose val metrics are no table
    card["files"].pop(ONNX)
    shutil.copy(resolve_model().weights_path, broken / WEIGHTS)
    (broken / CARD).write_text(json.dumps(card))
    assert main(["models"]) == 0
    assert "broken-1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "damage",
    [lambda data: b"garbage" * 10, lambda data: data[: len(data) // 2], lambda data: b""],
    ids=["garbage", "truncated", "empty"],
)
def test_a_graph_that_cannot_be_parsed_is_refused_even_with_its_hash_updated(tmp_path, damage):
    copy = _bundled_copy(tmp_path)
    _replace_graph(copy, damage((copy / ONNX).read_bytes()))
    where = re.escape(str(copy / ONNX))
    onnx_msg, torch_msg = _refused_by_the_engine(copy, rf"^{where}: ", backends=("onnx", "torch"))
    assert "ONNX Runtime cannot load this graph (" in onnx_msg
    assert "not a loadable ONNX graph (" in torch_msg


def test_predict_and_info_refuse_a_damaged_model_with_a_one_line_error(tmp_path, capsys):
    """The CLI shows the engine's (predict) or the onnx library's (info) refusal on one line, exit code 2."""
    from PIL import Image

    from napari_depthpolyp.cli import main

    copy = _bundled_copy(tmp_path)
    _replace_graph(copy, b"garbage" * 10)
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    thr = _bundled_copy(tmp_path, lambda card: card.__setitem__("default_threshold", 0.9), name="thr")
    predict = ["predict", str(image), "--out", str(tmp_path / "out"), "--model"]
    for argv, wanted in [
        (["info", "--model", str(copy)], f"{copy / ONNX}: not a loadable ONNX graph"),
        (predict + [str(copy)], f"{copy / ONNX}: ONNX Runtime cannot load this graph"),
        (predict + [str(copy), "--backend", "torch"], f"{copy / ONNX}: not a loadable ONNX graph"),
        (predict + [str(thr)], "'default_threshold' is 0.9"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert wanted in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
