"""Whether the torch profiler records: per-batch shortcuts step aside while it does.

The stream's direct fetch (NOTE [direct fetch] in data/streams.py) and the stepper's direct
gradient clearing (NOTE [clearing gradients] in optim/stepper.py) skip torch calls that open
profiler ranges; while ``torch.profiler`` records, both make the usual calls, so traces keep
the DataLoader's and ``zero_grad``'s ranges. One check, shared by both.
"""

from __future__ import annotations

import torch

__all__ = ["profiler_records"]

# () -> bool: whether the torch profiler records now. A private torch name, bound once (called
# per batch: no wrapper frame); without it the answer is always True, so the shortcuts are off.
profiler_records = getattr(torch.autograd, "_profiler_enabled", lambda: True)
