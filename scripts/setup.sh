#!/usr/bin/env bash
# Set up napari-depthpolyp on a fresh Debian/Ubuntu machine: the system libraries napari needs
# under Xvfb, a virtual environment in .venv, the pinned CPU build of torch, and the package with
# its dev extra. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 \
           libxcb-cursor0 libxcb-shape0 libxkbcommon-x11-0 libgl1 libegl1 libfontconfig1 libdbus-1-3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU wheel of torch, pinned: an unpinned torch pulls a multi-GB CUDA build, and so does
# torch==2.13.0 from PyPI alone: PyTorch's CPU index offers 2.13.0+cpu, which pip prefers. (Where
# that index cannot be reached, as on a machine whose wheels lie on disk, pip says so and goes on.)
.venv/bin/python -m pip install -q "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu \
  --retries 1 --timeout 10
.venv/bin/python -m pip install -q -e ".[dev]"
echo "napari-depthpolyp is set up in $(pwd)/.venv" >&2
