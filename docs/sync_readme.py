"""Keep the README's copies of generated tables equal to their sources.

GitHub shows README.md as it is, so it cannot include files the way the
site does (``pymdownx.snippets``). Instead each copied block sits between
markers naming its source, a file or a snippet section of one::

    <!-- include: benchmarks/summary.md:headline -->
    ...
    <!-- end include -->

``python docs/sync_readme.py`` rewrites every block from its source;
``--check`` only reports the stale ones (``tests/test_docs.py`` runs it).
"""

from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(
  r"(<!-- include: (?P<source>\S+) -->\n)(?P<body>.*?)(<!-- end include -->)", re.S
)


def source_text(source: str) -> str:
  """A file's text, or the lines between its ``--8<-- [start:NAME]`` and
  ``--8<-- [end:NAME]`` markers for ``PATH:NAME``."""
  path, _, section = source.partition(":")
  text = (ROOT / path).read_text()
  if not section:
    return text.rstrip("\n") + "\n"
  lines = text.splitlines()
  start = next(i for i, line in enumerate(lines) if f"--8<-- [start:{section}]" in line)
  end = next(i for i, line in enumerate(lines) if f"--8<-- [end:{section}]" in line)
  return "\n".join(lines[start + 1 : end]) + "\n"


def synced(readme: str) -> str:
  return BLOCK.sub(lambda m: m.group(1) + source_text(m.group("source")) + m.group(4), readme)


def main(argv: list[str]) -> int:
  path = ROOT / "README.md"
  readme = path.read_text()
  new = synced(readme)
  if "--check" in argv:
    stale = [
      m.group("source")
      for m in BLOCK.finditer(readme)
      if m.group("body") != source_text(m.group("source"))
    ]
    if stale:
      print(
        "README.md is out of date for: " + ", ".join(stale) + "; run python docs/sync_readme.py"
      )
    return 1 if stale else 0
  path.write_text(new)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
