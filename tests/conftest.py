"""Test-wide settings: one torch thread, so results and timings do not depend on how busy
the machine's other core is (CI has two)."""

import torch

torch.set_num_threads(1)
