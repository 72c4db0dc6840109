"""PyTorch reference of ``audiogs_jax.models.unet.UNet``: same layers, same padding.

Used only to time the published-style PyTorch network on the same machine
(``scripts/bench_audio3dgs.py``) and to check, by copying the flax parameters
into it, that the two implementations compute the same function.

Architecture (as ``UNet``): pad the input once at the bottom/right to a
multiple of ``2**levels`` (reflect), encoder of (conv3x3 -> GroupNorm -> ReLU) x 2
blocks with 2x2 max-pools, decoder of 2x2 stride-2 ``ConvTranspose2d``, concat
[skip, up], block, then a 1x1 conv, cropped back to F x T. ``norm="batch"``
gives the BatchNorm variant of the common PyTorch U-Net (timed in eval mode)
for reference; ``norm="none"`` drops normalisation.

Usage::

    python scripts/torch_unet_reference.py                # time one [1, 2, 257, 173] forward
    python scripts/torch_unet_reference.py --check        # compare with the flax UNet (small width)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def num_groups(channels: int, max_groups: int = 32) -> int:
  return math.gcd(max_groups, channels)


class ConvBlock(nn.Module):

  def __init__(self, cin: int, cout: int, norm: str = "group"):
    super().__init__()
    layers = []
    for i in range(2):
      layers.append(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1))
      if norm == "group":
        layers.append(nn.GroupNorm(num_groups(cout), cout, eps=1e-5))
      elif norm == "batch":
        layers.append(nn.BatchNorm2d(cout))
      elif norm != "none":
        raise ValueError(norm)
      layers.append(nn.ReLU(inplace=True))
    self.net = nn.Sequential(*layers)

  def forward(self, x):
    return self.net(x)


class TorchUNet(nn.Module):
  """NCHW ``[B, C_in, F, T]`` -> ``[B, out_channels, F, T]`` logits."""

  def __init__(self, base_width: int = 64, levels: int = 4, in_channels: int = 2,
               out_channels: int = 2, norm: str = "group", pad_mode: str = "reflect"):
    super().__init__()
    self.levels = levels
    self.pad_mode = pad_mode
    widths = [base_width * 2 ** i for i in range(levels + 1)]
    self.enc = nn.ModuleList([ConvBlock(in_channels, widths[0], norm)] + [
        ConvBlock(widths[i - 1], widths[i], norm) for i in range(1, levels + 1)])
    self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                             for i in range(levels)])
    self.dec = nn.ModuleList([ConvBlock(2 * widths[i], widths[i], norm)
                              for i in range(levels)])
    self.head = nn.Conv2d(widths[0], out_channels, 1)

  def forward(self, x):
    h, w = x.shape[-2:]
    m = 2 ** self.levels
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
      x = F.pad(x, (0, pw, 0, ph), mode=self.pad_mode)
    skips = []
    x = self.enc[0](x)
    for i in range(1, self.levels + 1):
      skips.append(x)
      x = self.enc[i](F.max_pool2d(x, 2))
    for i in reversed(range(self.levels)):
      x = self.dec[i](torch.cat([skips[i], self.up[i](x)], dim=1))
    return self.head(x)[..., :h, :w]


def load_flax_params(model: TorchUNet, params) -> None:
  """Copy ``UNet`` flax parameters (``{"params": ...}`` or the inner dict) into ``model``."""
  p = params.get("params", params)
  t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())

  def block(tb: ConvBlock, fb):
    convs = [m for m in tb.net if isinstance(m, nn.Conv2d)]
    norms = [m for m in tb.net if isinstance(m, nn.GroupNorm)]
    for j, conv in enumerate(convs):
      conv.weight.data = t(fb[f"conv_{j}"]["kernel"]).permute(3, 2, 0, 1).contiguous()
      conv.bias.data = t(fb[f"conv_{j}"]["bias"])
    for j, gn in enumerate(norms):
      gn.weight.data = t(fb[f"norm_{j}"]["scale"])
      gn.bias.data = t(fb[f"norm_{j}"]["bias"])

  for i, b in enumerate(model.enc):
    block(b, p[f"enc_{i}"])
  for i, b in enumerate(model.dec):
    block(b, p[f"dec_{i}"])
    # flax kernel [C_in, 2, 2, C_out] == torch ConvTranspose2d weight [C_in, C_out, 2, 2].
    model.up[i].weight.data = t(p[f"up_{i}"]["kernel"]).permute(0, 3, 1, 2).contiguous()
    model.up[i].bias.data = t(p[f"up_{i}"]["bias"])
  model.head.weight.data = t(p["head"]["kernel"]).permute(3, 2, 0, 1).contiguous()
  model.head.bias.data = t(p["head"]["bias"])


def time_forward(width: int = 64, batch: int = 1, freqs: int = 257, frames: int = 173,
                 repeats: int = 5, norm: str = "group", threads: int | None = None) -> dict:
  """Median / min forward time of ``TorchUNet`` on CPU after warm-up, in ms per clip."""
  torch.set_num_threads(threads or os.cpu_count() or 1)
  torch.manual_seed(0)
  model = TorchUNet(base_width=width, norm=norm).eval()
  x = torch.randn(batch, 2, freqs, frames)
  with torch.inference_mode():
    model(x)
    model(x)
    ts = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      model(x)
      ts.append(time.perf_counter() - t0)
  ts.sort()
  return {"model": "torch_unet_reference", "norm": norm, "width": width, "batch": batch,
          "threads": torch.get_num_threads(), "torch_version": torch.__version__,
          "ms_per_clip": 1e3 * ts[len(ts) // 2] / batch,
          "min_ms_per_clip": 1e3 * ts[0] / batch}


def check_against_flax(width: int = 4, freqs: int = 37, frames: int = 23) -> float:
  """Max abs difference between the flax UNet and this model on the same weights."""
  import jax
  from audiogs_jax.models.unet import UNet, init_unet
  x = np.random.RandomState(0).randn(2, freqs, frames, 2).astype(np.float32)
  fm = UNet(base_width=width)
  params = init_unet(fm, jax.random.PRNGKey(0))
  # Perturb the GroupNorm affine parameters so that they are exercised too.
  params = jax.tree_util.tree_map_with_path(
      lambda path, a: a + 0.1 * np.random.RandomState(len(path)).randn(*a.shape).astype(
          np.float32), params)
  y_jax = np.asarray(jax.jit(fm.apply).lower(params, x).compile(
      {"xla_backend_optimization_level": 0})(params, x))
  tm = TorchUNet(base_width=width).eval()
  load_flax_params(tm, params)
  with torch.no_grad():
    y_t = tm(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
  return float(np.max(np.abs(y_jax - y_t)))


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--width", type=int, default=64)
  ap.add_argument("--batch", type=int, default=1)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--norm", default="group", choices=["group", "batch", "none"])
  ap.add_argument("--threads", type=int, default=None)
  ap.add_argument("--check", action="store_true",
                  help="compare with the flax UNet on copied weights instead of timing")
  a = ap.parse_args()
  if a.check:
    print(json.dumps({"max_abs_diff_vs_flax": check_against_flax()}))
    return
  print(json.dumps(time_forward(a.width, a.batch, repeats=a.repeats, norm=a.norm,
                                threads=a.threads)))


if __name__ == "__main__":
  main()
