#!/bin/sh
# The include graph of src/ (every #include "..."), checked: it must have no
# cycle, and no file may include a file of a higher layer (CTest: layers).
#
#   sh tests/layers.sh [SRC_DIR]      (default: the src/ beside this script)
#
# The layers, lowest first, are the folders of src/, in the order the data
# flows (docs/internals.md, "Layers"):
#
#   core      the numerics: kernels forward and backward, the GEMM wrappers,
#             the thread pool, dropout masks, the weights' store. Knows
#             nothing of a model handle.
#   io        files and formats: safetensors (st.c), regular files and
#             atomic replacement (fileio.c). Knows nothing of a model either,
#             so the text library and attn can compile it in alone.
#   model     the handle (struct at_model), its hyperparameters, the passes
#             (forward, training, decoding, beam search) and checkpoints:
#             on top of the kernels, and reading and writing through io.
#   analysis  statistics of a pass's attention (stats.c), read from the model.
#   viz       charts of a pass (SVG, Vega-Lite, HTML): the model's views and
#             its statistics, written through io.
#   text      libat_text (BLEU, chrF, corpora, SentencePiece): a library of
#             its own beside libat; it uses io only.
#   attn      the command-line program: everything above.
#
# A file may include files of its own layer and of lower ones, and the public
# headers of include/ (at.h, at_viz.h, at_text.h) from anywhere. A name is
# looked for beside the including file first, then under src/ (as
# "core/core.h"), then in include/; a name found nowhere is an error too,
# so that a check that cannot see an edge does not pass silently.
set -u

here=$(cd "$(dirname "$0")" && pwd)
src=${1:-"$here/../src"}
src=$(cd "$src" && pwd) || exit 2
inc=$(cd "$src/../include" 2>/dev/null && pwd || echo "$src/../include")
layers="core io model analysis viz text attn"

cd "$src" || exit 2
files=$(find . -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) | sed 's|^\./||' | LC_ALL=C sort)
if [ -z "$files" ]; then
    echo "layers: no sources under $src" >&2
    exit 2
fi

# One line per file, "FILE -", then one per include: "FILE TARGET" (TARGET
# relative to src/, or "<public>" for include/, or "?NAME" when it is found
# nowhere).
edges=$(for f in $files; do
    dir=$(dirname "$f")
    printf '%s -\n' "$f"
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
        while IFS= read -r name; do
            if [ -f "$dir/$name" ]; then
                t=$(cd "$dir" && cd "$(dirname "$name")" && pwd)/$(basename "$name")
                t=${t#"$src"/}
            elif [ -f "$name" ]; then
                t=$name
            elif [ -f "$inc/$name" ]; then
                t="<public>"
            else
                t="?$name"
            fi
            printf '%s %s\n' "$f" "$t"
        done
done)

printf '%s\n' "$edges" | awk -v layers="$layers" -v nfiles="$(printf '%s\n' $files | wc -l)" '
BEGIN {
    n = split(layers, L, " ")
    for (i = 1; i <= n; i++) rank[L[i]] = i
    bad = 0
}
function layer(f,    d) {
    d = f
    sub(/\/.*/, "", d)
    if (d == f) return ""          # a file directly in src/
    return d
}
NF == 2 {
    f = $1; t = $2
    lf = layer(f)
    if (!(lf in rank)) {
        if (!(f in told)) {
            printf "layers: %s is in no layer (the folders are: %s)\n", f, layers
            told[f] = 1
        }
        bad = 1
        next
    }
    if (t == "-" || t == "<public>") next
    if (substr(t, 1, 1) == "?") {
        printf "layers: %s includes \"%s\", which is neither beside it, under src/ nor in include/\n", f, substr(t, 2)
        bad = 1
        next
    }
    lt = layer(t)
    if (!(lt in rank)) {
        printf "layers: %s includes %s, which is in no layer\n", f, t
        bad = 1
        next
    }
    if (rank[lt] > rank[lf]) {
        printf "layers: %s (layer %s) includes %s (layer %s, higher)\n", f, lf, t, lt
        bad = 1
    }
    nedge[f]++
    to[f, nedge[f]] = t
    node[f] = 1; node[t] = 1
}
# depth-first search; colour 1 = on the path, 2 = done
function visit(v,    i, w) {
    colour[v] = 1
    path[++depth] = v
    for (i = 1; i <= nedge[v]; i++) {
        w = to[v, i]
        if (colour[w] == 1) {
            for (k = depth; k >= 1 && path[k] != w; k--) ;
            cyc = ""
            for (; k <= depth; k++) cyc = cyc path[k] " -> "
            printf "layers: an include cycle: %s%s\n", cyc, w
            bad = 1
        } else if (colour[w] == 0) {
            visit(w)
        }
    }
    depth--
    colour[v] = 2
}
END {
    depth = 0
    for (v in node) if (colour[v] == 0) visit(v)
    if (bad) {
        print "layers: FAILED (the layers, lowest first: " layers "; tests/layers.sh says why)"
        exit 1
    }
    ne = 0
    for (v in nedge) ne += nedge[v]
    printf "layers: %d files, %d includes inside src/, no cycle, none upward (%s)\n", nfiles, ne, layers
}'
