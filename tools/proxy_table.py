#!/usr/bin/env python3
"""The proxy study's table (issue 11): one row per training run, its settings and its AUC after each epoch.

Usage: python3 tools/proxy_table.py [runs/proxy-*]   (standard library only; prints Markdown)

Reads each folder's train.json, written by `kizuki train` after every epoch. The AUC there is the inference-mode
AUC of the normal class against the first excluded class: on the proxy runs (`--exclude 5 --exclude 9`) that is
sneaker vs sandal, never the ankle boot.
"""
import glob
import json
import sys
from pathlib import Path


def settings(recipe):
    """The ways a run differs from the reference recipe, as `kizuki train` options."""
    parts = []
    if recipe.get("loss", "batch-all") != "batch-all":
        parts.append(f"--loss {recipe['loss']}")
    if recipe.get("classLabels"):
        parts.append("--labels classes")
    if recipe.get("l2Normalize"):
        parts.append("--l2-normalize")
    if recipe.get("evalEvery"):
        parts.append(f"--eval-every {recipe['evalEvery']}")
    if recipe.get("bnMomentum") is not None:
        parts.append(f"--bn-momentum {recipe['bnMomentum']:g}")
    schedule = recipe.get("schedule", {})
    if schedule.get("base", 1e-3) != 1e-3:
        parts.append(f"--lr {schedule['base']:g}")
    if schedule.get("drops", [25, 45]) != [25, 45]:
        parts.append("--lr-drops " + (",".join(map(str, schedule["drops"])) or "none"))
    if abs(recipe.get("margin", 0.2) - 0.2) > 1e-6:
        parts.append(f"--margin {recipe['margin']:g}")
    if abs(recipe.get("momentum", 0.9) - 0.9) > 1e-6:
        parts.append(f"--momentum {recipe['momentum']:g}")
    return " ".join(parts) or "(reference recipe)"


def main(folders):
    runs = []
    for folder in folders:
        path = Path(folder) / "train.json"
        if not path.exists():
            continue
        log = json.loads(path.read_text())
        runs.append((Path(folder).name, log))
    if not runs:
        sys.exit("no train.json found in " + " ".join(folders))
    width = max(len(log["epochs"]) for _, log in runs)
    print("| run | settings | seed | " + " | ".join(f"epoch {e + 1}" for e in range(width)) + " | inside epoch 1 |")
    print("|---|---|---:|" + "---:|" * width + "---|")
    for name, log in runs:
        recipe = log["recipe"]
        aucs = [f"{e['auc']:.4f}" if e.get("auc") is not None else "-" for e in log["epochs"]]
        aucs += [""] * (width - len(aucs))
        # The AUCs measured inside the first epoch (`--eval-every`), to show how much one epoch-end value can move.
        inside = [e for e in log.get("stepEvaluations") or [] if e["epoch"] < 1]
        curve = " ".join(f"{e['auc']:.3f}" for e in inside)
        print(f"| {name} | {settings(recipe)} | {recipe.get('seed', 1)} | " + " | ".join(aucs) + f" | {curve} |")


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(glob.glob("runs/proxy-*")))
