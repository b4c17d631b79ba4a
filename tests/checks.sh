# Check helpers of the shell tests of attn (sourced: . tests/checks.sh).
# The sourcing script sets ATTN (the program) and calls start_checks (or sets
# TMP, OUT, ERR and passed=0 failed=0 itself); each check prints one line,
# "ok   NAME" or "FAIL NAME: why" with the first lines of stderr.

# start_checks PREFIX: a temporary folder $TMP (PREFIX.XXXXXX, removed on
# exit), $OUT and $ERR in it for the output of the last run, the counts at 0.
start_checks() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
    trap 'rm -rf "$TMP"' EXIT INT TERM
    OUT=$TMP/stdout
    ERR=$TMP/stderr
    passed=0
    failed=0
}

# need_golden SCRIPT: exits 1 with a message unless $ATTN is a program and
# $TINY holds the golden tiny model.
need_golden() {
    if [ ! -x "$ATTN" ] || [ ! -f "$TINY/model.safetensors" ]; then
        echo "$1: no attn program at $ATTN or no golden data in $TINY" >&2
        exit 1
    fi
}

pass() {
    passed=$((passed + 1))
    printf 'ok   %s\n' "$1"
}

fail() {
    failed=$((failed + 1))
    printf 'FAIL %s: %s\n' "$1" "$2"
    if [ -s "$ERR" ]; then
        sed 's/^/     stderr: /' "$ERR" | head -n 8
    fi
}

# run ARGS...: runs attn, leaving its status in $rc and output in $OUT, $ERR.
# With GUARD=N set, attn is stopped after N seconds (status 124): a check
# that would block fails instead of hanging the test.
GUARD=
run() {
    ${GUARD:+timeout "$GUARD"} "$ATTN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
}

# ok NAME ARGS...: attn ARGS exits 0 with nothing on stderr.
ok() {
    name=$1
    shift
    run "$@"
    if [ "$rc" -ne 0 ]; then
        fail "$name" "exit status $rc, expected 0"
    elif [ -s "$ERR" ]; then
        fail "$name" "exit status 0 but something on stderr"
    else
        pass "$name"
    fi
}

# fails NAME STATUS ARGS...: attn ARGS exits STATUS with exactly one line
# "attn: ..." on stderr.
fails() {
    name=$1
    want=$2
    shift 2
    run "$@"
    lines=$(wc -l <"$ERR")
    if [ -n "$GUARD" ] && [ "$rc" -eq 124 ]; then
        fail "$name" "still running after $GUARD s (blocked?)"
    elif [ "$rc" -ge 128 ]; then
        fail "$name" "crashed (exit status $rc)"
    elif [ "$rc" -ne "$want" ]; then
        fail "$name" "exit status $rc, expected $want"
    elif [ "$lines" -ne 1 ] || ! grep -q '^attn: ' "$ERR"; then
        fail "$name" "stderr is not one line starting 'attn: '"
    else
        pass "$name"
    fi
}

# fails_with NAME STATUS PATTERN ARGS...: fails, and the line matches PATTERN.
fails_with() {
    name=$1
    want=$2
    pattern=$3
    shift 3
    before=$failed
    fails "$name" "$want" "$@"
    if [ "$failed" -eq "$before" ] && ! grep -q -- "$pattern" "$ERR"; then
        passed=$((passed - 1))
        fail "$name" "the message does not match '$pattern'"
    fi
}

# expect NAME PATTERN FILE: the last check's FILE matches the grep pattern.
expect() {
    if grep -q -- "$2" "$3"; then
        pass "$1"
    else
        fail "$1" "no line matches '$2'"
    fi
}

# expect_not NAME PATTERN FILE: no line of FILE matches the grep pattern.
expect_not() {
    if grep -q -- "$2" "$3"; then
        fail "$1" "a line matches '$2'"
    else
        pass "$1"
    fi
}

# check NAME TEST...: passes when the test command (e.g. [ -c /dev/null ]) succeeds.
check() {
    name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name" "not so: $*"; fi
}

# mkst FILE JSON BYTES: writes a safetensors file: the 8-byte little-endian
# header length, the JSON header, then BYTES (a printf format, octal escapes).
# shellcheck disable=SC2059  # the formats are built here on purpose
mkst() {
    header=$2
    n=${#header}
    printf "$(printf '\\%03o\\%03o' $((n % 256)) $((n / 256)))\\000\\000\\000\\000\\000\\000" >"$1"
    printf '%s' "$header" >>"$1"
    printf "$3" >>"$1"
}

# same NAME A B TENSOR...: attn compare --atol 0 of A and B says each TENSOR is equal.
# differs NAME A B TENSOR...: ... says each differs.
tensors_are() {
    want=$1 name=$2 a=$3 b=$4
    shift 4
    run compare "$a" "$b" --atol 0
    bad=
    for t in "$@"; do
        grep -q "^  $t  .* $want" "$OUT" || bad="$bad $t"
    done
    if [ "$rc" -ge 2 ]; then
        fail "$name" "compare exited $rc"
    elif [ -n "$bad" ]; then
        fail "$name" "not '$want':$bad"
    else
        pass "$name"
    fi
}
same() { tensors_are ok "$@"; }
differs() { tensors_are FAIL "$@"; }

# shape NAME FILE TENSOR SHAPE: FILE holds TENSOR of SHAPE, e.g. "2, 4, 10, 8".
shape() {
    run compare "$2" "$2" --atol 0
    if grep -q "^  $3  *\[$4\] " "$OUT"; then
        pass "$1"
    else
        fail "$1" "no $3 [$4] in $2"
    fi
}
