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
# $TMP/full may be a small tmpfs (the full-disk test mounts one when it can)
trap 'umount "$TMP/full" 2>/dev/null; rm -rf "$TMP"' EXIT INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr
passed=0
failed=0

# pass, fail, run (GUARD), ok, fails, fails_with, expect, expect_not, check
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"

# background BASE ARGS...: starts attn ARGS in the background, stdout and
# stderr to BASE.out and BASE.err, its pid in $bg. sh starts a background job
# with SIGINT ignored, and attn leaves an ignored signal ignored, so SIGINT is
# put back to its default first (with env, or perl where env cannot).
background() {
    base=$1
    shift
    if env --default-signal=INT true 2>/dev/null; then
        env --default-signal=INT "$ATTN" "$@" >"$base.out" 2>"$base.err" &
    else
        perl -e '$SIG{INT} = "DEFAULT"; exec { $ARGV[0] } @ARGV or die "exec: $!\n"' \
            "$ATTN" "$@" >"$base.out" 2>"$base.err" &
    fi
    bg=$!
}

# wait_for PATTERN FILE: waits (up to 60 s) until a line of FILE matches.
wait_for() {
    waited=0
    while ! grep -q -- "$1" "$2" 2>/dev/null; do
        waited=$((waited + 1))
        [ "$waited" -le 1200 ] || return 1
        sleep 0.05
    done
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
for cmd in info dump compare bench demo train decode; do
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

# the bench of a training step, of a copy-task epoch, of decoding
# shellcheck disable=SC2086
ok "bench train on a small model" bench train $SMALL
expect "bench train prints the step time" '^train step: median .* GFLOP/s$' "$OUT"
expect "bench train names the OpenBLAS core" '^OpenBLAS: core ' "$OUT"
# shellcheck disable=SC2086
ok "bench train --json" bench train $SMALL --json
expect "bench train --json prints one object" '^{"bench":"train",.*"train_step":{"median_ms":' "$OUT"
ok "bench train --task copy on a small model" bench train --task copy --layers 1 --d-model 16 \
    --heads 2 --d-ff 32 --warmup 0
expect "bench train --task copy prints seconds per epoch" '^copy epoch: median [0-9.]* s,' "$OUT"
ok "bench decode on a small model" bench decode --layers 1 --d-model 16 --heads 2 --d-ff 32 \
    --vocab 11 --src-len 5 --tokens 4 --iters 2
expect "bench decode prints ms per decode and per token" '^decode: median .* ms per token' "$OUT"
ok "bench decode --json" bench decode --layers 1 --d-model 16 --heads 2 --d-ff 32 --vocab 11 \
    --batch 3 --src-len 5 --tokens 4 --iters 2 --json
expect "bench decode --json prints one object" '^{"bench":"decode",.*"ms_per_token":' "$OUT"
ok "bench decode --beam 2 on a small model" bench decode --beam 2 --layers 1 --d-model 16 \
    --heads 2 --d-ff 32 --vocab 11 --batch 3 --src-len 5 --tokens 4 --iters 2
expect "bench decode --beam compares with greedy" '^beam 2: .* sentences/s; greedy: .* x greedy' \
    "$OUT"
fails "bench decode with --beam 0" 2 bench decode --beam 0
fails "bench forward with --beam" 2 bench forward --beam 2
fails "bench decode with --tokens 0" 2 bench decode --tokens 0
fails "bench forward with --tokens" 2 bench forward --tokens 3
fails "bench decode with --tgt-len" 2 bench decode --tgt-len 3
fails "bench train --task copy with --batch" 2 bench train --task copy --batch 3
fails "bench train with an unknown task" 2 bench train --task sort
fails "bench train with heads not dividing d_model" 2 bench train --d-model 30 --heads 4 --iters 1

# ---------------------------------------------------------------- train
# A tiny copy model that learns to copy in a few seconds (one thread: the
# same numbers on every machine).
TINYCOPY="--d-model 32 --heads 4 --d-ff 64 --lr 1 --warmup 100 --threads 1"
# shellcheck disable=SC2086
ok "train a tiny copy model" train --task copy $TINYCOPY --epochs 10 --out "$TMP/copy.safetensors"
cp "$OUT" "$TMP/train.out"
n=$(grep -c '^epoch  *[0-9]*/10  train loss  *[0-9.]*  eval loss  *[0-9.]*  lr [0-9.e+-]*  *[0-9]* tokens/s  elapsed  *[0-9.]* s$' "$TMP/train.out")
if [ "$n" -eq 10 ]; then pass "train prints one line per epoch"; else fail "train prints one line per epoch" "$n epoch lines"; fi
expect "train says what it wrote" '^wrote .*copy.safetensors (training checkpoint' "$TMP/train.out"
expect "train prints the held-out accuracy" 'copied exactly ([0-9.]*%)' "$TMP/train.out"
expect "train decodes the reference's example" '^  src      0 1 2 3 4 5 6 7 8 9$' "$TMP/train.out"
acc=$(sed -n 's/.* \([0-9]*\)\/200 copied exactly.*/\1/p' "$TMP/train.out")
if [ "${acc:-0}" -ge 180 ]; then
    pass "the tiny model copies >= 90% of held-out sequences ($acc/200)"
else
    fail "the tiny model copies >= 90% of held-out sequences" "${acc:-no} of 200"
fi
ok "info on a training checkpoint" info --model "$TMP/copy.safetensors"
expect "the checkpoint records its step" 'step = 200' "$OUT"

# decode
C="--model $TMP/copy.safetensors"
# shellcheck disable=SC2086
ok "decode a batch of four rows" decode $C --src "1 2 3 4 5 6 7 8 9 10" --src "1 7 7 3 9 2 4 4 6 5" \
    --src "1,9,8,7,6,5,4,3,2,1" --src "1 3 3 3 3 10 10 10 1 2"
lines=$(wc -l <"$OUT")
copies=$(grep -c -x -e '1 2 3 4 5 6 7 8 9 10' -e '1 7 7 3 9 2 4 4 6 5' -e '1 9 8 7 6 5 4 3 2 1' \
    -e '1 3 3 3 3 10 10 10 1 2' "$OUT")
if [ "$lines" -eq 4 ] && [ "$copies" -ge 3 ]; then
    pass "decode prints one line per row and copies ($copies of 4)"
else
    fail "decode prints one line per row and copies" "$lines lines, $copies copies"
fi
# shellcheck disable=SC2086
ok "decode the reference's example" decode $C --src "0 1 2 3 4 5 6 7 8 9" --start 0 --pad -1
expect "its decoded ids start with the start symbol 0" '^0\( [0-9]*\)\{9\}$' "$OUT"
# shellcheck disable=SC2086
ok "decode with --max-len and --end" decode $C --src "1 2 3 4 5" --max-len 4 --end 10
expect "--max-len bounds the row" '^1\( [0-9]*\)\{0,3\}$' "$OUT"
# shellcheck disable=SC2086
ok "decode rows of different lengths (padded with 0)" decode $C --src "1 2 3" --src "1 4 5 6 7"
lines=$(wc -l <"$OUT")
if [ "$lines" -eq 2 ]; then pass "two rows, two lines"; else fail "two rows, two lines" "$lines lines"; fi
# shellcheck disable=SC2086
ok "decode --dump" decode $C --src "1 5 3 8 2 9 4 7 6 10" --dump "$TMP/dec.safetensors"
expect "decode --dump says what it wrote" '^wrote .*dec.safetensors' "$OUT"
ok "the decode dump lists its tensors" compare "$TMP/dec.safetensors" "$TMP/dec.safetensors" --atol 0
expect "13 tensors in the decode dump" '^13 tensors compared, 0 differ' "$OUT"
for t in src_mask tgt_mask memory decoder_out logprobs attn.enc_self.0 attn.enc_self.1 \
         attn.dec_self.0 attn.dec_self.1 attn.cross.0 attn.cross.1; do
    expect "decode dump has $t" "^  $t  " "$OUT"
done
expect "decode dump: cross-attention (1, h, 9, 10)" '^  attn.cross.1 *\[1, 4, 9, 10\]' "$OUT"
expect "decode dump: the decoded ids ys" '^  ys *\[1, 10\]' "$OUT"
expect "decode dump: the source ids" '^  src *\[1, 10\]' "$OUT"
# shellcheck disable=SC2086
ok "decode --input (the dump's src)" decode $C --input "$TMP/dec.safetensors" --dump "$TMP/dec2.safetensors"
ok "decoding the dump's src again gives the same dump" \
    compare "$TMP/dec.safetensors" "$TMP/dec2.safetensors" --atol 0
mkst "$TMP/src2.safetensors" '{"src":{"dtype":"I32","shape":[2,3],"data_offsets":[0,24]}}' "$(i32 1 2 3 1 4 5)"
# shellcheck disable=SC2086
ok "decode --input with two rows" decode $C --input "$TMP/src2.safetensors" --max-len 3
lines=$(wc -l <"$OUT")
if [ "$lines" -eq 2 ]; then pass "decode --input: one line per row"; else fail "decode --input: one line per row" "$lines lines"; fi

fails "decode without --model" 2 decode --src "1 2 3"
# shellcheck disable=SC2086
fails "decode without a source" 2 decode $C
# shellcheck disable=SC2086
fails "decode with --src and --input" 2 decode $C --src "1 2" --input "$TMP/src2.safetensors"
# shellcheck disable=SC2086
fails "decode with a non-numeric --src" 2 decode $C --src "1 2 three"
# shellcheck disable=SC2086
fails "decode with a negative id" 2 decode $C --src "1 -2 3"
# shellcheck disable=SC2086
fails "decode with an empty --src" 2 decode $C --src ""
# shellcheck disable=SC2086
fails "decode with a --src of separators only" 2 decode $C --src " , "
# shellcheck disable=SC2086
fails "decode with an id out of the vocabulary" 1 decode $C --src "1 2 11"
expect "the message names the position" 'row 1, position 3: id 11' "$ERR"
# shellcheck disable=SC2086
fails "decode with a huge id" 2 decode $C --src "1 99999999999999999999"
# shellcheck disable=SC2086
fails "decode rows of different lengths with --pad -1" 2 decode $C --src "1 2" --src "1" --pad -1
# shellcheck disable=SC2086
fails "decode rows of 2 and 3 ids with --pad -1" 2 decode $C --src "1 2" --src "1 2 3" --pad -1
expect "the message gives both lengths" 'row 1 has 2 ids, row 2 has 3)' "$ERR"
# shellcheck disable=SC2086
fails "decode with --max-len 0" 2 decode $C --src "1 2" --max-len 0
# shellcheck disable=SC2086
fails "decode with --start out of the vocabulary" 1 decode $C --src "1 2" --start 11
# shellcheck disable=SC2086
fails "decode with --end out of the vocabulary" 1 decode $C --src "1 2" --end 11
# shellcheck disable=SC2086
fails "decode with --end -2" 2 decode $C --src "1 2" --end -2
fails "decode with a missing model" 1 decode --model "$TMP/none.safetensors" --src "1 2"
# shellcheck disable=SC2086
fails "decode with an input without src" 1 decode $C --input "$TINY/model.safetensors"
# shellcheck disable=SC2086
fails "decode --dump into a missing directory" 1 decode $C --src "1 2" --dump "$TMP/no/dir/x.safetensors"
check "decode checks --dump before decoding (no ids printed)" [ ! -s "$OUT" ]
# shellcheck disable=SC2086
fails "decode --dump /dev/null is refused" 1 decode $C --src "1 2" --dump /dev/null
expect "the message says it is a device" 'character device' "$ERR"
check "/dev/null is still a character device" [ -c /dev/null ]
# a symbolic link is followed: the link stays, the file it points to is replaced
: >"$TMP/dump-target.safetensors"
ln -s dump-target.safetensors "$TMP/dump-link.safetensors"
# shellcheck disable=SC2086
ok "decode --dump to a symbolic link" decode $C --src "1 2 3" --dump "$TMP/dump-link.safetensors"
check "the link is still a link" [ -L "$TMP/dump-link.safetensors" ]
ok "the file it points to holds the dump" compare "$TMP/dump-target.safetensors" \
    "$TMP/dump-target.safetensors" --atol 0
expect "13 tensors in the linked dump" '^13 tensors compared' "$OUT"
# shellcheck disable=SC2086
fails "dump checks --out before reading its input" 1 dump $M --input "$TMP/none.safetensors" \
    --out "$TMP/no/dir/x.safetensors"
expect "the message names --out's directory" "no/dir" "$ERR"
# shellcheck disable=SC2086
fails "dump --out /dev/null is refused" 1 dump $M --input "$TINY/io.safetensors" --out /dev/null
check "/dev/null is still a character device after dump" [ -c /dev/null ]

# resume: 2 epochs, then 2 more from the checkpoint, equal 4 straight epochs
# bit for bit (parameters and both Adam moments)
SMALLCOPY="--d-model 16 --heads 2 --d-ff 32 --batch-size 20 --batches 5 --eval-batches 1 --heldout 10 --threads 1"
# shellcheck disable=SC2086
ok "train 4 epochs straight" train $SMALLCOPY --epochs 4 --out "$TMP/straight.safetensors"
# shellcheck disable=SC2086
ok "train 2 epochs" train $SMALLCOPY --epochs 2 --out "$TMP/half.safetensors"
# shellcheck disable=SC2086
ok "resume for 2 more" train $SMALLCOPY --epochs 4 --resume "$TMP/half.safetensors" --out "$TMP/resumed.safetensors"
expect "resume says where it goes on" '^resumed from .*half.safetensors at step 10: 2 epochs done' "$OUT"
n=$(grep -c '^epoch ' "$OUT")
if [ "$n" -eq 2 ]; then pass "the resumed run trains 2 epochs"; else fail "the resumed run trains 2 epochs" "$n epoch lines"; fi
ok "the resumed model equals the straight one (atol 0)" \
    compare "$TMP/straight.safetensors" "$TMP/resumed.safetensors" --atol 0
expect "weights and both Adam moments compared" '^278 tensors compared, 0 differ; 0 only' "$OUT"
# shellcheck disable=SC2086
ok "train with --save-every 1" train $SMALLCOPY --epochs 4 --save-every 1 --out "$TMP/saved.safetensors"
ok "saving every epoch changes nothing" \
    compare "$TMP/straight.safetensors" "$TMP/saved.safetensors" --atol 0
# shellcheck disable=SC2086
ok "resume a finished checkpoint: nothing to train" train $SMALLCOPY --epochs 4 \
    --resume "$TMP/straight.safetensors" --out "$TMP/again.safetensors"
expect "it says so" '^nothing to train' "$OUT"

fails "train with negative --epochs" 2 train --epochs -1
fails "train with --epochs 0" 2 train --epochs 0
fails "train with --batch-size 0" 2 train --batch-size 0
fails "train with --batches 0" 2 train --batches 0
fails "train with --seq-len 1" 2 train --seq-len 1
fails "train with --vocab 2" 2 train --vocab 2
fails "train with heads not dividing d_model" 2 train --d-model 32 --heads 3 --epochs 1
fails "train with --layers 0" 2 train --layers 0
fails "train with a negative --lr" 2 train --lr -1
fails "train with --dropout 1.5" 2 train --dropout 1.5
fails "train with --warmup 0" 2 train --warmup 0
fails "train with --save-every -1" 2 train --save-every -1
fails "train with a non-number --seed" 2 train --seed x
fails "train with an unknown task" 2 train --task sort
fails "train with a stray argument" 2 train copy
fails "train --resume of a missing file" 1 train --resume "$TMP/none.safetensors"
fails "train --resume of a weights-only file" 1 train --resume "$TINY/model.safetensors"
# shellcheck disable=SC2086
fails "train --resume with another --d-model" 2 train $SMALLCOPY --epochs 4 --d-model 32 --resume "$TMP/half.safetensors"
expect "the message names the flag" 'd-model' "$ERR"
# shellcheck disable=SC2086
fails "train --out into a missing directory" 1 train $SMALLCOPY --epochs 3 --out "$TMP/no/dir/x.safetensors"
expect_not "--out is checked before the first epoch" '^epoch ' "$OUT"
# shellcheck disable=SC2086
fails "train --out /dev/null is refused before training" 1 train $SMALLCOPY --epochs 3 --out /dev/null
expect_not "no epoch trained for /dev/null" '^epoch ' "$OUT"
check "/dev/null is still a character device after train" [ -c /dev/null ]
: >"$TMP/train-target.safetensors"
ln -s train-target.safetensors "$TMP/train-link.safetensors"
# shellcheck disable=SC2086
ok "train --out a symbolic link" train $SMALLCOPY --epochs 1 --out "$TMP/train-link.safetensors"
check "train left the link a link" [ -L "$TMP/train-link.safetensors" ]
ok "and wrote the checkpoint where it points" info --model "$TMP/train-target.safetensors"
expect "the linked checkpoint has its 5 steps" 'step = 5' "$OUT"

# ---------------------------------------------------------------- a run that diverges
# Adam's base rate 1e6 with warmup 1 overflows within a few steps (a gradient
# whose square overflows the second moment, or a NaN loss): the step is not
# taken, attn stops with status 1, and the last checkpoint --save-every 1
# wrote stays, loadable, at the step before.
run train --d-model 32 --d-ff 64 --heads 2 --layers 1 --epochs 30 --batches 1 \
    --eval-batches 0 --batch-size 8 --lr 1000000 --warmup 1 --save-every 1 --heldout 10 \
    --quiet --out "$TMP/diverge.safetensors"
check "a diverging run exits with status 1" [ "$rc" -eq 1 ]
expect "it says the step was not taken" 'the step was not taken' "$ERR"
expect "it names the checkpoint it keeps" 'keeps the last good checkpoint (step [0-9]*)' "$ERR"
kept=$(sed -n 's/.*last good checkpoint (step \([0-9]*\)).*/\1/p' "$ERR")
ok "the kept checkpoint loads" info --model "$TMP/diverge.safetensors"
expect "and holds the step it names" "step = ${kept:-none}\$" "$OUT"

# ---------------------------------------------------------------- interrupting training
# The first SIGINT finishes the step, saves a checkpoint, prints how to resume,
# exits 130; resuming with that very command ends where a straight run ends.
# shellcheck disable=SC2086
ok "train 20 epochs straight" train $SMALLCOPY --epochs 20 --out "$TMP/straight20.safetensors"
# shellcheck disable=SC2086
background "$TMP/int" train $SMALLCOPY --epochs 20 --out "$TMP/int.safetensors"
wait_for '^epoch ' "$TMP/int.out" && kill -INT "$bg"
wait "$bg"
rc=$?
cp "$TMP/int.err" "$ERR"
if [ "$rc" -eq 130 ]; then pass "SIGINT after the first epoch: exit status 130"; else fail "SIGINT after the first epoch: exit status 130" "status $rc"; fi
lines=$(wc -l <"$TMP/int.err")
if [ "$lines" -eq 1 ]; then pass "SIGINT: one line on stderr"; else fail "SIGINT: one line on stderr" "$lines lines"; fi
expect "SIGINT: it says what it saved and how to resume" \
    "^attn: train: interrupted by SIGINT after step [0-9]* (.*); saved the training checkpoint '.*int.safetensors'; resume with: .* train --resume .*int.safetensors --out .*int.safetensors --epochs 20 --batch-size 20 --batches 5 " \
    "$TMP/int.err"
expect "SIGINT: stdout says at once that it stops after the step" '^SIGINT: stopping after the current step' "$TMP/int.out"
expect_not "SIGINT: no held-out check after the interruption" 'held-out' "$TMP/int.out"
ok "the interrupted run left a loadable checkpoint" info --model "$TMP/int.safetensors"
steps=$(sed -n 's/.* step = \([0-9]*\)$/\1/p' "$OUT")
if [ "${steps:-0}" -ge 5 ] && [ "${steps:-0}" -lt 100 ]; then
    pass "its step count is after the first epoch, before the last ($steps)"
else
    fail "its step count is after the first epoch, before the last" "step ${steps:-none}"
fi
resume_cmd=$(sed -n 's/^attn: train: interrupted .*; resume with: //p' "$TMP/int.err")
case $resume_cmd in
"$ATTN train --resume "*)
    eval "$resume_cmd" >"$OUT" 2>"$ERR"
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$ERR" ]; then
        pass "the printed command resumes the run"
    else
        fail "the printed command resumes the run" "status $rc: $resume_cmd"
    fi
    ;;
