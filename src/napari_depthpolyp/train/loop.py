"""The one training loop, behind both ``depthpolyp train`` and ``depthpolyp finetune`` (and the napari
fine-tune widget).

* Data: dataset folders (the project's format or plain images+masks folders) are resized once into an
  on-disk cache; each step applies seeded geometric augmentation and degradations, and the depth
  teacher sees the degraded frame the student sees.
* Optimisation: AdamW (or Adam), linear warm-up then cosine, channels_last, bf16 autocast where the
  CPU computes bf16 natively (``bf16_is_native``; fp32 elsewhere, where bf16 is 10x slower),
  optional EMA of the weights (the EMA is what is validated and exported); glibc keeps freed memory
  for reuse while it runs (``memory.py``).
* Determinism: every sample's random generator is derived from (seed, epoch, index) and every
  batch's torch seed from (seed, epoch, batch), so a run resumed from any checkpoint continues
  exactly as an uninterrupted one.
* Checkpoints every epoch (and on cancel) in the run directory under the user cache; selection on
  val by ``0.7 * clean Dice + 0.3 * degraded Dice``; a per-epoch log (``log.jsonl`` and ``log.csv``).
* Output: a model directory (weights, ONNX, card) that never overwrites an existing one, its depth
  oriented near = high (``orient.py``).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..dataset import REVIEWED, Dataset, DatasetError
from ..depth import TeacherError
from ..io.atomic import atomic_open, write_json
from ..engine import Predictor
from ..model import DepthPolyp
from ..models import ModelCard, ModelDir, ModelError, now_iso, resolve_model, write_model
from ..paths import cache_dir
from .cache import FrameCache, build_cache, concat_caches
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .losses import DepthLossWeights, MultiTaskLoss
from .memory import keep_freed_memory
from .orient import orient_depth


@dataclass
class TrainConfig:
    train_data: list[str]
    train_split: str | None = "train"
    val_data: str | None = None
    val_split: str | None = "val"
    name: str = "depthpolyp"
    version: str | None = "1.0"  # None: the next free "ft.N" (fine-tunes)
    description: str = ""
    epochs: int = 200
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    warmup_epochs: float = 10
    min_lr_ratio: float = 5e-3
    seed: int = 0
    depth: bool = True
    uncertainty: bool = True
    bce_weight: float = 1.0
    dice_positives: bool = True  # the Dice term over frames with a polyp only (losses.dice_loss); False: every frame
    depth_ssi: float = 1.0
    depth_grad: float = 0.5
    depth_fft: float = 0.1
    teacher: str = "falloff"
    degrade: bool = True
    degrade_prob: float = 1.0  # share of training frames degraded; the rest are seen clean (reference: 1)
    noise: bool = False
    augment: bool = True
    augment_preset: str = "reference"  # a name in degrade.AUGMENT_PRESETS
    colour: bool = False  # degrade.augment_colour after the geometric augmentation (not in the reference)
    paste_prob: float = 0.0  # share of training frames that get another frame's polyp (degrade.paste_polyp)
    # models (ids or folders) whose mean polyp probability on each training input is also taught
    # (knowledge distillation, losses.distill_loss), on frames with a polyp, with distill_weight
    distill_from: list[str] | None = None
    distill_weight: float = 1.0
    # what the teachers see: "input", the training input itself (degraded, at every step); "clean",
    # each clean frame once, flip-averaged, before training, their map then following the frame
    # through the geometric augmentation and the degradations as its mask does
    distill_view: str = "input"
    bf16: bool = True
    ema: float = 0.999
    ema_bn_batches: int = 10  # training batches the EMA's BatchNorm statistics are measured on before it is validated; 0: the live net's
    val_every: int = 5
    # a folder of polyp-free frames (empty masks, e.g. scripts/make_negatives.py --split val): the
    # share of them marked is logged at every validation (val_negatives_marked); it never selects
    val_negatives: str | None = None
    # with val_negatives: an epoch that marks more than this share of them is selected only while no
    # epoch within it has been validated (the best score among the epochs within it wins)
    select_max_negatives: float | None = None
    val_dense_from: float = 0.7
    select_clean_weight: float = 0.7
    threshold: float = 0.3
    patience: int = 0
    freeze_encoder: bool = False
    init_model: str | None = None
    input_size: int = 224
    workers: int = 1
    drop_path: float = 0.1
    max_steps_per_epoch: int | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        values = self.to_json()
        # Fields added after runs were started leave the key unchanged at their default, so that
        # those runs still resume.
        for name, default in _KEY_OMITS_AT_DEFAULT.items():
            if values.get(name) == default:
                values.pop(name)
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def bf16_is_native() -> bool:
    """Whether this CPU runs oneDNN's bf16 kernels in hardware (AVX-512 or AMX). Where it does not
    (an AVX2-only CPU), bf16 autocast is emulated: on such a 2-core AMD EPYC the training step ran at
    0.5 img/s in bf16 against 5.5 in fp32 (docs/benchmarks.md), so the loop trains in fp32 there."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the query: say no, fp32 is always right
        return False


