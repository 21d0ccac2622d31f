"""The headless review state: statuses, thresholds, ranking, navigation, autosave/resume, export."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from napari_depthpolyp.dataset import Dataset, DatasetError
from napari_depthpolyp.io.images import read_mask
from napari_depthpolyp.review import (
    Prediction,
    ReviewError,
    ReviewSession,
    choose_map_dtype,
    decode_map,
    encode_map,
    export_frames,
    find_sidecar,
    iter_predictions,
    sidecar_for,
    thumbnail,
)

H, W = 40, 50


def blob(cy, cx, r=10, soft=0.9, shape=(H, W)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = np.hypot(yy - cy, xx - cx)
    return np.clip(soft * (1.0 - d / (2 * r)) + 0.05, 0, 1).astype(np.float32)


def pred(i, prob, dtype=np.float32):
    return Prediction(i, encode_map(prob, dtype), encode_map(prob * 0.5, dtype), thumbnail(prob))


def make_session(tmp_path, n=6, **kw):
    s = ReviewSession(n, (H, W), source=tmp_path / "clip.mp4", threshold=0.5, **kw)
    s.add_predictions([pred(i, blob(20, 10 + 5 * i)) for i in range(n)], model=s.add_model({"model": "m", "version": "1", "sha256": "ab"}))
    return s


def test_predictions_fill_unreviewed_masks_and_rethreshold_spares_reviewed(tmp_path):
    s = make_session(tmp_path)
    assert s.counts() == {"unreviewed": 6, "accepted": 0, "corrected": 0, "empty": 0}
    np.testing.assert_array_equal(s.masks[2], blob(20, 20) >= 0.5)
    s.masks[1, :5, :5] = 1  # a user's stroke
    s.mark_corrected(1)
    s.accept(2)
    s.mark_empty(3)
    corrected, accepted = s.masks[1].copy(), s.masks[2].copy()
    changed = s.set_threshold(0.2)
    assert sorted(changed) == [0, 4, 5]
    np.testing.assert_array_equal(s.masks[1], corrected)
    np.testing.assert_array_equal(s.masks[2], accepted)
    assert not s.masks[3].any()
    np.testing.assert_array_equal(s.masks[0], blob(20, 10) >= 0.2)
    # a new prediction never overwrites a reviewed frame either
    s.add_predictions([pred(1, np.zeros((H, W), np.float32))])
    np.testing.assert_array_equal(s.masks[1], corrected)
    assert s.status_of(1) == "corrected"
    s.accept(1)
    assert s.status_of(1) == "corrected"  # accepting a corrected frame keeps "corrected"
    s.reset(1)
    assert s.status_of(1) == "unreviewed" and not s.masks[1].any()  # proposal of the all-zero prediction


def test_quantised_maps_threshold_within_one_step():
    assert choose_map_dtype(10, (100, 100)) == np.float32
    assert choose_map_dtype(300, (576, 720), budget_mb=512) == np.uint8
    p = np.linspace(0, 1, 1001, dtype=np.float32)
    q = decode_map(encode_map(p, np.uint8))
    assert q.dtype == np.float32 and np.abs(q - p).max() <= 0.5 / 255 + 1e-7
    s = ReviewSession(1, (1, 1001), map_dtype=np.uint8, threshold=0.5)
    s.add_predictions([Prediction(0, encode_map(p[None], np.uint8), encode_map(p[None], np.uint8), thumbnail(p[None]))])
    assert s.probability.dtype == np.uint8
    disagree = s.masks[0, 0].astype(bool) != (p >= 0.5)
    assert np.all(np.abs(p[disagree] - 0.5) <= 0.5 / 255 + 1e-7)
    # the table lookup gives exactly what decoding then thresholding gives, at any threshold
    from napari_depthpolyp.engine import apply_threshold
    from napari_depthpolyp.review import threshold_map

    stored = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for t in (0.0, 0.3, 0.5, 128 / 255, 0.999, 1.0):
        np.testing.assert_array_equal(threshold_map(stored, t), apply_threshold(decode_map(stored), t))
    np.testing.assert_array_equal(threshold_map(p, 0.3), p >= 0.3)
    # with a smallest region kept, the table lookup still equals the rule on the decoded map
    specks = np.zeros((16, 16), np.uint8)
    specks[2:8, 2:8], specks[12, 12] = 200, 220
    for t in (0.3, 0.8):
        np.testing.assert_array_equal(threshold_map(specks, t, 0.01), apply_threshold(decode_map(specks), t, 0.01))
    assert not threshold_map(specks, 0.3, 0.01)[12, 12] and threshold_map(specks, 0.3, 0.01)[4, 4]


def test_ranking_combines_entropy_boundary_and_neighbours():
    s = ReviewSession(5, (H, W), threshold=0.5)
    sure = (blob(20, 25, soft=2.0) > 0.5).astype(np.float32) * 0.98 + 0.01
    s.add_predictions([pred(i, sure) for i in (0, 1, 3, 4)])
    s.add_predictions([pred(2, np.full((H, W), 0.5, np.float32))])  # maximally unsure, and unlike its neighbours
    rank = s.ranking()
    assert rank[0]["index"] == 2 and rank[0]["temporal"] > 0.3
    assert rank[0]["score"] > rank[-1]["score"]
    assert {r["index"] for r in rank} == set(range(5))
    assert s.next_most_uncertain() == 2
    s.accept(2)
    assert 2 not in [r["index"] for r in s.ranking(unreviewed_only=True)]
    no_time = ReviewSession(5, (H, W), threshold=0.5, temporal=False)
    no_time.add_predictions([pred(i, sure) for i in range(5)])
    assert all(r["temporal"] is None for r in no_time.ranking())


def test_navigation_wraps_and_skips_reviewed():
    s = ReviewSession(6, (H, W))
    for i in (1, 2, 4):
        s.accept(i)
    assert s.next_unreviewed(0) == 3
    assert s.next_unreviewed(5) == 0
    assert s.prev_unreviewed(3) == 0
    assert s.prev_unreviewed(0) == 5
    for i in (0, 3, 5):
        s.mark_empty(i)
    assert s.next_unreviewed(0) is None and s.next_most_uncertain(0) is None


def test_next_most_uncertain_steps_through_the_ranking(tmp_path):
    s = make_session(tmp_path)
    order = [r["index"] for r in s.ranking(unreviewed_only=True)]
    seen = [s.next_most_uncertain(None)]
    for _ in range(len(order) - 1):
        seen.append(s.next_most_uncertain(seen[-1]))
    assert seen == order


def test_autosave_resume_round_trip(tmp_path):
    s = make_session(tmp_path)
    assert s.folder == tmp_path / "clip.mp4.depthpolyp" == sidecar_for(tmp_path / "clip.mp4")
    assert not s.save() and not s.folder.exists()  # nothing reviewed: nothing written
    s.masks[1, 0:8, 0:8] = 1
    s.mark_corrected(1)
    s.accept(4)
    s.mark_empty(5)
    assert s.save()
    assert find_sidecar(tmp_path / "clip.mp4") == s.folder
    assert sorted(p.name for p in (s.folder / "masks").iterdir()) == ["000001.png", "000004.png"]
    assert not any(p.name.startswith(".") for p in s.folder.rglob("*"))  # no temporary files left
    data = json.loads((s.folder / "session.json").read_text())
    digest = data["frames"]["1"].pop("mask_digest")
    assert len(digest) == 32
    assert data["frames"]["1"] == {"status": "corrected", "name": "clip_000001", "mask": "masks/000001.png", "model": 0,
                                   "threshold": 0.5, "min_region": 0.0}  # the cut of the proposal judged
    assert data["frames"]["5"] == {"status": "empty", "name": "clip_000005", "model": 0, "threshold": 0.5, "min_region": 0.0}
    assert data["models"] == [{"model": "m", "version": "1", "sha256": "ab"}]
    assert not s.save()  # unchanged: nothing rewritten
    s.masks[1, 30:, 30:] = 1  # an edit without an event (napari's undo/redo): found by the hash
    assert not s.save(rehash=False)  # what the viewer does when its history shows no undo or redo
    assert s.save()
    # an accepted frame reset, re-thresholded and accepted again before an autosave: its new mask is written
    s.reset(4)
    s.set_threshold(0.9)
    s.accept(4)
    assert s.save(rehash=False)
    np.testing.assert_array_equal(read_mask(s.folder / "masks" / "000004.png") != 0, s.masks[4] != 0)
    s.set_threshold(0.5)
    assert s.save()
    blocked = tmp_path / "a file"
    blocked.write_text("x")
    with pytest.raises(OSError):  # "Save to…" a folder that cannot be made: the session stays put
        s.save(blocked / "session")
    assert s.folder == tmp_path / "clip.mp4.depthpolyp" and not s.save()

    back = ReviewSession.load(s.folder, expect=(6, (H, W)))
    assert [back.status_of(i) for i in range(6)] == [s.status_of(i) for i in range(6)]
    np.testing.assert_array_equal(back.masks[1], s.masks[1])
    np.testing.assert_array_equal(back.masks[4], s.masks[4])
    assert back.threshold == 0.5 and back.source == str(tmp_path / "clip.mp4") and back.models == s.models
    assert not back.needs_save and not back.load_warnings
    with pytest.raises(ReviewError, match="not to these"):
        ReviewSession.load(s.folder, expect=(7, (H, W)))

    back.reset(4)  # a frame leaves the saved set: its mask file goes
    assert back.save()
    assert not (s.folder / "masks" / "000004.png").exists()
    assert json.loads((s.folder / "session.json").read_text())["counts"]["accepted"] == 0


def test_load_survives_a_missing_mask_and_rejects_other_files(tmp_path):
    s = make_session(tmp_path)
    s.accept(0)
    s.accept(1)
    s.save()
    (s.folder / "masks" / "000000.png").unlink()
    back = ReviewSession.load(s.folder)
    assert back.status_of(0) == "unreviewed" and back.status_of(1) == "accepted"
    assert back.load_warnings and "frame 0" in back.load_warnings[0]
    (s.folder / "session.json").write_text('{"format": "something-else"}')
    with pytest.raises(ReviewError, match="not a depthpolyp-review"):
        ReviewSession.load(s.folder)


def test_resume_refuses_a_folder_whose_files_changed(tmp_path):
    """Same count and size, other files under the saved indices: the corrections would land on the
    wrong frames, so the session is refused (the widget moves it aside, nothing is deleted). A mask
    edited outside napari comes back as it is, with a warning."""
    names = ["a", "b", "c"]
    s = ReviewSession(3, (H, W), source=tmp_path / "frames", frame_names=names, threshold=0.5)
    s.masks[1, :5, :5] = 1
    s.mark_corrected(1)
    s.save()
    ok = ReviewSession.load(s.folder, expect=(3, (H, W)), frame_names=names)
    assert ok.status_of(1) == "corrected" and not ok.load_warnings
    with pytest.raises(ReviewError, match="frame 1 was 'b', is now 'x'"):
        ReviewSession.load(s.folder, expect=(3, (H, W)), frame_names=["a", "x", "c"])
    from napari_depthpolyp.io.writers import write_mask_png

    write_mask_png(s.folder / "masks" / "000001.png", np.ones((H, W), bool))
    edited = ReviewSession.load(s.folder, frame_names=names)
    assert edited.masks[1].all() and "changed outside napari" in edited.load_warnings[0]


def test_a_session_folder_deleted_meanwhile_is_written_whole_again(tmp_path):
    import shutil

    s = make_session(tmp_path)
    s.accept(0)
    s.accept(2)
    s.save()
    shutil.rmtree(s.folder)  # the user tidied up, or another program removed it
    s.accept(4)
    s.save(rehash=False)
    assert sorted(p.name for p in (s.folder / "masks").iterdir()) == ["000000.png", "000002.png", "000004.png"]
    assert ReviewSession.load(s.folder).reviewed == 3


def test_frames_without_a_file_are_told_apart_by_their_content(tmp_path):
    """Two unsaved layers both called "Image" (pasted, or made in the console) never share a session
    folder: their first frames' digest is part of its name, and a saved session finds its own."""
    from napari_depthpolyp.review import frame_digest, identity

    a, b = np.zeros((H, W, 3), np.uint8), np.full((H, W, 3), 9, np.uint8)
    sa = ReviewSession(2, (H, W), name="Image", content_key=frame_digest(a), threshold=0.5)
    sb = ReviewSession(2, (H, W), name="Image", content_key=frame_digest(b), threshold=0.5)
    assert sa.folder != sb.folder and frame_digest(a) != frame_digest(b) == frame_digest(b.copy())
    sa.accept(0)
    sa.save()
    assert find_sidecar(None, identity(None, "Image", frame_digest(b))) is None  # b is not offered a's review
    found = find_sidecar(None, identity(None, "Image", frame_digest(a)))
    assert found == sa.folder
    back = ReviewSession.load(found)
    assert back.content_key == sa.content_key and back.folder == sa.folder and back.status_of(0) == "accepted"
    assert ReviewSession(2, (H, W), source=tmp_path / "v.mp4", content_key="x").content_key is None  # a file names itself


