#!/usr/bin/python3
"""The PyTorch peer of `attn train --task translate` (issue 9, "Quality and
speed"): the annotated walkthrough's training of a translation model, on the
data attn trains on, batched as attn batches it, timed as attn times it.

The model is the independent PyTorch reference of tests/torch/reference.py
(written from /work/shared/SEMANTICS.md: make_model's modules, Batch,
LabelSmoothing, rate, greedy_decode) with what the reference leaves out
because its checks run without it: dropout as make_model places it (§8: after
emb + pe, on every sublayer output, inside the feed-forward after the ReLU,
and 0.1 on the attention probabilities whatever --dropout says), the
sinusoidal pe buffer and make_model's xavier_uniform initialisation (§9).
Training is the walkthrough's run_epoch: the loss is the label-smoothed KL
summed over the batch / ntokens, Adam(lr 1, betas 0.9/0.98, eps 1e-9) with
the Noam rate through LambdaLR, zero_grad(set_to_none=True).

The data is attn's, exactly: the SentencePiece model is read from an attn
checkpoint's metadata ("tokenizer": base64 of the serialized model), every
sentence is <s>=2 pieces </s>=3, pad 0; the training pairs (both sides within
--max-tokens ids) are sorted by (target length, source length, file order)
and cut into batches of B pairs with B * max(S, T) <= --batch-tokens, and the
batch order of epoch e is attn's Fisher-Yates shuffle from (seed, e)
(src/attn/nmt_train.c epoch_order), so with the same seed the peer sees the
same batches in the same order as attn. This file does not run attn to
compare; tests/bench/translate_speed.sh checks that the counts of pairs,
batches and target tokens agree with attn's.

Timing is attn's: the seconds of the training steps alone (making the batch
tensors, forward, backward, the optimizer step), summed; the run stops after
the step that takes them past --minutes. The last line:

    peer: N steps, T target tokens in S s of steps (X target tokens/s); loss L

--eval translates DATA/test.src greedily (batch 1, the walkthrough's
greedy_decode, the decoder re-run over the whole prefix each step, stopped at
</s>, at most floor(10 + 2 * source ids) ids: attn's default limit for a
sentence decoded alone) and scores it
with `attn eval --hyp F --ref DATA/test.tgt`, so the BLEU is libat's metric.

--weights-from CHECKPOINT skips training: the test split is translated as
--eval translates it, by the same modules with the weights of an attn
checkpoint (tests/torch/reference.py's load_model), so the walkthrough's
decoding can be timed on libat's own trained model
(tests/bench/translate_decode.py does, beside attn's beam search).

Run with Debian's /usr/bin/python3 (python3-torch, python3-sentencepiece).
"""

import argparse
import base64
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="DIR with {train,test}.{src,tgt}")
    p.add_argument("--tokenizer-from", required=True, metavar="CHECKPOINT",
                   help="an attn translate checkpoint (its metadata key 'tokenizer')")
    p.add_argument("--minutes", type=float, default=20.0,
                   help="seconds of training steps / 60 (default 20)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads, OMP_NUM_THREADS and "
                        "OPENBLAS_NUM_THREADS (default 2)")
    p.add_argument("--omp-wait-policy", choices=("default", "passive", "active"),
                   default="default",
                   help="OMP_WAIT_POLICY of torch's OpenMP threads (default: libgomp's, "
                        "which spins a while before sleeping; passive sleeps at once, "
                        "far better when other processes share the cores)")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=800)
    p.add_argument("--lr", type=float, default=1.0, help="the factor of the Noam rate")
    p.add_argument("--batch-tokens", type=int, default=4000)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--max-len", type=int, default=512,
                   help="positions of the pe buffer and the decoding cap (attn's 512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--report-every", type=int, default=50,
                   help="a progress line every K steps (0: none)")
    p.add_argument("--eval", action="store_true",
                   help="greedy BLEU on DATA/test.src against DATA/test.tgt at the end")
    p.add_argument("--attn", default="attn", help="the attn program for --eval's scoring")
    p.add_argument("--hyp-out", help="with --eval, keep the translations in this file")
    p.add_argument("--weights-from", metavar="CHECKPOINT",
                   help="no training: translate DATA/test.src greedily (as --eval) with "
                        "this attn checkpoint's weights, loaded into the same modules")
    p.add_argument("--json", action="store_true",
                   help="with --weights-from, print the result as one JSON object")
    return p.parse_args()


