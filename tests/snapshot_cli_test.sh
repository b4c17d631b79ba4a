#!/bin/sh
# attn train --snapshot-every K --probe F (CTest test `snapshot_cli`): the
# probe's attention and head statistics every K steps in one file, and a
# training run that is the same bit for bit with and without them; attn
# snapshots on that file: the text, --json's keys, --viz's SVG (well-formed,
# xmllint) and HTML timeline (no external URL).
#   sh tests/snapshot_cli_test.sh path/to/attn
set -u

ATTN=${1:?usage: snapshot_cli_test.sh ATTN}
# pass, fail, run, ok, fails, fails_with, expect, expect_not, check
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-snap

# a probe of one copy-task row: src 1 3 5 7 2 4, tgt its first five
mkst "$TMP/probe.safetensors" \
    '{"src":{"dtype":"I32","shape":[1,6],"data_offsets":[0,24]},"tgt":{"dtype":"I32","shape":[1,5],"data_offsets":[24,44]}}' \
    '\001\0\0\0\003\0\0\0\005\0\0\0\007\0\0\0\002\0\0\0\004\0\0\0\001\0\0\0\003\0\0\0\005\0\0\0\007\0\0\0\002\0\0\0'
mkst "$TMP/enc.safetensors" '{"src":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]}}' \
    '\001\0\0\0\003\0\0\0\005\0\0\0'
mkst "$TMP/big.safetensors" '{"src":{"dtype":"I32","shape":[1,2],"data_offsets":[0,8]}}' \
    '\001\0\0\0\077\0\0\0'
SMALL="--epochs 2 --batches 6 --batch-size 8 --seq-len 6 --d-model 16 --heads 2 --d-ff 32 --eval-batches 1 --heldout 4 --quiet"

# shellcheck disable=SC2086
ok "train with snapshots every 4 steps" train $SMALL --out "$TMP/a.safetensors" \
    --snapshot-every 4 --probe "$TMP/probe.safetensors"
expect "says where they went" "^wrote .*a\.snapshots\.safetensors: 4 snapshots of the probe's attention$" "$OUT"
run compare "$TMP/a.snapshots.safetensors" "$TMP/a.snapshots.safetensors"
expect "steps: 0, 4, 8, 12" '^  steps  *\[4\] ' "$OUT"
expect "attn.cross.1: (snapshots, B, h, T, S)" '^  attn\.cross\.1  *\[4, 1, 2, 5, 6\] ' "$OUT"
expect "stats.enc_self.0: (snapshots, h, statistics)" '^  stats\.enc_self\.0  *\[4, 2, 7\] ' "$OUT"
expect "the probe kept beside them" '^  src  *\[1, 6\] ' "$OUT"
expect "roles.dec_self.0: (snapshots, h, templates)" '^  roles\.dec_self\.0  *\[4, 2, 9\] ' "$OUT"
# shellcheck disable=SC2086
ok "the same run without snapshots" train $SMALL --out "$TMP/b.safetensors"
check "the checkpoints are the same bytes" cmp -s "$TMP/a.safetensors" "$TMP/b.safetensors"
if python3 -c 'import json' 2>/dev/null; then
    check "the steps recorded are 0, 4, 8, 12" python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
o = h["steps"]["data_offsets"]
steps = struct.unpack("<4q", b[8 + n + o[0]:8 + n + o[1]])
assert steps == (0, 4, 8, 12), steps
assert h["__metadata__"]["every"] == "4", h["__metadata__"]
' "$TMP/a.snapshots.safetensors"
fi
# shellcheck disable=SC2086
ok "an encoder-only probe, --snapshots" train $SMALL --out "$TMP/c.safetensors" \
    --snapshot-every 6 --probe "$TMP/enc.safetensors" --snapshots "$TMP/enc-snaps.safetensors"
run compare "$TMP/enc-snaps.safetensors" "$TMP/enc-snaps.safetensors"
expect "encoder attention only" '^  attn\.enc_self\.1  *\[3, 1, 2, 3, 3\] ' "$OUT"
expect_not "no decoder attention" '^  attn\.dec_self' "$OUT"

# attn snapshots: when each head took its role
ok "attn snapshots" snapshots --in "$TMP/a.snapshots.safetensors"
expect "a header line" "a\.snapshots\.safetensors: 4 snapshots, steps 0 \.\. 12; probe 1 x 6 -> 5" "$OUT"
expect "a line per head: cross layer 2 head 2" '^cross  *2  *2  [a-z0-9]*  *[0-9.]*  *[0-9][0-9]*  [0-9.]* -> ' "$OUT"
check "3 kinds x 2 layers x 2 heads" [ "$(grep -c '^\(enc_self\|dec_self\|cross\) ' "$OUT")" -eq 12 ]
ok "attn snapshots --json --viz" snapshots --in "$TMP/a.snapshots.safetensors" --json \
    --viz "$TMP/viz"
