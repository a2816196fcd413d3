"""The verdicts of ``examples.reproduce``: one judge per paper claim, from an
experiment's saved results to ``(verdict, what was measured)``.

A verdict is *supported*, *not supported* or *inconclusive* (a difference
within the spread over seeds).
"""

from __future__ import annotations

import numpy as np

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"

# The stochastic poolings whose regularisation claim is judged against max pooling.
RANDOM_POOLS = ("stochastic", "mixed", "s3", "fractional")


def judge_softpool(r: dict) -> tuple[str, str]:
  mean = r["mean"]
  soft, avg, mx = (mean[m] for m in ("soft", "avg", "max"))
  measured = (
    f"mean PSNR / SSIM of a x{r['config']['factor']} round trip over 8 images:"
    f" soft {soft['psnr']:.2f} dB / {soft['ssim']:.3f}, avg {avg['psnr']:.2f} /"
    f" {avg['ssim']:.3f}, max {mx['psnr']:.2f} / {mx['ssim']:.3f}"
  )
  beats = [soft[k] > other[k] for other in (avg, mx) for k in ("psnr", "ssim")]
  if all(beats):
    return SUPPORTED, measured
  if not any(soft[k] > avg[k] for k in ("psnr", "ssim")):
    return NOT_SUPPORTED, measured + " (SoftPool beats max pooling but trails average pooling)"
  return INCONCLUSIVE, measured


def judge_lift_reconstruction(r: dict) -> tuple[str, str]:
  rec = r["reconstruction"]
  lift, mx = rec["lift LeGall 5/3"], rec["max + unpool"]
  measured = (
    f"held-out PSNR / SSIM: LiftDownPool + LiftUpPool {lift['psnr']:.2f} dB /"
    f" {lift['ssim']:.3f}, learned {rec['lift learned']['psnr']:.2f} /"
    f" {rec['lift learned']['ssim']:.3f}; max + max_unpool {mx['psnr']:.2f} /"
    f" {mx['ssim']:.3f}; avg + bilinear {rec['avg + bilinear']['psnr']:.2f} /"
    f" {rec['avg + bilinear']['ssim']:.3f}"
  )
  if lift["psnr"] > mx["psnr"] and lift["ssim"] > mx["ssim"]:
    return SUPPORTED, measured
  return NOT_SUPPORTED, measured


def judge_lift_robustness(r: dict) -> tuple[str, str]:
  rob = r["robustness"]
  corruptions = [k for k in rob["lift"] if k != "clean"]
  diffs = {k: rob["lift"][k] - max(rob["max"][k], rob["avg"][k]) for k in corruptions}
  measured = (
    "accuracy, lift minus the better of max and avg: "
    + ", ".join(f"{k} {v:+.3f}" for k, v in diffs.items())
    + " (one seed, 360 test images: 0.003 is one image)"
  )
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
    f"{h:.2f}, {w:.2f}" for h, w in ratio
  )
  if (ratio[:, 0] < ratio[:, 1]).all():
    return SUPPORTED, measured + " (every pooling coarser along the stretched axis)"
  if (ratio[:, 0] >= ratio[:, 1]).all():
    return NOT_SUPPORTED, measured
  return INCONCLUSIVE, measured


def judge_density(r: dict) -> tuple[str, str]:
  tiled, enlarged = _ratios(r, "tiled").mean(axis=1), _ratios(r, "enlarged").mean(axis=1)
  measured = (
    "mean learned r per pooling, dense (tiled) digits "
    + ", ".join(f"{v:.2f}" for v in tiled)
    + "; sparse (enlarged) digits "
    + ", ".join(f"{v:.2f}" for v in enlarged)
  )
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
  measured = (
    "train minus test accuracy (both in inference mode), mean ± std over seeds, with max"
    " pooling as the baseline: "
    + "; ".join(parts)
    + f"; max pooling's test accuracy {r['max']['test_accuracy_mean']:.3f}"
  )
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
    f"{p} {r[p]['test_accuracy_mean']:.4f} ± {r[p]['test_accuracy_std']:.4f}"
    for p in ("lip", "avg", "max")
  )
  verdicts = []
  for base in ("avg", "max"):
    diff, spread = _compare(r, "lip", base)
    verdicts.append(
      SUPPORTED if diff > spread else NOT_SUPPORTED if diff < -spread else INCONCLUSIVE
    )
  verdict = verdicts[0] if len(set(verdicts)) == 1 else INCONCLUSIVE
  return verdict, measured + " (LIP starts as average pooling; the baselines are the same CNN)"


def judge_roi(r: dict) -> tuple[str, str]:
  align, pool = r["roi_align aligned"], r["roi_pool"]
  measured = ", ".join(
    f"{name}: exact boxes {v['clean']['mean']:.3f} ± {v['clean']['std']:.3f}, jittered"
    f" {v['jittered']['mean']:.3f} ± {v['jittered']['std']:.3f}"
    for name, v in r.items()
    if isinstance(v, dict) and "clean" in v
  )
  diff = align["clean"]["mean"] - pool["clean"]["mean"]
  spread = align["clean"]["std"] + pool["clean"]["std"]
  verdict = SUPPORTED if diff > spread else NOT_SUPPORTED if diff < -spread else INCONCLUSIVE
  return verdict, measured


def _difference(ours: dict, base: dict) -> tuple[float, float]:
  """Difference of the means and its spread, the sum of the stds over seeds."""
  return ours["mean"] - base["mean"], ours["std"] + base["std"]


def _stat(s: dict) -> str:
  return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} %"


def judge_shift(r: dict) -> tuple[str, str]:
  """Zhang 2019: MaxBlurPool more shift-consistent than max pooling, its
  accuracy not worse; judged on the networks trained on centred digits."""
  centred = r["centred"]
  mx, blur = centred["max"], centred["maxblur"]

  consistency, c_spread = _difference(blur["consistency"]["overall"], mx["consistency"]["overall"])
  accuracy, a_spread = _difference(blur["accuracy"], mx["accuracy"])
  per_distance = ", ".join(
    f"d={d} {100 * mx['consistency'][d]['mean']:.1f} vs {100 * blur['consistency'][d]['mean']:.1f}"
    for d in mx["consistency"]
    if d != "overall"
  )
  measured = (
    "prediction unchanged by a circular shift of 1-4 px (against the unshifted digit),"
    " mean ± std over seeds, CNN trained on centred digits: max"
    f" {_stat(mx['consistency']['overall'])}, maxblur {_stat(blur['consistency']['overall'])}"
    f" (max vs maxblur per distance: {per_distance}); test accuracy max"
    f" {_stat(mx['accuracy'])}, maxblur {_stat(blur['accuracy'])}"
  )
  if "augmented" in r:
    aug = r["augmented"]
    measured += (
      f"; trained on random shifts: consistency max {_stat(aug['max']['consistency']['overall'])},"
      f" maxblur {_stat(aug['maxblur']['consistency']['overall'])}, accuracy max"
      f" {_stat(aug['max']['accuracy'])}, maxblur {_stat(aug['maxblur']['accuracy'])}"
    )
  if consistency < -c_spread or accuracy < -a_spread:
    return NOT_SUPPORTED, measured
  if consistency > c_spread:
    return SUPPORTED, measured
  return INCONCLUSIVE, measured
