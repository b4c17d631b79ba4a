#!/bin/sh
# mpirun -np K attn train (CTest test `mpi_cli`, registered when attn is built
# with MPI): the copy task trained by 2 ranks equals 1 rank within 1e-5 (the
# largest difference over every parameter, read here from the checkpoints by
# Python's standard library), dropout on; 1 rank through MPI is the plain run
# byte for byte; a run of 2 ranks resumed by 1 equals an uninterrupted one; a
# rank that fails, or that alone gets SIGTERM, ends the whole run instead of
# leaving the others waiting; translation likewise; attn stats --input merged
# over 2 ranks equals one process's, attn dump's shards hold its rows, and attn
# align-eval over 2 ranks prints one process's JSON.
#   sh tests/mpi_cli_test.sh path/to/attn [mpirun]
set -u

ATTN=${1:?usage: mpi_cli_test.sh ATTN [MPIRUN]}
MPIRUN=${2:-mpirun}
# pass, fail, run, ok, fails, fails_with, expect, expect_not, check
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-mpi

# attn was built with MPI, so mpirun must be there: its absence is a failure,
# not a skip (cmake/dev.sh deps installs openmpi-bin)
if ! command -v "$MPIRUN" >/dev/null 2>&1; then
    fail "mpirun" "'$MPIRUN' not found: install openmpi-bin (cmake/dev.sh deps)"
    printf 'mpi_cli: %d passed, %d failed\n' "$passed" "$failed"
    exit 1
fi

# In the ASan build: Open MPI leaves memory allocated at MPI_Finalize and
# unloads the components that allocated it, so LeakSanitizer cannot name them
# and no suppression can single them out. Leak detection is off in the ranks;
# every other ASan and UBSan check stays on, and the runs without mpirun here
# (and the reduce suite, at_train_step_reduce without MPI) keep it.
RANK_ASAN=
if [ -n "${ASAN_OPTIONS:-}" ]; then
    RANK_ASAN=$(printf '%s' "$ASAN_OPTIONS" | sed 's/detect_leaks=1/detect_leaks=0/')
fi

# launch ARGS...: mpirun ARGS, stopped after 120 s
launch() {
    if [ -n "$RANK_ASAN" ]; then
        ASAN_OPTIONS=$RANK_ASAN timeout 120 "$MPIRUN" --allow-run-as-root --oversubscribe "$@"
    else
        timeout 120 "$MPIRUN" --allow-run-as-root --oversubscribe "$@"
    fi
}

# mpi K ARGS...: mpirun -np K attn ARGS; $rc, $OUT, $ERR
mpi() {
    k=$1
    shift
    launch -np "$k" "$ATTN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
}

# mpi_ok NAME K ARGS...: exits 0.
mpi_ok() {
    name=$1
    shift
    mpi "$@"
    if [ "$rc" -eq 0 ]; then pass "$name"; else fail "$name" "exit status $rc"; fi
}

# near NAME A B TOL: every parameter of checkpoints A and B (F32 tensors; not
# the adam.* moments) within TOL; prints the largest difference.
near() {
    if python3 - "$2" "$3" "$4" >"$TMP/near" 2>&1 <<'EOF'
import json, struct, sys
from array import array

def tensors(path):
    with open(path, 'rb') as f:
        b = f.read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for name, t in head.items():
        if name == '__metadata__' or name.startswith('adam.') or t['dtype'] != 'F32':
            continue
        lo, hi = t['data_offsets']
        a = array('f')
        a.frombytes(b[8 + n + lo:8 + n + hi])
        if sys.byteorder != 'little':
            a.byteswap()
        out[name] = a
    return out

a, b, tol = tensors(sys.argv[1]), tensors(sys.argv[2]), float(sys.argv[3])
assert a.keys() == b.keys() and a, 'different tensors'
worst, where = 0.0, ''
for name in a:
    assert len(a[name]) == len(b[name]), name
    for x, y in zip(a[name], b[name]):
        if abs(x - y) > worst:
            worst, where = abs(x - y), name
print('largest |difference| over %d tensors: %.3g (%s)' % (len(a), worst, where or '-'))
sys.exit(0 if worst <= tol else 1)
EOF
    then
        pass "$1: $(cat "$TMP/near")"
    else
        fail "$1" "$(cat "$TMP/near")"
    fi
}

# a small copy task, default dropout (0.1, attention 0.1), lr and warmup:
# 8 steps of 15 rows (shards of 8 and 7)
SMALL="--epochs 2 --batches 4 --eval-batches 1 --batch-size 15 --d-model 32 --heads 4"
SMALL="$SMALL --d-ff 64 --heldout 0 --threads 1"