def test_sidecar_falls_back_to_user_dir_without_a_writable_source(tmp_path):
    folder = sidecar_for(None, "my layer")
    assert folder.name == "my layer.depthpolyp" and "sessions" in folder.parts
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert "sessions" in sidecar_for(ro / "clip.mp4").parts
    finally:
        os.chmod(ro, 0o755)


def test_export_writes_reviewed_frames_with_provenance(tmp_path):
    s = make_session(tmp_path)
    s.masks[1, :6, :6] = 1
    s.mark_corrected(1)
    s.accept(2)
    s.mark_empty(3)
    images = np.random.default_rng(0).integers(0, 255, (6, H, W, 3), dtype=np.uint8)
    out = tmp_path / "export"
    report = export_frames(s.export_plan(), images.__getitem__, out, source_file=s.source)
    assert report["n_frames"] == 2 and report["frames"] == [1, 2]
    assert report["statuses"]["corrected"] == 1 and report["statuses"]["accepted"] == 1
    ds = Dataset.open(out)
    assert ds.names == ["clip_000001", "clip_000002"]
    image, mask, depth = ds.load(0)
    np.testing.assert_array_equal(image, images[1])
    np.testing.assert_array_equal(mask, s.masks[1] != 0)
    np.testing.assert_allclose(depth, s.depth_of(1), atol=1 / 65535)
    info = ds.frame_info("clip_000001")
    assert info["status"] == "corrected" and info["source"] == {"file": s.source, "frame_index": 1}
    assert info["proposed_by"]["model"] == "m" and info["proposed_by"]["threshold"] == 0.5
    with pytest.raises(DatasetError, match="not empty"):
        export_frames(s.export_plan(), images.__getitem__, out)
    report = export_frames(s.export_plan(("accepted", "corrected", "empty"), include_depth=False),
                           images.__getitem__, out, overwrite=True)
    assert report["n_frames"] == 3 and Dataset.open(out).samples[0].depth is None
    # an export cancelled after its first frame (the widget's Cancel closes the generator)
    from napari_depthpolyp.review import iter_export

    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    gen = iter_export(s.export_plan(), images.__getitem__, out, overwrite=True)
    assert next(gen) == (1, 2)
    gen.close()
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    with pytest.raises(ReviewError, match="nothing to export"):
        export_frames([], images.__getitem__, tmp_path / "none")


