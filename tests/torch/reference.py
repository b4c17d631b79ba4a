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

Interventions (include/at.h's group "interventions"; tests/torch/
test_torch_interv.py checks libat against them): a model given an
Interventions object (EncoderDecoder.set_interventions) fires taps at every
site of at.h's at_site, in the order of the pass, multiplies each head's P·V
by its gate ξ[kind][layer][head] before the output projection, and replaces
the attention probabilities of a block (or head) by an override. Without one
(the default) the model computes exactly what it did before.
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


# ---------------------------------------------------------------- interventions

ENC_SELF, DEC_SELF, CROSS = 0, 1, 2
ALL = -1


class ShapeError(ValueError):
    """An override whose shape does not fit the pass (libat: AT_E_SHAPE)."""


class Interventions:
    """Taps, gates and overrides of one reference model.

    taps: functions tap(site, kind, layer, x) called with each tensor as the
    pass produces it; a tap returning a tensor replaces x for the rest of the
    pass (None leaves it). Sites are at.h's short names ("q", "k", "v",
    "scores", "probs", "head_out", "attn_out", "ff_hidden", "layer_out",
    "src_embed", "tgt_embed", "memory", "decoder", "logprobs"); layer sites
    carry the stack's kind (enc_self 0, dec_self 1), model sites kind 0 and
    layer 0. Cross-attention k and v of every layer are computed (and fire)
    right after the memory, before the target embedding.

    gates: None (every ξ = 1, no multiplication at all) or a (3, N, h)
    tensor, [kind][layer][head]; may require grad (a leaf for autograd).

    overrides: {(kind, layer): {head: probs}}, head ALL with probs
    (B, h, Lq, Lk), a head with (B, Lq, Lk); ALL applied first, then heads.
    In a full pass the shapes must be the pass's (else ShapeError); with
    decoding = True (prefix passes of greedy decoding) rows r < q_len of the
    override replace rows r of the pass, keys cut to the pass's (row t of
    the override is step t's; a prefix pass of length t+1 recomputes steps
    0..t, which a key/value cache would have kept from earlier steps).

    Gradients (autograd through a pass with interventions): by default the
    exact gradient of what the pass computed (an override is a constant: no
    gradient reaches the scores it replaced; an edit is part of the
    function). as_libat = True follows docs/interventions.md, "Training":
    an edited tensor is treated as if its layer had produced it (the
    gradient passes through the edit unchanged); overrides are exact either
    way.
    """

    def __init__(self):
        self.taps = []
        self.gates = None
        self.overrides = {}
        self.decoding = False
        self.rows = None  # beam search: the source row of each decoder row
        self.as_libat = False

    def fire(self, site, kind, layer, x):
        for tap in self.taps:
            y = tap(site, kind, layer, x)
            if y is not None:
                x = x + (y - x).detach() if self.as_libat else y
        return x

    def probs(self, kind, layer, scores):
        """softmax(scores) with the block's override in place."""
        p = scores.softmax(dim=-1)
        if not self.overrides.get((kind, layer)):
            return p
        # libat differentiates an override exactly (a constant), as autograd does
        return self.override(kind, layer, p)

    def set_override(self, kind, layer, head, probs):
        block = self.overrides.setdefault((kind, layer), {})
        if probs is None:
            block.pop(head, None)
        else:
            block[head] = probs

    def override(self, kind, layer, p):
        block = self.overrides.get((kind, layer))
        if not block:
            return p
        p = p.clone()
        nb, _, lq, lk = p.shape
        for head in sorted(block):  # ALL (-1) first
            o = block[head].to(p.dtype)
            if self.rows is not None:  # every hypothesis uses its source's rows
                o = o[self.rows]
            if o.size(0) != nb:
                raise ShapeError("override (%d, %d, %d): batch %d, pass %d"
                                 % (kind, layer, head, o.size(0), nb))
            qo, ko = o.shape[-2:]
            if not self.decoding:
                if (qo, ko) != (lq, lk):
                    raise ShapeError("override (%d, %d, %d): %dx%d, pass %dx%d"
                                     % (kind, layer, head, qo, ko, lq, lk))
                n = lq
            else:
                n = min(lq, qo)
                if kind != DEC_SELF and ko != lk:
                    raise ShapeError("override (%d, %d, %d): %d keys, pass %d"
                                     % (kind, layer, head, ko, lk))
                if ko < lk:  # dec_self rows r < q_len have no weight after key r anyway
                    o = torch.cat([o, o.new_zeros(o.shape[:-1] + (lk - ko,))], dim=-1)
            if head == ALL:
                p[:, :, :n, :] = o[:, :, :n, :lk]
            else:
                p[:, head, :n, :] = o[:, :n, :lk]
        return p


