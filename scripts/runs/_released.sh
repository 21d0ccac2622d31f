#!/usr/bin/env bash
# Prints the folder of a model released before the bundled one, restored from git into the user
# cache if it is not there yet (a teacher for --distill-from, say):
#   _released.sh VERSION COMMIT    e.g. 1.8 c0e3f0a^ (the last commit that bundled it)
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$1 commit=$2
out="${DEPTHPOLYP_CACHE_DIR:-$HOME/.cache/napari-depthpolyp}/out/depthpolyp-kvasir-$version"
if [ ! -f "$out/card.json" ]; then
  rm -rf "$out.part" && mkdir -p "$out.part"
  git archive "$commit" "src/napari_depthpolyp/weights/depthpolyp-kvasir-$version" | tar -x -C "$out.part" --strip-components=4
  mv "$out.part" "$out"
fi
echo "$out"
