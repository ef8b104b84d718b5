"""The Transformer: a decoder-only character language model, and the paper's encoder-decoder translator.

Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin, "Attention Is All You
Need", arXiv:1706.03762v7 (2017). §3.1 the stack of layers, each sub-layer wrapped in a residual
connection and layer normalisation; §3.2.1 scaled dot-product attention (Eq. 1) with the decoder's
mask; §3.2.2 multi-head attention; §3.3 the position-wise feed-forward network (Eq. 2); §3.4
embeddings scaled by √d_model and shared with the pre-softmax projection; §3.5 sinusoidal
positional encodings; §5.4 dropout. The language model is the paper's decoder without the
encoder-decoder attention: a stack of (masked self-attention, feed-forward) layers. The translator
(TransformerTranslator) is §3.1 whole: an encoder stack of `Block`s without the causal mask, and a
decoder stack of `DecoderBlock`s, which put encoder-decoder attention, `MultiHeadAttention(x,
memory)`, between the masked self-attention and the feed-forward network; padding masks on the
source keys; it implements the translator interface of utils/translation.py, decoding one position
per step through a KV cache.
Variants, each a flag (DEVIATIONs from the paper): pre-norm (x + Sublayer(LayerNorm(x)), GPT-2,
Xiong et al. 2020), learned positions (tried in §3.5, Table 3 row E), rotary position embeddings
(RoPE: Su et al. 2021, arXiv:2104.09864), untied output weights.

    paper            code        shape
    d_model          d           width of every layer's input and output
    h                n_heads     attention heads
    d_k = d_v        d_k         d / h, width of one head
    d_ff             d_ff        inner width of the feed-forward network
    N                n_layers    layers in the stack
    W^Q, W^K, W^V    W_QKV       (d, 3d)      every head's projections side by side: [W^Q | W^K | W^V],
                                              head i in columns i d_k .. (i+1) d_k of each third
    W^O              W_O         (d, d)
    W_1, b_1         W_1, b_1    (d, d_ff), (d_ff,)
    W_2, b_2         W_2, b_2    (d_ff, d), (d,)
    Q, K, V          q, k, v     (B, h, T, d_k)   the heads as a batch dimension
    softmax(..)      alpha       (B, h, T, S)     attention weights, S keys
    PE               PE          (block_size, d)  a learned table (--pos learned); sinusoids() the paper's
    (embeddings)     E           (|V|, d)     also the pre-softmax weights when tied (§3.4)
                     E_src, E_tgt (|V_x|, d), (|V_y|, d)   the translator's; E_tgt tied as E
    LayerNorm        gamma, beta (d,)         Ba et al. 2016

Row vectors, batch first: `x @ W` is the paper's x W, as the paper writes it.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.init import xavier_uniform_


@dataclass
class TransformerConfig:
    vocab_size: int = 65
    block_size: int = 64      # the longest context; training reads blocks of this many characters
    n_layers: int = 4         # N. DEVIATION: smaller than the paper's base model (N 6, d 512, h 8,
    n_heads: int = 4          # h   d_ff 2048, Table 3): the minimal character GPT that trains in
    d_model: int = 128        # d   minutes on a CPU
    d_ff: int = 512           # d_ff = 4 d_model, the paper's ratio
    dropout: float = 0.0      # P_drop (§5.4: 0.1). DEVIATION: off, at this size and step count
    norm: str = "pre"         # "post": LayerNorm(x + Sublayer(x)) (§3.1). DEVIATION: "pre", the modern
                              # default (transformer/README.md: post- vs pre-norm)
    pos: str = "rope"         # "sinusoidal" (§3.5), "learned" (§3.5, Table 3 E). DEVIATION: "rope"
                              # (transformer/README.md: the three position options)
    tie: bool = True          # share E between the embedding and the pre-softmax projection (§3.4)
    eps: float = 1e-5         # layer normalisation's epsilon


# ---------------------------------------------------------------- layer normalisation (§3.1)

class LayerNorm(nn.Module):
    """Layer normalisation (Ba et al. 2016) over the last dimension, written out."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(d))
        self.beta = nn.Parameter(torch.zeros(d))
        self.eps = eps

    def forward(self, x):
        # LN(x) = gamma (x - mu) / sqrt(sigma^2 + eps) + beta, mu and sigma^2 over the d features
        # (written with mean(): on a CPU torch.var_mean over the last dimension is ~10x slower)
        x = x - x.mean(-1, keepdim=True)                                # x - mu  (B, T, d)
        var = (x * x).mean(-1, keepdim=True)                            # sigma^2 (B, T, 1)
        return self.gamma * x * torch.rsqrt(var + self.eps) + self.beta


