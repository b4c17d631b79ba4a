#!/bin/sh
# Tests of the interventions on attn's command line (CTest test `interv_cli`):
#   sh tests/interv_cli_test.sh path/to/attn path/to/tests/data
# attn dump --gate, --taps, --override, --keep; attn decode --gate, --override;
# attn importance. (attn translate's are in cli_test.sh, beside its toy
# translation model.) Prints one line per check; exits 1 if any failed.
set -u

ATTN=${1:?usage: interv_cli_test.sh ATTN DATA_DIR}
DATA=${2:?usage: interv_cli_test.sh ATTN DATA_DIR}
TINY=$DATA/golden/tiny
# pass, fail, run, ok, fails, fails_with, expect, expect_not, check
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-interv

need_golden interv_cli_test.sh
M="--model $TINY/model.safetensors --heads 4"
IO=$TINY/io.safetensors
HAVE_PY=
python3 -c 'import json' 2>/dev/null && HAVE_PY=1

# ---------------------------------------------------------------- help
ok "attn --help" --help
expect "attn --help lists importance" '^  importance ' "$OUT"
ok "attn importance --help" importance --help
expect "importance --help is its usage" '^usage: attn importance' "$OUT"
ok "attn help importance" help importance
fails "attn importance --no-such-flag" 2 importance --no-such-flag
for cmd in dump decode translate; do
    ok "attn $cmd --help" "$cmd" --help
    expect "$cmd --help has --gate" '\-\-gate KIND:L:H=G' "$OUT"
    expect "$cmd --help has --override" '\-\-override F' "$OUT"
done

# ---------------------------------------------------------------- dump --gate
# shellcheck disable=SC2086  # $M is a list of words
ok "dump, no intervention" dump $M --input "$IO" --out "$TMP/d0.safetensors"
expect "dump prints the activation memory" '^activation memory: [0-9]* bytes' "$OUT"
act0=$(sed -n 's/^activation memory: \([0-9]*\) bytes.*/\1/p' "$OUT")
# shellcheck disable=SC2086
ok "dump --gate cross:1:*=1" dump $M --input "$IO" --out "$TMP/g1.safetensors" --gate 'cross:1:*=1'
check "a gate of 1 is the plain model, byte for byte" cmp -s "$TMP/d0.safetensors" "$TMP/g1.safetensors"
# shellcheck disable=SC2086
ok "dump --gate enc_self:1:*=0" dump $M --input "$IO" --out "$TMP/g0.safetensors" --gate 'enc_self:1:*=0'
same "a gate leaves its own layer's attention" "$TMP/d0.safetensors" "$TMP/g0.safetensors" attn.enc_self.0
differs "and changes what follows" "$TMP/d0.safetensors" "$TMP/g0.safetensors" attn.enc_self.1 memory \
    attn.cross.0 logprobs
same "the decoder's first self-attention does not see the encoder" "$TMP/d0.safetensors" \
    "$TMP/g0.safetensors" attn.dec_self.0 tgt_mask src_mask
# shellcheck disable=SC2086
ok "dump --gate dec_self:2:3=0.5" dump $M --input "$IO" --out "$TMP/gh.safetensors" --gate dec_self:2:3=0.5
same "a decoder gate leaves the encoder" "$TMP/d0.safetensors" "$TMP/gh.safetensors" memory \
    attn.enc_self.1 attn.dec_self.1
differs "and changes the decoder after it" "$TMP/d0.safetensors" "$TMP/gh.safetensors" attn.cross.1 \
    decoder_out logprobs
# shellcheck disable=SC2086
ok "dump --gate=...=0 then =1: the later wins" dump $M --input "$IO" --out "$TMP/g10.safetensors" \
    --gate='enc_self:*:*=0' --gate 'enc_self:1:*=1' --gate 'enc_self:2:*=1'
check "every gate back at 1: the plain model" cmp -s "$TMP/d0.safetensors" "$TMP/g10.safetensors"

