"""The training loop on a few real frames: the loss falls, resume is exact, the output is a model."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from napari_depthpolyp.dataset import Dataset, DatasetError, DatasetWriter
from napari_depthpolyp.models import open_model
from napari_depthpolyp.train import TrainConfig, Trainer, finetune_config
from napari_depthpolyp.train.checkpoint import has_checkpoint
from napari_depthpolyp.train.losses import MultiTaskLoss, dice_loss, ssi_l1


@pytest.fixture(scope="module")
def tiny_dataset(kvasir_dir, tmp_path_factory):
    """12 real Kvasir-SEG train frames (and 4 val frames) in the project's dataset format."""
    split = json.loads((kvasir_dir / "split.json").read_text())
    src = Dataset.open(kvasir_dir, split="train")
    root = tmp_path_factory.mktemp("tiny")
    for sub, names in (("train", split["train"][:12]), ("val", split["val"][:4])):
        ds = Dataset.open(kvasir_dir, split=sub)
        by_name = {s.name: i for i, s in enumerate(ds)}
        with DatasetWriter(root / sub) as w:
            for n in names:
                image, mask, _ = ds.load(by_name[n])
                # shrink so the test stays quick; the cache resizes to 224 anyway
                w.add(n, image[::2, ::2], mask[::2, ::2], source_file=str(ds[by_name[n]].image))
    del src
    return root


