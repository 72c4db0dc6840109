"""The package's structure, checked: layers (import-linter), no import cycles, no
first-party import inside a function, small modules and functions."""

import ast
import pathlib

import grimp
import pytest
from importlinter import cli as importlinter_cli

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "audiogs_jax"
ROOT = PACKAGE.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules():
  return sorted(PACKAGE.rglob("*.py"))


def test_layers_contract_holds(monkeypatch):
  """``lint-imports`` with the ``[tool.importlinter]`` contract of pyproject.toml."""
  monkeypatch.chdir(ROOT)
  assert importlinter_cli.lint_imports(config_filename="pyproject.toml", no_cache=True) == 0


def test_no_import_cycles():
  """No module reaches itself through imports, counting imports inside functions."""
  graph = grimp.build_graph("audiogs_jax", include_external_packages=False)
  cycles = []
  for importer in sorted(graph.modules):
    for imported in sorted(graph.find_modules_directly_imported_by(importer)):
      back = graph.find_shortest_chain(importer=imported, imported=importer)
      if back:
        cycles.append(" -> ".join((importer,) + tuple(back)))
  assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_cycle_check_can_fail(tmp_path, monkeypatch):
  """The cycle check above sees a cycle made by an import inside a function."""
  pkg = tmp_path / "cyc_pkg"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "a.py").write_text("from cyc_pkg import b\n")
  (pkg / "b.py").write_text("def f():\n  from cyc_pkg import a\n  return a\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  graph = grimp.build_graph("cyc_pkg", include_external_packages=False, cache_dir=None)
  assert graph.find_shortest_chain(importer="cyc_pkg.b", imported="cyc_pkg.a")


def _function_imports(tree):
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      for inner in ast.walk(node):
        if isinstance(inner, ast.ImportFrom):
          mod = "." * inner.level + (inner.module or "")
          if inner.level or mod.startswith("audiogs_jax"):
            yield node.name, inner.lineno, mod
        elif isinstance(inner, ast.Import):
          for alias in inner.names:
            if alias.name.startswith("audiogs_jax"):
              yield node.name, inner.lineno, alias.name


def test_no_first_party_import_inside_functions():
  found = [f"{p.relative_to(ROOT)}:{line} in {fn}(): {mod}"
           for p in _modules() for fn, line, mod in _function_imports(ast.parse(p.read_text()))]
  assert not found, "\n".join(found)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_and_function_sizes(path):
  text = path.read_text()
  assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path} is over {MAX_MODULE_LINES} lines"
  long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
          for node in ast.walk(ast.parse(text))
          if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
          and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
  assert not long, f"{path}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
