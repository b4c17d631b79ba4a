#!/bin/sh
# Tests of attn viz's analysis views (CTest test `viz_analysis_cli`):
#   sh tests/viz_analysis_cli_test.sh path/to/attn path/to/tests/data
# attn viz --importance --rollout --relevance --roles --flow --value-norm --ig
# --counterfactual --patch --gold on the golden tiny model: the numbers in the explorer's data are those
# of the dedicated commands on the same input (attn importance --json, attn
# rollout --flow --value-norm, attn attribute --chefer and --ig, attn
# counterfactual --json, attn patch --json, attn heads --json), cut to the
# positions charted; the
# gold links land on the expected cells; bad use is refused with one line.
# Prints one line per check; exits 1 if any failed.
set -u

ATTN=${1:?usage: viz_analysis_cli_test.sh ATTN DATA_DIR}
DATA=${2:?usage: viz_analysis_cli_test.sh ATTN DATA_DIR}
TINY=$DATA/golden/tiny
# pass, fail, run, ok, fails, fails_with, expect, expect_not, check
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-vizan

need_golden viz_analysis_cli_test.sh
M="--model $TINY/model.safetensors --heads 4"
IO=$TINY/io.safetensors   # src (2, 10); tgt (2, 9), row 2 padded (7 source, 7 target ids)