# ---------------------------------------------------------------- attention (§3.2)

def attention(q, k, v, mask=None):
    """Scaled dot-product attention. q: (..., T, d_k); k, v: (..., S, d_k); mask: broadcastable to
    (..., T, S), booleans (True where a query may attend to a key) or numbers added to the scores
    (0 or -inf), as for F.scaled_dot_product_attention. Returns the output (..., T, d_k) and the
    weights alpha (..., T, S)."""
    d_k = q.shape[-1]
    scores = (q / math.sqrt(d_k)) @ k.transpose(-2, -1)                # (B, h, T, S)
    # the decoder's mask (§3.2.3): an illegal connection gets -inf, so weight 0 after softmax
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(mask.logical_not(), float("-inf"))
    elif mask is not None:
        scores = scores + mask                                          # (on a CPU 4x faster than masked_fill)
    # Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                    (Eq. 1)
    alpha = torch.softmax(scores, dim=-1)                               # (B, h, T, S)
    return alpha @ v, alpha                                             # (B, h, T, d_k)


def rotary(positions, d_k):
    """RoPE (Su et al. 2021): the pair (x_2i, x_2i+1) at position m turns by the angle m theta_i,
    theta_i = 10000^(-2i/d_k). Returns cos and sin of the angles, (T, d_k/2) each."""
    theta = 10000 ** (-torch.arange(0, d_k, 2, device=positions.device) / d_k)   # (d_k/2,)
    angle = positions[:, None].float() * theta                          # (T, d_k/2)
    return angle.cos(), angle.sin()


def rotate(x, cos, sin):
    """Rotate every pair of features of x (..., T, d_k) by its position's angles (RoPE): then
    q_m . k_n depends on the positions only through the offset m - n."""
    x1, x2 = x[..., 0::2], x[..., 1::2]                                 # (B, h, T, d_k/2) each
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)   # (B, h, T, d_k)


class MultiHeadAttention(nn.Module):
    """h heads, computed together: the heads are a batch dimension of one matmul. Self-attention is
    forward(x); encoder-decoder attention is forward(x, memory), queries from x and keys and values
    from memory (§3.2.3)."""

    def __init__(self, d_model, n_heads):
        super().__init__()
        self.h = n_heads
        # no biases: the paper's projections are matrices only
        self.W_QKV = nn.Parameter(xavier_uniform_(torch.empty(d_model, 3 * d_model)))
        self.W_O = nn.Parameter(xavier_uniform_(torch.empty(d_model, d_model)))

    def split_heads(self, x):
        B, T, d = x.shape
        return x.view(B, T, self.h, d // self.h).transpose(1, 2)        # (B, T, d) -> (B, h, T, d_k)

    def keys_values(self, memory):
        """K W^K_i, V W^V_i of every head for memory (B, S, d): (K, V), (B, h, S, d_k) each. A
        decoder computes them once per sentence: the encoder's output does not change while decoding."""
        d = memory.shape[-1]
        k, v = (memory @ self.W_QKV[:, d:]).split(d, -1)                # (B, S, d) each
        return self.split_heads(k), self.split_heads(v)

    def forward(self, x, memory=None, mask=None, rotation=None, past=None):
        """x: (B, T, d) the queries' positions; memory: (B, S, d), the keys' and values' (default x),
        or their (K, V) from keys_values(); mask: broadcastable to (B, h, T, P + S), see attention(),
        P the length of `past`; rotation: RoPE's (cos, sin) of the new positions, or None; past:
        (K, V) of earlier positions (B, h, P, d_k) from a KV cache. Returns (B, T, d) and (K, V) of
        every position attended to, past ones first."""
        B, T, d = x.shape
        if memory is None:
            # Q W^Q_i, K W^K_i, V W^V_i for every head i, in one matmul
            q, k, v = (x @ self.W_QKV).split(d, -1)                     # (B, T, d) each
            q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)   # (B, h, T, d_k)
        else:
            q = self.split_heads(x @ self.W_QKV[:, :d])                 # (B, h, T, d_k)
            k, v = memory if isinstance(memory, tuple) else self.keys_values(memory)   # (B, h, S, d_k)
        if rotation is not None:
            q, k = rotate(q, *rotation), rotate(k, *rotation)           # DEVIATION: RoPE
        if past is not None:
            k, v = torch.cat((past[0], k), 2), torch.cat((past[1], v), 2)   # (B, h, P + S, d_k)
        # head_i = Attention(Q W^Q_i, K W^K_i, V W^V_i)                    (§3.2.2)
        heads, _ = attention(q, k, v, mask)                             # (B, h, T, d_k)
        # MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O             (§3.2.2)
        out = heads.transpose(1, 2).reshape(B, T, d) @ self.W_O         # (B, T, d)
        return out, (k, v)


