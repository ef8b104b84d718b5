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
The sub-layers (§3.1-3.5) and their written-out backward passes are in transformer/layers.py.
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

from transformer.layers import (BACKWARDS, Block, FeedForward, LayerNorm, MultiHeadAttention, attention,  # noqa: F401
                                rotary, rotate, sinusoids)
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
    backward: str = "manual"  # "manual": the written-out backward passes of transformer/layers.py;
                              # "autograd": the same formulas left to autograd


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
        self.norm_f = LayerNorm(d, config.eps, config.backward) if config.norm == "pre" else None   # DEVIATION
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
        x = F.dropout(x, self.config.dropout, self.training) if self.config.dropout > 0 else x
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
    backward: str = "manual"  # as TransformerConfig's


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
        self.cross = MultiHeadAttention(d, config.n_heads, config.backward)
        self.norm_cross = LayerNorm(d, config.eps, config.backward)

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
        norm = lambda: LayerNorm(d, c.eps, c.backward)
        self.norm_enc, self.norm_dec = (norm(), norm()) if pre else (None, None)
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
    if config.backward not in BACKWARDS:
        raise ValueError(f"backward must be manual or autograd, got {config.backward!r}")
    if config.d_model % config.n_heads:
        raise ValueError(f"d_model {config.d_model} is not a multiple of n_heads {config.n_heads}")
    if config.pos == "rope" and (config.d_model // config.n_heads) % 2:
        raise ValueError("rope turns pairs of features: d_model / n_heads must be even")
    if config.pos == "sinusoidal" and config.d_model % 2:
        raise ValueError("sinusoids come in sin/cos pairs: d_model must be even")
