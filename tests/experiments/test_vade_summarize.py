"""Pooling per-seed VaDE runs (experiments/vade/summarize.py)."""

import json

import numpy as np
import pytest

from experiments.vade import summarize


def _run(seeds, acc, config=None, device="cpu"):
  """A results.json as `experiments.vade.main` writes it, for the given seeds and accuracies."""
  per_seed = [{"seed": s, "acc": a, "nmi": a - 0.01, "ari": a - 0.1, "finite": True, "elbo": -200.0,
               "init_acc": a - 0.02, "init_nmi": a - 0.05} for s, a in zip(seeds, acc)]
  return {
      "dataset": {"name": "fashion_mnist", "split": "all", "source": "local", "n": 70000},
      "device": device,
      "per_seed": per_seed,
      "nan_free_seeds": len(seeds),
      "timings": {"pretrain_s_per_epoch": 5.0, "joint_s_per_epoch": 6.0},
      "config": {"epochs": 100, "prior_covariance": "full", "progress": False, **(config or {}),
                 "seeds": list(seeds)},
  }


def test_pooled_runs_give_the_mean_and_std_over_all_their_seeds(tmp_path, capsys):
  runs = [_run([3], [0.60]), _run([0, 1], [0.70, 0.64], device="gpu"), _run([2, 4, 5], [0.66, 0.62, 0.5])]
  pooled = summarize.pool(runs)
  assert pooled["seeds"] == [0, 1, 2, 3, 4, 5]
  first5 = np.array([0.70, 0.64, 0.66, 0.60, 0.62])
  np.testing.assert_allclose(pooled["first5"]["acc"]["mean"], first5.mean())
  np.testing.assert_allclose(pooled["first5"]["acc"]["std"], first5.std())
  np.testing.assert_allclose(pooled["first5"]["ari"]["mean"], first5.mean() - 0.1)
  np.testing.assert_allclose(pooled["all"]["acc"]["mean"], np.append(first5, 0.5).mean())
  np.testing.assert_allclose(pooled["after_gmm_init"]["acc"]["mean"], np.append(first5, 0.5).mean() - 0.02)
  assert pooled["nan_free_seeds"] == 6 and pooled["devices"] == ["cpu", "gpu"]
  assert pooled["config"]["seeds"] == [0, 1, 2, 3, 4, 5] and "progress" not in pooled["config"]

  paths = []
  for i, r in enumerate(runs):
    paths.append(tmp_path / f"run{i}.json")
    paths[-1].write_text(json.dumps(r))
  summarize.main(["--group", "full", *map(str, paths), "--group", "one", str(paths[0]),
                  "--out", str(tmp_path / "pooled.json"), "--plot", str(tmp_path / "per_seed.png")])
  assert json.loads((tmp_path / "pooled.json").read_text()) == {"full": pooled, "one": summarize.pool(runs[:1])}
  assert "first5: ACC 0.6440 +- 0.0344" in capsys.readouterr().out
  assert (tmp_path / "per_seed.png").read_bytes().startswith(b"\x89PNG")
  with pytest.raises(SystemExit):
    summarize.main(["--group", "full", str(paths[0]), "--group", "full", str(paths[1])])


def test_runs_of_different_configs_or_repeated_seeds_are_refused():
  with pytest.raises(ValueError, match=r"differ in more than their seeds: \['epochs'\]"):
    summarize.pool([_run([0], [0.6]), _run([1], [0.6], config={"epochs": 50})])
  pooled = summarize.pool([_run([0], [0.6]), _run([1], [0.6], config={"epochs": 50})], ignore=("epochs",))
  assert pooled["config"]["epochs"] == [100, 50] and pooled["seeds"] == [0, 1]
  absent = _run([2], [0.6])
  del absent["config"]["epochs"]  # A field added after the run was recorded.
  assert summarize.pool([_run([0], [0.6]), absent], ignore=("epochs",))["config"]["epochs"] == [100, None]
  with pytest.raises(ValueError, match="more than one run"):
    summarize.pool([_run([0, 1], [0.6, 0.6]), _run([1], [0.6])])
  with pytest.raises(ValueError, match="nothing"):
    summarize.pool([])


def test_best_of_keeps_the_highest_elbo_of_each_block_position_not_the_best_score(tmp_path, capsys):
  runs = [_run([0, 1, 2, 3], [0.70, 0.60, 0.65, 0.50]), _run([4, 5, 6, 7], [0.55, 0.68, 0.66, 0.72])]
  # Seed s is restart 1 of run s and seed s + 4 restart 2; the ELBO, not ACC, picks which is kept.
  for r, elbos in zip(runs, ([-200.0, -201.0, -199.0, -203.0], [-200.5, -200.0, -199.5, -202.0])):
    for s, e in zip(r["per_seed"], elbos):
      s["elbo"] = e
  chosen = summarize.best_of(summarize.pool(runs), 2)
  assert chosen["kept_seeds"] == [0, 5, 2, 7]
  acc = np.array([0.70, 0.68, 0.65, 0.72])
  np.testing.assert_allclose(chosen["scores"]["acc"]["mean"], acc.mean())
  np.testing.assert_allclose(chosen["scores"]["acc"]["std"], acc.std())
  assert summarize.best_of(summarize.pool(runs), 1)["kept_seeds"] == list(range(8))
  runs[0]["per_seed"][2].update(elbo=float("nan"), finite=False)  # A diverged restart is never kept.
  assert summarize.best_of(summarize.pool(runs), 2)["kept_seeds"] == [0, 5, 6, 7]
  runs[0]["per_seed"][2].update(elbo=-199.0, finite=True)

  paths = [tmp_path / "a.json", tmp_path / "b.json"]
  for path, r in zip(paths, runs):
    path.write_text(json.dumps(r))
  summarize.main(["--group", "x", *map(str, paths), "--best-of", "2", "--out", str(tmp_path / "p.json")])
  assert "kept seeds [0, 5, 2, 7]" in capsys.readouterr().out
  assert json.loads((tmp_path / "p.json").read_text())["x"]["best_of"] == chosen
  for bad in (3, 0):
    with pytest.raises(ValueError, match="equal blocks"):
      summarize.best_of(summarize.pool(runs), bad)
  for bad in ("3", "0"):  # Refused before anything is printed or written.
    with pytest.raises(SystemExit):
      summarize.main(["--group", "x", *map(str, paths), "--best-of", bad, "--out", str(tmp_path / "q.json")])
  assert not (tmp_path / "q.json").exists() and capsys.readouterr().out == ""
