#!/bin/sh
# The explorer on a long pair (issue 11, item 11; docs/explorer.md): a model
# of 6 layers x 8 heads (d_model 64, random weights), one forward pass on
# 512 source and 512 target tokens, the explorer of that pass, opened in
# headless Chromium: file size, load time (navigation start to the first
# frame after the first heatmap is drawn) and head-switch time (a change of
# the Head menu to the next frame after the redraw). Not part of ctest.
#
#   sh tests/bench/explorer_bench.sh BUILD_DIR [S T LAYERS HEADS]
#
# BUILD_DIR is a CMake build of libat (lib/libat.so) whose viz_setup test has
# run (BUILD_DIR/viz-node holds playwright-core); Debian's chromium, node and
# cc. Prints the figures of this build beside those recorded before the
# explorer stored 8-bit heads and drew large maps on a canvas.
set -eu
[ $# -ge 1 ] || { echo "usage: explorer_bench.sh BUILD_DIR [S T LAYERS HEADS]" >&2; exit 2; }
build=$(cd "$1" && pwd)
S=${2:-512} T=${3:-512} L=${4:-6} H=${5:-8}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/explorer-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
for t in cc node chromium; do
    command -v $t >/dev/null || { echo "explorer_bench: $t not found" >&2; exit 77; }
done
[ -d "$build/viz-node/node_modules/playwright-core" ] ||
    { echo "explorer_bench: run ctest -R viz_setup in $build first" >&2; exit 77; }
cc -O2 -I"$top/include" "$here/explorer_bench.c" -L"$build/lib" -Wl,-rpath,"$build/lib" \
    -lat -lm -o "$work/gen"
"$work/gen" "$work/explorer.html" "$S" "$T" "$L" "$H"
echo "explorer of a ${S}x${T} pair, $L layers x $H heads:"
NODE_DIR="$build/viz-node" CHROMIUM=$(command -v chromium) \
    nice node "$here/explorer_bench.mjs" "$work/explorer.html" "$L" "$H" | tee "$work/now.json"
node -e '
const now = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
// recorded at e9c431a (uint16 weights of every head decoded at load, one SVG
// rect per cell) on the same machine, 512x512, 6 x 8
const before = { mb: 100.71, load_ms: 6835, switch_ms_median: 4631, switch_ms_max: 4842, drawing: "262144 rects" };
const row = (n, b, a) => console.log(n.padEnd(24) + String(b).padStart(14) + String(a).padStart(14));
row("", "before", "now");
row("file size (MB)", before.mb, now.mb);
row("load (ms)", before.load_ms, now.load_ms);
row("head switch, median (ms)", before.switch_ms_median, now.switch_ms_median);
row("head switch, max (ms)", before.switch_ms_max, now.switch_ms_max);
row("heatmap drawn as", before.drawing, now.drawing);
if (now.errors || now.requests_other_than_page || !now.redrawn) { console.log("FAIL: errors, requests or no redraw"); process.exit(1); }
' "$work/now.json"
