import pytest
import torch

from onereward.rl.loss import anchor_loss, composite, hinge_loss


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


def test_anchor_loss_on_a_hand_computed_case():
    # 2 samples x 3 tokens x 2 channels; sample 0 differs by 1 on token 0 (both channels) and 2 on token 2 (one)
    x0 = torch.zeros(2, 3, 2)
    ref = torch.zeros(2, 3, 2)
    ref[0, 0] = 1.0
    ref[0, 2, 0] = 2.0
    w = torch.tensor([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]])  # sample 1: nothing generated
    # sample 0: per token mean over channels (1, 0, 2); weighted (1 * 1 + 0.5 * 2) / 1.5
    torch.testing.assert_close(anchor_loss(x0, ref, w), torch.tensor([2.0 / 1.5, 0.0]))
    # tokens outside the mask hold nothing: a change there costs nothing
    ref[0, 1] = 5.0
    torch.testing.assert_close(anchor_loss(x0, ref, w)[0], torch.tensor(2.0 / 1.5))