for bad in 'enc_self:1:1' 'enc_self:1=0' 'enc_self=0' 'enc_self:1:1=' 'enc_self:1:1=nan' \
           'enc_self:1:1=inf' 'enc_self:1:1=1e39' 'enc_self:1:1=0x' 'enc_self:0:1=0' \
           'enc_self:1:x=0' 'enc_self:1:1:1=0' ':1:1=0'; do
    # shellcheck disable=SC2086
    fails_with "dump --gate '$bad' is refused" 2 '\-\-gate' dump $M --input "$IO" --out "$TMP/x.safetensors" --gate "$bad"
done
# shellcheck disable=SC2086
fails_with "dump --gate with an unknown kind names the kinds" 2 'enc_self, dec_self and cross' \
    dump $M --input "$IO" --out "$TMP/x.safetensors" --gate 'self:1:1=0'
# shellcheck disable=SC2086
fails_with "dump --gate layer 3 of 2 names the range" 2 'layers 1\.\.2' \
    dump $M --input "$IO" --out "$TMP/x.safetensors" --gate 'cross:3:1=0'
# shellcheck disable=SC2086
fails_with "dump --gate head 5 of 4 names the range" 2 'heads 1\.\.4' \
    dump $M --input "$IO" --out "$TMP/x.safetensors" --gate 'cross:1:5=0'
check "nothing written by a refused dump" [ ! -e "$TMP/x.safetensors" ]

# ---------------------------------------------------------------- dump --taps
# shellcheck disable=SC2086
ok "dump --taps q,k,v,scores,head_out" dump $M --input "$IO" --out "$TMP/t.safetensors" \
    --taps q,k,v,scores,head_out
shape "q.enc_self.0 (B, h, S, d_k)" "$TMP/t.safetensors" q.enc_self.0 "2, 4, 10, 8"
shape "k.cross.1: the memory's keys (B, h, S, d_k)" "$TMP/t.safetensors" k.cross.1 "2, 4, 10, 8"
shape "v.dec_self.1 (B, h, T, d_k)" "$TMP/t.safetensors" v.dec_self.1 "2, 4, 9, 8"
shape "scores.cross.0 (B, h, T, S)" "$TMP/t.safetensors" scores.cross.0 "2, 4, 9, 10"
shape "head_out.dec_self.0 (B, h, T, d_k)" "$TMP/t.safetensors" head_out.dec_self.0 "2, 4, 9, 8"
expect "41 tensors: the dump's 11 and 5 sites x 6 blocks" '^41 tensors compared' "$OUT"
same "taps change nothing they see" "$TMP/d0.safetensors" "$TMP/t.safetensors" memory logprobs \
    attn.enc_self.0 attn.cross.1
# shellcheck disable=SC2086
ok "dump --taps of layer and model sites" dump $M --input "$IO" --out "$TMP/t2.safetensors" \
    --taps ff_hidden,layer_out,src_embed,tgt_embed,memory,decoder,logprobs,attn_out,probs
shape "ff_hidden.enc_self.1 (B, S, d_ff)" "$TMP/t2.safetensors" ff_hidden.enc_self.1 "2, 10, 64"
shape "layer_out.dec_self.0 (B, T, d)" "$TMP/t2.safetensors" layer_out.dec_self.0 "2, 9, 32"
shape "attn_out.cross.1 (B, T, d)" "$TMP/t2.safetensors" attn_out.cross.1 "2, 9, 32"
shape "probs.dec_self.1 (B, h, T, T)" "$TMP/t2.safetensors" probs.dec_self.1 "2, 4, 9, 9"
shape "src_embed (B, S, d)" "$TMP/t2.safetensors" src_embed "2, 10, 32"
shape "tgt_embed (B, T, d)" "$TMP/t2.safetensors" tgt_embed "2, 9, 32"
shape "decoder (B, T, d)" "$TMP/t2.safetensors" decoder "2, 9, 32"
expect "memory and logprobs once each: 11 + 4 + 4 + 6 + 6 + 3" '^34 tensors compared' "$OUT"
# shellcheck disable=SC2086
fails_with "dump --taps with an unknown site names the sites" 2 '\-\-taps: unknown site .*head_out' \
    dump $M --input "$IO" --out "$TMP/x.safetensors" --taps q,queries
# shellcheck disable=SC2086
fails_with "dump --taps with an empty name" 2 '\-\-taps' dump $M --input "$IO" --out "$TMP/x.safetensors" --taps q,,k

