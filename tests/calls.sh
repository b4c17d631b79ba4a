#!/bin/sh
# The call graph of the library's objects, file by file, checked as
# tests/layers.sh checks the include graph (CTest: calls): no file calls a
# function of a higher layer (core < io < model < analysis < viz), and the
# files call each other in no circle (viz.c sits on the chart writers, which
# sit on viz/common.c; in model/, config.c < meta.c < model.c < forward.c <
# train.c, decode.c, beam.c, checkpoint.c). An edge is an undefined symbol of
# one object that another object defines.
#
#   sh tests/calls.sh NM OBJECT...    (the objects of at_objects)
set -u
nm=$1
shift
layers="core io model analysis viz"

for o in "$@"; do
    f=$(printf '%s\n' "$o" | sed 's|.*/src/||; s|\.o$||')
    "$nm" --defined-only "$o" | awk -v f="$f" 'NF == 3 && $2 ~ /^[TDRB]$/ { print "D", f, $3 }'
    "$nm" -u "$o" | awk -v f="$f" 'NF >= 2 { print "U", f, $NF }'
done | awk -v layers="$layers" '
BEGIN { n = split(layers, L, " "); for (i = 1; i <= n; i++) rank[L[i]] = i }
function layer(f,    d) { d = f; sub(/\/.*/, "", d); return d }
$1 == "D" { def[$3] = $2; files[$2] = 1; next }
$1 == "U" { nu++; uf[nu] = $2; us[nu] = $3; files[$2] = 1 }
function visit(v,    i, w, k, cyc) {
    colour[v] = 1
    path[++depth] = v
    for (i = 1; i <= nedge[v]; i++) {
        w = to[v, i]
        if (colour[w] == 1) {
            for (k = depth; k >= 1 && path[k] != w; k--) ;
            cyc = ""
            for (; k <= depth; k++) cyc = cyc path[k] " -> "
            printf "calls: a circle: %s%s\n", cyc, w
            bad = 1
        } else if (colour[w] == 0) {
            visit(w)
        }
    }
    depth--
    colour[v] = 2
}
END {
    for (i = 1; i <= nu; i++) {
        a = uf[i]; s = us[i]
        if (!(s in def) || def[s] == a) continue
        b = def[s]
        if (!(layer(a) in rank) || !(layer(b) in rank)) {
            printf "calls: %s or %s is in no layer (%s)\n", a, b, layers
            bad = 1
            continue
        }
        if (rank[layer(b)] > rank[layer(a)]) {
            printf "calls: %s calls %s of %s, a higher layer\n", a, s, b
            bad = 1
        }
        if (!((a, b) in seen)) {
            seen[a, b] = 1
            to[a, ++nedge[a]] = b
            ne++
        }
    }
    nf = 0
    for (v in files) { nf++; if (colour[v] == 0) visit(v) }
    if (nf == 0) { print "calls: no objects"; exit 2 }
    if (bad) { print "calls: FAILED (tests/calls.sh says why)"; exit 1 }
    printf "calls: %d objects, %d file-to-file edges, no circle, none upward (%s)\n", nf, ne, layers
}'