def _cfg(root, **kw):
    base = dict(
        train_data=[str(root / "train")], train_split=None, val_data=str(root / "val"), val_split=None,
        name="tiny", epochs=2, batch_size=4, lr=1e-3, warmup_epochs=0, workers=0, ema=0.0,
        val_every=1, bf16=False, seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_loss_terms_behave():
    logits = torch.full((2, 1, 8, 8), 8.0)
    target = torch.ones(2, 1, 8, 8)
    assert dice_loss(logits, target) < 0.01
    d = torch.rand(2, 1, 16, 16)
    assert ssi_l1(3 * d + 1, d) < 1e-4  # scale and shift do not count
    assert ssi_l1(1 - d, d) < 1e-4  # nor the sign: the export orients the depth (train/orient.py)
    loss = MultiTaskLoss(depth=False)
    out = loss(torch.randn(2, 2, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float(), None)
    assert set(out) == {"seg", "total"} and torch.equal(out["seg"], out["total"])


def test_dice_scores_only_frames_with_a_polyp_by_default():
    """On an empty mask the soft Dice is ~1 for any prediction short of p ~ 1e-5 everywhere: a
    near-constant term that dilutes the other frames' gradient. By default only frames with a polyp
    enter the Dice term (BCE scores the empty ones), and the config key of runs made before stays."""
    polyp = torch.zeros(1, 1, 16, 16)
    polyp[..., 4:12, 4:12] = 1
    empty = torch.zeros(1, 1, 16, 16)
    right = torch.full((1, 1, 16, 16), -6.0)  # p = 0.0025, under any threshold: a right answer
    assert dice_loss(right, empty) > 0.3  # yet the Dice term calls it wrong
    logits = torch.cat([torch.where(polyp > 0, 6.0, -6.0), right])
    target = torch.cat([polyp, empty])
    assert dice_loss(logits, target, positives_only=True) == pytest.approx(dice_loss(logits[:1], target[:1]))
    assert dice_loss(right, empty, positives_only=True) == 0.0
    old = MultiTaskLoss(depth=False)(logits, target, None)["seg"]
    new = MultiTaskLoss(depth=False, dice_positives=True)(logits, target, None)["seg"]
    assert new < old
    assert TrainConfig(train_data=["x"]).dice_positives is True
    assert TrainConfig(train_data=["x"]).key() == TrainConfig(train_data=["x"], dice_positives=True).key()
    assert TrainConfig(train_data=["x"]).key() != TrainConfig(train_data=["x"], dice_positives=False).key()


@pytest.mark.slow
def test_short_training_lowers_the_loss(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, epochs=6)
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    model = trainer.run(out_dir=tmp_path / "model")
    log = trainer.history()
    assert len(log) == 6
    assert log[-1]["loss_seg"] < log[0]["loss_seg"]
    assert {"sigma_seg", "sigma_depth", "val_dice_clean", "val_dice_degraded", "loss_depth"} <= set(log[-1])
    assert (tmp_path / "run" / "log.csv").is_file()
    m = open_model(model.path)
    assert m.card.training_data["train"][0]["n"] == 12
    assert m.card.metrics["val"]["val_dice_clean"] >= 0
    orientation = m.card.metrics["depth_orientation"]
    assert orientation["correlation"] >= 0 and isinstance(orientation["flipped"], bool)


@pytest.mark.slow
@pytest.mark.parametrize("ema", [0.0, 0.5])  # with an EMA, its statistics measured at each validation
def test_resumed_run_matches_uninterrupted(tiny_dataset, tmp_path, ema):
    straight = Trainer(_cfg(tiny_dataset, ema=ema), run_dir=tmp_path / "a")
    straight.run(out_dir=tmp_path / "ma")

    batches = []

    def stop_after_4_batches():
        return len(batches) == 4  # mid-epoch 2 (3 batches per epoch)

    interrupted = Trainer(_cfg(tiny_dataset, ema=ema), run_dir=tmp_path / "b")
    progress = lambda e: e["event"] == "batch" and batches.append(1)  # noqa: E731
    assert interrupted.run(progress=progress, should_stop=stop_after_4_batches) is None
    assert has_checkpoint(tmp_path / "b")
    resumed = Trainer(_cfg(tiny_dataset, ema=ema), run_dir=tmp_path / "b").run(resume=True, out_dir=tmp_path / "mb")
    a = open_model(tmp_path / "ma").load_torch().state_dict()
    b = resumed.load_torch().state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


@pytest.mark.slow
def test_the_ema_is_validated_and_exported_with_its_own_batchnorm_statistics(tiny_dataset, tmp_path):
    """The EMA averages the weights; its BatchNorm statistics are measured for those weights on
    training batches before it is validated (and so in the exported model), not copied from the
    live net, whose statistics belong to other weights. A resumed run measures the same."""
    def run(name, **kw):
        cfg = _cfg(tiny_dataset, epochs=2, ema=0.5, **kw)
        return Trainer(cfg, run_dir=tmp_path / name).run(out_dir=tmp_path / f"m-{name}").load_torch().state_dict()

    refit, copied = run("refit", ema_bn_batches=2), run("copied", ema_bn_batches=0)
    key = "decoder.cyclic_shuffle_enhancer_o.bn.running_mean"
    assert not torch.allclose(refit[key], copied[key])
    for k in refit:  # the weights are the same run's: only the statistics differ
        if "running" not in k and "num_batches" not in k and not k.startswith("segmentation_head"):
            assert torch.allclose(refit[k].float(), copied[k].float(), atol=1e-6), k
    # (the head's depth row may be negated at export: orient.py reads the depth the statistics shape)
    assert torch.allclose(refit["segmentation_head.0.weight"][0], copied["segmentation_head.0.weight"][0])


@pytest.mark.slow
def test_finetune_registers_a_new_version_and_keeps_the_parent(tiny_dataset, tmp_path):
    parent = Trainer(_cfg(tiny_dataset, epochs=1), run_dir=tmp_path / "p").run(out_dir=tmp_path / "parent")
    parent_hash = parent.sha256()
    cfg = finetune_config([str(tiny_dataset / "train")], str(parent.path), epochs=1, batch_size=4,
                          workers=0, bf16=False, freeze_encoder=True, name="tiny", val_data=str(tiny_dataset / "val"))
    events = []
    child = Trainer(cfg, run_dir=tmp_path / "c").run(progress=events.append)
    assert child.card.parent == parent.id
    # the parent measured first on the same val frames, recorded beside the child's own figures
    before = child.card.metrics["parent_val"]
    assert before["model"] == parent.id and [e["event"] for e in events].count("parent_val") == 1
    for key in ("val_dice_clean", "val_dice_degraded", "val_score"):
        assert before[key] == pytest.approx(parent.card.metrics["val"][key], abs=1e-5)  # the same frames, the same weights
        assert key in child.card.metrics["val"]
    assert child.path != parent.path and not child.bundled
    assert open_model(parent.path).sha256() == parent_hash
    # the frozen encoder did not move
    pe = parent.load_torch().state_dict()
    ce = child.load_torch().state_dict()
    assert torch.equal(pe["encoder.patch_embed1.proj.weight"], ce["encoder.patch_embed1.proj.weight"])
    assert not torch.equal(pe["segmentation_head.0.weight"], ce["segmentation_head.0.weight"])


def _sample_frames() -> torch.Tensor:
    from napari_depthpolyp.demo import sample_paths
    from napari_depthpolyp.io import read_image
    from napari_depthpolyp.preprocess import resize_batch, to_float_rgb

    files = sorted(sample_paths()["frames"].iterdir())
    return resize_batch([to_float_rgb(read_image(p), str(p)) for p in files], 224)


def test_orienting_the_depth_is_an_exact_flip_that_spares_the_polyp_channel():
    from napari_depthpolyp.model import DepthPolyp
    from napari_depthpolyp.train.orient import depth_prior_correlation, flip_depth, orient_depth

    torch.manual_seed(0)
    state = DepthPolyp().eval().state_dict()
    frames = _sample_frames()
    c = depth_prior_correlation(state, frames)
    inverted = state if c < 0 else flip_depth(state)  # a network that learnt near = low
    oriented, record = orient_depth(inverted, frames)
    assert record["flipped"] and record["correlation"] == pytest.approx(abs(c), abs=1e-6)
    assert depth_prior_correlation(oriented, frames) == pytest.approx(abs(c), abs=1e-6)
    again, record = orient_depth(oriented, frames)
    assert not record["flipped"] and again is oriented
    nets = []
    for sd in (inverted, oriented):
        net = DepthPolyp().eval()
        net.load_state_dict(sd)
        nets.append(net)
    with torch.inference_mode():
        a, b = (net(frames[:2]) for net in nets)
    assert torch.equal(a[:, 0], b[:, 0])  # the polyp logits are untouched
    assert torch.allclose(torch.sigmoid(b[:, 1]), 1 - torch.sigmoid(a[:, 1]), atol=1e-6)


def test_the_bundled_model_points_near_high():
    """Its depth follows the light fall-off prior (near = bright) on the bundled frames."""
    from napari_depthpolyp.models import resolve_model
    from napari_depthpolyp.train.orient import depth_prior_correlation

    model = resolve_model()
    assert model.card.metrics["depth_orientation"]["correlation"] > 0.5
    assert depth_prior_correlation(model.load_torch().state_dict(), _sample_frames()) > 0.5


def _negatives_of(tiny_dataset, folder):
    from napari_depthpolyp.negatives import write_negative_crops

    summary = write_negative_crops(Dataset.open(tiny_dataset / "train"), folder)
    assert summary["n_frames"] >= 2, summary  # the test needs a few polyp-free squares
    return folder


def test_polyp_free_frames_marked_are_counted_at_each_validation_and_never_select(tiny_dataset, tmp_path):
    """``val_negatives``: the share of polyp-free frames with any pixel at or above the threshold,
    beside the val score (the parent's too), in the log and the card; the score alone selects."""
    negatives = _negatives_of(tiny_dataset, tmp_path / "negatives")
    trainer = Trainer(_cfg(tiny_dataset, val_negatives=str(negatives)), run_dir=tmp_path / "r")
    trainer._prepare(None)
    frames = trainer.val_negatives
    assert frames.shape[1:] == (3, 224, 224) and len(frames) >= 2

    class Bright(torch.nn.Module):  # marks the pixels brighter than 0.5 in red, nothing else
        def forward(self, x):
            return torch.cat([(x[:, :1] - 0.5) * 1000, x[:, :1]], 1)

    class Blind(torch.nn.Module):  # marks nothing anywhere
        def forward(self, x):
            return torch.full_like(x[:, :2], -10.0)

    expected = float((frames[:, 0] >= 0.5).flatten(1).any(1).float().mean())
    assert expected > 0  # real mucosa: some square has a bright red pixel
    record = trainer.validate(Bright())
    assert record["val_negatives_marked"] == pytest.approx(expected, abs=1 / len(frames) / 2)
    assert trainer.validate(Blind())["val_negatives_marked"] == 0.0
    w = trainer.cfg.select_clean_weight
    assert record["val_score"] == pytest.approx(w * record["val_dice_clean"] + (1 - w) * record["val_dice_degraded"])

    model = trainer.run(out_dir=tmp_path / "out")
    log = trainer.history()
    assert all(0.0 <= r["val_negatives_marked"] <= 1.0 for r in log)
    best = max(log, key=lambda r: r["val_score"])
    assert model.card.metrics["val"]["val_negatives_marked"] == best["val_negatives_marked"]
    assert model.card.training_data["val_negatives"]["n"] == len(frames)
    # the frames counted must be polyp-free, and are counted only where validation runs
    with pytest.raises(DatasetError, match="show a polyp"):
        Trainer(_cfg(tiny_dataset, val_negatives=str(tiny_dataset / "val")), run_dir=tmp_path / "x")._prepare(None)
    with pytest.raises(DatasetError, match="--val-data"):
        Trainer(_cfg(tiny_dataset, val_data=None, val_negatives=str(negatives)), run_dir=tmp_path / "y")._prepare(None)
    # the runs made before keep their key
    assert _cfg(tiny_dataset).key() == _cfg(tiny_dataset, val_negatives=None).key()


def test_distillation_teaches_the_teachers_probability_on_polyp_frames_only(tiny_dataset, tmp_path):
    """``distill_from``: the teachers' mean polyp probability on each training input is a second
    target beside the mask, on frames with a polyp only (their false marks on a polyp-free frame are
    not taught); the teachers are recorded by content, and runs made before keep their key."""
    from napari_depthpolyp.train.losses import distill_loss

    soft = torch.rand(2, 1, 8, 8) * 0.98 + 0.01
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, 2:5, 2:5] = 1  # frame 0 shows a polyp, frame 1 is polyp-free
    logits = torch.logit(soft).requires_grad_()
    distill_loss(logits, soft, target).backward()
    assert logits.grad.abs().max() < 1e-6  # the teachers' own probability is the minimum
    logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    distill_loss(logits, soft, target).backward()
    assert logits.grad[0].abs().min() > 0 and torch.equal(logits.grad[1], torch.zeros(1, 8, 8))
    assert distill_loss(logits, soft, torch.zeros_like(target)) == 0  # no polyp in the batch
    loss = MultiTaskLoss(depth=False, distill_weight=0.5)
    with torch.no_grad():
        out = loss(logits, target, None, soft)
        assert float(out["total"]) == pytest.approx(float(out["seg"] + 0.5 * out["distill"]))
        assert "distill" not in loss(logits, target, None)  # no teachers, no term

    teacher = Trainer(_cfg(tiny_dataset, epochs=1), run_dir=tmp_path / "t").run(out_dir=tmp_path / "teacher")
    cfg = _cfg(tiny_dataset, epochs=1, distill_from=[str(teacher.path)], distill_weight=2.0)
    trainer = Trainer(cfg, run_dir=tmp_path / "s")
    student = trainer.run(out_dir=tmp_path / "student")
    assert trainer.history()[-1]["loss_distill"] > 0
    assert student.card.training_data["distill_from"] == [{"model": teacher.id, "sha256": teacher.sha256()}]
    assert student.card.config["distill_from"] == [str(teacher.path)]
    # the teachers run through the inference engine (ONNX Runtime): the same probability as torch's
    from napari_depthpolyp.engine import Predictor

    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        expected = torch.sigmoid(teacher.load_torch().eval()(x)[:, 0:1])
    for backend in ("onnx", "torch"):
        engine = Predictor(teacher, backend=backend)
        assert engine.backend == backend  # the teacher has its graph: ONNX Runtime really ran
        got = Trainer._teachers_probability([engine] * 2, x)
        assert got.shape == (2, 1, 224, 224) and torch.allclose(got, expected, atol=1e-4)
    # the term changes what is learnt: the same run without it ends elsewhere
    plain = Trainer(_cfg(tiny_dataset, epochs=1), run_dir=tmp_path / "p").run(out_dir=tmp_path / "plain")
    assert not torch.equal(plain.load_torch().state_dict()["segmentation_head.0.weight"],
                           student.load_torch().state_dict()["segmentation_head.0.weight"])
    assert _cfg(tiny_dataset).key() == _cfg(tiny_dataset, distill_from=None, distill_weight=1.0).key()
    # a teacher must see what the student sees
    from napari_depthpolyp.model import DepthPolyp
    from napari_depthpolyp.models import ModelCard, ModelError, write_model

    other = write_model(tmp_path / "big-0", DepthPolyp().state_dict(),
                        ModelCard(name="big", version="0", input_size=[256, 256]), export_onnx=False)
    with pytest.raises(ModelError, match="input size"):
        Trainer(_cfg(tiny_dataset, distill_from=[str(other.path)]), run_dir=tmp_path / "x")
    # the command line, for train and finetune alike
    from napari_depthpolyp.cli import _train_config, build_parser

    args = build_parser().parse_args(["train", "--data", "d", "--distill-from", "a", "b", "--distill-weight", "0.5"])
    assert _train_config(args, train_data=["d"]).distill_from == ["a", "b"]
    assert _train_config(args, train_data=["d"]).distill_weight == 0.5


def test_a_ceiling_on_the_polyp_free_frames_marked_selects_among_the_epochs_within_it(tiny_dataset, tmp_path):
    """``select_max_negatives``: the best val score among the epochs that mark at most that share of
    the polyp-free val frames; an epoch beyond it is selected only while none within it was seen."""
    from napari_depthpolyp.train.loop import selects_over

    cfg = _cfg(tiny_dataset, select_max_negatives=0.35)
    state = {"best_score": -1.0, "best_within": False}
    for score, marked, wins in [(0.834, 0.50, True),   # beyond the ceiling, but the first
                                (0.836, 0.51, True),   # beyond it, a higher score
                                (0.829, 0.35, True),   # within it: wins over any beyond it
                                (0.840, 0.36, False),  # beyond it, whatever the score
                                (0.828, 0.30, False),  # within it, lower
                                (0.833, 0.31, True)]:
        record = {"val_score": score, "val_negatives_marked": marked}
        assert selects_over(record, state, cfg) is wins, record
        if wins:
            state = {"best_score": score, "best_within": marked <= 0.35}
    plain = _cfg(tiny_dataset)  # no ceiling: the score alone, as before
    assert selects_over({"val_score": 0.840, "val_negatives_marked": 0.9}, {"best_score": 0.833}, plain)
    # the real loop selects by it: the exported model is the epoch the rule picks from the log
    negatives = _negatives_of(tiny_dataset, tmp_path / "negatives")
    cfg = _cfg(tiny_dataset, epochs=3, val_negatives=str(negatives), select_max_negatives=0.0)
    trainer = Trainer(cfg, run_dir=tmp_path / "r")
    model = trainer.run(out_dir=tmp_path / "out")
    log = trainer.history()
    picked = max(log, key=lambda r: (r["val_negatives_marked"] <= 0.0, r["val_score"]))
    assert model.card.metrics["selected_epoch"] == picked["epoch"]
    assert model.card.config["select_max_negatives"] == 0.0
    assert cfg.key() != _cfg(tiny_dataset, epochs=3, val_negatives=str(negatives)).key()
    assert _cfg(tiny_dataset).key() == _cfg(tiny_dataset, select_max_negatives=None).key()
    with pytest.raises(DatasetError, match="--val-negatives"):
        Trainer(_cfg(tiny_dataset, select_max_negatives=0.3), run_dir=tmp_path / "x")._prepare(None)
    with pytest.raises(ValueError, match="share"):
        Trainer(_cfg(tiny_dataset, val_negatives=str(negatives), select_max_negatives=35), run_dir=tmp_path / "y")
    from napari_depthpolyp.cli import _train_config, build_parser

    args = build_parser().parse_args(["finetune", "--data", "d", "--val-negatives", "n", "--select-max-negatives", "0.35"])
    assert _train_config(args, train_data=["d"]).select_max_negatives == 0.35


def test_distillation_from_the_clean_view_follows_each_frame_through_its_augmentation(tiny_dataset, tmp_path):
    """``distill_view="clean"``: the teachers see each clean training frame once, flip-averaged,
    before training; their map then follows the frame through the geometric augmentation and the
    degradations exactly as its mask does, and riding along changes no other part of the sample."""
    from napari_depthpolyp.engine import Predictor
    from napari_depthpolyp.train.loop import SampleSource

    teacher = Trainer(_cfg(tiny_dataset, epochs=1), run_dir=tmp_path / "t").run(out_dir=tmp_path / "teacher")
    cfg = _cfg(tiny_dataset, epochs=1, distill_from=[str(teacher.path)], distill_view="clean", colour=True)
    trainer = Trainer(cfg, run_dir=tmp_path / "s")
    trainer._prepare(None)
    frames = torch.from_numpy(np.asarray(trainer.train_cache.images, np.float32) / 255.0).permute(0, 3, 1, 2)
    expected = Predictor(teacher, tta=True).run_batch(frames)[0]
    assert trainer.train_soft.dtype == np.uint8 and trainer.train_soft.shape == expected.shape
    assert np.abs(trainer.train_soft / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    # a map equal to the mask comes out equal to the augmented, degraded mask (both warped
    # nearest-neighbour, together), and the image is the one made without it
    cache = trainer.train_cache
    plain = SampleSource(cache, cfg)
    riding = SampleSource(cache, cfg, soft=np.asarray(cache.masks, np.uint8) * 255)
    for key in [(e, i) for e in range(3) for i in range(len(cache))]:
        image, mask, depth, soft = riding[key]
        image0, mask0, depth0 = plain[key]
        assert torch.equal(image, image0) and torch.equal(mask, mask0) and torch.allclose(depth, depth0, atol=1e-6)
        assert ((soft > 0.5) != (mask > 0.5)).float().mean() < 0.02
    assert len(plain[(0, 0)]) == 3  # no teachers' map, the three tensors as before
    student = trainer.run(out_dir=tmp_path / "student")
    assert trainer.history()[-1]["loss_distill"] > 0
    assert student.card.config["distill_view"] == "clean"
    assert cfg.key() != _cfg(tiny_dataset, epochs=1, distill_from=[str(teacher.path)], colour=True).key()
    from napari_depthpolyp.cli import _train_config, build_parser

    args = build_parser().parse_args(["finetune", "--data", "d", "--distill-from", "a", "--distill-view", "clean"])
    assert _train_config(args, train_data=["d"]).distill_view == "clean"
    with pytest.raises(ValueError, match="distill_view"):
        Trainer(_cfg(tiny_dataset, distill_view="degraded"), run_dir=tmp_path / "x")


def test_the_card_records_the_split_actually_used_and_hides_the_home_folder(tmp_path, monkeypatch):
    from napari_depthpolyp.train.loop import _data_record, _open_split

    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / "negatives"
    with DatasetWriter(folder) as w:
        w.add("a", np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool), status="empty")
    record = _data_record(str(folder), "train", _open_split(str(folder), "train"))
    assert record["root"] == "~/negatives" and record["split"] is None and record["n"] == 1
    (folder / "split.json").write_text('{"train": ["a"]}')
    assert _data_record(str(folder), "train", _open_split(str(folder), "train"))["split"] == "train"
    from napari_depthpolyp.train.loop import _card_config, finetune_config

    config = _card_config(finetune_config([str(folder), "/elsewhere/kvasir"], str(tmp_path / "models" / "m-1.0"),
                                          val_data=str(folder)))
    assert config["train_data"] == ["~/negatives", "/elsewhere/kvasir"]
    assert config["val_data"] == "~/negatives" and config["init_model"] == "~/models/m-1.0"
    from napari_depthpolyp.train.loop import _shown

    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    assert _shown("../negatives") == "~/negatives" and _shown("~/x") == "~/x" and _shown("data") == "~/proj/data"


def test_colour_option_recolours_the_training_frames_and_nothing_else(tiny_dataset):
    from napari_depthpolyp.train.cache import build_cache
    from napari_depthpolyp.train.loop import SampleSource

    cache = build_cache(Dataset.open(tiny_dataset / "train"))
    plain = SampleSource(cache, _cfg(tiny_dataset, degrade=False))
    coloured = SampleSource(cache, _cfg(tiny_dataset, degrade=False, colour=True))
    moved = 0
    for idx in range(6):
        (a, ma, _), (b, mb, _) = plain[(0, idx)], coloured[(0, idx)]
        assert torch.equal(ma, mb)  # same geometry, same mask
        mean_a, mean_b = a.mean((1, 2)), b.mean((1, 2))
        moved += bool((mean_a[0] / mean_a[1] - mean_b[0] / mean_b[1]).abs() > 0.02)
    assert moved >= 3  # p = 0.8: most frames change their colour balance


def test_degrade_prob_leaves_that_share_of_frames_clean_and_1_changes_nothing(tiny_dataset):
    """--degrade-prob 0.5 shows about half the frames as they are (after the same geometric
    augmentation); at 1, the default, the samples and the run key are those of runs made before."""
    from napari_depthpolyp.train.cache import build_cache
    from napari_depthpolyp.train.loop import SampleSource

    cache = build_cache(Dataset.open(tiny_dataset / "train"))
    clean = SampleSource(cache, _cfg(tiny_dataset, degrade=False))
    always = SampleSource(cache, _cfg(tiny_dataset))
    half = SampleSource(cache, _cfg(tiny_dataset, degrade_prob=0.5))
    keys = [(e, i) for e in range(4) for i in range(len(cache))]
    same_as_clean = [torch.equal(clean[k][0], half[k][0]) for k in keys]
    assert not any(torch.equal(clean[k][0], always[k][0]) for k in keys)  # every frame degraded
    assert 0.25 * len(keys) <= sum(same_as_clean) <= 0.75 * len(keys)
    assert _cfg(tiny_dataset).key() == _cfg(tiny_dataset, degrade_prob=1.0).key()
    assert _cfg(tiny_dataset).key() != _cfg(tiny_dataset, degrade_prob=0.5).key()


def test_paste_prob_adds_another_frames_polyp_and_keeps_old_runs(tiny_dataset):
    """--paste-prob 1 pastes a second polyp into every frame (the mask grows with it, the geometry
    of the frame's own polyp is unchanged); at 0, the default, samples and run keys are as before."""
    from napari_depthpolyp.train.cache import build_cache
    from napari_depthpolyp.train.loop import SampleSource

    cache = build_cache(Dataset.open(tiny_dataset / "train"))
    plain = SampleSource(cache, _cfg(tiny_dataset, degrade=False))
    pasted = SampleSource(cache, _cfg(tiny_dataset, degrade=False, paste_prob=1.0))
    grew = 0
    for idx in range(len(cache)):
        (a, ma, _), (b, mb, _) = plain[(0, idx)], pasted[(0, idx)]
        assert bool((mb >= ma).all())  # the frame's own polyp is still all there
        grew += bool(mb.sum() > ma.sum() + 50) and bool((a - b).abs().amax(0)[mb[0] > ma[0]].mean() > 0.01)
    assert grew >= len(cache) // 2
    assert _cfg(tiny_dataset).key() == _cfg(tiny_dataset, paste_prob=0.0).key()
    with pytest.raises(ValueError, match="paste-prob needs a depth teacher"):
        SampleSource(cache, _cfg(tiny_dataset, paste_prob=0.5, teacher="precomputed"))


def test_too_few_frames_or_val_inside_train_are_refused(tiny_dataset, tmp_path):
    """Five reviewed frames and a batch of 8 would train zero steps and save the parent as a "new"
    model; validating on the training frames would select on nothing. Both stop before any work."""
    from napari_depthpolyp.dataset import DatasetError

    with pytest.raises(DatasetError, match="fewer than one batch of 16"):
        Trainer(_cfg(tiny_dataset, batch_size=16), run_dir=tmp_path / "a").run()
    cfg = _cfg(tiny_dataset, val_data=str(tiny_dataset / "train"))
    with pytest.raises(DatasetError, match="12 validation frames are also training frames"):
        Trainer(cfg, run_dir=tmp_path / "b").run()
    assert not (tmp_path / "a" / "checkpoint.json").exists()


def test_an_existing_output_is_refused_before_training(tiny_dataset, tmp_path, monkeypatch):
    """A model folder that exists is said at the start, not after hours; a from-scratch run goes
    to ``<name>-<version>`` in the user models folder, a fine-tune to the next ``ft.N``."""
    from napari_depthpolyp.models import ModelError

    monkeypatch.setenv("DEPTHPOLYP_USER_DIR", str(tmp_path / "user"))
    taken = tmp_path / "taken"
    taken.mkdir()
    trainer = Trainer(_cfg(tiny_dataset), run_dir=tmp_path / "run")
    with pytest.raises(ModelError, match="taken: already exists"):
        trainer.run(out_dir=taken)
    assert not (tmp_path / "run" / "checkpoint.json").exists()
    path, version = Trainer(_cfg(tiny_dataset, version="2.0"))._target(None)
    assert (path.name, version) == ("tiny-2.0", "2.0")
    path, version = Trainer(_cfg(tiny_dataset, version=None))._target(None)
    assert version.startswith("ft.") and path.name == f"tiny-{version}"


def test_resume_refuses_a_checkpoint_made_on_other_frames(tiny_dataset, tmp_path):
    """A cancelled fine-tune, then a new export to the same folder: the checkpoint is not
    continued on frames it was not trained on (the napari panel then starts afresh)."""
    import shutil

    from napari_depthpolyp.train.loop import ResumeError

    data = tmp_path / "curated"
    shutil.copytree(tiny_dataset / "train", data)
    cfg = _cfg(tiny_dataset, train_data=[str(data)])
    events = []
    # cancelled while caching: nothing to keep; cancelled after a batch: a checkpoint
    assert Trainer(cfg, run_dir=tmp_path / "r").run(should_stop=lambda: True) is None
    assert not has_checkpoint(tmp_path / "r")
    assert Trainer(cfg, run_dir=tmp_path / "r").run(
        progress=lambda e: events.append(e["event"]), should_stop=lambda: "batch" in events) is None
    assert has_checkpoint(tmp_path / "r")
    src = Dataset.open(data)
    frames = [src.load(i) for i in range(8)]
    with DatasetWriter(data, overwrite=True) as w:  # the re-export: 8 of the 12 frames
        for name, (image, mask, _) in zip(src.names, frames):
            w.add(name, image, mask)
    with pytest.raises(ResumeError, match="other data"):
        Trainer(cfg, run_dir=tmp_path / "r").run(resume=True)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_only_where_the_cpu_has_it(tiny_dataset, tmp_path, monkeypatch, native):
    """bf16 autocast is asked for by default but used only where the CPU computes bf16 natively
    (emulated, on an AVX2-only CPU, it made the step 10x slower than fp32); the log says which."""
    import napari_depthpolyp.train.loop as loop

    monkeypatch.setattr(loop, "bf16_is_native", lambda: native)
    events = []
    cfg = _cfg(tiny_dataset, bf16=True, epochs=1, max_steps_per_epoch=1, val_data=None)
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    trainer.run(progress=events.append, out_dir=tmp_path / "model")
    assert [e for e in events if e["event"] == "precision"] == [{"event": "precision", "bf16": native, "requested": True}]
    assert trainer.history()[-1]["bf16"] is native


def test_a_checkpoint_is_a_pair_that_belongs_together(tmp_path, monkeypatch):
    """Tensors and JSON are written so that a kill at any moment leaves a pair from one save, and
    a damaged checkpoint is a one-line error naming the file, not a traceback from safetensors."""
    from napari_depthpolyp.train.checkpoint import NEXT, TENSORS, CheckpointError, load_checkpoint, save_checkpoint

    def modules():
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 2)
        return {"net": net}, torch.optim.AdamW(net.parameters())

    mods, opt = modules()
    save_checkpoint(tmp_path, modules=mods, optimizer=opt, meta={"state": {"step": 1}})
    first = {k: v.clone() for k, v in mods["net"].state_dict().items()}
    assert not (tmp_path / NEXT).exists()
    # the second save killed after its JSON, before its tensors took their place: its tensors are used
    with torch.no_grad():
        mods["net"].weight += 1
    with monkeypatch.context() as m:
        m.setattr("napari_depthpolyp.train.checkpoint._put_in_place", lambda run_dir: None)
        save_checkpoint(tmp_path, modules=mods, optimizer=opt, meta={"state": {"step": 2}})
    assert (tmp_path / NEXT).is_file()
    back, back_opt = modules()
    assert load_checkpoint(tmp_path, modules=back, optimizer=back_opt)["state"]["step"] == 2
    assert torch.equal(back["net"].weight, first["weight"] + 1)
    # tensors of another save than the JSON names, or a damaged file: refused, named
    (tmp_path / NEXT).unlink()
    with pytest.raises(CheckpointError, match="names tensors that neither"):
        load_checkpoint(tmp_path, modules=back, optimizer=back_opt)
    save_checkpoint(tmp_path, modules=mods, optimizer=opt, meta={"state": {"step": 3}})
    data = (tmp_path / TENSORS).read_bytes()
    (tmp_path / TENSORS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checkpoint"):
        load_checkpoint(tmp_path, modules=back, optimizer=back_opt)


def test_the_frame_cache_is_never_stale(tiny_dataset, tmp_path, monkeypatch):
    """The frame cache is keyed by content and by its format (a cache made by an older mask rule is
    not served); a folder written to while its frames are read is refused, not cached; with the
    precomputed depth teacher, a frame without a depth map is named, not trained towards zeros."""
    import shutil

    import napari_depthpolyp.train.cache as cache_module
    from napari_depthpolyp.train.cache import build_cache
    from napari_depthpolyp.train.loop import SampleSource

    data = tmp_path / "d"
    shutil.copytree(tiny_dataset / "train", data)
    first = build_cache(Dataset.open(data))
    monkeypatch.setattr(cache_module, "CACHE_FORMAT", cache_module.CACHE_FORMAT + 1)
    built = []
    real_load = Dataset.load
    monkeypatch.setattr(Dataset, "load", lambda self, i: built.append(i) or real_load(self, i))
    again = build_cache(Dataset.open(data))  # another format: built again, not the old cache
    assert built and np.array_equal(np.asarray(again.masks), np.asarray(first.masks))

    ds = Dataset.open(data)
    mask_file = ds[0].mask

    def load_then_overwrite(self, i):  # an export rewrites a mask while the cache is being built
        out = real_load(self, i)
        if i == 0:
            m = np.asarray(Image.open(mask_file)).copy()
            Image.fromarray(255 - m).save(mask_file)
        return out

    monkeypatch.setattr(Dataset, "load", load_then_overwrite)
    monkeypatch.setattr(cache_module, "CACHE_FORMAT", cache_module.CACHE_FORMAT + 2)
    with pytest.raises(DatasetError, match="changed while they were read"):
        build_cache(ds)
    monkeypatch.setattr(Dataset, "load", real_load)

    src = Dataset.open(tiny_dataset / "train")
    with DatasetWriter(tmp_path / "half-depth") as w:  # depth maps for half of the frames only
        for i in range(len(src)):
            image, mask, _ = src.load(i)
            w.add(src[i].name, image, mask, np.full(mask.shape, 0.5, np.float32) if i % 2 else None)
    half = build_cache(Dataset.open(tmp_path / "half-depth"))
    assert half.depth is not None and half.no_depth == [src[i].name for i in range(0, len(src), 2)]
    with pytest.raises(DatasetError, match=f"none for {src[0].name}"):
        SampleSource(half, _cfg(tiny_dataset, teacher="precomputed"))


def test_training_keeps_freed_memory_for_reuse_and_gives_it_back_after():
    """While a training runs, glibc serves a block far above its mmap threshold from the heap and
    keeps it when freed (no fresh pages faulted in on every step); afterwards its defaults are back,
    nested blocks included."""
    import ctypes

    from napari_depthpolyp.train import memory

    libc = memory._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc (with mallinfo2) only: elsewhere keep_freed_memory does nothing")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def mmapped_and_kept() -> tuple[bool, bool]:
        """Whether a block of 64 MB more than the heap holds free (so no free chunk can serve it)
        got its own mapping, and whether the heap kept its bytes once freed."""
        info = libc.mallinfo2()
        before, size = info.hblkhd, info.fordblks + (64 << 20)
        block = libc.malloc(size)
        assert block
        held = libc.mallinfo2()
        libc.free(block)
        mmapped = held.hblkhd - before >= size
        return mmapped, not mmapped and libc.mallinfo2().arena >= held.arena

    assert mmapped_and_kept() == (True, False)
    with memory.keep_freed_memory() as kept:
        assert kept
        with memory.keep_freed_memory():
            pass
        assert mmapped_and_kept() == (False, True)
    assert mmapped_and_kept() == (True, False)
    with memory.keep_freed_memory(enabled=False) as kept:
        assert not kept
        assert mmapped_and_kept() == (True, False)
