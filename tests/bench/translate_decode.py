#!/usr/bin/python3
"""Translation speed of a trained model (issue 12): attn's beam search and
greedy decoding of the test split at batch 1 and 32, beside the PyTorch
walkthrough's greedy decoding of the same checkpoint, in one run.

    tests/bench/translate_decode.py --attn ATTN --model M.safetensors --data DIR
        [--rounds R] [--blas unset,Haswell] [--threads N] [--out DIR]

M is a model written by `attn train --task translate` (its tokenizer in its
metadata); DIR holds test.src and test.tgt (`attn corpus bible --out DIR`).
Each round runs, for every OPENBLAS_CORETYPE of --blas in turn:

  attn eval --model M --src DIR/test.src --ref DIR/test.tgt --json
            --beam K --batch B   for (K, B) in (4, 1), (4, 32), (1, 1), (1, 32)
  peer_translate.py --weights-from M --json   the walkthrough's greedy_decode:
            batch 1, the decoder re-run over the whole prefix at every step,
            stopped at </s>, with attn's default length limit (10 + 2 |x|)

attn's figure is its own: the seconds translating took, loading the model
not counted (attn eval --json "seconds"); the peer's likewise (tokenizing,
decoding and detokenizing). The table gives the median sentences/s of the
rounds, the BLEU, and the ratio to the peer's sentences/s. The peer runs
with OMP_WAIT_POLICY=PASSIVE and --threads threads, its best setting when
two processes do not share the cores (docs/peers.md).

Before the table, a check that the two greedy decoders compute the same
function: the lines where attn's greedy translation at batch 1 and the
peer's differ are counted (float32 sums in another order can flip a close
argmax; a few lines in hundreds, never most).

Run with Debian's /usr/bin/python3 (python3-torch, python3-sentencepiece).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
from run import environment  # noqa: E402  (the peer driver's: OPENBLAS_CORETYPE unset or set)
ATTN_RUNS = ((4, 1), (4, 32), (1, 1), (1, 32))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attn", required=True, help="the attn program")
    p.add_argument("--model", required=True, help="an attn translate checkpoint")
    p.add_argument("--data", required=True, help="DIR with test.src and test.tgt")
    p.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    p.add_argument("--blas", default="unset,Haswell",
                   help="OPENBLAS_CORETYPE values, comma-separated; unset: not set "
                        "(default unset,Haswell)")
    p.add_argument("--threads", type=int, default=2, help="threads of both (default 2)")
    p.add_argument("--python", default="/usr/bin/python3",
                   help="a Python with torch and sentencepiece (default Debian's)")
    p.add_argument("--out", help="keep the translations and results here "
                                 "(default: a new temporary folder, kept)")
    a = p.parse_args()
    if a.rounds < 1 or a.threads < 1:
        p.error("--rounds and --threads must be at least 1")
    a.blas = [b.strip() for b in a.blas.split(",") if b.strip()]
    if not a.blas:
        p.error("--blas names no situation")
    for f in (a.model, os.path.join(a.data, "test.src"), os.path.join(a.data, "test.tgt")):
        if not os.path.isfile(f):
            p.error("no file %s" % f)
    return a


def run_json(cmd, env):
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("translate_decode: %s failed (status %d):\n%s"
                 % (" ".join(cmd[:2]), res.returncode, res.stderr.strip()))
    try:
        return json.loads(res.stdout)
    except ValueError:
        sys.exit("translate_decode: %s printed no JSON:\n%s" % (cmd[0], res.stdout))


def attn_run(a, blas, beam, batch, hyp):
    cmd = [a.attn, "eval", "--model", a.model, "--src", os.path.join(a.data, "test.src"),
           "--ref", os.path.join(a.data, "test.tgt"), "--beam", str(beam),
           "--batch", str(batch), "--threads", str(a.threads), "--hyp-out", hyp, "--json"]
    return run_json(cmd, environment(blas))


def peer_run(a, blas, hyp):
    cmd = [a.python, os.path.join(HERE, "peer_translate.py"), "--data", a.data,
           "--tokenizer-from", a.model, "--weights-from", a.model,
           "--threads", str(a.threads), "--omp-wait-policy", "passive",
           "--attn", a.attn, "--hyp-out", hyp, "--json"]
    return run_json(cmd, environment(blas))


def differing_lines(f1, f2):
    with open(f1, encoding="utf-8") as x, open(f2, encoding="utf-8") as y:
        one, two = x.read().splitlines(), y.read().splitlines()
    if len(one) != len(two):
        sys.exit("translate_decode: %s has %d lines, %s %d" % (f1, len(one), f2, len(two)))
    return sum(p != q for p, q in zip(one, two)), len(one)


def main():
    a = parse_args()
    out = a.out or tempfile.mkdtemp(prefix="attn-translate-decode-")
    os.makedirs(out, exist_ok=True)
    info = subprocess.run([a.attn, "info", "--model", a.model], capture_output=True, text=True)
    if info.returncode != 0:
        sys.exit("translate_decode: attn info failed: %s" % info.stderr.strip())
    conf = dict(line.split(None, 1) for line in info.stdout.splitlines()
                if line.startswith("  ") and len(line.split(None, 1)) == 2)
    print("model %s: vocabulary %s, N %s, d_model %s, h %s, d_ff %s"
          % (a.model, conf.get("src_vocab", "?"), conf.get("layers", "?"),
             conf.get("d_model", "?"), conf.get("heads", "?"), conf.get("d_ff", "?")))
    print("%d test sentences; %d rounds; %d threads; results in %s"
          % (sum(1 for _ in open(os.path.join(a.data, "test.src"), encoding="utf-8")),
             a.rounds, a.threads, out))
    sys.stdout.flush()

    results = {b: {} for b in a.blas}  # blas -> name -> [json per round]
    for r in range(a.rounds):
        for b in a.blas:
            for beam, batch in ATTN_RUNS:
                name = "attn beam %d batch %d" % (beam, batch)
                hyp = os.path.join(out, "attn-%s-beam%d-batch%d.txt" % (b, beam, batch))
                res = attn_run(a, b, beam, batch, hyp)
                results[b].setdefault(name, []).append(res)
                print("round %d  %-8s %-24s %7.2f sentences/s  BLEU %.2f"
                      % (r + 1, b, name, res["sentences_per_second"], res["bleu"]))
                sys.stdout.flush()
            hyp = os.path.join(out, "peer-%s.txt" % b)
            res = peer_run(a, b, hyp)
            results[b].setdefault("PyTorch greedy batch 1", []).append(res)
            print("round %d  %-8s %-24s %7.2f sentences/s  BLEU %.2f  (torch %s, %d threads)"
                  % (r + 1, b, "PyTorch greedy batch 1", res["sentences_per_second"],
                     res["bleu"], res["torch"], res["threads"]))
            sys.stdout.flush()

    print()
    for b in a.blas:
        n, total = differing_lines(os.path.join(out, "attn-%s-beam1-batch1.txt" % b),
                                   os.path.join(out, "peer-%s.txt" % b))
        print("check (%s): attn greedy and the walkthrough's greedy differ on %d of %d lines"
              % (b, n, total))
    print()
    print("| OPENBLAS_CORETYPE | decoding | sentences/s (median of %d) | BLEU | "
          "× PyTorch greedy |" % a.rounds)
    print("|---|---|---|---|---|")
    summary = {}
    for b in a.blas:
        med = {k: statistics.median(x["sentences_per_second"] for x in v)
               for k, v in results[b].items()}
        peer = med["PyTorch greedy batch 1"]
        for k, v in results[b].items():
            print("| %s | %s | %.2f | %.2f | %.2f |" % (b, k, med[k], v[-1]["bleu"], med[k] / peer))
        summary[b] = {k: {"sentences_per_second": med[k], "bleu": v[-1]["bleu"],
                          "runs": v} for k, v in results[b].items()}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
