#!/bin/sh
# The README's two commands, run from anywhere:
#
#   sh cmake/dev.sh demo [ARGS...]  install missing Debian packages, build (Release)
#                                   in build/, run ./build/attn demo ARGS...
#   sh cmake/dev.sh test            install missing Debian packages; optimised build in
#                                   build/ + every test; the docs (warnings are errors);
#                                   ASan+UBSan build in build-asan/ + every test again;
#                                   TSan build in build-tsan/ + the threaded suites;
#                                   the training suite of build/ under valgrind
#   sh cmake/dev.sh deps            only install the missing Debian packages
#
# Environment: AT_WERROR=ON|OFF (default OFF; ON when CI=true), JOBS (parallel
# build jobs, default nproc), CTEST_PARALLEL_LEVEL (tests at once, default 1).
set -eu

root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"

DEBS="build-essential cmake pkg-config libopenblas-dev libcjson-dev check libsubunit-dev doxygen abigail-tools python3 python3-numpy"
# What the chart tests use (tests/viz/): Node.js and npm for the pinned vega-lite
# and playwright-core, Chromium and CJK fonts for the browser test, xmllint.
DEBS="$DEBS nodejs npm chromium fonts-noto-cjk libxml2-utils"
# memcheck over the training suite (valgrind_tests)
DEBS="$DEBS valgrind"
# The text library's metric test (tests/text/check_metrics.py) compares BLEU
# with NLTK's corpus_bleu; the Python tests (tests/python/test_text.py) compare
# the tokenizer with python3-sentencepiece; torch_ref (tests/torch/) compares
# libat with an independent PyTorch model; tests/python/test_rollout.py
# compares attention flow with networkx's maximum flow.
DEBS="$DEBS python3-nltk python3-sentencepiece python3-torch python3-networkx"
# The text library reads SWORD Bibles with libsword; attn corpus bible and its
# test (tests/text/corpus_test.sh) use the Spanish and English modules.
DEBS="$DEBS libsword-dev libsword-utils sword-text-sparv sword-text-kjv sword-text-web"
# Its tokenizer is SentencePiece; the tokenizer test (tests/text/spm_test.sh)
# compares its ids with Debian's spm_encode.
DEBS="$DEBS libsentencepiece-dev sentencepiece"
# Data-parallel training (mpirun -np K attn train) and its test (mpi_cli) need
# Open MPI: the headers and library, and mpirun.
DEBS="$DEBS libopenmpi-dev openmpi-bin"
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
WERROR=${AT_WERROR:-OFF}
if [ "${CI:-}" = true ]; then
    WERROR=ON
fi

say() {
    printf 'dev.sh: %s\n' "$*"
}

# Install whichever of $DEBS is missing (Debian/Ubuntu).
deps() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "no dpkg here: make sure the equivalents of these Debian packages are installed: $DEBS"
        return 0
    fi
    missing=""
    for p in $DEBS; do
        # Node.js from elsewhere (NodeSource's package brings its own npm) counts
        case $p in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
        esac
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing="$missing $p"
        fi
    done
    if [ -z "$missing" ]; then
        return 0
    fi
    say "installing Debian packages:$missing"
    if [ "$(id -u)" -eq 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        say "not root and no sudo; as root, run:"
        printf '  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends%s\n' "$missing"
        exit 1
    fi
    $sudo apt-get update
    # shellcheck disable=SC2086  # $missing is a list of words
    $sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends $missing
}

# build_tree DIR CMAKE-ARGS...: configure and build one tree.
build_tree() {
    dir=$1
    shift
    cmake -S . -B "$dir" -DAT_WERROR="$WERROR" "$@" &&
        cmake --build "$dir" -j "$JOBS"
}

test_tree() {
    (cd "$1" && ctest --output-on-failure --no-tests=error)
}

release_build() {
    build_tree build -DCMAKE_BUILD_TYPE=Release
}

release_tests() {
    test_tree build
}

docs() {
    cmake -S . -B build -DAT_WERROR="$WERROR" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build build --target docs
}

asan_build() {
    build_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DAT_SANITIZE=ON \
        -DAT_OUTPUT_TO_LIB=OFF -DAT_BUILD_DOCS=OFF
}

asan_tests() {
    test_tree build-asan
}

# ThreadSanitizer over the suites that run threads: shared handles in four
# threads, the library's own pool in training and decoding, one handle used
# by two threads (reliability; its out-of-memory tests need malloc to return
# NULL under TSan too), handles in two threads summing their gradients for
# at_train_step_reduce (reduce). OpenBLAS is
# not instrumented, so its own threads' hand-offs look like races to TSan:
# it runs single-threaded here (in the calling thread, where TSan sees all).
tsan_build() {
    build_tree build-tsan -DCMAKE_BUILD_TYPE=Debug -DAT_SANITIZE=thread \
        -DAT_OUTPUT_TO_LIB=OFF -DAT_BUILD_DOCS=OFF -DAT_BUILD_EXAMPLES=OFF
}

tsan_tests() {
    (cd build-tsan && TSAN_OPTIONS=halt_on_error=1:allocator_may_return_null=1 \
        OPENBLAS_NUM_THREADS=1 ctest --output-on-failure \
        --no-tests=error -R '^(threads|train|decode|reliability|reduce)$')
}

# Valgrind's memcheck over the training suite of the Release build: reads of
# uninitialised memory and leaks in the optimised library, without a
# sanitizer's instrumentation. AT_TEST_QUICK=1 shortens the suite's one long
# test (the copy task: 50 steps instead of 300), which alone took more than
# 15 minutes under valgrind; the whole suite then takes about 2 minutes.
# tests/valgrind/libat.supp: the pool's workers outlive main.
valgrind_tests() {
    AT_TEST_QUICK=1 CK_FORK=no OPENBLAS_NUM_THREADS=1 \
        valgrind -q --error-exitcode=1 --leak-check=full \
        --suppressions=tests/valgrind/libat.supp build/tests/at_tests train
}

# step NAME [NEEDS]: run the function NAME unless the step NEEDS failed.
ok=""
failed=""
step() {
    name=$1
    needs=${2:-}
    if [ -n "$needs" ] && case " $failed " in *" $needs "*) true ;; *) false ;; esac; then
        say "== $name: skipped, $needs failed"
        failed="$failed $name"
        return 0
    fi
    say "== $name"
    if "$name"; then
        ok="$ok $name"
    else
        say "== $name: FAILED"
        failed="$failed $name"
    fi
}

cmd=${1:-}
if [ $# -gt 0 ]; then
    shift
fi
case $cmd in
deps)
    deps
    ;;
demo)
    deps
    if ! ls src/attn/*.c >/dev/null 2>&1; then
        say "src/attn/ has no sources yet: there is no attn program to run"
        exit 1
    fi
    cmake -S . -B build -DAT_WERROR="$WERROR" -DCMAKE_BUILD_TYPE=Release
    # The program and the library it links, not the tests.
    cmake --build build -j "$JOBS" --target attn
    exec ./build/attn demo "$@"
    ;;
test)
    deps
    step release_build
    step release_tests release_build
    step docs
    step asan_build
    step asan_tests asan_build
    step tsan_build
    step tsan_tests tsan_build
    step valgrind_tests release_build
    if [ -n "$failed" ]; then
        say "test: FAILED:$failed (passed:${ok:- none})"
        exit 1
    fi
    say "test: ALL STEPS PASSED:$ok"
    ;;
*)
    echo "usage: sh cmake/dev.sh demo [ARGS...] | test | deps" >&2
    exit 2
    ;;
esac
