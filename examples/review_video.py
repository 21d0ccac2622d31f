"""Open a colonoscopy video, an image folder or an image in napari with the DepthPolyp panels docked.

    python examples/review_video.py                    # the bundled 48-frame sample clip
    python examples/review_video.py clip.mp4 --run     # your video, segmenting every frame at once

Then review: the Review panel ranks frames by uncertainty; G accepts a frame, N marks it "no polyp",
, and . step through the unreviewed frames, U jumps to the most uncertain one, and painting on the
mask layer marks a frame corrected. Everything autosaves beside the video (``clip.mp4.depthpolyp/``);
opening the video again offers to resume. Export writes the reviewed frames as a dataset folder that
the Fine-tune panel (or ``depthpolyp finetune``) trains on.

Without a trained model installed, Segment says so and runs nothing (no random weights).
"""

from __future__ import annotations

import argparse

import napari

PLUGIN = "napari-depthpolyp"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="a video (mp4/avi/mov/mkv), an image folder or an image")
    parser.add_argument("--model", help="a model id, name or directory (default: the bundled model)")
    parser.add_argument("--run", action="store_true", help="start segmenting all frames at once")
    args = parser.parse_args(argv)

    viewer = napari.Viewer(title="DepthPolyp review")
    if args.path:
        viewer.open(args.path, plugin=PLUGIN)
    else:
        viewer.open_sample(PLUGIN, "clip")
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Review")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Export", tabify=True)
    viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune", tabify=True)
    if args.model:
        segment.select_model(args.model)
    if args.run:
        segment.run()
    napari.run()


if __name__ == "__main__":
    main()
