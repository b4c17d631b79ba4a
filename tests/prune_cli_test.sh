#!/bin/sh
# Tests of attn prune, pruning curves (CTest test `prune_cli`):
#   sh tests/prune_cli_test.sh path/to/attn path/to/tests/data
# On a copy-task model trained here in a few seconds: 11 points, 0% the
# unpruned metric, 100% finite, the importance order lists every head once,
# --json, --viz, --reestimate, bad input. Needs no numpy (json only). Exits 1 if any failed.
set -u

ATTN=${1:?usage: prune_cli_test.sh ATTN DATA_DIR}
DATA=${2:?usage: prune_cli_test.sh ATTN DATA_DIR}
TINY=$DATA/golden/tiny
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-prune

need_golden prune_cli_test.sh
HAVE_PY=
python3 -c 'import json' 2>/dev/null && HAVE_PY=1

# The copy task's data: 16 rows of 10 I32 ids, 1 then ids 1..10 from an LCG;
# the target is the source.
rows=16 len=10 bytes= x=7 i=0
while [ $i -lt $((rows * len)) ]; do
    if [ $((i % len)) -eq 0 ]; then
        v=1
    else
        x=$(((x * 1103515245 + 12345) % 2147483648))
        v=$((x / 65536 % 10 + 1))
    fi
    bytes="$bytes$(printf '\\%03o' "$v")\\000\\000\\000"
    i=$((i + 1))
done
nb=$((rows * len * 4))
mkst "$TMP/batch.safetensors" "{\"src\":{\"dtype\":\"I32\",\"shape\":[$rows,$len],\"data_offsets\":[0,$nb]},\"tgt\":{\"dtype\":\"I32\",\"shape\":[$rows,$len],\"data_offsets\":[$nb,$((2 * nb))]}}" "$bytes$bytes"
B=$TMP/batch.safetensors

# ---------------------------------------------------------------- help
ok "attn --help" --help
expect "attn --help lists prune" '^  prune ' "$OUT"
ok "attn prune --help" prune --help
expect "prune --help is its usage" '^usage: attn prune' "$OUT"

# ---------------------------------------------------------------- a tiny copy model
# 14 epochs: it then copies every row of the batch (10 did until the key
# biases' gradients became exactly 0 in 64a2cdd, a different trajectory that
# copies 15 of the 16 rows after 10 epochs and all of them from 12 on)
ok "train a tiny copy model" train --task copy --d-model 32 --heads 4 --d-ff 64 --lr 1 \
    --warmup 100 --threads 1 --epochs 14 --out "$TMP/copy.safetensors"
M="--model $TMP/copy.safetensors --input $B --threads 1"

# shellcheck disable=SC2086
ok "attn prune on the copy model" prune $M
cp "$OUT" "$TMP/text"
n=$(grep -c '^ *[0-9]*%  *[0-9]*  *[0-9.]*  *[0-9.]* +- [0-9.]*$' "$TMP/text")
if [ "$n" -eq 11 ]; then pass "the table has 11 points"; else fail "the table has 11 points" "$n rows"; fi
expect "the table starts at 0%, 0 heads" '^      0%        0 ' "$TMP/text"
expect "the table ends at 100%, 24 heads" '^    100%       24 ' "$TMP/text"
expect "the per-kind table" '^cross  ' "$TMP/text"
expect "it names the most sensitive kind" '^most sensitive: ' "$TMP/text"
# the unpruned metric: attn prune with --seeds 1 agrees at 0%, and the model copies
first=$(sed -n 's/^      0%        0  *\([0-9.]*\) .*/\1/p' "$TMP/text")
if [ "$first" = "1.0000" ]; then pass "0% removed: every row copied ($first)"; else fail "0% removed: every row copied" "got '$first'"; fi
# shellcheck disable=SC2086
ok "--seeds 1 --seed 9" prune $M --seeds 1 --seed 9
expect "--seeds 1: sd 0 at every point" '^     50%       12  *[0-9.]*  *[0-9.]* +- 0.0000$' "$OUT"

# shellcheck disable=SC2086
ok "attn prune --json" prune $M --json
cp "$OUT" "$TMP/json"
# shellcheck disable=SC2086
ok "attn prune on the golden tiny model" prune --model "$TINY/model.safetensors" --heads 4 \
    --input "$TINY/io.safetensors" --seeds 2
if [ -n "$HAVE_PY" ]; then
    if python3 - "$TMP/json" <<'PY' >"$TMP/py" 2>&1; then
