#!/bin/sh
# Training speed of attn train --task translate against the PyTorch peer of
# issue 9 (tests/bench/peer_translate.py), side by side in one run:
#
#   sh tests/bench/translate_speed.sh ATTN [DATA_DIR] [SECONDS]
#
# DATA_DIR (default ${TMPDIR:-/tmp}/attn-bench-bible) is built with
# `attn corpus bible` when it has no train.src. For each OpenBLAS situation
# (OPENBLAS_CORETYPE unset, and forced to Haswell) attn trains the peer
# configuration (SentencePiece BPE 8000 joint, d_model 256, 3+3 layers, 4
# heads, d_ff 1024, smoothing 0.1, Noam warmup 800, 4000-token batches) for
# about SECONDS (default 120) seconds of training steps, then the peer trains
# the same configuration, with attn's tokenizer (read from attn's checkpoint),
# attn's batches in attn's order, for as many seconds of steps as attn had,
# once per thread setting of PEER_THREADS. Both count target tokens over the
# seconds of the training steps alone: attn's from its last line ("time: N
# steps, T target tokens in S s of steps"), which leaves out the tokenizer's
# training and the evaluations that attn's --minutes budget includes.
#
# Environment:
#   PYTHON=/usr/bin/python3   a Python with torch and sentencepiece (Debian's)
#   PEER_THREADS="2 2:passive 1"  the peer's thread settings, each N or
#                             N:passive: torch.set_num_threads(N) with N OpenMP
#                             and N OpenBLAS threads; :passive adds
#                             OMP_WAIT_POLICY=PASSIVE (libgomp's threads sleep at
#                             once instead of spinning: far faster when other
#                             processes share the cores, perhaps slower when not)
#   ATTN_THREADS=2            attn --threads
#   CORETYPES="unset Haswell" the OPENBLAS_CORETYPE values ("unset": not set)
#   EVAL=1                    also the test BLEU of each model (greedy, attn eval;
#                             minutes more per run: the peer decodes one verse at
#                             a time re-running the decoder over the prefix)
#   NICE="nice -n 10"         a prefix for every timed command
# The logs stay in the folder named on the first line.
set -u

ATTN=${1:?usage: translate_speed.sh ATTN [DATA_DIR] [SECONDS]}
DATA=${2:-${TMPDIR:-/tmp}/attn-bench-bible}
BUDGET=${3:-120}
PY=${PYTHON:-/usr/bin/python3}
PEER_THREADS=${PEER_THREADS:-2 2:passive 1}
ATTN_THREADS=${ATTN_THREADS:-2}
CORETYPES=${CORETYPES:-unset Haswell}
EVAL=${EVAL:-0}
NICE=${NICE:-}
PEER=$(dirname "$0")/peer_translate.py

die() { echo "translate_speed: $*" >&2; exit 1; }
case $ATTN in */*) ATTN=$(cd "$(dirname "$ATTN")" && pwd)/$(basename "$ATTN") ;; esac
"$ATTN" --version >/dev/null 2>&1 || die "cannot run '$ATTN'"
"$PY" -c 'import torch, sentencepiece' 2>/dev/null ||
    die "$PY lacks torch or sentencepiece (Debian: python3-torch python3-sentencepiece)"
W=$(mktemp -d "${TMPDIR:-/tmp}/attn-translate-speed.XXXXXX") || exit 1
trap 'rm -f "$W"/*.safetensors' EXIT
trap 'rm -f "$W"/*.safetensors; exit 130' INT TERM
echo "logs in $W"

# run CORETYPE CMD...: CMD with OPENBLAS_CORETYPE unset or set
# shellcheck disable=SC2086  # NICE is a list of words
run() {
    coretype=$1
    shift
    if [ "$coretype" = unset ]; then
        env -u OPENBLAS_CORETYPE $NICE "$@"
    else
        env OPENBLAS_CORETYPE="$coretype" $NICE "$@"
    fi
}

# field LOG: attn's "time:" line as "steps tokens seconds"
attn_time() {
    sed -n 's/^time: \([0-9]*\) steps, \([0-9]*\) target tokens in \([0-9.]*\) s of steps.*/\1 \2 \3/p' "$1"
}
peer_time() {
    sed -n 's/^peer: \([0-9]*\) steps, \([0-9]*\) target tokens in \([0-9.]*\) s of steps.*loss \([0-9.]*\)$/\1 \2 \3 \4/p' "$1"
}
bleu_of() { # the BLEU of attn eval --json on stdin
    "$PY" -c 'import json, sys; print("%.2f" % json.load(sys.stdin)["bleu"])'
}

if [ ! -s "$DATA/train.src" ] || [ ! -s "$DATA/train.tgt" ] || [ ! -s "$DATA/test.src" ]; then
    echo "building the corpus in $DATA"
    "$ATTN" corpus bible --out "$DATA" >"$W/corpus.log" 2>&1 || {
        cat "$W/corpus.log" >&2
        die "attn corpus bible failed"
    }
fi

TRAIN="--task translate --data $DATA --warmup 800 --eval-every 0 --threads $ATTN_THREADS"

# One step first: what attn spends before its first step (the tokenizer's
# training, reading and encoding), so that --minutes leaves BUDGET seconds
# for the steps.
# shellcheck disable=SC2086  # TRAIN is a list of words
$NICE "$ATTN" train $TRAIN --minutes 0.0001 --epochs 1 --eval-sentences 1 \
    --out "$W/setup.safetensors" >"$W/setup.log" 2>&1 || {
    cat "$W/setup.log" >&2
    die "attn train (one step) failed"
}
extra=$(sed -n 's/^time: .* tokenizer \([0-9.]*\) s; the rest \([0-9.-]*\) s$/\1 \2/p' "$W/setup.log")
[ -n "$extra" ] || die "attn printed no 'time:' line (an attn from before the line was added?)"
minutes=$(echo "$BUDGET $extra" | awk '{ printf "%.4f", ($1 + $2 + $3) / 60 }')
echo "attn spends $(echo "$extra" | awk '{ printf "%.1f", $1 + $2 }') s outside its steps; \
--minutes $minutes for about $BUDGET s of steps"

