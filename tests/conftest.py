"""Shared test set-up. Two torch threads can be far slower than one under CPU
contention, so tests run torch single-threaded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:  # torch is optional for most tests; import it lazily elsewhere
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass
