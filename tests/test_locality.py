"""Windows on the grid and ALS, against hand-worked cases."""

import pytest
import torch

from maitsearch.model.locality import (als_of_probs, attention_cost, random_matrix, token_matrix, window_matrix,
                                       window_offsets, window_sizes)
from maitsearch.spec import MaskSpec, normalize_als, preset, uniform_als


def window_of(grid, window, patch):
    return sorted(torch.nonzero(window_matrix(grid, window)[patch]).flatten().tolist())


def test_hand_worked_4x4_grid_3x3():
    # 0  1  2  3
    # 4  5  6  7
    # 8  9  10 11
    # 12 13 14 15
    assert window_of((4, 4), (3, 3), 0) == [0, 1, 4, 5]  # corner: 4 neighbours, self included
    assert window_of((4, 4), (3, 3), 1) == [0, 1, 2, 4, 5, 6]  # edge
    assert window_of((4, 4), (3, 3), 5) == [0, 1, 2, 4, 5, 6, 8, 9, 10]  # centre
    assert window_of((4, 4), (3, 3), 15) == [10, 11, 14, 15]


def test_hand_worked_non_square_windows_and_grids():
    # 3 rows x 5 cols window on a 4x4 grid: one row up/down, two columns left/right.
    assert window_of((4, 4), (3, 5), 0) == [0, 1, 2, 4, 5, 6]
    assert window_of((4, 4), (3, 5), 6) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    # 5x5 on a 2x6 grid (2 rows, 6 cols): patch 8 is row 1, col 2.
    assert window_of((2, 6), (5, 5), 8) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert window_offsets((3, 3))[0] == (-1, -1) and len(window_offsets((3, 5))) == 15


def test_window_sizes_and_symmetry():
    sizes = window_sizes((4, 4), (3, 3))
    assert sizes.tolist() == [4, 6, 6, 4, 6, 9, 9, 6, 6, 9, 9, 6, 4, 6, 6, 4]
    matrix = window_matrix((5, 3), (3, 5))
    assert torch.equal(matrix, matrix.T)


def test_prefix_tokens_are_never_masked():
    allowed = token_matrix(window_matrix((4, 4), (3, 3)), num_prefix=2)
    assert allowed.shape == (18, 18)
    assert allowed[:2].all() and allowed[:, :2].all()
    assert not allowed[2, 2 + 15]


def test_random_pattern_keeps_window_sparsity_but_not_locality():
    grid, window = (6, 6), (3, 3)
    pattern = random_matrix(grid, window, seed=3)
    assert torch.equal(pattern.sum(-1), window_sizes(grid, window))
    assert torch.equal(pattern, random_matrix(grid, window, seed=3))
    assert not torch.equal(pattern, random_matrix(grid, window, seed=4))
    local_share = (pattern & window_matrix(grid, window)).sum() / pattern.sum()
    assert local_share < 0.5, "a random pattern is mostly non-local"


def test_hand_worked_als():
    # 1 x 4 grid, one class token: T = 5. Windows (3x3): p0 {0,1}, p1 {0,1,2}, p2 {1,2,3}, p3 {2,3}.
    # ALS_n is the window's share of the attention row n pays to patches (class token left out).
    probs = torch.tensor([
        [0.20, 0.20, 0.20, 0.20, 0.20],  # class token row: ignored by ALS
        [0.20, 0.50, 0.10, 0.10, 0.10],  # p0: (0.5 + 0.1) / 0.8 = 0.75
        [0.10, 0.10, 0.10, 0.10, 0.60],  # p1: (0.1 + 0.1 + 0.1) / 0.9 = 1/3
        [0.00, 0.25, 0.25, 0.25, 0.25],  # p2: 0.75 / 1.0
        [0.50, 0.50, 0.00, 0.00, 0.00],  # p3: its window {p2, p3} gets nothing: 0
    ])
    als = als_of_probs(probs[None, None], window_matrix((1, 4), (3, 3)), num_prefix=1)
    assert als.shape == (1, 1)
    assert als.item() == pytest.approx((0.75 + 1 / 3 + 0.75 + 0.0) / 4)


