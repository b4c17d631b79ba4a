"""torch_ref: libat against an independent PyTorch model (tests/torch/reference.py,
written from SEMANTICS.md and include/at.h).

libat creates a small model (N=2, d_model=32, h=4, d_ff=64, vocabularies 53/50,
24 positions), every parameter is perturbed through at_model_tensor_write (so no
layer norm is 1/0 and no two layers share a bias), libat saves it, and the
PyTorch model loads that safetensors file under the state_dict names. Then:

  golden    the reference itself against the PyTorch original's golden tensors
            (tests/data/golden/tiny, tiny_grad): it is what it claims to be;
  forward   log-probs, memory, decoder output and every attention tensor of a
            padded batch;
  grad      three at_train_step()s (dropout 0, label smoothing 0.1): loss,
            ntokens, learning rate, every parameter gradient vs autograd, and
            the parameters and Adam moments vs torch.optim.Adam + LambdaLR;
            then one step on 190 x 22 rows, where the weight gradients are
            summed in slices of rows (grad_rows);
  greedy    at_greedy_decode ids (with and without an end id) and the views
            after it vs the reference's greedy_decode;
  beam      at_beam_decode best ids and scores for beam 1, 2, 4, 5, alpha 0, 0.6,
            1, with and without an end id, vs a beam search without a key/value
            cache, and the views of each row's best hypothesis vs a
            teacher-forced forward over it;
  loss      at_eval_loss vs the label-smoothed KL criterion (pad 0 and pad 2);
  ties      a twin id (same generator row and embedding as another): greedy and
            beam search take the lower of the two.

The decoding checks run on a sharper generator (sharpen()).

Numbers are compared with the float64 reference; each table line gives the
largest |libat − ref64|, the same divided by the largest |ref64| of the tensor,
and what float32 PyTorch itself is off by (the float32 noise floor).

Usage: LIBAT_PATH=build/lib/libat.so.0 python3 tests/torch/test_torch_ref.py
Exit status 0 when every check passes, 1 otherwise. torch missing is a failure.
"""

import math
import os
import shutil
import sys
import tempfile
import time

T0 = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, os.pardir, os.pardir))
sys.path.insert(0, HERE)

try:
    import numpy as np
    import torch
except ImportError as e:  # a failure, not a skip: the README's test command installs it
    print("torch_ref: FAILED: %s (Debian: apt-get install python3-torch)" % e)
    sys.exit(1)

import capi  # noqa: E402
import reference as ref  # noqa: E402
from common import (CFG, END, FAILS, NOTES, PAD, RESULTS, START, T, make_model,  # noqa: E402
                    padded, print_table, record, record_equal)

torch.set_num_threads(1)  # tiny tensors: threads cost more than they give

BEAM_SCALE, BEAM_END_BOOST = 3.0, 5.5  # see sharpen()


# -------------------------------------------------------------------- checks

def check_golden():
    """The reference against the PyTorch original's own outputs (the arbiter)."""
    gdir = os.path.join(TOP, "tests", "data", "golden")
    model = ref.load_model(os.path.join(gdir, "tiny", "model.safetensors"), heads=4)
    io, _ = ref.read_safetensors(os.path.join(gdir, "tiny", "io.safetensors"))
    src, tgt = T(io["src"]), T(io["tgt"])
    with torch.no_grad():
        out = model(src, tgt, ref.src_mask_of(src, 0), ref.tgt_mask_of(tgt, 0))
        logp = model.generator(out)
    # case.json: the original's float32 vs its own float64 replica differs by
    # at most 1.0e-6 (log-probs) and 2.0e-7 (attention); ours, in float64,
    # must land within the same few ulps of float32.
    record("golden", "logprobs", io["logprobs"], logp, 5e-6)
    for kind in ("enc_self", "dec_self", "cross"):
        for i, a in enumerate(model.attention(kind)):
            record("golden", "attn.%s[%d]" % (kind, i), io["attn.%s.%d" % (kind, i)], a, 1e-6)
    ys, _ = ref.greedy_decode(model, T(io["greedy.src"]), T(io["greedy.src_mask"]), 10, 1)
    record_equal("golden", "greedy ids", ys, io["greedy.ys"])

    g = os.path.join(gdir, "tiny_grad")
    model = ref.load_model(os.path.join(g, "model.safetensors"), heads=4)
    io, _ = ref.read_safetensors(os.path.join(g, "io.safetensors"))
    batch = ref.Batch(T(io["src"]), T(io["tgt_full"]), 0)
    loss, _ = ref.loss_of(model, batch, 0.1, 0)
    loss.backward()
    record("golden", "loss", io["loss"], loss.item(), 1e-6)
    for name, p in model.named_parameters():
        # case.json: the original's float32 vs float64 gradients differ by
        # up to ~3e-8
        record("golden", "grad[%s]" % name, io["grad." + name], p.grad, 3e-7)


