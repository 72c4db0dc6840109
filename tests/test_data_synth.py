"""Tests of the simulated scenes: generator, physics, signals, CLI, cache."""

import hashlib
import json
import math
import pathlib

import numpy as np
import pytest
import soundfile as sf

from audiogs_jax.data import (cache, ears, fixtures, release, reverb, room, rwavs, signals,
                              synth, track, trajectory)
from audiogs_jax.data.scene import check_rigid

SR = 22050


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def data_synth_root(tmp_path_factory):
    """Two small scenes: '1' (6 frames, default fixture) and '2' (10 frames, random yaw)."""
    root = tmp_path_factory.mktemp("synth")
    fixtures.write_rwavs_fixture(root, scenes=("1",), seconds=6, seed=0)
    fixtures.write_rwavs_fixture(root, scenes=("2",), seconds=10, seed=3, yaw="random")
    return root


@pytest.fixture(scope="module")
def data_small_room():
    """Image sources of a 5 x 4 x 2.8 m room, RT60 0.3 s, source at (2.5, 3.2, 1.5)."""
    src = np.array([2.5, 3.2, 1.5])
    shoebox, _ = room.build_room((5.0, 4.0, 2.8), src, rt60=0.3, sample_rate=SR)
    return room.image_sources(shoebox, max_distance=343.0 * 0.25), src


# ----------------------------------------------------------------------------- clip counting

@pytest.mark.parametrize("clip,num_samples,times,expected", [
    # sr = 100: t=0 is a half clip (kept in centered), t=11 starts past the end.
    ("centered", 1000, range(0, 12), 11),
    ("centered", 990, [10], 0),      # [950, 990): 40 < 50 samples -> skipped
    ("centered", 1000, [10], 1),     # [950, 1000): exactly half -> kept
    ("centered", 1049, [10, 11], 1),  # t=11 starts at 1050 > 1049
    ("centered", 1100, [0, 0.4], 2),  # [0, 50) and [0, 90)
    ("preceding", 1000, range(0, 12), 10),  # t=0 is empty, t=11 is [1000, 1000)
    ("preceding", 1040, [11], 1),    # [1000, 1040) kept (zero-padded)
    ("preceding", 1040, [12], 0),
])
def test_clip_count_hand_cases(clip, num_samples, times, expected):
    kept = [t for t in times if rwavs.clip_range(t, num_samples, 100, clip) is not None]
    assert len(kept) == expected


def test_clip_range_values():
    assert rwavs.clip_range(0, 1000, 100, "centered") == (0, 50)
    assert rwavs.clip_range(3, 1000, 100, "centered") == (250, 350)
    assert rwavs.clip_range(3, 1000, 100, "preceding") == (200, 300)
    assert rwavs.clip_range(0, 1000, 100, "preceding") is None
    with pytest.raises(ValueError):
        rwavs.clip_range(1, 1000, 100, "middle")


# ----------------------------------------------------------------------------- generated scene

def test_generated_scene_layout(data_synth_root):
    scene = data_synth_root / "1"
    for name in ("binaural_syn_re.wav", "source_syn_re.wav", "transforms_scale_train.json",
                 "transforms_scale_val.json", "transforms_train.json", "transforms_val.json",
                 "scene_meta.json"):
        assert (scene / name).is_file(), name
    info_b, info_s = sf.info(str(scene / "binaural_syn_re.wav")), sf.info(str(scene / "source_syn_re.wav"))
    assert (info_b.channels, info_b.samplerate, info_b.subtype) == (2, SR, "PCM_16")
    assert (info_s.channels, info_s.samplerate) == (1, SR)
    assert info_b.frames == info_s.frames == 6 * SR + SR // 2
    pos = json.loads((data_synth_root / "position.json").read_text())
    assert set(pos) == {"1", "2"}   # merged, not overwritten
    meta = json.loads((scene / "scene_meta.json").read_text())
    for key in ("rt60_requested", "rt60_measured", "rt60_true", "room_dim", "source_position_m",
                "source_position", "metres_per_unit", "centre_m", "head_radius", "signal",
                "seed", "args", "generator_version", "binaural_peak_gain"):
        assert key in meta, key
    # Scaled coordinates: p_scaled = (p - centre) / mpu, inside [-1, 1]^3.
    mpu, centre = meta["metres_per_unit"], np.array(meta["centre_m"])
    np.testing.assert_allclose(pos["1"]["source_position"],
                               (np.array(meta["source_position_m"]) - centre) / mpu, atol=1e-9)
    for split in ("train", "val"):
        scaled = json.loads((scene / f"transforms_scale_{split}.json").read_text())["camera_path"]
        metric = json.loads((scene / f"transforms_{split}.json").read_text())["camera_path"]
        for a, b in zip(scaled, metric):
            pa = np.array(a["camera_to_world"]).reshape(4, 4)
            pb = np.array(b["camera_to_world"]).reshape(4, 4)
            np.testing.assert_allclose(pa[:3, :3], pb[:3, :3])
            np.testing.assert_allclose(pa[:3, 3], (pb[:3, 3] - centre) / mpu, atol=1e-9)
            assert np.all(np.abs(pa[:3, 3]) <= 1 + 1e-9)
            check_rigid(pa, "x")
            # Metric positions: >= 0.5 m from the walls.
            room_dim = np.array(meta["room_dim"])
            assert np.all(pb[:2, 3] >= 0.5 - 1e-9) and np.all(pb[:2, 3] <= room_dim[:2] - 0.5 + 1e-9)


