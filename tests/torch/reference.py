"""An independent PyTorch model of The Annotated Transformer, written from
/work/shared/SEMANTICS.md (section numbers below are that file's), not from
libat's C code: the modules of make_model, the Batch masks, the
label-smoothed KL criterion, the Noam rate, greedy decoding as the
reference's greedy_decode and a beam search written from include/at.h's
description of at_beam_decode (without a key/value cache: every step re-runs
the decoder over the whole prefix).

Weights come from a safetensors file (the one libat wrote) under the
state_dict names of §15; the module names below are chosen so that
state_dict() has exactly those names. dtype is a parameter: float64 gives
the reference numbers the tests compare libat's float32 with, float32 shows
how far float32 arithmetic alone lands from them.
"""

import copy
import json
import math
import struct

import numpy as np
import torch
from torch import nn

_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    """{name: ndarray} of a safetensors file (8-byte little-endian header
    length, JSON header, raw little-endian data), and its __metadata__."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + lo:base + hi],
                                  dtype=_ST_DTYPES[info["dtype"]]).reshape(info["shape"]).copy()
    return out, meta


# ---------------------------------------------------------------- modules (§2–§7)

class LayerNorm(nn.Module):
    """§3: unbiased std, eps added to the std, ((a·(x−mean)) / (std+eps)) + b."""

    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(d))
        self.b_2 = nn.Parameter(torch.zeros(d))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)  # unbiased (divides by d − 1)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class SublayerConnection(nn.Module):
    """§4: pre-norm residual, x + sublayer(norm(x)) (dropout is 0 in every check)."""

    def __init__(self, d):
        super().__init__()
        self.norm = LayerNorm(d)

    def forward(self, x, sublayer):
        return x + sublayer(self.norm(x))


class MultiHeadedAttention(nn.Module):
    """§5: linears.0..2 project q, k, v; heads own consecutive d_k columns;
    scores / sqrt(d_k), masked_fill(mask == 0, −1e9), softmax; linears.3."""

    def __init__(self, h, d):
        super().__init__()
        self.h, self.d_k = h, d // h
        self.linears = nn.ModuleList([nn.Linear(d, d) for _ in range(4)])
        self.attn = None

    def forward(self, query, key, value, mask):
        mask = mask.unsqueeze(1)  # head axis (§6)
        nb = query.size(0)
        q, k, v = [lin(x).view(nb, -1, self.h, self.d_k).transpose(1, 2)
                   for lin, x in zip(self.linears, (query, key, value))]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        scores = scores.masked_fill(mask == 0, -1e9)
        p = scores.softmax(dim=-1)
        self.attn = p
        x = torch.matmul(p, v).transpose(1, 2).contiguous().view(nb, -1, self.h * self.d_k)
        return self.linears[3](x)


class PositionwiseFeedForward(nn.Module):
    """§7: w_2(relu(w_1 x))."""

    def __init__(self, d, d_ff):
        super().__init__()
        self.w_1 = nn.Linear(d, d_ff)
        self.w_2 = nn.Linear(d_ff, d)

    def forward(self, x):
        return self.w_2(self.w_1(x).relu())


class EncoderLayer(nn.Module):
    def __init__(self, d, h, d_ff):
        super().__init__()
        self.self_attn = MultiHeadedAttention(h, d)
        self.feed_forward = PositionwiseFeedForward(d, d_ff)
        self.sublayer = nn.ModuleList([SublayerConnection(d) for _ in range(2)])

    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda y: self.self_attn(y, y, y, mask))
        return self.sublayer[1](x, self.feed_forward)


class DecoderLayer(nn.Module):
    def __init__(self, d, h, d_ff):
        super().__init__()
        self.self_attn = MultiHeadedAttention(h, d)
        self.src_attn = MultiHeadedAttention(h, d)
        self.feed_forward = PositionwiseFeedForward(d, d_ff)
        self.sublayer = nn.ModuleList([SublayerConnection(d) for _ in range(3)])

    def forward(self, x, memory, src_mask, tgt_mask):
        x = self.sublayer[0](x, lambda y: self.self_attn(y, y, y, tgt_mask))
        # memory is not normalised again (§4)
        x = self.sublayer[1](x, lambda y: self.src_attn(y, memory, memory, src_mask))
        return self.sublayer[2](x, self.feed_forward)


class Stack(nn.Module):
    """Encoder or Decoder: N layers, then the final norm."""

    def __init__(self, layer, n, d):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(n)])
        self.norm = LayerNorm(d)

    def forward(self, x, *args):
        for layer in self.layers:
            x = layer(x, *args)
        return self.norm(x)


class Embeddings(nn.Module):
    """§2: table[id] · sqrt(d_model)."""

    def __init__(self, d, vocab):
        super().__init__()
        self.lut = nn.Embedding(vocab, d)
        self.d = d

    def forward(self, x):
        return self.lut(x) * math.sqrt(self.d)


class PositionalEncoding(nn.Module):
    """§2: + pe[0, pos, :]; pe is a buffer, loaded from the checkpoint."""

    def __init__(self, d, max_len=5000):
        super().__init__()
        self.register_buffer("pe", torch.zeros(1, max_len, d))

    def forward(self, x):
        return x + self.pe[:, :x.size(1)]


class Generator(nn.Module):
    """§7: log_softmax(proj(x))."""

    def __init__(self, d, vocab):
        super().__init__()
        self.proj = nn.Linear(d, vocab)

    def forward(self, x):
        return self.proj(x).log_softmax(dim=-1)


class EncoderDecoder(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, n, d, d_ff, h, max_len=5000):
        super().__init__()
        self.encoder = Stack(EncoderLayer(d, h, d_ff), n, d)
        self.decoder = Stack(DecoderLayer(d, h, d_ff), n, d)
        self.src_embed = nn.Sequential(Embeddings(d, src_vocab), PositionalEncoding(d, max_len))
        self.tgt_embed = nn.Sequential(Embeddings(d, tgt_vocab), PositionalEncoding(d, max_len))
        self.generator = Generator(d, tgt_vocab)

    def encode(self, src, src_mask):
        return self.encoder(self.src_embed(src), src_mask)

    def decode(self, memory, src_mask, tgt, tgt_mask):
        return self.decoder(self.tgt_embed(tgt), memory, src_mask, tgt_mask)

    def forward(self, src, tgt, src_mask, tgt_mask):
        return self.decode(self.encode(src, src_mask), src_mask, tgt, tgt_mask)

    def attention(self, kind):
        """The probabilities of the last call, one (B, h, Lq, Lk) tensor per layer."""
        if kind == "enc_self":
            return [l.self_attn.attn for l in self.encoder.layers]
        if kind == "dec_self":
            return [l.self_attn.attn for l in self.decoder.layers]
        return [l.src_attn.attn for l in self.decoder.layers]


def load_model(path, heads, dtype=torch.float64):
    """The reference model with the weights of a safetensors checkpoint
    (every tensor of §15, pe buffers included), in eval mode. A training
    checkpoint's optimizer state (adam.*) is left out."""
    st, _ = read_safetensors(path)
    st = {k: v for k, v in st.items() if not k.startswith("adam.")}
    n = 1 + max(int(k.split(".")[2]) for k in st if k.startswith("encoder.layers."))
    src_vocab, d = st["src_embed.0.lut.weight"].shape
    tgt_vocab = st["tgt_embed.0.lut.weight"].shape[0]
    d_ff = st["encoder.layers.0.feed_forward.w_1.weight"].shape[0]
    max_len = st["src_embed.1.pe"].shape[1]
    model = EncoderDecoder(src_vocab, tgt_vocab, n, d, d_ff, heads, max_len)
    want = model.state_dict()
    if set(want) != set(st):
        raise ValueError("state_dict names differ: missing %s, extra %s"
                         % (sorted(set(want) - set(st)), sorted(set(st) - set(want))))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in st.items()})
    return model.to(dtype).eval()