*) fail "the printed command resumes the run" "no command in: $(cat "$TMP/int.err")" ;;
esac
expect "the resumed run starts where it stopped" \
    "^resumed from .*int.safetensors at step $steps: [0-9]* epochs*\( and [0-9] of 5 batches\)\{0,1\} done" "$OUT"
ok "interrupted and resumed equals straight (atol 0)" \
    compare "$TMP/straight20.safetensors" "$TMP/int.safetensors" --atol 0
expect "all 278 tensors equal" '^278 tensors compared, 0 differ; 0 only' "$OUT"

# SIGTERM too. Started as a plain background job, this one has SIGINT ignored:
# attn keeps it ignored, so the SIGINT sent first changes nothing.
# shellcheck disable=SC2086
"$ATTN" train $SMALLCOPY --epochs 1000 --out "$TMP/term.safetensors" >"$TMP/term.out" 2>"$TMP/term.err" &
bg=$!
wait_for '^epoch ' "$TMP/term.out" && kill -INT "$bg" && sleep 0.3 && kill -TERM "$bg"
wait "$bg"
rc=$?
cp "$TMP/term.err" "$ERR"
if [ "$rc" -eq 143 ]; then pass "SIGTERM: exit status 143"; else fail "SIGTERM: exit status 143" "status $rc"; fi
expect "SIGTERM: it saved and says how to resume" \
    "^attn: train: interrupted by SIGTERM after step [0-9]* .*; resume with: " "$TMP/term.err"
