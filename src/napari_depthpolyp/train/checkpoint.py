"""Training checkpoints as safetensors + JSON (no pickle): model, EMA, optimiser, loss parameters,
position in the schedule and random-number state, so that ``--resume`` continues exactly.

The two files are written so that a run killed at any moment leaves a pair that belongs together:
the tensors go to ``checkpoint.next.safetensors`` first, then ``checkpoint.json`` (which names them
by a token stored in both) is replaced, then the tensors take their place. Loading takes the
tensor file whose token the JSON names."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..dataset import DatasetError
from ..io.atomic import atomic_path, write_json

TENSORS = "checkpoint.safetensors"
NEXT = "checkpoint.next.safetensors"
META = "checkpoint.json"


class CheckpointError(DatasetError):
    """A checkpoint that cannot be read: damaged files, or tensors and JSON from different saves."""


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{pid}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, *, modules: dict[str, torch.nn.Module], optimizer, meta: dict) -> None:
    """Write the checkpoint: the tensors beside, the JSON that names them, then the tensors in place
    (see the module docstring); each file atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.detach().clone().contiguous()
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    token = uuid.uuid4().hex
    with atomic_path(run_dir / NEXT) as tmp:
        save_file(tensors, str(tmp), metadata={"token": token})
    write_json(run_dir / META, {**meta, "optimizer": opt_meta, "tensors_token": token})
    _put_in_place(run_dir)


def _put_in_place(run_dir: Path) -> None:
    """The last step of a save: the tensors the JSON now names take the usual file name."""
    os.replace(run_dir / NEXT, run_dir / TENSORS)


def _token(path: Path) -> str | None:
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("token")
    except Exception:  # unreadable: not the one
        return None


def load_checkpoint(run_dir: Path, *, modules: dict[str, torch.nn.Module], optimizer) -> dict:
    try:
        meta = json.loads((run_dir / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{run_dir / META}: cannot read the checkpoint ({exc}); start the run afresh") from exc
    token = meta.get("tensors_token")
    if token is None:  # a checkpoint written before tokens
        path = run_dir / TENSORS
    else:
        found = [p for p in (run_dir / TENSORS, run_dir / NEXT) if p.is_file() and _token(p) == token]
        if not found:
            raise CheckpointError(f"{run_dir}: {META} names tensors that neither {TENSORS} nor {NEXT} holds "
                                  "(damaged, or from another save); start the run afresh")
        path = found[0]
    try:
        tensors = load_file(str(path))
        for prefix, module in modules.items():
            sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            module.load_state_dict(sub, strict=True)
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        torch.set_rng_state(tensors["rng.torch"])
    except Exception as exc:  # safetensors' own error, a missing key, a shape that does not fit
        raise CheckpointError(f"{path}: cannot resume from this checkpoint ({type(exc).__name__}: {exc}); "
                              "start the run afresh") from exc
    return meta


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / META).is_file() and (run_dir / TENSORS).is_file()
