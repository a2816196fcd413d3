"""The docs site builds and renders the docstrings as markdown.

One ``mkdocs build --strict`` (which fails on an unresolved cross-reference)
into a temporary folder, then checks on every page's rendered text: no reST
roles or literal-block markers left as text, and the layer pages show the
constructor signatures. Skipped when mkdocs is not installed (the ``docs``
extra).
"""

from __future__ import annotations

import html
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python is not installed")


def _text(page: str, *, drop_code: bool) -> str:
  """A page's visible text: tags stripped, entities decoded, whitespace collapsed."""
  page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
  if drop_code:
    page = re.sub(r"<(pre|code)\b.*?</\1>", " ", page, flags=re.S)
  return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", page)))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, str]:
  """Builds the site once; the HTML of every page by path."""
  out = tmp_path_factory.mktemp("site")
  env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
  result = subprocess.run(
    [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
  pages = {
    str(p.relative_to(out)): p.read_text(encoding="utf-8")
    for p in out.rglob("*.html")
    if p.name != "404.html"
  }
  shutil.rmtree(out, ignore_errors=True)
  assert pages, "the build wrote no pages"
  return pages


def test_no_rest_roles(site):
  role = re.compile(r":(func|class|meth|mod|attr|data|obj|exc):`?")
  found = [
    f"{path}: ...{text[max(m.start() - 40, 0) : m.end() + 40]}..."
    for path, page in site.items()
    for text in [_text(page, drop_code=False)]
    for m in role.finditer(text)
  ]
  assert not found, "reST roles rendered as text:\n" + "\n".join(found)


def test_no_rest_literal_markers(site):
  # A word followed by ``::`` at the end of a paragraph (reST's literal-block
  # marker); code blocks may hold ``::`` legitimately (C++, slices).
  marker = re.compile(r"\w::</p>")
  found = [
    f"{path}: ...{page[max(m.start() - 60, 0) : m.end()]}"
    for path, page in site.items()
    for m in marker.finditer(re.sub(r"<(pre|code)\b.*?</\1>", " ", page, flags=re.S))
  ]
  assert not found, "reST literal markers rendered as text:\n" + "\n".join(found)


def _entry(site, page: str, name: str) -> str:
  """The HTML of API entry ``name`` on ``page``, up to the next documented
  object (for a class: its own docstring, before its members)."""
  html_page = site[f"{page}/index.html"]
  start = html_page.find(f'id="{name}"')
  assert start >= 0, f"no {name} entry on {page}/index.html"
  end = html_page.find('<div class="doc doc-object', start)
  return html_page[start : end if end > 0 else None]


@pytest.mark.parametrize("page", ["nnx", "linen"])
def test_layer_signatures(site, page):
  """The MaxPool entry shows its constructor's signature with the defaults."""
  entry = _entry(site, page, f"jaxpool.{page}.MaxPool")
  signature = re.search(r'<div class="doc-signature.*?</pre>', entry, flags=re.S)
  assert signature, f"jaxpool.{page}.MaxPool shows no signature"
  text = _text(signature.group(0), drop_code=False)
  assert re.search(r"\bMaxPool\s*\(\s*window_shape\b", text), text
  assert re.search(r"\bstrides\b[^=,]*=\s*None\b", text), text
  assert re.search(r"\bpadding\b[^=,]*=\s*['\"]VALID['\"]", text), text
  assert "*args" not in text, text


def test_math_renders_as_mathml(site):
  """Formulas (``$...$``, ``$$...$$``) reach the pages as MathML, none as
  LaTeX source or an unconverted arithmatex wrapper."""
  for page in ("classic/index.html", "weighted/index.html"):
    assert site[page].count("<math ") >= 3, page
  leftovers = [
    f"{path}: ...{page[max(m.start() - 60, 0) : m.end() + 60]}"
    for path, page in site.items()
    for m in re.finditer(r'class="arithmatex"|\\\(|\\\[|\$\$', page)
  ]
  assert not leftovers, "math not converted:\n" + "\n".join(leftovers[:10])


@pytest.mark.parametrize(
  ("page", "name", "display"),
  [
    ("classic", "jaxpool.max_pool", "inline"),
    ("second_order", "jaxpool.covariance_pool", "block"),
    ("nnx", "jaxpool.nnx.NetVLAD", "inline"),
  ],
)
def test_docstring_math_renders_as_mathml(site, page, name, display):
  """A docstring's formulas (``$...$``, ``$$...$$``) reach its API entry as
  MathML."""
  entry = _entry(site, page, name)
  assert re.search(rf'<math [^>]*display="{display}"', entry), f"{name}: no {display} MathML"