ARGS = parse_args()
# Before torch (and its OpenBLAS) is loaded: the pools size themselves at load.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
if ARGS.omp_wait_policy != "default":
    os.environ["OMP_WAIT_POLICY"] = ARGS.omp_wait_policy.upper()

import sentencepiece  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
import reference as ref  # noqa: E402

PAD, BOS, EOS = 0, 2, 3
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------- the tokenizer

def checkpoint_meta(path):
    """The __metadata__ of a safetensors file, without reading its tensors."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def load_tokenizer(path):
    meta = checkpoint_meta(path)
    if "tokenizer" not in meta:
        sys.exit("peer: %s has no joint tokenizer (metadata key 'tokenizer'; keys: %s)"
                 % (path, ", ".join(sorted(meta)) or "none"))
    sp = sentencepiece.SentencePieceProcessor(model_proto=base64.b64decode(meta["tokenizer"]))
    if (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) != (PAD, 1, BOS, EOS):
        sys.exit("peer: the tokenizer's special ids are %s, not pad 0 unk 1 <s> 2 </s> 3"
                 % ((sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()),))
    return sp


# ---------------------------------------------------------------- data, as attn

def read_lines(path):
    """One sentence a line, as attn reads them (the last line's newline optional)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [l[:-1] if l.endswith("\r") else l for l in lines]


def framed(sp, lines):
    return [[BOS] + ids + [EOS] for ids in sp.encode(lines)]


def make_batches(src, tgt, max_tokens, budget):
    """attn's split_batches: (first, count, S, T) over `order`, and the
    target tokens (labels) of an epoch."""
    kept = [i for i in range(len(src)) if len(src[i]) <= max_tokens and len(tgt[i]) <= max_tokens]
    order = sorted(kept, key=lambda i: (len(tgt[i]), len(src[i]), i))
    batches, labels, k = [], 0, 0
    while k < len(order):
        first, count, S, T = k, 0, 0, 0
        while k < len(order):
            i = order[k]
            s2, t2 = max(S, len(src[i])), max(T, len(tgt[i]))
            if count > 0 and (count + 1) * max(s2, t2) > budget:
                break
            S, T, count, k = s2, t2, count + 1, k + 1
            labels += len(tgt[i]) - 1
        batches.append((first, count, S, T))
    return order, batches, len(src) - len(kept), labels


def splitmix(state):
    state = (state + 0x9e3779b97f4a7c15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK64
    return state, z ^ (z >> 31)


def epoch_order(nb, seed, epoch):
    """attn's batch order of an epoch: copy_stream(seed ^ "translat", e), then
    Fisher-Yates with splitmix64 draws (src/attn/nmt_train.c, src/attn/copy.c)."""
    _, mixed = splitmix((epoch ^ 0x6a09e667f3bcc909) & MASK64)
    _, s = splitmix((seed ^ 0x7472616e736c6174) & MASK64)
    s ^= mixed
    perm = list(range(nb))
    for i in range(nb - 1, 0, -1):
        s, z = splitmix(s)
        j = ((z >> 32) * (i + 1)) >> 32
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def batch_tensors(src, tgt, order, b):
    first, count, S, T = b
    xs = torch.zeros(count, S, dtype=torch.long)
    ys = torch.zeros(count, T, dtype=torch.long)
    for r in range(count):
        i = order[first + r]
        xs[r, :len(src[i])] = torch.tensor(src[i])
        ys[r, :len(tgt[i])] = torch.tensor(tgt[i])
    return xs, ys


# ---------------------------------------------------------------- make_model

class DropoutSublayer(ref.SublayerConnection):
    """§4 with §8.2: x + dropout(sublayer(norm(x)))."""

    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))


class DropoutFeedForward(ref.PositionwiseFeedForward):
    """§7 with §8.3: w_2(dropout(relu(w_1 x)))."""

    def forward(self, x):
        return self.w_2(self.dropout(self.w_1(x).relu()))


class DropoutAttention(ref.MultiHeadedAttention):
    """§5 with §8.4: dropout on the attention probabilities."""

    def forward(self, query, key, value, mask):
        mask = mask.unsqueeze(1)
        nb = query.size(0)
        q, k, v = [lin(x).view(nb, -1, self.h, self.d_k).transpose(1, 2)
                   for lin, x in zip(self.linears, (query, key, value))]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        scores = scores.masked_fill(mask == 0, -1e9)
        p = self.dropout(scores.softmax(dim=-1))
        self.attn = None  # the walkthrough keeps it; nothing here reads it
        x = torch.matmul(p, v).transpose(1, 2).contiguous().view(nb, -1, self.h * self.d_k)
        return self.linears[3](x)