def test_frame_names():
    assert ReviewSession(3, (H, W), source="/d/clip.mp4").frame_name(2) == "clip_000002"
    assert ReviewSession(1, (H, W), source="/d/img.jpg").frame_name(0) == "img"
    assert ReviewSession(2, (H, W), frame_names=["a", "b/c"]).frame_name(1) == "b_c"
    assert ReviewSession(2, (H, W), name="my: layer").frame_name(0) == "my_ layer_000000"


class _FakePredictor:
    def iter_predict(self, data, indices=None, source="stack"):
        from napari_depthpolyp.engine import FrameResult

        order = list(range(len(data)) if indices is None else indices)
        for s in range(0, len(order), 2):
            yield [FrameResult(i, np.full(data.shape[1:3], 0.7, np.float32), np.zeros(data.shape[1:3], np.float32), 0.5)
                   for i in order[s : s + 2]]


def test_iter_predictions_yields_per_batch():
    data = np.zeros((5, H, W, 3), np.uint8)
    batches = list(iter_predictions(_FakePredictor(), data, [0, 2, 3], np.uint8))
    assert [[p.index for p in b] for b in batches] == [[0, 2], [3]]
    assert batches[0][0].probability.dtype == np.uint8 and batches[0][0].thumb.dtype == np.float32


