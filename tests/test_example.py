"""The main job (``python -m examples.train``) and the other examples run end
to end and learn.

They run in this process, as a user's ``main(argv)`` call would, under JAX's
default dtype promotion (the suite's is strict), so the compiled steps are
shared between tests; the process has 8 CPU devices (``conftest.py``).
"""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from examples import (
  detail_preservation,
  dynopool_anisotropy,
  gallery,
  liftpool_reconstruction,
  reproduce,
  roi_align_digits,
  shift_consistency,
  train,
  verdicts,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The main job as users run it: XLA's optimisations on (conftest.py).
pytestmark = pytest.mark.usefixtures("optimized")


@pytest.fixture(autouse=True)
def standard_promotion():
  with jax.numpy_dtype_promotion("standard"):
    yield


def _train(*args):
  """``python -m examples.train --quiet *args``; returns its results."""
  return train.main(["--quiet", *map(str, args)])


def _results(out):
  return json.loads((out / "results.json").read_text())["results"]


def test_train_example_max_pooling_reaches_90_percent_and_learned_and_random_layers_train(
  tmp_path, capsys
):
  out = tmp_path / "run"
  _train(
    "--pool", "max", "--pool", "lip", "--pool", "mixed", "--epochs", 2, "--devices", 1, "--out", out
  )
  stdout = capsys.readouterr().out
  results = _results(out)
  assert set(results) == {"max", "lip", "mixed"}
  assert results["max"]["test_accuracy_mean"] >= 0.90
  assert (
    results["lip"]["test_accuracy_mean"] >= 0.5 and results["mixed"]["test_accuracy_mean"] >= 0.5
  )
  assert len(results["max"]["seeds"]["0"]["accuracy_per_epoch"]) == 2
  assert results["max"]["step_time_ms"] > 0
  assert (out / "accuracy.png").stat().st_size > 10_000
  assert "| max |" in stdout and "| max |" in (out / "results.md").read_text()
  assert "1 device(s)" in stdout


def test_train_report_orders_ties_alike_and_plots_one_epoch(tmp_path):
  # The table and the plot share one order (best first, ties by name), and a
  # one-epoch, one-seed report says so without "seeds" or "± std".
  from examples.train import report

  def result(accuracy):
    return {
      "test_accuracy_mean": accuracy,
      "test_accuracy_std": 0.0,
      "accuracy_per_epoch_mean": [accuracy],
      "seeds": {"0": {}},
      "step_time_ms": 1.0,
      "train_time_s_mean": 1.0,
    }

  results = {"max": result(0.9), "avg": result(0.8), "lift": result(0.9)}
  assert report.ranked(results) == ["lift", "max", "avg"]
  rows = [line.split("|")[1].strip() for line in report.table(results, 1).splitlines()[2:]]
  assert rows == ["lift", "max", "avg"]
  assert "±" not in report.table(results, 1)
  assert report.plural(1, "epoch") == "1 epoch" and report.plural(3, "epoch") == "3 epochs"
  report.plot(results, "digits, 1 epoch", tmp_path / "accuracy.png")
  assert (tmp_path / "accuracy.png").stat().st_size > 10_000


def test_train_example_resumes_exactly_with_several_seeds(tmp_path, capsys):
  # Stopped after one epoch, then resumed to two: the same curves, per seed,
  # as an uninterrupted two-epoch run (random poolings included: their keys
  # are checkpointed); --fresh starts over.
  common = ["--dataset", "mnist1d", "--pool", "stochastic", "--seeds", 2, "--devices", 2]
  stopped, straight = tmp_path / "stopped", tmp_path / "straight"
  _train(*common, "--epochs", 1, "--out", stopped)
  assert "resumed" not in capsys.readouterr().out
  _train(*common, "--epochs", 2, "--out", stopped)
  assert capsys.readouterr().out.count("resumed from epoch 1 of 2") == 2
  _train(*common, "--epochs", 2, "--out", straight)
  assert "±" in capsys.readouterr().out
  a, b = _results(stopped), _results(straight)
  for seed in ("0", "1"):
    assert (
      a["stochastic"]["seeds"][seed]["accuracy_per_epoch"]
      == b["stochastic"]["seeds"][seed]["accuracy_per_epoch"]
    )
  assert a["stochastic"]["test_accuracy_mean"] == b["stochastic"]["test_accuracy_mean"]
  assert a["stochastic"]["test_accuracy_std"] == b["stochastic"]["test_accuracy_std"]
  assert (
    a["stochastic"]["seeds"]["0"]["accuracy_per_epoch"]
    != a["stochastic"]["seeds"]["1"]["accuracy_per_epoch"]
  )
  _train(*common, "--epochs", 2, "--out", stopped)
  assert capsys.readouterr().out.count("complete in") == 2
  _train(*common, "--epochs", 1, "--out", stopped, "--fresh")
  again = capsys.readouterr().out
  assert "resumed" not in again and "complete in" not in again


def test_train_example_data_parallel_on_8_devices(tmp_path, capsys):
  out = tmp_path / "eight"
  results = _train("--pool", "max", "--pool", "mixed", "--epochs", 1, "--out", out)
  assert "8 device(s)" in capsys.readouterr().out  # every device by default
  assert results["max"]["test_accuracy_mean"] >= 0.85
  assert json.loads((out / "results.json").read_text())["config"]["devices"] == 8
  with pytest.raises(SystemExit, match="60 must be a multiple of the 8 devices"):
    _train("--pool", "max", "--batch-size", 60, "--out", out)
  with pytest.raises(SystemExit, match="devices=9: this run sees 8 device"):
    _train("--pool", "max", "--devices", 9, "--out", out)


def test_train_example_rejects_unknown_pooling(tmp_path, capsys):
  with pytest.raises(SystemExit) as error:
    _train("--pool", "nope", "--out", tmp_path)
  assert error.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_train_example_global_pooling_heads(tmp_path):
  out = tmp_path / "netvlad"  # the head with a data-driven start
  _train("--pool", "max", "--head", "netvlad", "--epochs", 1, "--devices", 1, "--out", out)
  result = json.loads((out / "results.json").read_text())
  assert result["config"]["head"] == "netvlad"
  assert result["results"]["max"]["test_accuracy_mean"] > 0.3  # one epoch learns


@pytest.mark.parametrize(
  "head,pools,epochs",
  [("gem", ("max", "blur"), 1), ("lse", ("maxblur",), 1), ("map", ("max",), 2)],
)
def test_train_example_learned_heads_and_blur_poolings(tmp_path, head, pools, epochs):
  # The learned heads train (GeM's and LSE's strength, MAP's attention: from
  # 0.18 after one epoch to 0.41 after two, as the average head's 0.23 and
  # 0.32); blur/maxblur run as every pooling.
  out = tmp_path / head
  _train(
    *(a for p in pools for a in ("--pool", p)),
    "--head",
    head,
    "--epochs",
    epochs,
    "--devices",
    1,
    "--out",
    out,
  )
  result = json.loads((out / "results.json").read_text())["results"]
  assert result[pools[0]]["test_accuracy_mean"] > 0.3  # chance is 0.1
  assert set(result) == set(pools)


def test_train_package_joins_a_cluster_only_when_main_asks(monkeypatch, tmp_path):
  # Importing it (with --distributed on the command line) initialises nothing.
  probe = (
    "import sys, jax; sys.argv = ['train', '--distributed'];"
    " jax.distributed.initialize = lambda *a, **k: sys.exit('initialised');"
    " import examples.train, examples.reproduce"
  )
  proc = subprocess.run(
    [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=ROOT
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  # main joins the cluster before it first looks at the devices.
  calls = []

  class Stop(Exception):
    pass

  def parallel(devices):
    calls.append("devices")
    raise Stop

  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append("init"))
  monkeypatch.setattr(train.cli, "Parallel", parallel)
  with pytest.raises(Stop):
    train.main(["--distributed", "--out", str(tmp_path)])
  assert calls == ["init", "devices"]


def test_detail_preservation_example_writes_table_and_panel(tmp_path):
  detail_preservation.main(["--out", str(tmp_path)])
  report = json.loads((tmp_path / "detail.json").read_text())
  for method in ("max", "avg", "soft"):
    assert 10.0 < report["mean"][method]["psnr"] < 60.0
    assert 0.0 < report["mean"][method]["ssim"] <= 1.0
  assert (tmp_path / "detail.png").stat().st_size > 10_000
  assert "| **mean** |" in (tmp_path / "detail.md").read_text()


def test_liftpool_example_runs_both_claims(tmp_path):
  liftpool_reconstruction.main(["--quick", "--out", str(tmp_path)])
  report = json.loads((tmp_path / "results.json").read_text())
  assert set(report["reconstruction"]) == {
    "max + unpool",
    "avg + nearest",
    "avg + bilinear",
    "lift LeGall 5/3",
    "lift learned",
  }
  for scores in report["reconstruction"].values():
    assert 5.0 < scores["psnr"] < 60.0 and -1.0 <= scores["ssim"] <= 1.0
  for accuracies in report["robustness"].values():
    assert set(accuracies) == {"clean", "noise 0.1", "noise 0.2", "shift 1", "shift 2"}
    assert accuracies["clean"] > 0.5  # one epoch already learns
  assert (tmp_path / "reconstruction.png").stat().st_size > 10_000


def test_dynopool_example_learns_sizes_and_counts_traces(tmp_path):
  dynopool_anisotropy.main(
    ["--quick", "--dataset", "stretched", "--sync-every", "5", "--out", str(tmp_path)]
  )
  result = json.loads((tmp_path / "results.json").read_text())["results"]["stretched"]
  assert 0.0 < result["test_accuracy"] <= 1.0
  assert len(result["ratio"]) == 3 and all(len(r) == 2 for r in result["ratio"])
  assert result["history"]["ratio"][0] != result["ratio"]  # the scales moved
  assert result["traces"] >= 1 and result["traces"] <= 1 + result["size_changes"]
  assert (tmp_path / "dynopool.png").stat().st_size > 10_000
  assert "| stretched |" in (tmp_path / "results.md").read_text()


def test_roi_align_example_compares_the_region_operators(tmp_path):
  roi_align_digits.main(["--quick", "--out", str(tmp_path)])
  results = json.loads((tmp_path / "roi_digits.json").read_text())["results"]
  assert set(results) == {"roi_align aligned", "roi_align", "roi_pool"}
  for scores in results.values():
    assert 0.2 < scores["clean"]["mean"] <= 1.0 and 0.0 <= scores["jittered"]["mean"] <= 1.0
  assert (tmp_path / "roi_digits.png").stat().st_size > 10_000
  assert "| roi_pool |" in (tmp_path / "roi_digits.md").read_text()


def test_gallery_pools_one_image_by_every_window_operator(tmp_path, capsys):
  panels = gallery.main(["--out", str(tmp_path)])
  assert len(panels) == 30 and "(30 panels)" in capsys.readouterr().out
  assert (tmp_path / "gallery.png").stat().st_size > 100_000


def test_reproduce_writes_verdicts_and_the_claims_page(tmp_path):
  out = tmp_path / "claims"
  reproduce.main(["--quick", "--only", "softpool", "--out", str(out)])
  claims = json.loads((out / "claims.json").read_text())
  assert claims["quick"] and [c["name"] for c in claims["claims"]] == ["SoftPool preserves detail"]
  assert {c["verdict"] for c in claims["claims"]} <= {"supported", "not supported", "inconclusive"}
  page = (tmp_path / "claims.md").read_text()
  assert "smoke test" in page
  assert "[SoftPool preserves detail](#softpool-preserves-detail)" in page
  assert "![SoftPool preserves detail](claims/softpool/detail.png)" in page


def test_reproduce_runs_the_shift_consistency_claim(tmp_path):
  out = tmp_path / "claims"
  reproduce.main(["--quick", "--only", "shift", "--out", str(out)])
  claims = json.loads((out / "claims.json").read_text())["claims"]
  assert [c["name"] for c in claims] == ["Anti-aliasing improves shift consistency"]
  assert claims[0]["verdict"] in {"supported", "not supported", "inconclusive"}
  results = json.loads((out / "shift" / "results.json").read_text())["results"]
  assert set(results) == {"centred", "augmented"}
  for by_pool in results.values():
    assert set(by_pool) == {"max", "maxblur"}
    for r in by_pool.values():
      assert set(r["consistency"]) == {"1", "2", "3", "4", "overall"}
      for s in [r["accuracy"], *r["consistency"].values(), *r["shifted_accuracy"].values()]:
        assert 0.0 <= s["mean"] <= 1.0 and len(s["per_seed"]) == 2
  assert (out / "shift" / "consistency.png").stat().st_size > 10_000
  assert "| centred | maxblur |" in (out / "shift" / "results.md").read_text()
  page = (tmp_path / "claims.md").read_text()
  assert "![Anti-aliasing improves shift consistency](claims/shift/consistency.png)" in page


def test_shift_consistency_shifts_never_wrap_the_digit():
  digits = np.ones((3, 8, 8, 1), np.float32)
  canvas = shift_consistency.canvases(digits)
  assert canvas.shape == (3, 16, 16, 1) and canvas.sum() == digits.sum()
  assert [len(shift_consistency.shifts_at(d)) for d in (1, 2, 3, 4)] == [8, 16, 24, 32]
  for dy, dx in shift_consistency.shifts_at(4):
    moved = np.roll(canvas, (dy, dx), axis=(1, 2))
    rows, cols = np.nonzero(moved[0, ..., 0])
    assert np.ptp(rows) == np.ptp(cols) == 7  # one 8x8 block: not split by a wrap
  rng = np.random.default_rng(0)
  shifted = shift_consistency.random_shifts(canvas, np.random.default_rng(0))
  dy, dx = rng.integers(-4, 5, (2, 3, 1, 1))
  for i in range(3):
    np.testing.assert_array_equal(
      shifted[i], np.roll(canvas[i], (int(dy[i, 0, 0]), int(dx[i, 0, 0])), axis=(0, 1))
    )


def test_reproduce_verdicts_follow_the_measurements():
  def trained(means, gaps=None, std=0.002):
    gaps = gaps or {p: 0.02 for p in means}
    return {
      p: {
        "test_accuracy_mean": m,
        "test_accuracy_std": std,
        "seeds": {str(s): {"test_accuracy": m, "train_accuracy": m + gaps[p]} for s in range(3)},
      }
      for p, m in means.items()
    }

  assert verdicts.judge_lip(trained({"lip": 0.99, "avg": 0.95, "max": 0.96}))[0] == "supported"
  assert verdicts.judge_lip(trained({"lip": 0.95, "avg": 0.99, "max": 0.99}))[0] == "not supported"
  assert verdicts.judge_lip(trained({"lip": 0.97, "avg": 0.969, "max": 0.971}))[0] == "inconclusive"
  pools = ("max",) + verdicts.RANDOM_POOLS
  small = trained(dict.fromkeys(pools, 0.97), {p: 0.03 if p == "max" else 0.0 for p in pools})
  assert verdicts.judge_regularisation(small)[0] == "supported"
  same = trained(dict.fromkeys(pools, 0.97))
  assert verdicts.judge_regularisation(same)[0] == "inconclusive"
  stretched = {
    "stretched": {"ratio": [[0.5, 0.7], [0.6, 0.8]]},
    "tiled": {"ratio": [[0.8, 0.8]] * 2},
    "enlarged": {"ratio": [[0.6, 0.6]] * 2},
  }
  assert verdicts.judge_anisotropy(stretched)[0] == "supported"
  assert verdicts.judge_density(stretched)[0] == "supported"
  scores = {"psnr": 20.0, "ssim": 0.5}
  better = {"psnr": 30.0, "ssim": 0.9}
  detail = {
    "config": {"factor": 4},
    "mean": {"soft": scores, "avg": better, "max": {"psnr": 10.0, "ssim": 0.1}},
  }
  assert verdicts.judge_softpool(detail)[0] == "not supported"
  roi = {
    "roi_align aligned": {
      "clean": {"mean": 0.94, "std": 0.01},
      "jittered": {"mean": 0.8, "std": 0.01},
    },
    "roi_pool": {"clean": {"mean": 0.90, "std": 0.01}, "jittered": {"mean": 0.8, "std": 0.01}},
  }
  assert verdicts.judge_roi(roi)[0] == "supported"
  lift = {
    "reconstruction": {
      "lift LeGall 5/3": better,
      "max + unpool": scores,
      "lift learned": better,
      "avg + bilinear": scores,
    },
    "robustness": {
      "lift": {"clean": 0.98, "noise": 0.9},
      "max": {"clean": 0.98, "noise": 0.95},
      "avg": {"clean": 0.97, "noise": 0.94},
    },
  }
  assert verdicts.judge_lift_reconstruction(lift)[0] == "supported"

  def shift(consistency, accuracy, std=0.01):
    def run(c, a):
      stat = lambda m: {"mean": m, "std": std, "per_seed": [m] * 3}  # noqa: E731
      return {
        "accuracy": stat(a),
        "consistency": {d: stat(c) for d in ("1", "2", "3", "4", "overall")},
      }

    return {"centred": {p: run(consistency[p], accuracy[p]) for p in ("max", "maxblur")}}

  same = {"max": 0.95, "maxblur": 0.95}
  assert verdicts.judge_shift(shift({"max": 0.6, "maxblur": 0.8}, same))[0] == "supported"
  assert verdicts.judge_shift(shift({"max": 0.6, "maxblur": 0.61}, same))[0] == "inconclusive"
  assert verdicts.judge_shift(shift({"max": 0.8, "maxblur": 0.6}, same))[0] == "not supported"
  drop = {"max": 0.95, "maxblur": 0.90}
  assert verdicts.judge_shift(shift({"max": 0.6, "maxblur": 0.8}, drop))[0] == "not supported"
  assert verdicts.judge_lift_robustness(lift)[0] == "not supported"
