"""RWAVS reader on a hand-made scene whose every clip is known exactly."""

import json

import numpy as np
import pytest
import soundfile as sf

from audiogs_jax.data import SceneData, rwavs
from audiogs_jax.data.synth import head_pose

SR = 100          # tiny rate: clips are 100 samples, every index is hand-checkable
T = 420           # 4.2 s of audio


def _pose(i):
    p = head_pose([0.1 * i, -0.2, 0.3], 0.4 * i)
    return p


def write_scene(root, *, train_times=(0, 1, 3, 4, 5), val_times=(2,), nested_val=True):
    scene = root / "3"
    scene.mkdir(parents=True)
    n = np.arange(T, dtype=np.float64)
    binaural = np.stack([1 + n / T, -(1 + n / T) * 0.5], axis=1)
    source = 0.25 * np.sin(n)
    sf.write(scene / "binaural_syn_re.wav", binaural, SR, subtype="DOUBLE")
    sf.write(scene / "source_syn_re.wav", source, SR, subtype="DOUBLE")
    for split, times in (("train", train_times), ("val", val_times)):
        cams = []
        for t in times:
            p = _pose(t)
            c2w = p.tolist() if (split == "val" and nested_val) else p.reshape(-1).tolist()
            cams.append({"file_path": f"frames/{t:05d}.png", "camera_to_world": c2w})
        (scene / f"transforms_scale_{split}.json").write_text(json.dumps({"camera_path": cams}))
    (root / "position.json").write_text(json.dumps({"3": {"source_position": [0.5, 0.1, -0.2]},
                                                    "4": {"source_position": [0, 0, 0]}}))
    return binaural.T.astype(np.float32), source.astype(np.float32)


@pytest.fixture(scope="module")
def data_hand_scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("rwavs")
    binaural, source = write_scene(root)
    return root, binaural, source


def _expected(track, start, end):
    out = np.zeros(track.shape[:-1] + (SR,), np.float32)
    out[..., :end - start] = track[..., start:end]
    return out


def test_centered_clips(data_hand_scene):
    root, b, s = data_hand_scene
    d = rwavs.load(root, "3", "train", sample_rate=SR, normalize=False)
    # t=0: [0, 50) padded; t=1: [50, 150); t=3: [250, 350); t=4: [350, 420) padded;
    # t=5: [450, 420) -> skipped.
    assert d.times.tolist() == [0, 1, 3, 4]
    assert d.clip_ids == ["00000.png", "00001.png", "00003.png", "00004.png"]
    for k, (lo, hi) in enumerate([(0, 50), (50, 150), (250, 350), (350, 420)]):
        np.testing.assert_array_equal(d.binaural[k], _expected(b, lo, hi))
        np.testing.assert_array_equal(d.source[k], _expected(s, lo, hi))
    assert np.all(d.binaural[0, :, 50:] == 0) and np.all(d.binaural[3, :, 70:] == 0)
    np.testing.assert_allclose(d.poses, np.stack([_pose(t) for t in (0, 1, 3, 4)]), atol=1e-6)
    np.testing.assert_allclose(d.source_position, [0.5, 0.1, -0.2])
    assert d.norm_factor == 1.0 and d.sample_rate == SR and len(d) == 4
    assert d.meta["scene"] == "3" and d.meta["num_skipped_frames"] == 1


def test_preceding_clips(data_hand_scene):
    root, b, s = data_hand_scene
    d = rwavs.load(root, 3, "train", clip="preceding", sample_rate=SR, normalize=False)
    # t=0: empty -> skipped; t=1: [0, 100); t=3: [200, 300); t=4: [300, 400);
    # t=5: [400, 420) padded.
    assert d.times.tolist() == [1, 3, 4, 5]
    for k, (lo, hi) in enumerate([(0, 100), (200, 300), (300, 400), (400, 420)]):
        np.testing.assert_array_equal(d.binaural[k], _expected(b, lo, hi))
        np.testing.assert_array_equal(d.source[k], _expected(s, lo, hi))
    assert sum(rwavs.clip_range(t, T, SR, "preceding") is not None
               for t in [0, 1, 3, 4, 5]) == len(d)


def test_normalisation_over_both_splits(data_hand_scene):
    root, b, s = data_hand_scene
    train = rwavs.load(root, "3", "train", sample_rate=SR)
    val = rwavs.load(root, "3", "val", sample_rate=SR)         # nested 4x4 poses
    clips = [_expected(b, lo, hi) for lo, hi in [(0, 50), (50, 150), (250, 350), (350, 420),
                                                 (150, 250)]]
    expected = max(np.sqrt(np.mean(c.astype(np.float64) ** 2)) for c in clips)
    assert train.norm_factor == pytest.approx(expected, rel=1e-6)
    assert val.norm_factor == train.norm_factor
    # Val's single clip [150, 250) is not the loudest: the factor came from train's clips.
    val_rms = np.sqrt(np.mean(clips[-1].astype(np.float64) ** 2))
    assert val_rms < expected
    np.testing.assert_allclose(val.binaural[0] * val.norm_factor, clips[-1], rtol=1e-6)
    np.testing.assert_allclose(val.source[0] * val.norm_factor, _expected(s, 150, 250),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(val.poses[0], _pose(2), atol=1e-6)


def test_scene_given_as_path(data_hand_scene):
    root, _, _ = data_hand_scene
    a = rwavs.load(None, root / "3", "val", sample_rate=SR)
    b = rwavs.load(root, str(root / "3"), "val", sample_rate=SR)
    assert a.clip_ids == b.clip_ids == ["00002.png"]
    np.testing.assert_allclose(a.source_position, [0.5, 0.1, -0.2])


def test_bad_arguments(data_hand_scene):
    root, _, _ = data_hand_scene
    with pytest.raises(ValueError, match="split"):
        rwavs.load(root, "3", "test", sample_rate=SR)
    with pytest.raises(ValueError, match="clip"):
        rwavs.load(root, "3", "train", clip="middle", sample_rate=SR)
    with pytest.raises(rwavs.DataError, match="missing scene folder"):
        rwavs.load(root, "9", "train", sample_rate=SR)


def test_scene_without_source_position(tmp_path):
    write_scene(tmp_path)
    (tmp_path / "position.json").unlink()
    d = rwavs.load(tmp_path, "3", "train", sample_rate=SR)
    assert d.source_position is None


def test_scenedata_validation():
    ok = dict(binaural=np.zeros((2, 2, 8)), source=np.zeros((2, 8)),
              poses=np.tile(np.eye(4), (2, 1, 1)), times=np.zeros(2), sample_rate=8,
              clip_ids=["a", "b"])
    d = SceneData(**ok)
    assert len(d) == 2 and d.binaural.dtype == np.float32 and d.meta == {}
    for key, bad, msg in [("binaural", np.zeros((2, 1, 8)), "binaural"),
                          ("source", np.zeros((2, 7)), "source"),
                          ("poses", np.zeros((2, 3, 4)), "poses"),
                          ("times", np.zeros(3), "times"),
                          ("clip_ids", ["a"], "clip_ids"),
                          ("sample_rate", 0, "sample_rate"),
                          ("source_position", np.zeros(2), "source_position")]:
        with pytest.raises(ValueError, match=msg):
            SceneData(**{**ok, key: bad})
    with pytest.raises(ValueError, match="norm_factor"):
        SceneData(**ok, norm_factor=0.0)