def test_scores_precomputed_in_the_worker_equal_scores_computed_in_the_session(tmp_path):
    from napari_depthpolyp.metrics import uncertainty_score

    probs = [blob(20, 10 + 5 * i, soft=0.6 + 0.05 * i) for i in range(5)]

    def session(name, threshold, worker_threshold=None):
        s = ReviewSession(5, (H, W), source=tmp_path / f"{name}.mp4", threshold=threshold)
        if worker_threshold is None:
            s.add_predictions([pred(i, p) for i, p in enumerate(probs)])
        else:
            s.add_predictions([Prediction.scored(i, p, p * 0.5, np.float32, worker_threshold) for i, p in enumerate(probs)])
        return s

    plain = session("plain", 0.5)
    thumbs = [thumbnail(p) for p in probs]
    assert plain.scores[2] == pytest.approx(uncertainty_score(thumbs[2], 0.5, [thumbs[1], thumbs[3]]))
    assert plain.scores[0] == pytest.approx(uncertainty_score(thumbs[0], 0.5, [thumbs[1]]))
    np.testing.assert_allclose(session("worker", 0.5, 0.5).scores, plain.scores, rtol=1e-6)
    # parts made at a threshold that is not the session's are recomputed, now and after a change
    stale = session("stale", 0.3, 0.5)
    np.testing.assert_allclose(stale.scores, session("fresh", 0.3).scores, rtol=1e-6)
    stale.set_threshold(0.5)
    np.testing.assert_allclose(stale.scores, plain.scores, rtol=1e-6)