def _iv(module):
    return module.__dict__.get("iv")


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
        self.kind = self.layer = 0  # set by EncoderDecoder

    def _heads(self, lin, x):
        return lin(x).view(x.size(0), -1, self.h, self.d_k).transpose(1, 2)

    def project_kv(self, key, value):
        """Keys and values (B, h, Lk, d_k), the k and v taps fired."""
        iv = _iv(self)
        k, v = self._heads(self.linears[1], key), self._heads(self.linears[2], value)
        if iv is not None:
            k = iv.fire("k", self.kind, self.layer, k)
            v = iv.fire("v", self.kind, self.layer, v)
        return k, v

    def forward(self, query, key, value, mask, kv=None):
        """kv: keys and values already projected (project_kv), else from key, value."""
        iv = _iv(self)
        kind, layer = self.kind, self.layer
        mask = mask.unsqueeze(1)  # head axis (§6)
        nb = query.size(0)
        q = self._heads(self.linears[0], query)
        if iv is not None:
            q = iv.fire("q", kind, layer, q)
        k, v = kv if kv is not None else self.project_kv(key, value)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        scores = scores.masked_fill(mask == 0, -1e9)
        if iv is not None:
            scores = iv.fire("scores", kind, layer, scores)
        if iv is None:
            p = scores.softmax(dim=-1)
        else:
            p = iv.probs(kind, layer, scores)
            p = iv.fire("probs", kind, layer, p)
        self.attn = p
        x = torch.matmul(p, v)  # (B, h, Lq, d_k)
        if iv is not None:
            x = iv.fire("head_out", kind, layer, x)
            if iv.gates is not None:  # ξ multiplies head j's columns before W_o
                x = x * iv.gates[kind, layer].to(x.dtype).view(1, self.h, 1, 1)
        x = x.transpose(1, 2).contiguous().view(nb, -1, self.h * self.d_k)
        x = self.linears[3](x)
        if iv is not None:
            x = iv.fire("attn_out", kind, layer, x)
        return x


class PositionwiseFeedForward(nn.Module):
    """§7: w_2(relu(w_1 x))."""

    def __init__(self, d, d_ff):
        super().__init__()
        self.w_1 = nn.Linear(d, d_ff)
        self.w_2 = nn.Linear(d_ff, d)

    def forward(self, x):
        iv = _iv(self)
        hidden = self.w_1(x).relu()
        if iv is not None:
            hidden = iv.fire("ff_hidden", self.kind, self.layer, hidden)
        return self.w_2(hidden)


class EncoderLayer(nn.Module):
    def __init__(self, d, h, d_ff):
        super().__init__()
        self.self_attn = MultiHeadedAttention(h, d)
        self.feed_forward = PositionwiseFeedForward(d, d_ff)
        self.sublayer = nn.ModuleList([SublayerConnection(d) for _ in range(2)])

    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda y: self.self_attn(y, y, y, mask))
        x = self.sublayer[1](x, self.feed_forward)
        iv = _iv(self)
        return x if iv is None else iv.fire("layer_out", ENC_SELF, self.index, x)


class DecoderLayer(nn.Module):
    def __init__(self, d, h, d_ff):
        super().__init__()
        self.self_attn = MultiHeadedAttention(h, d)
        self.src_attn = MultiHeadedAttention(h, d)
        self.feed_forward = PositionwiseFeedForward(d, d_ff)
        self.sublayer = nn.ModuleList([SublayerConnection(d) for _ in range(3)])

    def forward(self, x, memory, src_mask, tgt_mask, kv=None):
        x = self.sublayer[0](x, lambda y: self.self_attn(y, y, y, tgt_mask))
        # memory is not normalised again (§4)
        if kv is None:
            x = self.sublayer[1](x, lambda y: self.src_attn(y, memory, memory, src_mask))
        else:
            x = self.sublayer[1](x, lambda y: self.src_attn(y, memory, memory, src_mask, kv))
        x = self.sublayer[2](x, self.feed_forward)
        iv = _iv(self)
        return x if iv is None else iv.fire("layer_out", DEC_SELF, self.index, x)


class Stack(nn.Module):
    """Encoder or Decoder: N layers, then the final norm."""

    def __init__(self, layer, n, d):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(n)])
        self.norm = LayerNorm(d)

    def forward(self, x, *args, kvs=None):
        for i, layer in enumerate(self.layers):
            x = layer(x, *args) if kvs is None else layer(x, *args, kv=kvs[i])
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
        y = self.proj(x).log_softmax(dim=-1)
        iv = _iv(self)
        return y if iv is None else iv.fire("logprobs", 0, 0, y)


class EncoderDecoder(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, n, d, d_ff, h, max_len=5000):
        super().__init__()
        self.encoder = Stack(EncoderLayer(d, h, d_ff), n, d)
        self.decoder = Stack(DecoderLayer(d, h, d_ff), n, d)
        self.src_embed = nn.Sequential(Embeddings(d, src_vocab), PositionalEncoding(d, max_len))
        self.tgt_embed = nn.Sequential(Embeddings(d, tgt_vocab), PositionalEncoding(d, max_len))
        self.generator = Generator(d, tgt_vocab)
        for i, l in enumerate(self.encoder.layers):
            l.index = i
            l.self_attn.kind, l.self_attn.layer = ENC_SELF, i
            l.feed_forward.kind, l.feed_forward.layer = ENC_SELF, i
        for i, l in enumerate(self.decoder.layers):
            l.index = i
            l.self_attn.kind, l.self_attn.layer = DEC_SELF, i
            l.src_attn.kind, l.src_attn.layer = CROSS, i
            l.feed_forward.kind, l.feed_forward.layer = DEC_SELF, i

    def set_interventions(self, iv):
        """Every later call honours iv (an Interventions), or none (None)."""
        for mod in self.modules():
            mod.__dict__["iv"] = iv
        return iv

    def encode(self, src, src_mask):
        iv = _iv(self)
        x = self.src_embed(src)
        if iv is None:
            return self.encoder(x, src_mask)
        x = iv.fire("src_embed", 0, 0, x)
        return iv.fire("memory", 0, 0, self.encoder(x, src_mask))

    def decode(self, memory, src_mask, tgt, tgt_mask):
        iv = _iv(self)
        if iv is None:
            return self.decoder(self.tgt_embed(tgt), memory, src_mask, tgt_mask)
        # the cross-attention keys and values of every layer come from the
        # memory alone: computed (and tapped) before the target side
        kvs = [l.src_attn.project_kv(memory, memory) for l in self.decoder.layers]
        x = iv.fire("tgt_embed", 0, 0, self.tgt_embed(tgt))
        return iv.fire("decoder", 0, 0, self.decoder(x, memory, src_mask, tgt_mask, kvs=kvs))

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


@torch.no_grad()
def greedy_decode_batch(model, src, pad, max_len, start, before_step=None):
    """Greedy decoding of a batch as at_greedy_decode describes it (source
    mask src != pad, only the future masked on the target side, every row
    to max_len ids), without a cache: each step re-runs the decoder over the
    whole prefix, with the model's interventions (overrides in decoding
    mode: step t uses row t). before_step(t) is called before step t's pass.
    Returns the ids (B, max_len) and each step's smallest top-1 minus top-2
    margin over the rows."""
    iv = _iv(model)
    if iv is not None:
        iv.decoding = True
    try:
        src_mask = src_mask_of(src, pad)
        if before_step is not None:
            before_step(-1)
        memory = model.encode(src, src_mask)
        ys = torch.full((src.size(0), 1), start, dtype=src.dtype)
        margins = []
        for t in range(max_len - 1):
            if before_step is not None:
                before_step(t)
            out = model.decode(memory, src_mask, ys, subsequent_mask(t + 1))
            logp = model.generator(out)[:, -1]
            top = torch.topk(logp, 2, dim=-1).values
            margins.append(float((top[:, 0] - top[:, 1]).min()))
            nxt = torch.argmax(logp, dim=-1, keepdim=True).to(src.dtype)
            ys = torch.cat([ys, nxt], dim=1)
        return ys, margins
    finally:
        if iv is not None:
            iv.decoding = False


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
    iv = _iv(model)
    try:
        return _beam_search(model, src_mask, memory, iv, nb, longest, start, end, beam, alpha)
    finally:
        if iv is not None:
            iv.decoding, iv.rows = False, None


def _beam_search(model, src_mask, memory, iv, nb, longest, start, end, beam, alpha):
    live = [[([start], 0.0)] for _ in range(nb)]  # per row: (ids, log P), rank order
    finished = [[] for _ in range(nb)]            # per row: (score, ids, log P)
    gaps = [math.inf] * nb
    for length in range(2, max(longest) + 1):  # ids after this step, start included
        rows = [r for r in range(nb) if length <= longest[r]]
        owner = [(r, h) for r in rows for h in range(len(live[r]))]
        ys = torch.tensor([live[r][h][0] for r, h in owner], dtype=torch.long)
        at = torch.tensor([r for r, _ in owner])
        if iv is not None:  # overrides: step t uses row t of the source's rows
            iv.decoding, iv.rows = True, at
        out = model.decode(memory[at], src_mask[at], ys, subsequent_mask(length - 1))
        logp = (model.generator(out)[:, -1] if iv is not None
                else model.generator(out[:, -1])).double().numpy()
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