# shellcheck disable=SC2086
ok "plain attn train" train $SMALL --out "$TMP/plain.safetensors"
# shellcheck disable=SC2086
mpi_ok "one rank through MPI" 1 train $SMALL --out "$TMP/k1.safetensors"
check "one rank through MPI is the plain run, byte for byte" \
    cmp -s "$TMP/plain.safetensors" "$TMP/k1.safetensors"

# shellcheck disable=SC2086
mpi_ok "two ranks" 2 train $SMALL --out "$TMP/k2.safetensors"
expect "says how the batch is split" "^data-parallel over 2 MPI ranks: each trains on 7 or 8 rows" "$OUT"
expect "one rank prints the epochs" "^epoch   2/2" "$OUT"
check "prints them once" [ "$(grep -c '^epoch ' "$OUT")" -eq 2 ]
near "two ranks equal one within 1e-5 after 8 steps" \
    "$TMP/plain.safetensors" "$TMP/k2.safetensors" 1e-5
check "two ranks do not equal one bit for bit (the sums' order differs)" \
    sh -c "! cmp -s '$TMP/plain.safetensors' '$TMP/k2.safetensors'"

# more ranks than rows: rank 1 holds none and still takes every step
B1="--epochs 1 --batches 3 --eval-batches 0 --batch-size 1 --d-model 32 --heads 4"
B1="$B1 --d-ff 64 --heldout 0 --threads 1 --quiet"
# shellcheck disable=SC2086
ok "a batch of one row" train $B1 --out "$TMP/b1.safetensors"
# shellcheck disable=SC2086
mpi_ok "a batch of one row over two ranks" 2 train $B1 --out "$TMP/b1k2.safetensors"
near "one row over two ranks equals one rank" "$TMP/b1.safetensors" "$TMP/b1k2.safetensors" 1e-5

# two ranks for the first epoch, one for the second
HALF=$(printf '%s\n' "$SMALL" | sed 's/--epochs 2/--epochs 1/')
# shellcheck disable=SC2086
mpi_ok "epoch 1 on two ranks" 2 train $HALF --out "$TMP/r.safetensors"
# shellcheck disable=SC2086
ok "epoch 2 resumed on one" train $SMALL --resume "$TMP/r.safetensors" \
    --out "$TMP/r.safetensors"
near "resumed with another K equals the uninterrupted run within 1e-5" \
    "$TMP/plain.safetensors" "$TMP/r.safetensors" 1e-5
# and one rank's checkpoint resumed by two
# shellcheck disable=SC2086
ok "epoch 1 on one rank" train $HALF --out "$TMP/s.safetensors"
# shellcheck disable=SC2086
mpi_ok "epoch 2 resumed on two" 2 train $SMALL --resume "$TMP/s.safetensors" \
    --out "$TMP/s.safetensors"
near "and the other way round" "$TMP/plain.safetensors" "$TMP/s.safetensors" 1e-5

# a rank that cannot start (rank 1 resumes from a missing file): the run ends
# with a message, not a hang (rank 0 would wait in its first reduction)
cat >"$TMP/rank.sh" <<EOF
#!/bin/sh
# rank 1 resumes from a file that does not exist
if [ "\$OMPI_COMM_WORLD_RANK" = 1 ]; then
    exec "$ATTN" train $SMALL --out "$TMP/f.safetensors" --resume "$TMP/missing.safetensors"
fi
exec "$ATTN" train $SMALL --out "$TMP/f.safetensors"
EOF
launch -np 2 sh "$TMP/rank.sh" \
    >"$OUT" 2>"$ERR" </dev/null
rc=$?
check "a failing rank fails the run (exit status $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
expect "the failing rank says why" "missing.safetensors" "$ERR"
expect "and that every rank stops" "^attn: rank 1 of 2 failed (exit status 1): stopping every rank" "$ERR"
check "no checkpoint from the failed run" [ ! -e "$TMP/f.safetensors" ]

# SIGTERM to rank 1 alone, 3 s in (the run would take minutes): both stop
# after the same step, rank 0 saves
cat >"$TMP/term.sh" <<EOF
#!/bin/sh
"$ATTN" train --epochs 500 --batches 20 --eval-batches 0 --batch-size 8 --d-model 32 \
    --heads 4 --d-ff 64 --heldout 0 --threads 1 --out "$TMP/t.safetensors" &
pid=\$!
if [ "\$OMPI_COMM_WORLD_RANK" = 1 ]; then
    sleep 3
    kill -TERM \$pid
