#!/usr/bin/python3
"""The PyTorch side of the peer benchmark (issue 12, "The peers belong in the
project's benchmark"): the model, its ONNX export, the check that the export
computes libat's function, and the PyTorch timings.

The model is not written again here: forward and decoding use the
independent reference of tests/torch/reference.py (written from
/work/shared/SEMANTICS.md, loading libat's safetensors checkpoint under the
state_dict names of §15), in float32 and evaluation mode; the training step
uses tests/bench/peer_translate.py's make_model (the reference's modules with
make_model's dropout placed as §8 says) and the walkthrough's step: Batch,
label-smoothed KL summed over the batch / ntokens, backward, Adam (lr 1,
betas 0.9/0.98, eps 1e-9) with the Noam rate, zero_grad(set_to_none=True).

    torch_peer.py prepare --dir W --libat LIBAT.so [--seed N] [--tol X] [--opset K]
        W/model.safetensors: a base model created and saved by libat (random
        initialisation, seed --seed); W/check/*.bin: a padded batch, its masks
        as the reference builds them and libat's log-probs for it (through
        libat's C ABI, tests/torch/capi.py); W/model.onnx: the reference model
        loaded from that checkpoint, exported by torch.onnx.export (inputs
        src, tgt, src_mask, tgt_mask; output logprobs; batch and lengths
        dynamic); W/check.json: max |PyTorch − libat| on the batch.
    torch_peer.py compare --dir W
        max |ONNX Runtime − libat| from W/check/ort_logprobs.bin (written by
        ort_peer.mjs check), into W/check.json; exit 1 above --tol.
    torch_peer.py bench forward|decode|train [--batch B] [--src-len S]
                  [--tgt-len T] [--tokens N] [--iters K] [--warmup W]
                  [--threads N] [--model W/model.safetensors] --json
        median and min ms of the workload, as attn bench times it.
    torch_peer.py bench copy [--epochs K] [--warmup W] [--threads N] --json
        the walkthrough's example_simple_model, one epoch as attn bench train
        --task copy times it: vocabulary 11, N 2 (the base model's widths),
        no label smoothing, Adam lr 0.5 with the Noam rate (warm-up 400);
        run_epoch over data_gen(11, 80, 20) in train mode, then over
        data_gen(11, 80, 5) in eval mode (which builds the graph but takes no
        step, as the walkthrough's does); --warmup untimed training steps
        first; median and min over the epochs.

Run with Debian's /usr/bin/python3 (python3-torch 1.13).
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_DIR = os.path.join(HERE, "..", "..", "torch")
BENCH_DIR = os.path.join(HERE, "..")

PAD, START = 0, 1
BASE = dict(layers=6, d_model=512, heads=8, d_ff=2048, vocab=1000)
MAX_LEN = 128  # positions of the checkpoint's pe buffers (the workloads use <= 33)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("prepare", help="checkpoint, check batch, libat's log-probs, ONNX")
    pr.add_argument("--dir", required=True)
    pr.add_argument("--libat", required=True, help="libat.so (the C ABI of the build)")
    pr.add_argument("--seed", type=int, default=12)
    pr.add_argument("--tol", type=float, default=1e-4)
    pr.add_argument("--opset", type=int, default=14)
    cp = sub.add_parser("compare", help="ONNX Runtime's log-probs against libat's")
    cp.add_argument("--dir", required=True)
    cp.add_argument("--tol", type=float, default=1e-4)
    b = sub.add_parser("bench", help="time one workload")
    b.add_argument("workload", choices=("forward", "decode", "train", "copy"))
    b.add_argument("--model", help="checkpoint (forward, decode); train starts from "
                                   "make_model's initialisation as the walkthrough does")
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--src-len", type=int, default=32)
    b.add_argument("--tgt-len", type=int, default=32)
    b.add_argument("--tokens", type=int, default=32)
    b.add_argument("--iters", type=int, default=5)
    b.add_argument("--warmup", type=int, default=1)
    b.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    b.add_argument("--epochs", type=int, default=1, help="copy: timed epochs (--iters unused)")
    b.add_argument("--json", action="store_true")
    return p.parse_args()


ARGS = parse_args()
if ARGS.cmd == "bench":
    # Before torch (its OpenMP and OpenBLAS pools size themselves at load):
    # the "best threading" for PyTorch, OpenMP threads that sleep at once.
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, TORCH_DIR)
import reference as ref  # noqa: E402


def walkthrough_make_model():
    """peer_translate.make_model, imported: that file reads its own command
    line when imported, so it is given one that changes nothing (the thread
    variables it sets are the ones set above)."""
    sys.path.insert(0, BENCH_DIR)
    argv = sys.argv
    sys.argv = ["peer_translate", "--data", "-", "--tokenizer-from", "-",
                "--threads", os.environ.get("OMP_NUM_THREADS", "1")]
    try:
        import peer_translate
    finally:
        sys.argv = argv
    return peer_translate.make_model


# ---------------------------------------------------------------- inputs

def random_ids(rng, rows, cols, vocab):
    return torch.as_tensor(rng.integers(1, vocab, size=(rows, cols)), dtype=torch.long)


def check_batch(rng, vocab):
    """Three rows of S = T = 32 with padding at the ends (and one pad inside
    a source row): the masks matter in the check."""
    src = random_ids(rng, 3, 32, vocab)
    tgt = random_ids(rng, 3, 32, vocab)
    for r, (ns, nt) in enumerate(((32, 32), (20, 27), (9, 5))):
        src[r, ns:] = PAD
        tgt[r, nt:] = PAD
    src[1, 4] = PAD
    tgt[:, 0] = START
    return src, tgt


def masks(src, tgt):
    return ref.src_mask_of(src, PAD), ref.tgt_mask_of(tgt, PAD)


class WithGenerator(torch.nn.Module):
    """The exported function: log-probs of the whole pass (forward, then the
    generator), as libat's at_forward leaves them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, src, tgt, src_mask, tgt_mask):
        return self.model.generator(self.model(src, tgt, src_mask, tgt_mask))