expect_not "an ignored SIGINT stayed ignored" 'SIGINT' "$TMP/term.out"
ok "the SIGTERM checkpoint loads" info --model "$TMP/term.safetensors"

# A second signal ends attn at once, mid-step: steps of this model take
# seconds, the two signals come 0.2 s apart inside the first one.
: >"$TMP/int2.out"
background "$TMP/int2" train --batch-size 200 --batches 20 --epochs 1 --eval-batches 0 --heldout 0 \
    --threads 1 --out "$TMP/int2.safetensors"
wait_for '^copy task' "$TMP/int2.out" && sleep 0.3 && kill -INT "$bg" && sleep 0.2 && kill -INT "$bg"
wait "$bg"
rc=$?
cp "$TMP/int2.err" "$ERR"
if [ "$rc" -eq 130 ]; then pass "a second SIGINT: ended by it (status 130)"; else fail "a second SIGINT: ended by it (status 130)" "status $rc"; fi
expect "the first SIGINT was caught" '^SIGINT: stopping after the current step' "$TMP/int2.out"
check "the second one ended attn before it saved anything" [ ! -e "$TMP/int2.safetensors" ]
check "and before any message" [ ! -s "$TMP/int2.err" ]

# ---------------------------------------------------------------- viz and stats: paths, limits
V="--model $TMP/copy.safetensors"
: >"$TMP/not-a-dir"
# shellcheck disable=SC2086
fails "viz checks --out before running the model" 1 viz $V --src "1 2 99" --out "$TMP/not-a-dir"
expect "the message is about --out" "not-a-dir' exists and is not a directory" "$ERR"
# shellcheck disable=SC2086
fails "viz --out /dev/null is refused" 1 viz $V --src "1 2 3" --out /dev/null
check "/dev/null is still a character device after viz" [ -c /dev/null ]
# shellcheck disable=SC2086
fails "stats checks --csv before running the model" 1 stats $V --src "1 2 99" --csv "$TMP/no/dir/s.csv"
expect "the message names --csv's directory" "no/dir" "$ERR"
# shellcheck disable=SC2086
fails "stats --json /dev/null is refused" 1 stats $V --src "1 2 3" --json /dev/null
check "/dev/null is still a character device after stats" [ -c /dev/null ]
: >"$TMP/csv-target.csv"
ln -s csv-target.csv "$TMP/csv-link.csv"
# shellcheck disable=SC2086
ok "stats --csv to a symbolic link" stats $V --src "1 2 3" --tgt "1 2" --csv "$TMP/csv-link.csv"
check "stats left the link a link" [ -L "$TMP/csv-link.csv" ]
expect "the file it points to holds the table" '^kind,layer,head,entropy' "$TMP/csv-target.csv"

