"""Regenerate every paper-claim reproduction into one folder, with verdicts.

Each claim is the paper's statement, an experiment on bundled data (the
examples next to this file), the measured result and a verdict computed from
it: *supported*, *not supported* or *inconclusive* (a difference within the
spread over seeds). Everything lands under ``--out`` (default
``docs/claims``): one sub-folder of tables, JSON and figures per experiment,
``claims.json`` with every verdict, and ``docs/claims.md``, the page the
README and the documentation link (written next to ``--out``).

Usage:
  python -m examples.reproduce                     # everything, about 17 minutes on 2 cores
  python -m examples.reproduce --only softpool --only lip
  python -m examples.reproduce --quick --out /tmp/claims   # a smoke run, meaningless numbers
  python -m examples.reproduce --report-only       # re-judge saved results, rewrite the page
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import shutil
from collections.abc import Callable

from examples import (
  detail_preservation,
  dynopool_anisotropy,
  liftpool_reconstruction,
  roi_align_digits,
  shift_consistency,
  train,
)
from examples.verdicts import (
  RANDOM_POOLS,
  judge_anisotropy,
  judge_density,
  judge_lift_reconstruction,
  judge_lift_robustness,
  judge_lip,
  judge_regularisation,
  judge_roi,
  judge_shift,
  judge_softpool,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository


@dataclasses.dataclass(frozen=True)
class Claim:
  """One paper claim: what the paper says, how it is tested, how it is judged."""

  name: str
  paper: str
  statement: str
  experiment: str  # the folder under --out the experiment writes
  judge: Callable[[dict], tuple[str, str]]  # results -> (verdict, measured)


# ---------------------------------------------------------------------------
# Experiments: each runs one example into its folder and returns its results.
# ---------------------------------------------------------------------------


def run_softpool(out: pathlib.Path, quick: bool) -> None:
  detail_preservation.main(["--out", str(out)] + (["--factor", "2"] if quick else []))


def run_liftpool(out: pathlib.Path, quick: bool) -> None:
  liftpool_reconstruction.main(["--out", str(out)] + (["--quick"] if quick else []))


def run_dynopool(out: pathlib.Path, quick: bool) -> None:
  dynopool_anisotropy.main(["--out", str(out)] + (["--quick"] if quick else []))


def run_roi(out: pathlib.Path, quick: bool) -> None:
  roi_align_digits.main(["--out", str(out)] + (["--quick"] if quick else []))


def run_shift(out: pathlib.Path, quick: bool) -> None:
  shift_consistency.main(["--out", str(out)] + (["--quick"] if quick else []))


def _trainer(pools: tuple[str, ...]):
  def run(out: pathlib.Path, quick: bool) -> None:
    argv = ["--out", str(out), "--quiet"] + [a for p in pools for a in ("--pool", p)]
    train.main(argv + (["--epochs", "1", "--seeds", "2"] if quick else ["--seeds", "3"]))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # results only, not the runs

  return run


def _json(name: str, key: str | None = None):
  """A loader of the results an experiment wrote: ``name`` under its folder."""

  def load(out: pathlib.Path) -> dict:
    data = json.loads((out / name).read_text())
    return data[key] if key else data

  return load


# name -> (run it into a folder, load its results from that folder)
EXPERIMENTS = {
  "softpool": (run_softpool, _json("detail.json")),
  "liftpool": (run_liftpool, _json("results.json")),
  "dynopool": (run_dynopool, _json("results.json", "results")),
  "regularisation": (_trainer(("max",) + RANDOM_POOLS), _json("results.json", "results")),
  "lip": (_trainer(("lip", "avg", "max")), _json("results.json", "results")),
  "roi": (run_roi, _json("roi_digits.json", "results")),
  "shift": (run_shift, _json("results.json", "results")),
}


CLAIMS = (
  Claim(
    "SoftPool preserves detail",
    "Stergiou et al., ICCV 2021",
    "Softmax-weighted pooling preserves more of the input's detail than max or average pooling.",
    "softpool",
    judge_softpool,
  ),
  Claim(
    "LiftUpPool refines",
    "Zhao & Snoek, ICLR 2021",
    "LiftUpPool produces a refined output where MaxUnpool's is sparse (bidirectional pooling).",
    "liftpool",
    judge_lift_reconstruction,
  ),
  Claim(
    "LiftPool is robust",
    "Zhao & Snoek, ICLR 2021",
    "LiftDownPool makes a CNN more robust to input corruptions (noise, shifts) than max or average pooling.",
    "liftpool",
    judge_lift_robustness,
  ),
  Claim(
    "DynOPool learns anisotropy",
    "Jang et al., CVPR 2022",
    "A learned pooling ratio adapts to anisotropic inputs: coarser along a stretched axis.",
    "dynopool",
    judge_anisotropy,
  ),
  Claim(
    "DynOPool follows information density",
    "Jang et al., CVPR 2022",
    "Dense detail keeps more resolution than sparse detail (sparse images are down-scaled earlier).",
    "dynopool",
    judge_density,
  ),
  Claim(
    "Stochastic pooling regularises",
    "Zeiler & Fergus 2013; Yu et al. 2014; Zhai et al. 2017; Graham 2014",
    "Random pooling reduces overfitting: a smaller gap between training and test accuracy than max pooling.",
    "regularisation",
    judge_regularisation,
  ),
  Claim(
    "LIP beats its baseline",
    "Gao et al., ICCV 2019",
    "Local importance-based pooling improves accuracy over the same network with its usual pooling.",
    "lip",
    judge_lip,
  ),
  Claim(
    "RoIAlign beats RoIPool",
    "He et al., Mask R-CNN, ICCV 2017",
    "RoIAlign's exact bilinear sampling improves over RoIPool's quantised bins.",
    "roi",
    judge_roi,
  ),
  Claim(
    "Anti-aliasing improves shift consistency",
    "Zhang, ICML 2019",
    "MaxBlurPool (max at stride 1, then a binomial blur at the stride) makes a CNN's predictions"
    " more consistent under input shifts than max pooling, without hurting accuracy.",
    "shift",
    judge_shift,
  ),
)


# ---------------------------------------------------------------------------
# The page.
# ---------------------------------------------------------------------------

FIGURES = {
  "softpool": "detail.png",
  "liftpool": "reconstruction.png",
  "dynopool": "dynopool.png",
  "roi": "roi_digits.png",
  "regularisation": "accuracy.png",
  "lip": "accuracy.png",
  "shift": "consistency.png",
}
TABLES = {
  "softpool": "detail.md",
  "liftpool": "results.md",
  "dynopool": "results.md",
  "roi": "roi_digits.md",
  "regularisation": "results.md",
  "lip": "results.md",
  "shift": "results.md",
}
COMMANDS = {
  "softpool": "python -m examples.detail_preservation",
  "liftpool": "python -m examples.liftpool_reconstruction",
  "dynopool": "python -m examples.dynopool_anisotropy",
  "roi": "python -m examples.roi_align_digits",
  "regularisation": "python -m examples.train --seeds 3 --pool max "
  + " ".join(f"--pool {p}" for p in RANDOM_POOLS),
  "lip": "python -m examples.train --seeds 3 --pool lip --pool avg --pool max",
  "shift": "python -m examples.shift_consistency",
}


def _relative(path: pathlib.Path, start: pathlib.Path) -> pathlib.Path:
  path, start = path.resolve(), start.resolve()
  return path.relative_to(start) if path.is_relative_to(start) else path


def page(verdicts: list[dict], out: pathlib.Path, page_dir: pathlib.Path, quick: bool) -> str:
  rel = _relative(out, page_dir)
  lines = [
    "# Paper claims, measured",
    "",
    "Generated by `python -m examples.reproduce`"
    + (" in `--quick` mode: the numbers are a smoke test, not results." if quick else "."),
    "Each verdict is computed from the measurement: *inconclusive* means a difference"
    " within the spread over seeds (or mixed results). Small CPU experiments on bundled"
    " data test the direction of each claim, not the papers' ImageNet numbers.",
    "",
    "| claim | paper | verdict |",
    "|---|---|---|",
  ]
  for v in verdicts:
    lines.append(f"| [{v['name']}](#{_anchor(v['name'])}) | {v['paper']} | **{v['verdict']}** |")
  figured = set()
  for v in verdicts:
    folder = out / v["experiment"]
    shown = _relative(folder, ROOT)
    lines += [
      "",
      f"## {v['name']}",
      "",
      f"*{v['paper']}*: {v['statement']}",
      "",
      f"**Measured**: {v['measured']}.",
      "",
      f"**Verdict: {v['verdict']}.**",
      "",
      f"Experiment: `{COMMANDS[v['experiment']]}`; outputs in `{shown}`.",
    ]
    figure = folder / FIGURES[v["experiment"]]
    if figure.exists() and v["experiment"] not in figured:
      figured.add(v["experiment"])
      image = rel / v["experiment"] / FIGURES[v["experiment"]]
      lines += ["", f"[![{v['name']}]({image})]({image})", "", "*Click for full size.*"]
  seen = set()
  lines += ["", "## Tables"]
  for v in verdicts:
    if v["experiment"] in seen:
      continue
    seen.add(v["experiment"])
    table = out / v["experiment"] / TABLES[v["experiment"]]
    if table.exists():
      text = table.read_text().replace("\n# ", "\n#### ")
      if text.startswith("# "):
        text = "#### " + text[2:]
      lines += ["", f"### {v['experiment']}", "", text.strip()]
  return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
  return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c == "-")


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--out",
    type=pathlib.Path,
    default=ROOT / "docs" / "claims",
    help="folder for the experiments' outputs (default docs/claims)",
  )
  parser.add_argument(
    "--page",
    type=pathlib.Path,
    default=None,
    help="the Markdown page to write (default: claims.md next to --out)",
  )
  parser.add_argument(
    "--only",
    action="append",
    choices=tuple(EXPERIMENTS),
    help="run only these experiments (repeatable; the others are judged from their saved"
    " results under --out); default: all",
  )
  parser.add_argument(
    "--quick",
    action="store_true",
    help="smoke run: tiny versions of every experiment (numbers mean nothing)",
  )
  parser.add_argument(
    "--report-only",
    action="store_true",
    help="run nothing: judge the results already under --out and rewrite the page",
  )
  args = parser.parse_args(argv)
  page_path = args.page or args.out.parent / f"{args.out.name}.md"
  experiments = args.only or list(EXPERIMENTS)
  results = {}
  for name, (run, load) in EXPERIMENTS.items():
    if name in experiments and not args.report_only:
      print(f"== {name}", flush=True)
      run(args.out / name, args.quick)
      results[name] = load(args.out / name)
    elif (args.out / name).exists():  # judged again from its saved results
      results[name] = load(args.out / name)
  verdicts = []
  for claim in CLAIMS:
    if claim.experiment in results:
      verdict, measured = claim.judge(results[claim.experiment])
      verdicts.append(
        {
          "name": claim.name,
          "paper": claim.paper,
          "statement": claim.statement,
          "experiment": claim.experiment,
          "verdict": verdict,
          "measured": measured,
        }
      )
  args.out.mkdir(parents=True, exist_ok=True)
  if args.report_only and (args.out / "claims.json").exists():
    args.quick = json.loads((args.out / "claims.json").read_text())["quick"]
  (args.out / "claims.json").write_text(
    json.dumps({"quick": args.quick, "claims": verdicts}, indent=2)
  )
  page_path.write_text(page(verdicts, args.out, page_path.parent, args.quick))
  print()
  for v in verdicts:
    print(f"{v['verdict']:>14}: {v['name']}")
  print(f"wrote {args.out / 'claims.json'} and {page_path}")
  return verdicts


if __name__ == "__main__":
  main()