@pytest.mark.parametrize("clip", ["centered", "preceding"])
def test_generated_scene_loads(data_synth_root, clip):
    train = rwavs.load(data_synth_root, "1", "train", clip=clip)
    val = rwavs.load(data_synth_root, 1, "val", clip=clip)
    # Frames 1..6, every 5th to val; audio 6.5 s long, so all clips exist.
    assert train.times.tolist() == [1, 2, 3, 4, 6]
    assert val.times.tolist() == [5]
    assert train.binaural.shape == (5, 2, SR) and train.source.shape == (5, SR)
    assert train.clip_ids == ["00001.png", "00002.png", "00003.png", "00004.png", "00006.png"]
    assert train.norm_factor == val.norm_factor != 1.0
    rms = [np.sqrt(np.mean(d.binaural.astype(np.float64) ** 2, axis=(1, 2))) for d in (train, val)]
    assert np.max(np.concatenate(rms)) == pytest.approx(1.0, rel=1e-5)
    assert train.source_position.shape == (3,)
    assert train.meta["rt60_true"] > 0 and train.meta["metres_per_unit"] > 0
    assert train.meta["scene"] == "1" and train.meta["clip"] == clip


def test_scene_ild_matches_geometry(data_synth_root):
    """End to end: poses and source position (scaled, as read back) predict which ear is louder."""
    d = rwavs.load(data_synth_root, "2", "train")
    rel = d.source_position[None] - d.poses[:, :3, 3]
    lateral = np.einsum("ni,ni->n", rel, d.poses[:, :3, 0]) / np.linalg.norm(rel, axis=1)
    energy = np.sum(d.binaural.astype(np.float64) ** 2, axis=-1)
    ild = 10 * np.log10(energy[:, 1] / energy[:, 0])   # > 0: right louder
    sel = np.abs(lateral) > 0.4
    assert sel.sum() >= 3
    assert np.mean(np.sign(ild[sel]) == np.sign(lateral[sel])) >= 0.8
    assert np.corrcoef(lateral, ild)[0, 1] > 0.5


def _digest(folder: pathlib.Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path):
    kw = dict(seconds=3, seed=7, trajectory="circle", pitch_deg=10.0, signal="music")
    fixtures.write_rwavs_fixture(tmp_path / "a", **kw)
    fixtures.write_rwavs_fixture(tmp_path / "b", **kw)
    fixtures.write_rwavs_fixture(tmp_path / "c", **{**kw, "seed": 8})
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db
    assert da["1/binaural_syn_re.wav"] != dc["1/binaural_syn_re.wav"]


# ----------------------------------------------------------------------------- physics

def _onset(x, frac=0.3):
    return int(np.argmax(np.abs(x) >= frac * np.max(np.abs(x))))


def test_left_source_ir(data_small_room):
    images, src = data_small_room
    pose = trajectory.head_pose([2.5, 1.5, 1.5], 0.0)   # faces +x: the source (+y) is on the left
    np.testing.assert_allclose(pose[:3, 0], [0, -1, 0], atol=1e-12)
    ir = ears.binaural_ir(images, pose, sample_rate=SR, ir_seconds=0.25)
    direct = slice(0, _onset(ir[1]) + 40)
    e_l, e_r = np.sum(ir[0, direct] ** 2), np.sum(ir[1, direct] ** 2)
    assert 10 * np.log10(e_l / e_r) > 3.0                 # head shadow on the direct sound
    assert np.sum(ir[0] ** 2) > np.sum(ir[1] ** 2)
    itd = _onset(ir[1]) - _onset(ir[0])
    expected = 2 * 0.0875 / room.SPEED_OF_SOUND * SR     # ~11.2 samples, source at 90 deg
    assert itd > 0 and abs(itd - expected) <= 2
    # Mirror: facing -x puts the source on the right.
    ir2 = ears.binaural_ir(images, trajectory.head_pose([2.5, 1.5, 1.5], math.pi), sample_rate=SR,
                            ir_seconds=0.25)
    assert _onset(ir2[1]) < _onset(ir2[0]) and np.sum(ir2[1] ** 2) > np.sum(ir2[0] ** 2)


