#!/bin/sh
# Tests of attn rollout (CTest test `rollout_cli`):
#   sh tests/rollout_cli_test.sh path/to/attn path/to/tests/data
# its tensors and their shapes on the golden tiny model, rollout.enc_self
# against the formula applied to attn dump's tensors (with Debian's numpy),
# and its refusals. The values of every tensor are checked against numpy and
# networkx in tests/python/test_rollout.py. Prints one line per check; exits
# 1 if any failed.
set -u

ATTN=${1:?usage: rollout_cli_test.sh ATTN DATA_DIR}
DATA=${2:?usage: rollout_cli_test.sh ATTN DATA_DIR}
TINY=$DATA/golden/tiny
# pass, fail, run, ok, fails, fails_with, expect, expect_not, check
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"
start_checks attn-rollout

# zeros N: N little-endian int32 zeros, as printf escapes.
zeros() {
    i=0
    while [ "$i" -lt "$1" ]; do
        printf '\\000\\000\\000\\000'
        i=$((i + 1))
    done
}

need_golden rollout_cli_test.sh
M="--model $TINY/model.safetensors --heads 4"
IO=$TINY/io.safetensors
R=$TMP/r.safetensors

# ---------------------------------------------------------------- help
ok "attn help rollout" help rollout
expect "rollout --help is its usage" '^usage: attn rollout' "$OUT"
ok "attn --help" --help
expect "attn --help lists rollout" '^  rollout ' "$OUT"

# ---------------------------------------------------------------- what it writes
# shellcheck disable=SC2086
ok "rollout --flow --value-norm" rollout $M --input "$IO" --out "$R" --flow --value-norm
expect "rollout says what it wrote" '11 tensors, batch 2, src_len 10, tgt_len 9' "$OUT"
shape "rollout.enc_self (B,S,S)" "$R" rollout.enc_self "2, 10, 10"
shape "rollout.dec_self (B,T,T)" "$R" rollout.dec_self "2, 9, 9"
shape "rollout.cross (B,T,S)" "$R" rollout.cross "2, 9, 10"
shape "flow.enc_self (B,S,S)" "$R" flow.enc_self "2, 10, 10"
shape "flow.dec_self (B,T,T)" "$R" flow.dec_self "2, 9, 9"
shape "vnorm.enc_self.1 (B,h,S,S)" "$R" vnorm.enc_self.1 "2, 4, 10, 10"
shape "vnorm.cross.0 (B,h,T,S)" "$R" vnorm.cross.0 "2, 4, 9, 10"

# the formula on attn dump's tensors (every row, padded ones included)
# shellcheck disable=SC2086
ok "dump for the reference" dump $M --input "$IO" --out "$TMP/d.safetensors"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    if /usr/bin/python3 - "$R" "$TMP/d.safetensors" >"$OUT" 2>"$ERR" <<'PY'
import json, struct, sys
import numpy as np
def load(p):
    raw = open(p, "rb").read()
    n, = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n])
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                             np.float32).reshape(v["shape"])
            for k, v in h.items() if k != "__metadata__" and v["dtype"] == "F32"}
r, d = load(sys.argv[1]), load(sys.argv[2])
roll = np.eye(10)
for i in range(2):
    a = 0.5 * d["attn.enc_self.%d" % i].astype(np.float64).mean(1) + 0.5 * np.eye(10)
    roll = (a / a.sum(-1, keepdims=True)) @ roll
assert np.allclose(r["rollout.enc_self"], roll, atol=1e-6), abs(r["rollout.enc_self"] - roll).max()
PY
    then pass "rollout.enc_self is the formula on attn dump's tensors"
    else fail "rollout.enc_self is the formula on attn dump's tensors" "numpy check failed"
    fi
fi

mkst "$TMP/src_only.safetensors" \
    '{"src":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]}}' \
    '\001\000\000\000\002\000\000\000\003\000\000\000'
# shellcheck disable=SC2086
ok "rollout without a tgt" rollout $M --input "$TMP/src_only.safetensors" --out "$R" --flow \
    --value-norm
expect "without a tgt: the encoder's only" '4 tensors, batch 1, src_len 3, tgt_len 0' "$OUT"

# ---------------------------------------------------------------- refusals
# shellcheck disable=SC2086
fails "rollout without --out" 2 rollout $M --input "$IO"
# shellcheck disable=SC2086
fails "rollout without --input" 2 rollout $M --out "$R"
# shellcheck disable=SC2086
fails "rollout --no-such-flag" 2 rollout $M --input "$IO" --out "$R" --no-such-flag
mkst "$TMP/long.safetensors" \
    '{"src":{"dtype":"I32","shape":[1,65],"data_offsets":[0,260]}}' "$(zeros 65)"
# shellcheck disable=SC2086
fails_with "rollout --flow on 65 tokens" 1 'at most 64 tokens' rollout $M \
    --input "$TMP/long.safetensors" --out "$R" --flow
# shellcheck disable=SC2086
ok "rollout (no --flow) on 65 tokens" rollout $M --input "$TMP/long.safetensors" --out "$R"
mkst "$TMP/nosrc.safetensors" \
    '{"tgt":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]}}' \
    '\001\000\000\000\002\000\000\000\003\000\000\000'
# shellcheck disable=SC2086
fails_with "rollout of an input without src" 1 'src' rollout $M \
    --input "$TMP/nosrc.safetensors" --out "$R"
mkst "$TMP/rows.safetensors" \
    '{"src":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]},"tgt":{"dtype":"I32","shape":[3,1],"data_offsets":[12,24]}}' \
    '\001\000\000\000\002\000\000\000\003\000\000\000\001\000\000\000\002\000\000\000\003\000\000\000'
# shellcheck disable=SC2086
fails_with "rollout of src and tgt of different batches" 1 'same batch' rollout $M \
    --input "$TMP/rows.safetensors" --out "$R"
fails_with "rollout of a missing model" 1 'cannot' rollout --model "$TMP/none" --input "$IO" \
    --out "$R"

printf 'rollout_cli: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