# a vocabulary that names a token twice would map it to its first id only
printf '<pad>\n<s>\na\nb\nc\nb\nd\n' >"$TMP/dup.vocab"
# shellcheck disable=SC2086
fails "viz refuses a vocabulary with a repeated token" 1 viz $V --src-vocab "$TMP/dup.vocab" \
    --src "<s> a b" --out "$TMP/viz-dup"
expect "the message gives both line numbers" "line 6 repeats line 4 ('b')" "$ERR"
# shellcheck disable=SC2086
fails "stats refuses it as --tgt-vocab too" 1 stats $V --tgt-vocab "$TMP/dup.vocab" --src "1 2" \
    --tgt "<s> a"
printf '<pad>\n<s>\na\nb\nc\n' >"$TMP/ok.vocab"
# shellcheck disable=SC2086
ok "viz takes a vocabulary of distinct tokens" viz $V --src-vocab "$TMP/ok.vocab" \
    --src "<s> a b c" --out "$TMP/viz-vocab"

# the size of the charts grows with the square of the input: a limit
long=$(seq 3000 | awk '{ printf "%d ", $1 % 10 + 1 }')
GUARD=120
# shellcheck disable=SC2086
fails "viz of 3000 positions is refused" 1 viz $V --src "$long" --out "$TMP/viz-long"
GUARD=
expect "the message gives the size and the way to raise the limit" \
    'would take about [0-9.]* GB .*raise the limit with --max-mb [0-9]*$' "$ERR"
check "nothing was written for it" [ ! -e "$TMP/viz-long" ]
mid=$(seq 40 | awk '{ printf "%d ", $1 % 10 + 1 }')
# shellcheck disable=SC2086
fails "viz of 40 positions with --max-mb 1 is refused" 1 viz $V --src "$mid" --tgt "$mid" \
    --max-mb 1 --out "$TMP/viz-mid"
raise=$(sed -n 's/.*raise the limit with --max-mb \([0-9]*\)$/\1/p' "$ERR")
# shellcheck disable=SC2086
ok "with the --max-mb the message names it is written" viz $V --src "$mid" --tgt "$mid" \
    --max-mb "${raise:-0}" --out "$TMP/viz-mid"