def test_head_shadow_is_frequency_dependent(data_small_room):
    images, src = data_small_room
    ir = ears.binaural_ir(images, trajectory.head_pose([2.5, 1.5, 1.5], 0.0), sample_rate=SR,
                           ir_seconds=0.25)
    seg = ir[:, : _onset(ir[1]) + 24] * np.hanning(2 * (_onset(ir[1]) + 24))[_onset(ir[1]) + 24:]
    spec = np.abs(np.fft.rfft(seg, 4096, axis=1)) ** 2
    f = np.fft.rfftfreq(4096, 1 / SR)
    ild_low = 10 * np.log10(spec[0, (f > 100) & (f < 400)].sum() / spec[1, (f > 100) & (f < 400)].sum())
    ild_high = 10 * np.log10(spec[0, (f > 4000) & (f < 8000)].sum() / spec[1, (f > 4000) & (f < 8000)].sum())
    assert ild_high > ild_low + 6.0


def test_left_source_rendered_track(data_small_room):
    images, src = data_small_room
    rng = np.random.default_rng(0)
    source = rng.standard_normal(SR // 2)
    pose = trajectory.head_pose([2.5, 1.5, 1.5], 0.0)
    ir = ears.binaural_ir(images, pose, sample_rate=SR, ir_seconds=0.25)
    out = track.render_track(source, [ir, ir], [SR // 4], crossfade=200)
    assert out.shape == (2, SR // 2)
    assert np.sum(out[0] ** 2) > 1.5 * np.sum(out[1] ** 2)
    # The right ear lags the left: cross-correlation peak at a positive lag.
    lags = np.arange(-30, 31)
    xc = [np.dot(out[0, 100:-100], np.roll(out[1], -k)[100:-100]) for k in lags]
    assert 8 <= lags[int(np.argmax(xc))] <= 14


def test_render_track_matches_convolution_and_crossfades():
    rng = np.random.default_rng(1)
    src = rng.standard_normal(2000)
    ir_a, ir_b = rng.standard_normal((2, 50)), rng.standard_normal((2, 50))
    out = track.render_track(src, [ir_a, ir_b], [1000], crossfade=100)
    full_a = np.stack([np.convolve(src, ir_a[e])[:2000] for e in range(2)])
    full_b = np.stack([np.convolve(src, ir_b[e])[:2000] for e in range(2)])
    np.testing.assert_allclose(out[:, :940], full_a[:, :940], atol=1e-10)
    np.testing.assert_allclose(out[:, 1060:], full_b[:, 1060:], atol=1e-10)
    weights = np.zeros(2000)
    for lo, w in track.segment_weights([700, 1400], 2000, 64):
        weights[lo:lo + len(w)] += w
    np.testing.assert_allclose(weights, 1.0, atol=1e-12)


def test_energy_falls_with_distance(data_small_room):
    images, src = data_small_room
    irs = []
    for dist in (1.0, 2.5):   # straight ahead of the source-facing head, same orientation
        pose = trajectory.head_pose([src[0], src[1] - dist, src[2]], math.pi / 2)
        irs.append(ears.binaural_ir(images, pose, sample_rate=SR, ir_seconds=0.25))
    near, far = irs

    def direct_energy(ir):   # the direct sound: +-16 samples around its onset
        k = _onset(ir[0])
        return np.sum(ir[:, k - 16:k + 16] ** 2)

    amp_ratio = np.sqrt(direct_energy(near) / direct_energy(far))
    assert amp_ratio == pytest.approx(2.5, rel=0.1)            # 1/r direct sound
    assert np.sum(near ** 2) > np.sum(far ** 2)
    assert np.sum(near ** 2) / np.sum(far ** 2) < 2.5 ** 2     # reverb makes the fall slower


@pytest.mark.parametrize("length", [1.2, 0.3])   # the second one stops at -30 dB
def test_measure_rt60_on_exponential_decay(length):
    rng = np.random.default_rng(0)
    t = np.arange(int(length * SR)) / SR
    ir = rng.standard_normal(t.size) * 10 ** (-3 * t / 0.6)   # -60 dB at 0.6 s (energy)
    assert reverb.measure_rt60(ir, SR) == pytest.approx(0.6, rel=0.05)
    assert math.isnan(reverb.measure_rt60(ir[: int(0.05 * SR)], SR))   # only -5 dB of decay


def test_too_long_rt60_needs_ray_tracing(tmp_path):
    with pytest.raises(ValueError, match="ray_tracing"):
        synth.generate_scene(tmp_path, seconds=2, rt60=3.0, progress=False)


def test_rt60_of_generated_room(tmp_path):
    """rt60 0.5 in a 6 x 5 x 3 room: the T30 measured on a simulated IR is within 25%."""
    import pyroomacoustics as pra

    scene = synth.generate_scene(tmp_path, seconds=2, room=(6.0, 5.0, 3.0), rt60=0.5,
                                 source_pos=(2.0, 3.0, 1.5), progress=False)
    meta = json.loads((scene / "scene_meta.json").read_text())
    assert meta["rt60_measured"] == pytest.approx(0.5, rel=0.25)
    # Independently: same walls, another position, pyroomacoustics' own estimator.
    shoebox, _ = room.build_room((6.0, 5.0, 3.0), (2.0, 3.0, 1.5), rt60=0.5, sample_rate=SR)
    images = room.image_sources(shoebox, max_distance=343.0 * meta["ir_seconds"])
    images = images.with_absorption(meta["absorption"])
    ir = ears.omni_ir(images, (4.6, 1.1, 1.2), sample_rate=SR, ir_seconds=meta["ir_seconds"])
    rt = pra.experimental.measure_rt60(ir, fs=SR, decay_db=30)
    assert rt == pytest.approx(0.5, rel=0.25)


# ----------------------------------------------------------------------------- poses, trajectories

def test_head_pose_convention():
    p = trajectory.head_pose([1.0, 2.0, 1.5], math.pi / 2, pitch=0.3)
    check_rigid(p, "x")
    forward = -p[:3, 2]
    np.testing.assert_allclose(forward, [0, math.cos(0.3), math.sin(0.3)], atol=1e-12)
    np.testing.assert_allclose(p[:3, 0], [1, 0, 0], atol=1e-12)   # right
    assert p[2, 1] > 0.9                                         # up is mostly +z
    np.testing.assert_allclose(trajectory.ear_positions(p, 0.1),
                               [[0.9, 2.0, 1.5], [1.1, 2.0, 1.5]], atol=1e-12)


@pytest.mark.parametrize("kind", ["random_walk", "circle", "grid"])
def test_trajectories_keep_margins(kind):
    room_dim, src = np.array([6.0, 5.0, 3.0]), np.array([3.0, 2.5, 1.2])
    pts = trajectory.make_trajectory(kind, 40, room_dim, src, np.random.default_rng(0))
    assert pts.shape == (40, 3)
    assert np.all(pts[:, :2] >= 0.5 - 1e-9) and np.all(pts[:, :2] <= room_dim[:2] - 0.5 + 1e-9)
    assert np.all(np.hypot(*(pts[:, :2] - src[:2]).T) >= 0.5 - 1e-9)
    assert np.allclose(pts[:, 2], 1.5)
    assert len(np.unique(pts.round(6), axis=0)) > 5                 # it moves
    yaws = trajectory.make_yaws("follow", pts, np.random.default_rng(0))
    step = pts[1] - pts[0]
    if np.hypot(step[0], step[1]) > 1e-6:
        assert yaws[0] == pytest.approx(math.atan2(step[1], step[0]))


def test_split_is_val():
    assert np.flatnonzero(release.split_is_val(10, 0.2)).tolist() == [4, 9]
    assert not release.split_is_val(7, 0.0).any()


# ----------------------------------------------------------------------------- signals

@pytest.mark.parametrize("name", sorted(signals.SIGNALS))
def test_signals(name):
    x = signals.make_signal(name, 3.0, 16000, seed=1)
    y = signals.make_signal(name, 3.0, 16000, seed=1)
    z = signals.make_signal(name, 3.0, 16000, seed=2)
    assert x.dtype == np.float32 and x.shape == (48000,)
    assert np.array_equal(x, y) and not np.array_equal(x, z)
    assert np.max(np.abs(x)) <= 1.0 and np.max(np.abs(x)) > 0.5
    frames = np.sqrt(np.mean(x.reshape(-1, 800).astype(np.float64) ** 2, axis=1))
    assert np.mean(frames < 0.01 * frames.max()) > 0.02     # pauses / gaps / rests


def test_speech_energy_is_low_frequency():
    x = signals.make_signal("speech", 4.0, 22050, seed=0).astype(np.float64)
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / 22050)
    assert spec[f < 4000].sum() > 0.8 * spec.sum()


def test_make_signal_from_wav(tmp_path):
    path = tmp_path / "user.wav"
    t = np.arange(8000) / 8000.0
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)], 1)
    sf.write(path, stereo, 8000, subtype="FLOAT")   # 1 s at 8 kHz
    x = signals.make_signal(str(path), 2.5, 16000)
    assert x.shape == (40000,) and x.dtype == np.float32
    spec = np.abs(np.fft.rfft(x[:16000]))
    assert abs(np.argmax(spec) * 16000 / 16000 - 440) <= 2   # resampled, same pitch
    np.testing.assert_allclose(x[:15000], x[16000:31000], atol=1e-3)  # looped
    with pytest.raises(ValueError, match="nosuch.wav"):
        signals.make_signal(str(tmp_path / "nosuch.wav"), 1.0, 16000)