# ---------------------------------------------------------------- feed-forward network (§3.3)

class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1 = nn.Parameter(xavier_uniform_(torch.empty(d_model, d_ff)))
        self.b_1 = nn.Parameter(torch.zeros(d_ff))
        self.W_2 = nn.Parameter(xavier_uniform_(torch.empty(d_ff, d_model)))
        self.b_2 = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        # FFN(x) = max(0, x W_1 + b_1) W_2 + b_2                          (Eq. 2)
        return torch.relu(x @ self.W_1 + self.b_1) @ self.W_2 + self.b_2   # (B, T, d)


# ---------------------------------------------------------------- positional encoding (§3.5)

def sinusoids(positions, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)),
    for any positions (T,): the table needs no maximum length. Returns (T, d_model)."""
    i2 = torch.arange(0, d_model, 2, device=positions.device)          # 2i
    angle = positions[:, None].float() / 10000 ** (i2 / d_model)       # (T, d/2)
    return torch.stack((angle.sin(), angle.cos()), -1).flatten(-2)     # (T, d), sin and cos interleaved


# ---------------------------------------------------------------- one layer of the stack (§3.1)

class Block(nn.Module):
    """Multi-head self-attention, then the feed-forward network; each sub-layer with dropout, a
    residual connection and layer normalisation. The paper's encoder layer; with the causal mask,
    the layer of a decoder-only LM. (The encoder-decoder's DecoderBlock puts a third sub-layer,
    MultiHeadAttention(x, memory), between the two.)"""

    def __init__(self, config):
        super().__init__()
        d = config.d_model
        self.attn, self.norm_1 = MultiHeadAttention(d, config.n_heads), LayerNorm(d, config.eps)
        self.ffn, self.norm_2 = FeedForward(d, config.d_ff), LayerNorm(d, config.eps)
        self.pre, self.p = config.norm == "pre", config.dropout

    def sublayer(self, x, f, norm):
        """post-norm: LayerNorm(x + Dropout(Sublayer(x)))   (§3.1, dropout §5.4)
        pre-norm:  x + Dropout(Sublayer(LayerNorm(x)))   (DEVIATION)
        f returns the sub-layer's output and anything else to hand back (the attention's K, V)."""
        if self.pre:
            out, extra = f(norm(x))
            return x + F.dropout(out, self.p, self.training), extra
        out, extra = f(x)
        return norm(x + F.dropout(out, self.p, self.training)), extra

    def forward(self, x, mask=None, rotation=None, past=None):
        """x: (B, T, d). Returns (B, T, d) and the self-attention's (K, V), for a KV cache."""
        x, kv = self.sublayer(x, lambda h: self.attn(h, mask=mask, rotation=rotation, past=past), self.norm_1)
        x, _ = self.sublayer(x, lambda h: (self.ffn(h), None), self.norm_2)
        return x, kv


# ---------------------------------------------------------------- the language model