check "its charts are there" [ -s "$TMP/viz-mid/heatmap-cross-l2-h4.svg" ]
fails "viz with --max-mb 0" 2 viz $V --src "1 2" --max-mb 0 --out "$TMP/viz-mid"

# A report cut short leaves nothing half written: on a full disk (a small
# tmpfs, when this may mount one), else under a file size limit (as a user
# may not mount; SIGXFSZ ignored so the write fails with EFBIG).
mkdir "$TMP/full"
if mount -t tmpfs -o size=256k tmpfs "$TMP/full" 2>/dev/null; then
    how="a full disk (256 kB tmpfs)"
    limit=
else
    how="a file size limit of 100 kB"
    limit=200   # 512-byte blocks
fi
# cut_short ARGS...: attn ARGS on $TMP/full, with the file size limit if any.
cut_short() {
    if [ -n "$limit" ]; then
        (trap '' XFSZ; ulimit -f "$limit"; exec "$ATTN" "$@") >"$OUT" 2>"$ERR"
    else
        "$ATTN" "$@" >"$OUT" 2>"$ERR"
    fi
    rc=$?
}
cut_short viz $V --src "1 2 3 4 5 6 7 8 9 10" --tgt "1 2 3 4 5 6 7 8 9" --out "$TMP/full/new/report"
if [ "$rc" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ]; then
    pass "viz cut short by $how: status 1, one line"
else
    fail "viz cut short by $how: status 1, one line" "status $rc"
fi
expect "it says which file failed and that nothing was written" "(nothing was written)" "$ERR"
left=$(ls -A "$TMP/full")
if [ -z "$left" ]; then pass "nothing is left: no folder, no parent, no temporary"; else fail "nothing is left: no folder, no parent, no temporary" "left: $left"; fi
mkdir "$TMP/full/old"
echo old >"$TMP/full/old/index.html"
echo mine >"$TMP/full/old/notes.txt"
cut_short viz $V --src "1 2 3 4 5 6 7 8 9 10" --tgt "1 2 3 4 5 6 7 8 9" --out "$TMP/full/old"
if [ "$rc" -eq 1 ]; then pass "viz into an existing folder cut short: status 1"; else fail "viz into an existing folder cut short: status 1" "status $rc"; fi
left=$(ls -A "$TMP/full/old" | tr '\n' ' ')
if [ "$left" = "index.html notes.txt " ] && grep -qx old "$TMP/full/old/index.html"; then
    pass "the existing folder is as it was"
else
    fail "the existing folder is as it was" "it holds: $left"
fi
umount "$TMP/full" 2>/dev/null
rm -rf "$TMP/full"
# shellcheck disable=SC2086
ok "viz into an existing folder" viz $V --src "1 2 3" --tgt "1 2" --out "$TMP/viz-vocab"
check "keeps what else was there" [ -s "$TMP/viz-vocab/heatmap-enc_self-l1-h1.svg" ]
expect "and says what it wrote" '^wrote [0-9]* chart files (.*) to .*viz-vocab/' "$OUT"
if ls -A "$TMP/viz-vocab" | grep -q tmp; then fail "no temporary folder left" "$(ls -A "$TMP/viz-vocab" | grep tmp)"; else pass "no temporary folder left"; fi

# ---------------------------------------------------------------- what readers accept
# Only regular files are read: a FIFO (nobody writing) or a device would block
# or never end. GUARD: a reader that blocks fails here rather than hangs.
mkfifo "$TMP/fifo"
GUARD=10
fails "info --model FIFO" 1 info --model "$TMP/fifo" --heads 4
expect "the message says it is a FIFO" 'FIFO' "$ERR"
fails "compare FIFO B" 1 compare "$TMP/fifo" "$TMP/tiny.safetensors"
fails "compare A FIFO" 1 compare "$TMP/tiny.safetensors" "$TMP/fifo"
# shellcheck disable=SC2086
fails "dump --input FIFO" 1 dump $M --input "$TMP/fifo" --out "$TMP/x.safetensors"
fails "dump --model FIFO" 1 dump --model "$TMP/fifo" --heads 4 --input "$TINY/io.safetensors" --out "$TMP/x.safetensors"
# shellcheck disable=SC2086
fails "decode --input FIFO" 1 decode $C --input "$TMP/fifo"
fails "decode --model FIFO" 1 decode --model "$TMP/fifo" --src "1 2"
fails "train --resume FIFO" 1 train --resume "$TMP/fifo"
fails "viz --model FIFO" 1 viz --model "$TMP/fifo" --src "1 2" --out "$TMP/viz-fifo"
# shellcheck disable=SC2086
fails "viz --input FIFO" 1 viz $V --input "$TMP/fifo" --out "$TMP/viz-fifo"
# shellcheck disable=SC2086
fails "viz --src-vocab FIFO" 1 viz $V --src-vocab "$TMP/fifo" --src "a" --out "$TMP/viz-fifo"
expect "the vocabulary message says it is a FIFO" 'FIFO' "$ERR"
# shellcheck disable=SC2086
fails "viz --tgt-vocab FIFO" 1 viz $V --tgt-vocab "$TMP/fifo" --src "1 2" --tgt "a" --out "$TMP/viz-fifo"
# shellcheck disable=SC2086
fails "stats --input FIFO" 1 stats $V --input "$TMP/fifo"
# shellcheck disable=SC2086
fails "stats --src-vocab FIFO" 1 stats $V --src-vocab "$TMP/fifo" --src "a"
# shellcheck disable=SC2086
fails "viz --src-vocab /dev/zero (a device never ends)" 1 viz $V --src-vocab /dev/zero --src "a" --out "$TMP/viz-fifo"
# shellcheck disable=SC2086
fails "viz --src-vocab a directory" 1 viz $V --src-vocab "$TMP" --src "a" --out "$TMP/viz-fifo"
GUARD=
check "no chart folder was made for them" [ ! -e "$TMP/viz-fifo" ]

# ---------------------------------------------------------------- demo
ok "demo, one epoch" demo --out "$TMP/demo" --epochs 1 --threads 1
expect "demo prints its epoch line" '^epoch   1/1  train loss' "$OUT"
expect "demo prints the held-out accuracy" '/1000 copied exactly' "$OUT"
expect "demo decodes an example" '^example (held-out): src ' "$OUT"
expect "demo prints a cross-attention head" '^cross-attention of the decoded example, layer ' "$OUT"
expect "demo says what it wrote" '/README.txt  *what was done' "$OUT"
for f in model.safetensors input.safetensors attention.safetensors README.txt \
         report/index.html report/stats.svg report/heatmap-cross-l2-h1.vl.json; do
    if [ -s "$TMP/demo/$f" ]; then pass "demo wrote $f"; else fail "demo wrote $f" "missing"; fi
