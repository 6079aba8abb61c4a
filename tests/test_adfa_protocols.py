"""ADFA-LD protocols never put a trace or an attack run on two sides."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sentinel_jax.baselines.ngram import NgramLanguageModel, TfidfLogistic
from sentinel_jax.data.adfa import (
    ATTACK,
    FAMILIES,
    TRAINING,
    drop_duplicates,
    load_adfa,
)
from sentinel_jax.evaluation.adfa_protocols import (
    anomaly_protocol,
    leave_one_family_out,
    supervised_folds,
)


@pytest.fixture(scope="module")
def adfa(adfa_dir):
    return load_adfa(adfa_dir)


@pytest.mark.parametrize("dedupe", [False, True])
def test_every_fold_of_every_protocol_is_disjoint(adfa, dedupe):
    traces = drop_duplicates(adfa) if dedupe else adfa
    splits = [
        *supervised_folds(traces),
        *leave_one_family_out(traces),
        anomaly_protocol(traces),
    ]
    for split in splits:
        split.check_disjoint(traces)
        sides = [set(split.train), set(split.val), set(split.test)]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    # supervised folds partition the whole dataset, and test every family
    folds = supervised_folds(traces)
    tested = np.concatenate([split.test for split in folds])
    assert sorted(tested.tolist()) == list(range(len(traces)))
    for split in folds:
        assert {traces[i].trace.family for i in split.test} >= set(FAMILIES)


def test_leave_one_family_out_never_trains_on_the_held_family(adfa):
    for split in leave_one_family_out(adfa):
        family = split.held_out_family
        for side in (split.train, split.val):
            assert family not in {adfa[i].trace.family for i in side}
        assert family in {adfa[i].trace.family for i in split.test}


def test_anomaly_protocol_fits_on_normal_training_traces_only(adfa):
    split = anomaly_protocol(adfa)
    assert {adfa[i].part for i in split.train} == {TRAINING}
    assert all(adfa[i].trace.label == 0 for i in split.val)
    attacks = {i for i, item in enumerate(adfa) if item.part == ATTACK}
    assert attacks <= set(split.test.tolist())


def test_simple_baselines_run_on_a_subset(adfa):
    rng = np.random.default_rng(0)
    subset = [adfa[i] for i in rng.choice(len(adfa), 900, replace=False)]
    split = supervised_folds(subset, folds=3)[0]
    names = [list(item.trace.names) for item in subset]
    labels = np.array([item.trace.label for item in subset])
    model = TfidfLogistic().fit([names[i] for i in split.train], labels[split.train])
    scores = model.score([names[i] for i in split.test])
    assert roc_auc_score(labels[split.test], scores) > 0.9
    language_model = NgramLanguageModel(order=3).fit(
        [names[i] for i in split.train], labels[split.train]
    )
    surprise = language_model.score([names[i] for i in split.test])
    assert roc_auc_score(labels[split.test], surprise) > 0.6


def test_language_model_probabilities_sum_to_one():
    model = NgramLanguageModel(order=3).fit([list("abcabcabd"), list("aab")])
    names = ["a", "b", "c", "d"]
    for context in [("a", "b"), ("x", "y"), ("b", "c")]:
        total = sum(model._probability(context, name) for name in names)
        unseen = model._probability(context, "never")
        assert total + unseen == pytest.approx(1.0)