def check_forward(m, path, _table, _tmp):
    rng = np.random.default_rng(1)
    src = padded(rng, [9, 6, 3, 8], 9, CFG["src_vocab"], PAD)
    src[3, 4] = PAD  # a pad id inside a row is masked too: the mask is src != pad
    tgt = padded(rng, [8, 5, 7, 2], 8, CFG["tgt_vocab"], PAD)
    tgt[:, 0] = START
    m.forward(src, tgt, PAD)
    got = {"logprobs": m.output(capi.OUT_LOGPROBS), "memory": m.output(capi.OUT_MEMORY),
           "decoder_out": m.output(capi.OUT_DECODER)}
    for kind in capi.KINDS:
        for i in range(CFG["layers"]):
            got["attn.%s[%d]" % (kind, i)] = m.attention(kind, i)
    want = {}
    for dtype in (torch.float64, torch.float32):
        model = ref.load_model(path, CFG["heads"], dtype)
        s, t = T(src), T(tgt)
        with torch.no_grad():
            out = model(s, t, ref.src_mask_of(s, PAD), ref.tgt_mask_of(t, PAD))
            w = {"logprobs": model.generator(out), "decoder_out": out,
                 "memory": model.encode(s, ref.src_mask_of(s, PAD))}
        for kind in capi.KINDS:
            for i, a in enumerate(model.attention(kind)):
                w["attn.%s[%d]" % (kind, i)] = a
        want[dtype] = {k: v.double().numpy() for k, v in w.items()}
    for k in got:
        # 1e-5: the brief's bound; float32 PyTorch itself is off by <= ~1e-6
        # here (see the f32 column), so 1e-5 leaves a port whose summation
        # order differs ~10x room and still catches any semantic slip (the
        # wrong layer norm alone is 7e-2, SEMANTICS §3).
        record("forward", k, got[k], want[torch.float64][k], 1e-5, want[torch.float32][k])


def torch_adam(params, base_lr, d_model, factor, warmup):
    opt = torch.optim.Adam(params, lr=base_lr, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda=lambda step: ref.rate(step, d_model, factor, warmup))
    return opt, sched