done
expect "demo says where to open the report" '/report/index.html  *the attention report' "$OUT"
expect "the demo README says how to reproduce it" '^  attn train --task copy ' "$TMP/demo/README.txt"
expect "the demo README shows attn decode" '^  attn decode --model model.safetensors' "$TMP/demo/README.txt"
ok "info on the demo model (heads from its metadata)" info --model "$TMP/demo/model.safetensors"
expect "demo model: format recorded" '^format: libat' "$OUT"
ok "decode the demo's input with --dump" decode --model "$TMP/demo/model.safetensors" \
    --input "$TMP/demo/input.safetensors" --dump "$TMP/demo-again.safetensors" --threads 1
ok "it reproduces the demo's attention exactly" \
    compare "$TMP/demo/attention.safetensors" "$TMP/demo-again.safetensors" --atol 0
expect "all 13 demo tensors compared" '^13 tensors compared, 0 differ' "$OUT"
ok "a forward pass over the decoded ids" dump --model "$TMP/demo/model.safetensors" \
    --input "$TMP/demo/input.safetensors" --out "$TMP/demo-forward.safetensors"
ok "equals the decoded attention (atol 1e-5)" \
    compare "$TMP/demo/attention.safetensors" "$TMP/demo-forward.safetensors" --atol 1e-5
expect "11 tensors in common" '^11 tensors compared, 0 differ' "$OUT"
# a second run into the same folder replaces its files; a symbolic link there
# is followed (the link stays, the file it points to is replaced)
echo old >"$TMP/readme-target.txt"
rm "$TMP/demo/README.txt"
ln -s ../readme-target.txt "$TMP/demo/README.txt"
echo mine >"$TMP/demo/notes.txt"
ok "demo again into the same folder" demo --out "$TMP/demo" --epochs 1 --threads 1 --quiet
check "README.txt is still a link" [ -L "$TMP/demo/README.txt" ]
expect "the file it points to is the new README" '^attn demo - what is in this folder' "$TMP/readme-target.txt"
check "the folder's other files stay" [ -s "$TMP/demo/notes.txt" ]
check "its report is there" [ -s "$TMP/demo/report/index.html" ]
if ls -A "$TMP/demo" | grep -q tmp; then fail "no temporary folder left in the demo's" "$(ls -A "$TMP/demo")"; else pass "no temporary folder left in the demo's"; fi
mkdir "$TMP/demo-fifo"
mkfifo "$TMP/demo-fifo/model.safetensors"
GUARD=60
fails "demo refuses a FIFO in its folder before training" 1 demo --out "$TMP/demo-fifo" --epochs 1 --threads 1
GUARD=
expect "the message names it" "model.safetensors': it is a FIFO" "$ERR"
expect_not "no epoch was trained" '^epoch ' "$OUT"
fails "demo --out /dev/null" 1 demo --out /dev/null --epochs 1
expect_not "no epoch was trained for /dev/null" '^epoch ' "$OUT"
check "/dev/null is still a character device after demo" [ -c /dev/null ]
: >"$TMP/a-file"
fails "demo into a path that is a file" 1 demo --out "$TMP/a-file"
fails "demo with a bad --seed" 2 demo --out "$TMP/demo" --seed -1
fails "demo with --epochs 0" 2 demo --out "$TMP/demo" --epochs 0
fails "demo with an argument" 2 demo now

# ---------------------------------------------------------------- translate, eval --model, text in viz and stats
# A toy parallel corpus (Spanish -> English, subject verb object, 600
# training pairs) and a tiny model trained on it by attn train --task
# translate in about 2 s, one thread: it carries its tokenizer. 10 epochs
# (BLEU 98.5 on valid): at 6 it stood at the edge (BLEU 81-84), where a
# change of rounding decided whether "el rey" was "the king" yet.
TOY=$(dirname "$0")/data/toy_corpus.awk
TC=$TMP/toy
mkdir -p "$TC"
for side in src tgt; do
    LC_ALL=C awk -v n=600 -v seed=1 -v side=$side -f "$TOY" >"$TC/train.$side"
    LC_ALL=C awk -v n=40 -v seed=7 -v side=$side -f "$TOY" >"$TC/valid.$side"
done
ok "train a toy translation model" train --task translate --data "$TC" --vocab-size 100 \
    --layers 1 --d-model 32 --heads 2 --d-ff 64 --batch-tokens 600 --warmup 20 --lr 1 \
    --threads 1 --epochs 10 --quiet --out "$TMP/toy.safetensors"
TM="--model $TMP/toy.best.safetensors --threads 1"
# shellcheck disable=SC2086
ok "translate two sentences" translate $TM "el rey bendijo el agua." "maría oyó la casa."
lines=$(wc -l <"$OUT")
if [ "$lines" -eq 2 ]; then pass "one translation per sentence"; else fail "one translation per sentence" "$lines lines"; fi
expect "the toy model has learnt a word or two" '^the king ' "$OUT"
expect "the second sentence" '^mary ' "$OUT"
# shellcheck disable=SC2086
ok "translate --input, batch 32" translate $TM --input "$TC/valid.src"
cp "$OUT" "$TMP/tr32.txt"
lines=$(wc -l <"$OUT")
if [ "$lines" -eq 40 ]; then pass "40 lines in, 40 out"; else fail "40 lines in, 40 out" "$lines lines"; fi
# shellcheck disable=SC2086
ok "translate --input, batch 1" translate $TM --input "$TC/valid.src" --batch 1
check "the batch does not change a translation" cmp -s "$OUT" "$TMP/tr32.txt"
# shellcheck disable=SC2086
ok "translate --beam 1 (greedy)" translate $TM --input "$TC/valid.src" --beam 1 --batch 7
cp "$OUT" "$TMP/greedy.txt"
# shellcheck disable=SC2086
run translate $TM --input - --beam 1 <"$TC/valid.src"
check "--input - reads the standard input" cmp -s "$OUT" "$TMP/greedy.txt"
# shellcheck disable=SC2086
ok "translate --alpha 0 --beam 2" translate $TM "el rey bendijo el agua." --beam 2 --alpha 0

# --dump: the attention of the translations; attn dump over its src and tgt
# computes the same tensors (with the same number of threads: attn dump's
# default, so translate's too here)
printf 'el rey bendijo el agua.\njosé comió el pan.\nla madre miró la ciudad.\n' >"$TMP/three.src"
run translate --model "$TMP/toy.best.safetensors" --input "$TMP/three.src" --dump "$TMP/tr.safetensors" --viz "$TMP/trviz" --row 2
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$OUT")" -eq 3 ]; then pass "translate --dump --viz"; else fail "translate --dump --viz" "exit $rc"; fi
expect "stdout has the translations only" '^the king ' "$OUT"
expect "a note on stderr names the dump" 'translate: wrote .*tr.safetensors: the attention of 3 translations' "$ERR"
expect "and the report" 'translate: wrote [0-9]* files into .*trviz' "$ERR"
ok "the translate dump lists its tensors" compare "$TMP/tr.safetensors" "$TMP/tr.safetensors" --atol 0
expect "11 tensors: attn dump's 8 and src, tgt, ys" '^11 tensors compared, 0 differ' "$OUT"
expect "the translations' ids ys" '^  ys *\[3, ' "$OUT"
# shellcheck disable=SC2086
ok "attn dump over the translate dump's src and tgt" dump --model "$TMP/toy.best.safetensors" \
    --input "$TMP/tr.safetensors" --out "$TMP/tr-again.safetensors"
