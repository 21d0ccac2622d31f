"""Write polyp-free squares cut from annotated frames as a dataset of "empty" frames.

Kvasir-SEG has a polyp in every image; these crops give the trainer frames without one
(``napari_depthpolyp.negatives``). Cut them from the training split only, so that no val frame
reaches training; a val-split set is a held-out false-positive check:

    python scripts/make_negatives.py --data ../shared/data/kvasir-seg --split train --out NEG_TRAIN
    python scripts/make_negatives.py --data ../shared/data/kvasir-seg --split val --out NEG_VAL
"""

from __future__ import annotations

import argparse
import json
import sys

from napari_depthpolyp.dataset import Dataset
from napari_depthpolyp.negatives import write_negative_crops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="annotated dataset folder")
    ap.add_argument("--split", help="split of a folder with a split.json")
    ap.add_argument("--out", required=True, help="new dataset folder to write")
    ap.add_argument("--min-fraction", type=float, default=0.4)
    ap.add_argument("--margin-fraction", type=float, default=0.05)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    source = Dataset.open(args.data, split=args.split)
    summary = write_negative_crops(source, args.out, min_fraction=args.min_fraction,
                                   margin_fraction=args.margin_fraction, overwrite=args.overwrite)
    print(json.dumps({"root": summary["root"], "from": len(source), "written": summary["n_frames"],
                      "skipped": len(summary["skipped"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
