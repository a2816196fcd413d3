"""Every public name is documented with an example that runs, and the
documentation site's configuration names every page."""

import doctest
import inspect
import pathlib
import re
import tomllib

import pytest

import jaxpool
import jaxpool.linen
import jaxpool.nnx

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = (jaxpool, jaxpool.nnx, jaxpool.linen)
PUBLIC = [(package, name) for package in PACKAGES for name in package.__all__]


def _examples(obj) -> int:
  """Number of doctest examples in ``obj``'s own docstring."""
  finder = doctest.DocTestFinder(recurse=False)
  return sum(len(test.examples) for test in finder.find(obj, getattr(obj, "__name__", "obj")))


def test_every_public_callable_has_an_example_that_the_suite_runs():
  # The examples run under pytest's --doctest-modules over the jaxpool
  # package (pyproject.toml), from the module that defines each object.
  options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
  assert "--doctest-modules" in options["addopts"] and "jaxpool" in options["testpaths"]
  callables = [(p, n) for p, n in PUBLIC if callable(getattr(p, n))]
  missing = [f"{p.__name__}.{n}" for p, n in callables if _examples(getattr(p, n)) == 0]
  assert not missing, f"{len(missing)} of {len(callables)} public names have no example: {missing}"
  outside = [
    f"{p.__name__}.{n}"
    for p, n in callables
    if not inspect.getmodule(getattr(p, n)).__name__.startswith("jaxpool")
  ]
  assert not outside
  assert len(callables) >= 120  # jaxpool.__all__ and both layer packages


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_public_constants_are_documented_in_their_package(package):
  constants = [n for n in package.__all__ if not callable(getattr(package, n))]
  undocumented = [n for n in constants if n not in (package.__doc__ or "")]
  assert not undocumented


def test_mkdocs_navigation_names_existing_pages_and_the_api():
  config = (ROOT / "mkdocs.yml").read_text()
  pages = re.findall(r":\s+([\w/]+\.md)\s*$", config, re.M)
  assert len(pages) >= 15
  for page in pages:
    assert (ROOT / "docs" / page).exists(), page
  api = "".join((ROOT / "docs" / page).read_text() for page in pages)
  documented = set(re.findall(r"^::: ([\w.]+)", api, re.M))
  assert {"jaxpool.nnx", "jaxpool.linen"} <= documented
  functions = {f"jaxpool.{n}" for n in jaxpool.__all__ if callable(getattr(jaxpool, n))}
  assert not functions - documented, sorted(functions - documented)


def test_readme_copies_of_generated_tables_match_their_sources():
  # The README quotes the main job's table and the benchmarks' headline rows;
  # docs/sync_readme.py copies them from their files, so they never drift.
  import subprocess
  import sys

  readme = (ROOT / "README.md").read_text()
  assert "<!-- include: docs/train/results.md -->" in readme
  assert "<!-- include: benchmarks/summary.md:headline -->" in readme
  check = subprocess.run(
    [sys.executable, "docs/sync_readme.py", "--check"], cwd=ROOT, capture_output=True, text=True
  )
  assert check.returncode == 0, check.stdout


def test_benchmark_summary_is_generated_from_the_result_files(tmp_path):
  # benchmarks/summary.md is what benchmarks/summary.py writes from the
  # suites' result files today.
  import importlib.util

  spec = importlib.util.spec_from_file_location("summary", ROOT / "benchmarks" / "summary.py")
  summary = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(summary)
  tables = {name: summary.summarise(summary.HERE / f) for name, _, f in summary.SUITES}
  assert summary.write_summary(tables) == (ROOT / "benchmarks" / "summary.md").read_text()
