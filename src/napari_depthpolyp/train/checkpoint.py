"""Training checkpoints as safetensors + JSON (no pickle): model, EMA, optimiser, loss parameters,
position in the schedule and random-number state, so that ``--resume`` continues exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..io.atomic import atomic_path, write_json

TENSORS = "checkpoint.safetensors"
META = "checkpoint.json"


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
    """Write the checkpoint atomically (tensors first, then the JSON that points at them)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.detach().clone().contiguous()
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    with atomic_path(run_dir / TENSORS) as tmp:
        save_file(tensors, str(tmp))
    write_json(run_dir / META, {**meta, "optimizer": opt_meta})


def load_checkpoint(run_dir: Path, *, modules: dict[str, torch.nn.Module], optimizer) -> dict:
    meta = json.loads((run_dir / META).read_text())
    tensors = load_file(str(run_dir / TENSORS))
    for prefix, module in modules.items():
        sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        module.load_state_dict(sub, strict=True)
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"])
    return meta


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / META).is_file() and (run_dir / TENSORS).is_file()
