"""The network matches the published architecture: size, cost, shapes, gradients, reference names."""

import json
from pathlib import Path

import pytest
import torch

from napari_depthpolyp.model import DepthPolyp, count_macs, count_parameters
from napari_depthpolyp.model.reference import (
    ReferenceCheckpointError,
    load_reference_checkpoint,
    ours_to_reference,
    reference_to_ours,
)

REFERENCE_NAMES = Path(__file__).resolve().parents[2] / "shared" / "docs" / "reference-state-dict.json"


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return DepthPolyp()


def test_parameter_count_is_the_published_one(net):
    assert count_parameters(net) == 3_572_062
    assert sum(p.numel() for p in net.encoder.parameters()) == 3_319_392
    assert sum(p.numel() for p in net.decoder.parameters()) == 252_540
    assert sum(p.numel() for p in net.segmentation_head.parameters()) == 130


def test_macs_within_two_percent_of_published(net):
    macs = count_macs(net, 224)
    assert abs(macs - 0.862e9) / 0.862e9 < 0.02, macs


@pytest.mark.parametrize("batch", [1, 4])
def test_output_shapes(net, batch):
    net.eval()
    with torch.inference_mode():
        out = net(torch.rand(batch, 3, 224, 224))
    assert out.shape == (batch, 2, 224, 224)
    assert torch.isfinite(out).all()
    # logits, not probabilities: values are not confined to [0, 1]
    assert out.dtype == torch.float32


@pytest.mark.parametrize("channel", [0, 1])
def test_each_head_sends_gradients_into_the_encoder(net, channel):
    net.train()
    net.zero_grad()
    out = net(torch.rand(2, 3, 224, 224))
    out[:, channel].mean().backward()
    grads = [p.grad for p in net.encoder.patch_embed1.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_reference_names_map_one_to_one(net):
    if not REFERENCE_NAMES.is_file():
        pytest.skip(f"{REFERENCE_NAMES} not found: clone the project beside ../shared")
    reference = json.loads(REFERENCE_NAMES.read_text())
    ours = ours_to_reference(net.state_dict())
    assert set(ours) == set(reference)
    for name, shape in reference.items():
        assert list(ours[name].shape) == shape, name


def test_published_checkpoint_loads(net, tmp_path):
    """A .pth in the reference's naming (Linear projections, module. prefix, wrapped) loads strictly."""
    ref = {f"module.{k}": v.clone() for k, v in ours_to_reference(net.state_dict()).items()}
    path = tmp_path / "depthpolyp_best.pth"
    torch.save({"state_dict": ref, "epoch": 199}, path)
    loaded = load_reference_checkpoint(path)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert reference_to_ours(ours_to_reference(net.state_dict())).keys() == net.state_dict().keys()


def test_bad_checkpoints_are_refused_with_the_file_name(net, tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ReferenceCheckpointError, match="garbage.pth"):
        load_reference_checkpoint(garbage)
    partial = tmp_path / "partial.pth"
    sd = ours_to_reference(net.state_dict())
    sd.pop("segmentation_head.0.bias")
    torch.save(sd, partial)
    with pytest.raises(ReferenceCheckpointError, match="partial.pth.*missing"):
        load_reference_checkpoint(partial)


def test_folded_level1_is_the_same_function(net):
    """The cheaper evaluation order of level 1 (projection x GFM conv folded) changes no output."""
    net.eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        folded = net(x)
        net.decoder.fold_projections = False
        try:
            reference_order = net(x)
        finally:
            net.decoder.fold_projections = True
    assert torch.allclose(folded, reference_order, atol=1e-5)
    assert count_macs(net, executed=True) < 0.75 * count_macs(net)


def test_channels_last_and_nchw_agree(net):
    net.eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        a = net(x)
        b = net(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-5)


def _with_trained_like_statistics(seed: int = 3) -> DepthPolyp:
    """A network whose BatchNorm statistics, ISF scales (one negative, one zero) and gate are not the
    initial ones, so that every folding in the export view has something to fold."""
    torch.manual_seed(seed)
    net = DepthPolyp()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        net.decoder.cyclic_shuffle_enhancer_o.group_scale.copy_(torch.tensor([0.7, -0.3, 1.2, 0.0]))
        net.decoder.cyclic_shuffle_enhancer_e.group_scale.uniform_(0.5, 1.5)
        net.decoder.gatefuser.fc.weight.normal_()
    return net


@pytest.mark.parametrize("batch", [1, 3])
def test_export_view_is_the_same_function(batch):
    """The ONNX export's arrangement (folded BatchNorm and scales, token matrices, batched ghost
    convs, gating folded into the head) computes the network's probabilities."""
    from napari_depthpolyp.model import ProbabilityWrapper
    from napari_depthpolyp.model.export import ExportView

    net = _with_trained_like_statistics().train()  # the view uses eval semantics whatever the mode
    view = ExportView(net)
    assert net.training
    x = torch.rand(batch, 3, 224, 224)
    with torch.inference_mode():
        expected = ProbabilityWrapper(net.eval())(x)
        got = view(x)
    for e, g in zip(expected, got):
        assert g.shape == (batch, 1, 224, 224)
        assert torch.allclose(e, g, atol=1e-5)


def test_export_view_refuses_sizes_that_do_not_halve_exactly(net):
    from napari_depthpolyp.model.export import ExportView

    with pytest.raises(ValueError, match="multiple of 32"):
        ExportView(net, 200)