def test_reconcile_after_an_undo_in_the_viewer(tmp_path):
    """napari's undo changes a mask without an event: a frame marked empty that has polyp pixels
    again, or a reset frame that no longer shows the proposal, is corrected (and exported so)."""
    s = make_session(tmp_path)
    corrected = s.masks[1].copy()
    corrected[:5, :5] = 1
    s.masks[1] = corrected
    s.mark_corrected(1)
    s.mark_empty(1)
    s.reset(2)
    assert s.reconcile() == []
    s.masks[1] = corrected  # the undo
    s.masks[2, :3, :3] = 1 - s.masks[2, :3, :3]
    assert s.reconcile() == [1, 2]
    assert s.status_of(1) == s.status_of(2) == "corrected"
    [item] = [e for e in s.export_plan(("corrected",)) if e.index == 1]
    np.testing.assert_array_equal(item.mask, corrected != 0)


def test_a_session_saved_elsewhere_is_found_again(tmp_path):
    """"Save to…" a folder of one's choice: opening the source again offers that folder, not the
    older session beside the source."""
    s = make_session(tmp_path)
    s.accept(0)
    s.save()
    beside = s.folder
    s.accept(1)
    chosen = tmp_path / "elsewhere"
    assert s.save(chosen)
    assert find_sidecar(tmp_path / "clip.mp4") == chosen != beside
    back = ReviewSession.load(find_sidecar(tmp_path / "clip.mp4"))
    assert back.status_of(1) == "accepted"


def test_save_to_a_folder_with_other_files_goes_into_a_session_folder_in_it(tmp_path):
    """"Save to…" the folder that holds the frames and a data set's masks/: the session goes into
    clip.mp4.depthpolyp inside it, and the ground-truth masks/ there is untouched; not resuming it
    later moves only the session's own files aside, never the folder around them."""
    from napari_depthpolyp.review import move_session_aside, session_folder_in

    case = tmp_path / "case"
    (case / "masks").mkdir(parents=True)
    (case / "masks" / "000001.png").write_bytes(b"ground truth")
    s = make_session(case)
    s.accept(1)
    empty = tmp_path / "empty"
    assert session_folder_in(empty, s.source, s.name) == empty  # missing or empty: the folder itself
    folder = session_folder_in(case, s.source, s.name)
    assert folder == case / "clip.mp4.depthpolyp"
    s.save(folder, force=True)
    assert (case / "masks" / "000001.png").read_bytes() == b"ground truth"
    assert session_folder_in(folder, s.source, s.name) == folder  # this source's session: kept there
    other = tmp_path / "other.mp4"  # another source's session is never mixed in: a folder of its own
    assert session_folder_in(folder, other, "other") == folder / "other.mp4.depthpolyp"
    (folder / "other.mp4.depthpolyp").mkdir()
    (folder / "other.mp4.depthpolyp" / "notes.txt").write_text("x")
    with pytest.raises(ReviewError, match="choose an empty folder"):
        session_folder_in(folder, other, "other")
    # a session saved plainly into a folder of other things (as "Save to…" did before): not resuming
    # it moves the session's own files aside, and the folder and its other files stay
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "notes.txt").write_text("mine")
    s.save(legacy, force=True)
    aside = move_session_aside(legacy)
    assert aside.parent == legacy and (aside / "session.json").is_file() and (aside / "masks").is_dir()
    assert sorted(p.name for p in legacy.iterdir()) == sorted(["notes.txt", aside.name])
    beside = move_session_aside(folder)  # a .depthpolyp folder is renamed whole
    assert beside.name.startswith("clip.mp4.depthpolyp.old-") and not folder.exists()


