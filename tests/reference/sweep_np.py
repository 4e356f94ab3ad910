"""Independent NumPy reference of the LR sensitivity (Wortsman et al. 2023, arXiv 2309.14322)."""

import math


def lr_sensitivity(final_losses, initial_loss):
    """Plain-Python loop over the grid: cap each loss at L0 (non-finite -> L0), mean minus min."""
    capped = []
    for loss in final_losses:
        loss = float(loss)
        capped.append(initial_loss if not math.isfinite(loss) else min(loss, initial_loss))
    return sum(capped) / len(capped) - min(capped)
