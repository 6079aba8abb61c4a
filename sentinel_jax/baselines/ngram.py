"""Strong simple baselines on whole traces: n-gram features and language models.

These set the bar a neural detector must clear on real data (ADFA-LD):

* :class:`TfidfLogistic`: logistic regression on TF-IDF of 1- to 3-grams of
  call names (supervised).
* :class:`CountForest`: a random forest on counts of 1- and 2-grams
  (supervised).
* :class:`NgramLanguageModel`: an n-gram model of normal traces with
  interpolated absolute discounting, scoring a trace by the mean surprise of
  its calls (normal-only, the anomaly protocol).

Each has ``fit`` and ``score`` over lists of name sequences; a higher score
means more likely an attack.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

Names = Sequence[str]


def _identity(names: Names) -> Names:
    return names


def _vectorizer(kind: type, low: int, high: int, **kwargs):
    # The token lists are already split: no tokenizer, no lower-casing.
    return kind(
        analyzer="word",
        tokenizer=_identity,
        preprocessor=_identity,
        token_pattern=None,
        lowercase=False,
        ngram_range=(low, high),
        **kwargs,
    )


class TfidfLogistic:
    """Logistic regression on TF-IDF of call-name n-grams."""

    def __init__(
        self, ngram_range: tuple[int, int] = (1, 3), c: float = 10.0, seed: int = 0
    ) -> None:
        self.vectorizer = _vectorizer(
            TfidfVectorizer, *ngram_range, sublinear_tf=True, min_df=2
        )
        self.model = LogisticRegression(C=c, max_iter=2000, random_state=seed)

    def fit(self, traces: Sequence[Names], labels: Sequence[int]) -> TfidfLogistic:
        features = self.vectorizer.fit_transform(traces)
        self.model.fit(features, np.asarray(labels))
        return self

    def score(self, traces: Sequence[Names]) -> np.ndarray:
        """Attack log-odds per trace, ``float64 [traces]``."""
        return self.model.decision_function(self.vectorizer.transform(traces))


class CountForest:
    """A random forest on counts of call-name n-grams."""

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 2),
        trees: int = 200,
        seed: int = 0,
        jobs: int = 2,
    ) -> None:
        self.vectorizer = _vectorizer(CountVectorizer, *ngram_range, min_df=2)
        self.model = RandomForestClassifier(
            n_estimators=trees, random_state=seed, n_jobs=jobs, min_samples_leaf=1
        )

    def fit(self, traces: Sequence[Names], labels: Sequence[int]) -> CountForest:
        self.model.fit(self.vectorizer.fit_transform(traces), np.asarray(labels))
        return self

    def score(self, traces: Sequence[Names]) -> np.ndarray:
        """Share of trees voting attack per trace, ``float64 [traces]``."""
        return self.model.predict_proba(self.vectorizer.transform(traces))[:, 1]


class NgramLanguageModel:
    """An n-gram model of normal call sequences, scored by surprise.

    Interpolated absolute discounting (the core of Kneser-Ney without its
    continuation counts): the probability of a call after a context mixes the
    discounted count of the full n-gram with the model of the context one call
    shorter, down to a uniform distribution over the names seen plus one for
    unseen names.

    Args:
        order: n, the length of the n-grams (context + call).
        discount: subtracted from every seen count, in (0, 1).
    """

    BOUNDARY = "<s>"

    def __init__(self, order: int = 5, discount: float = 0.75) -> None:
        if order < 1 or not 0.0 < discount < 1.0:
            raise ValueError("order must be >= 1 and discount in (0, 1)")
        self.order = order
        self.discount = discount
        self.counts: list[dict[tuple[str, ...], Counter[str]]] = []
        self.vocabulary_size = 1

    def fit(
        self, traces: Sequence[Names], labels: Sequence[int] | None = None
    ) -> NgramLanguageModel:
        """Counts n-grams of normal traces (attack traces, if labelled, are
        left out: the model must never see one)."""
        self.counts = [defaultdict(Counter) for _ in range(self.order)]
        names: set[str] = set()
        for index, trace in enumerate(traces):
            if labels is not None and labels[index]:
                continue
            padded = [self.BOUNDARY] * (self.order - 1) + list(trace)
            names.update(trace)
            for position in range(self.order - 1, len(padded)):
                call = padded[position]
                for length in range(self.order):
                    context = tuple(padded[position - length : position])
                    self.counts[length][context][call] += 1
        self.vocabulary_size = len(names) + 1
        return self

    def _probability(self, context: tuple[str, ...], call: str) -> float:
        probability = 1.0 / self.vocabulary_size
        for length in range(self.order):
            seen = self.counts[length].get(
                context[len(context) - length :] if length else ()
            )
            if not seen:
                break
            total = sum(seen.values())
            kept = max(seen.get(call, 0) - self.discount, 0.0) / total
            backoff_mass = self.discount * len(seen) / total
            probability = kept + backoff_mass * probability
        return probability

    def surprise(self, trace: Names) -> np.ndarray:
        """Negative log-probability of each call, ``float64 [time]``."""
        padded = [self.BOUNDARY] * (self.order - 1) + list(trace)
        return np.array(
            [
                -math.log(
                    self._probability(
                        tuple(padded[position - self.order + 1 : position]),
                        padded[position],
                    )
                )
                for position in range(self.order - 1, len(padded))
            ]
        )

    def score(self, traces: Sequence[Names]) -> np.ndarray:
        """Mean surprise per trace, ``float64 [traces]``."""
        return np.array(
            [self.surprise(trace).mean() if len(trace) else 0.0 for trace in traces]
        )