def write_bin(path, a):
    np.ascontiguousarray(a).tofile(path)


# ---------------------------------------------------------------- prepare / compare

def prepare(a):
    os.makedirs(os.path.join(a.dir, "check"), exist_ok=True)
    os.environ["LIBAT_PATH"] = a.libat
    import capi  # tests/torch/capi.py: libat's C ABI through ctypes

    ckpt = os.path.join(a.dir, "model.safetensors")
    m = capi.Model.create(src_vocab=BASE["vocab"], tgt_vocab=BASE["vocab"],
                          layers=BASE["layers"], d_model=BASE["d_model"], heads=BASE["heads"],
                          d_ff=BASE["d_ff"], max_len=MAX_LEN, seed=a.seed)
    m.save(ckpt)
    rng = np.random.default_rng(a.seed)
    src, tgt = check_batch(rng, BASE["vocab"])
    m.forward(src.numpy(), tgt.numpy(), PAD)
    libat = m.output(capi.OUT_LOGPROBS)
    m.close()

    model = ref.load_model(ckpt, BASE["heads"], torch.float32)
    sm, tm = masks(src, tgt)
    with torch.no_grad():
        mine = WithGenerator(model)(src, tgt, sm, tm).double().numpy()
    d_torch = float(np.abs(mine - libat).max())

    d = os.path.join(a.dir, "check")
    write_bin(os.path.join(d, "src.bin"), src.numpy().astype(np.int64))
    write_bin(os.path.join(d, "tgt.bin"), tgt.numpy().astype(np.int64))
    write_bin(os.path.join(d, "src_mask.bin"), sm.numpy().astype(np.uint8))
    write_bin(os.path.join(d, "tgt_mask.bin"), tm.numpy().astype(np.uint8))
    write_bin(os.path.join(d, "libat_logprobs.bin"), libat.astype(np.float32))

    onnx_path = os.path.join(a.dir, "model.onnx")
    tmp = onnx_path + ".tmp"
    axes = {"src": {0: "batch", 1: "src_len"}, "tgt": {0: "batch", 1: "tgt_len"},
            "src_mask": {0: "batch", 2: "src_len"},
            "tgt_mask": {0: "batch", 1: "tgt_len", 2: "tgt_len"},
            "logprobs": {0: "batch", 1: "tgt_len"}}
    with torch.no_grad():
        torch.onnx.export(WithGenerator(model), (src, tgt, sm, tm), tmp,
                          input_names=["src", "tgt", "src_mask", "tgt_mask"],
                          output_names=["logprobs"], dynamic_axes=axes,
                          opset_version=a.opset, do_constant_folding=True)
    os.replace(tmp, onnx_path)

    report = {"checkpoint": ckpt, "onnx": onnx_path, "torch": torch.__version__,
              "opset": a.opset, "shape": list(libat.shape),
              "src_len": [int(x) for x in (src != PAD).sum(1)],
              "tgt_len": [int(x) for x in (tgt != PAD).sum(1)],
              "tol": a.tol, "max_abs_torch_vs_libat": d_torch}
    save_json(os.path.join(a.dir, "check.json"), report)
    print("prepare: PyTorch float32 vs libat log-probs on %s: max |diff| %.3g (tol %g)"
          % ("x".join(map(str, libat.shape)), d_torch, a.tol))
    return 0 if d_torch <= a.tol else 1