# dice_positives (session 17): Kvasir-SEG alone has no empty mask, so the runs made before it trained
# alike either way and keep their key; runs with polyp-free frames before it can set False.
# ema_bn_batches (session 17) changes what is validated and exported, not how the net trains: a run
# made before resumes with it.
_KEY_OMITS_AT_DEFAULT = {"augment_preset": "reference", "colour": False, "degrade_prob": 1.0, "paste_prob": 0.0,
                         "dice_positives": True, "ema_bn_batches": 10, "val_negatives": None,
                         "distill_from": None, "distill_weight": 1.0, "distill_view": "input",
                         "select_max_negatives": None}


# A fine-tune is short and gentle: few epochs, a low learning rate, no warm-up, no EMA lag,
# validation every epoch, whole folders (curated exports have no splits). Used by
# ``depthpolyp finetune`` and the napari fine-tune widget alike.
FINETUNE_DEFAULTS = {
    "version": None, "epochs": 10, "lr": 5e-5, "warmup_epochs": 0, "ema": 0.0, "val_every": 1, "batch_size": 8,
    "train_split": None, "val_split": None,
}


# What a fine-tune keeps from its parent's training unless told otherwise: how its tasks are weighted
# and whether it has one. A parent trained with fixed task weights (``--no-uncertainty``) was once
# fine-tuned with learned ones because the fine-tune took the trainer's default (session 21).
INHERITED_FROM_PARENT = ("uncertainty", "depth")


def inherited_from_parent(parent_config: dict | None) -> dict:
    """The fields of :data:`INHERITED_FROM_PARENT` that a parent's card records (``card.config``)."""
    config = parent_config or {}
    return {k: config[k] for k in INHERITED_FROM_PARENT if isinstance(config.get(k), bool)}


def finetune_config(train_data: list[str], init_model: str, parent_config: dict | None = None,
                    **overrides) -> TrainConfig:
    """The configuration of a fine-tune of ``init_model`` on curated dataset folders:
    FINETUNE_DEFAULTS < what the parent was trained with (``parent_config``, its card's config, see
    :func:`inherited_from_parent`) < ``overrides``."""
    values = {**FINETUNE_DEFAULTS, **inherited_from_parent(parent_config), **overrides}
    return TrainConfig(train_data=list(train_data), init_model=init_model, **values)




