"""Figures: spectrograms of prediction vs recording, and Gaussians in the room.

Matplotlib with the non-interactive Agg backend; every function writes a PNG
and returns its path.
"""

from __future__ import annotations

import pathlib
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from audiogs_jax import dsp  # noqa: E402

__all__ = ["plot_spectrograms", "plot_gaussians"]


def _db_spec(x: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
  s = np.abs(np.asarray(dsp.stft(np.asarray(x, np.float32), n_fft=n_fft, hop_length=hop)))
  return 20.0 * np.log10(s + 1e-6)


def plot_spectrograms(pred: np.ndarray, target: np.ndarray, sample_rate: int, path,
                      title: str = "") -> pathlib.Path:
  """Prediction, recording and their difference (dB), both ears.

  Args:
    pred, target: ``[2, L]`` waveforms.
  """
  path = pathlib.Path(path)
  p, g = _db_spec(pred), _db_spec(target)
  dur = pred.shape[-1] / sample_rate
  extent = [0.0, dur, 0.0, sample_rate / 2000.0]
  vmax = float(max(p.max(), g.max()))
  fig, axes = plt.subplots(2, 3, figsize=(13, 6), sharex=True, sharey=True)
  for e, ear in enumerate(("left", "right")):
    for j, (img, name) in enumerate(((p[e], "predicted"), (g[e], "recorded"))):
      im = axes[e, j].imshow(img, origin="lower", aspect="auto", extent=extent,
                             vmin=vmax - 80, vmax=vmax, cmap="magma")
      axes[e, j].set_title(f"{name}, {ear} ear (dB)")
    fig.colorbar(im, ax=axes[e, 1])
    d = axes[e, 2].imshow(p[e] - g[e], origin="lower", aspect="auto", extent=extent,
                          vmin=-20, vmax=20, cmap="coolwarm")
    axes[e, 2].set_title(f"difference, {ear} ear (dB)")
    fig.colorbar(d, ax=axes[e, 2])
  for ax in axes[-1]:
    ax.set_xlabel("time (s)")
  for ax in axes[:, 0]:
    ax.set_ylabel("frequency (kHz)")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path


def plot_gaussians(xyz: np.ndarray, energy: np.ndarray, path, *,
                   source_position: Optional[Sequence[float]] = None,
                   listener_poses: Optional[np.ndarray] = None,
                   up_axis: int = 2, max_points: int = 20000, seed: int = 0,
                   title: str = "") -> pathlib.Path:
  """Top and side views of the Gaussians coloured by energy (log scale).

  Args:
    xyz: ``[N, 3]`` positions (scene units).
    energy: ``[N]`` non-negative.
    source_position: ``[3]``, drawn as a star when known.
    listener_poses: ``[M, 4, 4]``, drawn as dots with a facing arrow.
    up_axis: world up axis (2 = z for the built-in scenes).
  """
  path = pathlib.Path(path)
  xyz = np.asarray(xyz, np.float64)
  energy = np.asarray(energy, np.float64)
  if xyz.shape[0] > max_points:
    idx = np.random.default_rng(seed).choice(xyz.shape[0], max_points, replace=False)
    xyz, energy = xyz[idx], energy[idx]
  order = np.argsort(energy)
  xyz, energy = xyz[order], energy[order]
  colour = np.log10(energy + 1e-6)
  horiz = [a for a in range(3) if a != up_axis]
  views = [("top view", horiz[0], horiz[1]), ("side view", horiz[0], up_axis)]
  names = "xyz"
  fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
  for ax, (name, a, b) in zip(axes, views):
    sc = ax.scatter(xyz[:, a], xyz[:, b], c=colour, s=2, cmap="viridis", alpha=0.6,
                    linewidths=0)
    if listener_poses is not None and len(listener_poses):
      lp = np.asarray(listener_poses)
      ax.plot(lp[:, a, 3], lp[:, b, 3], "-", color="0.6", lw=0.8, zorder=2)
      ax.scatter(lp[:, a, 3], lp[:, b, 3], c="tab:blue", s=14, zorder=3, label="listener")
      fwd = -lp[:, :3, 2]
      ax.quiver(lp[:, a, 3], lp[:, b, 3], fwd[:, a], fwd[:, b], color="tab:blue",
                scale=25, width=0.003, zorder=3)
    if source_position is not None:
      sp = np.asarray(source_position)
      ax.scatter([sp[a]], [sp[b]], marker="*", s=250, c="tab:red", edgecolors="k",
                 zorder=4, label="source")
    ax.set_xlabel(names[a])
    ax.set_ylabel(names[b])
    ax.set_title(name)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", fontsize=8)
  fig.colorbar(sc, ax=axes, label="log10 energy", shrink=0.8)
  if title:
    fig.suptitle(title)
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path