def compare(a):
    path = os.path.join(a.dir, "check.json")
    with open(path) as f:
        report = json.load(f)
    d = os.path.join(a.dir, "check")
    libat = np.fromfile(os.path.join(d, "libat_logprobs.bin"), dtype=np.float32)
    ort = np.fromfile(os.path.join(d, "ort_logprobs.bin"), dtype=np.float32)
    if ort.size != libat.size:
        sys.exit("compare: ONNX Runtime gave %d log-probs, libat %d" % (ort.size, libat.size))
    diff = np.abs(ort.astype(np.float64) - libat.astype(np.float64))
    report["max_abs_ort_vs_libat"] = float(diff.max()) if np.isfinite(diff).all() else None
    report["ok"] = (report["max_abs_ort_vs_libat"] is not None
                    and report["max_abs_ort_vs_libat"] <= a.tol
                    and report["max_abs_torch_vs_libat"] <= a.tol)
    save_json(path, report)
    print("compare: ONNX Runtime vs libat log-probs: max |diff| %s (tol %g)%s"
          % ("%.3g" % report["max_abs_ort_vs_libat"] if report["max_abs_ort_vs_libat"]
             is not None else "not finite", a.tol, "" if report["ok"] else ": FAILED"))
    return 0 if report["ok"] else 1


def save_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- bench

def openblas_core():
    """The core the OpenBLAS inside this process runs (the one torch loaded)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line and ".so" in line}
    for lib in sorted(libs):
        try:
            fn = ctypes.CDLL(lib).openblas_get_corename
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_char_p
        return fn().decode()
    return None


def time_it(step, iters, warmup):
    for _ in range(warmup):
        step()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def walkthrough_trainer(vocab, layers, lr, smoothing):
    """make_model's model in train mode and the walkthrough's step on one
    Batch: loss, backward, Adam under the Noam rate (warm-up 400), then
    zero_grad(set_to_none=True) and the scheduler's step."""
    model = walkthrough_make_model()(vocab, layers, BASE["d_model"], BASE["d_ff"],
                                     BASE["heads"], 0.1, MAX_LEN)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda=lambda s: ref.rate(s, BASE["d_model"], 1.0, 400))

    def step(batch):
        loss, _ = ref.loss_of(model, batch, smoothing, PAD)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    return model, step


def data_gen(vocab, batch, nbatches):
    """The walkthrough's data_gen: rows of random symbols 1..V-1 after the
    start symbol 1, source and target the same."""
    for _ in range(nbatches):
        data = torch.randint(1, vocab, size=(batch, 10))
        data[:, 0] = 1
        yield ref.Batch(data.clone(), data.clone(), PAD)


