"""Interpolated modified Kneser-Ney n-gram model, counted with numpy: the count-based baseline.

Chen & Goodman, "An Empirical Study of Smoothing Techniques for Language Modeling", TR-10-98,
Harvard 1998: interpolated Kneser-Ney, and its modified form with three discounts per order
(section numbers not checked against the report's text: unverified).

    lm = KneserNey(train_ids, order=5, vocab_size=65)
    nats = lm.nats(val_ids)              # (len - 1,) -ln p(val[t] | the n-1 tokens before it)
    p = lm.prob(rows)                    # rows (M, n): p(last column | the columns before it)

For a context h of the highest order n and a token w,

    p(w | h) = max(c(hw) - D(c(hw)), 0) / c(h) + gamma(h) p(w | h')         h' = h without its first token
    gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / c(h)

with c the counts in the training text, c(h) = sum_w c(hw), and N_r(h.) the number of tokens that
follow h exactly r times (r >= 3 for N3+). The lower orders use the same formula with continuation
counts in place of c: c'(h'w) = N1+(. h'w), the number of distinct tokens seen before h'w. The
unigram level is interpolated with the uniform distribution 1/|V|. The discounts of each order
come from its count-of-counts n_r (of c at the top order, of c' below it):

    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3

A context never seen in training (or unseen at an order: c(h) = 0) backs off to the next lower order
with weight 1. The first n-2 targets of a text have fewer than n-1 tokens before them: they are
scored by the model of the order they allow (its counts are continuation counts, as for every order
below n), so that each target of the text is scored once.

Every n-gram gets an integer id, order by order: id(w_1..w_k) = the rank of id(w_1..w_k-1) |V| + w_k
among the training k-grams (sorted, np.unique), so lookups are np.searchsorted over int64 keys.
"""
import numpy as np


def estimate_discounts(counts):
    """(D1, D2, D3+) from the count-of-counts of `counts` (Chen & Goodman), each clipped to
    [0, r] so that the model stays normalised; where some n_r is 0 (a toy corpus) the missing ones
    fall back to 0.5, 1.0, 1.5."""
    n = [np.count_nonzero(counts == r) for r in (1, 2, 3, 4)]
    fallback = (0.5, 1.0, 1.5)
    if n[0] == 0 or n[1] == 0:
        return fallback
    Y = n[0] / (n[0] + 2 * n[1])
    D = [1 - 2 * Y * n[1] / n[0], 2 - 3 * Y * n[2] / n[1],
         3 - 4 * Y * n[3] / n[2] if n[2] else fallback[2]]
    return tuple(float(np.clip(d, 0.0, r)) for r, d in zip((1, 2, 3), D))