class KVCache:
    """The keys and values of the positions read so far, for generation: each new token then costs
    one position of attention per layer, not the whole prefix. kv[n] is layer n's (K, V), each
    (B, h, P, d_k); pos is the absolute position of the next token."""

    def __init__(self, n_layers):
        self.kv = [None] * n_layers
        self.pos = 0

    @property
    def length(self):
        """P, the positions held."""
        return 0 if self.kv[0] is None else self.kv[0][0].shape[2]

    def crop(self, n):
        """Keep the last n positions of every layer. pos keeps counting, so the next token's
        position stays its place in the text (valid for rope and sinusoids, not for learned)."""
        self.kv = [(k[:, :, -n:], v[:, :, -n:]) for k, v in self.kv]


class TransformerLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        check_config(config)
        self.config = config
        V, d, T = config.vocab_size, config.d_model, config.block_size
        # E, the embedding, N(0, 0.02^2) as in GPT-2 (the paper gives no init). Not N(0, 1/d), where
        # times √d_model a row has norm ~1 and, tied, gives its own token a logit ~√d_model at first
        self.E = nn.Parameter(torch.randn(V, d) * 0.02)
        # the learned table is added as it is, not times √d_model: at this init a row has norm ~0.23,
        # a token's E √d_model ~2.6 and a sinusoid's 8 (transformer/README.md: the paper said, we measured)
        self.PE = nn.Parameter(torch.randn(T, d) * 0.02) if config.pos == "learned" else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        # pre-norm leaves the residual stream unnormalised: one more LayerNorm before the output
        self.norm_f = LayerNorm(d, config.eps) if config.norm == "pre" else None   # DEVIATION (pre-norm)
        self.W_out = None if config.tie else nn.Parameter(xavier_uniform_(torch.empty(d, V)))
        # the decoder's mask (§3.2.3): position t attends to positions s <= t. Row t, column s holds
        # 0 where allowed and -inf where not, the number attention() adds to the score
        allowed = torch.ones(T, T, dtype=torch.bool).tril()
        self.register_buffer("causal", torch.zeros(T, T).masked_fill(~allowed, float("-inf")), persistent=False)

    def forward(self, idx, targets=None, cache=None):
        """idx: (B, T) tokens; targets: (B, T) the next tokens. With a KVCache, idx continues the
        positions it holds, and their keys and values are added to it. Returns logits (B, T, |V|)
        and the mean cross-entropy (nats) when targets are given."""
        B, T = idx.shape
        past, start = (0, 0) if cache is None else (cache.length, cache.pos)
        if past + T > self.config.block_size:
            raise ValueError(f"{past} cached + {T} new positions exceed the block size {self.config.block_size}")
        if self.PE is not None and start + T > self.config.block_size:
            raise ValueError(f"learned positions stop at {self.config.block_size - 1}: a cache cannot slide")
        positions = torch.arange(start, start + T, device=idx.device)  # (T,)
        d = self.config.d_model
        # the embeddings, multiplied by √d_model (§3.4); a row of E per token (index_select: E[idx])
        x = self.E.index_select(0, idx.flatten()).view(B, T, d) * math.sqrt(d)   # (B, T, d)
        if self.config.pos == "sinusoidal":
            x = x + sinusoids(positions, d)                             # (B, T, d) + (T, d)
        elif self.config.pos == "learned":
            x = x + self.PE[positions]                                  # (B, T, d) + (T, d)
        # dropout on the sums of the embeddings and the positional encodings (§5.4)
        x = F.dropout(x, self.config.dropout, self.training)
        rotation = rotary(positions, d // self.config.n_heads) if self.config.pos == "rope" else None
        mask = self.causal[past:past + T, :past + T]                    # (T, past + T)
        for n, block in enumerate(self.blocks):
            x, kv = block(x, mask, rotation, None if cache is None else cache.kv[n])
            if cache is not None:
                cache.kv[n] = kv
        if cache is not None:
            cache.pos += T
        if self.norm_f is not None:
            x = self.norm_f(x)
        # the pre-softmax linear transformation, its weights E^T when tied (§3.4)
        logits = x @ (self.E.T if self.W_out is None else self.W_out)  # (B, T, |V|)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))
        return logits, loss


# ---------------------------------------------------------------- the encoder-decoder (§3.1)

@dataclass
class TranslatorConfig:
    src_vocab: int = 8000     # DEVIATION: two vocabularies (a WordTokenizer per language), so the
    tgt_vocab: int = 6000     # source embedding is not shared with the target's (§3.4 shares all three)
    n_layers: int = 3         # N, in each stack. DEVIATION: the paper's base model is N 6, d 512,
    n_heads: int = 8          # h   h 8, d_ff 2048 (Table 3); this is the size of the public
    d_model: int = 256        # d   Multi30k references (3 layers, width 256)
    d_ff: int = 512           # d_ff = 2 d_model (the paper: 4 d_model)
    dropout: float = 0.1      # P_drop, §5.4
    norm: str = "post"        # LayerNorm(x + Sublayer(x)), §3.1; or "pre" (DEVIATION)
    pos: str = "sinusoidal"   # §3.5; or "learned" (Table 3 E) or "rope" (DEVIATION)
    tie: bool = True          # the target embedding is the pre-softmax weights too (§3.4)
    block_size: int = 64      # learned positions only: the table's length, the longest sentence + 1
    eps: float = 1e-5


# the encoder's layer is the language model's: self-attention (no causal mask: every source word
# sees every other) then the feed-forward network
EncoderBlock = Block


class DecoderBlock(Block):
    """The decoder's layer (§3.1): masked self-attention, then encoder-decoder attention over the
    encoder's output (queries from the decoder, keys and values from the memory, §3.2.3), then the
    feed-forward network; each sub-layer with dropout, a residual connection and layer norm."""

    def __init__(self, config):
        super().__init__(config)
        d = config.d_model
        self.cross, self.norm_cross = MultiHeadAttention(d, config.n_heads), LayerNorm(d, config.eps)

    def forward(self, x, memory_kv, memory_mask, mask=None, rotation=None, past=None):
        """x: (B, T, d); memory_kv: this layer's cross-attention (K, V) of the encoder's output,
        (B, h, S, d_k) each; memory_mask: (B, 1, 1, S), -inf at padded source positions. Returns
        (B, T, d) and the self-attention's (K, V), for the KV cache."""
        x, kv = self.sublayer(x, lambda h: self.attn(h, mask=mask, rotation=rotation, past=past), self.norm_1)
        x, _ = self.sublayer(x, lambda h: (self.cross(h, memory_kv, memory_mask)[0], None), self.norm_cross)
        x, _ = self.sublayer(x, lambda h: (self.ffn(h), None), self.norm_2)
        return x, kv


class TransformerTranslator(nn.Module):
    """Encoder and decoder stacks (§3.1), with the translator interface of utils/translation.py:
    forward (teacher forcing), encode, init_decoder, decode_step. memory = {"mask": (B, 1, 1, S)
    -inf at padding, "kv": per decoder layer the cross-attention's (K, V), computed once in
    encode}; the decoder's state is its KV cache: per layer the self-attention's (K, V) of the
    target positions read so far, (B, h, t, d_k) each (None before the first step)."""

    def __init__(self, config):
        super().__init__()
        check_config(config)
        self.config = c = config
        d = c.d_model
        # E_src, E_tgt ~ N(0, 1/d_model), fairseq's (the paper gives no init): times √d_model (§3.4)
        # every component has unit variance, the scale of the sinusoids
        self.E_src = nn.Parameter(torch.randn(c.src_vocab, d) * d ** -0.5)
        self.E_tgt = nn.Parameter(torch.randn(c.tgt_vocab, d) * d ** -0.5)
        self.PE = nn.Parameter(torch.randn(c.block_size, d) * 0.02) if c.pos == "learned" else None
        self.encoder = nn.ModuleList(EncoderBlock(c) for _ in range(c.n_layers))
        self.decoder = nn.ModuleList(DecoderBlock(c) for _ in range(c.n_layers))
        pre = c.norm == "pre"                                           # DEVIATION (pre-norm): final norms
        self.norm_enc, self.norm_dec = (LayerNorm(d, c.eps), LayerNorm(d, c.eps)) if pre else (None, None)
        self.W_out = None if c.tie else nn.Parameter(xavier_uniform_(torch.empty(d, c.tgt_vocab)))

    def embed(self, E, ids, start=0):
        """Embeddings of ids (B, T) at positions start .. start + T - 1, with positional encodings
        and dropout: (B, T, d), and RoPE's rotation of those positions (or None)."""
        B, T = ids.shape
        c, d = self.config, self.config.d_model
        if c.pos == "learned" and start + T > c.block_size:
            raise ValueError(f"learned positions stop at {c.block_size - 1}: {start + T} positions asked")
        positions = torch.arange(start, start + T, device=ids.device)  # (T,)
        # the embeddings, multiplied by √d_model (§3.4)
        x = E.index_select(0, ids.flatten()).view(B, T, d) * math.sqrt(d)   # (B, T, d)
        if c.pos == "sinusoidal":
            x = x + sinusoids(positions, d)                             # (B, T, d) + (T, d)
        elif c.pos == "learned":
            x = x + self.PE[positions]                                  # (B, T, d) + (T, d)
        rotation = rotary(positions, d // c.n_heads) if c.pos == "rope" else None
        # dropout on the sums of the embeddings and the positional encodings (§5.4)
        return F.dropout(x, c.dropout, self.training), rotation

    def encode(self, src, src_len):
        """src (B, S), PAD after src_len -> memory. Padded positions are computed but never attended to."""
        B, S = src.shape
        # padding masks on the source keys: -inf added to their scores, in every attention over the source
        pad = torch.arange(S, device=src.device) >= src_len[:, None]   # (B, S) bool
        mask = torch.zeros(B, 1, 1, S, device=src.device).masked_fill(pad[:, None, None], float("-inf"))
        x, rotation = self.embed(self.E_src, src)                       # (B, S, d)
        for block in self.encoder:
            x, _ = block(x, mask, rotation)                             # (B, S, d)
        if self.norm_enc is not None:
            x = self.norm_enc(x)
        # every decoder layer's keys and values of the encoder's output, once per sentence
        return {"mask": mask, "kv": [block.cross.keys_values(x) for block in self.decoder]}

    def decode(self, memory, tgt, cache=None):
        """The decoder over tgt (B, T), continuing the t positions in cache (a list of per-layer
        (K, V), or None) -> logits (B, T, |V_y|) and the cache with the T positions added."""
        T, t = tgt.shape[1], 0 if cache is None or cache[0] is None else cache[0][0].shape[2]
        x, rotation = self.embed(self.E_tgt, tgt, t)                    # (B, T, d)
        # the decoder's mask (§3.2.3): position i attends to positions <= i, the cached ones included
        causal = torch.full((T, t + T), float("-inf"), device=tgt.device).triu(t + 1)   # (T, t + T)
        cache, new = cache or [None] * len(self.decoder), []
        for n, block in enumerate(self.decoder):
            x, kv = block(x, memory["kv"][n], memory["mask"], causal, rotation, cache[n])
            new.append(kv)
        if self.norm_dec is not None:
            x = self.norm_dec(x)
        # the pre-softmax linear transformation, its weights E_y^T when tied (§3.4)
        return x @ (self.E_tgt.T if self.W_out is None else self.W_out), new   # (B, T, |V_y|)

    def forward(self, src, src_len, tgt_in):
        """Teacher forcing: the decoder reads tgt_in (B, T) = <bos> y_1 .. y_n -> logits (B, T, |V_y|)."""
        return self.decode(self.encode(src, src_len), tgt_in)[0]

    def init_decoder(self, memory):
        return [None] * self.config.n_layers                            # an empty KV cache

    def decode_step(self, memory, state, prev):
        """One position: prev (B,) -> logits (B, |V_y|) and the cache one position longer."""
        logits, state = self.decode(memory, prev[:, None], state)      # (B, 1, |V_y|)
        return logits[:, 0], state


def check_config(config):
    """A ValueError for a configuration the model cannot be built with."""
    if config.norm not in ("post", "pre"):
        raise ValueError(f"norm must be post or pre, got {config.norm!r}")
    if config.pos not in ("sinusoidal", "learned", "rope"):
        raise ValueError(f"pos must be sinusoidal, learned or rope, got {config.pos!r}")
    if config.d_model % config.n_heads:
        raise ValueError(f"d_model {config.d_model} is not a multiple of n_heads {config.n_heads}")
    if config.pos == "rope" and (config.d_model // config.n_heads) % 2:
        raise ValueError("rope turns pairs of features: d_model / n_heads must be even")
    if config.pos == "sinusoidal" and config.d_model % 2:
        raise ValueError("sinusoids come in sin/cos pairs: d_model must be even")