ok "reproduces its attention exactly" compare "$TMP/tr.safetensors" "$TMP/tr-again.safetensors" --atol 0
expect "all 8 of attn dump's tensors" '^8 tensors compared, 0 differ' "$OUT"
check "--viz wrote the explorer" [ -s "$TMP/trviz/index.html" ]
expect "subword pieces label the axes" '>▁el<' "$TMP/trviz/heatmap-cross-l1-h1.svg"
expect "</s> too" '>&lt;/s&gt;<' "$TMP/trviz/heatmap-cross-l1-h1.svg"
expect "the caption has the sentence in words" 'josé comió el pan. → ' "$TMP/trviz/index.html"

# --gate and --override (docs/interventions.md): gates of 1 are the plain
# model; the greedy translations' own attention as override gives them again
# shellcheck disable=SC2086
run translate $TM --input "$TMP/three.src"
cp "$OUT" "$TMP/three.out"
# shellcheck disable=SC2086
ok "translate --gate 'cross:*:*=1'" translate $TM --input "$TMP/three.src" --gate 'cross:*:*=1'
check "gates of 1 change no translation" cmp -s "$OUT" "$TMP/three.out"
# shellcheck disable=SC2086
run translate $TM --input "$TMP/three.src" --beam 1 --dump "$TMP/trg.safetensors"
cp "$OUT" "$TMP/three-greedy.out"
# shellcheck disable=SC2086
ok "translate --override with its own --dump (greedy)" translate $TM --input "$TMP/three.src" \
    --beam 1 --batch 2 --override "$TMP/trg.safetensors"
check "the same translations" cmp -s "$OUT" "$TMP/three-greedy.out"
# shellcheck disable=SC2086
ok "translate --gate 'enc_self:*:*=0' --gate 'cross:*:*=0'" translate $TM --input "$TMP/three.src" \
    --beam 1 --gate 'enc_self:*:*=0' --gate 'cross:*:*=0'
if cmp -s "$OUT" "$TMP/three-greedy.out"; then
    fail "without the source the translations change" "the same translations"
else
    pass "without the source the translations change"
fi
# shellcheck disable=SC2086
fails_with "translate --override with two sentences of three" 1 'must start (2, 2' translate $TM \
    "el rey bendijo el agua." "maría oyó la casa." --override "$TMP/trg.safetensors"
# shellcheck disable=SC2086
fails_with "translate --override --dump is refused" 2 'does not go with --dump' translate $TM \
    --input "$TMP/three.src" --override "$TMP/trg.safetensors" --dump "$TMP/x.safetensors"
# shellcheck disable=SC2086
fails_with "translate --gate out of range" 2 'layers 1\.\.1' translate $TM "hola." --gate 'cross:2:1=0'
# shellcheck disable=SC2086
fails_with "translate --gate head out of range" 2 'heads 1\.\.2' translate $TM "hola." --gate 'cross:1:3=0'

# a sentence longer than the model's 512 positions is cut, with one warning
long=$(i=0; while [ $i -lt 120 ]; do printf 'el niño comió el pan. '; i=$((i + 1)); done)
printf 'maría oyó la casa.\n%s\n%s\n' "$long" "$long" >"$TMP/long.src"
# shellcheck disable=SC2086
run translate $TM --input "$TMP/long.src" --beam 1
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$OUT")" -eq 3 ] && [ "$(wc -l <"$ERR")" -eq 1 ]; then
    pass "translate cuts long sentences, with one warning"
else
    fail "translate cuts long sentences, with one warning" "exit $rc"
fi
expect "the warning names the count and the first line" \
    "translate: warning: 2 sentences are longer than the model's 512 positions.*line 2" "$ERR"

# eval --model: translate, then score as --hyp does
# shellcheck disable=SC2086
ok "eval --model" eval $TM --src "$TC/valid.src" --ref "$TC/valid.tgt" --hyp-out "$TMP/hyp.txt"
expect "the BLEU line" '^BLEU = [0-9.]* [0-9./]* (BP = ' "$OUT"
expect "the chrF line" '^chrF2 = ' "$OUT"
expect "the speed line" '^translated 40 sentences in .* sentences/s), beam 4, alpha 0.6$' "$OUT"
head -n 2 "$OUT" >"$TMP/eval-model.txt"
check "--hyp-out has the 40 translations" [ "$(wc -l <"$TMP/hyp.txt")" -eq 40 ]
check "they are attn translate's" cmp -s "$TMP/hyp.txt" "$TMP/tr32.txt"
ok "eval --hyp of them" eval --hyp "$TMP/hyp.txt" --ref "$TC/valid.tgt"
check "scores the same" cmp -s "$OUT" "$TMP/eval-model.txt"
# shellcheck disable=SC2086
ok "eval --model --json --beam 1" eval $TM --src "$TC/valid.src" --ref "$TC/valid.tgt" --json --beam 1
for k in bleu chrf beam alpha sentences seconds sentences_per_second; do
    expect "eval --json has $k" "^  \"$k\": " "$OUT"
done
expect "40 sentences" '^  "sentences": 40,' "$OUT"

