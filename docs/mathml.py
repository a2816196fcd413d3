"""MkDocs hook: the site's formulas as MathML, rendered when the site is built.

Pages and docstrings write math as ``$...$`` (inline) or ``$$...$$`` (a
display block); ``pymdownx.arithmatex`` in generic mode marks them, and this
hook converts each to MathML with ``latex2mathml``. Browsers render MathML
natively, so a page needs no JavaScript, no font download and no CDN, and
the build needs no network.

Used from mkdocs.yml (``hooks: [docs/mathml.py]``).
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_BLOCK = re.compile(r'<div class="arithmatex">\s*\\\[(.*?)\\\]\s*</div>', re.S)
_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)


def _mathml(latex: str, display: str) -> str:
  return convert(html.unescape(latex).strip(), display=display)


def on_page_content(html_text: str, **_) -> str:
  html_text = _BLOCK.sub(lambda m: _mathml(m.group(1), "block"), html_text)
  return _INLINE.sub(lambda m: _mathml(m.group(1), "inline"), html_text)
