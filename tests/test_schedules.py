"""Schedules: shapes and end points, as DINO's cosine_scheduler."""

import numpy as np
import pytest

from dinosal.schedules import cosine_schedule, dino_schedules, scaled_lr


def test_warmup_ends_at_base_and_cosine_never_reaches_final():
    s = cosine_schedule(1.0, 0.1, epochs=5, iters_per_epoch=4, warmup_epochs=2, start_warmup_value=0.2)
    assert s.shape == (20,)
    assert s[0] == pytest.approx(0.2)
    assert s[7] == pytest.approx(1.0)          # last warmup iteration = base (linspace endpoint)
    assert s[8] == pytest.approx(1.0)          # cosine restarts at base
    assert np.all(np.diff(s[8:]) < 0)          # then strictly decreasing
    assert s[-1] > 0.1 and s[-1] == pytest.approx(0.1 + 0.45 * (1 + np.cos(np.pi * 11 / 12)))


def test_no_warmup_and_rising_schedule():
    m = cosine_schedule(0.996, 1.0, epochs=3, iters_per_epoch=10)
    assert m.shape == (30,) and m[0] == pytest.approx(0.996)
    assert np.all(np.diff(m) > 0) and m[-1] < 1.0


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        cosine_schedule(1, 0, epochs=2, iters_per_epoch=3, warmup_epochs=3)
    with pytest.raises(ValueError):
        cosine_schedule(1, 0, epochs=0, iters_per_epoch=3)


def test_dino_schedules_scale_lr_by_global_batch():
    assert scaled_lr(5e-4, 512) == pytest.approx(1e-3)
    s = dino_schedules(lr=5e-4, min_lr=1e-6, global_batch=128, warmup_epochs=1, weight_decay=0.04,
                       weight_decay_end=0.4, momentum_teacher=0.996, epochs=4, iters_per_epoch=5)
    assert len(s) == 20 and s.wd.shape == s.momentum.shape == (20,)
    assert s.lr[0] == 0.0 and s.lr[4] == pytest.approx(2.5e-4)
    assert s.wd[0] == pytest.approx(0.04) and 0.04 < s.wd[-1] < 0.4
    assert s.momentum[0] == pytest.approx(0.996)
