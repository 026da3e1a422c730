"""labkit.memory.PeakRSS sees memory that a block allocates and frees again."""

import numpy as np

from labkit.memory import PeakRSS


def test_peak_rss_sees_a_temporary_allocation():
    with PeakRSS(interval=0.01) as mem:
        block = np.ones(200_000_000 // 8)  # 200 MB, touched
        block.sum()
        import time

        time.sleep(0.1)
        del block
    assert 150 < mem.growth_mb < 400, mem.growth_mb