results=$W/results
: >"$results"
for ct in $CORETYPES; do
    echo "OPENBLAS_CORETYPE $ct: attn ..."
    # shellcheck disable=SC2086
    run "$ct" "$ATTN" train $TRAIN --epochs 1000 --eval-sentences 20 --minutes "$minutes" \
        --out "$W/attn-$ct.safetensors" >"$W/attn-$ct.log" 2>&1 || {
        cat "$W/attn-$ct.log" >&2
        die "attn train failed (OPENBLAS_CORETYPE $ct)"
    }
    a=$(attn_time "$W/attn-$ct.log")
    [ -n "$a" ] || die "no 'time:' line in $W/attn-$ct.log"
    aloss=$(sed -n 's/^epoch .* train loss *\([0-9.]*\) .*/\1/p' "$W/attn-$ct.log" | tail -n 1)
    abatches=$(sed -n 's/^translate: \(.* an epoch\);.*/\1/p' "$W/attn-$ct.log")
    secs=$(echo "$a" | awk '{ print $3 }')
    ableu=-
    if [ "$EVAL" = 1 ]; then
        ableu=$(run "$ct" "$ATTN" eval --model "$W/attn-$ct.safetensors" --src "$DATA/test.src" \
            --ref "$DATA/test.tgt" --beam 1 --threads "$ATTN_THREADS" --json | bleu_of) || ableu='?'
    fi
    echo "$ct libat $ATTN_THREADS $a ${aloss:--} $ableu" >>"$results"
    for th in $PEER_THREADS; do
        n=${th%%:*}
        policy=default
        case $th in *:passive) policy=passive ;; *:active) policy=active ;; *:*) die "PEER_THREADS: '$th'" ;; esac
        echo "OPENBLAS_CORETYPE $ct: PyTorch, $th threads, $secs s of steps ..."
        ev=
        [ "$EVAL" = 1 ] && ev="--eval --attn $ATTN"
        # shellcheck disable=SC2086
        run "$ct" "$PY" "$PEER" --data "$DATA" --tokenizer-from "$W/attn-$ct.safetensors" \
            --minutes "$(echo "$secs" | awk '{ printf "%.4f", $1 / 60 }')" --threads "$n" \
            --omp-wait-policy "$policy" \
            --warmup 800 $ev >"$W/peer-$ct-$th.log" 2>&1 || {
            cat "$W/peer-$ct-$th.log" >&2
            die "the peer failed (OPENBLAS_CORETYPE $ct, $th threads)"
        }
        pbatches=$(sed -n 's/^peer: \(.* an epoch\)$/\1/p' "$W/peer-$ct-$th.log")
        [ "$pbatches" = "$abatches" ] ||
            die "the peer's batches differ from attn's: '$pbatches' / '$abatches'"
        p=$(peer_time "$W/peer-$ct-$th.log")
        [ -n "$p" ] || die "no summary line in $W/peer-$ct-$th.log"
        pbleu=$(sed -n 's/^peer: test BLEU \([0-9.]*\) .*/\1/p' "$W/peer-$ct-$th.log")
        echo "$ct torch $th $p ${pbleu:--}" >>"$results"
    done
done

echo
echo "attn train --task translate against the PyTorch peer: $abatches;"
echo "about $BUDGET s of training steps each, tokens/s = target tokens / seconds of steps"
echo "($(uname -m), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
echo
awk -v eval="$EVAL" '
    { ct[NR] = $1; who[NR] = $2; th[NR] = $3; steps[NR] = $4; tok[NR] = $5; sec[NR] = $6
      loss[NR] = $7; bleu[NR] = $8; rate[NR] = $6 > 0 ? $5 / $6 : 0 }
    END {
        printf "%-17s %-8s %9s %6s %9s %7s %9s %7s", "OPENBLAS_CORETYPE", "trainer", "threads",
               "steps", "tokens", "seconds", "tok/s", "loss"
        if (eval == 1) printf " %6s", "BLEU"
        printf "\n"
        for (i = 1; i <= NR; i++) {
            name = who[i] == "libat" ? "libat" : "PyTorch"
            printf "%-17s %-8s %9s %6d %9d %7.1f %9.0f %7s", ct[i], name, th[i], steps[i],
                   tok[i], sec[i], rate[i], loss[i]
            if (eval == 1) printf " %6s", bleu[i]
            printf "\n"
        }
        printf "\n%-17s %11s %13s %9s %16s\n", "OPENBLAS_CORETYPE", "libat tok/s",
               "PyTorch tok/s", "threads", "libat / PyTorch"
        for (i = 1; i <= NR; i++) {
            if (who[i] != "libat") continue
            best = 0; bt = "-"
            for (j = 1; j <= NR; j++)
                if (who[j] != "libat" && ct[j] == ct[i] && rate[j] > best) { best = rate[j]; bt = th[j] }
            printf "%-17s %11.0f %13.0f %9s %16.2f\n", ct[i], rate[i], best, bt,
                   (best > 0 ? rate[i] / best : 0)
        }
        printf "(PyTorch: its best thread setting in that situation; the issue'"'"'s goal is 2.00)\n"
    }' "$results"
