#!/bin/sh
# Tests of attn heads (CTest test `heads_cli`): the role of every head on the
# golden tiny model, its JSON, user templates and bad input:
#   sh tests/heads_cli_test.sh path/to/attn path/to/tests/data
# Prints one line per check; exits 1 if any failed.
set -u

ATTN=${1:?usage: heads_cli_test.sh ATTN DATA_DIR}
DATA=${2:?usage: heads_cli_test.sh ATTN DATA_DIR}
TINY=$DATA/golden/tiny
# pass, fail, run, ok, fails, fails_with, expect, expect_not, check
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-heads

need_golden heads_cli_test.sh
M="--model $TINY/model.safetensors --heads 4"
IO=$TINY/io.safetensors   # src (2, 10), tgt (2, 9): cross-attention is 9 x 10
PY=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import json' 2>/dev/null; then PY=$p; break; fi
done

# ---------------------------------------------------------------- help
ok "attn --help" --help
expect "attn --help lists heads" '^  heads ' "$OUT"
ok "attn heads --help" heads --help
expect "heads --help is its usage" '^usage: attn heads' "$OUT"
fails "attn heads --no-such-flag" 2 heads --no-such-flag
fails_with "attn heads without --model" 2 'model' heads --input "$IO"
fails_with "attn heads without --input" 2 'input' heads --model "$TINY/model.safetensors"

# ---------------------------------------------------------------- the table
# shellcheck disable=SC2086  # $M is a list of words
ok "heads on the tiny model" heads $M --input "$IO"
expect "a header line" '^kind  *layer head  best  *score$' "$OUT"
rows=$(grep -c -E '^(enc_self|dec_self|cross) ' "$OUT")
check "one line per head: 3 kinds x 2 layers x 4 heads" [ "$rows" -eq 24 ]
expect "cross layer 2 head 4 has a label" '^cross  *2  *4  [a-z]' "$OUT"

# ---------------------------------------------------------------- --json
# shellcheck disable=SC2086
ok "heads --json" heads $M --input "$IO" --json
cp "$OUT" "$TMP/plain.json"
if [ -n "$PY" ]; then
    check "the JSON's shape and nulls" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
pats = d["patterns"]
assert pats == ["diagonal", "prev", "next", "prev2", "next2", "first", "eos", "broad",
                "monotonic"], pats
for kind in ("enc_self", "dec_self", "cross"):
    layers = d["heads"][kind]
    assert len(layers) == 2 and all(len(r) == 4 for r in layers), kind
    for row in layers:
        for c in row:
            s = c["scores"]
            assert sorted(s) == sorted(pats)
            assert c["best"] in pats and c["score"] == s[c["best"]]
            assert c["score"] == max(v for v in s.values() if v is not None)
            assert all(v is None or 0 <= v <= 1 + 1e-9 for v in s.values())
            assert (s["monotonic"] is None) == (kind != "cross"), (kind, s)
' "$TMP/plain.json"
else
    pass "the JSON's shape (skipped: no python3)"
fi

# ---------------------------------------------------------------- --template
# col0: every cross-attention query on source position 0 (float32 1.0 is
# 00 00 80 3f), so it must score as "first" (position 0 is never pad here).
row='\000\000\200\077'
i=1
while [ $i -lt 10 ]; do row="$row\\000\\000\\000\\000"; i=$((i + 1)); done
bytes=
i=0
while [ $i -lt 9 ]; do bytes="$bytes$row"; i=$((i + 1)); done
mkst "$TMP/col0.safetensors" '{"cross":{"dtype":"F32","shape":[9,10],"data_offsets":[0,360]}}' "$bytes"
# shellcheck disable=SC2086
ok "heads --template col0=FILE" heads $M --input "$IO" --json --template "col0=$TMP/col0.safetensors"
if [ -n "$PY" ]; then
    check "col0 scores as first on cross, null on the other kinds" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["patterns"][-1] == "col0"
for kind in ("enc_self", "dec_self", "cross"):
    for row in d["heads"][kind]:
        for c in row:
            s = c["scores"]
            if kind == "cross":
                assert abs(s["col0"] - s["first"]) < 1e-7, s
            else:
                assert s["col0"] is None, s
' "$OUT"
else
    pass "col0 scores (skipped: no python3)"
fi
mkst "$TMP/wrong.safetensors" '{"cross":{"dtype":"F32","shape":[10,9],"data_offsets":[0,360]}}' "$bytes"
# shellcheck disable=SC2086
fails_with "a template of the wrong shape" 1 'q_len 9, k_len 10' heads $M --input "$IO" \
    --template "w=$TMP/wrong.safetensors"
mkst "$TMP/neg.safetensors" '{"cross":{"dtype":"F32","shape":[9,10],"data_offsets":[0,360]}}' \
    "\\000\\000\\200\\277$(printf '%s' "$bytes" | cut -c17-)"
# shellcheck disable=SC2086
fails_with "a negative template value" 1 'must be finite and >= 0' heads $M --input "$IO" \
    --template "n=$TMP/neg.safetensors"