def make_model(vocab, n, d, d_ff, h, dropout, max_len):
    """make_model(vocab, vocab, N, d_model, d_ff, h, dropout): the reference's
    modules, dropout added in place (same parameters, same state_dict names),
    the sinusoidal pe, xavier_uniform on every matrix."""
    model = ref.EncoderDecoder(vocab, vocab, n, d, d_ff, h, max_len)
    swap = {ref.SublayerConnection: (DropoutSublayer, dropout),
            ref.PositionwiseFeedForward: (DropoutFeedForward, dropout),
            ref.MultiHeadedAttention: (DropoutAttention, 0.1)}  # §8.4: always 0.1
    for m in model.modules():
        if type(m) in swap:
            cls, p = swap[type(m)]
            m.__class__ = cls
            m.dropout = nn.Dropout(p)
    for seq in (model.src_embed, model.tgt_embed):
        seq.append(nn.Dropout(dropout))  # §8.1: after emb + pe
        pe = torch.zeros(max_len, d)
        pos = torch.arange(0, max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * -(math.log(10000.0) / d))
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        seq[1].pe.copy_(pe.unsqueeze(0))
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    return model


# ---------------------------------------------------------------- decoding

@torch.no_grad()
def greedy_translate(model, sp, lines, max_len):
    """The walkthrough's greedy_decode, one sentence at a time, stopped at </s>
    (what follows it is cut from the walkthrough's output anyway)."""
    model.eval()
    out = []
    for ids in framed(sp, lines):
        src = torch.tensor([ids])
        src_mask = ref.src_mask_of(src, PAD)
        memory = model.encode(src, src_mask)
        ys = torch.full((1, 1), BOS, dtype=torch.long)
        for _ in range(min(10 + 2 * len(ids), max_len) - 1):
            h = model.decode(memory, src_mask, ys, ref.subsequent_mask(ys.size(1)))
            nxt = int(torch.argmax(model.generator(h[:, -1])[0]))
            if nxt == EOS:
                break
            ys = torch.cat([ys, torch.full((1, 1), nxt, dtype=torch.long)], dim=1)
        out.append(sp.decode(ys[0, 1:].tolist()))
    return out


# ---------------------------------------------------------------- the run

def evaluate(a, sp, model):
    """Greedy translation of DATA/test.src, timed (tokenizing, decoding and
    detokenizing; the model is loaded), scored by attn eval."""
    lines = read_lines(os.path.join(a.data, "test.src"))
    t0 = time.perf_counter()
    hyps = greedy_translate(model, sp, lines, a.max_len)
    secs = time.perf_counter() - t0
    fd, path = tempfile.mkstemp(prefix="peer-hyp-", suffix=".txt") if not a.hyp_out \
        else (None, a.hyp_out)
    with (os.fdopen(fd, "w", encoding="utf-8") if fd is not None
          else open(path, "w", encoding="utf-8")) as f:
        for h in hyps:
            f.write(h.replace("\n", " ") + "\n")
    res = subprocess.run([a.attn, "eval", "--hyp", path,
                          "--ref", os.path.join(a.data, "test.tgt"), "--json"],
                         capture_output=True, text=True)
    if not a.hyp_out:
        os.unlink(path)
    if res.returncode != 0:
        sys.exit("peer: attn eval failed: %s" % res.stderr.strip())
    score = json.loads(res.stdout)
    if a.json:
        print(json.dumps({"bleu": score["bleu"], "chrf": score["chrf"], "sentences": len(hyps),
                          "seconds": secs, "sentences_per_second": len(hyps) / secs,
                          "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
                          "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset")}))
        return
    print("peer: test BLEU %.2f  chrF2 %.2f (greedy, %d verses, %.1f s, %.2f sentences/s); "
          "e.g. %r" % (score["bleu"], score["chrf"], len(hyps), secs, len(hyps) / secs,
                       hyps[0][:100]))