def check_grad(m, path, table, tmp):
    smoothing, base_lr, warmup, factor = 0.1, 0.5, 400, 1.0
    m.set(dropout=0.0, attn_dropout=0.0, smoothing=smoothing, lr=base_lr, warmup=warmup,
          factor=factor)
    rng = np.random.default_rng(2)
    src = padded(rng, [9, 7, 4, 8], 9, CFG["src_vocab"], PAD)
    tgt = padded(rng, [9, 6, 9, 3], 9, CFG["tgt_vocab"], PAD)
    tgt[:, 0] = START
    names = [n for _, n, tr in table if tr]
    index = {n: i for i, n, _ in table}

    # torch's own optimizer, stepped with libat's gradients: what the Adam
    # update does to the same gradients, apart from any gradient difference
    t32 = ref.load_model(path, CFG["heads"], torch.float32)
    tparams = dict(t32.named_parameters())
    opt, sched = torch_adam([tparams[n] for n in names], base_lr, CFG["d_model"], factor, warmup)
    # and the reference end to end: autograd's gradients into torch's Adam
    e32 = ref.load_model(path, CFG["heads"], torch.float32)
    eparams = dict(e32.named_parameters())
    eopt, esched = torch_adam([eparams[n] for n in names], base_lr, CFG["d_model"], factor,
                              warmup)

    before = path
    for step in range(1, 4):
        lr_libat = m.learning_rate()
        lr_torch = opt.param_groups[0]["lr"]
        loss, ntok = m.train_step(src, tgt, PAD)
        grads = {n: m.grad(index[n]) for n in names}
        after = os.path.join(tmp, "step%d.safetensors" % step)
        m.save(after, training=True)
        st, meta = ref.read_safetensors(after)

        # autograd at the parameters libat stepped from (float64 and float32)
        want = {}
        for dtype in (torch.float64, torch.float32):
            model = ref.load_model(before, CFG["heads"], dtype)
            batch = ref.Batch(T(src), T(tgt), PAD)
            tl, _ = ref.loss_of(model, batch, smoothing, PAD)
            tl.backward()
            want[dtype] = (tl.item(), int(batch.ntokens),
                           {n: p.grad.double().numpy() for n, p in model.named_parameters()})
        # the loss: float32 sum of ~2,000 terms of size ~1, divided by
        # ntokens; float32 torch lands within ~1e-6 of float64
        record("grad", "loss[%d]" % step, loss, want[torch.float64][0], 1e-5,
               want[torch.float32][0])
        record_equal("grad", "ntokens[%d]" % step, ntok, want[torch.float64][1])
        # the Noam rate of this optimizer step (LambdaLR: step k uses rate(k-1)),
        # computed in double on both sides
        record("grad", "lr[%d]" % step, lr_libat, lr_torch, 1e-15, scale_tol=1e-12)
        for n in names:
            # gradients in float32 carry the rounding of every product and sum
            # they came through: float32 torch is off by up to ~1e-6 of the
            # tensor's largest gradient (f32 column). 1e-4 of the scale is
            # ~100x that; the 1e-8 floor is for the attention key biases,
            # whose exact gradient is 0 and whose float32 ones are noise of
            # ~5e-9 (their abs/scale is huge because the scale is ~1e-17).
            kb = " (key biases)" if n.endswith("linears.1.bias") else ""
            record("grad", "grad%s[%s]" % (kb, n), grads[n], want[torch.float64][2][n], 1e-8,
                   want[torch.float32][2][n], scale_tol=1e-4)

        # torch.optim.Adam on libat's gradients from the same parameters
        for n in names:
            tparams[n].grad = torch.from_numpy(grads[n].astype(np.float32))
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        for n in names:
            # the same float32 update in a different order: a couple of ulps
            # of the parameter (|p| < ~2, ulp 2.4e-7) — far below the update
            # itself (lr ~1.1e-5 per element)
            record("grad", "adam.param[%s]" % n, st[n], tparams[n].detach().numpy(), 5e-7)
            s = opt.state[tparams[n]]
            record("grad", "adam.exp_avg[%s]" % n, st["adam.exp_avg." + n],
                   s["exp_avg"].numpy(), 1e-9, scale_tol=1e-5)
            record("grad", "adam.exp_avg_sq[%s]" % n, st["adam.exp_avg_sq." + n],
                   s["exp_avg_sq"].numpy(), 1e-14, scale_tol=1e-5)
        record_equal("grad", "step count[%d]" % step, int(meta.get("step", -1)), step)

        # end to end: the reference's own training step
        el, _ = ref.loss_of(e32, ref.Batch(T(src), T(tgt), PAD), smoothing, PAD)
        el.backward()
        eopt.step()
        eopt.zero_grad(set_to_none=True)
        esched.step()
        lr = base_lr * ref.rate(step - 1, CFG["d_model"], factor, warmup)
        for n in names:
            # The two float32 computations of the same update: a few ulps of
            # the parameter (5e-7), except for the attention key biases
            # (linears.1.bias): their exact gradient is 0 (a bias on every key
            # shifts a query's scores by one constant, which softmax ignores),
            # so both sides hold float32 noise of ~1e-9 with either sign, and
            # Adam's early steps move each element by ~lr·sign(g): up to 2·lr
            # apart per step taken (lr ~1.1e-5). adam.param above is the exact
            # comparison of the optimizer.
            key_bias = n.endswith("linears.1.bias")
            record("grad", "end-to-end param%s[%s]" % (" (key biases)" if key_bias else "", n),
                   st[n], eparams[n].detach().numpy(),
                   (2 * lr * step if key_bias else 0.0) + 5e-7)
        before = after


