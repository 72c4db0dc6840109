"""Replay-NVAS reader on simulated fixtures in the released layout."""

import json

import numpy as np
import pytest

from audiogs_jax.data import DataError, fixtures, replay_nvas
from audiogs_jax.data.scene import check_rigid

SR = 16000
L = 2 * SR


@pytest.fixture(scope="module")
def data_replay_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    fixtures.write_replay_fixture(root, scene="SC-1025", num_clips=3, seed=0)
    fixtures.write_replay_fixture(root, scene="SC-1026", num_clips=1, seed=1)   # a val scene
    return root


def test_split_lists():
    tr, va, te = (set(replay_nvas.TRAIN_SCENES), set(replay_nvas.VAL_SCENES),
                  set(replay_nvas.TEST_SCENES))
    assert (len(tr), len(va), len(te)) == (28, 6, 7)
    assert not (tr & va or tr & te or va & te)
    assert "SC-1025" in tr and "SC-1026" in va and "SC-1027" in te


def test_loads_split_and_every(data_replay_root):
    d = replay_nvas.load(data_replay_root, "train")           # every=3: clip 0000 only
    assert d.binaural.shape == (8, 2, L) and d.source.shape == (8, L)
    assert d.sample_rate == SR and d.meta["scenes"] == ["SC-1025"]
    assert d.clip_ids == [f"SC-1025/0000/{c}" for c in range(1, 9)]
    for p in d.poses:
        check_rigid(p, "pose")
    all_clips = replay_nvas.load(data_replay_root, "train", every=1)
    assert len(all_clips) == 24
    assert sorted({c.split("/")[1] for c in all_clips.clip_ids}) == ["0000", "0001", "0002"]
    val = replay_nvas.load(data_replay_root, "val", every=1)
    assert val.meta["scenes"] == ["SC-1026"] and len(val) == 8
    assert all_clips.norm_factor != 1.0
    rms = np.sqrt(np.mean(all_clips.binaural.astype(np.float64) ** 2, axis=(1, 2)))
    assert rms.max() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(DataError, match="metadata_v2.json"):
        replay_nvas.load(data_replay_root, "test")            # no test scene in the fixture


def test_holdout_camera(data_replay_root):
    kw = dict(scenes=["SC-1025"], holdout_camera=3, every=1)
    train = replay_nvas.load(data_replay_root, "train", **kw)
    test = replay_nvas.load(data_replay_root, "test", **kw)
    assert len(train) == 7 * 3 and len(test) == 3
    cam = lambda cid: int(cid.rsplit("/", 1)[1])
    clip = lambda cid: cid.rsplit("/", 1)[0]
    assert {cam(c) for c in train.clip_ids} == {1, 2, 4, 5, 6, 7, 8}
    assert {cam(c) for c in test.clip_ids} == {3}
    assert {clip(c) for c in train.clip_ids} == {clip(c) for c in test.clip_ids}
    assert train.norm_factor == test.norm_factor
    np.testing.assert_allclose(test.poses, np.broadcast_to(test.poses[0], test.poses.shape))
    with pytest.raises(ValueError, match="scenes"):
        replay_nvas.load(data_replay_root, "train", holdout_camera=3)


def test_poses_face_the_table(data_replay_root):
    """OpenCV gs_cameras rotation (z forward) -> OpenGL pose (backward = -z)."""
    truth = json.loads((data_replay_root / "fixture_meta.json").read_text())["SC-1025"]
    cams = json.loads((data_replay_root / "cam_imags" / "gs_cameras.json").read_text())
    d = replay_nvas.load(data_replay_root, "train")
    table = np.array(truth["source_position"])
    for k, pose in enumerate(d.poses):
        entry = next(c for c in cams if c["img_name"] == f"SC-1025_{k + 1}")
        np.testing.assert_allclose(pose[:3, 3], entry["position"], atol=1e-6)
        forward_cv = np.array(entry["rotation"])[:, 2]
        np.testing.assert_allclose(-pose[:3, 2], forward_cv, atol=1e-6)
        np.testing.assert_allclose(pose[:3, 1], -np.array(entry["rotation"])[:, 1], atol=1e-6)
        to_table = table - pose[:3, 3]
        to_table[2] = 0
        to_table /= np.linalg.norm(to_table)
        assert np.dot(-pose[:3, 2], to_table) > 0.99           # looks at the speaker
        assert pose[2, 1] > 0.99                                # up is +z


def test_gcc_phat_delay_unit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000)
    for d in (37, -25, 0, 200):
        y = replay_nvas.shift(x, d) + 0.05 * rng.standard_normal(8000)
        assert replay_nvas.gcc_phat_delay(y, x, 200) == d
    # Search limited to +-max_delay.
    y = replay_nvas.shift(x, 300)
    assert abs(replay_nvas.gcc_phat_delay(y, x, 200)) <= 200


def test_gcc_phat_recovers_injected_delay(tmp_path):
    k = 23
    fixtures.write_replay_fixture(tmp_path / "a", num_clips=1, inject_delay=0)
    fixtures.write_replay_fixture(tmp_path / "b", num_clips=1, inject_delay=k)
    a = replay_nvas.load(tmp_path / "a", "train", scenes=["SC-1025"])
    b = replay_nvas.load(tmp_path / "b", "train", scenes=["SC-1025"])
    da, db = np.array(a.meta["gcc_delays"]), np.array(b.meta["gcc_delays"])
    # A later near mic means a shorter lag of the cameras behind it.
    assert np.all(np.abs((da - db) - k) <= 1)
    # The fixture geometry: cameras 1.5 m away horizontally, 0.3 m higher -> ~71 samples.
    assert np.all(np.abs(da - 1.53 / 343.0 * SR) <= 3)
    # After alignment the source lines up with the recording (peak lag 0 +- 1).
    src, tgt = b.source[0].astype(np.float64), b.binaural[0].mean(axis=0).astype(np.float64)
    assert abs(replay_nvas.gcc_phat_delay(tgt, src, 200)) <= 1


def test_parse_clip_key():
    for key in ("SC-1025/0001", "SC-1025/0001/", "/abs/ReplayNVAS/SC-1025/0001/",
                "data\\SC-1025\\0001"):
        assert replay_nvas.parse_clip_key(key) == ("SC-1025", "0001")
    with pytest.raises(ValueError):
        replay_nvas.parse_clip_key("lonely")


def test_highpass_removes_low_frequencies():
    t = np.arange(SR) / SR
    low, high = np.sin(2 * np.pi * 50 * t), np.sin(2 * np.pi * 1000 * t)
    y = replay_nvas.highpass(low + high, SR)
    mid = slice(2000, -2000)
    np.testing.assert_allclose(y[mid], high[mid], atol=0.02)
