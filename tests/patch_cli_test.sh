#!/bin/sh
# Tests of attn patch and attn counterfactual (CTest test `patch_cli`):
#   sh tests/patch_cli_test.sh path/to/attn path/to/tests/data
# on the golden tiny model: the tables, --json (shapes, corrupt == clean
# gives 0, the seed), bad input. Python checks use json and struct only.
# Prints one line per check; exits 1 if any failed.
set -u

ATTN=${1:?usage: patch_cli_test.sh ATTN DATA_DIR}
DATA=${2:?usage: patch_cli_test.sh ATTN DATA_DIR}
TINY=$DATA/golden/tiny
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-patch

need_golden patch_cli_test.sh
M="--model $TINY/model.safetensors --heads 4"
if ! python3 -c 'import json, struct' 2>/dev/null; then
    echo "patch_cli_test.sh: needs python3 (json, struct)" >&2
    exit 1
fi

# batch FILE SRC_ROWS TGT_ROWS: an I32 src/tgt file, rows as "1 2 3;4 5 6".
batch() {
    python3 - "$@" <<'PY'
import json, struct, sys
path, src, tgt = sys.argv[1:4]
rows = lambda s: [[int(x) for x in r.split()] for r in s.split(";")]
s, t = rows(src), rows(tgt)
blob_s = b"".join(struct.pack("<%di" % len(r), *r) for r in s)
blob_t = b"".join(struct.pack("<%di" % len(r), *r) for r in t)
head = {"src": {"dtype": "I32", "shape": [len(s), len(s[0])], "data_offsets": [0, len(blob_s)]},
        "tgt": {"dtype": "I32", "shape": [len(t), len(t[0])],
                "data_offsets": [len(blob_s), len(blob_s) + len(blob_t)]}}
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + blob_s + blob_t)
PY
}
batch "$TMP/clean.st" "4 5 6 7 8 9;5 6 7 2 0 0" "1 4 5 6 7;1 7 8 0 0"
batch "$TMP/corrupt.st" "9 8 6 5 4 9;7 7 7 2 0 0" "1 4 5 6 7;1 7 8 0 0"
batch "$TMP/wide.st" "4 5 6 7 8 9 4;5 6 7 2 0 0 0" "1 4 5 6 7;1 7 8 0 0"

# json NAME FILE PYTHON: PYTHON (with d the parsed FILE) is true.
json_check() {
    check "$1" python3 -c "import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if ($3) else 1)" "$2"
}
SHAPE='all(len(d[K][k]) == 2 and all(len(r) == 4 for r in d[K][k]) for k in ("enc_self", "dec_self", "cross"))'

# ---------------------------------------------------------------- help
ok "attn --help" --help
expect "attn --help lists patch" '^  patch ' "$OUT"
expect "attn --help lists counterfactual" '^  counterfactual ' "$OUT"
ok "attn patch --help" patch --help
expect "patch --help is its usage" '^usage: attn patch' "$OUT"
ok "attn counterfactual --help" counterfactual --help
expect "counterfactual --help is its usage" '^usage: attn counterfactual' "$OUT"

# ---------------------------------------------------------------- patch
# shellcheck disable=SC2086
ok "patch: the tables" patch $M --clean "$TMP/clean.st" --corrupt "$TMP/corrupt.st"
expect "patch prints both values" '^mean NLL: clean [0-9.]*, corrupt [0-9.]*$' "$OUT"
expect "patch prints the cross table" '^delta = patched - clean, cross' "$OUT"
# shellcheck disable=SC2086
ok "patch --json" patch $M --clean "$TMP/clean.st" --corrupt "$TMP/corrupt.st" --json
cp "$OUT" "$TMP/p.json"
json_check "patch --json: 3 kinds x 2 layers x 4 heads" "$TMP/p.json" "$(echo "$SHAPE" | sed 's/K/"patch"/g')"
json_check "patch --json: the corrupted source changes the value" "$TMP/p.json" \
    'd["clean"] != d["corrupt"] and any(v != 0 for k in d["patch"].values() for r in k for v in r)'
