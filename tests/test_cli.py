"""The depthpolyp command line, driven as a user would."""

import json

import numpy as np
import onnx
import pytest

from napari_depthpolyp.cli import main
from napari_depthpolyp.demo import sample_paths
from napari_depthpolyp.io import read_depth, read_mask


def test_predict_writes_masks_depth_overlays_and_reports_bad_inputs(format_model, tmp_path, capsys):
    samples = sample_paths()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(samples["clip"].read_bytes()[: samples["clip"].stat().st_size // 2])
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    rc = main(["predict", str(samples["frames"]), str(broken), str(missing), "--out", str(out),
               "--model", str(format_model.path), "--overlay"])
    assert rc == 2  # an input failed, and the exit code says so
    summary = json.loads((out / "summary.json").read_text())
    frames, video, absent = summary["inputs"]
    assert frames["status"] == "ok" and len(frames["frames"]) == 6
    f0 = frames["frames"][0]
    assert {"polyp_present", "area_fraction", "mean_prob_in_mask", "uncertainty", "mask", "depth", "overlay"} <= set(f0)
    mask = read_mask(out / f0["mask"])
    depth = read_depth(out / f0["depth"])
    assert mask.shape == depth.shape and (out / f0["overlay"]).is_file()
    # the damaged video: its good frames are kept, the damage is reported
    assert video["status"] == "error" and "broken.mp4" in video["error"]
    from napari_depthpolyp.io import CorruptVideoError, read_input

    decodable = 0
    with pytest.raises(CorruptVideoError):
        for _ in read_input(broken):
            decodable += 1
    assert 0 < len(video["frames"]) == decodable < 48  # every frame decoded before the damage, not a batch less
    assert all((out / f["mask"]).is_file() for f in video["frames"])
    assert absent["status"] == "error" and "missing.png" in absent["error"]
    assert summary["model"]["sha256"] == format_model.sha256()
    assert summary["model"]["min_region"] == 0.0  # how the masks were made: nothing dropped by default
    assert "error" in capsys.readouterr().err


def test_info_json(format_model, capsys):
    assert main(["info", "--model", str(format_model.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 3_572_062
    assert abs(info["macs"] - 0.862e9) / 0.862e9 < 0.02
    assert info["input_size"] == [224, 224]
    assert set(info["files"]) == {"weights.safetensors", "model.onnx"}


def test_output_piped_into_head_ends_quietly(format_model):
    """`depthpolyp info --json | head -1` must not end in a BrokenPipeError traceback."""
    import subprocess
    import sys

    code = "import sys; from napari_depthpolyp.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "info", "--model", str(format_model.path), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written, as when `head` has had its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err


def test_export_onnx_carries_the_card(format_model, tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", "--model", str(format_model.path), "--out", str(out)]) == 0
    m = onnx.load(str(out))
    assert json.loads({p.key: p.value for p in m.metadata_props}["depthpolyp_card"])["name"] == "untrained-plumbing"
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_missing_model_is_said_plainly(tmp_path, capsys):
    assert main(["predict", str(sample_paths()["frames"]), "--out", str(tmp_path), "--model", "nope"]) == 2
    assert "model 'nope' not found" in capsys.readouterr().err


@pytest.mark.data
def test_eval_on_a_real_subset(format_model, kvasir_dir, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(kvasir_dir), "--split", "val", "--model", str(format_model.path),
                 "--limit", "4", "--degraded", "--seed", "0", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for key in ("n", "mean_dice", "mean_iou", "recall", "precision", "s_measure", "mean_e_measure",
                "weighted_f", "mae", "max_dice", "threshold", "resolution", "degraded", "seed", "model"):
        assert key in res, key
    assert res["n"] == 4 and res["degraded"] is True and res["seed"] == 0
    assert -1 <= res["depth_clean_vs_degraded"] <= 1
    again = tmp_path / "again.json"
    main(["eval", "--data", str(kvasir_dir), "--split", "val", "--model", str(format_model.path),
          "--limit", "4", "--degraded", "--seed", "0", "--json", str(again)])
    assert json.loads(again.read_text())["mean_dice"] == res["mean_dice"]  # seeded: repeatable
    assert np.isfinite(res["mae"])
    assert res["tta"] is False and res["empty_masks"] == 0
    flipped = tmp_path / "tta.json"
    main(["eval", "--data", str(kvasir_dir), "--split", "val", "--model", str(format_model.path),
          "--limit", "4", "--tta", "--json", str(flipped)])
    assert json.loads(flipped.read_text())["tta"] is True
    kept = tmp_path / "min-region.json"
    main(["eval", "--data", str(kvasir_dir), "--split", "val", "--model", str(format_model.path),
          "--limit", "4", "--min-region", "0.25", "--json", str(kept)])
    assert json.loads(kept.read_text())["min_region"] == 0.0025 and res["min_region"] == 0.0
    # each frame's figures, for finding the frames a model fails on; their mean is the summary's
    rows_csv = tmp_path / "frames.csv"
    assert main(["eval", "--data", str(kvasir_dir), "--split", "val", "--model", str(format_model.path),
                 "--limit", "4", "--degraded", "--seed", "0", "--per-frame", str(rows_csv)]) == 0
    import csv

    rows = list(csv.DictReader(rows_csv.open()))
    split_names = json.loads((kvasir_dir / "split.json").read_text())["val"]
    assert [r["name"] for r in rows] == split_names[:4]
    assert np.mean([float(r["dice"]) for r in rows]) == pytest.approx(res["mean_dice"])
    assert all(-1 <= float(r["depth_clean_vs_degraded"]) <= 1 and int(r["mask_area"]) > 0 for r in rows)
    assert np.mean([float(r["depth_clean_vs_degraded"]) for r in rows]) == pytest.approx(res["depth_clean_vs_degraded"])


def test_eval_of_a_curated_export_scores_reviewed_frames_only(format_model, tmp_path, capsys):
    """An export's unreviewed frames hold the model's own proposals: eval leaves them out, as the
    fine-tune's validation does; a set with no reviewed frame is an error, not n = 0. Its depth/
    maps serve as the precomputed teacher."""
    from napari_depthpolyp.dataset import DatasetWriter
    from napari_depthpolyp.io import read_image

    files = sorted(sample_paths()["frames"].glob("*.jpg"))[:3]
    masks = sample_paths()["masks"]
    root, model = tmp_path / "curated", ["--model", str(format_model.path)]
    with DatasetWriter(root) as w:
        for f, status in zip(files, ("accepted", "corrected", "unreviewed")):
            image = read_image(f)
            depth = np.linspace(0, 1, image.shape[0] * image.shape[1], dtype=np.float32).reshape(image.shape[:2])
            w.add(f.stem, image, read_mask(masks / f"{f.stem}.png"), depth, status=status)
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(root), "--teacher", "precomputed", "--json", str(out), *model]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 2 and -1 <= res["depth_vs_teacher"] <= 1 and res["teacher"] == "precomputed"
    only = tmp_path / "only-proposals"
    with DatasetWriter(only) as w:
        w.add("a", read_image(files[0]), read_mask(masks / f"{files[0].stem}.png"), status="unreviewed")
    assert main(["eval", "--data", str(only), *model]) == 2
    assert "holds no reviewed frame" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --limit 0 evaluates nothing: refused by the parser
        main(["eval", "--data", str(root), "--limit", "0", *model])


def test_eval_refuses_a_folder_as_its_json_before_evaluating(format_model, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    data = tmp_path / "nothing-evaluated"  # not a data set: the --json check comes first
    assert main(["eval", "--data", str(data), "--model", str(format_model.path), "--json", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"--json {folder} is a folder" in err and "nothing-evaluated" not in err


def test_finetune_uses_whole_folders_unless_a_split_is_named():
    """Curated exports have no split; a fine-tune that adds frames to Kvasir-SEG names its splits."""
    from napari_depthpolyp.cli import _finetune_config, build_parser
    from napari_depthpolyp.train.loop import FINETUNE_DEFAULTS

    parser = build_parser()
    plain = _finetune_config(parser.parse_args(["finetune", "--data", "curated"]))
    assert plain.train_split is None and plain.val_split is None and plain.epochs == FINETUNE_DEFAULTS["epochs"]
    assert plain.init_model and plain.name == "depthpolyp-kvasir"  # the bundled model is the parent
    args = parser.parse_args(["finetune", "--data", "kvasir", "negatives", "--split", "train",
                              "--val-data", "kvasir", "--val-split", "val"])
    named = _finetune_config(args)
    assert named.train_data == ["kvasir", "negatives"]
    assert (named.train_split, named.val_data, named.val_split) == ("train", "kvasir", "val")
    assert (named.augment_preset, named.colour) == ("reference", False)  # the reference's ranges
    # a warm restart of a trained model keeps the recipe it was trained with
    restart = _finetune_config(parser.parse_args(["finetune", "--data", "kvasir", "--augment", "strong",
                                                  "--colour"]))
    assert (restart.augment_preset, restart.colour) == ("strong", True)
    assert restart.degrade_prob == 1.0  # every frame degraded, as the reference
    mixed = _finetune_config(parser.parse_args(["finetune", "--data", "kvasir", "--degrade-prob", "0.5"]))
    assert mixed.degrade_prob == 0.5 and mixed.paste_prob == 0.0
    assert _finetune_config(parser.parse_args(["finetune", "--data", "k", "--paste-prob", "0.5"])).paste_prob == 0.5
    counted = _finetune_config(parser.parse_args(["finetune", "--data", "k", "--val-data", "v", "--val-negatives", "n"]))
    assert counted.val_negatives == "n" and plain.val_negatives is None
    with pytest.raises(SystemExit):
        parser.parse_args(["finetune", "--data", "kvasir", "--degrade-prob", "1.5"])


def test_finetune_keeps_the_parents_task_weighting_unless_told(tmp_path):
    """A model trained with fixed task weights is fine-tuned with them (main-v11-fixedw's first
    fine-tune took the trainer's learned weights instead); the command line still decides."""
    import torch

    from napari_depthpolyp.cli import _finetune_config, build_parser
    from napari_depthpolyp.model import DepthPolyp
    from napari_depthpolyp.models import ModelCard, write_model
    from napari_depthpolyp.train.loop import finetune_config

    torch.manual_seed(0)
    card = ModelCard(name="fixed", version="0", config={"uncertainty": False, "depth": True, "lr": 4e-4})
    fixed = write_model(tmp_path / "fixed-0", DepthPolyp().state_dict(), card, export_onnx=False)
    parser = build_parser()

    def config(*extra):
        return _finetune_config(parser.parse_args(["finetune", "--data", "d", "--model", str(fixed.path), *extra]))

    assert config().uncertainty is False and config().depth is True
    assert config().lr == 5e-5  # only the task weighting is inherited, not the schedule
    assert config("--uncertainty").uncertainty is True
    assert config("--no-uncertainty").uncertainty is False
    # the widget's path: the same rule through finetune_config
    assert finetune_config(["d"], str(fixed.path), parent_config=fixed.card.config).uncertainty is False
    assert finetune_config(["d"], str(fixed.path), parent_config=fixed.card.config, uncertainty=True).uncertainty
    assert finetune_config(["d"], str(fixed.path)).uncertainty is True  # nothing recorded: the default
    # the bundled model (the default parent) is fine-tuned as it was trained
    from napari_depthpolyp.models import resolve_model

    bundled = resolve_model().card.config.get("uncertainty", True)
    assert _finetune_config(parser.parse_args(["finetune", "--data", "d"])).uncertainty is bundled


def test_predict_reports_progress_from_zero_for_each_input(format_model, tmp_path):
    """Each input's bar starts when the input starts (a rate measured from its first batch's end
    printed hundreds of thousands of frames/s) and ends at its total."""
    from napari_depthpolyp.engine import Predictor
    from napari_depthpolyp.predict import predict_inputs

    samples = sample_paths()
    calls = []
    predict_inputs([samples["frames"], samples["clip"]], tmp_path / "out", Predictor(format_model, batch_size=4),
                   progress=lambda name, done, total: calls.append((name, done, total)))
    for source, total in ((samples["frames"], 6), (samples["clip"], 48)):
        mine = [(done, t) for name, done, t in calls if name == str(source)]
        assert mine[0] == (0, total) and mine[-1] == (total, total), mine
        assert [d for d, _ in mine] == sorted(d for d, _ in mine)


def test_user_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    """An unknown depth teacher, an output path that is a file, an impossible threshold: one line
    naming what is wrong, exit code 2, no traceback."""
    from napari_depthpolyp.cli import main

    sample = tmp_path / "f.png"
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(sample)
    data = tmp_path / "d"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(data / "images" / "a.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "masks" / "a.png")
    cases = [
        (["eval", "--data", str(data), "--teacher", "bogus"], "unknown depth teacher 'bogus'"),
        (["predict", str(sample), "--out", str(sample)], str(sample)),
        (["predict", str(sample), "--out", str(tmp_path / "o"), "--threshold", "50"], "threshold 50"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (argv, err)


def test_predict_never_writes_two_frames_to_one_file(format_model, tmp_path):
    """Two folders called ``frames``, ``x.png`` beside ``x.jpg``, two single images of one name:
    every frame gets its own files. A folder with no images is an error, not an empty success."""
    from PIL import Image

    from napari_depthpolyp.engine import Predictor
    from napari_depthpolyp.predict import predict_inputs

    rng = np.random.default_rng(0)
    pic = lambda: (rng.random((40, 48, 3)) * 255).astype(np.uint8)  # noqa: E731
    for sub in ("a", "b"):
        (tmp_path / sub / "frames").mkdir(parents=True)
        Image.fromarray(pic()).save(tmp_path / sub / "frames" / "x.png")
        Image.fromarray(pic()).save(tmp_path / sub / "frames" / "x.jpg")
        Image.fromarray(pic()).save(tmp_path / sub / "one.png")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    inputs = [tmp_path / "a" / "frames", tmp_path / "b" / "frames", tmp_path / "a" / "one.png",
              tmp_path / "b" / "one.png", tmp_path / "empty"]
    out = tmp_path / "out"
    summary = predict_inputs(inputs, out, Predictor(format_model))
    files = [f["mask"] for e in summary["inputs"] for f in e["frames"]]
    assert len(files) == 6 and len(set(files)) == 6, files
    assert all((out / f).is_file() for f in files)
    assert "masks/frames-2/x-2.png" in files and "masks/one-2.png" in files
    empty = summary["inputs"][-1]
    assert empty["status"] == "error" and "no images in this folder" in empty["error"]
    assert "empty/images" in empty["error"]


def test_predict_into_an_earlier_output_adds_to_it_and_never_writes_over_it(format_model, tmp_path, capsys):
    frames = sample_paths()["frames"]
    a, b = tmp_path / "a" / "frames", tmp_path / "b" / "frames"  # two inputs with the same name
    for folder, files in ((a, sorted(frames.glob("*.jpg"))[:2]), (b, sorted(frames.glob("*.jpg"))[2:3])):
        folder.mkdir(parents=True)
        for f in files:
            (folder / f.name).write_bytes(f.read_bytes())
    out, model = tmp_path / "out", ["--model", str(format_model.path)]
    assert main(["predict", str(a), "--out", str(out), *model]) == 0
    first = json.loads((out / "summary.json").read_text())["inputs"][0]
    a_mask = (out / first["frames"][0]["mask"]).read_bytes()
    # a second run, into the same folder, of another input called "frames" that fails in part
    (b / "bad.png").write_text("not an image")
    assert main(["predict", str(b), "--out", str(out), *model]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err  # the file that failed is named, not only counted
    summary = json.loads((out / "summary.json").read_text())
    kept, new = summary["inputs"]
    assert kept["input"] == str(a) and kept["model"]["sha256"] == format_model.sha256() and kept["created"]
    assert (out / kept["frames"][0]["mask"]).read_bytes() == a_mask  # a's masks stay, and stay listed
    assert new["input"] == str(b) and new["frames"][0]["mask"].startswith("masks/frames-2/")
    assert main(["predict", str(a), "--out", str(out), *model]) == 0  # run again: replaces its own entry
    assert [e["input"] for e in json.loads((out / "summary.json").read_text())["inputs"]] == [str(b), str(a)]
    b_masks = {p.name: p.read_bytes() for p in (out / "masks" / "frames-2").iterdir()}
    (out / "summary.json").write_text("{broken")
    assert main(["predict", str(a), "--out", str(out), *model]) == 0
    assert len(list(out.glob("summary-unreadable-*.json"))) == 1  # an unreadable summary is kept aside
    # and with nothing to say which files are whose, none on disk is written over
    assert json.loads((out / "summary.json").read_text())["inputs"][0]["frames"][0]["mask"].startswith("masks/frames-3/")
    assert {p.name: p.read_bytes() for p in (out / "masks" / "frames-2").iterdir()} == b_masks


def test_predict_tells_inputs_apart_by_their_full_path(format_model, tmp_path, monkeypatch):
    """The same relative name run from two folders is two inputs: the second run never replaces
    the first one's masks as if it were a rerun."""
    frames = sorted(sample_paths()["frames"].glob("*.jpg"))
    for sub, f in (("A", frames[0]), ("B", frames[1])):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.jpg").write_bytes(f.read_bytes())
    out, model = tmp_path / "out", ["--model", str(format_model.path)]
    monkeypatch.chdir(tmp_path / "A")
    assert main(["predict", "x.jpg", "--out", str(out), *model]) == 0
    first = (out / "masks" / "x.png").read_bytes()
    monkeypatch.chdir(tmp_path / "B")
    assert main(["predict", "x.jpg", "--out", str(out), *model]) == 0
    entries = json.loads((out / "summary.json").read_text())["inputs"]
    assert [e["input_path"] for e in entries] == [str(tmp_path / "A" / "x.jpg"), str(tmp_path / "B" / "x.jpg")]
    assert (out / "masks" / "x.png").read_bytes() == first and entries[1]["frames"][0]["mask"] == "masks/x-2.png"


def test_predict_refuses_a_file_as_its_output_folder(format_model, tmp_path, capsys):
    taken = tmp_path / "out.txt"
    taken.write_text("a user's file")
    frame = sorted(sample_paths()["frames"].glob("*.jpg"))[0]
    assert main(["predict", str(frame), "--out", str(taken), "--model", str(format_model.path)]) == 2
    assert f"--out {taken} is a file" in capsys.readouterr().err and taken.read_text() == "a user's file"


def test_demo_scores_the_bundled_samples_even_in_an_earlier_output(tmp_path, capsys):
    """The README's main command: the bundled model on the bundled frames and clip, Dice against
    their ground truth; an output folder holding another run's results is scored on this run's."""
    from napari_depthpolyp.demo import run_demo

    out = tmp_path / "demo"
    one = sorted(sample_paths()["frames"].glob("*.jpg"))[0]
    assert main(["predict", str(one), "--out", str(out)]) == 0  # another run's entry, first in summary.json
    result = run_demo(out)
    assert (result["n_frames"], result["n_clip"]) == (6, 48)
    assert result["dice_frames"] > 0.8 and result["dice_clip"] > 0.8, result
    assert main(["demo", "--out", str(out)]) == 0
    assert "mean Dice vs ground truth" in capsys.readouterr().out
