"""The reverberant tail (``renderer.tail``): the convolution across frames against a
loop over taps, its decay against its RT60, the source history the data layer feeds
it, and a long render with no dip at chunk boundaries."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import dataset, dsp, predict, renderer
from audiogs_jax.gaussians import init_gaussians, to_grid
from audiogs_jax.models import get_model
from audiogs_jax.renderer import tail as tail_lib

SR, HOP, NFFT = 22050, 128, 512


def _tail(f, *, level=0.5, rt60=0.3, seed=0):
  return tail_lib.init(jax.random.PRNGKey(seed), f, hop_length=HOP, sample_rate=SR,
                       rt60=rt60, level=level)


def _complex(rng, shape):
  return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _loop_reference(h, s, k):
  """``sum_j h[e, j] s[b, k + t - j]`` over every frame before, by loops."""
  b_, n, f = s.shape
  out = np.zeros((b_, 2, n - k, f), np.complex128)
  for b in range(b_):
    for e in range(2):
      for t in range(n - k):
        for j in range(1, k + t + 1):
          out[b, e, t] += h[e, j] * s[b, k + t - j]
  return out


@pytest.mark.parametrize("coherence", [None, "diffuse"])
def test_coherent_sum_equals_the_sum_over_taps(coherence):
  """The recursion (associative scan) == sum over every earlier frame of the taps
  written out (``taps``), context frames included."""
  k, t, f = 7, 11, 5
  tail = _tail(f)
  coh = None if coherence is None else tail_lib.diffuse_coherence(
      np.linspace(0, 11025, f), 0.175, 343.0)
  s = _complex(np.random.default_rng(0), (3, k + t, f))
  got, _ = tail_lib.coherent(tail, jnp.asarray(s), k, coh)
  h = np.asarray(tail_lib.taps(tail, k + t, coh))
  ref = _loop_reference(h, s, k)
  np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5 * np.abs(ref).max())
  assert np.all(h[:, 0] == 0)                       # the direct frame is the gain's


def test_power_equals_the_sum_over_taps_of_powers():
  k, t, f = 5, 8, 4
  tail = _tail(f, seed=3)
  s = _complex(np.random.default_rng(4), (2, k + t, f))
  got, _ = tail_lib.power(tail, jnp.asarray(s), k)
  h2 = np.abs(np.asarray(tail_lib.taps(tail, k + t))) ** 2     # no mixing: exp(2l - 2kr)
  ref = np.real(_loop_reference(h2, np.abs(s) ** 2, k))
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-6 * ref.max())


def test_impulse_decays_sixty_db_in_the_rt60():
  """A one-frame source impulse rings as |H(k)| = exp(level - k rate) in the left
  ear: 60 dB down after RT60 seconds, the RT60 ``rt60_of`` reports."""
  k, t, f, rt60 = 40, 50, 3, 0.2
  tail = _tail(f, rt60=rt60)
  s = np.zeros((1, k + t, f), np.complex64)
  s[0, k] = 1.0                                     # clip frame 0
  y = np.abs(np.asarray(tail_lib.coherent(tail, jnp.asarray(s), k)[0]))[0, 0]   # [t, f]
  assert np.all(y[0] < 1e-6)                        # nothing in the direct frame
  db = 20 * np.log10(y[1:])
  slope = (db[-1] - db[0]) / ((t - 2) * HOP / SR)                     # dB per second
  np.testing.assert_allclose(slope, -60.0 / rt60, rtol=1e-3)
  np.testing.assert_allclose(tail_lib.rt60_of(tail, HOP, SR), rt60, rtol=1e-5)
  np.testing.assert_allclose(y[1], 0.5 * np.exp(-tail_lib.rate_of_rt60(rt60, HOP, SR)),
                             rtol=1e-5)


@pytest.mark.parametrize("mode", tail_lib.MODES)
def test_carried_state_continues_the_recursions(mode):
  """Frames rendered in two pieces, the second starting from the first's state (what
  the stream does block by block), equal the frames rendered at once."""
  f, n, cut = 6, 30, 17
  tail = _tail(f, seed=5)
  rng = np.random.default_rng(6)
  s, d = jnp.asarray(_complex(rng, (1, n, f))), jnp.asarray(_complex(rng, (1, 2, n, f)))
  whole, _ = tail_lib.combine(d, tail, s, 0, mode)
  first, state = tail_lib.combine(d[:, :, :cut], tail, s[:, :cut], 0, mode)
  second, _ = tail_lib.combine(d[:, :, cut:], tail, s[:, cut:], 0, mode, state=state)
  np.testing.assert_allclose(np.concatenate([first, second], axis=2), whole,
                             atol=1e-5 * np.abs(whole).max())


def test_gradient_is_the_same_on_every_run():
  """The tail's gradient is bitwise the same on every call (the FFT convolution it
  replaced was not, under load, on XLA's multi-threaded CPU FFT)."""
  tail = _tail(257)
  s = jnp.asarray(_complex(np.random.default_rng(7), (4, 64 + 40, 257)))
  coh = tail_lib.diffuse_coherence(np.linspace(0, 11025, 257), 0.175, 343.0)
  grad = jax.jit(jax.grad(lambda tl: jnp.sum(jnp.abs(tail_lib.combine(
      s[:, None, 64:] * 0.3, tl, s, 64, "power", coh)[0]) ** 2)))
  ref = [np.asarray(x) for x in jax.tree.leaves(grad(tail))]
  for _ in range(10):
    assert all(np.array_equal(a, np.asarray(b))
               for a, b in zip(ref, jax.tree.leaves(grad(tail))))


