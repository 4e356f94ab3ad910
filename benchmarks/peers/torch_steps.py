"""Times torch optimizers on this CPU: one process, interleaved rounds, ms per step (issue 13).

Run ONLY with the separate torch venv (torch is never a dependency of optaxsched)::

    /work/torchvenv/bin/python benchmarks/peers/torch_steps.py --rounds 5

Parameters: four float32 2000×2000 tensors (16M), gradients fixed random normals set once (the
optimizers clip a copy, so they stay unchanged). Candidates: pytorch-optimizer 4.1.0 ``SPAM``
(defaults; on CPU it takes its per-parameter path, and with ``density=1.0`` it still gathers
every 2-D gradient through a boolean mask) and ``StableSPAM`` (defaults), and
``torch.optim.AdamW`` with ``foreach=True`` and ``fused=True``. Every round runs each candidate
for ``--steps`` steps (fewer for the slow SPAM) in a rotating order; the JSON printed on the last
line holds every round's ms per step.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time

import torch
from pytorch_optimizer import SPAM, StableSPAM

SHAPE, LEAVES = (2000, 2000), 4


def make(name):
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(SHAPE, generator=gen)) for _ in range(LEAVES)]
    for p in params:
        p.grad = 1e-3 * torch.randn(SHAPE, generator=gen)
    factory = {
        "pytorch-optimizer SPAM": lambda ps: SPAM(ps, lr=1e-3),
        "pytorch-optimizer StableSPAM": lambda ps: StableSPAM(ps, lr=1e-3),
        "torch AdamW (foreach)": lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True),
        "torch AdamW (fused)": lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True),
    }[name]
    opt = factory(params)
    # The gradients are not restored between steps: StableSPAM clips and normalises p.grad in
    # place, so its later steps see the gradient it left (the same operations every step; a
    # restoring copy of 64 MB would cost more than some of the optimizers' own work).
    return opt.step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    names = ["pytorch-optimizer SPAM", "pytorch-optimizer StableSPAM", "torch AdamW (foreach)",
             "torch AdamW (fused)"]
    steppers = {name: make(name) for name in names}
    for name in names:  # warm up (first steps allocate state)
        for _ in range(3):
            steppers[name]()
    times = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            steps = max(2, args.steps // 8) if name.endswith("SPAM") and "Stable" not in name \
                else args.steps
            start = time.perf_counter()
            for _ in range(steps):
                steppers[name]()
            times[name].append(1e3 * (time.perf_counter() - start) / steps)
    print(json.dumps({"times_ms": times, "torch": torch.__version__,
                      "threads": torch.get_num_threads(),
                      "pytorch_optimizer": importlib.metadata.version("pytorch-optimizer")}))


if __name__ == "__main__":
    main()