def test_import_masks_from_a_folder_or_a_stack(tmp_path):
    """Start from existing masks: matched by frame name, made "corrected" (no model run overwrites
    them); a wrong size or count is refused before anything changes, naming the file."""
    from napari_depthpolyp.io.writers import write_mask_png, write_mask_stack_tiff

    names = ["a", "b", "c"]
    s = ReviewSession(3, (H, W), source=tmp_path / "frames", frame_names=names, threshold=0.5)
    folder = tmp_path / "masks"
    m = np.zeros((H, W), bool)
    m[5:15, 5:25] = True
    write_mask_png(folder / "b.png", m)
    write_mask_png(folder / "unrelated.png", ~m)
    assert s.import_masks(folder) == [1]
    assert s.status_of(1) == "corrected" and s.status_of(0) == "unreviewed"
    np.testing.assert_array_equal(s.masks[1] != 0, m)
    s.add_predictions([pred(i, blob(20, 20)) for i in range(3)])
    np.testing.assert_array_equal(s.masks[1] != 0, m)  # a model run leaves it alone
    stack = np.zeros((3, H, W), bool)
    stack[2, :4, :4] = True
    write_mask_stack_tiff(tmp_path / "all.tif", stack)
    kept = []
    assert s.import_masks(tmp_path / "all.tif", kept=kept) == [0, 2]  # frame 1 is reviewed: the user's mask stays
    assert kept == [1] and s.masks[2, :4, :4].all() and not s.masks[0].any()
    np.testing.assert_array_equal(s.masks[1] != 0, m)
    write_mask_png(folder / "c.png", np.zeros((H + 1, W), bool))
    before = s.masks.copy()
    with pytest.raises(ReviewError, match=r"c\.png: the mask of frame c is 50×41 px, the frames are 50×40"):
        s.import_masks(folder)
    np.testing.assert_array_equal(s.masks, before)
    write_mask_stack_tiff(tmp_path / "two.tif", stack[:2])
    with pytest.raises(ReviewError, match="2 masks for 3 frames"):
        s.import_masks(tmp_path / "two.tif")
    (tmp_path / "empty-folder").mkdir()
    with pytest.raises(ReviewError, match="no mask is named like these frames"):
        s.import_masks(tmp_path / "empty-folder")


def test_smallest_region_kept_shapes_the_proposals_and_is_saved(tmp_path):
    s = make_session(tmp_path, n=3)
    speck = blob(20, 10)
    speck[2, 45] = speck[3, 45] = 0.9  # a 2 px false region beside the polyp
    s.add_predictions([pred(0, speck)])
    s.accept(1)
    accepted = s.masks[1].copy()
    assert s.masks[0, 2, 45]
    assert sorted(s.set_threshold(0.5, min_region=0.01)) == [0, 2]  # 1 % of 2000 px: 20 px
    assert not s.masks[0, :5, 40:].any() and s.masks[0, 20, 10]
    np.testing.assert_array_equal(s.masks[1], accepted)  # reviewed frames keep their masks
    np.testing.assert_array_equal(s.proposal(0), s.masks[0])
    s.save()
    again = ReviewSession.load(s.folder)
    assert again.min_region == 0.01 and again.threshold == 0.5
    s.set_threshold(0.5)  # min_region unchanged when not given
    assert s.min_region == 0.01
    with pytest.raises(ValueError, match="share of the frame"):
        s.set_threshold(0.5, min_region=-0.1)
    data = json.loads((s.folder / "session.json").read_text())
    data["min_region"] = "big"
    (s.folder / "session.json").write_text(json.dumps(data))
    with pytest.raises(ReviewError, match="session.json: its threshold or smallest region"):
        ReviewSession.load(s.folder)


