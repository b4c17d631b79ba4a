#!/bin/sh
# Tests of the attn program (CTest test `cli`):
#   sh tests/cli_test.sh path/to/attn path/to/tests/data
# Every failure must be one line "attn: ..." on stderr with exit status 1
# (runtime) or 2 (usage), never a crash; successes exit 0. Prints one line per
# check and exits 1 if any failed.
set -u

ATTN=${1:?usage: cli_test.sh ATTN DATA_DIR}
DATA=${2:?usage: cli_test.sh ATTN DATA_DIR}
TINY=$DATA/golden/tiny
TMP=$(mktemp -d "${TMPDIR:-/tmp}/attn-cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr
passed=0
failed=0

pass() {
    passed=$((passed + 1))
    printf 'ok   %s\n' "$1"
}

fail() {
    failed=$((failed + 1))
    printf 'FAIL %s: %s\n' "$1" "$2"
    if [ -s "$ERR" ]; then
        sed 's/^/     stderr: /' "$ERR" | head -n 8
    fi
}

# run ARGS...: runs attn, leaving its status in $rc and output in $OUT, $ERR.
run() {
    "$ATTN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
}

# ok NAME ARGS...: attn ARGS exits 0 with nothing on stderr.
ok() {
    name=$1
    shift
    run "$@"
    if [ "$rc" -ne 0 ]; then
        fail "$name" "exit status $rc, expected 0"
    elif [ -s "$ERR" ]; then
        fail "$name" "exit status 0 but something on stderr"
    else
        pass "$name"
    fi
}

# fails NAME STATUS ARGS...: attn ARGS exits STATUS with exactly one line
# "attn: ..." on stderr.
fails() {
    name=$1
    want=$2
    shift 2
    run "$@"
    lines=$(wc -l <"$ERR")
    if [ "$rc" -ge 128 ]; then
        fail "$name" "crashed (exit status $rc)"
    elif [ "$rc" -ne "$want" ]; then
        fail "$name" "exit status $rc, expected $want"
    elif [ "$lines" -ne 1 ] || ! grep -q '^attn: ' "$ERR"; then
        fail "$name" "stderr is not one line starting 'attn: '"
    else
        pass "$name"
    fi
}

# expect NAME PATTERN FILE: the last check's FILE matches the grep pattern.
expect() {
    if grep -q -- "$2" "$3"; then
        pass "$1"
    else
        fail "$1" "no line matches '$2'"
    fi
}

# mkst FILE JSON BYTES: writes a safetensors file: the 8-byte little-endian
# header length, the JSON header, then BYTES (a printf format, octal escapes).
# shellcheck disable=SC2059  # the formats are built here on purpose
mkst() {
    header=$2
    n=${#header}
    printf "$(printf '\\%03o\\%03o' $((n % 256)) $((n / 256)))\\000\\000\\000\\000\\000\\000" >"$1"
    printf '%s' "$header" >>"$1"
    printf "$3" >>"$1"
}

# i32 V...: the printf format of small non-negative int32 values.
i32() {
    for v in "$@"; do
        printf '\\%03o\\000\\000\\000' "$v"
    done
}

if [ ! -x "$ATTN" ] || [ ! -f "$TINY/model.safetensors" ]; then
    echo "cli_test.sh: no attn program at $ATTN or no golden data in $TINY" >&2
    exit 1
fi

# ---------------------------------------------------------------- usage
run
if [ "$rc" -eq 2 ] && grep -q '^usage: attn' "$ERR"; then
    pass "no arguments: usage on stderr, status 2"
else
    fail "no arguments: usage on stderr, status 2" "status $rc"
fi
ok "attn --help" --help
expect "attn --help lists the commands" '^  demo ' "$OUT"
ok "attn help" help
ok "attn --version" --version
expect "attn --version names libat" '^attn [0-9]*\.[0-9]*\.[0-9]* (libat ' "$OUT"
for cmd in info dump compare bench demo; do
    ok "attn $cmd --help" "$cmd" --help
    expect "attn $cmd --help is its usage" "^usage: attn $cmd" "$OUT"
    ok "attn help $cmd" help "$cmd"
    fails "attn $cmd --no-such-flag" 2 "$cmd" --no-such-flag
done
fails "unknown command" 2 frobnicate
fails "unknown global option" 2 --frobnicate
fails "help of an unknown command" 2 help frobnicate
fails "single-dash option" 2 info -m x
fails "stray positional argument" 2 info --model "$TINY/model.safetensors" --heads 4 extra
fails "option given twice" 2 info --model "$TINY/model.safetensors" --heads 4 --heads 4
fails "option without its value" 2 info --model
fails "value that is an option" 2 info --model --heads 4
fails "flag with a value" 2 bench forward --json=yes

# ---------------------------------------------------------------- info
ok "info on the tiny golden model" info --model "$TINY/model.safetensors" --heads 4
expect "info counts 94 tensors" '^totals: 94 tensors' "$OUT"
rows=$(grep -c '^ *[0-9][0-9]*  [a-z_0-9.]* *\[[0-9, ]*\] *[0-9][0-9]*$' "$OUT")
if [ "$rows" -eq 94 ]; then pass "info lists 94 table rows"; else fail "info lists 94 table rows" "$rows rows"; fi
expect "info shows the configuration" '^  d_model *32$' "$OUT"
expect "info shows heads from --heads" '^  heads *4 ' "$OUT"
expect "info lists the pe buffer" ' src_embed\.1\.pe  *\[1, 5000, 32\]  *160000$' "$OUT"
ok "info with --model=... --heads=..." info --model="$TINY/model.safetensors" --heads=4
fails "info without --heads on a PyTorch export" 1 info --model "$TINY/model.safetensors"
expect "the message asks for --heads" 'heads' "$ERR"
fails "info without --model" 2 info --heads 4
fails "info on a missing file" 1 info --model "$TMP/no-such-file.safetensors" --heads 4
head -c 100 "$TINY/model.safetensors" >"$TMP/truncated.safetensors"
fails "info on a truncated file" 1 info --model "$TMP/truncated.safetensors" --heads 4
fails "info on an empty file" 1 info --model /dev/null --heads 4
fails "info on a directory" 1 info --model "$TMP" --heads 4
fails "info with heads not dividing d_model" 1 info --model "$TINY/model.safetensors" --heads 3
fails "info with --heads 0" 2 info --model "$TINY/model.safetensors" --heads 0
fails "info with --heads not a number" 2 info --model "$TINY/model.safetensors" --heads four
fails "info with --heads 4x" 2 info --model "$TINY/model.safetensors" --heads 4x
fails "info with a huge --heads" 2 info --model "$TINY/model.safetensors" --heads 99999999999999999999

# ---------------------------------------------------------------- dump and compare
M="--model $TINY/model.safetensors --heads 4"
# shellcheck disable=SC2086  # $M is a list of words
ok "dump the tiny golden batch (I64 ids)" dump $M --input "$TINY/io.safetensors" --out "$TMP/tiny.safetensors"
ok "compare the dump with the PyTorch golden file (atol 1e-4)" \
    compare "$TMP/tiny.safetensors" "$TINY/io.safetensors" --atol 1e-4
expect "11 tensors compared" '^11 tensors compared, 0 differ' "$OUT"
for t in memory decoder_out logprobs src_mask tgt_mask attn.enc_self.0 attn.enc_self.1 \
         attn.dec_self.0 attn.dec_self.1 attn.cross.0 attn.cross.1; do
    expect "$t matches the golden value" "^  $t .* ok$" "$OUT"
done
ok "compare with an rtol" compare "$TMP/tiny.safetensors" "$TINY/io.safetensors" --atol=2e-5 --rtol=1e-4
fails "compare beyond a zero tolerance" 1 compare "$TMP/tiny.safetensors" "$TINY/io.safetensors" --atol 0
expect "compare says how many differ" 'tensors differ' "$ERR"
fails "compare without common tensors" 1 compare "$TMP/tiny.safetensors" "$TINY/model.safetensors"
fails "compare with one file" 2 compare "$TMP/tiny.safetensors"
fails "compare with three files" 2 compare "$TMP/tiny.safetensors" "$TMP/tiny.safetensors" "$TMP/tiny.safetensors"
fails "compare with a negative --atol" 2 compare "$TMP/tiny.safetensors" "$TMP/tiny.safetensors" --atol -1
fails "compare with a missing file" 1 compare "$TMP/tiny.safetensors" "$TMP/none.safetensors"

mkst "$TMP/enc.safetensors" '{"src":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]}}' "$(i32 1 2 3)"
# shellcheck disable=SC2086
ok "dump without tgt (encoder only)" dump $M --input "$TMP/enc.safetensors" --out "$TMP/enc-out.safetensors"
ok "compare an encoder-only dump with itself" compare "$TMP/enc-out.safetensors" "$TMP/enc-out.safetensors" --atol 0
expect "encoder only: src_mask, memory and 2 enc_self" '^4 tensors compared' "$OUT"
expect "encoder only: attn.enc_self.1 written" '^  attn.enc_self.1 *\[1, 4, 3, 3\]' "$OUT"

# shellcheck disable=SC2086
fails "dump without --input" 2 dump $M --out "$TMP/x.safetensors"
fails "dump without --model" 2 dump --input "$TINY/io.safetensors" --out "$TMP/x.safetensors"
# shellcheck disable=SC2086
fails "dump without --out" 2 dump $M --input "$TINY/io.safetensors"
# shellcheck disable=SC2086
fails "dump with a non-number --pad" 2 dump $M --input "$TINY/io.safetensors" --pad zero --out "$TMP/x.safetensors"
# shellcheck disable=SC2086
fails "dump of an input without src" 1 dump $M --input "$TINY/model.safetensors" --out "$TMP/x.safetensors"
expect "the message names src" "'src'" "$ERR"
# shellcheck disable=SC2086
fails "dump of a truncated model" 1 dump --model "$TMP/truncated.safetensors" --heads 4 --input "$TINY/io.safetensors" --out "$TMP/x.safetensors"
# shellcheck disable=SC2086
fails "dump of a missing input" 1 dump $M --input "$TMP/none.safetensors" --out "$TMP/x.safetensors"
mkst "$TMP/range.safetensors" '{"src":{"dtype":"I32","shape":[1,2],"data_offsets":[0,8]}}' "$(i32 1 11)"
# shellcheck disable=SC2086
fails "dump with an id at the vocabulary size" 1 dump $M --input "$TMP/range.safetensors" --out "$TMP/x.safetensors"
mkst "$TMP/float.safetensors" '{"src":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]}}' '\000\000\000\000'
# shellcheck disable=SC2086
fails "dump with float ids" 1 dump $M --input "$TMP/float.safetensors" --out "$TMP/x.safetensors"
mkst "$TMP/flat.safetensors" '{"src":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}' "$(i32 1 2)"
# shellcheck disable=SC2086
fails "dump with 1-D ids" 1 dump $M --input "$TMP/flat.safetensors" --out "$TMP/x.safetensors"
mkst "$TMP/rows.safetensors" \
    '{"src":{"dtype":"I32","shape":[1,2],"data_offsets":[0,8]},"tgt":{"dtype":"I32","shape":[2,1],"data_offsets":[8,16]}}' \
    "$(i32 1 2 1 2)"
# shellcheck disable=SC2086
fails "dump with src and tgt of different batch" 1 dump $M --input "$TMP/rows.safetensors" --out "$TMP/x.safetensors"
mkst "$TMP/corrupt.safetensors" '{"src": nonsense' ''
# shellcheck disable=SC2086
fails "dump of a corrupt input" 1 dump $M --input "$TMP/corrupt.safetensors" --out "$TMP/x.safetensors"
# shellcheck disable=SC2086
fails "dump into a missing directory" 1 dump $M --input "$TINY/io.safetensors" --out "$TMP/no/such/dir.safetensors"

# ---------------------------------------------------------------- bench
SMALL="--layers 1 --d-model 16 --heads 2 --d-ff 32 --vocab 11 --batch 2 --src-len 5 --tgt-len 4 --iters 3 --warmup 1"
# shellcheck disable=SC2086
ok "bench forward on a small model" bench forward $SMALL
expect "bench prints the forward median" '^forward: median .* GFLOP/s$' "$OUT"
expect "bench prints the sgemm throughput" '^sgemm: .* GFLOP/s$' "$OUT"
expect "bench names the OpenBLAS core" '^OpenBLAS: core ' "$OUT"
# shellcheck disable=SC2086
ok "bench forward --json" bench forward $SMALL --threads 1 --json
expect "bench --json prints one object" '^{"bench":"forward",.*"ratio":[0-9.e+-]*}$' "$OUT"
ok "bench forward, encoder only" bench forward --layers 1 --d-model 16 --heads 2 --d-ff 32 \
    --vocab 11 --src-len 5 --tgt-len=0 --iters 2 --json
fails "bench without a benchmark" 2 bench
fails "bench of an unknown benchmark" 2 bench backward
fails "bench with negative --iters" 2 bench forward --iters -3
fails "bench with --iters 0" 2 bench forward --iters 0
fails "bench with a non-number --batch" 2 bench forward --batch many
fails "bench with --d-model 1.5" 2 bench forward --d-model 1.5
fails "bench with heads not dividing d_model" 2 bench forward --heads 7 --iters 1

# ---------------------------------------------------------------- demo
ok "demo" demo --out "$TMP/demo"
expect "demo says the weights are untrained" 'UNTRAINED' "$OUT"
for f in model.safetensors input.safetensors attention.safetensors README.txt; do
    if [ -s "$TMP/demo/$f" ]; then pass "demo wrote $f"; else fail "demo wrote $f" "missing"; fi
done
expect "the demo README says the attention is not meaningful yet" 'not meaningful' "$TMP/demo/README.txt"
ok "info on the demo model (heads from its metadata)" info --model "$TMP/demo/model.safetensors"
expect "demo model: format recorded" '^format: libat' "$OUT"
ok "dump the demo's input (I32 ids) again" dump --model "$TMP/demo/model.safetensors" \
    --input "$TMP/demo/input.safetensors" --pad -1 --out "$TMP/demo-again.safetensors"
ok "the dump reproduces the demo's attention" \
    compare "$TMP/demo/attention.safetensors" "$TMP/demo-again.safetensors" --atol 1e-6
expect "all 11 demo tensors compared" '^11 tensors compared, 0 differ' "$OUT"
: >"$TMP/a-file"
fails "demo into a path that is a file" 1 demo --out "$TMP/a-file"
fails "demo with a bad --seed" 2 demo --out "$TMP/demo" --seed -1

printf 'cli: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
