#!/bin/sh
# The chart tests CTest runs (tests/CMakeLists.txt), one step each:
#
#   viz_test.sh setup   NODE_DIR              npm ci of tests/viz/package-lock.json into
#                                             NODE_DIR (skipped when already done)
#   viz_test.sh charts  ATTN OUT              attn viz on the tiny golden model: CJK
#                                             labels with < & " and a repeated token,
#                                             greedy decoding, a padded batch, and the
#                                             padded batch with every analysis view
#   viz_test.sh xml     OUT                   every SVG parses as XML (xmllint)
#   viz_test.sh vegalite NODE_DIR OUT         every .vl.json compiles with the pinned
#                                             vega-lite and renders with Vega
#   viz_test.sh browser NODE_DIR OUT          the explorer in headless Chromium; the
#                                             CJK chart draws real glyphs; the analysis
#                                             views (analysis.mjs); screenshots in
#                                             OUT/shots
#   viz_test.sh cli     ATTN OUT              attn viz / attn stats on bad input: one
#                                             line on stderr, exit 1 or 2
#
# node, npm, chromium and xmllint come from Debian (sh cmake/dev.sh deps). A
# missing tool skips the step (exit 77) on a developer's machine and fails it
# in CI (CI=true).
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
tests=$(dirname "$here")
step=${1:-}
[ $# -gt 0 ] && shift

need() {
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            if [ "${CI:-}" = true ]; then
                echo "viz $step: $tool not found (CI installs it through cmake/dev.sh)"
                exit 1
            fi
            echo "viz $step: SKIPPED: $tool not found; install the test tools with: sh cmake/dev.sh deps"
            exit 77
        fi
    done
}

case $step in
setup)
    need node npm
    dir=$1
    mkdir -p "$dir"
    cp "$here/package.json" "$here/package-lock.json" "$here"/*.mjs "$dir/"
    if [ -f "$dir/node_modules/.libat-lock" ] &&
        cmp -s "$dir/package-lock.json" "$dir/node_modules/.libat-lock"; then
        echo "viz setup: the pinned packages are installed in $dir"
        exit 0
    fi
    cd "$dir"
    if ! npm ci --no-audit --no-fund --ignore-scripts; then
        if [ "${CI:-}" = true ]; then
            echo "viz setup: npm ci failed"
            exit 1
        fi
        echo "viz setup: SKIPPED: npm ci failed (no registry?)"
        exit 77
    fi
    cp package-lock.json node_modules/.libat-lock
    echo "viz setup: installed $(node -p 'Object.keys(require("./package.json").dependencies).map(n => n + "@" + require("./node_modules/" + n + "/package.json").version).join(" ")')"
    ;;
charts)
    attn=$1 out=$2
    model="--model $tests/data/golden/tiny/model.safetensors --heads 4"
    rm -rf "$out/cjk" "$out/decode" "$out/batch" "$out/analysis"
    # shellcheck disable=SC2086  # $model is two options
    "$attn" viz $model --src-vocab "$here/cjk.vocab" --tgt-vocab "$here/cjk.vocab" \
        --src '<s> 猫 が 座った 猫 a&b <i> "quote"' --tgt '<s> 犬 は 走る 犬' --out "$out/cjk"
    # shellcheck disable=SC2086
    "$attn" viz $model --src "1 2 3 4 5 6 7 8 9 10" --decode --max-len 8 --out "$out/decode"
    # shellcheck disable=SC2086
    "$attn" viz $model --input "$tests/data/golden/tiny/io.safetensors" --row 2 --layer 2 \
        --out "$out/batch"
    # row 2 of the batch (7 source, 7 target positions charted): line 2's links
    # are 4 cells inside the chart (3-3 twice; 9-6 on the source's padding)
    printf '0-0 1-1\n0-0 2-1 3-3 3-3 6-5 9-6\n' >"$out/gold.align"
    # shellcheck disable=SC2086
    "$attn" viz $model --input "$tests/data/golden/tiny/io.safetensors" --row 2 --layer 2 \
        --importance --rollout --relevance --roles --gold "$out/gold.align" --out "$out/analysis"
    for d in cjk decode batch analysis; do
        n=$(find "$out/$d" -name '*.svg' | wc -l)
        v=$(find "$out/$d" -name '*.vl.json' | wc -l)
        [ -f "$out/$d/index.html" ] && [ "$n" -gt 0 ] && [ "$n" -eq "$v" ] || {
            echo "viz charts: $out/$d: $n SVG files, $v Vega-Lite files, index.html: $(ls "$out/$d/index.html" 2>&1)"
            exit 1
        }
        echo "viz charts: $out/$d: index.html, $n SVG and $v Vega-Lite files"
    done
    ;;
xml)
    need xmllint
    out=$1
    n=$(find "$out/cjk" "$out/decode" "$out/batch" -name '*.svg' | wc -l)
    [ "$n" -gt 0 ] || { echo "viz xml: no SVG in $out (run the viz_charts test first)"; exit 1; }
    find "$out/cjk" "$out/decode" "$out/batch" -name '*.svg' -exec xmllint --noout --nonet {} +
    echo "viz xml: $n passed, 0 failed"
    ;;
vegalite)
    need node
    dir=$1 out=$2
    node "$dir/vegalite.mjs" --render "$out/vega" "$out/cjk" "$out/decode" "$out/batch"
    ;;
browser)
    need node chromium
    dir=$1 out=$2
    CHROMIUM=$(command -v chromium) node "$dir/explorer.mjs" --html "$out/cjk/index.html" \
        --expect enc_self=8x8,dec_self=5x5,cross=5x8 --layers 2 --heads 4 \
        --svg "$out/cjk/heatmap-cross-l2-h1.svg" --shots "$out/shots"
    # decoding: 8 ids decoded, 7 decoder positions, 10 source positions
    CHROMIUM=$(command -v chromium) node "$dir/explorer.mjs" --html "$out/decode/index.html" \
        --expect enc_self=10x10,dec_self=7x7,cross=7x10 --layers 2 --heads 4
    # 3 kinds x (importance, ablation, roles) + 2 gold grids; 3 rollouts + R^qs, R^qq
    CHROMIUM=$(command -v chromium) node "$dir/analysis.mjs" --html "$out/analysis/index.html" \
        --layers 2 --heads 4 --grids 11 --maps 5 --links 4 --plain "$out/batch/index.html" \
        --shots "$out/shots"
    ;;
cli)
    attn=$1 out=$2
    model="--model $tests/data/golden/tiny/model.safetensors --heads 4"
    mkdir -p "$out"
    fails=0 passes=0
    # expect STATUS ARGS...: attn exits with STATUS and, on failure, prints one
    # line that starts with "attn: " on stderr
    expect() {
        want=$1
        shift
        set +e
        "$attn" "$@" >"$out/cli.out" 2>"$out/cli.err"
        got=$?
        set -e
        lines=$(wc -l <"$out/cli.err")
        if [ "$got" -ne "$want" ] || { [ "$want" -ne 0 ] && { [ "$lines" -ne 1 ] ||
            ! grep -q '^attn: ' "$out/cli.err"; }; }; then
            echo "FAIL attn $*: exit $got (want $want), stderr:"
            sed 's/^/    /' "$out/cli.err"
            fails=$((fails + 1))
        else
            passes=$((passes + 1))
        fi
    }
    expect 0 viz --help
    expect 0 stats --help
    expect 2 viz
    expect 2 viz --model x.safetensors
    # shellcheck disable=SC2086
    {
        expect 2 viz $model --out "$out/x"
        expect 2 viz $model --src "1 2" --input y --out "$out/x"
        expect 2 viz $model --src "1 two 3" --out "$out/x"
        expect 2 viz $model --src "1 2 3" --tgt "1 2" --decode --out "$out/x"
        expect 2 viz $model --src "1 2 3" --start 1 --out "$out/x"
        expect 2 viz $model --src "1 2 3" --row 2 --out "$out/x"
        expect 2 viz $model --src "1 2 3" --layer 3 --out "$out/x"
        expect 2 viz $model --src "1 2 3" --font "x'y" --out "$out/x"
        expect 2 viz $model --src-vocab "$here/cjk.vocab" --src "<s> 鳥" --out "$out/x"
        expect 1 viz $model --src "1 2 99" --out "$out/x"
        expect 1 viz $model --src "1 2 3" --src-vocab /nonexistent/vocab --out "$out/x"
        expect 1 viz $model --src "1 2 3" --out /proc/no/such/dir
        expect 1 viz --model /nonexistent.safetensors --src "1" --out "$out/x"
        expect 1 viz $model --input /nonexistent.safetensors --out "$out/x"
        expect 0 viz $model --src "1 2 3" --out "$out/enc"
        expect 2 stats $model
        expect 2 stats $model --src "1 2 3" --topk 0
        expect 1 stats $model --src "1 2 3" --csv /proc/no/such.csv
        expect 0 stats $model --src "1 2 3 4" --tgt "1 2 3" --csv "$out/s.csv" --json "$out/s.json"
    }
    # encoder only: no decoder charts
    if ls "$out/enc" | grep -q cross; then
        echo "FAIL attn viz --src only wrote cross-attention charts"
        fails=$((fails + 1))
    fi
    # the CSV: a header and 3 kinds x 2 layers x 4 heads lines
    if [ "$(wc -l <"$out/s.csv")" -ne 25 ]; then
        echo "FAIL stats.csv has $(wc -l <"$out/s.csv") lines, want 25"
        fails=$((fails + 1))
    fi
    echo "viz cli: $passes passed, $fails failed"
    [ "$fails" -eq 0 ]
    ;;
*)
    echo "usage: viz_test.sh setup|charts|xml|vegalite|browser|cli ARGS..." >&2
    exit 2
    ;;
esac