# ---------------------------------------------------------------- dump --override
# shellcheck disable=SC2086
ok "dump --override with a dump of the same batch" dump $M --input "$IO" --out "$TMP/o0.safetensors" \
    --override "$TMP/d0.safetensors"
run compare "$TMP/d0.safetensors" "$TMP/o0.safetensors" --atol 0
expect "the model's own attention as override: the same output" '^11 tensors compared, 0 differ' "$OUT"
# the attention of the gated pass, on the plain model: its attn.* are F's,
# its outputs neither the plain nor the gated model's
# shellcheck disable=SC2086
ok "dump --override with the gated pass's attention" dump $M --input "$IO" \
    --out "$TMP/o1.safetensors" --override "$TMP/g0.safetensors"
same "the written attention is the override" "$TMP/g0.safetensors" "$TMP/o1.safetensors" \
    attn.enc_self.0 attn.enc_self.1 attn.dec_self.0 attn.dec_self.1 attn.cross.0 attn.cross.1
differs "the rest of the pass runs on it" "$TMP/d0.safetensors" "$TMP/o1.safetensors" memory logprobs
# shellcheck disable=SC2086
ok "dump --keep, then --override with per-head tensors" dump $M --input "$IO" \
    --out "$TMP/k0.safetensors" --keep enc_self:2:1
# shellcheck disable=SC2086
ok "dump --override attn.enc_self.1.head0 of the plain pass" dump $M --input "$IO" \
    --out "$TMP/o2.safetensors" --override "$TMP/k0.safetensors" --gate 'enc_self:1:*=0'
differs "a head override replaces that head only" "$TMP/g0.safetensors" "$TMP/o2.safetensors" \
    attn.enc_self.1
run compare "$TMP/k0.safetensors" "$TMP/o2.safetensors" --atol 0
expect "(the override's name is not in the full dump)" '1 only in A' "$OUT"

mkst "$TMP/ov-name.safetensors" '{"attn.enc.0":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' '\0\0\0\0'
mkst "$TMP/ov-other.safetensors" '{"weights":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' '\0\0\0\0'
mkst "$TMP/ov-layer.safetensors" '{"attn.cross.2":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' '\0\0\0\0'
mkst "$TMP/ov-head.safetensors" '{"attn.cross.1.head4":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' '\0\0\0\0'
mkst "$TMP/ov-shape.safetensors" '{"attn.enc_self.0":{"dtype":"F32","shape":[2,4,10],"data_offsets":[0,320]}}' \
    "$(i=0; while [ $i -lt 320 ]; do printf '\\0'; i=$((i + 1)); done)"
