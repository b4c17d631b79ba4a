#!/bin/sh
# The explorer on a long pair (issue 11, item 11; docs/explorer.md): a model
# of 6 layers x 8 heads (d_model 64, random weights), one forward pass on
# 512 source and 512 target tokens, the explorer of that pass, opened in
# headless Chromium: file size, load time (navigation start to the first
# frame after the first heatmap is drawn) and head-switch time (a change of
# the Head menu to the next frame after the redraw). Not part of ctest.
#
#   sh tests/bench/explorer_bench.sh BUILD_DIR [S T LAYERS HEADS [analysis]]
#
# BUILD_DIR is a CMake build of libat (lib/libat.so) whose viz_setup test has
# run (BUILD_DIR/viz-node holds playwright-core); Debian's chromium, node and
# cc. Prints the figures of this build beside those recorded before the
# explorer stored 8-bit heads and drew large maps on a canvas. With
# "analysis", the page also carries the analysis views attn viz --importance
# --relevance --rollout --roles --gold attaches (computed by the library on the
# same pair: docs/explorer.md, "Analysis views"), and their times are printed.
set -eu
[ $# -ge 1 ] || { echo "usage: explorer_bench.sh BUILD_DIR [S T LAYERS HEADS [analysis]]" >&2; exit 2; }
build=$(cd "$1" && pwd)
S=${2:-512} T=${3:-512} L=${4:-6} H=${5:-8} A=${6:-}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/explorer-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
for t in cc node chromium; do
    command -v $t >/dev/null || { echo "explorer_bench: $t not found" >&2; exit 77; }
done
[ -d "$build/viz-node/node_modules/playwright-core" ] ||
    { echo "explorer_bench: run ctest -R viz_setup in $build first" >&2; exit 77; }
# the libraries' folder: the build's lib/, or the source tree's (CMake's default)
libdir=$build/lib
[ -e "$libdir/libat.so" ] || libdir=$top/lib
cc -O2 -I"$top/include" "$here/explorer_bench.c" -L"$libdir" -Wl,-rpath,"$libdir" \
    -lat -lm -o "$work/gen"
"$work/gen" "$work/explorer.html" "$S" "$T" "$L" "$H" ${A:+"$A"}
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
if (now.analysis) {
  const a = now.analysis;
  console.log("analysis views: " + a.grids + " head grids, " + a.maps + " maps (" +
    (a.map_canvas ? "canvas" : "SVG") + "), " + now.gold_outlined + " gold cells outlined");
  row("grid click -> head (ms)", "", a.grid_click_ms_max);
  row("map switch, median (ms)", "", a.map_switch_ms_median);
  row("map switch, max (ms)", "", a.map_switch_ms_max);
  row("output token (ms)", "", a.output_token_ms_max);
  if (!a.grid_click_selects) { console.log("FAIL: a grid click did not select its head"); process.exit(1); }
}
if (now.errors || now.requests_other_than_page || !now.redrawn) { console.log("FAIL: errors, requests or no redraw"); process.exit(1); }
' "$work/now.json"
