#!/bin/sh
# Tests of attn align-eval and of the gold links of attn corpus bible (CTest
# test `align_cli`):
#   sh tests/align_cli_test.sh path/to/attn path/to/tests/data
# The scorer on hand-made alignments with known answers (tests/data/align),
# the Strong's links of verses checked by hand, bad input, and align-eval on
# a tiny translation model trained here in a second. Prints one line per
# check; exits 1 if any failed.
set -u

ATTN=${1:?usage: align_cli_test.sh ATTN DATA_DIR}
DATA=${2:?usage: align_cli_test.sh ATTN DATA_DIR}
FIX=$DATA/align
TMP=$(mktemp -d "${TMPDIR:-/tmp}/attn-align.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr
passed=0
failed=0
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"

# line N FILE: line N of FILE.
line() { sed -n "$1p" "$2"; }

# ---------------------------------------------------------------- the scorer
# The fixture: gold 0-0 1-1 1-2 | 0-1 1-0 | (none): |S| = 5; target word 3 of
# line 1 and the word of line 3 have no gold link. hyp.align proposes
# 0-0 2-1 1-2 0-3 0-0 | 0-1 | 0-0: on target words with a gold link, the
# distinct links are 0-0 2-1 1-2 and 0-1 (|A| = 4), 3 of them gold: precision
# 3/4, recall 3/5, AER 1 - 2*3/(4+5) = 1/3.
ok "a file of alignments" align-eval --hyp "$FIX/hyp.align" --data "$FIX"
expect "its counts" "3 lines; 5 gold links, 4 links on target words with one, 3 of them gold" "$OUT"
expect "AER 1/3, precision 3/4, recall 3/5" "0.3333 *0.7500 *0.6000" "$OUT"
ok "the gold links against themselves" align-eval --hyp "$FIX/gold.align" --data "$FIX" --json
expect "AER 0, precision 1, recall 1" '"aer": 0, "precision": 1, "recall": 1' "$OUT"
ok "--limit 1" align-eval --hyp "$FIX/hyp.align" --data "$FIX" --limit 1 --json
# line 1 alone: |A| = 3 (0-3 is on a word without gold), 2 gold, |S| = 3: AER 1/3
expect "--limit 1: the first line alone" '"lines": 1, "gold_links": 3, "alignment": {"aer": 0.33333333333333337, "precision": 0.66666666666666663, "recall": 0.66666666666666663}' "$OUT"

# Possible links (i?j) in the gold: 0-0 1?1 2?2 | 0-1 1?0 | (none), so |S| =
# 2 and P adds 1-1 2-2 1-0. Proposed 0-0 1-1 1-2 | 1-0 | 0-0: on target words
# with gold, |A| = 4; |A&S| = 1 (0-0); |A&P| = 3 (0-0, 1-1, 1-0): AER =
# 1 - (1 + 3)/(4 + 2) = 1/3, precision 3/4, recall 1/2.
mkdir "$TMP/p"
cp "$FIX/test.src" "$FIX/test.tgt" "$TMP/p/"
printf '0-0 1?1 2?2\n0-1 1?0\n\n' >"$TMP/p/test.align"
printf '0-0 1-1 1-2\n1-0\n0-0\n' >"$TMP/p/hyp.align"
ok "gold with possible links" align-eval --hyp "$TMP/p/hyp.align" --data "$TMP/p"
expect "their counts" "3 lines; 2 gold links, 4 links on target words with one, 3 of them gold" "$OUT"
expect "AER 1/3, precision 3/4, recall 1/2" "0.3333 *0.7500 *0.5000" "$OUT"

# ---------------------------------------------------------------- bad input
fails_with "an alignment file with fewer lines than the corpus" 1 \
    "short.align has 2 lines but the corpus has 3" align-eval --hyp "$FIX/short.align" --data "$FIX"
fails_with "a malformed link" 1 "malformed.align line 1: '1:1' is not a link i-j" \
    align-eval --hyp "$FIX/malformed.align" --data "$FIX"
fails_with "a source index beyond the line's words" 1 \
    "beyond.align line 2: link 3-0 is beyond the line's words (2 source, 2 target)" \
    align-eval --hyp "$FIX/beyond.align" --data "$FIX"
printf '0-4\n\n\n' >"$TMP/j.align"
fails_with "a target index beyond the line's words" 1 "link 0-4 is beyond" \
    align-eval --hyp "$TMP/j.align" --data "$FIX"
for bad in '0-' '-1' '1--2' '0-1-2' 'a-b' '1234567-0'; do
    printf '%s\n\n\n' "$bad" >"$TMP/bad.align"
    fails_with "malformed: '$bad'" 1 "is not a link i-j" align-eval --hyp "$TMP/bad.align" \
        --data "$FIX"
done
mkdir "$TMP/g"
cp "$FIX/test.src" "$FIX/test.tgt" "$TMP/g/"
printf '0-0\n0-1\n' >"$TMP/g/test.align"
fails_with "gold links with another line count than the corpus" 1 \
    "test.align has 2 lines but the corpus has 3" align-eval --hyp "$FIX/hyp.align" --data "$TMP/g"
fails_with "no --model and no --hyp" 2 "give --model M" align-eval --data "$FIX"
fails_with "both --model and --hyp" 2 "one of them" align-eval --data "$FIX" --hyp "$FIX/hyp.align" \
    --model "$TMP/none.safetensors"
fails_with "--data is required" 2 "--data is required" align-eval --hyp "$FIX/hyp.align"
fails_with "no such split" 1 "nope.src" align-eval --hyp "$FIX/hyp.align" --data "$FIX" --split nope
fails_with "a split name with a slash" 2 "--split" align-eval --hyp "$FIX/hyp.align" --data "$FIX" \
    --split ../x

# ---------------------------------------------------------------- gold links from Strong's numbers
G=$TMP/gen
ok "corpus of Genesis" corpus bible --books Gen --out "$G"
for s in train valid test; do
    check "$s.align has a line per $s.src line" \
        [ "$(wc -l <"$G/$s.align")" -eq "$(wc -l <"$G/$s.src")" ]
done
# Gen 1:1 (train line 1), by hand from the modules' markup: <w H7225>EN el
# principio</w> <w H1254>crió</w> <w H430>Dios</w> <w H8064>los cielos</w>
# <w H776>y la tierra</w>. and In the <w H7225>beginning</w> <w H430>God</w>
# <w H1254>created</w> the <w H8064>heaven</w> <w H853>and</w> the
# <w H776>earth</w>.
check "Gen 1:1 is train line 1" [ "$(line 1 "$G/train.keys")" = "Gen 1:1" ]
check "its Spanish words" [ "$(line 1 "$G/train.src")" = "EN el principio crió Dios los cielos y la tierra." ]
check "its English words" [ "$(line 1 "$G/train.tgt")" = "In the beginning God created the heaven and the earth." ]
check "its links: H7225 H1254 H430 H8064 H776" \
    [ "$(line 1 "$G/train.align")" = "0-2 1-2 2-2 3-4 4-3 5-6 6-6 7-9 8-9 9-9" ]
# Gen 1:3 (valid line 1): <w H559>Y dijo</w> <w H430>Dios</w>: <w H1961>Sea</w>
# <w H216>la luz</w>: <w H1961>y fué</w> <w H216>la luz</w>. and And
# <w H430>God</w> <w H559>said</w>, Let there <w H1961>be</w> <w H216>light</w>:
# and there was <w H216>light</w>. A number twice on a side links every pair;
# punctuation belongs to the word it is written against ("Dios:", "light:").
check "Gen 1:3 is valid line 1" [ "$(line 1 "$G/valid.keys")" = "Gen 1:3" ]
check "its links, repeated numbers linking every pair" \
    [ "$(line 1 "$G/valid.align")" = "0-2 1-2 2-1 3-5 4-6 4-10 5-6 5-10 6-5 7-5 8-6 8-10 9-6 9-10" ]
ok "every gold link lies inside its line's words" align-eval --hyp "$G/test.align" --data "$G"
expect "and scores perfectly against itself" "0.0000 *1.0000 *1.0000" "$OUT"

# ---------------------------------------------------------------- a model's cross-attention
C=$TMP/corpus
ok "corpus of Ruth, Jonah and Obadiah" corpus bible --books Ruth,Jonah,Obad --out "$C"
ok "a tiny model, 2 layers of 2 heads, 1 epoch" train --task translate --data "$C" \
    --vocab-size 300 --layers 2 --d-model 32 --heads 2 --d-ff 64 --batch-tokens 600 \
    --warmup 20 --lr 1 --max-tokens 120 --threads 1 --quiet --epochs 1 --out "$TMP/m.safetensors"
ok "align-eval on its cross-attention" align-eval --model "$TMP/m.safetensors" --data "$C"
expect "the lines scored" "^[0-9]* lines scored" "$OUT"
expect "a row per head" "^layer 2 head 2 " "$OUT"
expect "a row per layer mean" "^layer 1 mean " "$OUT"
expect "the mean of all layers" "^all layers mean " "$OUT"
expect "rollout's alignment" "^rollout  *[0-9.]* " "$OUT"
expect "value-norm attention's" "^value norm  *[0-9.]* " "$OUT"
expect "gradient-weighted attention's" "^grad x attn  *[0-9.]* " "$OUT"
expect "the best head named" "^best alignment head: layer [12] head [12] (AER 0\.[0-9]*)" "$OUT"
ok "--json --limit 5 --batch 2" align-eval --model "$TMP/m.safetensors" --data "$C" --json \
    --limit 5 --batch 2
expect "heads as L:H" '"2:2": {"aer": ' "$OUT"
expect "layers" '"layers": {"1": {"aer": ' "$OUT"
expect "the average" '"average": {"aer": ' "$OUT"
expect "rollout in the JSON" '"rollout": {"aer": ' "$OUT"
expect "value norms in the JSON" '"value_norm": {"aer": ' "$OUT"
expect "attribution in the JSON" '"attribution": {"aer": ' "$OUT"
expect "the best head" '"best": {"layer": [12], "head": [12], "aer": ' "$OUT"
expect "5 lines" '^{"lines": 5,' "$OUT"
if command -v python3 >/dev/null 2>&1; then
    check "the JSON parses" python3 -c "import json, sys; json.load(open(sys.argv[1]))" "$OUT"
fi
cp "$OUT" "$TMP/b2.json"
ok "the same, one batch" align-eval --model "$TMP/m.safetensors" --data "$C" --json --limit 5
check "the batch size does not change the scores" cmp -s "$OUT" "$TMP/b2.json"
ok "--json --limit 5 --viz" align-eval --model "$TMP/m.safetensors" --data "$C" --json \
    --limit 5 --viz "$TMP/alviz"
check "--viz leaves the JSON as it was" cmp -s "$OUT" "$TMP/b2.json"
for f in aer precision recall; do
    check "--viz wrote $f.svg" [ -s "$TMP/alviz/$f.svg" ]
done
if command -v python3 >/dev/null 2>&1; then
    check "each cell is its head's figure in the JSON, cross-attention only" python3 -c '
import json, re, sys
d = json.load(open(sys.argv[1]))
for what in ("aer", "precision", "recall"):
    svg = open("%s/%s.svg" % (sys.argv[2], what), encoding="utf-8").read()
    cells = re.findall(r"<title>(\w+) \u00b7 layer (\d+) \u00b7 head (\d+)&#10;\w+ ([-0-9.e+]+)</title>", svg)
    assert {k for k, _, _, _ in cells} == {"cross"}, what
    assert len(cells) == len(d["heads"]), (what, len(cells))
    for _, l, h, v in cells:
        assert float(v) == float("%.3g" % d["heads"]["%s:%s" % (l, h)][what]), (what, l, h, v)
' "$TMP/b2.json" "$TMP/alviz"
fi
fails_with "--viz goes with --model" 2 "goes with --model" align-eval --hyp "$FIX/hyp.align" \
    --data "$FIX" --viz "$TMP/alviz2"
fails "--viz into /dev/null" 1 align-eval --model "$TMP/m.safetensors" --data "$C" \
    --viz /dev/null
check "--viz checked before the work: nothing on stdout" [ ! -s "$OUT" ]
fails_with "a model without a tokenizer" 1 "align-eval" align-eval \
    --model "$DATA/golden/tiny/model.safetensors" --data "$C"
printf '0-0\n' >"$TMP/short.align"
cp "$C/test.src" "$C/test.tgt" "$TMP/g/"
cp "$TMP/short.align" "$TMP/g/test.align"
fails_with "the model's run checks the gold line count too" 1 "has 1 line but the corpus has" \
    align-eval --model "$TMP/m.safetensors" --data "$TMP/g"

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