# shellcheck disable=SC2086
fails_with "--template without =" 2 'NAME=FILE' heads $M --input "$IO" --template col0
# shellcheck disable=SC2086
fails_with "--template with a name taken" 2 'taken' heads $M --input "$IO" \
    --template "prev=$TMP/col0.safetensors"
# shellcheck disable=SC2086
fails_with "--template of a missing file" 1 'no-such' heads $M --input "$IO" \
    --template "x=$TMP/no-such.safetensors"

# ---------------------------------------------------------------- input
# shellcheck disable=SC2086
fails_with "a missing input" 1 'cannot read input' heads $M --input "$TMP/none.safetensors"
mkst "$TMP/src.safetensors" '{"src":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]}}' \
    '\001\000\000\000\002\000\000\000\003\000\000\000'
# shellcheck disable=SC2086
ok "an input without tgt" heads $M --input "$TMP/src.safetensors"
rows=$(grep -c -E '^enc_self ' "$OUT")
check "without tgt only enc_self is labelled" [ "$rows" -eq 8 ]
expect_not "and no cross line" '^cross ' "$OUT"

# ---------------------------------------------------------------- synthetic heads, --viz
# --override with templates' patterns (written by numpy): each head is
# labelled with its own; --viz charts the labels.
if [ -n "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null; then
    "$PY" - "$IO" "$TMP/ov.safetensors" <<'PYEOF'
import json, struct, sys
import numpy as np
io, out = sys.argv[1], sys.argv[2]
raw = open(io, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
def get(name):
    i = h[name]; lo, hi = i["data_offsets"]
    dt = {"I64": np.int64, "I32": np.int32}[i["dtype"]]
    return np.frombuffer(raw[8 + n + lo:8 + n + hi], dt).reshape(i["shape"])
src, tgt = get("src"), get("tgt")
sv, tv = src != 0, tgt != 0
def probs(kind, roles):
    """(B, h, Lq, Lk): head h on roles[h]; uniform where a role has no key."""
    B, Lk = src.shape
    Lq = Lk if kind == "enc_self" else tgt.shape[1]
    p = np.zeros((B, len(roles), Lq, Lk), np.float32)
    for b in range(B):
        keys = np.flatnonzero(sv[b]); nk = len(keys)
        rows = np.flatnonzero((sv if kind == "enc_self" else tv)[b]); nq = len(rows)
        for hd, role in enumerate(roles):
            for i in range(Lq):
                r = int(np.searchsorted(rows, i))
                c = min(nk - 1, int(np.floor(r * (nk - 1) / max(nq - 1, 1) + 0.5)))
                j = {"first": keys[0], "eos": keys[-1], "diagonal": i, "prev": i - 1,
                     "next": i + 1, "monotonic": keys[c]}.get(role)
                if j is None or not (0 <= j < Lk) or not sv[b, j]:
                    p[b, hd, i, keys] = 1.0 / nk
                else:
                    p[b, hd, i, j] = 1
    return p
t = {"attn.enc_self.0": probs("enc_self", ["prev", "next", "first", "broad"]),
     "attn.cross.1": probs("cross", ["first", "monotonic", "eos", "diagonal"])}
header, blobs, off = {}, [], 0
for name, a in t.items():
    b = a.tobytes()
    header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
hj = json.dumps(header).encode(); hj += b" " * (-len(hj) % 8)
open(out, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
PYEOF
    # shellcheck disable=SC2086
    ok "heads --override synthetic heads --viz" heads $M --input "$IO" \
        --override "$TMP/ov.safetensors" --viz "$TMP/viz"
    for want in 'enc_self  *1  *1  prev ' 'enc_self  *1  *2  next ' 'enc_self  *1  *3  first ' \
                'enc_self  *1  *4  broad ' 'cross  *2  *1  first ' 'cross  *2  *2  monotonic ' \
                'cross  *2  *3  eos ' 'cross  *2  *4  diagonal '; do
        expect "a synthetic head: $want" "^$want *1.0000$" "$OUT"
    done
    expect "--viz says what it wrote" "^wrote 3 charts into $TMP/viz" "$OUT"
    for k in enc_self dec_self cross; do
        check "--viz wrote heads-$k.svg" [ -s "$TMP/viz/heads-$k.svg" ]
    done
    expect "the chart has a legend" '>best template</text>' "$TMP/viz/heads-cross.svg"
    expect "a cell's label and score" '>monotonic</text><text [^>]*>1.00</text>' \
        "$TMP/viz/heads-cross.svg"
    expect_not "no monotonic in a self-attention legend" '>monotonic</text>' \
        "$TMP/viz/heads-enc_self.svg"
    # shellcheck disable=SC2086
    fails_with "--override for another batch" 1 'attn.enc_self.0.*the pass.s rows' heads $M \
        --input "$TMP/src.safetensors" --override "$TMP/ov.safetensors"
else
    pass "synthetic heads (skipped: no python3 with numpy)"
fi
# shellcheck disable=SC2086
ok "--viz of an encoder-only pass" heads $M --input "$TMP/src.safetensors" --viz "$TMP/viz1"
check "one chart: heads-enc_self.svg" [ -s "$TMP/viz1/heads-enc_self.svg" ]
check "and no decoder chart" [ ! -e "$TMP/viz1/heads-cross.svg" ]

printf 'heads_cli: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