# ---------------------------------------------------------------- masks, Batch (§6, §10)

def subsequent_mask(n):
    return torch.triu(torch.ones(1, n, n), diagonal=1) == 0


def src_mask_of(src, pad):
    return (src != pad).unsqueeze(-2)


def tgt_mask_of(tgt, pad):
    return (tgt != pad).unsqueeze(-2) & subsequent_mask(tgt.size(-1))


class Batch:
    """§10: tgt = Y[:, :-1], tgt_y = Y[:, 1:], masks, ntokens."""

    def __init__(self, src, tgt_full, pad):
        self.src = src
        self.src_mask = src_mask_of(src, pad)
        self.tgt = tgt_full[:, :-1]
        self.tgt_y = tgt_full[:, 1:]
        self.tgt_mask = tgt_mask_of(self.tgt, pad)
        self.ntokens = (self.tgt_y != pad).sum()


# ---------------------------------------------------------------- loss, rate (§11, §12)

class LabelSmoothing(nn.Module):
    """§11: KLDivLoss(sum) against the smoothed target distribution."""

    def __init__(self, size, padding_idx, smoothing):
        super().__init__()
        self.criterion = nn.KLDivLoss(reduction="sum")
        self.size, self.padding_idx = size, padding_idx
        self.smoothing, self.confidence = smoothing, 1.0 - smoothing

    def forward(self, x, target):
        true_dist = torch.full_like(x, self.smoothing / (self.size - 2))
        true_dist.scatter_(1, target.unsqueeze(1), self.confidence)
        true_dist[:, self.padding_idx] = 0
        true_dist[target == self.padding_idx] = 0
        return self.criterion(x, true_dist)


def loss_of(model, batch, smoothing, pad):
    """SimpleLossCompute: KL sum / ntokens over the generator's log-probs."""
    out = model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask)
    logp = model.generator(out)
    crit = LabelSmoothing(logp.size(-1), pad, smoothing)
    total = crit(logp.reshape(-1, logp.size(-1)), batch.tgt_y.reshape(-1))
    return total / batch.ntokens, total


def rate(step, model_size, factor, warmup):
    """§12, step 0 counted as 1, in double."""
    if step == 0:
        step = 1
    return factor * (model_size ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5)))


