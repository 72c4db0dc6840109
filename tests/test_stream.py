"""audiogs_jax.stream: the streaming renderer against closed forms and the offline path."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import dsp, models, renderer, stream
from audiogs_jax.gaussians import init_gaussians, to_grid

SR, NFFT, HOP = 22050, 512, 128
F = NFFT // 2 + 1
VIEW = stream.TopView(up_axis=2, up_sign=1.0, height=0.0)


def _grid(key=0, frames=6, spread=0.0, centre=(0.0, 0.0, 0.0), decay=1.0, phase=0.0):
  """Isotropic point-like Gaussians (degree-0 SH) at ``centre``, T = ``frames``."""
  g = init_gaussians(jax.random.PRNGKey(key), F, frames, sh_degree=2, center=centre,
                     spread=spread, log_scale=0.0, init_decay=decay)
  if phase:
    g = g.replace(phase=g.phase + phase)
  return to_grid(g, F)


def _config(block=256, **kw):
  return stream.StreamConfig(render=renderer.RenderConfig(sample_rate=SR, n_fft=NFFT,
                                                           hop_length=HOP), block=block,
                             **kw)


def _streamer(grid, config):
  return stream.Streamer(sp=stream.stream_params(grid, config), config=config)


def _run_blocks(s, x, poses):
  """Call ``step`` block by block (what a server does)."""
  b = s.config.block
  state = s.init(poses[0])
  outs = []
  for i in range(x.shape[0] // b):
    state, out = s.step(state, x[i * b:(i + 1) * b], poses[i])
    outs.append(np.asarray(out))
  return np.concatenate(outs, axis=1)


def test_streamed_blocks_equal_scan_along_a_trajectory():
  """10 s of noise along a moving, turning trajectory: block-by-block calls and
  one ``lax.scan`` over the same step agree to float32 rounding."""
  cfg = _config()
  s = _streamer(_grid(spread=0.3, frames=8), cfg)
  n = (10 * SR) // cfg.block
  x = np.random.default_rng(0).standard_normal(n * cfg.block).astype(np.float32) * 0.1
  t = np.linspace(0.0, 1.0, n)
  poses = np.stack([VIEW.pose(-1.0 + 2.0 * ti, 0.5 * math.sin(6 * ti), 4 * ti) for ti in t])
  poses[n // 3:n // 3 + 5] = poses[n // 3]  # a still stretch (the cached-gain path)
  streamed = _run_blocks(s, x, poses)
  _, out = s.scan(s.init(poses[0]), x.reshape(n, cfg.block), poses)
  offline = np.moveaxis(np.asarray(out), 0, 1).reshape(2, -1)
  peak = np.max(np.abs(offline))
  assert peak > 1e-3
  np.testing.assert_allclose(streamed, offline, atol=2e-6 * peak, rtol=0)


@pytest.mark.parametrize("block", [128, 256, 512])
def test_static_stream_is_the_offline_stft_filter_delayed(block):
  """Fixed pose: the stream equals ``istft(G * stft(x))`` with G the stream's
  gain, delayed by exactly n_fft - hop samples (away from the clip's edges)."""
  cfg = _config(block=block)
  s = _streamer(_grid(spread=0.2, phase=0.7), cfg)
  pose = VIEW.pose(0.3, -0.2, 0.4)
  n = 40 * 512 // block
  x = np.random.default_rng(1).standard_normal(n * block).astype(np.float32)
  y = _run_blocks(s, x, [pose] * n)
  g = np.asarray(stream.stream_gain(s.sp, jnp.asarray(pose), cfg))         # [2, F]
  ref = np.asarray(dsp.istft(g[:, :, None] * dsp.stft(jnp.asarray(x))[None],
                             length=x.size))
  lat = stream.latency_samples(cfg)
  assert lat == NFFT - HOP
  lo, hi = NFFT, x.size - NFFT
  # float32 rounding of two FFT filters: 1e-5 of the signal's peak
  np.testing.assert_allclose(y[:, lo + lat:hi], ref[:, lo:hi - lat],
                             atol=1e-5 * np.abs(ref).max(), rtol=0)


def test_source_on_the_left_is_louder_in_the_left_ear_by_the_attenuation_law():
  """One isotropic point source 0.5 m to the listener's left (yaw 0 faces +x,
  left is +y): the ear energy ratio is (r_right / r_left)^(2 softplus(decay))."""
  cfg = _config()
  decay = 1.0
  s = _streamer(_grid(decay=decay, centre=(0.0, 0.5, 0.0)), cfg)
  pose = VIEW.pose(0.0, 0.0, 0.0)
  x = np.random.default_rng(2).standard_normal(200 * cfg.block).astype(np.float32)
  y = _run_blocks(s, x, [pose] * 200)[:, 4096:]
  e_left, e_right = np.mean(y ** 2, axis=1)
  a = cfg.render.head_radius
  expo = float(np.log1p(np.exp(decay)))
  # Ears at head-frame x = -a (left) / +a (right); the source at head-frame x = -0.5 m.
  p_head = np.asarray(pose[:3, :3]).T @ (np.array([0.0, 0.5, 0.0]) - pose[:3, 3])
  r_l = np.linalg.norm(p_head - [-a, 0, 0])
  r_r = np.linalg.norm(p_head - [a, 0, 0])
  want = (r_r / r_l) ** (2 * expo)
  assert e_left > e_right
  assert e_left / e_right == pytest.approx(want, rel=0.03)
  # Turning to face the source (yaw +90 deg) balances the ears.
  y2 = _run_blocks(s, x, [VIEW.pose(0.0, 0.0, math.pi / 2)] * 200)[:, 4096:]
  e2 = np.mean(y2 ** 2, axis=1)
  assert e2[0] / e2[1] == pytest.approx(1.0, rel=0.03)


def test_head_turn_does_not_click():
  """A 220 Hz tone while the head snaps from facing the source to a side (the
  gains jump by ~15 dB between two blocks): the largest sample-to-sample step
  of the output stays within that of a steady tone at the louder level (no
  discontinuity at the block boundary; the crossfade's own slope adds a few
  per cent at most, a click would add a step of the order of the amplitude)."""
  cfg = _config()
  s = _streamer(_grid(decay=2.0, centre=(0.0, 0.3, 0.0)), cfg)
  n = 60
  t = np.arange(n * cfg.block) / SR
  x = (0.5 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
  poses = [VIEW.pose(0, 0, 0)] * (n // 2) + [VIEW.pose(0, 0, math.pi / 2)] * (n // 2)
  poses[n // 2 + 7:] = [VIEW.pose(0, 0, math.pi)] * (n - n // 2 - 7)
  y = _run_blocks(s, x, poses)[:, 2048:]
  steady = _run_blocks(s, x, [VIEW.pose(0, 0, 0)] * n)[:, 2048:]
  amp = np.max(np.abs(steady), axis=1)                     # per ear, louder pose
  amp = np.maximum(amp, np.max(np.abs(_run_blocks(s, x, [VIEW.pose(0, 0, math.pi)] * n)
                                      [:, 2048:]), axis=1))
  max_step = np.max(np.abs(np.diff(y, axis=1)), axis=1)
  # A sine of amplitude A changes by at most A * 2 pi f / sr per sample.
  bound = amp * 2 * np.pi * 220.0 / SR
  assert np.all(max_step <= 1.25 * bound), (max_step, bound)
  assert np.all(np.isfinite(y))


def test_non_finite_pose_keeps_the_last_pose_and_never_gives_nan():
  cfg = _config()
  s = _streamer(_grid(spread=0.2), cfg)
  x = np.ones(cfg.block * 6, np.float32)
  good = VIEW.pose(0.2, 0.1, 0.3)
  bad = good.copy()
  bad[0, 3] = np.nan
  y_bad = _run_blocks(s, x, [good, good, bad, bad, good, good])
  y_good = _run_blocks(s, x, [good] * 6)
  np.testing.assert_allclose(y_bad, y_good, atol=1e-6)


def test_pose_messages():
  p = stream.pose_from_message({"x": 1.0, "y": -2.0, "yaw": math.pi / 2}, VIEW)
  np.testing.assert_allclose(p[:3, 3], [1.0, -2.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(-p[:3, 2], [0.0, 1.0, 0.0], atol=1e-6)   # faces +y
  np.testing.assert_allclose(p[:3, :3].T @ p[:3, :3], np.eye(3), atol=1e-6)
  assert np.linalg.det(p[:3, :3]) == pytest.approx(1.0, abs=1e-6)
  assert VIEW.project(p) == pytest.approx((1.0, -2.0, math.pi / 2), abs=1e-6)
  bad = [("[1, 2]", "JSON object"), ({"x": 1, "y": 2}, "lacks yaw"),
         ({"x": "a", "y": 0, "yaw": 0}, "x must be a number"),
         ({"x": 0, "y": float("nan"), "yaw": 0}, "y must be finite"),
         ({"x": 0, "y": 0, "yaw": 1e9}, "yaw must be finite"),
         ({"x": True, "y": 0, "yaw": 0}, "x must be a number"),
         ({"x": None, "y": 0, "yaw": 0}, "x must be a number")]
  for msg, text in bad:
    with pytest.raises(stream.PoseError, match=text):
      stream.pose_from_message(msg, VIEW)


def test_top_view_from_poses_finds_up_axis():
  poses = np.stack([stream.TopView(up_axis=1, up_sign=1.0, height=1.6).pose(x, 0.5, 0.3)
                    for x in (0.0, 1.0)])
  v = stream.TopView.from_poses(poses)
  assert (v.up_axis, v.up_sign) == (1, 1.0) and v.height == pytest.approx(1.6)


def test_bad_settings_and_models_are_refused(monkeypatch):
  with pytest.raises(stream.StreamError, match="multiple of the STFT hop"):
    _config(block=200)
  with pytest.raises(stream.StreamError, match="gain_mode"):
    _config(gain_mode="median")
  # Audio 3DGS has no streaming renderer, and says why (RenderModel.no_stream) ...
  unet = models.get_model("audio3dgs_unet")
  assert unet.stream_fields is None and "U-Net" in unet.no_stream
  assert models.get_model("audiogs").stream_fields is not None
  # ... which load_streamer raises for a workdir that holds one (the fixtures train
  # no Audio 3DGS workdir: load_trained stands in for one here).
  monkeypatch.setattr(stream.workdir_lib, "load_trained",
                      lambda *a, **k: (None, unet, None, {}))
  with pytest.raises(stream.StreamError, match="U-Net"):
    stream.load_streamer("unet_workdir")
  s = _streamer(_grid(), _config())
  with pytest.raises(stream.StreamError, match="block of 256 samples"):
    s.step(s.init(np.eye(4)), np.zeros(100, np.float32), np.eye(4))


def test_param_mean_averages_the_frames():
  """``param_mean`` of Gaussians identical across frames is the same field."""
  cfg_g, cfg_p = _config(), _config(gain_mode="param_mean")
  g = _grid(spread=0.0, centre=(0.2, 0.4, 0.1), phase=0.3)
  pose = jnp.asarray(VIEW.pose(0.1, -0.3, 0.5))
  a = stream.stream_gain(stream.stream_params(g, cfg_g), pose, cfg_g)
  b = stream.stream_gain(stream.stream_params(g, cfg_p), pose, cfg_p)
  assert stream.stream_params(g, cfg_p).xyz.shape == (3, 1, F)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_bench_stream_rows():
  """scripts/bench_stream.py runs (two blocks' worth of timing, no speed claims)."""
  import pathlib
  import sys
  scripts = pathlib.Path(__file__).resolve().parents[1] / "scripts"
  sys.path.insert(0, str(scripts))
  try:
    import bench_stream
    rows = bench_stream.bench_stream(blocks=(256,), repeats=8, modes=(("gain_mean", 4),))
  finally:
    sys.path.remove(str(scripts))
  # The default config's tail, then the same settings without it (its cost).
  assert [(r["pose"], r["tail_frames"]) for r in rows] == [
      ("moving", 128), ("still", 128), ("moving", 0), ("still", 0)]
  for r in rows:
    assert r["ms_per_block"] > 0 and r["realtime_factor"] > 0
    lookahead = 1000.0 * (NFFT - HOP) / SR
    assert r["latency_ms"] == pytest.approx(1000.0 * 256 / SR + lookahead + r["ms_per_block"],
                                            abs=0.02)
    assert r["gaussians_per_pose"] == 257 * 44   # 173 frames, every 4th


def test_stream_of_a_frame_invariant_model_is_the_clip_renderer():
  """Gaussians equal in every frame (different per bin): the clip renderer's
  waveform (``renderer.render`` then ``dsp.istft_frames``) and the streamed clip agree away from
  the clip's edges, so the stream is the clip renderer wherever the model does
  not depend on the frame."""
  length = 63 * HOP
  frames = length // HOP + 1
  one = _grid(spread=0.3, frames=1, phase=0.4)                  # [.., 1, F]
  grid = jax.tree.map(lambda a: jnp.repeat(a, frames, axis=-2) if a.ndim >= 2 else a, one)
  cfg = _config()
  pose = VIEW.pose(0.4, -0.3, 0.7)
  x = np.random.default_rng(3).standard_normal(length).astype(np.float32)
  spec = renderer.render(grid, jnp.asarray(pose)[None],
                         dsp.stft_frames(x, **cfg.render.stft_kwargs()), cfg.render)[0]
  clip = np.asarray(dsp.istft_frames(spec, length=length, **cfg.render.stft_kwargs()))
  sp = stream.stream_params(grid, cfg)
  streamed = np.asarray(stream.stream_clips(sp, jnp.asarray(x[None]), jnp.asarray(pose[None]),
                                            cfg))[0]
  lo, hi = NFFT, length - NFFT
  assert np.max(np.abs(clip[:, lo:hi])) > 1e-2
  np.testing.assert_allclose(streamed[:, lo:hi], clip[:, lo:hi], atol=2e-5, rtol=0)


def test_stream_with_a_reverberant_tail_is_the_clip_renderer():
  """With a reverberant tail (``renderer.tail``, 40 frames of context for the clip
  renderer) the stream carries the tail's recursions in its state: the streamed clip
  equals the clip renderer's (silence before the clip in both), tail included, away
  from the clip's edges."""
  from audiogs_jax.renderer import tail as tail_lib
  k = 40
  length = 100 * HOP
  frames = length // HOP + 1
  one = _grid(spread=0.3, frames=1, phase=0.4)
  grid = jax.tree.map(lambda a: jnp.repeat(a, frames, axis=-2) if a.ndim >= 2 else a, one)
  grid = grid.replace(tail=tail_lib.init(jax.random.PRNGKey(5), F, hop_length=HOP,
                                         sample_rate=SR, rt60=0.3, level=2.0))
  rc = renderer.RenderConfig(sample_rate=SR, n_fft=NFFT, hop_length=HOP, tail_frames=k)
  cfg = stream.StreamConfig(render=rc, block=256)
  pose = VIEW.pose(0.4, -0.3, 0.7)
  x = np.random.default_rng(4).standard_normal(length).astype(np.float32)
  # The K frames before the clip are those of silence followed by the clip (the
  # last ones overlap the clip's first samples), then the clip's own frames.
  src = dsp.stft_frames(np.concatenate([np.zeros(k * HOP, np.float32), x]),
                        **rc.stft_kwargs())
  spec = renderer.render(grid, jnp.asarray(pose)[None], src, rc)[0]
  clip = np.asarray(dsp.istft_frames(spec, length=length, **rc.stft_kwargs()))
  no_tail = np.asarray(dsp.istft_frames(
      renderer.render(grid, jnp.asarray(pose)[None], src[k:], dataclasses.replace(
          rc, tail_frames=0))[0], length=length, **rc.stft_kwargs()))
  streamed = np.asarray(stream.stream_clips(stream.stream_params(grid, cfg),
                                            jnp.asarray(x[None]), jnp.asarray(pose[None]),
                                            cfg))[0]
  lo, hi = NFFT, length - NFFT
  tail_rms = np.sqrt(np.mean((clip - no_tail)[:, lo:hi] ** 2))
  assert tail_rms > 0.2 * np.sqrt(np.mean(clip[:, lo:hi] ** 2))     # the tail is audible
  np.testing.assert_allclose(streamed[:, lo:hi], clip[:, lo:hi],
                             atol=2e-5 * np.max(np.abs(clip)), rtol=0)