def _frames_tensor(cache: FrameCache) -> torch.Tensor:
    """A cache's uint8 frames as one float NCHW tensor in [0, 1]."""
    return torch.from_numpy(np.asarray(cache.images, dtype=np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


def _effective_split(path: str, split: str | None) -> str | None:
    """``split`` when the folder has a ``split.json``, else None (the whole folder)."""
    return split if split is not None and (Path(path) / "split.json").is_file() else None


def _open_split(path: str, split: str | None) -> Dataset:
    """The named split when the folder has a ``split.json``, else the whole folder (curated exports
    have no splits). Only reviewed frames of a curated export are used: never unchecked proposals."""
    return Dataset.open(path, split=_effective_split(path, split), statuses=REVIEWED)


def _shown(path: str | os.PathLike) -> str:
    """How a model card names a folder: under the home folder as ``~/...`` (a card is shipped and
    read on other machines), anywhere else as given."""
    full = Path(os.path.abspath(os.path.expanduser(path)))
    for home in (Path.home(), Path.home().resolve()):
        try:
            return "~/" + full.relative_to(home).as_posix()
        except ValueError:
            pass
    return str(path)


def _card_config(cfg: TrainConfig) -> dict:
    """The training config as the model card records it, folders named by :func:`_shown`."""
    values = cfg.to_json()
    values["train_data"] = [_shown(p) for p in values["train_data"]]
    for name in ("val_data", "init_model", "val_negatives"):
        if values.get(name):
            values[name] = _shown(values[name])
    if values.get("distill_from"):
        values["distill_from"] = [_shown(p) for p in values["distill_from"]]
    return values


def _data_record(path: str, split: str | None, ds: Dataset) -> dict:
    """How the model card names a data set: its folder (:func:`_shown`), the split actually used,
    its size and content fingerprint."""
    return {"root": _shown(ds.root), "split": _effective_split(path, split), "n": len(ds), "sha256": ds.fingerprint()}


class SampleSource(torch.utils.data.Dataset):
    """Makes one training sample from the cache: augment -> degrade -> teacher depth."""

    def __init__(self, cache: FrameCache, cfg: TrainConfig, soft: np.ndarray | None = None):
        """``soft``: the teachers' polyp probability on each clean cached frame (N x H x W, uint8
        0-255), carried through each sample's augmentation and returned as a fourth tensor."""
        from ..degrade import DegradeConfig, Degrader, augment_preset

        self.cache = cache
        self.cfg = cfg
        self.soft = soft
        if soft is not None and cfg.paste_prob > 0:  # the stored map would not show the pasted polyp
            raise TeacherError("--paste-prob and --distill-view clean do not go together: the teachers' "
                               "map of the clean frame would not show the pasted polyp")
        self.degrader = Degrader(DegradeConfig(noise=cfg.noise)) if cfg.degrade else None
        self.aug = augment_preset(cfg.augment_preset)
        # frames with a polyp, the donors of --paste-prob
        self.donors = np.flatnonzero(np.asarray(cache.masks).reshape(len(cache), -1).any(1)) if cfg.paste_prob > 0 else None
        self.precomputed = cfg.teacher == "precomputed"
        if self.precomputed and cfg.paste_prob > 0:  # a stored depth map would not show the pasted polyp
            raise TeacherError("--paste-prob needs a depth teacher that sees the pasted frame, not 'precomputed'")
        if self.precomputed and (cache.depth is None or cache.no_depth):
            which = (f"; none for {', '.join(cache.no_depth[:5])}" + (" ..." if len(cache.no_depth) > 5 else "")
                     if cache.no_depth else "; some folder has none")
            raise DatasetError(f"{', '.join(cfg.train_data)}: the 'precomputed' depth teacher needs a depth map "
                               f"(depth/NAME.png) for every training frame{which}")
        self.teacher = None
        if cfg.depth and not self.precomputed:
            from ..depth import make_teacher

            self.teacher = make_teacher(cfg.teacher)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, key: tuple[int, int]):
        from ..degrade import augment_colour, augment_geometric

        epoch, idx = key
        rng = np.random.default_rng([self.cfg.seed, epoch, idx])
        image = np.asarray(self.cache.images[idx], dtype=np.float32) / 255.0
        mask = np.asarray(self.cache.masks[idx]).astype(bool)
        depth = None
        if self.precomputed:
            depth = np.asarray(self.cache.depth[idx], dtype=np.float32) / 65535.0
        if self.soft is not None:  # the teachers' map rides with the mask through every warp (the same draws)
            mask = np.stack([mask.astype(np.float32), np.asarray(self.soft[idx], dtype=np.float32) / 255.0], -1)
        if self.cfg.augment:
            image, mask, depth = augment_geometric(image, mask, depth, rng, self.aug)
        if self.donors is not None and self.donors.size and rng.random() < self.cfg.paste_prob:
            image, mask = self._paste(image, mask, rng)
        if self.cfg.colour:
            image = augment_colour(image, rng)
        # At degrade_prob 1 no number is drawn, so runs made before the option draw what they drew.
        if self.degrader is not None and (self.cfg.degrade_prob >= 1.0 or rng.random() < self.cfg.degrade_prob):
            image, mask = self.degrader(image, mask, rng)
        soft = None
        if self.soft is not None:
            mask, soft = mask[..., 0] > 0.5, mask[..., 1]
        if self.teacher is not None:
            depth = self.teacher(image)
        if depth is None:
            depth = np.zeros(mask.shape, np.float32)
        sample = (
            torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None],
            torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None],
        )
        if soft is not None:
            sample += (torch.from_numpy(np.ascontiguousarray(soft, dtype=np.float32))[None],)
        return sample

    def _paste(self, image, mask, rng):
        """Another training frame's polyp, itself augmented, pasted into this frame."""
        from ..degrade import augment_geometric, paste_polyp

        j = int(self.donors[rng.integers(self.donors.size)])
        donor = np.asarray(self.cache.images[j], dtype=np.float32) / 255.0
        donor_mask = np.asarray(self.cache.masks[j]).astype(bool)
        if self.cfg.augment:
            donor, donor_mask, _ = augment_geometric(donor, donor_mask, None, rng, self.aug)
        return paste_polyp(image, mask, donor, donor_mask, rng)