# ----------------------------------------------------------------------------- CLI, cache, options

def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        synth.main(["--help"])
    assert e.value.code == 0
    assert "--ray-tracing" in capsys.readouterr().out
    out = synth.main(["--out", str(tmp_path), "--seconds", "3", "--room", "4,3.5,2.7",
                      "--rt60", "0.2", "--source", "1,1,1.4", "--signal", "noise",
                      "--trajectory", "grid", "--scene", "7", "--quiet", "--ir-seconds", "0.15"])
    assert out == tmp_path / "7"
    d = rwavs.load(tmp_path, 7, "train")
    assert d.meta["args"]["signal"] == "noise" and d.meta["room_dim"] == [4.0, 3.5, 2.7]
    assert d.meta["source_position_m"] == [1.0, 1.0, 1.4]
    with pytest.raises(SystemExit):
        synth.main(["--out", str(tmp_path), "--room", "4,3"])
    with pytest.raises(SystemExit) as e:
        synth.main(["--out", str(tmp_path), "--rt60", "3.0", "--quiet"])
    assert e.value.code == 2 and "ray_tracing" in capsys.readouterr().err


def test_ensure_scene_reuses_cache(tmp_path):
    kw = dict(seconds=2, room=(4.0, 3.5, 2.7), rt60=0.2, ir_seconds=0.15, progress=False)
    a = cache.ensure_scene(tmp_path, **kw)
    stamp = (a / "binaural_syn_re.wav").stat().st_mtime_ns
    b = cache.ensure_scene(tmp_path, **kw)
    assert a == b and (b / "binaural_syn_re.wav").stat().st_mtime_ns == stamp
    assert cache.ensure_scene(tmp_path, **kw, seed=0, yaw="follow") == a   # defaults spelled out
    c = cache.ensure_scene(tmp_path, **{**kw, "seed": 1})
    assert c != a
    assert (a.parent / "position.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert rwavs.load(None, a, "train").binaural.shape[1:] == (2, SR)


def test_ray_tracing_and_materials(tmp_path):
    scene = synth.generate_scene(tmp_path, seconds=2, room=(4.0, 3.5, 2.7), rt60=0.3,
                                 ray_tracing=True, progress=False)
    meta = json.loads((scene / "scene_meta.json").read_text())
    assert meta["ray_tracing"] and meta["max_order"] == 3
    assert meta["rt60_measured"] == pytest.approx(0.3, rel=0.3)
    walls = {w: "curtains_cotton_0.5" for w in ("east", "west", "north", "south")}
    walls.update(floor="carpet_cotton", ceiling="hard_surface")
    scene = synth.generate_scene(tmp_path, scene="2", seconds=2, room=(4.0, 3.5, 2.7),
                                 materials=walls, progress=False)
    meta = json.loads((scene / "scene_meta.json").read_text())
    assert meta["rt60_requested"] is None and meta["materials"] == walls
    bands = meta["rt60_sabine_bands"]
    assert len(bands) == 7 and bands[0] > bands[3]      # curtains absorb little at 125 Hz
    assert meta["ir_seconds"] == pytest.approx(max(bands) + 0.05)
    # Broadband T30: no shorter than the fastest band's (the reflective floor and
    # ceiling make the image-source decay longer than Sabine's diffuse estimate).
    assert math.isfinite(meta["rt60_measured"])
    assert meta["rt60_measured"] > 0.7 * min(bands)
