import os

# Tiny models on a small machine: several OpenMP threads only spin against each other.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def seed() -> int:
    return 42
