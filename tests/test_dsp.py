"""dsp: STFT/ISTFT against librosa (the reference), reconstruction, shapes, jit/vmap, grads."""

import functools

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.signal

from audiogs_jax import dsp

from _jitutil import fast_jit as _jit

SR = 16000
NUM_SAMPLES = 4001          # 0.25 s, deliberately not a multiple of any hop


def _speech_like(n, sr, seed=0):
  """Voiced speech stand-in: glottal pulses -> three formant resonators -> syllables.

  A pulse train at a wobbling f0 (110-140 Hz), each pulse a short Rosenberg-like
  glottal flow derivative, through second-order resonators at typical /a/ formants,
  under a 4 Hz syllable envelope, plus a little aspiration noise.
  """
  rng = np.random.default_rng(seed)
  t = np.arange(n) / sr
  f0 = 125.0 + 15.0 * np.sin(2 * np.pi * 3.0 * t)
  cycles = np.cumsum(f0 / sr)
  pulses = np.diff(np.floor(cycles), prepend=0.0) > 0
  excitation = np.zeros(n)
  excitation[pulses] = 1.0
  k = np.arange(int(0.004 * sr))
  glottal = np.diff(np.sin(np.pi * k / k.size) ** 2, prepend=0.0)
  x = np.convolve(excitation, glottal)[:n]
  for freq, bw in ((700.0, 130.0), (1220.0, 70.0), (2600.0, 160.0)):
    r = np.exp(-np.pi * bw / sr)
    x = scipy.signal.lfilter([1.0 - r], [1.0, -2.0 * r * np.cos(2 * np.pi * freq / sr), r * r], x)
  x = x * (0.1 + 0.9 * np.sin(np.pi * 4.0 * t) ** 2) + 1e-3 * rng.standard_normal(n) * x.std()
  return 0.8 * x / np.abs(x).max()


def _noise(n, seed=1):
  return np.random.default_rng(seed).uniform(-1.0, 1.0, n)


SIGNALS = {"noise": _noise(NUM_SAMPLES), "speech": _speech_like(NUM_SAMPLES, SR)}

CONFIGS = {
    "default": dict(n_fft=512, hop_length=128),
    "hop160_win400_hamming": dict(n_fft=512, hop_length=160, win_length=400, window="hamming"),
    "win_lt_nfft": dict(n_fft=512, hop_length=128, win_length=256),
    "reflect": dict(n_fft=512, hop_length=128, pad_mode="reflect"),
    "no_center": dict(n_fft=256, hop_length=64, center=False),
}


def _istft_kwargs(kw):
  return {k: v for k, v in kw.items() if k != "pad_mode"}


def _lib_stft_kwargs(kw):
  out = dict(kw)
  out.setdefault("window", "hann")
  return out


def test_speech_like_signal_is_speech_like():
  x = SIGNALS["speech"]
  f, pxx = scipy.signal.welch(x, fs=SR, nperseg=1024)
  # Harmonic, energy below 4 kHz, the spectral peak at a low harmonic / first formant.
  assert pxx[f < 4000].sum() > 0.95 * pxx.sum()
  assert 100 < f[np.argmax(pxx)] < 1500
  assert np.abs(x).max() == pytest.approx(0.8)


SHORT = NUM_SAMPLES - 300   # an explicit ``length`` shorter than the natural one
LONG = NUM_SAMPLES + 700    # longer than the whole overlap-add: zero-padded tail


@functools.lru_cache(maxsize=None)
def _pipeline(cfg):
  """One jitted function per config: every transform the parity tests need."""
  kw = CONFIGS[cfg]
  ikw = _istft_kwargs(kw)

  @_jit
  def run(x, spec):
    s = dsp.stft(x, **kw)
    return dict(stft=s,
                istft=dsp.istft(spec, **ikw),
                istft_short=dsp.istft(spec, length=SHORT, **ikw),
                istft_long=dsp.istft(spec, length=LONG, **ikw),
                roundtrip=dsp.istft(s, length=x.shape[-1], **ikw))
  return run


def _both_signals():
  """[2, samples]: noise and speech, as one batched input [..., samples]."""
  return np.stack([SIGNALS["noise"], SIGNALS["speech"]])


def _modified(spec):
  # Not a consistent STFT, so the overlap-add normalisation is actually exercised
  # rather than just undoing the analysis.
  rng = np.random.default_rng(3)
  return spec * (0.5 + rng.uniform(size=spec.shape)) * np.exp(1j * rng.uniform(-0.3, 0.3, spec.shape))