# bad input
printf 'uno\ndos\n' >"$TMP/two.txt"
printf 'el rey\n\303\050 amó\n' >"$TMP/bad-utf8.src"
printf 'el rey\n\nmaría\n' >"$TMP/empty-line.src"
: >"$TMP/empty.src"
fails "translate a model without a tokenizer" 1 translate --model "$TMP/copy.safetensors" "hola"
expect "says it has none, and where they come from" "has no tokenizer.*attn train --task translate" "$ERR"
# a copy model (vocabulary 11) given the toy model's tokenizer (100 pieces)
# (libat writes the header as {"__metadata__":{...: the entry goes first)
n=$(od -An -t u8 -N 8 "$TMP/toy.best.safetensors" | tr -d ' ')
n2=$(od -An -t u8 -N 8 "$TMP/copy.safetensors" | tr -d ' ')
{
    printf '{"__metadata__":{'
    tail -c +9 "$TMP/toy.best.safetensors" | head -c "$n" | grep -o '"tokenizer":"[^"]*"' | tr -d '\n'
    printf ','
    tail -c +9 "$TMP/copy.safetensors" | head -c "$n2" | tail -c +18
} >"$TMP/mix.json"
n=$n2
m=$(wc -c <"$TMP/mix.json")
# shellcheck disable=SC2059
printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((m % 256)) $((m / 256 % 256)) $((m / 65536 % 256)) $((m / 16777216)))\\000\\000\\000\\000" >"$TMP/mix.safetensors"
cat "$TMP/mix.json" >>"$TMP/mix.safetensors"
tail -c +$((9 + n)) "$TMP/copy.safetensors" >>"$TMP/mix.safetensors"
fails "translate, a tokenizer of another vocabulary" 1 translate --model "$TMP/mix.safetensors" "hola"
expect "names both sizes" "100 pieces but the model's source vocabulary has 11 ids" "$ERR"
# shellcheck disable=SC2086
fails "translate invalid UTF-8" 1 translate $TM --input "$TMP/bad-utf8.src"
expect "names the file, line and byte" "bad-utf8.src: line 2 is not valid UTF-8 (byte 1, 0xc3)" "$ERR"
# shellcheck disable=SC2086
fails "translate an empty line" 1 translate $TM --input "$TMP/empty-line.src"
expect "names the line" "empty-line.src: line 2 is empty" "$ERR"
# shellcheck disable=SC2086
fails "translate an empty file" 1 translate $TM --input "$TMP/empty.src"
# shellcheck disable=SC2086
fails "translate an empty TEXT" 2 translate $TM "el rey" " "
expect "names it" "text 2 is empty" "$ERR"
# shellcheck disable=SC2086
fails "translate a missing file" 1 translate $TM --input "$TMP/nope.src"
expect "names it" "nope.src" "$ERR"
fails "translate a missing model" 1 translate --model "$TMP/nope.safetensors" "hola"
# shellcheck disable=SC2086
fails "translate --beam 0" 2 translate $TM --beam 0 "el rey"
# shellcheck disable=SC2086
fails "translate --alpha -1" 2 translate $TM --alpha -1 "el rey"
# shellcheck disable=SC2086
fails "translate --batch 0" 2 translate $TM --batch 0 "el rey"
# shellcheck disable=SC2086
fails "translate, a length limit below 2 ids" 2 translate $TM --len-a 1 --len-b 0 "el rey"
# shellcheck disable=SC2086
fails "translate without a sentence" 2 translate $TM
# shellcheck disable=SC2086
fails "translate TEXT and --input" 2 translate $TM "el rey" --input "$TMP/two.txt"
# shellcheck disable=SC2086
fails "translate --row without --viz" 2 translate $TM "el rey" --row 2
# shellcheck disable=SC2086
fails "translate --row past the sentences" 2 translate $TM "el rey" --viz "$TMP/v2" --row 2
check "nothing written then" [ ! -e "$TMP/v2" ]
# shellcheck disable=SC2086
fails "translate --dump into a folder, before the work" 1 translate $TM "el rey" --dump "$TMP"
check "translate wrote nothing on stdout then" [ ! -s "$OUT" ]
fails "translate without --model" 2 translate "el rey"
# shellcheck disable=SC2086
fails "eval --model, line counts differ" 1 eval $TM --src "$TC/valid.src" --ref "$TMP/two.txt"
expect "gives both counts" "has 40 lines but --ref .*two.txt has 2" "$ERR"
# shellcheck disable=SC2086
fails "eval --model, an empty source line" 1 eval $TM --src "$TMP/empty-line.src" --ref "$TMP/two.txt"
# shellcheck disable=SC2086
fails "eval --model with --hyp" 2 eval $TM --src "$TC/valid.src" --ref "$TC/valid.tgt" --hyp "$TMP/hyp.txt"
fails "eval --src without --model" 2 eval --src "$TC/valid.src" --ref "$TC/valid.tgt"
fails "eval --beam without --model" 2 eval --hyp "$TMP/hyp.txt" --ref "$TC/valid.tgt" --beam 2
# shellcheck disable=SC2086
fails "eval --model --beam 0" 2 eval $TM --src "$TC/valid.src" --ref "$TC/valid.tgt" --beam 0
fails "eval --model without a tokenizer" 1 eval --model "$TMP/copy.safetensors" --src "$TC/valid.src" --ref "$TC/valid.tgt"

# attn viz and attn stats read text through the model's tokenizer
TV="--model $TMP/toy.best.safetensors"
# shellcheck disable=SC2086
ok "viz --src-text (translated greedily)" viz $TV --src-text "josé comió el pan." --out "$TMP/vtext"
expect "prints the translation" '^translation: joseph ' "$OUT"
expect "and its pieces" '^pieces: <s> .* </s>$' "$OUT"
expect "pieces on the axes" '>▁el<' "$TMP/vtext/heatmap-cross-l1-h1.svg"
expect "the sentence and its translation in the caption" \
    'greedy translation · josé comió el pan. → joseph ' "$TMP/vtext/index.html"
# shellcheck disable=SC2086
ok "viz --src-text --tgt-text (teacher forcing)" viz $TV --src-text "josé comió el pan." \
    --tgt-text "joseph ate the bread." --out "$TMP/vtext2"
expect "teacher forcing over the given translation" 'teacher forcing · josé comió el pan. → joseph ate the bread.' "$TMP/vtext2/index.html"
# shellcheck disable=SC2086
ok "stats --src-text --json" stats $TV --src-text "josé comió el pan." --json "$TMP/stext.json"
expect "the table has cross-attention" '^cross ' "$OUT"
expect "the JSON names the sentence" '"src_text":.*"josé comió el pan."' "$TMP/stext.json"
expect "and the translation" '"tgt_text":.*"joseph ' "$TMP/stext.json"
# shellcheck disable=SC2086
ok "stats --src-text --tgt-text" stats $TV --src-text "maría" --tgt-text "mary"
# shellcheck disable=SC2086
fails "viz --src-text, a model without a tokenizer" 1 viz --model "$TMP/copy.safetensors" --src-text "hola" --out "$TMP/vx"
expect "says so" "has no tokenizer" "$ERR"
# shellcheck disable=SC2086
fails "stats --src-text with --src" 2 stats $TV --src-text "maría" --src "1 2"
# shellcheck disable=SC2086
fails "stats --src-text with --decode" 2 stats $TV --src-text "maría" --decode
# shellcheck disable=SC2086
fails "stats --tgt-text alone" 2 stats $TV --tgt-text "mary"
# shellcheck disable=SC2086
fails "stats --src-text, invalid UTF-8" 2 stats $TV --src-text "$(printf 'mar\303')"
# shellcheck disable=SC2086
fails "viz --src-text, a vocabulary mismatch" 1 viz --model "$TMP/mix.safetensors" --src-text "hola" --out "$TMP/vx"
check "viz wrote nothing on failure" [ ! -e "$TMP/vx" ]

printf 'cli: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