class KneserNey:
    def __init__(self, tokens, order, vocab_size, discounts=None):
        """tokens: 1-D ints in [0, vocab_size), the training text. discounts: {order: (D1, D2, D3+)}
        to fix some orders' discounts instead of estimating them (the tests do)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if order < 1 or len(tokens) < order:
            raise ValueError(f"an order-{order} model needs at least {order} training tokens")
        self.n, self.V = order, vocab_size
        V = vocab_size
        self.keys = [None]                      # keys[k]: sorted int64 keys of the training k-grams
        at = [np.zeros(len(tokens) + 1, dtype=np.int64)]   # at[k][i]: id of the k-gram starting at i
        for k in range(1, order + 1):
            key = at[k - 1][:len(tokens) - k + 1] * V + tokens[k - 1:]
            uniq, inverse = np.unique(key, return_inverse=True)
            self.keys.append(uniq)
            at.append(inverse.astype(np.int64))
        # the counts each order uses: raw c at the top, continuation counts c' below it
        self.used = [None]
        for k in range(1, order + 1):
            if k == order:
                counts = np.bincount(at[k], minlength=len(self.keys[k]))
            else:   # c'(g) = the number of distinct (k+1)-grams whose last k tokens are g
                _, first = np.unique(at[k + 1], return_index=True)
                counts = np.bincount(at[k][first + 1], minlength=len(self.keys[k]))
            self.used.append(counts)
        # per order: the discounts, and per context (a (k-1)-gram id) its total and gamma
        self.D, self.total, self.gamma = [None], [None], [None]
        for k in range(1, order + 1):
            u = self.used[k]
            D = (discounts or {}).get(k) or estimate_discounts(u)
            prefix = self.keys[k] // V                        # the (k-1)-gram before the last token
            n_ctx = 1 if k == 1 else len(self.keys[k - 1])
            total = np.bincount(prefix, weights=u, minlength=n_ctx)
            mass = np.bincount(prefix, weights=self.discount(u, D), minlength=n_ctx)
            self.D.append(D)
            self.total.append(total)
            self.gamma.append(np.divide(mass, total, out=np.zeros_like(mass), where=total > 0))

    @staticmethod
    def discount(u, D):
        """D(u): 0 for an unseen n-gram, D1, D2, or D3+ for counts 1, 2, >= 3."""
        return np.select([u == 1, u == 2, u >= 3], list(D), default=0.0)

    def lookup(self, k, prefix_ids, tokens):
        """Ids of the k-grams (prefix, token) among the training k-grams; -1 where absent."""
        key = prefix_ids * self.V + tokens
        pos = np.searchsorted(self.keys[k], key)
        pos = np.minimum(pos, len(self.keys[k]) - 1)
        found = (self.keys[k][pos] == key) & (prefix_ids >= 0) & (tokens >= 0)
        return np.where(found, pos, -1)

    def prob(self, rows):
        """rows: (M, L) token ids, -1 for "no token" (only on the left, before a text begins).
        Returns (M,) p(rows[:, -1] | the up to n-1 tokens before it)."""
        rows = np.asarray(rows, dtype=np.int64)
        M, L = rows.shape
        n = min(self.n, L)
        cols = rows[:, L - n:]                                 # the context and the target
        # ids of the grams that end at the last column (the target) and just before it (contexts)
        ends_at = {}                                          # (end column, length) -> ids
        for e in range(n):
            for k in range(1, e + 2):
                prefix = np.zeros(M, dtype=np.int64) if k == 1 else ends_at[(e - 1, k - 1)]
                ends_at[(e, k)] = self.lookup(k, prefix, cols[:, e])
        w = cols[:, -1]
        u = self.count(1, ends_at[(n - 1, 1)])
        # the unigram level, interpolated with the uniform distribution
        p = np.maximum(u - self.discount(u, self.D[1]), 0) / self.total[1][0] + self.gamma[1][0] / self.V
        for k in range(2, n + 1):
            h = ends_at[(n - 2, k - 1)]                       # the k-1 tokens before the target
            seen = (cols[:, n - k] >= 0) & (h >= 0)
            hh = np.where(seen, h, 0)
            seen &= self.total[k][hh] > 0
            u = self.count(k, ends_at[(n - 1, k)])
            total = np.where(seen, self.total[k][hh], 1.0)
            higher = np.maximum(u - self.discount(u, self.D[k]), 0) / total + self.gamma[k][hh] * p
            p = np.where(seen, higher, p)                     # unseen context: back off with weight 1
        return np.where(w >= 0, p, np.nan)

    def count(self, k, ids):
        """The count order k uses for each gram id (0 where the id is -1)."""
        return np.where(ids >= 0, self.used[k][np.maximum(ids, 0)], 0)

    def nats(self, data):
        """-ln p of every target data[1:], each with the up to n-1 tokens before it in `data`."""
        data = np.asarray(data, dtype=np.int64)
        padded = np.concatenate([np.full(self.n - 1, -1, dtype=np.int64), data])
        rows = np.lib.stride_tricks.sliding_window_view(padded, self.n)[1:]   # row t: target data[t]
        return -np.log(self.prob(rows))