import json, math, sys
d = json.load(open(sys.argv[1]))
assert d["metric"] == "copy" and d["heads"] == 24 and d["seeds"] == 5, d
s = d["steps"]
assert len(s) == 11, len(s)
assert [x["percent"] for x in s] == list(range(0, 101, 10))
assert [x["removed"] for x in s] == [(k * 24 + 5) // 10 for k in range(11)]
for x in s:
    assert set(x) == {"removed", "percent", "importance", "random_mean", "random_sd"}
    assert all(math.isfinite(x[k]) for k in x), x
assert s[0]["importance"] == s[0]["random_mean"] == 1 and s[0]["random_sd"] == 0
assert s[10]["importance"] == s[10]["random_mean"]   # every head removed: one model
o = [tuple(h) for h in d["order"]]
want = {(k, l, h) for k in ("enc_self", "dec_self", "cross") for l in (1, 2) for h in range(1, 5)}
assert len(o) == 24 and set(o) == want, o
imp = d["importance"]
assert len(imp) == 24 and imp == sorted(imp), imp
assert [k["kind"] for k in d["kinds"]] == ["enc_self", "dec_self", "cross"]
PY
        pass "--json parses: 11 steps, every head once in the order, ascending importance"
    else
        fail "--json parses" "$(head -n 5 "$TMP/py")"
    fi
else
    pass "--json (skipped: no python3)"
fi

# ---------------------------------------------------------------- --reestimate
# shellcheck disable=SC2086
ok "attn prune --reestimate" prune $M --reestimate --seeds 2
expect "--reestimate: a re-estimated column" '^ removed    heads    importance  re-estimated     random mean +- sd$' "$OUT"
n=$(grep -c '^ *[0-9]*%  *[0-9]*  *[0-9.]*  *[0-9.]*  *[0-9.]* +- [0-9.]*$' "$OUT")
if [ "$n" -eq 11 ]; then pass "--reestimate: 11 points"; else fail "--reestimate: 11 points" "$n rows"; fi
expect "--reestimate: the order of removal" '^re-estimated order (the order of removal):$' "$OUT"
# shellcheck disable=SC2086
ok "attn prune --reestimate --json" prune $M --reestimate --json --seeds 2
if [ -n "$HAVE_PY" ]; then
    if python3 - "$OUT" "$TMP/json" <<'PY' >"$TMP/py" 2>&1; then
import json, sys
d = json.load(open(sys.argv[1]))
once = json.load(open(sys.argv[2]))
s = d["steps"]
assert len(s) == 11 and all(set(x) == {"removed", "percent", "importance", "reestimated",
                                      "random_mean", "random_sd"} for x in s), s
# the importance curve and order are those without --reestimate
assert [x["importance"] for x in s] == [x["importance"] for x in once["steps"]]
assert d["order"] == once["order"]
r = [tuple(h) for h in d["reestimated_order"]]
assert len(r) == 24 and set(r) == {tuple(h) for h in d["order"]}, r
# the first step's heads come from the same gradient: the same two heads
assert d["reestimated_order"][:2] == d["order"][:2], (r[:2], d["order"][:2])
assert s[0]["reestimated"] == s[0]["importance"] and s[10]["reestimated"] == s[10]["importance"]
PY
        pass "--reestimate --json: every head once, the same ends and first step"
    else
        fail "--reestimate --json" "$(head -n 5 "$TMP/py")"
    fi
fi
# shellcheck disable=SC2086
ok "attn prune --reestimate --viz" prune $M --reestimate --seeds 2 --viz "$TMP/rviz"
expect "prune.svg has the re-estimated series" 'class="series-reestimated"' "$TMP/rviz/prune.svg"
n=$(grep -c '<circle ' "$TMP/rviz/prune.svg")
if [ "$n" -eq 33 ]; then pass "--reestimate: 11 points per series"; else fail "--reestimate: 11 points per series" "$n circles"; fi

# ---------------------------------------------------------------- --viz
# shellcheck disable=SC2086
ok "attn prune --viz" prune $M --viz "$TMP/viz"
expect "--viz says what it wrote" '^wrote .*/prune.svg$' "$OUT"
S=$TMP/viz/prune.svg
expect "prune.svg is an SVG" '^<svg xmlns="http://www.w3.org/2000/svg"' "$S"
expect "prune.svg has the importance series" 'class="series-importance"' "$S"
expect "prune.svg has the random series" 'class="series-random"' "$S"
expect "prune.svg has the sd band" 'class="random-band"' "$S"
n=$(grep -c '<circle ' "$S")
if [ "$n" -eq 22 ]; then pass "prune.svg: 11 points per series"; else fail "prune.svg: 11 points per series" "$n circles"; fi
if [ -n "$HAVE_PY" ]; then
    if python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$S" 2>"$TMP/py"; then
        pass "prune.svg is well-formed XML"
    else
        fail "prune.svg is well-formed XML" "$(head -n 3 "$TMP/py")"
    fi
fi

# ---------------------------------------------------------------- bad input
# shellcheck disable=SC2086
fails "--metric nope" 2 prune $M --metric nope
# shellcheck disable=SC2086
fails "--seeds 0" 2 prune $M --seeds 0
# shellcheck disable=SC2086
fails "--metric bleu without --data" 2 prune $M --metric bleu
expect "it says --data is needed" 'needs --data' "$ERR"
# shellcheck disable=SC2086
fails "--data with the copy metric" 2 prune $M --data "$TMP"
fails "no --input" 2 prune --model "$TMP/copy.safetensors"
# shellcheck disable=SC2086
fails "--metric bleu on a model without a tokenizer" 1 prune $M --metric bleu --data "$TMP"
# shellcheck disable=SC2086
fails "a missing input" 1 prune --model "$TMP/copy.safetensors" --input "$TMP/none.safetensors"

echo "prune_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