def check_grad_rows(m, path, table, tmp):
    """One step on a batch of more than 4,096 rows: the weight gradients
    (dW = dy^T x, a sum over every row) are then cut along the rows into
    four slices summed in a fixed order (core/linear.c, gemm_sum_tn), a path the
    small batches of check_grad never take."""
    smoothing = 0.1
    m.set(dropout=0.0, attn_dropout=0.0, smoothing=smoothing, lr=0.5, warmup=400, factor=1.0)
    rng = np.random.default_rng(5)
    B, L = 190, CFG["max_len"] - 1
    src = padded(rng, rng.integers(L - 6, L + 1, size=B), L, CFG["src_vocab"], PAD)
    tgt = padded(rng, rng.integers(L - 6, L + 1, size=B), L, CFG["tgt_vocab"], PAD)
    tgt[:, 0] = START
    names = [n for _, n, tr in table if tr]
    index = {n: i for i, n, _ in table}
    before = os.path.join(tmp, "rows.safetensors")
    m.save(before)
    loss, ntok = m.train_step(src, tgt, PAD)
    grads = {n: m.grad(index[n]) for n in names}
    want = {}
    for dtype in (torch.float64, torch.float32):
        model = ref.load_model(before, CFG["heads"], dtype)
        tl, _ = ref.loss_of(model, ref.Batch(T(src), T(tgt), PAD), smoothing, PAD)
        tl.backward()
        want[dtype] = (tl.item(), {n: p.grad.double().numpy()
                                   for n, p in model.named_parameters()})
    record_equal("grad", "rows > 4096: rows", B * (L - 1) > 4096, True)
    record("grad", "rows > 4096: loss", loss, want[torch.float64][0], 1e-5,
           want[torch.float32][0])
    for n in names:
        kb = " (key biases)" if n.endswith("linears.1.bias") else ""
        # the same tolerance as check_grad's: 1e-4 of the tensor's scale
        record("grad", "rows > 4096: grad%s[%s]" % (kb, n), grads[n],
               want[torch.float64][1][n], 1e-8, want[torch.float32][1][n], scale_tol=1e-4)


def check_greedy(m, path, _table, _tmp):
    model = ref.load_model(path, CFG["heads"], torch.float64)
    rng = np.random.default_rng(3)
    src = padded(rng, [9, 5, 7, 2, 9], 9, CFG["src_vocab"], PAD)
    max_len = 14
    ended, smallest = 0, math.inf
    for end in (-1, END):
        out, n = m.greedy_decode(src, PAD, max_len, START, end)
        views = {k: [m.attention(k, i) for i in range(CFG["layers"])]
                 for k in ("dec_self", "cross")}
        for r in range(src.shape[0]):
            s = T(src[r:r + 1])
            ys, margins = ref.greedy_decode(model, s, ref.src_mask_of(s, PAD), max_len, START)
            ys = ys[0].numpy()
            smallest = min(smallest, min(margins))
            if end >= 0:  # an ended row is filled with pad after its end id
                hit = np.nonzero(ys[1:] == end)[0]
                if hit.size:
                    ys[hit[0] + 2:] = PAD
                    ended += 1
            record_equal("greedy", "ids end=%d[%d]" % (end, r), out[r, :n], ys[:n],
                         "(smallest top-1 margin %.2g)" % min(margins))
            if end < 0:
                # views after decoding = the reference's attention of its last
                # step, a decode over the first max_len-1 ids (§14)
                for kind in ("dec_self", "cross"):
                    for i, a in enumerate(model.attention(kind)):
                        record("greedy", "attn.%s[%d]" % (kind, i), views[kind][i][r],
                               a[0].numpy(), 1e-5)
        if end < 0:
            record_equal("greedy", "out_len end=-1", n, max_len)
    NOTES.append("greedy: %d rows, %d of them end with the end id before %d ids; smallest "
                 "top-1 minus top-2 log-prob margin %.2g" % (len(src), ended, max_len, smallest))


def sharpen(m, tmp, boost=BEAM_END_BOOST, scale=BEAM_SCALE):
    """A generator with peaked distributions and a likely end id, so that
    hypotheses end at many lengths and the length penalty changes which one
    wins (the plain random model's log-probs are so flat that the shortest
    always wins); libat saves it for the reference."""
    for i, name, _ in m.tensors():
        if name == "generator.proj.weight":
            m.write_tensor(i, m.tensor(i) * scale)
        elif name == "generator.proj.bias":
            v = m.tensor(i)
            v[END] += boost
            m.write_tensor(i, v)
    path = os.path.join(tmp, "beam.safetensors")
    m.save(path)
    return path