# IO8: src and the decoder input tgt[:, :8], the pass attn viz charts when
# --importance or --relevance read IO's tgt as the whole target
python3 - "$IO" "$TMP/io8.safetensors" <<'PY' || { echo "cannot write io8"; exit 1; }
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n, = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
def ids(k):
    v = h[k]
    b = raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
    return list(struct.unpack("<%dq" % (len(b) // 8), b)), v["shape"]
src, ss = ids("src")
tgt, ts = ids("tgt")
dec = [tgt[r * ts[1] + c] for r in range(ts[0]) for c in range(ts[1] - 1)]
body = struct.pack("<%dq" % len(src), *src) + struct.pack("<%dq" % len(dec), *dec)
head = json.dumps({"src": {"dtype": "I64", "shape": ss, "data_offsets": [0, 8 * len(src)]},
                   "tgt": {"dtype": "I64", "shape": [ts[0], ts[1] - 1],
                           "data_offsets": [8 * len(src), len(body)]}}).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(head)) + head + body)
PY

# gold links of row 2 (line 2): source-target positions; 9-6 is on the
# source's padding (left out of the chart), 3-3 twice
printf '0-0 1-1\n0-0 2-1 3-3 3-3 6-5 9-6\n' >"$TMP/gold.align"

# the corrupted batch of --patch: the two source rows swapped (same shapes)
python3 - "$IO" "$TMP/corrupt.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n, = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
body = bytearray(raw[8 + n:])
t = h["src"]
b0, b1 = t["data_offsets"]
half = (b1 - b0) // 2
body[b0:b1] = body[b0 + half:b1] + body[b0:b0 + half]
open(sys.argv[2], "wb").write(raw[:8 + n] + bytes(body))
PY

# ---------------------------------------------------------------- the page and the commands
# shellcheck disable=SC2086
ok "viz --importance --rollout --relevance --roles --flow --value-norm --gold" \
    viz $M --input "$IO" --row 2 --importance --rollout --relevance --roles --flow \
    --value-norm --ig 4 --counterfactual --patch "$TMP/corrupt.safetensors" \
    --gold "$TMP/gold.align" --out "$TMP/v"
check "viz wrote index.html" [ -s "$TMP/v/index.html" ]
# shellcheck disable=SC2086
ok "importance --json" importance $M --input "$IO" --json
cp "$OUT" "$TMP/imp.json"
# shellcheck disable=SC2086
ok "rollout on the pass charted" rollout $M --input "$TMP/io8.safetensors" --flow --value-norm \
    --out "$TMP/r.safetensors"
# shellcheck disable=SC2086
ok "heads --json on the pass charted" heads $M --input "$TMP/io8.safetensors" --json
cp "$OUT" "$TMP/heads.json"
# shellcheck disable=SC2086
ok "attribute --chefer (every token's R^qs)" attribute $M --input "$IO" --chefer --out "$TMP/a.safetensors"
# shellcheck disable=SC2086
ok "patch --json" patch $M --clean "$IO" --corrupt "$TMP/corrupt.safetensors" --json
cp "$OUT" "$TMP/patch.json"
# shellcheck disable=SC2086
ok "counterfactual --json" counterfactual $M --input "$IO" --json
cp "$OUT" "$TMP/cf.json"
# shellcheck disable=SC2086
ok "attribute --ig 4" attribute $M --input "$IO" --ig 4 --out "$TMP/ig.safetensors"
for t in 0 3 6; do
    # shellcheck disable=SC2086
    ok "attribute --chefer --target $t (R^qq)" attribute $M --input "$IO" --chefer --target $t \
        --out "$TMP/a$t.safetensors"
done

python3 - "$TMP" >"$OUT" 2>"$ERR" <<'PY'
import base64, html, json, math, re, struct, sys
d = sys.argv[1]
page = open(d + "/v/index.html", encoding="utf-8").read()
data = json.loads(re.search(r'<script type="application/json" id="at-data">\n(.*?)</script>',
                            page, re.S).group(1))
an = data["analysis"]
L, H, row, S, T = 2, 4, 1, 7, 7          # row 2 charted: 7 source and 7 target positions
bad = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        bad.append(what)
def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]
def load(p):
    raw = open(p, "rb").read()
    n, = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        b = raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
        out[k] = (list(struct.unpack("<%df" % (len(b) // 4), b)), v["shape"])
    return out
def at(t, *ix):                           # element of a row-major tensor
    v, sh = t
    o = 0
    for i, s in zip(ix, sh):
        o = o * s + i
    return v[o]
def grids(title):
    return {g["kind"]: g for g in an["grids"] if g["title"].startswith(title)}
def map_of(title):
    m = [m for m in an["maps"] if m["title"].startswith(title)]
    check(len(m) == 1, "one map '%s'" % title)
    m = m[0]
    b = base64.b64decode(m["values"])
    return m, list(struct.unpack("<%df" % (len(b) // 4), b))
kinds = ["enc_self", "dec_self", "cross"]
close = lambda a, b: abs(a - b) <= 1e-8 * max(1.0, abs(b))

# importance and ablation: attn importance --json's numbers
imp = json.load(open(d + "/imp.json"))
for key, title in (("importance", "importance"), ("ablation", "ablation")):
    g = grids(title)
    check(sorted(g) == sorted(kinds), "%s: a grid per kind" % key)
    same = all((f32(g[k]["values"][l * H + h]) == f32(imp[key][k][l][h])) if key == "importance"
               else close(g[k]["values"][l * H + h], imp[key][k][l][h])
               for k in kinds for l in range(L) for h in range(H))
    check(same, "%s: every head's value is attn importance's" % key)
check(grids("ablation")["cross"]["diverging"] == 1 and grids("importance")["cross"]["diverging"] == 0,
      "ablation on a diverging scale, importance sequential")

# roles: attn heads --json's best pattern and score of every head
hj = json.load(open(d + "/heads.json"))["heads"]
g = grids("role")
ok = sorted(g) == sorted(kinds)
for k in kinds:
    for l in range(L):
        for h in range(H):
            want = hj[k][l][h]
            ok = ok and g[k]["labels"][l * H + h] == want["best"] and \
                close(g[k]["values"][l * H + h], want["score"])
check(ok, "roles: every head's best pattern and score are attn heads'")

# rollout: attn rollout's tensors of row 2, cut to the positions charted, bit for bit
r = load(d + "/r.safetensors")
for name, title, nr, nc in (("enc_self", "rollout \u00b7 encoder", S, S),
                            ("dec_self", "rollout \u00b7 decoder", T, T),
                            ("cross", "rollout \u00b7 target", T, S)):
    m, v = map_of(title)
    t = r["rollout." + name]
    check(m["nrows"] == nr and m["ncols"] == nc, "rollout %s is %dx%d" % (name, nr, nc))
    check(all(v[i * nc + j] == at(t, row, i, j) for i in range(nr) for j in range(nc)),
          "rollout %s: attn rollout's values, bit for bit" % name)

# integrated gradients: each head's sum (in double, queries then keys) of row
# 2 of attn attribute --ig 4's ig tensors, the pass's full lengths
ig = load(d + "/ig.safetensors")
g = grids("integrated gradients (4 steps)")
ok = sorted(g) == sorted(kinds) and all(g[k]["diverging"] == 1 for k in kinds)
for k in kinds:
    for l in range(L):
        t = ig["ig.%s.%d" % (k, l)]
        _, _, q, kk = t[1]
        for h in range(H):
            want = 0.0
            for i in range(q):
                for j in range(kk):
                    want += at(t, row, h, i, j)
            ok = ok and g[k]["values"][l * H + h] == want
check(ok, "ig: every head's sum is that of attn attribute --ig 4's tensor, exactly")

# activation patching: attn patch --json's float32 values
pj = json.load(open(d + "/patch.json"))["patch"]
g = grids("activation patching")
check(sorted(g) == sorted(kinds) and all(g[k]["diverging"] == 1 for k in kinds) and all(
    f32(g[k]["values"][l * H + h]) == f32(pj[k][l][h])
    for k in kinds for l in range(L) for h in range(H)) and any(
    pj[k][l][h] != 0 for k in kinds for l in range(L) for h in range(H)),
    "patch: every head's change is attn patch's (and some are not 0)")

# counterfactual attention: attn counterfactual --json's float32 values
cf = json.load(open(d + "/cf.json"))
for key in ("permuted", "uniform"):
    g = grids("counterfactual: %s" % key)
    check(sorted(g) == sorted(kinds) and all(
        f32(g[k]["values"][l * H + h]) == f32(cf[key][k][l][h])
        for k in kinds for l in range(L) for h in range(H)),
        "counterfactual %s: every head's TV is attn counterfactual's" % key)

# flow: attn rollout --flow's tensors of row 2, bit for bit
for name, title, n in (("enc_self", "flow \u00b7 encoder", S), ("dec_self", "flow \u00b7 decoder", T)):
    m, v = map_of(title)
    t = r["flow." + name]
    check(m["nrows"] == n and m["ncols"] == n, "flow %s is %dx%d" % (name, n, n))
    check(all(v[i * n + j] == at(t, row, i, j) for i in range(n) for j in range(n)),
          "flow %s: attn rollout --flow's values, bit for bit" % name)

# value norms: the mean over heads (in double, rounded to float32) of attn
# rollout --value-norm's vnorm tensors of row 2, every layer of each kind
for name, word, nr, nc in (("enc_self", "encoder", S, S), ("dec_self", "decoder", T, T),
                           ("cross", "cross", T, S)):
    for l in range(L):
        m, v = map_of("value norm \u00b7 %s layer %d " % (word, l + 1))
        t = r["vnorm.%s.%d" % (name, l)]
        check(all(v[i * nc + j] == f32(sum(at(t, row, h, i, j) for h in range(H)) / H)
                  for i in range(nr) for j in range(nc)),
              "value norm %s layer %d: the mean of attn rollout's heads" % (name, l + 1))

# relevance: attn attribute --chefer's chefer.tokens (row t = token t's R^qs)
# and chefer.qq of --target t
a = load(d + "/a.safetensors")["chefer.tokens"]
m, v = map_of("relevance R^qs")
check(m["nrows"] == T and m["ncols"] == S and m["rows"] == "target" and m["cols"] == "source",
      "R^qs is target x source, %dx%d" % (T, S))
check(all(v[i * S + j] == at(a, row, i, j) for i in range(T) for j in range(S)),
      "R^qs: every output token's row is attn attribute's, bit for bit")
m, v = map_of("relevance R^qq")
for t in (0, 3, 6):
    q = load(d + "/a%d.safetensors" % t)["chefer.qq"]
    check(all(v[t * T + j] == at(q, row, t, j) for j in range(T)),
          "R^qq row %d: attn attribute --target %d's, bit for bit" % (t, t))

# gold links: (target, source) cells inside the chart, each once, in order
check(an["links"] == [[0, 0], [1, 2], [3, 3], [5, 6]],
      "gold links: the cells of line 2 inside the chart, once each: %s" % an["links"])
check(an["gold"]["rows"] == 4 and an["gold"]["links"] == 4 and len(an["gold"]["aer"]) == L * H,
      "gold: 4 rows, 4 links, an AER per head")
print("%d failed" % len(bad))
sys.exit(1 if bad else 0)
PY
prc=$?
cat "$OUT"
if [ "$prc" -eq 0 ]; then
    pass "the explorer carries the dedicated commands' numbers"
else
    fail "the explorer carries the dedicated commands' numbers" "see the lines above"
fi

# --patch with a batch of other shapes: refused with one line, nothing written
mkst "$TMP/small.safetensors" \
    '{"src":{"dtype":"I32","shape":[1,2],"data_offsets":[0,8]},"tgt":{"dtype":"I32","shape":[1,2],"data_offsets":[8,16]}}' \
    '\001\0\0\0\002\0\0\0\001\0\0\0\002\0\0\0'
# shellcheck disable=SC2086
fails_with "--patch of other shapes" 2 "the input has (2, 10)" viz $M --input "$IO" \
    --patch "$TMP/small.safetensors" --out "$TMP/xp"
check "nothing written for the refused --patch" [ ! -e "$TMP/xp" ]

# ---------------------------------------------------------------- with --src-text: words to pieces
# the golden model has no tokenizer: refused with a message
# shellcheck disable=SC2086
fails "viz --src-text on a model without tokenizer" 1 viz $M --src-text "a b" --roles --out "$TMP/x"
# a toy translation model with its tokenizer (as tests/cli_test.sh trains it, ~2 s)
mkdir -p "$TMP/toy"
for side in src tgt; do
    LC_ALL=C awk -v n=300 -v side=$side 'BEGIN {
        split("el niño|la mujer|josé|maría|el rey", S, "|"); split("the boy|the woman|joseph|mary|the king", SE, "|")
        split("comió|miró|oyó|llamó", V, "|"); split("ate|saw|heard|called", VE, "|")
        split("el pan|la casa|el agua|la ciudad", O, "|"); split("the bread|the house|the water|the city", OE, "|")
        for (i = 0; i < n; i++) {
            a = i % 5 + 1; b = int(i / 5) % 4 + 1; c = int(i / 20) % 4 + 1
            if (side == "src") print S[a] " " V[b] " " O[c] "."; else print SE[a] " " VE[b] " " OE[c] "."
        }
    }' >"$TMP/toy/train.$side"
    head -n 20 "$TMP/toy/train.$side" >"$TMP/toy/valid.$side"
done
ok "train a toy translation model" train --task translate --data "$TMP/toy" --vocab-size 60 \
    --layers 1 --d-model 32 --heads 2 --d-ff 64 --batch-tokens 600 --warmup 20 --lr 1 \
    --threads 1 --epochs 2 --quiet --out "$TMP/toy.safetensors"
TV="--model $TMP/toy.safetensors"
# words: josé comió el pan. -> joseph ate the bread. (4 and 4: "pan." is one word)
printf '0-0 1-1 2-2 3-2 3-3\n' >"$TMP/words.align"
# shellcheck disable=SC2086
ok "viz --src-text --tgt-text --gold (word links)" viz $TV --src-text "josé comió el pan." \
    --tgt-text "joseph ate the bread." --gold "$TMP/words.align" --importance --out "$TMP/vt"
# shellcheck disable=SC2086
ok "viz --src-text --tgt-text without analysis" viz $TV --src-text "josé comió el pan." \
    --tgt-text "joseph ate the bread." --out "$TMP/vt0"
python3 - "$TMP/vt/index.html" "$TMP/vt0/index.html" >"$OUT" 2>"$ERR" <<'PY'
import json, re, sys
def data(p):
    page = open(p, encoding="utf-8").read()
    return json.loads(re.search(r'<script type="application/json" id="at-data">\n(.*?)</script>',
                                page, re.S).group(1))
d, d0 = data(sys.argv[1]), data(sys.argv[2])
assert d["src"] == d0["src"] and d["tgt"] == d0["tgt"], "the pass charted changed with --importance"
def words(pieces):                      # align-eval's rule: a piece with U+2581 starts a word
    w, out = -1, []
    for p in pieces:
        if p in ("<s>", "</s>"):
            out.append(-1)
            continue
        if w < 0 or p.startswith("\u2581"):
            w += 1
        out.append(w)
    return out
sw = words(d["src"])
tw = words(d["tgt"][1:] + ["</s>"])      # the piece emitted by row k is ys[k + 1]
links = [(0, 0), (1, 1), (2, 2), (3, 2), (3, 3)]
want = sorted({(k, s) for i, j in links for s in range(len(sw)) for k in range(len(tw))
               if sw[s] == i and tw[k] == j})
got = [tuple(x) for x in d["analysis"]["links"]]
assert got == want, (got, want, d["src"], d["tgt"])
assert max(sw) == 3 and max(tw) == 3, (sw, tw)
assert len([g for g in d["analysis"]["grids"] if g["title"].startswith("importance")]) == 3
print("ok", len(got), "cells")
PY
wrc=$?
if [ "$wrc" -eq 0 ]; then
    pass "word links land on the pieces of their words ($(cat "$OUT"))"
else
    fail "word links land on the pieces of their words" "$(tail -n 3 "$ERR")"
fi
printf '0-0 4-0\n' >"$TMP/words5.align"
# shellcheck disable=SC2086
fails_with "--gold: a word beyond the sentence" 1 "link 4-0 is beyond the sentence's words (4 source, 4 target)" \
    viz $TV --src-text "josé comió el pan." --tgt-text "joseph ate the bread." \
    --gold "$TMP/words5.align" --out "$TMP/x"

# ---------------------------------------------------------------- refusals
# shellcheck disable=SC2086
{
    fails_with "--importance with --decode" 2 'not --decode' \
        viz $M --src "1 2 3" --decode --importance --out "$TMP/x"
    fails_with "--relevance without a target" 2 'needs a target' \
        viz $M --src "1 2 3" --relevance --out "$TMP/x"
    fails_with "--gold without a target" 2 'needs a target' \
        viz $M --src "1 2 3" --gold "$TMP/gold.align" --out "$TMP/x"
    fails_with "--importance with a one-id target" 1 '2 ids or more' \
        viz $M --src "1 2 3" --tgt "1" --importance --out "$TMP/x"
    fails_with "--gold: a missing file" 1 'gold' \
        viz $M --src "1 2 3" --tgt "1 2" --gold "$TMP/none.align" --out "$TMP/x"
}
printf '0-0\n' >"$TMP/one.align"
printf '0-0 1-x\n' >"$TMP/bad.align"
printf '0-0 3-1\n' >"$TMP/far.align"
# shellcheck disable=SC2086
{
    fails_with "--gold: the row's line is missing" 1 'needs line 2' \
        viz $M --input "$IO" --row 2 --gold "$TMP/one.align" --out "$TMP/x"
    fails_with "--gold: a malformed link" 1 "'1-x' is not a link" \
        viz $M --src "1 2 3" --tgt "1 2" --gold "$TMP/bad.align" --out "$TMP/x"
    fails_with "--gold: a link beyond the pass" 1 'link 3-1 is beyond' \
        viz $M --src "1 2 3" --tgt "1 2" --gold "$TMP/far.align" --out "$TMP/x"
}
check "a refused viz leaves no folder" [ ! -e "$TMP/x" ]

echo "viz_analysis_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