def copy_epochs(a):
    """Copy-task epochs (SEMANTICS §13) as example_simple_model runs them:
    ms per epoch, the configuration, and the split between the 20 training
    steps and the 5 evaluation batches."""
    vocab, layers, batch, batches, evals = 11, 2, 80, 20, 5
    model, step = walkthrough_trainer(vocab, layers, 0.5, 0.0)
    for b in data_gen(vocab, batch, a.warmup):
        step(b)
    ms, train_s, eval_s = [], 0.0, 0.0
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        model.train()
        for b in data_gen(vocab, batch, batches):
            step(b)
        t1 = time.perf_counter()
        model.eval()
        for b in data_gen(vocab, batch, evals):
            ref.loss_of(model, b, 0.0, PAD)
        t2 = time.perf_counter()
        ms.append((t2 - t0) * 1e3)
        train_s += t1 - t0
        eval_s += t2 - t1
    config = dict(BASE, vocab=vocab, layers=layers, batch=batch, seq_len=10, batches=batches,
                  eval_batches=evals, epochs=a.epochs, warmup=a.warmup)
    split = {"step_ms": train_s / a.epochs / batches * 1e3,
             "eval_batch_ms": eval_s / a.epochs / evals * 1e3}
    return ms, config, split


def bench(a):
    if a.iters < 1 or a.epochs < 1 or a.warmup < 0:
        sys.exit("bench: --iters and --epochs must be at least 1, --warmup at least 0")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    v = BASE["vocab"]
    config = dict(BASE, batch=a.batch, src_len=a.src_len, tgt_len=a.tgt_len,
                  tokens=a.tokens, iters=a.iters, warmup=a.warmup)
    extra = {}
    if a.workload == "copy":
        ms, config, extra = copy_epochs(a)
    elif a.workload == "train":
        _, train_step = walkthrough_trainer(v, BASE["layers"], 1.0, 0.1)
        # the decoder reads T ids: the batch's full target has T + 1 (attn bench train)
        src = random_ids(rng, a.batch, a.src_len, v)
        full = random_ids(rng, a.batch, a.tgt_len + 1, v)
        ms = time_it(lambda: train_step(ref.Batch(src, full, PAD)), a.iters, a.warmup)
    else:
        if not a.model:
            sys.exit("bench %s: --model (the checkpoint prepare wrote) is required" % a.workload)
        model = ref.load_model(a.model, BASE["heads"], torch.float32)
        src = random_ids(rng, a.batch, a.src_len, v)
        if a.workload == "forward":
            tgt = random_ids(rng, a.batch, a.tgt_len, v)

            @torch.no_grad()
            def step():
                sm, tm = masks(src, tgt)
                model.generator(model(src, tgt, sm, tm))
        else:
            if a.batch != 1:
                sys.exit("bench decode: the walkthrough's greedy_decode is batch 1")

            def step():  # the walkthrough's greedy_decode: no cache, N steps
                ref.greedy_decode(model, src, ref.src_mask_of(src, PAD), a.tokens + 1, START)
        ms = time_it(step, a.iters, a.warmup)
    out = {"bench": a.workload, "peer": "pytorch", "torch": torch.__version__,
           "threads": torch.get_num_threads(),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
           "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
           "openblas_core": openblas_core(), "config": config,
           "median_ms": statistics.median(ms), "min_ms": min(ms), **extra}
    if a.json:
        print(json.dumps(out))
    else:
        print("pytorch %s: median %.2f ms, min %.2f ms over %d %s (%d threads, "
              "OpenBLAS core %s)" % (a.workload, out["median_ms"], out["min_ms"], len(ms),
                                     "epochs" if a.workload == "copy" else "iterations",
                                     out["threads"], out["openblas_core"]))
    return 0


if __name__ == "__main__":
    sys.exit({"prepare": prepare, "compare": compare, "bench": bench}[ARGS.cmd](ARGS))
