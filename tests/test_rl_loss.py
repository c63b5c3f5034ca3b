import pytest
import torch

from onereward.rl.loss import composite, hinge_loss


def test_hinge_loss_on_a_hand_computed_case():
    p = torch.tensor([[0.2, 0.95, 0.5], [0.9, 0.9, 0.1]])
    # lambda = 0.9: row 0 -> (0.7 + 0 + 0.4) / 3; row 1 -> (0 + 0 + 0.8) / 3
    torch.testing.assert_close(hinge_loss(p, 0.9), torch.tensor([1.1 / 3, 0.8 / 3]))
    keep = torch.tensor([True, False, True])
    torch.testing.assert_close(hinge_loss(p, 0.9, keep), torch.tensor([1.1 / 2, 0.8 / 2]))
    with pytest.raises(ValueError, match="no dimension left"):
        hinge_loss(p, 0.9, torch.zeros(3, dtype=torch.bool))


def test_hinge_gradient_vanishes_above_the_bound():
    p = torch.tensor([[0.95, 0.3]], requires_grad=True)
    hinge_loss(p, 0.9).sum().backward()
    torch.testing.assert_close(p.grad, torch.tensor([[0.0, -0.5]]))


def test_composite_keeps_the_source_outside_the_mask():
    src, img = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    out = composite(img, src, mask)
    assert out[0, :, 0, 0].eq(1).all() and out[0, :, 1, 1].eq(0).all()