def check_beam(m, path, _table, _tmp):
    model = ref.load_model(path, CFG["heads"], torch.float64)
    rng = np.random.default_rng(4)
    src = padded(rng, [9, 6, 3, 8, 7, 9], 9, CFG["src_vocab"], PAD)
    src[3, 2] = PAD
    cap = CFG["max_len"] + 1
    n_x = (src != PAD).sum(axis=1)
    # longest hypotheses: 4 + |x| with an end id; without one, every
    # hypothesis runs to the longest length: 10 + 2|x| (28 ids for a full row,
    # above the cap of max_len + 1 = 25) for K = 1 and 5, 2 + 0.5|x| otherwise
    settings = []
    for beam in (1, 2, 4, 5):
        for alpha in (0.0, 0.6, 1.0):
            settings.append((beam, alpha, END, 4.0, 1.0))
            settings.append((beam, alpha, -1) + ((10.0, 2.0) if beam in (1, 5) else (2.0, 0.5)))
    answers = {}
    capped = ended = 0
    for beam, alpha, end, a, b in settings:
        longest = np.minimum(np.floor(a + b * n_x).astype(int), cap)
        out_cols = int(longest.max())
        out, lens, scores = m.beam_decode(src, PAD, START, end, beam, alpha, a, b, out_cols)
        tag = "K=%d alpha=%.1f end=%d len=%g+%g|x|" % (beam, alpha, end, a, b)
        views = {k: [m.attention(k, i) for i in range(CFG["layers"])] for k in capi.KINDS}
        found = ref.beam_search(model, T(src), PAD, START, end, beam, alpha, a, b,
                                CFG["max_len"])
        for r, (ids, score, _, gap) in enumerate(found):
            answers.setdefault((beam, end, a, b, r), set()).add(tuple(ids))
            capped += int(np.floor(a + b * n_x[r])) > cap and len(ids) == cap
            ended += ids[-1] == end
            record_equal("beam", "ids[%s, row %d]" % (tag, r), out[r, :lens[r]], ids,
                         "(smallest deciding gap %.2g)" % gap)
            record_equal("beam", "fill after the end[%s, row %d]" % (tag, r), out[r, lens[r]:],
                         np.full(out_cols - lens[r], PAD))
            # the score sums up to 24 float32 log-probs (each within ~1e-6 of
            # float64) and divides by lp >= 1: ~3e-5 at worst; 1e-4 leaves room
            record("beam", "score[%s, row %d]" % (tag, r), scores[r], score, 1e-4)
            if list(out[r, :lens[r]]) != ids:
                continue
            # the views of the best hypothesis vs a teacher-forced forward over
            # it: only the future is masked (at.h: ids are never padding)
            t_b = lens[r] - 1
            s, t = T(src[r:r + 1]), T([ids[:t_b]])
            with torch.no_grad():
                model(s, t, ref.src_mask_of(s, PAD), ref.subsequent_mask(t_b))
            for kind in capi.KINDS:
                for i, a_ref in enumerate(model.attention(kind)):
                    v = views[kind][i][r]
                    a_ref = a_ref[0].numpy()
                    if kind == "enc_self":
                        record("beam", "attn.enc_self", v, a_ref, 1e-5)
                        continue
                    record("beam", "attn.%s" % kind, v[:, :t_b, :a_ref.shape[2]], a_ref, 1e-5)
                    rest = v.copy()
                    rest[:, :t_b, :a_ref.shape[2]] = 0
                    record("beam", "attn.%s beyond |Y|" % kind, rest, np.zeros_like(rest), 0.0)
    by_alpha = sum(len(v) > 1 for k, v in answers.items() if k[1] == END)
    NOTES.append("beam: %d searches (%d settings x %d rows): %d best hypotheses end with the end "
                 "id, %d reach the cap of %d ids, in %d of %d (K, row) the length penalty's "
                 "alpha changes the best ids"
                 % (len(settings) * len(src), len(settings), len(src), ended, capped, cap,
                    by_alpha, sum(k[1] == END for k in answers)))