if python3 -c 'import json' 2>/dev/null; then
    check "--json: steps, roles and every head's role, since, trajectories" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) == {"file", "steps", "roles", "heads"}, sorted(d)
assert d["steps"] == [0, 4, 8, 12], d["steps"]
assert d["roles"] == ["diagonal", "prev", "next", "prev2", "next2", "first", "eos",
                      "broad", "monotonic"], d["roles"]
assert sorted(d["heads"]) == ["cross", "dec_self", "enc_self"]
for kind, layers in d["heads"].items():
    assert len(layers) == 2 and all(len(l) == 2 for l in layers), kind
    for layer in layers:
        for h in layer:
            assert set(h) == {"role", "score", "since", "best", "role_score",
                              "entropy_norm"}, sorted(h)
            assert h["role"] in d["roles"] and h["best"][-1] == h["role"], h
            assert kind == "cross" or h["role"] != "monotonic", h
            i = d["steps"].index(h["since"])
            assert all(b == h["role"] for b in h["best"][i:]), h
            assert i == 0 or h["best"][i - 1] != h["role"], h
            assert h["score"] == h["role_score"][-1], h
            assert len(h["entropy_norm"]) == 4
            assert all(0 <= e <= 1 for e in h["entropy_norm"]), h
' "$OUT"
fi
check "the SVG and the timeline" [ -s "$TMP/viz/snapshots.svg" ] && [ -s "$TMP/viz/timeline.html" ]
if command -v xmllint >/dev/null 2>&1; then
    check "the SVG is well-formed XML" xmllint --noout "$TMP/viz/snapshots.svg"
else
    fail "xmllint is missing (Debian: libxml2-utils)"
fi
check "a panel per kind, layer and head (12)" \
    [ "$(grep -c '^<g>$' "$TMP/viz/snapshots.svg")" -eq 12 ]
check "the timeline loads nothing from the network" \
    sh -c '! grep -Eiq "(https?:)?//[a-z0-9]|<link|src=" "$1"' sh "$TMP/viz/timeline.html"
expect "the timeline holds the 4 steps" '"steps":\[0,4,8,12\]' "$TMP/viz/timeline.html"
if python3 -c 'import json' 2>/dev/null; then
    # a file of an older libat: no roles.* tensors
    python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
out, data = {"__metadata__": h.pop("__metadata__")}, b""
for k, v in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    if not k.startswith("roles."):
        lo, hi = v["data_offsets"]
        out[k] = dict(v, data_offsets=[len(data), len(data) + hi - lo])
        data += b[8 + n + lo:8 + n + hi]
hb = json.dumps(out).encode()
hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + data)
' "$TMP/a.snapshots.safetensors" "$TMP/old.safetensors"
    ok "a file without roles" snapshots --in "$TMP/old.safetensors"
    expect "says so" 'no roles' "$OUT"
    expect "no role, no since" '^cross  *2  *2  -  *-  *-  ' "$OUT"
fi
fails_with "--viz over a file" 1 'snapshots' snapshots --in "$TMP/a.snapshots.safetensors" \
    --viz "$TMP/a.safetensors"
fails_with "--in not a snapshot file" 1 'not a snapshot file' snapshots --in "$TMP/probe.safetensors"
fails_with "--in missing" 1 'cannot read --in' snapshots --in "$TMP/none.safetensors"
fails_with "no --in" 2 'in' snapshots

# shellcheck disable=SC2086
fails_with "--snapshot-every 0" 2 'snapshot-every' train $SMALL --out "$TMP/d.safetensors" \
    --snapshot-every 0 --probe "$TMP/probe.safetensors"
# shellcheck disable=SC2086
fails_with "an unwritable --snapshots" 1 'no/such' train $SMALL --out "$TMP/d.safetensors" \
    --snapshot-every 3 --probe "$TMP/probe.safetensors" --snapshots "$TMP/no/such/s.safetensors"
mkst "$TMP/rows.safetensors" \
    '{"src":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},"tgt":{"dtype":"I32","shape":[1,2],"data_offsets":[16,24]}}' \
    '\001\0\0\0\003\0\0\0\001\0\0\0\003\0\0\0\001\0\0\0\003\0\0\0'
# shellcheck disable=SC2086
fails_with "a probe whose src and tgt rows differ" 1 'same batch' train $SMALL \
    --out "$TMP/d.safetensors" --snapshot-every 3 --probe "$TMP/rows.safetensors"
