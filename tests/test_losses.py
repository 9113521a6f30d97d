"""DINOLoss against a small case computed by hand in numpy; KoLeo."""

import numpy as np
import pytest
import torch

from dinosal.losses import DINOLoss, koleo_loss, teacher_temp_schedule


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _softmax(x):
    return np.exp(_log_softmax(x))


# B = 2 images, K = 3 outputs, 3 student crops (2 global + 1 local)
STUDENT = np.array(
    [[0.2, -0.1, 0.4], [0.0, 0.3, -0.2],      # crop 0 (global 1), images 0, 1
     [0.1, 0.1, -0.3], [0.5, -0.4, 0.0],      # crop 1 (global 2)
     [-0.2, 0.2, 0.1], [0.3, 0.0, 0.05]],     # crop 2 (local)
)
TEACHER = np.array(
    [[0.3, 0.0, 0.1], [-0.1, 0.2, 0.0],       # global 1
     [0.2, 0.1, -0.1], [0.05, -0.2, 0.3]],    # global 2
)
CENTER = np.array([[0.05, -0.02, 0.01]])


def _expected(temp_t, temp_s=0.1, center=CENTER, m=0.9):
    ls = _log_softmax(STUDENT / temp_s).reshape(3, 2, 3)   # (crop, b, k)
    pt = _softmax((TEACHER - center) / temp_t).reshape(2, 2, 3)
    terms = []
    for i in range(2):
        for v in range(3):
            if v != i:
                terms.append(np.mean(np.sum(-pt[i] * ls[v], axis=-1)))
    assert len(terms) == 4
    loss = np.mean(terms)
    ent = np.mean(-np.sum(pt * np.log(pt), axis=-1))
    marg = pt.reshape(4, 3).mean(0)
    marg_ent = -np.sum(marg * np.log(marg))
    new_center = m * center + (1 - m) * TEACHER.mean(0, keepdims=True)
    maxp = pt.max(-1).mean()
    return loss, ent, marg_ent, new_center, maxp


def _loss(temps=0.04, **kw):
    fn = DINOLoss(out_dim=3, n_crops=3, teacher_temps=temps, **kw)
    fn.center.copy_(torch.tensor(CENTER, dtype=torch.float32))
    return fn


def test_loss_center_and_diagnostics_match_hand_computation():
    fn = _loss(0.04)
    out = fn(torch.tensor(STUDENT, dtype=torch.float32), torch.tensor(TEACHER, dtype=torch.float32), epoch=0)
    loss, ent, marg_ent, new_center, maxp = _expected(0.04)
    assert out.loss.item() == pytest.approx(loss, rel=1e-5)
    assert out.teacher_entropy == pytest.approx(ent, rel=1e-4, abs=1e-6)
    assert out.teacher_marginal_entropy == pytest.approx(marg_ent, rel=1e-5)
    assert out.kl == pytest.approx(loss - ent, rel=1e-4, abs=1e-6)
    assert out.teacher_max_prob == pytest.approx(maxp, rel=1e-5)
    assert out.teacher_temp == 0.04
    # the loss used the OLD center; the center moved afterwards
    np.testing.assert_allclose(fn.center.numpy(), new_center, rtol=1e-6)


def test_teacher_temperature_is_indexed_by_epoch():
    temps = teacher_temp_schedule(0.04, 0.07, warmup_epochs=3, epochs=5)
    np.testing.assert_allclose(temps, [0.04, 0.055, 0.07, 0.07, 0.07])
    fn = _loss(temps)
    out = fn(torch.tensor(STUDENT, dtype=torch.float32), torch.tensor(TEACHER, dtype=torch.float32), epoch=1)
    assert out.teacher_temp == pytest.approx(0.055)
    assert out.loss.item() == pytest.approx(_expected(0.055)[0], rel=1e-5)
    assert fn.temp_at(99) == pytest.approx(0.07)  # past the end: the last value


def test_center_is_a_buffer_and_momentum_one_freezes_it():
    fn = DINOLoss(out_dim=3, n_crops=3, center_momentum=1.0)
    assert "center" in fn.state_dict()
    assert not any(True for _ in fn.parameters())
    fn(torch.tensor(STUDENT, dtype=torch.float32), torch.tensor(TEACHER, dtype=torch.float32))
    assert torch.count_nonzero(fn.center) == 0


def test_eval_mode_does_not_update_center_and_teacher_gets_no_grad():
    fn = _loss().eval()
    s = torch.tensor(STUDENT, dtype=torch.float32, requires_grad=True)
    t = torch.tensor(TEACHER, dtype=torch.float32, requires_grad=True)
    out = fn(s, t)
    out.loss.backward()
    assert t.grad is None and s.grad is not None
    np.testing.assert_allclose(fn.center.numpy(), CENTER, rtol=1e-6)


def test_bad_shapes_raise():
    fn = DINOLoss(out_dim=3, n_crops=3)
    with pytest.raises(ValueError, match="n_crops"):
        fn(torch.zeros(5, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="batch sizes"):
        fn(torch.zeros(9, 3), torch.zeros(4, 3))


def test_uniform_teacher_has_entropy_log_k():
    fn = DINOLoss(out_dim=8, n_crops=2, teacher_temps=1e6)
    out = fn(torch.randn(4, 8), torch.randn(4, 8))
    assert out.teacher_entropy == pytest.approx(np.log(8), rel=1e-4)


def test_koleo_matches_hand_computation():
    x = np.array([[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]])
    # neighbours by cosine: 0<->1, 2 -> 1 (cos -0.8 > -1)
    d = [np.linalg.norm(x[0] - x[1]), np.linalg.norm(x[1] - x[0]), np.linalg.norm(x[2] - x[1])]
    expected = -np.mean(np.log(np.array(d) + 1e-8))
    assert koleo_loss(torch.tensor(x, dtype=torch.float32)).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        koleo_loss(torch.zeros(1, 4))