fi
wait \$pid
EOF
launch -np 2 sh "$TMP/term.sh" \
    >"$OUT" 2>"$ERR" </dev/null
rc=$?
check "SIGTERM to one rank stops the run (exit status $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
expect "rank 0 saved and says how to resume" "interrupted by SIGTERM after step .*resume with:" "$ERR"
check "the checkpoint is there" [ -s "$TMP/t.safetensors" ]

# translation: a toy parallel corpus (subject verb object, 300 pairs), batches
# of up to 300 tokens cut by length (the rows of every batch split over ranks)
TOY=$(dirname "$0")/data/toy_corpus.awk
TC=$TMP/toy
mkdir -p "$TC"
for side in src tgt; do
    LC_ALL=C awk -v n=300 -v seed=1 -v side=$side -f "$TOY" >"$TC/train.$side"
    LC_ALL=C awk -v n=10 -v seed=7 -v side=$side -f "$TOY" >"$TC/valid.$side"
done
TR="--task translate --vocab-size 100 --layers 1 --d-model 32 --heads 2 --d-ff 64"
TR="$TR --batch-tokens 300 --warmup 400 --threads 1 --epochs 2 --quiet"
# shellcheck disable=SC2086
ok "translation, plain" train $TR --data "$TC" --out "$TMP/tp.safetensors"
# shellcheck disable=SC2086
mpi_ok "translation, two ranks" 2 train $TR --data "$TC" --out "$TMP/t2.safetensors"
expect "says it is data-parallel" "^data-parallel over 2 MPI ranks" "$OUT"
near "translation: two ranks equal one within 1e-5" "$TMP/tp.safetensors" \
    "$TMP/t2.safetensors" 1e-5
check "rank 0 wrote the best model" [ -s "$TMP/t2.best.safetensors" ]
# a rank with other data: refused before the first step, not trained apart
cp -r "$TC" "$TMP/other"
printf 'el rey comió el pan.\n' >>"$TMP/other/train.src"
printf 'the king ate the bread.\n' >>"$TMP/other/train.tgt"
cat >"$TMP/data.sh" <<EOF
#!/bin/sh
d=$TC
if [ "\$OMPI_COMM_WORLD_RANK" = 1 ]; then d=$TMP/other; fi
exec "$ATTN" train $TR --data "\$d" --out "$TMP/td.safetensors"
EOF
launch -np 2 sh "$TMP/data.sh" \
    >"$OUT" 2>"$ERR" </dev/null
rc=$?
check "ranks with different data fail (exit status $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
expect "and say so" "the ranks hold different training batches" "$ERR"

# attn stats --input over 2 ranks: each runs its rows, the means over the valid
# rows are merged as sums (mean x rows) over the rows of all; against one
# process within 1e-6 (the rows' own numbers round alike but for the products
# of a shorter batch), the row counts exactly
ids() { for v in "$@"; do printf '\\%03o\\000\\000\\000' "$v"; done; }
SRC="1 3 5 7 2 4  1 2 2 9 0 0  1 8 6 4 10 0  1 5 5 5 5 5  1 9 0 0 0 0"
TGT="1 3 5 7 2  1 2 2 9 0  1 8 6 4 10  1 5 5 5 5  1 9 0 0 0"
# shellcheck disable=SC2086
mkst "$TMP/batch.safetensors" \
    '{"src":{"dtype":"I32","shape":[5,6],"data_offsets":[0,120]},"tgt":{"dtype":"I32","shape":[5,5],"data_offsets":[120,220]}}' \
    "$(ids $SRC)$(ids $TGT)"
ok "stats, one process" stats --model "$TMP/plain.safetensors" --input "$TMP/batch.safetensors" \
    --json "$TMP/s1.json"
mpi_ok "stats, two ranks" 2 stats --model "$TMP/plain.safetensors" \
    --input "$TMP/batch.safetensors" --json "$TMP/s2.json"
if python3 - "$TMP/s1.json" "$TMP/s2.json" >"$TMP/near" 2>&1 <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a['batch'] == b['batch'] == 5, 'batch'
assert len(a['heads']) == len(b['heads']) == 3 * 2 * 4, 'heads'
worst = 0.0
for x, y in zip(a['heads'], b['heads']):
    assert (x['kind'], x['layer'], x['head']) == (y['kind'], y['layer'], y['head'])
    assert x['rows'] == y['rows'], 'rows of %s' % x
    for k in ('entropy', 'entropy_norm', 'max', 'dispersion', 'topk_mass', 'distance'):
        worst = max(worst, abs(x[k] - y[k]))
