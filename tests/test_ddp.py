"""DistributedDataParallel on the CPU: torchrun, gloo, 2 processes, the `ci` preset."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def test_two_ranks_train_both_phases_and_stay_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "pnlib", "train", "--preset", "ci", "--out", str(tmp_path), "--steps1", "20", "--steps2", "10",
           "--no-progress"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # every checkpoint interval compares all ranks' weights (check_ranks_in_sync) and stops on a mismatch
    assert "DDP: 2 ranks, weights identical at step 30" in r.stdout
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 30
    steps = [row["step"] for row in json.loads((tmp_path / "history.json").read_text())["history"]]
    assert steps == [10, 20, 30]  # one writer: rank 0