class _EpochBatches(torch.utils.data.Sampler):
    """Batches of (epoch, index) keys for one epoch, starting after ``skip`` batches."""

    def __init__(self, n: int, cfg: TrainConfig, epoch: int, skip: int):
        perm = np.random.default_rng([cfg.seed, epoch, 7919]).permutation(n)
        nb = n // cfg.batch_size  # drop the last partial batch (BatchNorm)
        if cfg.max_steps_per_epoch:
            nb = min(nb, cfg.max_steps_per_epoch)
        self.batches = [
            [(epoch, int(i)) for i in perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]] for b in range(skip, nb)
        ]
        self.total = nb

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def steps_per_epoch(n: int, cfg: TrainConfig) -> int:
    nb = n // cfg.batch_size
    return min(nb, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else nb


def lr_at(step: int, total: int, warmup: int, cfg: TrainConfig) -> float:
    if warmup > 0 and step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def within_ceiling(record: dict, cfg: TrainConfig) -> bool:
    """Whether a validated epoch marks at most ``select_max_negatives`` of the polyp-free val frames."""
    return cfg.select_max_negatives is None or record["val_negatives_marked"] <= cfg.select_max_negatives + 1e-9


def selects_over(record: dict, state: dict, cfg: TrainConfig) -> bool:
    """Whether the validated epoch ``record`` replaces the selected one (``state``): the higher val
    score wins, except that an epoch within the ceiling (``within_ceiling``) always wins over one
    beyond it."""
    # a run checkpointed before the ceiling existed had none: its selected epoch was within it
    return (within_ceiling(record, cfg), record["val_score"]) > (state.get("best_within", True), state["best_score"])


def batch_dice(prob: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-image Dice of (prob >= threshold) against a {0,1} mask; empty vs empty counts as 1."""
    p = (prob >= threshold).flatten(1).float()
    t = mask.flatten(1).float()
    inter = (p * t).sum(1)
    denom = p.sum(1) + t.sum(1)
    return torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))


class _Cancelled(Exception):
    """``should_stop`` said so before training started."""


class ResumeError(DatasetError):
    """A checkpoint that does not belong to this run: another configuration, or data that changed."""


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir else cache_dir() / "runs" / f"{cfg.name}-{cfg.key()}"
        self.parent: ModelDir | None = resolve_model(cfg.init_model) if cfg.init_model else None
        # the teachers are found now, before any frame is read
        self.teachers: list[ModelDir] = [resolve_model(m) for m in cfg.distill_from or []]
        if cfg.select_max_negatives is not None and not 0.0 <= cfg.select_max_negatives <= 1.0:
            raise ValueError(f"select_max_negatives is a share, 0 to 1, not {cfg.select_max_negatives}")
        if cfg.distill_view not in ("input", "clean"):
            raise ValueError(f"distill_view must be 'input' or 'clean', not {cfg.distill_view!r}")
        for t in self.teachers:
            if int(t.card.input_size[0]) != cfg.input_size:
                raise ModelError(f"{t.path}: a teacher for distillation must take the training input size "
                                 f"({cfg.input_size}), not {t.card.input_size[0]}")

    # ------------------------------------------------------------------ data
    def _prepare(self, progress, stop=lambda: False):
        cfg = self.cfg
        say = progress or (lambda e: None)
        if cfg.val_negatives and not cfg.val_data:  # found before any frame is read
            raise DatasetError(f"{cfg.val_negatives}: polyp-free frames are counted at each validation, so "
                               "they need validation frames too (--val-data)")
        if cfg.select_max_negatives is not None and not cfg.val_negatives:
            raise DatasetError("--select-max-negatives caps the share of polyp-free val frames marked, so it "
                               "needs those frames (--val-negatives)")
        train_sets = [_open_split(p, cfg.train_split) for p in cfg.train_data]

        def caching(i: int, n: int) -> None:
            say({"event": "cache", "done": i, "total": n})
            if stop():
                raise _Cancelled

        caches = []
        for ds in train_sets:
            caches.append(build_cache(ds, cfg.input_size, caching))
        self.train_cache = concat_caches(caches)
        n = len(self.train_cache)
        if n < cfg.batch_size:
            what = "reviewed frames (accepted, corrected or empty)" if any(
                ds.manifest is not None for ds in train_sets) else "frames"
            raise DatasetError(
                f"{', '.join(cfg.train_data)}: {n} training {what}, fewer than one batch of "
                f"{cfg.batch_size}: review more frames or pass a smaller batch size")
        self.data_fingerprint = {
            "train": [_data_record(p, cfg.train_split, d) for p, d in zip(cfg.train_data, train_sets)]
        }
        self.val = None
        if cfg.val_data:
            vds = _open_split(cfg.val_data, cfg.val_split)
            for p, ds in zip(cfg.train_data, train_sets):
                shared = set(ds.names) & set(vds.names) if Path(ds.root).resolve() == Path(vds.root).resolve() else set()
                if shared:
                    raise DatasetError(
                        f"{cfg.val_data}: {len(shared)} validation frames are also training frames of {p} "
                        "(a folder without split.json is used whole): selecting on them would measure "
                        "nothing; give a separate validation folder, or train on the 'train' split of a "
                        "folder whose split.json holds frames out (--split train)")
            vcache = build_cache(vds, cfg.input_size)
            self.data_fingerprint["val"] = _data_record(cfg.val_data, cfg.val_split, vds)
            self.val = self._val_tensors(vcache)
        self.val_negatives = None
        if cfg.val_negatives:
            negatives, self.val_negatives = self._negatives_tensor(cfg.val_negatives)
            self.data_fingerprint["val_negatives"] = _data_record(cfg.val_negatives, None, negatives)
        if self.teachers:  # what was distilled, by content: a folder's name may hold other weights later
            self.data_fingerprint["distill_from"] = [{"model": t.id, "sha256": t.sha256()} for t in self.teachers]
        self.train_soft = None
        if self.teachers and cfg.distill_view == "clean":
            self.train_soft = self._clean_view_probability(say, stop)
        if stop():  # cancelled while the frames were read: stop before any training
            raise _Cancelled

    def _val_tensors(self, cache: FrameCache):
        """Clean and seeded-degraded validation batches (degraded once, with seed 0 per frame)."""
        from ..degrade import degrade_seeded
        from ..evaluate import degraded_frame_seed

        clean = _frames_tensor(cache)
        masks = torch.from_numpy(np.asarray(cache.masks, dtype=np.float32))[:, None]
        deg_imgs, deg_masks = [], []
        for i in range(len(cache)):
            img, m = degrade_seeded(np.asarray(cache.images[i], np.float32) / 255.0, np.asarray(cache.masks[i]).astype(bool), seed=degraded_frame_seed(0, i))
            deg_imgs.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
            deg_masks.append(torch.from_numpy(m.astype(np.float32))[None])
        return {"clean": (clean, masks), "degraded": (torch.stack(deg_imgs), torch.stack(deg_masks))}

    def _negatives_tensor(self, path: str) -> tuple[Dataset, torch.Tensor]:
        """A polyp-free folder, checked to be one (every mask empty), and its clean frames."""
        ds = _open_split(path, None)
        cache = build_cache(ds, self.cfg.input_size)
        with_polyp = int(np.count_nonzero(np.asarray(cache.masks).reshape(len(cache), -1).any(axis=1)))
        if with_polyp:
            raise DatasetError(f"{path}: {with_polyp} of its {len(cache)} frames show a polyp; the frames "
                               "whose marks are counted must all have empty masks")
        return ds, _frames_tensor(cache)

    @staticmethod
    def _teachers_probability(teachers: list, x: torch.Tensor) -> torch.Tensor:
        """The teachers' (``engine.Predictor``) mean polyp probability on the batch ``x``, (B, 1, H, W).
        They run through the one inference engine, ONNX Runtime where the model has its graph: 2.2x
        the frames/s of torch's forward on this CPU (35.7 against 16.2 at batch 16)."""
        prob = np.mean([t.run_batch(x.contiguous())[0] for t in teachers], axis=0, dtype=np.float32)
        return torch.from_numpy(prob)[:, None]

    def _clean_view_probability(self, say, stop, chunk: int = 32) -> np.ndarray:
        """The teachers' mean polyp probability on every clean training frame, flip-averaged
        (``Predictor(tta=True)``), as uint8 0-255 (N x H x W): computed once, before training."""
        images = self.train_cache.images
        teachers = [Predictor(t, tta=True) for t in self.teachers]
        out = np.empty(tuple(images.shape[:3]), np.uint8)
        for s in range(0, len(out), chunk):
            x = torch.from_numpy(np.asarray(images[s : s + chunk], dtype=np.float32) / 255.0).permute(0, 3, 1, 2)
            prob = self._teachers_probability(teachers, x)[:, 0].numpy()
            out[s : s + chunk] = np.rint(prob * 255.0).astype(np.uint8)
            say({"event": "distill_view", "done": min(s + chunk, len(out)), "total": len(out)})
            if stop():
                raise _Cancelled
        return out

    # ------------------------------------------------------------------ eval
    @staticmethod
    def _polyp_probability(net: torch.nn.Module, images: torch.Tensor, chunk: int = 32):
        """The polyp probability of ``images``, ``chunk`` frames per network call, chunk by chunk."""
        for s in range(0, len(images), chunk):
            x = images[s : s + chunk].contiguous(memory_format=torch.channels_last)
            yield s, torch.sigmoid(net(x)[:, 0:1].float())

    @torch.inference_mode()
    def validate(self, net: torch.nn.Module) -> dict[str, float]:
        net.eval()
        out = {}
        thr = self.cfg.threshold
        for kind, (images, masks) in self.val.items():
            dices = [batch_dice(prob, masks[s : s + len(prob)], thr) for s, prob in self._polyp_probability(net, images)]
            out[f"val_dice_{kind}"] = float(torch.cat(dices).mean())
        w = self.cfg.select_clean_weight
        out["val_score"] = w * out["val_dice_clean"] + (1 - w) * out["val_dice_degraded"]
        if self.val_negatives is not None:  # reported beside the score, never part of it
            marked = [(prob >= thr).flatten(1).any(1) for _, prob in self._polyp_probability(net, self.val_negatives)]
            out["val_negatives_marked"] = float(torch.cat(marked).float().mean())
        return out

    # ------------------------------------------------------------------ run
    def run(
        self,
        progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: bool = False,
        out_dir: str | Path | None = None,
    ) -> ModelDir | None:
        """Train; returns the written model directory, or ``None`` if cancelled (a checkpoint is
        written first, and ``resume=True`` continues from it). glibc keeps freed memory for reuse
        meanwhile (``memory.keep_freed_memory``: the fp32 step twice as fast on an AVX2 CPU)."""
        with keep_freed_memory():
            return self._run(progress, should_stop, resume, out_dir)

    def _run(self, progress, should_stop, resume, out_dir) -> ModelDir | None:
        cfg = self.cfg
        say = progress or (lambda e: None)
        stop = should_stop or (lambda: False)
        target, _ = self._target(out_dir)
        if target.exists():  # said now, not after hours of training
            raise ModelError(f"{target}: already exists; a model is never overwritten (choose another "
                             "output folder or version)")
        torch.manual_seed(cfg.seed)
        try:
            self._prepare(progress, stop)
        except _Cancelled:  # while reading the frames: nothing trained yet, nothing to keep
            say({"event": "cancelled", "epoch": 0, "batch": 0})
            return None

        net = DepthPolyp(drop_path=cfg.drop_path)
        if self.parent is not None:
            net.load_state_dict(self.parent.load_torch().state_dict())
        net = net.to(memory_format=torch.channels_last)
        if cfg.freeze_encoder:
            for p in net.encoder.parameters():
                p.requires_grad_(False)
        criterion = MultiTaskLoss(
            depth=cfg.depth, uncertainty=cfg.uncertainty, bce_weight=cfg.bce_weight,
            depth_weights=DepthLossWeights(cfg.depth_ssi, cfg.depth_grad, cfg.depth_fft),
            dice_positives=cfg.dice_positives, distill_weight=cfg.distill_weight,
        )
        # one run_batch per training batch, unless their clean view was computed once (_prepare)
        teachers = [Predictor(t) for t in self.teachers] if self.train_soft is None else []
        ema = copy.deepcopy(net).eval() if cfg.ema else None
        if ema is not None:
            for p in ema.parameters():
                p.requires_grad_(False)
        decay, no_decay = [], []
        for n_, p in net.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 or n_.endswith(".bias") else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay + list(criterion.parameters()), "weight_decay": 0.0},
        ]
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = opt_cls(groups, lr=cfg.lr)

        modules = {"net": net, "loss": criterion}
        if ema is not None:
            modules["ema"] = ema
        spe = steps_per_epoch(len(self.train_cache), cfg)
        total = spe * cfg.epochs
        warmup = int(round(cfg.warmup_epochs * spe))
        state = {"epoch": 0, "batch": 0, "step": 0, "best_score": -1.0, "best_epoch": -1, "since_best": 0,
                 "best_within": False}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and has_checkpoint(self.run_dir):
            meta = load_checkpoint(self.run_dir, modules=modules, optimizer=optimizer)
            if meta["config_key"] != cfg.key():
                raise ResumeError(f"{self.run_dir}: checkpoint was made with another configuration")
            if meta.get("data") not in (None, self.data_fingerprint):
                raise ResumeError(
                    f"{self.run_dir}: checkpoint was made on other data (the frames in "
                    f"{', '.join(cfg.train_data)} or {cfg.val_data} changed since); start the run afresh")
            state = meta["state"]
            say({"event": "resumed", **state})
        else:
            write_json(self.run_dir / "config.json", cfg.to_json())
            for f in ("log.jsonl", "log.csv"):
                (self.run_dir / f).unlink(missing_ok=True)

        parent_val = self.run_dir / "parent_val.json"
        if self.parent is not None and self.val is not None and state["step"] == 0 and not (resume and parent_val.is_file()):
            # the model it starts from, measured on the same val frames first: the fine-tune's baseline
            # (only before the first step: a run resumed from a checkpoint holds other weights)
            record = {"model": self.parent.id, **self.validate(net)}
            write_json(parent_val, record)
            say({"event": "parent_val", **record})
            if stop():  # cancelled while the base was measured: nothing trained, nothing to keep
                say({"event": "cancelled", **state})
                return None

        def checkpoint():
            save_checkpoint(self.run_dir, modules=modules, optimizer=optimizer,
                            meta={"config_key": cfg.key(), "data": self.data_fingerprint, "state": state,
                                  "saved": now_iso()})

        source = SampleSource(self.train_cache, cfg, self.train_soft)
        # cfg.bf16 asks for bf16; the CPU decides whether it gets it (the config key, and so resuming,
        # does not depend on the machine).
        use_bf16 = cfg.bf16 and bf16_is_native()
        say({"event": "precision", "bf16": use_bf16, "requested": cfg.bf16})
        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            net.train()
            sampler = _EpochBatches(len(self.train_cache), cfg, epoch, state["batch"])
            loader = torch.utils.data.DataLoader(
                source, batch_sampler=sampler, num_workers=cfg.workers,
                persistent_workers=False, prefetch_factor=4 if cfg.workers else None,
            )
            sums: dict[str, float] = {}
            nb, t0 = 0, time.perf_counter()
            for image, mask, depth, *stored in loader:
                b = state["batch"]
                torch.manual_seed(hash((cfg.seed, epoch, b)) & 0x7FFFFFFF)
                lr = lr_at(state["step"], total, warmup, cfg)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                # The math attention kernel (chosen in the forward; the backward follows it): on
                # this CPU the fused kernel's backward is slow for MiT-B0's shapes (3136 queries,
                # 49 keys), and the step is about 15 % faster.
                soft = stored[0] if stored else self._teachers_probability(teachers, image) if teachers else None
                with sdpa_kernel([SDPBackend.MATH]), torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                    logits = net(image.contiguous(memory_format=torch.channels_last))
                losses = criterion(logits, mask, depth if cfg.depth else None, soft)
                optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                optimizer.step()
                if ema is not None:
                    self._ema_update(ema, net, min(cfg.ema, (1 + state["step"]) / (10 + state["step"])))
                state["batch"] += 1
                state["step"] += 1
                nb += 1
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                say({"event": "batch", "epoch": epoch, "batch": state["batch"], "batches": spe,
                     "loss": float(losses["total"].detach()), "lr": lr})
                if stop():
                    checkpoint()
                    say({"event": "cancelled", **state})
                    return None
            elapsed = time.perf_counter() - t0
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr_at(max(0, state["step"] - 1), total, warmup, cfg),
                                      "images_per_s": nb * cfg.batch_size / max(elapsed, 1e-9), "bf16": use_bf16}
            record.update({f"loss_{k}": v / max(nb, 1) for k, v in sums.items()})
            record["sigma_seg"], record["sigma_depth"] = criterion.sigmas()
            state["epoch"] += 1
            state["batch"] = 0
            last = state["epoch"] == cfg.epochs
            dense = state["epoch"] >= cfg.val_dense_from * cfg.epochs
            if self.val is not None and (last or dense or state["epoch"] % cfg.val_every == 0):
                if ema is not None:
                    self._refit_bn(ema, source, epoch, use_bf16)
                record.update(self.validate(ema if ema is not None else net))
                if selects_over(record, state, cfg):
                    state["best_score"], state["best_epoch"], state["since_best"] = record["val_score"], state["epoch"], 0
                    state["best_within"] = within_ceiling(record, cfg)
                    self._save_best(ema if ema is not None else net, record)
                else:
                    state["since_best"] += 1
            self._log(record)
            checkpoint()
            say({"event": "epoch", **record})
            if cfg.patience and state["since_best"] >= cfg.patience:
                say({"event": "early_stop", **state})
                break
            if stop():
                say({"event": "cancelled", **state})
                return None
        if self.val is None:
            if ema is not None:
                self._refit_bn(ema, source, state["epoch"], use_bf16)
            self._save_best(ema if ema is not None else net, {"epoch": state["epoch"]})
        return self.export(out_dir)

    @torch.no_grad()
    def _refit_bn(self, ema: torch.nn.Module, source: "SampleSource", epoch: int, bf16: bool,
                  batches: int | None = None) -> None:
        """Measure the EMA weights' own BatchNorm statistics (``torch.optim.swa_utils.update_bn``: a
        plain average) on the epoch's first ``batches`` training batches (default
        ``ema_bn_batches``). The EMA averages the weights but takes the live net's running
        statistics, which belong to other weights: at a high learning rate the EMA validated with
        them scored 5-8 Dice points under its worth (an audit, session 17). The batches are the
        epoch's first, so a resumed run measures the same; the next training step copies the live
        statistics back, so training is unchanged."""
        from torch.optim.swa_utils import update_bn

        k = self.cfg.ema_bn_batches if batches is None else batches
        if k <= 0:
            return
        keys = _EpochBatches(len(self.train_cache), self.cfg, epoch, 0).batches[:k]
        images = (torch.stack([source[key][0] for key in batch]).contiguous(memory_format=torch.channels_last)
                  for batch in keys)
        with sdpa_kernel([SDPBackend.MATH]), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            torch.manual_seed(hash((self.cfg.seed, epoch, -1)) & 0x7FFFFFFF)  # drop path, dropout
            update_bn(images, ema)

    @staticmethod
    @torch.no_grad()
    def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
        for e, p in zip(ema.parameters(), net.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(ema.buffers(), net.buffers()):
            e.copy_(b)

    def _save_best(self, net: torch.nn.Module, record: dict) -> None:
        from safetensors.torch import save_file

        from ..io.atomic import atomic_path

        state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
        with atomic_path(self.run_dir / "best.safetensors") as tmp:
            save_file(state, str(tmp))
        write_json(self.run_dir / "best.json", record)

    def _log(self, record: dict) -> None:
        with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        rows = [json.loads(line) for line in (self.run_dir / "log.jsonl").read_text().splitlines() if line]
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "epoch", k))
        with atomic_open(self.run_dir / "log.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    def history(self) -> list[dict]:
        path = self.run_dir / "log.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines() if x] if path.is_file() else []

    def _target(self, out_dir: str | Path | None) -> tuple[Path, str]:
        """Where the model goes and its version: ``out_dir`` or the user models folder
        (``<name>-<version>``); with no version, the next free ``ft.N``."""
        from ..models import next_user_model_dir, user_models_dir

        cfg = self.cfg
        if cfg.version is None:
            auto, version = next_user_model_dir(cfg.name)
            return (Path(out_dir) if out_dir is not None else auto), version
        return (Path(out_dir) if out_dir is not None else user_models_dir() / f"{cfg.name}-{cfg.version}"), cfg.version

    def export(self, out_dir: str | Path | None = None) -> ModelDir:
        """Write the selected weights as a new model directory (never over an existing one)."""
        from safetensors.torch import load_file

        from ..models import ModelTaken, issued_version

        cfg = self.cfg
        best = json.loads((self.run_dir / "best.json").read_text())
        state = load_file(str(self.run_dir / "best.safetensors"))
        metrics: dict[str, Any] = {"val": {k: v for k, v in best.items() if k.startswith("val_")}, "selected_epoch": best.get("epoch")}
        if self.parent is not None and (self.run_dir / "parent_val.json").is_file():
            metrics["parent_val"] = json.loads((self.run_dir / "parent_val.json").read_text())
        if cfg.depth:  # the losses leave the depth's sign free: export near = high (train/orient.py)
            state, metrics["depth_orientation"] = orient_depth(state, self._orientation_frames())
        for _ in range(20):
            target, version = self._target(out_dir)
            card = ModelCard(
                name=cfg.name,
                version=version,
                input_size=[cfg.input_size, cfg.input_size],
                default_threshold=cfg.threshold,
                parent=self.parent.id if self.parent else None,
                training_data=self.data_fingerprint,
                metrics=metrics,
                config=_card_config(cfg),
                description=cfg.description,
            )
            try:
                model = write_model(target, state, card)
            except ModelTaken:
                if cfg.version is not None or out_dir is not None:
                    raise  # a version or folder asked for by name is never replaced by another
                continue  # another fine-tune took this ft.N meanwhile: the next one
            issued_version(cfg.name, version)
            return model
        raise ModelError(f"no free fine-tune version for {cfg.name} after 20 tries")

    def _orientation_frames(self, n: int = 64) -> torch.Tensor:
        """Clean frames to orient the depth on: the val set, or the first training frames."""
        if self.val is not None:
            return self.val["clean"][0]
        images = np.asarray(self.train_cache.images[:n], dtype=np.float32) / 255.0
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