# shellcheck disable=SC2086
fails_with "--snapshot-every without --probe" 2 'go together' train $SMALL --out "$TMP/d.safetensors" --snapshot-every 3
# shellcheck disable=SC2086
fails_with "--probe without --snapshot-every" 2 'go together' train $SMALL --out "$TMP/d.safetensors" --probe "$TMP/probe.safetensors"
# shellcheck disable=SC2086
fails_with "a probe id outside the vocabulary" 1 'outside the vocabulary' train $SMALL \
    --out "$TMP/d.safetensors" --snapshot-every 3 --probe "$TMP/big.safetensors"
check "nothing written for a refused probe" [ ! -e "$TMP/d.safetensors" ]
# shellcheck disable=SC2086
fails_with "a missing probe" 1 'cannot read --probe' train $SMALL --out "$TMP/d.safetensors" \
    --snapshot-every 3 --probe "$TMP/none.safetensors"

# --probe-text: sentences encoded with a translation run's tokenizer (joint
# here), as attn translate encodes a source: src <s> pieces </s>, tgt the
# target's <s> pieces, both padded with 0
C=$TMP/corpus
ok "a corpus for the translation task" corpus bible --books Ruth,Jonah,Obad --out "$C"
TR="--task translate --data $C --vocab-size 300 --layers 1 --d-model 32 --heads 2 --d-ff 64
    --batch-tokens 600 --warmup 20 --lr 1 --max-tokens 120 --threads 1 --quiet --epochs 1"
S1="Y aconteci\303\263 en los d\303\255as que gobernaban los jueces"
T1="And it came to pass in the days when the judges ruled"
S2="Jon\303\241s se levant\303\263"
T2="But Jonah rose up"
S1=$(printf "$S1") S2=$(printf "$S2")
printf '%s\n' "$S2 ||| $T2" >"$TMP/probe.txt"
# shellcheck disable=SC2086
ok "train --task translate --probe-text" train $TR --out "$TMP/t.safetensors" \
    --snapshot-every 5 --probe-text "$S1 ||| $T1" --probe-text "@$TMP/probe.txt"
# (translate --dump notes what it wrote on stderr)
run translate --model "$TMP/t.safetensors" --dump "$TMP/ds.safetensors" "$S1" "$S2"
check "translate --dump of the sources" [ "$rc" -eq 0 ]
run translate --model "$TMP/t.safetensors" --dump "$TMP/dt.safetensors" "$T1" "$T2"
check "translate --dump of the targets" [ "$rc" -eq 0 ]
if python3 -c 'import json' 2>/dev/null; then
    check "the probe's ids are the tokenizer's" python3 -c '
import json, struct, sys
def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        f = {"I32": "i", "I64": "q"}.get(v["dtype"])
        if f and len(v["shape"]) == 2:
            o = v["data_offsets"]
            vals = struct.unpack("<%d%s" % ((o[1] - o[0]) // struct.calcsize(f), f),
                                 b[8 + n + o[0]:8 + n + o[1]])
            r, c = v["shape"]
            out[k] = [list(vals[i * c:(i + 1) * c]) for i in range(r)]
    return out, h.get("__metadata__", {})
snap, meta = read(sys.argv[1])
ds, _ = read(sys.argv[2])
dt, _ = read(sys.argv[3])
strip = lambda row: [x for x in row if x != 0]
for i in range(2):
    assert strip(snap["src"][i]) == strip(ds["src"][i]), (snap["src"][i], ds["src"][i])
    want = strip(dt["src"][i])
    assert want[0] == 2 and want[-1] == 3, want
    assert strip(snap["tgt"][i]) == want[:-1], (snap["tgt"][i], want)
assert len(snap["src"][0]) == max(len(strip(r)) for r in ds["src"])
assert meta["probe"] == "--probe-text" and meta["probe_text"].count("|||") == 2, meta
' "$TMP/t.snapshots.safetensors" "$TMP/ds.safetensors" "$TMP/dt.safetensors"
fi
# shellcheck disable=SC2086
fails_with "--probe-text with and without targets" 1 'every sentence has one' train $TR \
    --out "$TMP/u.safetensors" --snapshot-every 5 --probe-text "$S1 ||| $T1" --probe-text "$S2"
# shellcheck disable=SC2086
fails_with "--probe and --probe-text" 2 'not both' train $TR --out "$TMP/u.safetensors" \
    --snapshot-every 5 --probe "$TMP/probe.safetensors" --probe-text "$S2"
# shellcheck disable=SC2086
fails_with "--probe-text @ a missing file" 1 'none.txt' train $TR --out "$TMP/u.safetensors" \
    --snapshot-every 5 --probe-text "@$TMP/none.txt"
check "nothing written for a refused probe text" [ ! -e "$TMP/u.safetensors" ]

printf 'snapshot_cli: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