def test_diffuse_coherence_couples_the_ears_at_low_frequencies():
  """sinc(2 f d / c): 1 at 0 Hz, 0 at c / (2 d); the taps follow it: the same phase
  in both ears at 0 Hz, the right ear's own phase where the coherence is 0."""
  d, c = 0.175, 343.0
  freqs = np.array([0.0, c / (2 * d), 4 * c / (2 * d)])
  gamma = tail_lib.diffuse_coherence(freqs, d, c)
  np.testing.assert_allclose(gamma, [1.0, 0.0, 0.0], atol=1e-12)
  tail = _tail(3, seed=2)
  h = np.asarray(tail_lib.taps(tail, 6, gamma))[:, 1:]
  own = np.asarray(tail_lib.taps(tail, 6))[:, 1:]
  np.testing.assert_allclose(np.angle(h[1, :, 0] / h[0, :, 0]), 0.0, atol=1e-5)
  np.testing.assert_allclose(h[1, :, 1:], own[1, :, 1:], rtol=1e-5)


def _grid(k, f, t, seed=0):
  g = to_grid(init_gaussians(jax.random.PRNGKey(seed), f, t, sh_degree=2,
                             center=(0.0, 0.0, 1.0), spread=0.05, dual=True,
                             learn_phase=True), f)
  return g.replace(tail=_tail(f, seed=seed + 1)) if k else g


@pytest.mark.parametrize("mode", tail_lib.MODES)
def test_render_adds_the_tail_to_the_direct_sound(mode):
  """complex: G S + sum_k H S(t - k); power: magnitude sqrt(|G S|^2 + sum_k |H|^2
  |S(t - k)|^2) with the phase of G S (of the coherent tail where G S is 60 dB
  below it)."""
  k, t = 6, 9
  rc = renderer.RenderConfig(n_fft=NFFT, hop_length=HOP, tail_frames=k, tail_mode=mode)
  f = rc.num_freqs
  g = _grid(k, f, t)
  poses = jnp.asarray(np.tile(np.eye(4, dtype=np.float32), (2, 1, 1)))
  s = jnp.asarray(_complex(np.random.default_rng(1), (2, k + t, f)))
  y = np.asarray(renderer.render(g, poses, s, rc))
  direct = np.asarray(renderer.gains(g, poses, rc)) * np.asarray(s)[:, None, k:]
  h = np.asarray(tail_lib.taps(g.tail, k + t, renderer.tail_coherence(rc),
                               tail_lib.natural_advance(NFFT, HOP)))
  coh = _loop_reference(h, np.asarray(s), k)
  if mode == "complex":
    ref = direct + coh
  else:
    h2 = np.abs(np.asarray(tail_lib.taps(g.tail, k + t))) ** 2
    mag = np.sqrt(np.abs(direct) ** 2 + np.real(_loop_reference(h2, np.abs(s) ** 2, k)))
    ref = mag * np.exp(1j * np.angle(direct + tail_lib.PHASE_FALLBACK * coh))
  np.testing.assert_allclose(y, ref, atol=1e-5 * np.abs(y).max())
  with pytest.raises(ValueError, match="no tail"):
    renderer.render(g.replace(tail=None), poses, s, rc)


def _config(k):
  from audiogs_jax import config as config_lib
  c = config_lib.load_config_file(config_lib.default_config_path())
  c.model.audiogs.tail_frames = k
  return c