def test_attention_cost():
    grid = (4, 4)  # T = 17, windows hold 100 patches in all (4*4 + 8*6 + 4*9)
    assert attention_cost(preset("none", 2, 3), grid, 1) == 1.0
    masked_head = 1 * 17 + 16 * 1 + 100  # class-token row, class-token column, windows
    assert attention_cost(preset("all", 2, 3), grid, 1) == pytest.approx(masked_head / 17 ** 2)
    one_of_six = (masked_head + 5 * 17 ** 2) / (6 * 17 ** 2)
    assert attention_cost(MaskSpec(layers=2, heads=3, masks=[[1], []]), grid, 1) == pytest.approx(one_of_six)


# ---- normalized ALS: 0 for uniform attention, 1 for all of it inside the window --------------
@pytest.mark.parametrize("grid,window,covered", [
    ((8, 8), (3, 3), 484),  # rows (2 + 6*3 + 2) x cols (the same): 22 * 22
    ((3, 5), (3, 3), 91),  # rows 2 + 3 + 2 = 7, cols 2 + 3 + 3 + 3 + 2 = 13
    ((4, 6), (3, 5), 240),  # rows 2 + 3 + 3 + 2 = 10, cols 3 + 4 + 5 + 5 + 4 + 3 = 24
    ((1, 1), (3, 3), 1),
])
def test_uniform_als_by_hand(grid, window, covered):
    n = grid[0] * grid[1]
    assert uniform_als(grid, window) == pytest.approx(covered / n ** 2)
    assert uniform_als(grid, window) == pytest.approx(float(window_sizes(grid, window).float().mean()) / n)


def one_key_attention(grid, key, prefix=1):
    """Every patch query puts all its patch attention on one key patch (and a little on the
    class token, which ALS leaves out)."""
    n = grid[0] * grid[1]
    probs = torch.zeros(1, 1, prefix + n, prefix + n)
    probs[..., prefix:, 0] = 0.25
    probs[..., prefix:, prefix + key] = 0.75
    probs[..., :prefix, :] = 1.0 / (prefix + n)
    return probs


@pytest.mark.parametrize("key,queries_seeing_it", [
    (0, 4),  # corner (0, 0): queries (0,0) (0,1) (1,0) (1,1)
    (2, 6),  # top edge (0, 2): rows 0-1, cols 1-3
    (7, 9),  # centre (1, 2): rows 0-2, cols 1-3
])
def test_normalized_als_of_one_key_on_a_3x5_grid(key, queries_seeing_it):
    """ALS is the share of queries whose window holds the key: k / 15. Normalized with
    u = 91/225 it is (k/15 - 91/225) / (1 - 91/225), by hand: (15k - 91) / 134."""
    grid = (3, 5)
    als = float(als_of_probs(one_key_attention(grid, key), window_matrix(grid, (3, 3)), num_prefix=1))
    assert als == pytest.approx(queries_seeing_it / 15)
    assert normalize_als(als, uniform_als(grid, (3, 3))) == pytest.approx((15 * queries_seeing_it - 91) / 134, abs=1e-6)


def test_normalized_als_of_uniform_and_of_window_only_attention():
    grid, window = (3, 5), (3, 5)  # a non-square window on a non-square grid
    allowed = window_matrix(grid, window).float()
    n = allowed.shape[0]
    uniform = torch.full((1, 1, n, n), 1.0 / n)
    inside = (allowed / allowed.sum(-1, keepdim=True))[None, None]
    u = uniform_als(grid, window)
    assert normalize_als(float(als_of_probs(uniform, allowed.bool(), 0)), u) == pytest.approx(0.0, abs=1e-6)
    assert normalize_als(float(als_of_probs(inside, allowed.bool(), 0)), u) == pytest.approx(1.0)
    assert normalize_als(u / 2, u) < 0, "attention that avoids the window scores below 0"
