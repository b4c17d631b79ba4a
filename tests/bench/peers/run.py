#!/usr/bin/python3
"""libat against its peers on the base model (issue 12): PyTorch (the
independent reference of tests/torch, Debian's torch) and ONNX Runtime
(onnxruntime-node on an ONNX export of the same model), in one run.

First the check: libat creates and saves a base model (N 6, d_model 512, h 8,
d_ff 2048, vocabulary 1000), PyTorch loads that checkpoint and exports it to
ONNX, and the log-probs of libat, PyTorch and ONNX Runtime on one padded
batch must agree within --tol (1e-4); if they do not, nothing is timed.

Then the workloads, S = T = 32: forward at batch 1 and 32 (all three),
greedy decoding of 32 tokens at batch 1 (libat with its key/value cache,
PyTorch the walkthrough's greedy_decode), a training step at batch 32
(libat's at_train_step, PyTorch the walkthrough's step) and an epoch of the
copy task (attn bench train --task copy; PyTorch the walkthrough's
example_simple_model, run_epoch over 20 training and 5 evaluation batches),
for each BLAS
situation of --blas (OPENBLAS_CORETYPE unset, or forced to a core): in every
round each workload runs once in each program, one process per run, the
programs' order turning from round to round; a run's figure is its median
iteration, the table's the median over rounds, beside the ratios
libat / peer (below 1: libat is faster).

    run.py [--quick] [--build DIR] [--rounds R] [--blas unset,Prescott,SkylakeX]
           [--workloads forward1,forward32,decode,train,copy] [--work DIR]

Needs: a Release build of libat (--build: its attn; the libat.so it links
is the one checked), /usr/bin/python3 with python3-torch, node with
`npm ci --ignore-scripts` run in this folder. Not part of the test command.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PY = "/usr/bin/python3"
BASE_FLAGS = ["--layers", "6", "--d-model", "512", "--heads", "8", "--d-ff", "2048",
              "--vocab", "1000", "--src-len", "32"]

# name: (label, batch, libat subcommand, iterations and warm-ups (full, quick), peers)
WORKLOADS = {
    "forward1": ("forward, batch 1", 1, "forward", ((20, 2), (5, 1)), ("pytorch", "ort")),
    "forward32": ("forward, batch 32", 32, "forward", ((5, 1), (2, 1)), ("pytorch", "ort")),
    "decode": ("greedy decoding, 32 tokens", 1, "decode", ((5, 1), (2, 1)), ("pytorch",)),
    "train": ("training step, batch 32", 32, "train", ((3, 1), (1, 1)), ("pytorch",)),
    # epochs and warm-up steps; the batch is the task's own (80 x 10)
    "copy": ("copy-task epoch (N 2, 20 + 5 batches of 80 x 10)", 80, "copy", ((3, 1), (1, 1)),
             ("pytorch",)),
}
PROGRAMS = ("libat", "pytorch", "ort")
NAMES = {"libat": "libat", "pytorch": "PyTorch", "ort": "ONNX Runtime"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="2 rounds of few iterations (default: 5 rounds)")
    p.add_argument("--rounds", type=int, help="rounds (default 5, --quick 2)")
    p.add_argument("--build", default=os.path.join(REPO, "build"),
                   help="the libat build folder holding attn (default REPO/build)")
    p.add_argument("--blas", default="unset,Prescott,SkylakeX",
                   help="OPENBLAS_CORETYPE situations, comma-separated; 'unset' leaves it "
                        "out of the environment (default unset,Prescott,SkylakeX)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help="comma-separated, of %s (default all)" % ", ".join(WORKLOADS))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads of every program (default: the machine's cores)")
    p.add_argument("--work", default="/tmp/libat-peers",
                   help="checkpoint, ONNX file, check batch, results.json (default "
                        "/tmp/libat-peers)")
    p.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()
    a.rounds = a.rounds or (2 if a.quick else 5)
    a.blas = [b.strip() for b in a.blas.split(",") if b.strip()]
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    bad = [w for w in a.workloads if w not in WORKLOADS]
    if bad or not a.workloads or not a.blas or a.rounds < 1:
        p.error("bad --workloads %s / --blas / --rounds" % ",".join(bad))
    return a


def run(cmd, env=None, quiet=False):
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("peers: %s failed (exit %d):\n%s%s"
                 % (" ".join(cmd), res.returncode, res.stdout[-2000:], res.stderr[-2000:]))
    if not quiet:
        for line in res.stdout.splitlines():
            print("  " + line)
    return res.stdout


def linked_libat(attn):
    """The libat.so the attn program loads: the check must test the library
    the timings run."""
    out = subprocess.run(["ldd", attn], capture_output=True, text=True).stdout
    m = re.search(r"libat\.so\.\d+ => (\S+)", out)
    if not m:
        sys.exit("peers: cannot tell which libat.so %s loads (ldd: %s)" % (attn, out.strip()))
    return os.path.realpath(m.group(1))


def check(a, attn):
    """libat, PyTorch and ONNX Runtime compute the same log-probs, or exit."""
    libat = linked_libat(attn)
    print("check: libat %s (loaded by %s)" % (libat, attn))
    run([PY, os.path.join(HERE, "torch_peer.py"), "prepare", "--dir", a.work,
         "--libat", libat, "--tol", str(a.tol)])
    run(["node", os.path.join(HERE, "ort_peer.mjs"), "check", a.work])
    res = subprocess.run([PY, os.path.join(HERE, "torch_peer.py"), "compare", "--dir", a.work,
                          "--tol", str(a.tol)], capture_output=True, text=True)
    print("  " + res.stdout.strip())
    with open(os.path.join(a.work, "check.json")) as f:
        report = json.load(f)
    if res.returncode != 0 or not report.get("ok"):
        sys.exit("peers: the peers do not compute libat's function (%s): refusing to time"
                 % res.stderr.strip())
    return report


def command(a, attn, prog, name, quick):
    _, batch, sub, iters, _ = WORKLOADS[name]
    k, w = iters[1] if quick else iters[0]
    common = ["--batch", str(batch), "--iters", str(k), "--warmup", str(w),
              "--threads", str(a.threads)]
    if sub == "copy":
        common = ["--epochs", str(k), "--warmup", str(w), "--threads", str(a.threads), "--json"]
        if prog == "libat":
            return [attn, "bench", "train", "--task", "copy"] + common
        return [PY, os.path.join(HERE, "torch_peer.py"), "bench", "copy"] + common
    if prog == "libat":
        size = ["--tokens", "32"] if sub == "decode" else ["--tgt-len", "32"]
        return [attn, "bench", sub] + BASE_FLAGS + size + common + ["--json"]
    if prog == "pytorch":
        model = [] if sub == "train" else ["--model", os.path.join(a.work, "model.safetensors")]
        return [PY, os.path.join(HERE, "torch_peer.py"), "bench", sub, "--src-len", "32",
                "--tgt-len", "32", "--tokens", "32"] + model + common + ["--json"]
    return ["node", os.path.join(HERE, "ort_peer.mjs"), "bench", a.work, "--src-len", "32",
            "--tgt-len", "32"] + common


def environment(core):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if core != "unset":
        env["OPENBLAS_CORETYPE"] = core
    return env


def figure(prog, out):
    """(ms, what the run said about its BLAS)."""
    j = json.loads(out.strip().splitlines()[-1])
    if prog == "libat":
        key = {"forward": "forward", "decode": "decode", "train": "train_step",
               "train-copy": "copy_epoch"}[j["bench"]]
        blas = j["openblas"]
        kern = j.get("kernels", {}).get("libat", "OpenBLAS")
        note = "%s%s, libat's %s kernels" % (blas["core"], " (fallback)" if blas["fallback"] else "",
                                             kern)
        sec = j[key]
        return sec["median_ms"] if "median_ms" in sec else sec["median_s"] * 1e3, note, j
    if prog == "pytorch":
        return j["median_ms"], j["openblas_core"], j
    return j["median_ms"], "own kernels", j


def measure(a, attn):
    """Rounds outermost, so that a change of the machine's load (other
    processes on its cores) falls on every situation and program alike."""
    results = {}  # (core, workload, prog) -> [ms per round]
    notes, raw, loads = {}, [], []
    for r in range(a.rounds):
        load0, t0 = os.getloadavg(), time.time()
        print("\nround %d of %d (load average %.2f)" % (r + 1, a.rounds, load0[0]))
        for core in a.blas:
            env = environment(core)
            for name in a.workloads:
                progs = ("libat",) + WORKLOADS[name][4]
                turn = r % len(progs)
                for prog in progs[turn:] + progs[:turn]:
                    out = run(command(a, attn, prog, name, a.quick), env=env, quiet=True)
                    ms, note, j = figure(prog, out)
                    results.setdefault((core, name, prog), []).append(ms)
                    notes[(core, prog)] = note
                    raw.append({"blas": core, "round": r, "workload": name, "program": prog,
                                "ms": ms, "json": j})
                    print("  OPENBLAS_CORETYPE %-9s %-10s %-12s %10.1f ms  (%s)"
                          % (core, name, NAMES[prog], ms, note))
                    sys.stdout.flush()
        loads.append((load0[0], os.getloadavg()[0], time.time() - t0))
    return results, notes, raw, loads


def fmt_ms(ms):
    if ms is None:
        return "–"
    return "{:,.0f} ms".format(ms) if ms >= 100 else "%.1f ms" % ms


def table(a, results, notes):
    lines = ["| workload | libat | PyTorch | ONNX Runtime | libat / PyTorch | libat / ONNX Runtime |",
             "|---|---|---|---|---|---|"]
    for core in a.blas:
        got = notes.get((core, "libat"), "?")
        situation = ("OPENBLAS_CORETYPE unset (OpenBLAS chose %s)" % got if core == "unset"
                     else "OPENBLAS_CORETYPE=%s" % core)
        for name in a.workloads:
            med = {p: (statistics.median(results[(core, name, p)])
                       if (core, name, p) in results else None) for p in PROGRAMS}
            ratio = ["%.2f" % (med["libat"] / med[p]) if med[p] else "–"
                     for p in ("pytorch", "ort")]
            lines.append("| %s — %s | %s | %s | %s | %s | %s |"
                         % (WORKLOADS[name][0], situation, fmt_ms(med["libat"]),
                            fmt_ms(med["pytorch"]), fmt_ms(med["ort"]), ratio[0], ratio[1]))
    return "\n".join(lines)


SECTIONS = {"forward": "forward", "train": "train_step", "copy": "copy_epoch"}


def ceilings(a, results, raw):
    """Each program's GFLOP/s beside libat's kernel peak (at_kernel_peak,
    measured by every libat run just after its workload): the share of the
    machine each uses, and the most any program could gain on PyTorch, a
    program that ran every FLOP at the peak."""
    lines = ["| workload | kernel peak | libat | PyTorch | ONNX Runtime | "
             "at the peak, x PyTorch's speed |", "|---|---|---|---|---|---|"]
    for core in a.blas:
        for name in a.workloads:
            sec = SECTIONS.get(WORKLOADS[name][2])
            runs = [r["json"][sec] for r in raw if r["program"] == "libat" and r["blas"] == core
                    and r["workload"] == name and sec and sec in r["json"]]
            peaks = [x["kernel_peak_gflops"] for x in runs if "kernel_peak_gflops" in x]
            if not peaks:
                continue
            peak, gflop = statistics.median(peaks), runs[0]["gflop"]
            cells = []
            rate = {}
            for prog in PROGRAMS:
                if (core, name, prog) not in results:
                    cells.append("–")
                    continue
                rate[prog] = gflop / (statistics.median(results[(core, name, prog)]) * 1e-3)
                cells.append("%.1f GFLOP/s, %.0f%%" % (rate[prog], 100 * rate[prog] / peak))
            bound = "%.2f" % (peak / rate["pytorch"]) if "pytorch" in rate else "–"
            lines.append("| %s — %s | %.1f GFLOP/s | %s | %s |"
                         % (WORKLOADS[name][0], core, peak, " | ".join(cells), bound))
    return "\n".join(lines) if len(lines) > 2 else ""


def main():
    a = parse_args()
    attn = os.path.join(a.build, "attn")
    if not os.access(attn, os.X_OK):
        sys.exit("peers: no attn program in %s (--build: a libat build folder)" % a.build)
    if not os.path.isdir(os.path.join(HERE, "node_modules", "onnxruntime-node")):
        sys.exit("peers: onnxruntime-node is not installed: run `npm ci --ignore-scripts` "
                 "in %s" % HERE)
    os.makedirs(a.work, exist_ok=True)
    print("peers: %s mode, %d rounds, %d threads, load average %.2f %.2f %.2f"
          % ("quick" if a.quick else "full", a.rounds, a.threads, *os.getloadavg()))
    report = check(a, attn)
    results, notes, raw, loads = measure(a, attn)
    print("\n" + table(a, results, notes) + "\n")
    ceiling = ceilings(a, results, raw)
    if ceiling:
        print("Against the ceiling: each program's GFLOP/s (libat's FLOP count) and its share "
              "of libat's kernel peak in the same runs; the last column is the most a program "
              "running every FLOP at that peak could be, in multiples of PyTorch's speed.\n")
        print(ceiling + "\n")
    for core in a.blas:
        print("OPENBLAS_CORETYPE %s: libat: OpenBLAS core %s; PyTorch: OpenBLAS core %s"
              % (core, notes.get((core, "libat"), "?"), notes.get((core, "pytorch"), "?")))
    print("rounds: " + "; ".join("%.0f s, load average (1 min) %.2f -> %.2f" % (secs, l0, l1)
                                  for l0, l1, secs in loads))
    versions = {}
    for r in raw:
        j = r["json"]
        if r["program"] == "libat":
            versions["libat"] = j.get("libat_version")
        elif r["program"] == "pytorch":
            versions["torch"] = j["torch"]
        else:
            versions["onnxruntime-node"] = j["onnxruntime_node"]
    print("versions: %s; check: max |PyTorch - libat| %.3g, max |ONNX Runtime - libat| %.3g "
          "on log-probs %s" % (", ".join("%s %s" % kv for kv in sorted(versions.items())),
                               report["max_abs_torch_vs_libat"],
                               report["max_abs_ort_vs_libat"],
                               "x".join(map(str, report["shape"]))))
    path = os.path.join(a.work, "results.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"check": report, "versions": versions, "runs": raw, "loads": loads,
                   "argv": sys.argv[1:]}, f, indent=1)
    os.replace(path + ".tmp", path)
    print("every run: %s" % path)


if __name__ == "__main__":
    main()
