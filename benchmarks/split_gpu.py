"""Splits what ``benchmarks/run_gpu.sh`` wrote into one result file per suite.

``python benchmarks/split_gpu.py GPU_RESULTS.md [...]`` writes each
``<!-- suite: NAME -->`` section to ``benchmarks/<stem>-gpu.md`` (the stem
``run.py`` gives the suite on a GPU), its command line without the temporary
``--out`` path. Later files replace earlier files' sections.
"""

from __future__ import annotations

import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from suites import load  # noqa: E402


def sections(text: str) -> dict[str, str]:
  """``{suite name: its markdown}`` of one combined file."""
  parts = re.split(r"^<!-- suite: (\w+) -->\n", text, flags=re.M)
  return {name: body.strip() + "\n" for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def main(paths: list[str]) -> int:
  found = {}
  for path in paths:
    found.update(sections(pathlib.Path(path).read_text()))
  for name, body in found.items():
    out = HERE / f"{load(name).stem}-gpu.md"
    out.write_text(re.sub(r" --out \S+`", "`", body))
    print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main(sys.argv[1:]))
