"""utils/ngram.py: interpolated modified Kneser-Ney, against hand-computed values and against the
formula written out here with dictionaries (the test's own, independent implementation)."""
from collections import Counter, defaultdict

import numpy as np
import pytest

from utils.ngram import KneserNey, estimate_discounts


def test_probabilities_over_the_vocabulary_sum_to_one():
    rng = np.random.default_rng(0)
    V = 9
    train = rng.integers(0, V - 1, 3000) * (rng.random(3000) < 0.8)    # skewed; token V-1 never seen
    for order in (1, 2, 3, 5):
        lm = KneserNey(train, order, V)
        for _ in range(20):
            # random contexts: seen, unseen, and cut short at the start of a text (-1)
            ctx = rng.integers(-1, V, order - 1)
            ctx[:rng.integers(0, order)] = -1
            rows = np.column_stack([np.repeat(ctx[None], V, 0), np.arange(V)])
            assert lm.prob(rows).sum() == pytest.approx(1.0, abs=1e-9)


def test_a_toy_corpus_by_hand():
    """a b a b a c, |V| = 4 (d never seen), bigrams, every discount fixed at D1 .5, D2 1, D3+ 1.5.
    bigrams: c(ab) = 2, c(ba) = 2, c(ac) = 1; c(a.) = 3, gamma(a) = (.5 N1 + 1 N2) / 3 = .5; b: 1/2.
    unigram continuation counts: c'(a) = 1 (after b), c'(b) = 1, c'(c) = 1: p1 = .5/3 + .5/4 = 7/24."""
    a, b, c, d = range(4)
    lm = KneserNey([a, b, a, b, a, c], 2, 4, discounts={1: (0.5, 1.0, 1.5), 2: (0.5, 1.0, 1.5)})
    p = lambda prev, w: lm.prob(np.array([[prev, w]]))[0]
    assert p(-1, a) == pytest.approx(7 / 24)                             # no context: the unigram level
    assert p(-1, d) == pytest.approx(1 / 8)                              # unseen: gamma / |V| only
    assert p(a, b) == pytest.approx((2 - 1.0) / 3 + 0.5 * 7 / 24)        # 23/48
    assert p(a, c) == pytest.approx((1 - 0.5) / 3 + 0.5 * 7 / 24)        # 15/48
    assert p(a, a) == pytest.approx(0.5 * 7 / 24)
    assert p(b, a) == pytest.approx((2 - 1.0) / 2 + 0.5 * 7 / 24)
    assert p(c, a) == pytest.approx(7 / 24)                              # c never had a successor: back off
    assert lm.nats([a, b, a]) == pytest.approx(-np.log([23 / 48, (2 - 1.0) / 2 + 0.5 * 7 / 24]))


def test_discounts_follow_chen_and_goodman():
    counts = np.array([1] * 10 + [2] * 4 + [3] * 3 + [4] * 2 + [9])
    Y = 10 / (10 + 2 * 4)
    assert estimate_discounts(counts) == pytest.approx((1 - 2 * Y * 4 / 10, 2 - 3 * Y * 3 / 4, 3 - 4 * Y * 2 / 3))


class Oracle:
    """Interpolated modified Kneser-Ney (Chen & Goodman 1998), written out with dictionaries
    and recursion, one probability at a time: slow and plain."""

    def __init__(self, tokens, order, V):
        self.n, self.V = order, V
        tokens = list(tokens)
        grams = [Counter(tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1)) for k in range(order + 1)]
        self.count = {}
        for k in range(1, order + 1):
            if k == order:
                self.count[k] = dict(grams[k])
            else:   # continuation counts: distinct tokens seen before the k-gram
                left = defaultdict(set)
                for g in grams[k + 1]:
                    left[g[1:]].add(g[0])
                self.count[k] = {g: len(left[g]) for g in grams[k] if len(left[g]) > 0}
        self.D = {}
        for k in range(1, order + 1):
            nr = Counter(self.count[k].values())
            if nr[1] == 0 or nr[2] == 0:
                self.D[k] = (0.5, 1.0, 1.5)
                continue
            Y = nr[1] / (nr[1] + 2 * nr[2])
            D = (1 - 2 * Y * nr[2] / nr[1], 2 - 3 * Y * nr[3] / nr[2], 3 - 4 * Y * nr[4] / nr[3] if nr[3] else 1.5)
            self.D[k] = tuple(min(max(x, 0), r) for r, x in zip((1, 2, 3), D))

    def disc(self, k, c):
        return 0 if c == 0 else self.D[k][min(c, 3) - 1]

    def p(self, context, w):
        """p(w | context), context a tuple of up to n-1 tokens."""
        k = len(context) + 1
        if k == 1:
            counts = self.count[1]
            total = sum(counts.values())
            gamma = sum(self.disc(1, c) for c in counts.values()) / total
            return max(counts.get((w,), 0) - self.disc(1, counts.get((w,), 0)), 0) / total + gamma / self.V
        lower = self.p(context[1:], w)
        followers = {g: c for g, c in self.count[k].items() if g[:-1] == context}
        total = sum(followers.values())
        if total == 0:
            return lower
        c = followers.get(context + (w,), 0)
        gamma = sum(self.disc(k, x) for x in followers.values()) / total
        return max(c - self.disc(k, c), 0) / total + gamma * lower


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_the_formula_written_out(order):
    rng = np.random.default_rng(order)
    V = 6
    # a text with structure (a Markov chain) so that every order has counts of counts 1 to 4
    T = rng.dirichlet(np.ones(V) * 0.3, V)
    tokens = [0]
    for _ in range(1500):
        tokens.append(rng.choice(V, p=T[tokens[-1]]))
    train, val = tokens[:1200], tokens[1200:]
    lm, oracle = KneserNey(train, order, V), Oracle(train, order, V)
    for k in range(1, order + 1):
        assert lm.D[k] == pytest.approx(oracle.D[k], abs=1e-12)
    ours = np.exp(-lm.nats(val))
    theirs = [oracle.p(tuple(val[max(0, t - order + 1):t]), val[t]) for t in range(1, len(val))]
    assert ours == pytest.approx(np.array(theirs), abs=1e-12)