mkst "$TMP/ov-dtype.safetensors" '{"attn.enc_self.0":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}' '\0\0\0\0'
mkst "$TMP/ov-none.safetensors" '{"memory":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' '\0\0\0\0'
for c in "name:unknown tensor 'attn.enc.0'" "other:unknown tensor 'weights'" \
         "layer:layers 0\.\.1" "head:heads 0\.\.3" "shape:has shape (2, 4, 10); it must have 4 dimensions" \
         "dtype:has dtype I32" "none:no attention tensor"; do
    f=${c%%:*}
    pat=${c#*:}
    # shellcheck disable=SC2086
    fails_with "dump --override: $f refused" 1 "$pat" dump $M --input "$IO" \
        --out "$TMP/x.safetensors" --override "$TMP/ov-$f.safetensors"
done
check "nothing written by a refused override" [ ! -e "$TMP/x.safetensors" ]
mkst "$TMP/one.safetensors" '{"src":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]},"tgt":{"dtype":"I32","shape":[1,2],"data_offsets":[12,20]}}' \
    '\001\0\0\0\002\0\0\0\003\0\0\0\001\0\0\0\002\0\0\0'
# shellcheck disable=SC2086
fails_with "dump --override: the wrong batch" 1 "must start (1, 4, ...)" dump $M \
    --input "$TMP/one.safetensors" --out "$TMP/x.safetensors" --override "$TMP/d0.safetensors"
mkst "$TMP/enc.safetensors" '{"src":{"dtype":"I32","shape":[2,10],"data_offsets":[0,80]}}' \
    "$(i=0; while [ $i -lt 20 ]; do printf '\\001\\0\\0\\0'; i=$((i + 1)); done)"
# shellcheck disable=SC2086
fails_with "dump --override: decoder attention without a target" 1 "no target" dump $M \
    --input "$TMP/enc.safetensors" --out "$TMP/x.safetensors" --override "$TMP/d0.safetensors"
# shellcheck disable=SC2086
fails "dump --override of a missing file" 1 dump $M --input "$IO" --out "$TMP/x.safetensors" \
    --override "$TMP/none.safetensors"

# ---------------------------------------------------------------- dump --keep
# shellcheck disable=SC2086
ok "dump --keep enc_self:1 --keep cross:2:3" dump $M --input "$IO" --out "$TMP/k.safetensors" \
    --keep enc_self:1 --keep cross:2:3
expect "the summary says the memory is under the policy" '^activation memory: .*--keep' "$OUT"
act=$(sed -n 's/^activation memory: \([0-9]*\) bytes.*/\1/p' "$OUT")
if [ "${act:-0}" -gt 0 ] && [ "${act:-0}" -lt "${act0:-0}" ]; then
    pass "dropping attention saves activation memory ($act < $act0 bytes)"
else
    fail "dropping attention saves activation memory" "$act vs $act0 bytes"
fi
shape "a kept layer whole" "$TMP/k.safetensors" attn.enc_self.0 "2, 4, 10, 10"
shape "a kept head alone, (B, Lq, Lk)" "$TMP/k.safetensors" attn.cross.1.head2 "2, 9, 10"
expect "nothing else of the attention: 5 outputs and 2" '^7 tensors compared' "$OUT"
expect_not "no dropped layer" '^  attn.dec_self' "$OUT"
same "kept attention as without a policy" "$TMP/d0.safetensors" "$TMP/k.safetensors" attn.enc_self.0 \
    memory logprobs
# shellcheck disable=SC2086
ok "dump --keep 'dec_self:*:2'" dump $M --input "$IO" --out "$TMP/k2.safetensors" --keep 'dec_self:*:2'
shape "head 2 of every decoder layer" "$TMP/k2.safetensors" attn.dec_self.1.head1 "2, 9, 9"
for bad in 'enc' 'enc_self:' 'enc_self:0' 'enc_self:1:2:3' 'enc_self:a'; do
    # shellcheck disable=SC2086
    fails_with "dump --keep '$bad' is refused" 2 '\-\-keep' dump $M --input "$IO" --out "$TMP/x.safetensors" --keep "$bad"
done
# shellcheck disable=SC2086
fails_with "dump --keep head 9 names the range" 2 'heads 1\.\.4' dump $M --input "$IO" --out "$TMP/x.safetensors" --keep cross:1:9

# ---------------------------------------------------------------- decode --gate, --override
SRC="1 2 3 4 5 6 7 8 9 10"
# shellcheck disable=SC2086
ok "decode, no intervention" decode $M --src "$SRC" --src "1 4 4 2 7 9 3 3 8 5" --dump "$TMP/dd0.safetensors"
head -n 2 "$OUT" >"$TMP/dd0.txt"
# shellcheck disable=SC2086
ok "decode --gate 'cross:*:*=1'" decode $M --src "$SRC" --src "1 4 4 2 7 9 3 3 8 5" \
    --dump "$TMP/dd1.safetensors" --gate 'cross:*:*=1'
head -n 2 "$OUT" >"$TMP/dd1.txt"
check "gates of 1: the same ids" cmp -s "$TMP/dd0.txt" "$TMP/dd1.txt"
same "and the same attention" "$TMP/dd0.safetensors" "$TMP/dd1.safetensors" attn.cross.1 logprobs
# shellcheck disable=SC2086
ok "decode --gate 'enc_self:*:*=0'" decode $M --src "$SRC" --src "1 4 4 2 7 9 3 3 8 5" \
    --dump "$TMP/dd2.safetensors" --gate 'enc_self:*:*=0'
differs "decoding sees the gate" "$TMP/dd0.safetensors" "$TMP/dd2.safetensors" memory
# shellcheck disable=SC2086
ok "decode --override with its own --dump" decode $M --input "$TMP/dd0.safetensors" \
    --dump "$TMP/dd3.safetensors" --override "$TMP/dd0.safetensors"
head -n 2 "$OUT" >"$TMP/dd3.txt"
check "the model's own attention as override: the same ids" cmp -s "$TMP/dd0.txt" "$TMP/dd3.txt"
run compare "$TMP/dd0.safetensors" "$TMP/dd3.safetensors" --atol 1e-6
expect "and the same tensors" '^13 tensors compared, 0 differ' "$OUT"
# shellcheck disable=SC2086
fails_with "decode --override: the wrong batch" 1 'must start (1, 4' decode $M --src "$SRC" \
    --override "$TMP/dd0.safetensors"
# shellcheck disable=SC2086
fails_with "decode --gate out of range" 2 'layers 1\.\.2' decode $M --src "$SRC" --gate 'dec_self:3:1=0'
# shellcheck disable=SC2086
fails "decode --keep is not an option of decode" 2 decode $M --src "$SRC" --keep enc_self

# ---------------------------------------------------------------- importance
# shellcheck disable=SC2086
ok "importance on the golden batch" importance $M --input "$IO"
expect "prints the loss" '^loss [0-9.]* over [0-9]* target tokens (batch 2, src_len 10, tgt_len 8)$' "$OUT"
n=$(grep -c '^\(enc_self\|dec_self\|cross\) *[12] \( *-\{0,1\}[0-9.]*\)\{4\}$' "$OUT")
if [ "$n" -eq 12 ]; then pass "two tables of 3 kinds x 2 layers x 4 heads"; else fail "two tables" "$n rows"; fi
# shellcheck disable=SC2086
ok "importance --json --viz" importance $M --input "$IO" --json --viz "$TMP/iviz"
cp "$OUT" "$TMP/imp.json"
check "--viz wrote importance.svg" [ -s "$TMP/iviz/importance.svg" ]
check "--viz wrote ablation.svg" [ -s "$TMP/iviz/ablation.svg" ]
expect "an SVG with a cell per head" '<title>cross · layer 2 · head 4' "$TMP/iviz/ablation.svg"
expect_not "--json prints the JSON only" '^wrote' "$TMP/imp.json"
if [ -n "$HAVE_PY" ]; then
    check "--json: loss, importance and ablation, 3 kinds x 2 layers x 4 heads" python3 -c '
import json, math, sys
d = json.load(open(sys.argv[1]))
assert math.isfinite(d["loss"]) and d["loss"] > 0
for key in ("importance", "ablation"):
    assert sorted(d[key]) == ["cross", "dec_self", "enc_self"], d[key].keys()
    for rows in d[key].values():
        assert len(rows) == 2 and all(len(r) == 4 for r in rows)
        assert all(isinstance(v, float) and math.isfinite(v) for r in rows for v in r)
assert all(v >= 0 for rows in d["importance"].values() for r in rows for v in r)
' "$TMP/imp.json"
    # shellcheck disable=SC2086
    ok "importance --only cross:2 --gate enc_self:1:1=0 --json" importance $M --input "$IO" --json \
        --only cross:2 --only enc_self:1:1 --gate enc_self:1:1=0 --pad 0 --threads 1
    check "only the heads asked for are ablated; a head gated to 0 already loses nothing" python3 -c '
import json, sys
d = json.load(sys.stdin)
a = d["ablation"]
assert a["enc_self"][0][0] == 0.0, a["enc_self"][0][0]
assert all(v is None for v in a["enc_self"][0][1:] + a["enc_self"][1] + sum(a["dec_self"], []))
assert a["cross"][0] == [None] * 4 and None not in a["cross"][1]
assert all(v is not None for r in d["importance"]["dec_self"] for v in r)
' <"$OUT"
fi
mkst "$TMP/nosrc.safetensors" '{"tgt":{"dtype":"I32","shape":[1,2],"data_offsets":[0,8]}}' '\001\0\0\0\002\0\0\0'
mkst "$TMP/short.safetensors" '{"src":{"dtype":"I32","shape":[1,2],"data_offsets":[0,8]},"tgt":{"dtype":"I32","shape":[1,1],"data_offsets":[8,12]}}' \
    '\001\0\0\0\002\0\0\0\001\0\0\0'
# shellcheck disable=SC2086
fails "importance without --input" 2 importance $M
# shellcheck disable=SC2086
fails_with "importance of an input without tgt" 1 "no tensor 'tgt'" importance $M --input "$TMP/enc.safetensors"
# shellcheck disable=SC2086
fails_with "importance of an input without src" 1 "no tensor 'src'" importance $M --input "$TMP/nosrc.safetensors"
# shellcheck disable=SC2086
fails_with "importance of a tgt of one column" 1 'needs 2 or more' importance $M --input "$TMP/short.safetensors"
# shellcheck disable=SC2086
fails_with "importance --only with an unknown kind" 2 '\-\-only' importance $M --input "$IO" --only decoder
# shellcheck disable=SC2086
fails_with "importance --only out of range" 2 'layers 1\.\.2' importance $M --input "$IO" --only enc_self:3
# shellcheck disable=SC2086
fails_with "importance --gate not finite" 2 '\-\-gate' importance $M --input "$IO" --gate 'cross:1:1=-inf'
# shellcheck disable=SC2086
fails "importance --viz into /dev/null" 1 importance $M --input "$IO" --viz /dev/null
check "checked before the work: nothing on stdout" [ ! -s "$OUT" ]

# ---------------------------------------------------------------- attribute
ok "attn --help lists attribute" --help
expect "attribute in the command list" '^  attribute ' "$OUT"
ok "attn attribute --help" attribute --help
expect "attribute --help is its usage" '^usage: attn attribute' "$OUT"
# shellcheck disable=SC2086
ok "attribute on the golden batch" attribute $M --input "$IO" --out "$TMP/attr.safetensors"
expect "prints the mean NLL" '^wrote .*attr.safetensors: mean NLL = [0-9.]*; dL/dA and A\*dL/dA of 6 attention tensors$' "$OUT"
shape "grad.enc_self.0 is (B, h, S, S)" "$TMP/attr.safetensors" grad.enc_self.0 "2, 4, 10, 10"
shape "grad.dec_self.1 is (B, h, T, T)" "$TMP/attr.safetensors" grad.dec_self.1 "2, 4, 8, 8"
shape "relevance.cross.1 is (B, h, T, S)" "$TMP/attr.safetensors" relevance.cross.1 "2, 4, 8, 10"
shape "the pass's attention beside them" "$TMP/attr.safetensors" attn.cross.0 "2, 4, 8, 10"
# shellcheck disable=SC2086
ok "attribute --target 3 --gate cross:1:*=0" attribute $M --input "$IO" --target 3 \
    --gate 'cross:1:*=0' --out "$TMP/attr3.safetensors"
expect "prints the log-probability" 'log-probability at the target = -[0-9.]*;' "$OUT"
if [ -n "$HAVE_PY" ]; then
    check "relevance = attn * grad; a gated-off layer's attention gets no gradient" python3 -c '
import array, json, math, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    out = {}
    for k, v in h.items():
        if v["dtype"] == "F32":
            out[k] = array.array("f", b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
    return out
for p in sys.argv[1:]:
    t = load(p)
    for k in ("enc_self", "dec_self", "cross"):
        for i in (0, 1):
            a, g, r = t["attn.%s.%d" % (k, i)], t["grad.%s.%d" % (k, i)], t["relevance.%s.%d" % (k, i)]
            assert r == array.array("f", [x * y for x, y in zip(a, g)]), (p, k, i)
            assert all(math.isfinite(x) for x in g)
t = load(sys.argv[2])
assert not any(t["grad.cross.0"]) and any(t["grad.cross.1"])
' "$TMP/attr.safetensors" "$TMP/attr3.safetensors"
fi
# shellcheck disable=SC2086
ok "attribute --ig 8 --chefer" attribute $M --input "$IO" --ig 8 --chefer --out "$TMP/ig.safetensors"
expect "prints the completeness errors" '^integrated gradients, 8 steps: completeness error enc_self\.0 [0-9.e-]*, ' "$OUT"
shape "ig.cross.1 is (B, h, T, S)" "$TMP/ig.safetensors" ig.cross.1 "2, 4, 8, 10"
shape "chefer.tokens is (B, T, S)" "$TMP/ig.safetensors" chefer.tokens "2, 8, 10"
# shellcheck disable=SC2086
ok "attribute --chefer --target 2" attribute $M --input "$IO" --chefer --target 2 --out "$TMP/ch.safetensors"
shape "chefer.ss is (B, S, S)" "$TMP/ch.safetensors" chefer.ss "2, 10, 10"
shape "chefer.qq is (B, T, T)" "$TMP/ch.safetensors" chefer.qq "2, 8, 8"
shape "chefer.qs is (B, T, S)" "$TMP/ch.safetensors" chefer.qs "2, 8, 10"
if [ -n "$HAVE_PY" ]; then
    check "chefer.tokens row 2 is token 2's R^qs row" python3 -c '
import array, json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return {k: array.array("f", b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in h.items() if v["dtype"] == "F32"}
a, c = load(sys.argv[1])["chefer.tokens"], load(sys.argv[2])["chefer.qs"]
T, S = 8, 10
for b in range(2):
    row = slice((b * T + 2) * S, (b * T + 3) * S)
    assert a[row] == c[row], (b, a[row], c[row])
' "$TMP/ig.safetensors" "$TMP/ch.safetensors"
fi
# shellcheck disable=SC2086
ok "attribute --ig 4 --viz" attribute $M --input "$IO" --ig 4 --out "$TMP/igv.safetensors" \
    --viz "$TMP/attrviz"
expect "--viz says what it wrote" "^wrote 2 charts into $TMP/attrviz" "$OUT"
for f in relevance ig; do
    check "--viz wrote $f.svg" [ -s "$TMP/attrviz/$f.svg" ]
done
if [ -n "$HAVE_PY" ]; then
    check "each cell is its head's sum of the file's relevance / ig tensor" python3 -c '
import array, json, re, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h.pop("__metadata__", None)
for what, svg in (("relevance", sys.argv[2]), ("ig", sys.argv[3])):
    cells = dict(((k, int(l), int(hd)), float(v)) for k, l, hd, v in re.findall(
        r"<title>(\w+) \u00b7 layer (\d+) \u00b7 head (\d+)&#10;[^<]* ([-0-9.e+]+)</title>",
        open(svg, encoding="utf-8").read()))
    assert len(cells) == 3 * 2 * 4, (what, len(cells))
    for k in ("enc_self", "dec_self", "cross"):
        for i in (0, 1):
            v = h["%s.%s.%d" % (what, k, i)]
            x = array.array("f", b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            B, H, q, kk = v["shape"]
            for hd in range(H):
                s = sum(x[(r * H + hd) * q * kk + j] for r in range(B) for j in range(q * kk))
                got = cells[(k, i + 1, hd + 1)]
                assert abs(got - float("%.3g" % s)) <= 1e-9 + 1e-12 * abs(s), (what, k, i, hd, got, s)
' "$TMP/igv.safetensors" "$TMP/attrviz/relevance.svg" "$TMP/attrviz/ig.svg"
fi
# shellcheck disable=SC2086
fails "attribute --viz into /dev/null" 1 attribute $M --input "$IO" --out "$TMP/x.safetensors" \
    --viz /dev/null
check "--viz checked before the work: no output file" [ ! -e "$TMP/x.safetensors" ]
# shellcheck disable=SC2086
fails "attribute --ig 0" 2 attribute $M --input "$IO" --ig 0 --out "$TMP/x.safetensors"
# shellcheck disable=SC2086
fails_with "attribute --target beyond the decoder" 2 'beyond the decoder' attribute $M --input "$IO" \
    --target 8 --out "$TMP/x.safetensors"
# shellcheck disable=SC2086
fails "attribute without --out" 2 attribute $M --input "$IO"
# shellcheck disable=SC2086
fails_with "attribute of a tgt of one column" 1 'needs 2 or more' attribute $M \
    --input "$TMP/short.safetensors" --out "$TMP/x.safetensors"

printf 'interv_cli: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