def test_a_session_larger_than_its_memory_budget_is_kept_on_disk(tmp_path, monkeypatch):
    import shutil

    from napari_depthpolyp.review import session_bytes

    assert session_bytes(6, (H, W), np.float32) == 6 * H * W * 9
    monkeypatch.setenv("DEPTHPOLYP_SESSION_RAM_MB", "0.01")  # 10 kB: these 6 frames need 105 kB
    s = make_session(tmp_path)
    assert s.storage.on_disk and s.storage.folder.is_dir()
    for a in (s.masks, s.probability, s.depth):
        assert isinstance(a, np.memmap)
    assert not list(s.storage.folder.iterdir())  # anonymous files: nothing to clean up after a crash
    np.testing.assert_array_equal(s.masks[2], blob(20, 20) >= 0.5)  # the same session as in memory
    s.masks[1, :5, :5] = 1
    s.mark_corrected(1)
    assert sorted(s.set_threshold(0.2)) == [0, 2, 3, 4, 5]
    assert s.save()
    back = ReviewSession.load(s.folder, expect=(6, (H, W)))
    assert isinstance(back.masks, np.memmap) and back.masks[1, :5, :5].all() and back.status_of(1) == "corrected"

    class Full:
        free = 50_000  # bytes: less than the session needs

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Full)
    with pytest.raises(ReviewError, match=r"clip\.mp4: 6 frames of 50×40 need .* GB .*shorter frame range"):
        make_session(tmp_path)
    monkeypatch.setenv("DEPTHPOLYP_SESSION_RAM_MB", "1")  # fits in memory: no disk needed
    assert not make_session(tmp_path).storage.on_disk


def test_undo_accept_takes_back_the_last_accept_still_standing(tmp_path):
    s = make_session(tmp_path)
    assert s.undo_accept() is None  # nothing accepted yet
    s.mark_empty(0)
    s.accept(0)  # an "empty" frame accepted: undo makes it "empty" again
    s.accept(1)
    s.accept(2)
    s.masks[2, :3, :3] = 1
    s.mark_corrected(2)  # painted after its accept: that accept is no longer there to take back
    s.accept(1)  # accepting an accepted frame again adds nothing to take back
    assert s.undo_accept() == 1 and s.status_of(1) == "unreviewed"
    assert s.undo_accept() == 0 and s.status_of(0) == "empty"
    assert s.undo_accept() is None and s.status_of(2) == "corrected"
    s.accept(4)
    assert s.save()
    s.undo_accept()
    assert s.save()  # the frame is unreviewed again on disk too
    assert "4" not in json.loads((s.folder / "session.json").read_text())["frames"]


def test_a_deferred_threshold_keeps_the_rules_while_frames_wait(tmp_path):
    s = make_session(tmp_path)
    s.reset(5)  # a frame a review action replaced: recomputed at once, never left waiting
    changed = s.set_threshold(0.2, defer=True)
    assert sorted(changed) == [0, 1, 2, 3, 4, 5] and s.pending == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(s.masks[5], blob(20, 35) >= 0.2)
    np.testing.assert_array_equal(s.masks[1], blob(20, 15) >= 0.5)  # still the old proposal
    assert s.reconcile() == []  # a waiting frame is not taken for an undone correction
    s.accept(1)  # reviewed while waiting: keeps what the user saw and accepted
    s.add_predictions([pred(2, blob(20, 20))])  # a new prediction: at the new threshold, no longer waiting
    assert 2 not in s.pending
    assert s.rethreshold_pending(1, first=(4,)) == [4]  # the frame on screen first
    assert s.rethreshold_pending(10) == [0, 3] and not s.pending  # frame 1 is skipped: it was accepted
    for i in (0, 2, 3, 4):
        np.testing.assert_array_equal(s.masks[i], blob(20, 10 + 5 * i) >= 0.2)
    np.testing.assert_array_equal(s.masks[1], blob(20, 15) >= 0.5)
    assert s.undo_accept() == 1  # unreviewed again: the proposal at the current threshold
    np.testing.assert_array_equal(s.masks[1], blob(20, 15) >= 0.2)