for kind in a['js']:
    for la, lb in zip(a['js'][kind], b['js'][kind]):
        for ra, rb in zip(la, lb):
            worst = max(worst, max(abs(u - v) for u, v in zip(ra, rb)))
print('largest |difference| %.3g over %d heads and their JS' % (worst, len(a['heads'])))
sys.exit(0 if worst <= 1e-6 else 1)
EOF
then
    pass "stats merged over two ranks equal one process's: $(cat "$TMP/near")"
else
    fail "stats merged over two ranks equal one process's" "$(cat "$TMP/near")"
fi
mpi "3" stats --model "$TMP/plain.safetensors" --src "1 2 3"
check "stats of --src under mpirun is refused (exit status $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
expect "and says why" "under mpirun the ranks share the rows of --input" "$ERR"

# attn dump --input over 2 ranks: a file per shard (F.r-of-K.safetensors, its
# rows of every tensor) and rank 0's index (F.index.json); each shard against
# the same rows of one process's dump within 1e-6
ok "dump, one process" dump --model "$TMP/plain.safetensors" --input "$TMP/batch.safetensors" \
    --out "$TMP/d1.safetensors"
mpi_ok "dump, two ranks" 2 dump --model "$TMP/plain.safetensors" \
    --input "$TMP/batch.safetensors" --out "$TMP/d2.safetensors"
check "no file at --out itself" [ ! -e "$TMP/d2.safetensors" ]
if python3 - "$TMP/d1.safetensors" "$TMP/d2.index.json" >"$TMP/near" 2>&1 <<'EOF'
import json, os, struct, sys
from array import array

def read(path):
    with open(path, 'rb') as f:
        b = f.read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for name, t in head.items():
        if name == '__metadata__':
            continue
        assert t['dtype'] == 'F32', name
        a = array('f')
        a.frombytes(b[8 + n + t['data_offsets'][0]:8 + n + t['data_offsets'][1]])
        out[name] = (t['shape'], a)
    return head['__metadata__'], out

_, whole = read(sys.argv[1])
index = json.load(open(sys.argv[2]))
assert index['format'] == 'attn-dump-index' and index['batch'] == 5, index
assert [(s['row_offset'], s['rows']) for s in index['shards']] == [(0, 3), (3, 2)], index
worst = 0.0
for r, s in enumerate(index['shards']):
    meta, part = read(os.path.join(os.path.dirname(sys.argv[2]), s['file']))
    assert (meta['shard'], meta['shards'], meta['row_offset'], meta['batch']) == \
        (str(r), '2', str(s['row_offset']), str(s['rows'])), meta
    assert part.keys() == whole.keys(), 'tensors'
    for name, (shape, a) in part.items():
        wshape, w = whole[name]
        assert shape[0] == s['rows'] and shape[1:] == wshape[1:], name
        row = len(a) // shape[0]
        ref = w[s['row_offset'] * row:(s['row_offset'] + s['rows']) * row]
        worst = max([worst] + [abs(x - y) for x, y in zip(a, ref)])
print('largest |difference| %.3g over %d tensors of 2 shards' % (worst, len(whole)))
sys.exit(0 if worst <= 1e-6 else 1)
EOF
then
    pass "each shard holds the one-process dump's rows: $(cat "$TMP/near")"
else
    fail "each shard holds the one-process dump's rows" "$(cat "$TMP/near")"
fi

# attn align-eval over 2 ranks: each scores its contiguous share of the lines
# and the counts are summed over the ranks, so the JSON is one process's, byte
# for byte (the toy's words align one to one: link i-i for every word i)
awk '{ s = ""; for (i = 0; i < NF; i++) s = s (i ? " " : "") i "-" i; print s }' \
    "$TC/valid.src" >"$TC/valid.align"
ok "align-eval, one process" align-eval --model "$TMP/t2.safetensors" --data "$TC" \
    --split valid --json --threads 1
cp "$OUT" "$TMP/al1.json"
mpi_ok "align-eval, two ranks" 2 align-eval --model "$TMP/t2.safetensors" --data "$TC" \
    --split valid --json --threads 1
check "align-eval merged over two ranks is one process's, byte for byte" \
    cmp -s "$OUT" "$TMP/al1.json"
expect "all 10 lines scored" '^{"lines": 10,' "$OUT"
mpi_ok "align-eval --limit 3 on two ranks (2 lines and 1)" 2 align-eval \
    --model "$TMP/t2.safetensors" --data "$TC" --split valid --json --threads 1 --limit 3
expect "3 lines scored" '^{"lines": 3,' "$OUT"

printf 'mpi_cli: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
