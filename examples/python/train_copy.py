#!/usr/bin/env python3
"""Train the annotated Transformer's copy task from Python, decode, and
look at the attention.

    python3 examples/python/train_copy.py [--steps 300] [--out DIR]

A small model (N 2, d_model 32, 4 heads, d_ff 64) learns to copy random
sequences of ids 1..10 (first column 1, the start symbol; pad 0), as the
reference's example_simple_model does with a smaller model: batches of 80,
length 10, learning rate 1 times the Noam rate with 100 warmup steps. Then
greedy decoding on held-out sequences gives the accuracy, and the
cross-attention of the last layer is saved as a chart (when the library has
charts) and as a .npy file.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the libat package beside this script

import libat  # noqa: E402

V, LENGTH, PAD = 11, 10, 0


def copy_batch(rng, batch):
    """data_gen: ids 1..V-1, column 0 is the start symbol 1; source = target."""
    y = rng.integers(1, V, size=(batch, LENGTH), dtype=np.int32)
    y[:, 0] = 1
    return y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=80)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="train_copy_out", help="where the chart and arrays go")
    ap.add_argument("--min-accuracy", type=float, default=0.0,
                    help="exit 1 when the held-out accuracy is below this")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    model = libat.Model(src_vocab=V, tgt_vocab=V, layers=2, d_model=32, heads=4, d_ff=64,
                        dropout=0.1, attn_dropout=0.1, lr=1.0, warmup=100, seed=args.seed)
    print("libat %s (%s): %r" % (libat.version(), libat.LIBRARY_PATH, model))

    t0 = time.time()
    for step in range(1, args.steps + 1):
        y = copy_batch(rng, args.batch)
        # The full target Y: the library reads Y[:, :-1] and learns Y[:, 1:].
        loss, ntokens = model.train_step(y, y, pad=PAD)
        if step % 50 == 0 or step == args.steps:
            print("step %4d  loss %.4f  tokens %d  lr %.2e" % (
                step, loss, ntokens, model.learning_rate))
    print("trained %d steps in %.1f s" % (args.steps, time.time() - t0))

    held_out = copy_batch(np.random.default_rng(10_000 + args.seed), 200)
    eval_loss, _ = model.eval_loss(held_out, held_out, pad=PAD)
    decoded = model.greedy_decode(held_out, max_len=LENGTH, start=1, pad=PAD)
    accuracy = float(np.mean(decoded[:, 1:] == held_out[:, 1:]))
    exact = float(np.mean(np.all(decoded == held_out, axis=1)))
    print("held out: loss %.4f, token accuracy %.3f, exact copies %.3f" % (eval_loss, accuracy,
                                                                          exact))
    print("  source  ", " ".join(map(str, held_out[0])))
    print("  decoded ", " ".join(map(str, decoded[0])))

    # The attention of the reference's own example, 1..9 then 0 (no padding:
    # pad -1 masks nothing, as greedy_decode's src_mask of ones).
    os.makedirs(args.out, exist_ok=True)
    src = np.arange(LENGTH, dtype=np.int32)[None, :]
    src[0, 0] = 1
    model.greedy_decode(src, max_len=LENGTH, start=1, pad=-1)
    cross = model.attention("cross", 1)          # a view: no copy
    np.save(os.path.join(args.out, "cross_layer2.npy"), cross.array)
    print("cross-attention of layer 2, shape %s, saved to %s" % (
        cross.shape, os.path.join(args.out, "cross_layer2.npy")))
    if libat.HAVE_CHARTS:
        labels = [str(i) for i in src[0]]
        for name, chart in (("cross_layer2_heads.svg", "heads"),
                            ("explorer.html", "explorer")):
            path = model.chart(os.path.join(args.out, name), chart, "cross", 1, 0,
                               src_labels=labels, caption="copy task, after %d steps"
                               % args.steps)
            print("chart: %s" % path)
    else:
        print("this libat has no charts; the attention is in the .npy file")

    model.close()
    if accuracy < args.min_accuracy:
        print("accuracy %.3f is below %.3f" % (accuracy, args.min_accuracy), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
