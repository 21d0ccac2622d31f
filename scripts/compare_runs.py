"""Compare training runs epoch by epoch from their ``log.jsonl``: val Dice (clean / degraded) at the
epochs every run validated, and each run's best epoch by the selection score.

Used for the depth-off ablation in ``docs/model-card.md``:

    python scripts/compare_runs.py ~/.cache/napari-depthpolyp/runs/main-v1 ~/.cache/napari-depthpolyp/runs/nodepth-v1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def val_records(run_dir: Path) -> dict[int, dict]:
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise SystemExit(f"{log}: no training log here (is {run_dir} a run directory?)")
    records = {}
    for line in log.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if "val_score" in r:
                records[int(r["epoch"])] = r  # a resumed epoch logged twice keeps its last record
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--every", type=int, default=10, help="print every Nth validated epoch (and the last)")
    args = ap.parse_args(argv)
    runs = {p.name: val_records(p) for p in args.runs}
    common = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not common:
        print("the runs have no validated epoch in common", file=sys.stderr)
        return 1
    shown = [e for e in common if e % args.every == 0 or e == common[-1]]
    print("| epoch | " + " | ".join(f"{n} clean / degraded" for n in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for e in shown:
        cells = [f"{r[e]['val_dice_clean']:.3f} / {r[e]['val_dice_degraded']:.3f}" for r in runs.values()]
        print(f"| {e} | " + " | ".join(cells) + " |")
    cells = []
    for r in runs.values():
        best = max(r.values(), key=lambda x: x["val_score"])
        cells.append(f"**{best['val_dice_clean']:.3f} / {best['val_dice_degraded']:.3f}** (epoch {best['epoch']})")
    print("| best by 0.7·clean + 0.3·degraded | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
