"""scripts/bench_audio3dgs.py runs end to end (tiny width, no timing claims)."""

import pathlib
import sys

import pytest

from audiogs_jax import backend

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def bench_audio3dgs():
  sys.path.insert(0, str(SCRIPTS))
  try:
    import bench_audio3dgs
    yield bench_audio3dgs
  finally:
    sys.path.remove(str(SCRIPTS))
    backend.restore_host_allocator()  # bench() leaves the tuned allocator on


def test_bench_audio3dgs_record(bench_audio3dgs):
  r = bench_audio3dgs.bench(width=2, batch=1, repeats=1, train_step=False, with_torch=False)
  assert r["model"] == "audio3dgs_unet" and r["grid"] == [257, 173]
  for key in ("ms_per_clip", "min_ms_per_clip", "unet_ms_per_clip",
              "unet_xla_defaults_ms_per_clip", "compile_s"):
    assert r[key] > 0, key
  assert r["torch_ms_per_clip"] is None and r["unet_vs_torch"] is None
  assert r["xla_compiler_options"] == backend.conv_compiler_options()
  steal = r["host_steal_fraction"]
  assert steal is None or 0.0 <= steal <= 1.0