# shellcheck disable=SC2086
ok "patch --target 1 --json, corrupt == clean" patch $M --clean "$TMP/clean.st" \
    --corrupt "$TMP/clean.st" --target 1 --json
cp "$OUT" "$TMP/z.json"
json_check "corrupt == clean: every delta exactly 0, equal values" "$TMP/z.json" \
    'd["clean"] == d["corrupt"] and d["clean"] < 0 and all(v == 0 for k in d["patch"].values() for r in k for v in r)'
# shellcheck disable=SC2086
fails_with "patch: shapes differ" 2 'same shapes' patch $M --clean "$TMP/clean.st" \
    --corrupt "$TMP/wide.st"
# shellcheck disable=SC2086
fails_with "patch --target beyond the target" 2 'beyond' patch $M --clean "$TMP/clean.st" \
    --corrupt "$TMP/corrupt.st" --target 4
# shellcheck disable=SC2086
fails "patch without --corrupt" 2 patch $M --clean "$TMP/clean.st"
# shellcheck disable=SC2086
fails_with "patch of a missing file" 1 'nope' patch $M --clean "$TMP/nope.st" \
    --corrupt "$TMP/corrupt.st"

# shellcheck disable=SC2086
ok "patch --viz" patch $M --clean "$TMP/clean.st" --corrupt "$TMP/corrupt.st" --viz "$TMP/pviz"
expect "says where the chart went" '^wrote .*pviz/patch\.svg$' "$OUT"
expect "a cell per head, its tooltip" '<title>cross · layer 2 · head 4' "$TMP/pviz/patch.svg"
# shellcheck disable=SC2086
fails "patch --viz into /dev/null, before the work" 1 patch $M --clean "$TMP/clean.st" \
    --corrupt "$TMP/corrupt.st" --viz /dev/null
check "nothing on stdout" [ ! -s "$OUT" ]

# ---------------------------------------------------------------- counterfactual
# shellcheck disable=SC2086
ok "counterfactual: the tables" counterfactual $M --input "$TMP/clean.st"
expect "counterfactual prints the uniform cross table" '^total variation, uniform attention, cross' "$OUT"
# shellcheck disable=SC2086
ok "counterfactual --json --seed 7" counterfactual $M --input "$TMP/clean.st" --json --seed 7
cp "$OUT" "$TMP/c7.json"
json_check "counterfactual --json: both 3 x 2 x 4" "$TMP/c7.json" \
    "$(echo "$SHAPE" | sed 's/K/"permuted"/g') and $(echo "$SHAPE" | sed 's/K/"uniform"/g')"
json_check "counterfactual: total variations in [0, 1]" "$TMP/c7.json" \
    'all(0 <= v <= 1 for w in ("permuted", "uniform") for k in d[w].values() for r in k for v in r)'
# shellcheck disable=SC2086
ok "counterfactual --seed 7 again" counterfactual $M --input "$TMP/clean.st" --json --seed 7
check "the same seed, the same output" cmp -s "$OUT" "$TMP/c7.json"
# shellcheck disable=SC2086
ok "counterfactual --seed 8" counterfactual $M --input "$TMP/clean.st" --json --seed 8
cp "$OUT" "$TMP/c8.json"
check "another seed: other permutations, the same uniform" python3 -c '
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
sys.exit(0 if a["permuted"] != b["permuted"] and a["uniform"] == b["uniform"] else 1)' \
    "$TMP/c7.json" "$TMP/c8.json"
# shellcheck disable=SC2086
ok "counterfactual --viz" counterfactual $M --input "$TMP/clean.st" --viz "$TMP/cviz"
check "both charts written" sh -c '[ -s "$1" ] && [ -s "$2" ]' sh "$TMP/cviz/permuted.svg" \
    "$TMP/cviz/uniform.svg"
expect "a cell per head, its tooltip" '<title>enc_self · layer 1 · head 1' "$TMP/cviz/uniform.svg"
# shellcheck disable=SC2086
fails "counterfactual without --input" 2 counterfactual $M
# shellcheck disable=SC2086
fails "counterfactual --seed -1" 2 counterfactual $M --input "$TMP/clean.st" --seed -1

printf 'patch_cli: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
