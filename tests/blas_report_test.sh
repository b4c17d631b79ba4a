#!/bin/sh
# at_blas_report through attn bench (CTest test `blas_report`): with
# OPENBLAS_CORETYPE=Prescott, OpenBLAS runs SSE kernels, so the report must
# call them a fallback exactly when the CPU has AVX (read here from
# /proc/cpuinfo, not from libat) and name the core that fixes it; the text
# output warns when the JSON says fallback.
#   sh tests/blas_report_test.sh path/to/attn
set -u

ATTN=${1:?usage: blas_report_test.sh ATTN}
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-blas

TINY="forward --layers 1 --d-model 8 --heads 2 --d-ff 16 --vocab 11 --batch 1 --src-len 4 --tgt-len 4 --iters 1 --warmup 0"
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
if has avx512f; then want=SkylakeX; elif has avx2 && has fma; then want=Haswell
elif has avx; then want=Sandybridge; else want=; fi

field() { # field KEY: the openblas object's KEY in $OUT (python3's json only)
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["openblas"][sys.argv[2]])' \
        "$OUT" "$1"
}

# shellcheck disable=SC2086
OPENBLAS_CORETYPE=Prescott ok "bench --json under OPENBLAS_CORETYPE=Prescott" bench $TINY --json
if [ "$(field core)" != Prescott ]; then
    fail "OpenBLAS took OPENBLAS_CORETYPE=Prescott" "core $(field core) (not a DYNAMIC_ARCH OpenBLAS?)"
elif [ -n "$want" ]; then
    check "Prescott on a CPU with AVX is a fallback" [ "$(field fallback)" = True ]
    field report >"$TMP/report"
    expect "the report names OPENBLAS_CORETYPE=$want" "OPENBLAS_CORETYPE=$want uses it" "$TMP/report"
    expect "the report says the variable asked for it" "as OPENBLAS_CORETYPE=Prescott asks" \
        "$TMP/report"
else
    check "Prescott on a CPU without AVX is no fallback" [ "$(field fallback)" = False ]
fi

# the text output: a warning line exactly when the JSON says fallback
# shellcheck disable=SC2086
OPENBLAS_CORETYPE=Prescott ok "bench text under OPENBLAS_CORETYPE=Prescott" bench $TINY
if [ -n "$want" ]; then
    expect "the text warns" "^warning: OpenBLAS runs its Prescott kernels (SSE)" "$OUT"
else
    expect_not "no warning" "^warning:" "$OUT"
fi

# the core OpenBLAS picks by itself: text and JSON agree
# shellcheck disable=SC2086
ok "bench --json as the environment is" bench $TINY --json
fb=$(field fallback)
# shellcheck disable=SC2086
ok "bench text as the environment is" bench $TINY
if [ "$fb" = True ]; then
    expect "a fallback is warned of" "^warning: OpenBLAS runs its" "$OUT"
else
    expect_not "no fallback, no warning" "^warning:" "$OUT"
fi

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