def test_an_exported_frame_names_the_model_and_cut_that_proposed_its_mask(tmp_path):
    """Round 2 runs a new model over every frame: a frame reviewed in round 1 keeps its mask, and its
    export still names the round-1 model and the threshold its proposal was cut at."""
    s = make_session(tmp_path, n=3)  # model "m" proposed every frame, at threshold 0.5
    s.accept(0)
    s.set_threshold(0.7)
    new = s.add_model({"model": "m2", "version": "ft.1", "sha256": "cd"})
    s.add_predictions([pred(i, blob(20, 10 + 5 * i)) for i in range(3)], model=new)
    s.accept(1)
    for session in (s, (s.save(force=True), ReviewSession.load(s.folder))[1]):  # and after a resume
        by = {item.index: item.proposed_by for item in session.export_plan()}
        assert (by[0]["model"], by[0]["threshold"]) == ("m", 0.5)
        assert (by[1]["model"], by[1]["threshold"]) == ("m2", 0.7)


def test_a_long_frame_name_is_cut_to_a_valid_file_name():
    from napari_depthpolyp.dataset import _check_name
    from napari_depthpolyp.review import frame_name

    long = "a" * 119 + " b"  # cut at 120 characters, it would end in a space
    name = frame_name(0, 2, frame_names=[long, "x"])
    assert len(name) <= 120 and not name.endswith((" ", "."))
    _check_name(name)


def test_holdout_keeps_neighbouring_frames_together():
    from napari_depthpolyp.review import holdout_split

    names = [f"f{i:03d}" for i in range(100)]
    split = holdout_split(names, 0.2)
    assert sorted(split["train"] + split["val"] + split["gap"]) == names
    assert not set(split["train"]) & set(split["val"])
    assert len(split["val"]) == 20  # blocks 2, 7 and 12 of 8 frames (the last block has 4)
    assert split["val"][:8] == names[16:24]  # a whole block of neighbours, none of them in train
    assert split["gap"][:2] == ["f015", "f024"]  # their next neighbours are used for neither
    for n in (2, 3, 5, 30):  # small exports: each side gets frames
        s = holdout_split(names[:n], 0.2)
        assert s["train"] and s["val"] and len(s["train"]) + len(s["val"]) + len(s["gap"]) == n
    with pytest.raises(ReviewError, match="too few"):
        holdout_split(names[:1], 0.2)


def test_holdout_keeps_each_frame_on_its_side_from_one_export_to_the_next():
    """Round 1 reviews the even frames of 40 and trains on its train side; round 2 reviews all 40:
    no frame round 1 trained on is held out in round 2 (the base would be measured on frames it
    learnt), and round 1's held-out frames stay held out."""
    from napari_depthpolyp.review import holdout_split

    names = [f"f{i:03d}" for i in range(40)]
    even = list(range(0, 40, 2))
    first = holdout_split([names[i] for i in even], 0.2, indices=even)
    second = holdout_split(names, 0.2, indices=range(40), previous=first)
    assert not set(first["train"]) & set(second["val"]) and set(first["val"]) <= set(second["val"])
    alone = holdout_split(names, 0.2, indices=range(40))  # by frame index alone, the same sides
    assert not set(first["train"]) & set(alone["val"])
    # an earlier split's choices hold even where the rule would choose otherwise
    pinned = holdout_split(names, 0.2, previous={"train": ["f016"], "val": ["f000"]})
    assert "f016" in pinned["train"] and "f000" in pinned["val"]


def test_export_with_a_holdout_writes_its_split_and_the_fine_tune_reads_it(tmp_path):
    from napari_depthpolyp.train.loop import _open_split

    s = make_session(tmp_path, n=6)
    for i in range(6):
        s.accept(i)
    images = np.zeros((6, H, W, 3), np.uint8)
    out = tmp_path / "curated"
    report = export_frames(s.export_plan(), images.__getitem__, out, holdout=0.2)
    split = json.loads((out / "split.json").read_text())
    assert report["split"] == {"train": 3, "val": 1, "gap": 2} and len(split["val"]) == 1
    assert len(_open_split(str(out), "train")) == 3 and [x.name for x in _open_split(str(out), "val")] == split["val"]
    export_frames(s.export_plan(), images.__getitem__, out, overwrite=True)  # no holdout: the old split goes
    assert not (out / "split.json").exists() and len(_open_split(str(out), "train")) == 6
