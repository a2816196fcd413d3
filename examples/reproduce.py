"""Regenerate every paper-claim reproduction into one folder, with verdicts.

Each claim is the paper's statement, an experiment on bundled data (the
examples next to this file), the measured result and a verdict computed from
it: *supported*, *not supported* or *inconclusive* (a difference within the
spread over seeds). Everything lands under ``--out`` (default
``docs/claims``): one sub-folder of tables, JSON and figures per experiment,
``claims.json`` with every verdict, and ``docs/claims.md``, the page the
README and the documentation link (written next to ``--out``).

Usage:
  python -m examples.reproduce                     # everything, about 15 minutes on 2 cores
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

import numpy as np

from examples import (
    detail_preservation,
    dynopool_anisotropy,
    liftpool_reconstruction,
    roi_align_digits,
    train,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


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


RANDOM_POOLS = ("stochastic", "mixed", "s3", "fractional")
# name -> (run it into a folder, load its results from that folder)
EXPERIMENTS = {
    "softpool": (run_softpool, _json("detail.json")),
    "liftpool": (run_liftpool, _json("results.json")),
    "dynopool": (run_dynopool, _json("results.json", "results")),
    "regularisation": (_trainer(("max",) + RANDOM_POOLS), _json("results.json", "results")),
    "lip": (_trainer(("lip", "avg", "max")), _json("results.json", "results")),
    "roi": (run_roi, _json("roi_digits.json", "results")),
}


# ---------------------------------------------------------------------------
# Verdicts.
# ---------------------------------------------------------------------------


def judge_softpool(r: dict) -> tuple[str, str]:
  mean = r["mean"]
  soft, avg, mx = (mean[m] for m in ("soft", "avg", "max"))
  measured = (f"mean PSNR / SSIM of a x{r['config']['factor']} round trip over 8 images:"
              f" soft {soft['psnr']:.2f} dB / {soft['ssim']:.3f}, avg {avg['psnr']:.2f} /"
              f" {avg['ssim']:.3f}, max {mx['psnr']:.2f} / {mx['ssim']:.3f}")
  beats = [soft[k] > other[k] for other in (avg, mx) for k in ("psnr", "ssim")]
  if all(beats):
    return SUPPORTED, measured
  if not any(soft[k] > avg[k] for k in ("psnr", "ssim")):
    return NOT_SUPPORTED, measured + " (SoftPool beats max pooling but trails average pooling)"
  return INCONCLUSIVE, measured


def judge_lift_reconstruction(r: dict) -> tuple[str, str]:
  rec = r["reconstruction"]
  lift, mx = rec["lift LeGall 5/3"], rec["max + unpool"]
  measured = (f"held-out PSNR / SSIM: LiftDownPool + LiftUpPool {lift['psnr']:.2f} dB /"
              f" {lift['ssim']:.3f}, learned {rec['lift learned']['psnr']:.2f} /"
              f" {rec['lift learned']['ssim']:.3f}; max + max_unpool {mx['psnr']:.2f} /"
              f" {mx['ssim']:.3f}; avg + bilinear {rec['avg + bilinear']['psnr']:.2f} /"
              f" {rec['avg + bilinear']['ssim']:.3f}")
  if lift["psnr"] > mx["psnr"] and lift["ssim"] > mx["ssim"]:
    return SUPPORTED, measured
  return NOT_SUPPORTED, measured


def judge_lift_robustness(r: dict) -> tuple[str, str]:
  rob = r["robustness"]
  corruptions = [k for k in rob["lift"] if k != "clean"]
  diffs = {k: rob["lift"][k] - max(rob["max"][k], rob["avg"][k]) for k in corruptions}
  measured = "accuracy, lift minus the better of max and avg: " + ", ".join(
      f"{k} {v:+.3f}" for k, v in diffs.items()) + " (one seed, 360 test images: 0.003 is one image)"
  if all(v > 0 for v in diffs.values()):
    return SUPPORTED, measured
  if all(v < 0 for v in diffs.values()):
    return NOT_SUPPORTED, measured
  return INCONCLUSIVE, measured + "; better under some corruptions, worse under others"


def _ratios(r: dict, dataset: str) -> np.ndarray:
  return np.asarray(r[dataset]["ratio"])  # (poolings, axes): r = out / in, (H, W)


def judge_anisotropy(r: dict) -> tuple[str, str]:
  ratio = _ratios(r, "stretched")
  measured = "learned r = out / in (H, W) per pooling on digits stretched along H: " + "; ".join(
      f"{h:.2f}, {w:.2f}" for h, w in ratio)
  if (ratio[:, 0] < ratio[:, 1]).all():
    return SUPPORTED, measured + " (every pooling coarser along the stretched axis)"
  if (ratio[:, 0] >= ratio[:, 1]).all():
    return NOT_SUPPORTED, measured
  return INCONCLUSIVE, measured


def judge_density(r: dict) -> tuple[str, str]:
  tiled, enlarged = _ratios(r, "tiled").mean(axis=1), _ratios(r, "enlarged").mean(axis=1)
  measured = ("mean learned r per pooling, dense (tiled) digits " + ", ".join(f"{v:.2f}" for v in tiled)
              + "; sparse (enlarged) digits " + ", ".join(f"{v:.2f}" for v in enlarged))
  if (tiled > enlarged).all():
    return SUPPORTED, measured
  if (tiled <= enlarged).all():
    return NOT_SUPPORTED, measured + " (the sparse images keep as much resolution or more)"
  return INCONCLUSIVE, measured


def _gap(result: dict) -> tuple[float, float]:
  """Mean and std over seeds of train minus test accuracy."""
  gaps = [s["train_accuracy"] - s["test_accuracy"] for s in result["seeds"].values()]
  return float(np.mean(gaps)), float(np.std(gaps))


def judge_regularisation(r: dict) -> tuple[str, str]:
  base, base_std = _gap(r["max"])
  parts = [f"max {base:.3f} ± {base_std:.3f}"]
  smaller = larger = 0
  for pool in RANDOM_POOLS:
    gap, std = _gap(r[pool])
    parts.append(f"{pool} {gap:.3f} ± {std:.3f} (test {r[pool]['test_accuracy_mean']:.3f})")
    if gap < base - (std + base_std):
      smaller += 1
    elif gap > base + (std + base_std):
      larger += 1
  measured = ("train minus test accuracy (both in inference mode), mean ± std over seeds, with max"
              " pooling as the baseline: " + "; ".join(parts)
              + f"; max pooling's test accuracy {r['max']['test_accuracy_mean']:.3f}")
  if smaller == len(RANDOM_POOLS):
    return SUPPORTED, measured
  if smaller == 0:
    return NOT_SUPPORTED if larger else INCONCLUSIVE, measured
  return INCONCLUSIVE, measured + f" ({smaller} of {len(RANDOM_POOLS)} smaller beyond the spread)"


def _compare(r: dict, ours: str, base: str) -> tuple[float, float]:
  diff = r[ours]["test_accuracy_mean"] - r[base]["test_accuracy_mean"]
  return diff, r[ours]["test_accuracy_std"] + r[base]["test_accuracy_std"]


def judge_lip(r: dict) -> tuple[str, str]:
  measured = "test accuracy, mean ± std over seeds: " + ", ".join(
      f"{p} {r[p]['test_accuracy_mean']:.4f} ± {r[p]['test_accuracy_std']:.4f}" for p in ("lip", "avg", "max"))
  verdicts = []
  for base in ("avg", "max"):
    diff, spread = _compare(r, "lip", base)
    verdicts.append(SUPPORTED if diff > spread else NOT_SUPPORTED if diff < -spread else INCONCLUSIVE)
  verdict = verdicts[0] if len(set(verdicts)) == 1 else INCONCLUSIVE
  return verdict, measured + " (LIP starts as average pooling; the baselines are the same CNN)"


def judge_roi(r: dict) -> tuple[str, str]:
  align, pool = r["roi_align aligned"], r["roi_pool"]
  measured = ", ".join(
      f"{name}: exact boxes {v['clean']['mean']:.3f} ± {v['clean']['std']:.3f}, jittered"
      f" {v['jittered']['mean']:.3f} ± {v['jittered']['std']:.3f}" for name, v in r.items()
      if isinstance(v, dict) and "clean" in v)
  diff = align["clean"]["mean"] - pool["clean"]["mean"]
  spread = align["clean"]["std"] + pool["clean"]["std"]
  verdict = SUPPORTED if diff > spread else NOT_SUPPORTED if diff < -spread else INCONCLUSIVE
  return verdict, measured


CLAIMS = (
    Claim("SoftPool preserves detail", "Stergiou et al., ICCV 2021",
          "Softmax-weighted pooling preserves more of the input's detail than max or average pooling.",
          "softpool", judge_softpool),
    Claim("LiftUpPool refines", "Zhao & Snoek, ICLR 2021",
          "LiftUpPool produces a refined output where MaxUnpool's is sparse (bidirectional pooling).",
          "liftpool", judge_lift_reconstruction),
    Claim("LiftPool is robust", "Zhao & Snoek, ICLR 2021",
          "LiftDownPool makes a CNN more robust to input corruptions (noise, shifts) than max or average pooling.",
          "liftpool", judge_lift_robustness),
    Claim("DynOPool learns anisotropy", "Jang et al., CVPR 2022",
          "A learned pooling ratio adapts to anisotropic inputs: coarser along a stretched axis.",
          "dynopool", judge_anisotropy),
    Claim("DynOPool follows information density", "Jang et al., CVPR 2022",
          "Dense detail keeps more resolution than sparse detail (sparse images are down-scaled earlier).",
          "dynopool", judge_density),
    Claim("Stochastic pooling regularises", "Zeiler & Fergus 2013; Yu et al. 2014; Zhai et al. 2017; Graham 2014",
          "Random pooling reduces overfitting: a smaller gap between training and test accuracy than max pooling.",
          "regularisation", judge_regularisation),
    Claim("LIP beats its baseline", "Gao et al., ICCV 2019",
          "Local importance-based pooling improves accuracy over the same network with its usual pooling.",
          "lip", judge_lip),
    Claim("RoIAlign beats RoIPool", "He et al., Mask R-CNN, ICCV 2017",
          "RoIAlign's exact bilinear sampling improves over RoIPool's quantised bins.",
          "roi", judge_roi),
)


# ---------------------------------------------------------------------------
# The page.
# ---------------------------------------------------------------------------

FIGURES = {"softpool": "detail.png", "liftpool": "reconstruction.png",
           "dynopool": "dynopool.png", "roi": "roi_digits.png",
           "regularisation": "accuracy.png", "lip": "accuracy.png"}
TABLES = {"softpool": "detail.md", "liftpool": "results.md", "dynopool": "results.md",
          "roi": "roi_digits.md", "regularisation": "results.md", "lip": "results.md"}
COMMANDS = {
    "softpool": "python -m examples.detail_preservation",
    "liftpool": "python -m examples.liftpool_reconstruction",
    "dynopool": "python -m examples.dynopool_anisotropy",
    "roi": "python -m examples.roi_align_digits",
    "regularisation": "python -m examples.train --seeds 3 --pool max " + " ".join(f"--pool {p}" for p in RANDOM_POOLS),
    "lip": "python -m examples.train --seeds 3 --pool lip --pool avg --pool max",
}


def _relative(path: pathlib.Path, start: pathlib.Path) -> pathlib.Path:
  path, start = path.resolve(), start.resolve()
  return path.relative_to(start) if path.is_relative_to(start) else path


def page(verdicts: list[dict], out: pathlib.Path, page_dir: pathlib.Path, quick: bool) -> str:
  rel = _relative(out, page_dir)
  lines = ["# Paper claims, measured", "",
           "Generated by `python -m examples.reproduce`"
           + (" in `--quick` mode: the numbers are a smoke test, not results." if quick else "."),
           "Each verdict is computed from the measurement: *inconclusive* means a difference"
           " within the spread over seeds (or mixed results). Small CPU experiments on bundled"
           " data test the direction of each claim, not the papers' ImageNet numbers.", "",
           "| claim | paper | verdict |", "|---|---|---|"]
  for v in verdicts:
    lines.append(f"| [{v['name']}](#{_anchor(v['name'])}) | {v['paper']} | **{v['verdict']}** |")
  figured = set()
  for v in verdicts:
    folder = out / v["experiment"]
    shown = _relative(folder, ROOT)
    lines += ["", f"## {v['name']}", "", f"*{v['paper']}*: {v['statement']}", "",
              f"**Measured**: {v['measured']}.", "", f"**Verdict: {v['verdict']}.**", "",
              f"Experiment: `{COMMANDS[v['experiment']]}`; outputs in `{shown}`."]
    figure = folder / FIGURES[v["experiment"]]
    if figure.exists() and v["experiment"] not in figured:
      figured.add(v["experiment"])
      lines += ["", f"![{v['name']}]({rel / v['experiment'] / FIGURES[v['experiment']]})"]
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
  parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "claims",
                      help="folder for the experiments' outputs (default docs/claims)")
  parser.add_argument("--page", type=pathlib.Path, default=None,
                      help="the Markdown page to write (default: claims.md next to --out)")
  parser.add_argument("--only", action="append", choices=tuple(EXPERIMENTS),
                      help="run only these experiments (repeatable); default: all")
  parser.add_argument("--quick", action="store_true",
                      help="smoke run: tiny versions of every experiment (numbers mean nothing)")
  parser.add_argument("--report-only", action="store_true",
                      help="run nothing: judge the results already under --out and rewrite the page")
  args = parser.parse_args(argv)
  page_path = args.page or args.out.parent / f"{args.out.name}.md"
  experiments = args.only or list(EXPERIMENTS)
  results = {}
  for name in experiments:
    run, load = EXPERIMENTS[name]
    if not args.report_only:
      print(f"== {name}", flush=True)
      run(args.out / name, args.quick)
    results[name] = load(args.out / name)
  verdicts = []
  for claim in CLAIMS:
    if claim.experiment in results:
      verdict, measured = claim.judge(results[claim.experiment])
      verdicts.append({"name": claim.name, "paper": claim.paper, "statement": claim.statement,
                       "experiment": claim.experiment, "verdict": verdict, "measured": measured})
  args.out.mkdir(parents=True, exist_ok=True)
  if args.report_only and (args.out / "claims.json").exists():
    args.quick = json.loads((args.out / "claims.json").read_text())["quick"]
  (args.out / "claims.json").write_text(json.dumps({"quick": args.quick, "claims": verdicts}, indent=2))
  page_path.write_text(page(verdicts, args.out, page_path.parent, args.quick))
  print()
  for v in verdicts:
    print(f"{v['verdict']:>14}: {v['name']}")
  print(f"wrote {args.out / 'claims.json'} and {page_path}")
  return verdicts


if __name__ == "__main__":
  main()
