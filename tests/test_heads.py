"""Measured heads in the scene generator (audiogs_jax.data.heads): physics and SOFA input."""

import json

import numpy as np
import pytest

from audiogs_jax import interaural
from audiogs_jax.data import ears, heads, room, rwavs, synth, trajectory

SR = 22050


def _free_field(src, pose, head, ir_seconds=0.06):
    images = room.ImageSources(np.asarray([src], float), np.ones((1, 1)), np.zeros(1),
                                np.zeros(1, int))
    return ears.binaural_ir(images, pose, sample_rate=SR, ir_seconds=ir_seconds, head=head)


def _band_ild(ir, lo, hi):
    spec = np.abs(np.fft.rfft(ir, 8192, axis=-1)) ** 2
    f = np.fft.rfftfreq(8192, 1 / SR)
    m = (f >= lo) & (f < hi)
    return 10 * np.log10(spec[0, m].sum() / spec[1, m].sum())


def test_kemar_is_packaged_with_its_citation():
    assert heads.KEMAR_PATH.is_file()
    cite = (heads.KEMAR_PATH.parent / "CITATION.md").read_text()
    assert "Gardner" in cite and "Martin" in cite
    h = heads.kemar(SR)
    assert h.directions.shape == (710, 3) and h.irs.shape[:2] == (710, 2)
    np.testing.assert_allclose(np.linalg.norm(h.directions, axis=1), 1.0, atol=1e-9)
    assert h.sample_rate == SR and 0 < h.latency < h.num_taps


def test_source_at_90_degrees_left_itd_and_ild():
    """A source at 90 degrees left: ITD 0.6-0.8 ms, left louder, ILD growing with frequency."""
    head = heads.kemar(SR)
    pose = trajectory.head_pose([3.0, 2.5, 1.5], 0.0)     # faces +x; right = -y, so +y is left
    ir = _free_field([3.0, 4.5, 1.5], pose, head)
    itd = interaural.itd(ir, SR)[0]
    assert 0.6e-3 <= itd <= 0.8e-3
    bands = [(250, 500), (1000, 2000), (4000, 8000)]
    ild = [_band_ild(ir, lo, hi) for lo, hi in bands]
    assert ild[0] > 0 and ild[0] < ild[1] < ild[2]
    assert ild[2] > 10.0
    # The mirror image: source on the right.
    ir_r = _free_field([3.0, 0.5, 1.5], pose, head)
    assert -0.8e-3 <= interaural.itd(ir_r, SR)[0] <= -0.6e-3
    assert _band_ild(ir_r, 4000, 8000) < -10.0


def test_source_in_front_has_no_itd_and_distance_sets_the_delay():
    head = heads.kemar(SR)
    pose = trajectory.head_pose([1.0, 2.0, 1.5], 0.0)
    near = _free_field([2.0, 2.0, 1.5], pose, head)
    far = _free_field([4.0, 2.0, 1.5], pose, head, ir_seconds=0.08)
    assert abs(interaural.itd(near, SR)[0]) < 30e-6
    # 1 m -> 3 m: 2 m more path (128.6 samples later) and 1/3 of the amplitude.
    lag = np.argmax(np.abs(far[0])) - np.argmax(np.abs(near[0]))
    assert abs(lag - 2.0 / room.SPEED_OF_SOUND * SR) <= 1.0
    assert np.sqrt(np.sum(far ** 2) / np.sum(near ** 2)) == pytest.approx(1 / 3, rel=0.02)


def _write_sofa(path, itd_samples: int, rate: int = SR):
    """A two-direction SimpleFreeFieldHRIR file: a pure interaural delay, no shadow."""
    import h5py
    n = 64
    ir = np.zeros((2, 2, n))
    ir[0, 0, 10] = ir[0, 1, 10 + itd_samples] = 1.0        # az 90 (left): right ear late
    ir[1, 1, 10] = ir[1, 0, 10 + itd_samples] = 1.0        # az 270 (right): left ear late
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = b"SOFA"
        f.attrs["SOFAConventions"] = b"SimpleFreeFieldHRIR"
        f["Data.IR"] = ir
        f["Data.SamplingRate"] = np.array([float(rate)])
        f["SourcePosition"] = np.array([[90.0, 0.0, 1.0], [270.0, 0.0, 1.0]])
        f["SourcePosition"].attrs["Type"] = b"spherical"


def test_any_sofa_head(tmp_path):
    sofa = tmp_path / "toy.sofa"
    _write_sofa(sofa, itd_samples=7)
    head = heads.load_sofa(sofa, SR)
    pose = trajectory.head_pose([3.0, 2.5, 1.5], 0.0)
    ir = _free_field([3.0, 4.5, 1.5], pose, head)
    assert interaural.itd(ir, SR)[0] == pytest.approx(7 / SR, abs=2e-6)
    # Through the generator: --hrtf FILE.sofa, recorded in the metadata.
    scene = synth.generate_scene(tmp_path / "out", seconds=2, room=(4.0, 3.5, 2.7), rt60=0.2,
                                 hrtf=str(sofa), ears="sofa", progress=False)
    meta = json.loads((scene / "scene_meta.json").read_text())
    assert meta["ears"] == "sofa" and meta["hrtf"] == "toy.sofa"


def test_bad_sofa_names_the_file(tmp_path):
    bad = tmp_path / "not.sofa"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not.sofa"):
        heads.load_sofa(bad, SR)
    with pytest.raises(ValueError, match="missing.sofa"):
        heads.load_sofa(tmp_path / "missing.sofa", SR)


def test_cli_ears_and_hrtf(tmp_path):
    out = synth.main(["--out", str(tmp_path / "c"), "--seconds", "2", "--room", "4,3.5,2.7",
                      "--rt60", "0.2", "--ears", "cardioid", "--quiet"])
    assert json.loads((out / "scene_meta.json").read_text())["ears"] == "cardioid"
    sofa = tmp_path / "toy.sofa"
    _write_sofa(sofa, itd_samples=5)
    out = synth.main(["--out", str(tmp_path / "s"), "--seconds", "2", "--room", "4,3.5,2.7",
                      "--rt60", "0.2", "--hrtf", str(sofa), "--quiet"])
    assert json.loads((out / "scene_meta.json").read_text())["hrtf"] == "toy.sofa"
    with pytest.raises(SystemExit) as e:
        synth.main(["--out", str(tmp_path / "x"), "--seconds", "2", "--hrtf",
                    str(tmp_path / "nope.sofa"), "--quiet"])
    assert e.value.code == 2


@pytest.fixture(scope="module")
def kemar_root(tmp_path_factory):
    from audiogs_jax.data import fixtures
    root = tmp_path_factory.mktemp("kemar")
    fixtures.write_rwavs_fixture(root, scenes=("2",), seconds=12, seed=3, yaw="random")
    return root


def test_kemar_scene_itd_follows_the_source(kemar_root):
    """End to end on a KEMAR scene: each clip's ITD has the sign of the source's side."""
    d = rwavs.load(kemar_root, "2", "train")
    assert d.meta["ears"] == "kemar"
    rel = d.source_position[None] - d.poses[:, :3, 3]
    lateral = np.einsum("ni,ni->n", rel, d.poses[:, :3, 0]) / np.linalg.norm(rel, axis=1)
    itd = interaural.itd(d.binaural, SR)
    sel = np.abs(lateral) > 0.4
    assert sel.sum() >= 3
    # Source on the right (lateral > 0) -> right ear first -> negative ITD.
    assert np.mean(np.sign(itd[sel]) == -np.sign(lateral[sel])) >= 0.8
    assert np.max(np.abs(itd)) <= 0.8e-3