def decode_only(a):
    """--weights-from: the walkthrough's greedy decoding of libat's own model."""
    torch.set_num_threads(a.threads)
    sp = load_tokenizer(a.tokenizer_from)
    heads = checkpoint_meta(a.weights_from).get("heads")
    if heads is None:
        sys.exit("peer: %s has no 'heads' in its metadata (not an attn checkpoint?)"
                 % a.weights_from)
    try:
        model = ref.load_model(a.weights_from, int(heads), torch.float32)
    except (ValueError, KeyError) as e:
        sys.exit("peer: cannot load %s: %s" % (a.weights_from, e))
    if model.src_embed[0].lut.weight.shape[0] != sp.get_piece_size():
        sys.exit("peer: the model's vocabulary is %d, the tokenizer's %d"
                 % (model.src_embed[0].lut.weight.shape[0], sp.get_piece_size()))
    a.max_len = model.src_embed[1].pe.shape[1]
    evaluate(a, sp, model)



def main():
    a = ARGS
    if a.weights_from:
        return decode_only(a)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_setup = time.perf_counter()
    sp = load_tokenizer(a.tokenizer_from)
    vocab = sp.get_piece_size()
    src = framed(sp, read_lines(os.path.join(a.data, "train.src")))
    tgt = framed(sp, read_lines(os.path.join(a.data, "train.tgt")))
    if len(src) != len(tgt):
        sys.exit("peer: train.src has %d lines, train.tgt %d" % (len(src), len(tgt)))
    order, batches, left_out, labels = make_batches(src, tgt, a.max_tokens, a.batch_tokens)
    model = make_model(vocab, a.layers, a.d_model, a.d_ff, a.heads, a.dropout, a.max_len)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda=lambda step: ref.rate(step, a.d_model, 1.0, a.warmup))
    print("peer: %d training pairs (%d left out, longer than %d ids) in %d batches of <= %d "
          "tokens, %d target tokens an epoch" % (len(order), left_out, a.max_tokens,
                                                 len(batches), a.batch_tokens, labels))
    first = order[0]
    print("peer: first pair by length: src %s tgt %s" % (src[first], tgt[first]))
    print("peer: vocabulary %d, N %d, d_model %d, h %d, d_ff %d (%.2fM parameters), dropout %g; "
          "Adam lr %g x Noam (warmup %d), smoothing %g, seed %d; torch %s, %d threads "
          "(interop %d, OMP_WAIT_POLICY %s), OPENBLAS_CORETYPE %s; setup %.1f s"
          % (vocab, a.layers, a.d_model, a.heads, a.d_ff, n_params * 1e-6, a.dropout, a.lr,
             a.warmup, a.smoothing, a.seed, torch.__version__, torch.get_num_threads(),
             torch.get_num_interop_threads(), os.environ.get("OMP_WAIT_POLICY", "unset"),
             os.environ.get("OPENBLAS_CORETYPE", "unset"),
             time.perf_counter() - t_setup))
    sys.stdout.flush()

    budget = a.minutes * 60
    busy = 0.0
    steps = tokens = 0
    loss_sum = 0.0
    win_loss = win_tokens = 0.0
    win_busy = 0.0
    done = False
    model.train()
    for e in range(a.epochs):
        for k in epoch_order(len(batches), a.seed, e):
            t0 = time.perf_counter()
            xs, ys = batch_tensors(src, tgt, order, batches[k])
            batch = ref.Batch(xs, ys, PAD)
            loss, total = ref.loss_of(model, batch, a.smoothing, PAD)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            dt = time.perf_counter() - t0
            nt = int(batch.ntokens)
            kl = float(total)
            if not math.isfinite(kl):
                sys.exit("peer: step %d diverged (loss %s)" % (steps + 1, kl))
            busy += dt
            steps += 1
            tokens += nt
            loss_sum += kl
            win_loss, win_tokens, win_busy = win_loss + kl, win_tokens + nt, win_busy + dt
            if a.report_every and steps % a.report_every == 0:
                print("peer: step %5d  epoch %d  loss %.4f (last %d steps %.4f)  lr %.2e  "
                      "%.0f tok/s (last %d steps %.0f)  %.1f s" %
                      (steps, e + 1, loss_sum / tokens, a.report_every, win_loss / win_tokens,
                       opt.param_groups[0]["lr"], tokens / busy, a.report_every,
                       win_tokens / win_busy, busy))
                sys.stdout.flush()
                win_loss = win_tokens = win_busy = 0.0
            if busy >= budget:
                done = True
                break
        if done:
            break
    print("peer: %d steps, %d target tokens in %.1f s of steps (%.0f target tokens/s); "
          "loss %.4f" % (steps, tokens, busy, tokens / busy, loss_sum / tokens))
    sys.stdout.flush()

    if a.eval:
        evaluate(a, sp, model)

if __name__ == "__main__":
    main()
