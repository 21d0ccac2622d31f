"""Write a trained model again under its release version, ready to be bundled.

Candidates are trained under working names (``1.6-lr4``: the run that made them); the one that is
released gets the next release number. The tensors are copied bit for bit (the weights file's header
names the model, so its sha256 changes), the ONNX graph is exported again from them (its metadata
embeds the card), and the card keeps everything else: parent, training data fingerprints, config,
val metrics. Its description records the working name, so the release can be traced back to its run.

    python scripts/release_model.py SRC --version 1.7 --out src/napari_depthpolyp/weights/depthpolyp-kvasir-1.7

It refuses to write over an existing directory, like every model write.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def main() -> int:
    from safetensors.torch import load_file

    from napari_depthpolyp.models import ModelError, open_model, write_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="the trained model directory (verified against its card)")
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    try:
        src = open_model(args.src)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    card = dataclasses.replace(
        src.card,
        version=args.version,
        config={**src.card.config, "version": args.version},
        description=f"{src.card.description} (trained as {src.id})",
    )
    state = load_file(str(src.weights_path))
    try:
        out = write_model(args.out, state, card)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    written = load_file(str(out.weights_path))
    same = written.keys() == state.keys() and all(written[k].equal(state[k]) for k in state)
    print(f"wrote {out.id} to {out.path} (tensors {'identical to' if same else 'DIFFERENT from'} {src.id})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
