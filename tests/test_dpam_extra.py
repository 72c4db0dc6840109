"""The ``dpam`` extra: what ``pip install -e ".[dpam]"`` installs must be
enough for DPAM to run (cdpam imports resampy without declaring it)."""

from __future__ import annotations

import importlib.util
import pathlib
import tomllib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def _extra(name: str) -> list:
  meta = tomllib.loads((REPO / "pyproject.toml").read_text())
  return meta["project"]["optional-dependencies"][name]


def test_dpam_extra_declares_what_cdpam_imports():
  names = {r.split(">")[0].split("=")[0].split("[")[0].strip().lower()
           for r in _extra("dpam")}
  assert {"cdpam", "torch", "resampy"} <= names


def test_test_extra_has_hypothesis():
  assert any(r.startswith("hypothesis") for r in _extra("test"))


@pytest.mark.skipif(importlib.util.find_spec("cdpam") is None,
                    reason="the dpam extra is not installed here (CI without it); "
                           "its declaration is checked by the test above")
def test_installed_dpam_extra_imports_and_is_available():
  import resampy  # noqa: F401
  import torch  # noqa: F401
  import cdpam  # noqa: F401
  from audiogs_jax import dpam
  assert dpam.dpam_available()
