"""Reciprocal rank fusion: the formula, weights, order independence and monotonicity."""
import itertools
import random

import pytest

from kb.fusion import RRF_K, reciprocal_rank_fusion, vector_trust


def test_scores_follow_the_formula():
    fused = dict(reciprocal_rank_fusion({"bm25": [7, 3, 5], "vector": [3, 9]}, k=60))
    assert fused[3] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[7] == pytest.approx(1 / 61)
    assert fused[9] == pytest.approx(1 / 62)
    assert fused[5] == pytest.approx(1 / 63)


def test_item_in_both_lists_beats_items_in_one():
    ranked = [key for key, _ in reciprocal_rank_fusion({"bm25": [1, 2, 3], "vector": [4, 5, 3]})]
    assert ranked[0] == 3


def test_weights_scale_each_list_and_zero_weight_ignores_it():
    fused = reciprocal_rank_fusion({"bm25": [1], "vector": [2]}, weights={"bm25": 0.0, "vector": 1.0})
    assert fused[0][0] == 2 and fused[1][1] == 0.0
    fused = dict(reciprocal_rank_fusion({"bm25": [1], "vector": [2]}, weights={"bm25": 2.0}))
    assert fused[1] == pytest.approx(2 / (RRF_K + 1))


def test_result_does_not_depend_on_the_order_of_the_lists():
    rng = random.Random(7)
    lists = {name: rng.sample(range(40), 25) for name in ("bm25", "vector", "third")}
    expected = reciprocal_rank_fusion(lists, weights={"bm25": 0.7, "vector": 1.3, "third": 1.0})
    for order in itertools.permutations(lists):
        assert reciprocal_rank_fusion({name: lists[name] for name in order},
                                      weights={"bm25": 0.7, "vector": 1.3, "third": 1.0}) == expected


def test_moving_an_item_up_never_lowers_its_fused_rank():
    rng = random.Random(11)
    for _ in range(50):
        bm25, vector = rng.sample(range(30), 20), rng.sample(range(30), 20)
        target = bm25[-1]
        before = [key for key, _ in reciprocal_rank_fusion({"bm25": bm25, "vector": vector})].index(target)
        promoted = [target] + [key for key in bm25 if key != target]
        after = [key for key, _ in reciprocal_rank_fusion({"bm25": promoted, "vector": vector})].index(target)
        assert after <= before


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion({"bm25": [1]}, k=-1)
    with pytest.raises(ValueError):
        reciprocal_rank_fusion({"bm25": [1]}, weights={"bm25": -1})


def test_vector_trust_falls_with_lexical_coverage():
    values = [vector_trust(c / 20) for c in range(21)]
    assert values[0] == 1.5 and values[-1] == 0.1
    assert all(a >= b for a, b in zip(values, values[1:]))