def check_ties(m, path, _table, tmp):
    """Exact ties: id v becomes a twin of u, the first id greedy picks for a
    row (same generator row and bias, same target embedding), so the two get
    bitwise-equal log-probabilities from the same logits. Greedy decoding and
    a beam search whose longest hypothesis is 2 ids must take the lower id
    (at.h: ties go to the lowest id; beam: the lower hypothesis, then the
    lower id), in libat and in the reference. (Ties between hypotheses in
    different slots are not exact in float32 — each slot rounds its own
    way — so they are not tested.)"""
    rng = np.random.default_rng(4)
    src = padded(rng, [9, 6, 7], 9, CFG["src_vocab"], PAD)
    first, _ = m.greedy_decode(src, PAD, 2, START, -1)
    for r in range(src.shape[0]):
        u = int(first[r, 1])
        v = next(i for i in range(u - 1, -1, -1) if i not in (PAD, START, END))
        twin = capi.Model.load(path)
        try:
            for i, name, _ in twin.tensors():
                if name in ("generator.proj.weight", "generator.proj.bias",
                            "tgt_embed.0.lut.weight"):
                    a = twin.tensor(i)
                    a[v] = a[u]
                    twin.write_tensor(i, a)
            tpath = os.path.join(tmp, "twins.safetensors")
            twin.save(tpath)
            model = ref.load_model(tpath, CFG["heads"], torch.float64)
            out, _ = twin.greedy_decode(src[r:r + 1], PAD, 2, START, -1)
            record_equal("ties", "greedy first id[%d]" % r, out[0], [START, v])
            s = T(src[r:r + 1])
            ys, _ = ref.greedy_decode(model, s, ref.src_mask_of(s, PAD), 2, START)
            record_equal("ties", "reference greedy first id[%d]" % r, ys[0].numpy(), [START, v])
            for beam in (1, 2, 4):
                out, lens, _ = twin.beam_decode(src[r:r + 1], PAD, START, -1, beam, 0.6, 2, 0, 2)
                record_equal("ties", "beam K=%d first id[%d]" % (beam, r), out[0, :lens[0]],
                             [START, v])
                ids = ref.beam_search(model, s, PAD, START, -1, beam, 0.6, 2, 0,
                                      CFG["max_len"])[0][0]
                record_equal("ties", "reference beam K=%d first id[%d]" % (beam, r), ids,
                             [START, v])
        finally:
            twin.close()


def check_loss(m, path, _table, _tmp):
    model = ref.load_model(path, CFG["heads"], torch.float64)
    m32 = ref.load_model(path, CFG["heads"], torch.float32)
    rng = np.random.default_rng(5)
    for pad, smoothing in ((0, 0.1), (2, 0.1), (0, 0.0)):
        m.set(smoothing=smoothing)
        src = padded(rng, [9, 4, 7, 9, 1], 9, CFG["src_vocab"], pad, low=0)
        tgt = padded(rng, [10, 3, 8, 6, 10], 10, CFG["tgt_vocab"], pad, low=0)
        tgt[:, 0] = START
        loss, ntok = m.eval_loss(src, tgt, pad)
        with torch.no_grad():
            batch = ref.Batch(T(src), T(tgt), pad)
            want, _ = ref.loss_of(model, batch, smoothing, pad)
            want32, _ = ref.loss_of(m32, batch, smoothing, pad)
        # float32 loss ~4: float32 torch lands within ~1e-6; 1e-5 as forward
        record("loss", "loss pad=%d smoothing=%g" % (pad, smoothing), loss, want.item(), 1e-5,
               want32.item())
        record_equal("loss", "ntokens pad=%d" % pad, ntok, int(batch.ntokens))


def main():
    tmp = tempfile.mkdtemp(prefix="torch_ref.")
    times = {}
    try:
        print("torch_ref: libat %s, torch %s, numpy %s"
              % (capi.LIBRARY_PATH, torch.__version__, np.__version__))
        t = time.time()
        check_golden()
        times["golden"] = time.time() - t
        m, path, table = make_model(tmp)
        try:
            for name, fn in (("forward", check_forward), ("grad", check_grad),
                             ("grad_rows", check_grad_rows),
                             ("loss", check_loss), ("greedy", check_greedy),
                             ("beam", check_beam), ("ties", check_ties)):
                t = time.time()
                if name == "loss":  # after training: back to the saved weights
                    m.close()
                    m = capi.Model.load(path)
                elif name == "greedy":  # both decoders on the sharpened model
                    path = sharpen(m, tmp)
                fn(m, path, table, tmp)
                times[name] = time.time() - t
        finally:
            m.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(("golden", "forward", "grad", "loss", "greedy", "beam", "ties"))
    for line in NOTES:
        print(line)
    print("times: " + ", ".join("%s %.1f s" % kv for kv in times.items())
          + "; total %.1f s" % (time.time() - T0))
    if FAILS:
        print("\n%d FAILED comparisons:" % len(FAILS))
        for f in FAILS[:60]:
            print("  " + f)
        return 1
    print("torch_ref: all %d comparisons passed" % len(RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