@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_parity_with_librosa(cfg):
  """stft/istft == librosa on noise and speech (batched), error < 1e-4 * signal peak."""
  kw = CONFIGS[cfg]
  lkw, likw = _lib_stft_kwargs(kw), _lib_stft_kwargs(_istft_kwargs(kw))
  center = kw.get("center", True)
  x = _both_signals()
  peak = np.abs(x).max(axis=-1)                                 # [2]
  ref = librosa.stft(x, **lkw)
  spec = _modified(ref)
  out = jax.tree.map(np.asarray, _pipeline(cfg)(jnp.asarray(x, jnp.float32),
                                                jnp.asarray(spec, jnp.complex64)))
  assert out["stft"].shape == ref.shape
  assert ref.shape[-1] == dsp.num_frames(x.shape[-1], kw["n_fft"], kw["hop_length"], center)
  err = np.abs(out["stft"] - ref).max(axis=(-1, -2))
  assert np.all(err < 1e-4 * peak), err

  # Compare where the overlap-add is well conditioned (window sum-square > 1% of its
  # maximum). With centring that is the whole signal; without it, the first/last
  # samples (window sum ~ 0) are excluded: they are ill-conditioned in any ISTFT.
  n_fft, hop, frames = kw["n_fft"], kw["hop_length"], ref.shape[-1]
  wss = dsp.window_sumsquare(kw.get("window", "hann"), frames, hop_length=hop,
                             win_length=kw.get("win_length"), n_fft=n_fft)
  wss = wss[n_fft // 2:] if center else wss
  natural_end = wss.size

  def good(length):
    w = np.zeros(length)
    w[:min(length, natural_end)] = wss[:length]
    return w > 0.01 * wss.max()

  if center:
    assert np.all(good(x.shape[-1]))
  else:
    assert good(x.shape[-1]).sum() > x.shape[-1] - 2 * n_fft
  for key, length in (("istft", None), ("istft_short", SHORT), ("istft_long", LONG)):
    ref_y = librosa.istft(spec, length=length, **likw)
    assert out[key].shape == ref_y.shape, key
    m = good(ref_y.shape[-1])
    err = np.abs(out[key] - ref_y)[..., m].max(axis=-1)
    assert np.all(err < 1e-4 * peak), (key, err)
  # A length past the end of the overlap-add is zero-padded, as librosa does.
  assert natural_end < LONG
  assert np.all(out["istft_long"][..., natural_end:] == 0.0)
  last = np.nonzero(good(LONG))[0].max()
  assert np.all(out["istft_long"][..., last] != 0.0)
  # Perfect reconstruction: istft(stft(x), length=len(x)) == x.
  m = good(x.shape[-1])
  err = np.abs(out["roundtrip"] - x)[..., m].max(axis=-1) / peak
  assert np.all(err < 1e-5), err


@_jit
def _batched_and_single(x):
  stft = functools.partial(dsp.stft, **CONFIGS["default"])
  return stft(x), stft(x[1]), stft(x[:, None])


def test_batched_equals_single():
  x = _both_signals()
  frames = 1 + NUM_SAMPLES // 128
  batched, single, s3 = map(np.asarray, _batched_and_single(jnp.asarray(x, jnp.float32)))
  assert batched.shape == (2, 257, frames) and s3.shape == (2, 1, 257, frames)
  np.testing.assert_allclose(batched[1], single, atol=1e-5)
  np.testing.assert_allclose(s3[:, 0], batched, atol=1e-5)
  assert np.abs(batched[0] - batched[1]).max() > 1.0   # the two signals differ


@pytest.mark.parametrize("num_samples", [1000, 1024, 1151])
@pytest.mark.parametrize("center", [True, False])
def test_output_length_without_length(num_samples, center):
  """Shapes only (jax.eval_shape, no compile), against the rules and librosa."""
  n_fft, hop = 256, 64
  spec = jax.eval_shape(functools.partial(dsp.stft, n_fft=n_fft, hop_length=hop, center=center),
                        jax.ShapeDtypeStruct((num_samples,), jnp.float32))
  frames = spec.shape[-1]
  if center:
    assert frames == 1 + num_samples // hop
  else:
    assert frames == 1 + (num_samples - n_fft) // hop
  ref_spec = librosa.stft(np.zeros(num_samples), n_fft=n_fft, hop_length=hop, center=center)
  assert spec.shape == ref_spec.shape
  y = jax.eval_shape(functools.partial(dsp.istft, n_fft=n_fft, hop_length=hop, center=center), spec)
  expected = hop * (frames - 1) + (0 if center else n_fft)
  assert y.shape == (expected,)
  assert y.dtype == jnp.float32
  ref = librosa.istft(ref_spec, n_fft=n_fft, hop_length=hop, center=center)
  assert ref.shape == y.shape


def test_num_frames_and_errors():
  assert dsp.num_frames(22050, 512, 128) == librosa.stft(np.zeros(22050), n_fft=512).shape[-1]
  assert dsp.num_frames(22050, 512, 128, center=False) == 1 + (22050 - 512) // 128
  with pytest.raises(ValueError):
    dsp.num_frames(100, 512, 128, center=False)
  with pytest.raises(ValueError):
    dsp.stft(np.zeros(1000, np.float32), n_fft=256, window="blackman")
  with pytest.raises(ValueError):
    dsp.stft(np.zeros(1000, np.float32), n_fft=256, win_length=300)
  with pytest.raises(ValueError):
    dsp.stft(np.zeros(1000, np.float32), n_fft=256, pad_mode="edge")
  with pytest.raises(ValueError):
    dsp.istft(jnp.zeros((100, 5), jnp.complex64), n_fft=256)


def test_window_and_frequencies():
  for kind in ("hann", "hamming"):
    ref = librosa.util.pad_center(librosa.filters.get_window(kind, 400, fftbins=True), size=512)
    np.testing.assert_allclose(dsp.get_window(kind, 400, 512), ref, atol=1e-12)
  np.testing.assert_allclose(
      dsp.window_sumsquare("hamming", 7, hop_length=160, win_length=400, n_fft=512),
      librosa.filters.window_sumsquare(window="hamming", n_frames=7, hop_length=160,
                                       win_length=400, n_fft=512, dtype=np.float64),
      rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(dsp.frequencies(512, 22050), librosa.fft_frequencies(sr=22050, n_fft=512))


# jit / vmap ---------------------------------------------------------------------

_KW = dict(n_fft=256, hop_length=64)
_LEN = 1200


@_jit
def _jit_and_vmap(x):
  """[B, samples] -> stft, istft under jit, and the same vmapped over B."""
  stft = functools.partial(dsp.stft, **_KW)
  istft = functools.partial(dsp.istft, length=_LEN, **_KW)
  s = stft(x)
  return s, istft(s), jax.vmap(stft)(x), jax.vmap(istft)(s)


def test_jit_and_vmap_match_eager():
  x = jnp.asarray(np.random.default_rng(7).uniform(-1, 1, (3, _LEN)), jnp.float32)
  eager = dsp.stft(x, **_KW)
  y_eager = dsp.istft(eager, length=_LEN, **_KW)
  s_jit, y_jit, s_vm, y_vm = map(np.asarray, _jit_and_vmap(x))
  for got in (s_jit, s_vm):
    np.testing.assert_allclose(got, np.asarray(eager), atol=1e-5)
  for got in (y_jit, y_vm):
    np.testing.assert_allclose(got, np.asarray(y_eager), atol=1e-6)
  np.testing.assert_allclose(np.asarray(y_eager), np.asarray(x), atol=1e-5)


@_jit
def _both_layouts(x):
  kw = CONFIGS["hop160_win400_hamming"]
  ikw = _istft_kwargs(kw)
  s, sf = dsp.stft(x, **kw), dsp.stft_frames(x, **kw)
  return (s, sf, dsp.istft(s, length=x.shape[-1], **ikw),
          dsp.istft_frames(sf, length=x.shape[-1], **ikw))


def test_frames_major_layout():
  x = jnp.asarray(SIGNALS["speech"], jnp.float32)
  s, sf, y, yf = map(np.asarray, _both_layouts(x))
  assert sf.shape == (1 + NUM_SAMPLES // 160, 257)
  np.testing.assert_array_equal(sf, np.swapaxes(s, -1, -2))
  np.testing.assert_array_equal(yf, y)
  np.testing.assert_allclose(y, np.asarray(x), atol=1e-5)


# gradients ----------------------------------------------------------------------

_FRAMES = 1 + _LEN // 64


def _roundtrip(x):
  return dsp.istft(dsp.stft(x, **_KW), length=_LEN, **_KW)


def _quadratic_loss(x, mask):
  # Masked spectral energy of a weighted round trip: quadratic in x, so the
  # central difference is exact up to rounding for any step.
  y = _roundtrip(x) * jnp.linspace(0.5, 1.5, _LEN)
  return jnp.sum(mask * jnp.abs(dsp.stft(y, **_KW)) ** 2)


@_jit
def _grads(x, v, d, mask):
  g_identity = jax.grad(lambda x: jnp.sum(v * _roundtrip(x)))(x)
  g_quad = jax.grad(_quadratic_loss)(x, mask)
  return g_identity, g_quad, _quadratic_loss(x + d, mask), _quadratic_loss(x - d, mask)


def test_gradients_through_stft_istft():
  rng = np.random.default_rng(11)
  x, v, d = (jnp.asarray(a, jnp.float32) for a in
             (rng.uniform(-1, 1, _LEN), rng.standard_normal(_LEN), rng.uniform(-1, 1, _LEN)))
  mask = jnp.asarray(rng.uniform(size=(129, _FRAMES)), jnp.float32)
  g_identity, g_quad, l_plus, l_minus = jax.tree.map(np.asarray, _grads(x, v, d, mask))
  assert np.all(np.isfinite(g_identity)) and np.all(np.isfinite(g_quad))
  # istft(stft(.)) is the identity on signals, so its vector-Jacobian product is too.
  np.testing.assert_allclose(g_identity, np.asarray(v), atol=2e-5)
  # Directional derivative against the (exact for a quadratic) central difference.
  fd = (float(l_plus) - float(l_minus)) / 2.0
  an = float(np.dot(g_quad.astype(np.float64), np.asarray(d, np.float64)))
  assert abs(an) > 1.0
  assert abs(fd - an) < 1e-3 * abs(an), (fd, an)