# ---------------------------------------------------------------- decoding

@torch.no_grad()
def greedy_decode(model, src, src_mask, max_len, start_symbol):
    """§14: batch size 1, no cache: each step decodes the whole prefix.
    Returns the ids (1, max_len) and each step's top-1 minus top-2 margin."""
    memory = model.encode(src, src_mask)
    ys = torch.full((1, 1), start_symbol, dtype=src.dtype)
    margins = []
    for _ in range(max_len - 1):
        out = model.decode(memory, src_mask, ys, subsequent_mask(ys.size(1)))
        logp = model.generator(out[:, -1])
        top = torch.topk(logp[0], 2).values
        margins.append(float(top[0] - top[1]))
        nxt = int(torch.argmax(logp[0]))
        ys = torch.cat([ys, torch.full((1, 1), nxt, dtype=src.dtype)], dim=1)
    return ys, margins


def length_penalty(n, alpha):
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (at.h, at_beam_decode)."""
    return ((5.0 + n) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model, src, pad, start, end, beam, alpha, max_len_a, max_len_b, max_len_param):
    """Every source row of src (B, S) searched on its own, as include/at.h
    describes at_beam_decode (the rows only share the decoder calls).

    Hypotheses Y are the ids after the start; log P(Y | x) is the sum of the
    generator's log-probabilities; score = log P / lp(|Y|). Each step ranks
    every continuation of every live hypothesis by log P (ties: lower
    hypothesis, then lower id) and keeps the 2K best; an end id among the
    first K finishes a hypothesis, the first K others stay live (in rank
    order: that order is the "lower hypothesis" of the next step). A row
    holds at most floor(a + b·|x|) ids with the start (|x| the non-pad
    source ids), capped at max_len_param + 1; at that length the K best
    continuations finish whatever their last id. No early stop: the search
    always runs to the longest length (at.h promises its early stop gives
    the same answer), and no key/value cache: the decoder re-reads the
    whole prefix of every hypothesis at every step.

    Returns, per row, (ids with the start, score, log P, the smallest gap
    between log P values whose order decided something: a measure of how
    near the row came to a tie).
    """
    nb = src.size(0)
    n_x = (src != pad).sum(dim=1).tolist()
    longest = [min(int(math.floor(max_len_a + max_len_b * n)), max_len_param + 1) for n in n_x]
    if min(longest) < 2:
        raise ValueError("a row must be allowed 2 ids")
    src_mask = src_mask_of(src, pad)
    memory = model.encode(src, src_mask)
    live = [[([start], 0.0)] for _ in range(nb)]  # per row: (ids, log P), rank order
    finished = [[] for _ in range(nb)]            # per row: (score, ids, log P)
    gaps = [math.inf] * nb
    for length in range(2, max(longest) + 1):  # ids after this step, start included
        rows = [r for r in range(nb) if length <= longest[r]]
        owner = [(r, h) for r in rows for h in range(len(live[r]))]
        ys = torch.tensor([live[r][h][0] for r, h in owner], dtype=torch.long)
        at = torch.tensor([r for r, _ in owner])
        out = model.decode(memory[at], src_mask[at], ys, subsequent_mask(length - 1))
        logp = model.generator(out[:, -1]).double().numpy()
        first = 0
        for r in rows:
            k = len(live[r])
            lp = logp[first:first + k]
            first += k
            total = np.array([c for _, c in live[r]])[:, None] + lp  # (k, V)
            hyp, tok = np.meshgrid(np.arange(k), np.arange(lp.shape[1]), indexing="ij")
            # highest log P first; ties: lower hypothesis, then lower id
            order = np.lexsort((tok.ravel(), hyp.ravel(), -total.ravel()))
            vals = total.ravel()[order]
            top = [(float(vals[i]), int(hyp.ravel()[order[i]]), int(tok.ravel()[order[i]]))
                   for i in range(min(2 * beam, order.size))]
            n_gap = min(2 * beam + 1, order.size)
            if n_gap > 1:
                gaps[r] = min(gaps[r], float(np.min(vals[:n_gap - 1] - vals[1:n_gap])))
            if length == longest[r]:
                for lpv, h, v in top[:beam]:
                    ids = live[r][h][0] + [v]
                    finished[r].append((lpv / length_penalty(len(ids) - 1, alpha), ids, lpv))
                continue
            new_live = []
            for rank, (lpv, h, v) in enumerate(top):
                ids = live[r][h][0] + [v]
                if v == end:
                    if rank < beam:
                        finished[r].append((lpv / length_penalty(len(ids) - 1, alpha), ids, lpv))
                    continue
                if len(new_live) < beam:
                    new_live.append((ids, lpv))
            live[r] = new_live
    results = []
    for r in range(nb):
        f = finished[r]
        # the best score; among equal scores the first finished
        best = max(range(len(f)), key=lambda i: (f[i][0], -i))
        score, ids, lpv = f[best]
        scores = sorted((x[0] for x in f), reverse=True)
        if len(scores) > 1:
            gaps[r] = min(gaps[r], scores[0] - scores[1])
        results.append((ids, score, lpv, gaps[r]))
    return results
