"""Projection ratio math (docs/methods.md §3)."""
import torch

from erasure.mechanism.projection import projection_ratio

GEN = torch.Generator().manual_seed(0)


def test_pr_of_negative_is_minus_one():
    a = torch.randn(5, 7, 512, generator=GEN)
    torch.testing.assert_close(projection_ratio(-a, a), -torch.ones(5, 7))
    torch.testing.assert_close(projection_ratio(a, a), torch.ones(5, 7))


def test_pr_is_linear_in_v_and_invariant_to_scaling_w():
    v1, v2, w = (torch.randn(11, 512, generator=GEN) for _ in range(3))
    # float32 sums over 512 terms: relative error ~1e-6, so 1e-5 tolerances
    torch.testing.assert_close(
        projection_ratio(2.5 * v1 + v2, w), 2.5 * projection_ratio(v1, w) + projection_ratio(v2, w),
        atol=1e-5, rtol=1e-5,
    )
    torch.testing.assert_close(projection_ratio(v1, -3.0 * w), -projection_ratio(v1, w) / 3.0, atol=1e-5, rtol=1e-5)


def test_pr_of_orthogonal_is_zero():
    w = torch.zeros(512)
    w[0] = 2.0
    v = torch.randn(512, generator=GEN)
    v[0] = 0.0
    assert projection_ratio(v, w).item() == 0.0
