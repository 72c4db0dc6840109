"""Every kind of bad input gives a DataError that names the file and the problem."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiogs_jax.data import DataError, fixtures, replay_nvas, rwavs
from audiogs_jax.data.trajectory import head_pose

SR = 1000
SECONDS = 4


def make_scene(root, *, sr=SR, seconds=SECONDS, frames=(1, 2, 3)):
    """A valid RWAVS scene '1' with float WAVs; returns the scene folder."""
    scene = root / "1"
    scene.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = sr * seconds
    t = np.arange(n) / sr
    binaural = np.stack([np.sin(2 * np.pi * 50 * t), 0.5 * np.sin(2 * np.pi * 50 * t)], 1)
    sf.write(scene / "binaural_syn_re.wav", binaural, sr, subtype="FLOAT")
    sf.write(scene / "source_syn_re.wav", rng.uniform(-0.5, 0.5, n), sr, subtype="FLOAT")
    for split, times in (("train", frames), ("val", (4,))):
        cams = [{"file_path": f"frames/{k:05d}.png",
                 "camera_to_world": head_pose([0.1 * k, 0, 0], 0.3 * k).reshape(-1).tolist()}
                for k in times]
        (scene / f"transforms_scale_{split}.json").write_text(json.dumps({"camera_path": cams}))
    return scene


@pytest.fixture
def data_scene(tmp_path):
    return make_scene(tmp_path)


def load(scene, **kw):
    return rwavs.load(scene.parent, "1", "train", sample_rate=kw.pop("sample_rate", SR), **kw)


def raises(scene, fragment, name, **kw):
    with pytest.raises(DataError) as e:
        load(scene, **kw)
    msg = str(e.value)
    assert name in msg, msg
    assert fragment in msg, msg
    return msg


def test_valid_scene_loads(data_scene):
    d = load(data_scene)
    assert d.binaural.shape == (3, 2, SR)


def test_missing_file(data_scene):
    (data_scene / "source_syn_re.wav").unlink()
    raises(data_scene, "missing file", "source_syn_re.wav")


def test_missing_camera_path_key(data_scene):
    (data_scene / "transforms_scale_train.json").write_text(json.dumps({"frames": []}))
    raises(data_scene, "camera_path", "transforms_scale_train.json")


def test_missing_camera_to_world_key(data_scene):
    path = data_scene / "transforms_scale_val.json"
    data = json.loads(path.read_text())
    del data["camera_path"][0]["camera_to_world"]
    path.write_text(json.dumps(data))
    msg = raises(data_scene, "camera_to_world", "transforms_scale_val.json")
    assert "camera_path[0]" in msg


def test_malformed_json(data_scene):
    (data_scene / "transforms_scale_train.json").write_text('{"camera_path": [\n  {"file_path": ,\n')
    msg = raises(data_scene, "malformed JSON", "transforms_scale_train.json")
    assert "line 2" in msg


def test_wrong_channel_count(data_scene):
    sf.write(data_scene / "binaural_syn_re.wav", np.ones(SR * SECONDS) * 0.1, SR)
    msg = raises(data_scene, "channel", "binaural_syn_re.wav")
    assert "expected 2" in msg and "found 1" in msg


def test_nan_samples(data_scene):
    x = np.full((SR * SECONDS, 2), 0.1)
    x[123, 1] = np.nan
    sf.write(data_scene / "binaural_syn_re.wav", x, SR, subtype="FLOAT")
    raises(data_scene, "NaN/Inf", "binaural_syn_re.wav")


def test_inf_samples(data_scene):
    x = np.full(SR * SECONDS, 0.1)
    x[5] = np.inf
    sf.write(data_scene / "source_syn_re.wav", x, SR, subtype="FLOAT")
    raises(data_scene, "NaN/Inf", "source_syn_re.wav")


def test_silent_track(data_scene):
    sf.write(data_scene / "source_syn_re.wav", np.zeros(SR * SECONDS), SR, subtype="FLOAT")
    raises(data_scene, "silent", "source_syn_re.wav")
    x = np.stack([np.full(SR * SECONDS, 0.1), np.zeros(SR * SECONDS)], 1)   # dead right ear
    sf.write(data_scene / "binaural_syn_re.wav", x, SR, subtype="FLOAT")
    raises(data_scene, "silent", "binaural_syn_re.wav")


@pytest.mark.parametrize("corrupt", ["scale", "reflect", "last_row"])
def test_non_rigid_pose(data_scene, corrupt):
    path = data_scene / "transforms_scale_train.json"
    data = json.loads(path.read_text())
    m = np.array(data["camera_path"][1]["camera_to_world"]).reshape(4, 4)
    if corrupt == "scale":
        m[:3, :3] *= 1.5
    elif corrupt == "reflect":
        m[:3, 0] *= -1
    else:
        m[3] = [0, 0, 1, 1]
    data["camera_path"][1]["camera_to_world"] = m.reshape(-1).tolist()
    path.write_text(json.dumps(data))
    msg = raises(data_scene, "not a rigid transform", "transforms_scale_train.json")
    assert "camera_path[1]" in msg


def test_audio_shorter_than_poses(tmp_path):
    scene = make_scene(tmp_path, frames=(1, 2, 9))      # 4 s of audio, a frame at t = 9 s
    msg = raises(scene, "too short", "binaural_syn_re.wav")
    assert "transforms_scale_train.json" in msg


def test_unsynchronised_tracks(data_scene):
    sf.write(data_scene / "source_syn_re.wav", np.full(SR * 2, 0.1), SR, subtype="FLOAT")
    raises(data_scene, "synchronised", "source_syn_re.wav")


def test_sample_rate_mismatch(tmp_path):
    scene = make_scene(tmp_path, sr=2 * SR)
    msg = raises(scene, "sample rate", "binaural_syn_re.wav", resample=False)
    assert "2000" in msg and "1000" in msg
    d = load(scene, resample=True)
    assert d.binaural.shape == (3, 2, SR)
    # The 50 Hz sine survives resampling: 50 cycles per 1 s clip, amplitude 1.
    spec = np.abs(np.fft.rfft(d.binaural[1, 0] * d.norm_factor))
    assert int(np.argmax(spec)) == 50
    assert np.max(np.abs(d.binaural[1, 0] * d.norm_factor)) == pytest.approx(1.0, abs=0.02)


def test_bad_frame_name(data_scene):
    path = data_scene / "transforms_scale_train.json"
    data = json.loads(path.read_text())
    data["camera_path"][0]["file_path"] = "frames/first.png"
    path.write_text(json.dumps(data))
    raises(data_scene, "frame number", "transforms_scale_train.json")


# ----------------------------------------------------------------------------- Replay-NVAS

@pytest.fixture(scope="module")
def data_replay_pristine(tmp_path_factory):
    return fixtures.write_replay_fixture(tmp_path_factory.mktemp("replay"), num_clips=1)


@pytest.fixture
def data_replay(data_replay_pristine, tmp_path):
    """A fresh copy of a valid one-clip Replay-NVAS fixture, to corrupt."""
    return shutil.copytree(data_replay_pristine, tmp_path / "replay")


def test_replay_missing_camera_wav(data_replay):
    (data_replay / "SC-1025" / "0000" / "3.wav").unlink()
    with pytest.raises(DataError, match=r"3\.wav: missing file"):
        replay_nvas.load(data_replay, "train")


def test_replay_wrong_channels(data_replay):
    near = data_replay / "SC-1025" / "0000" / "near.wav"
    x, sr = sf.read(near)
    sf.write(near, np.stack([x, x], 1), sr)
    with pytest.raises(DataError, match=r"near\.wav: expected 1 channel"):
        replay_nvas.load(data_replay, "train")


def test_replay_non_rigid_camera(data_replay):
    path = data_replay / "cam_imags" / "gs_cameras.json"
    cams = json.loads(path.read_text())
    cams[2]["rotation"] = (2 * np.array(cams[2]["rotation"])).tolist()
    path.write_text(json.dumps(cams))
    with pytest.raises(DataError, match=r"gs_cameras\.json.*not a rigid transform"):
        replay_nvas.load(data_replay, "train")


def test_replay_malformed_metadata(data_replay):
    (data_replay / "v3" / "metadata_v2.json").write_text("{\n\n  'single quotes': 1}")
    with pytest.raises(DataError, match=r"metadata_v2\.json: malformed JSON at line 3"):
        replay_nvas.load(data_replay, "train")


def test_replay_missing_key(data_replay):
    path = data_replay / "cam_imags" / "gs_cameras.json"
    cams = json.loads(path.read_text())
    del cams[0]["position"]
    path.write_text(json.dumps(cams))
    with pytest.raises(DataError, match=r"gs_cameras\.json: missing key 'position'"):
        replay_nvas.load(data_replay, "train")


def test_replay_short_audio(data_replay):
    cam = data_replay / "SC-1025" / "0000" / "5.wav"
    x, sr = sf.read(cam)
    sf.write(cam, x[: sr // 2], sr)
    with pytest.raises(DataError, match=r"5\.wav: audio too short"):
        replay_nvas.load(data_replay, "train")


def test_replay_sample_rate(data_replay):
    with pytest.raises(DataError, match=r"near\.wav: sample rate is 16000 Hz, expected 8000"):
        replay_nvas.load(data_replay, "train", sample_rate=8000, resample=False)
    d = replay_nvas.load(data_replay, "train", sample_rate=8000)
    assert d.binaural.shape == (8, 2, 16000) and d.sample_rate == 8000


def test_subnormal_samples(data_scene):
    """Many subnormal samples: refused as not audio; a few (a float fade-out's
    tail) are set to zero and the scene loads."""
    n = SR * SECONDS
    x = np.random.default_rng(1).uniform(-0.5, 0.5, n).astype(np.float32)
    few = x.copy()
    few[-5:] = 1e-41
    sf.write(data_scene / "source_syn_re.wav", few, SR, subtype="FLOAT")
    from audiogs_jax.data.scene import read_wav
    y = read_wav(data_scene / "source_syn_re.wav", channels=1, sample_rate=None)[0]
    assert np.all(y[-5:] == 0) and np.array_equal(y[:-5], x[:-5])
    assert len(load(data_scene)) == 3
    many = x.copy()
    many[: n // 10] = 1e-41
    sf.write(data_scene / "source_syn_re.wav", many, SR, subtype="FLOAT")
    raises(data_scene, "subnormal", "source_syn_re.wav")