def test_source_frames_are_the_long_signals_frames():
  """The K frames before a clip, computed from the clip and the samples before it,
  are the frames of the whole signal's STFT at those positions; the clip's own
  frames are unchanged; no context means silence before the clip."""
  k, length, start = 8, 4096, 5 * 1024
  x = np.random.default_rng(2).standard_normal(start + length).astype(np.float32)
  clip, before = x[start:], x[start - length:start]
  c = _config(k)
  got = np.asarray(dataset.source_frames(jnp.asarray(clip), jnp.asarray(before), c))
  long = np.asarray(dsp.stft_frames(jnp.asarray(x), n_fft=NFFT, hop_length=HOP))
  own = np.asarray(dsp.stft_frames(jnp.asarray(clip), n_fft=NFFT, hop_length=HOP))
  first = start // HOP
  np.testing.assert_allclose(got[:k], long[first - k:first], atol=1e-4)
  np.testing.assert_array_equal(got[k:], own)
  silent = np.asarray(dataset.source_frames(jnp.asarray(clip), None, c))
  np.testing.assert_allclose(silent[:k - NFFT // HOP // 2], 0.0, atol=1e-6)
  np.testing.assert_array_equal(
      np.asarray(dataset.source_frames(jnp.asarray(clip), None, _config(0))), own)


def _boundary_levels():
  """dB levels of the 100-ms windows (25-ms steps) of a 6-s stationary noise render
  past its first second, minus their median."""
  k, clip = 160, SR
  c = _config(k)
  model = get_model("audiogs")
  rc = renderer.RenderConfig(n_fft=NFFT, hop_length=HOP, tail_frames=k)
  g = _grid(0, rc.num_freqs, dsp.num_frames(clip, NFFT, HOP))
  g = g.replace(sh=jnp.zeros_like(g.sh).at[:, 0].set(0.1),          # quiet direct sound
                tail=_tail(rc.num_freqs, level=0.2, rt60=2.0))      # a long, loud tail
  x = np.random.default_rng(3).standard_normal(6 * SR).astype(np.float32) * 0.1
  pose = np.eye(4, dtype=np.float32)
  pose[:3, 3] = (1.0, 0.0, 1.0)
  y = predict.render_long(x, lambda ts: np.repeat(pose[None], len(np.atleast_1d(ts)), 0),
                          model=model, params=g, config=c, clip_length=clip,
                          norm_factor=1.0, batch_size=4)
  assert y.shape == (2, x.size) and np.all(np.isfinite(y))
  half = int(0.05 * SR)
  level = lambda m: 10 * np.log10(np.mean(y[:, m - half:m + half] ** 2))
  levels = np.asarray([level(m) for m in range(SR, x.size - 2 * half, half // 2)])
  return levels - np.median(levels)


def test_long_render_has_no_dip_at_chunk_boundaries(monkeypatch):
  """A model whose output is mostly tail renders 6 s of stationary noise in clip
  chunks: the level of every 100-ms window, across every chunk boundary, is within
  1 dB of the median (each chunk reads the source before it; all chunks share one
  frame grid). A naive block renderer (back-to-back chunks, no source before each)
  dips at every chunk start."""
  dev = _boundary_levels()
  print(f"level - median in [{dev.min():+.2f}, {dev.max():+.2f}] dB")
  assert np.all(np.abs(dev) < 1.0)
  # The check can fail: cut the source into back-to-back chunks, each rendered
  # without the source before it (a naive block renderer), and the tail is missing
  # at the start of every chunk.
  real_frames = dataset.source_frames
  monkeypatch.setattr(dataset, "source_frames", lambda s, ctx, c: real_frames(s, None, c))
  monkeypatch.setattr(predict, "chunk_plan", lambda n, clip, align: (
      0, clip, np.arange(-(-n // clip)) * clip))
  monkeypatch.setattr(predict, "chunk_weights", lambda clip: np.ones(clip))
  dev = _boundary_levels()
  print(f"back-to-back chunks without the source before them: "
        f"[{dev.min():+.2f}, {dev.max():+.2f}] dB")
  assert dev.min() < -3.0


def test_tail_starts_at_the_training_recordings_rt60():
  """``tail_init_rt60 = 0`` (the default): the tail's initial RT60 is the training
  clips' blind RT60 -- short for a dry room, long for a reverberant one -- and a
  value set in the config wins over the estimate."""
  import scipy.signal
  from audiogs_jax.models import SceneInfo
  from audiogs_jax.models import audiogs as audiogs_model
  sr, rng = 16000, np.random.default_rng(5)

  def clips(rt60, n=6):
    t = np.arange(int(1.2 * rt60 * sr)) / sr
    out = []
    for _ in range(n):
      x = np.zeros(2 * sr)
      x[int(0.1 * sr):int(0.4 * sr)] = rng.standard_normal(int(0.3 * sr))
      ir = rng.standard_normal((2, t.size)) * np.exp(-3 * np.log(10) * t / rt60)
      out.append(np.stack([scipy.signal.fftconvolve(x, h)[:2 * sr] for h in ir]))
    return np.asarray(out, np.float32)

  dry = audiogs_model.tail_rt60_estimate(clips(0.25), sr)
  wet = audiogs_model.tail_rt60_estimate(clips(0.9), sr)
  assert dry == pytest.approx(0.25, rel=0.3) and wet == pytest.approx(0.9, rel=0.3)
  cfg = _config(16)
  assert cfg.model.audiogs.tail_init_rt60 == 0.0
  cfg.data.sample_rate, cfg.model.hop_length = sr, 128
  scene = SceneInfo(num_freqs=257, num_frames=10, sample_rate=sr, center=(0.0, 0.0, 0.0),
                    metres_per_unit=1.0, rt60_estimate=dry)
  init = lambda c: audiogs_model.init(jax.random.PRNGKey(0), scene, c).tail
  rt = tail_lib.rt60_of(init(cfg), 128, sr)
  np.testing.assert_allclose(rt, dry, rtol=1e-4)
  cfg.model.audiogs.tail_init_rt60 = 0.7
  np.testing.assert_allclose(tail_lib.rt60_of(init(cfg), 128, sr), 0.7, rtol=1e-4)
