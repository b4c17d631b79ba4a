# A toy parallel corpus, Spanish -> English, subject verb object: n pairs drawn
# by a linear congruential generator from seed; side=src prints the Spanish,
# side=tgt the English of the same pairs. Used by tests/cli_test.sh and
# tests/mpi_cli_test.sh:
#   LC_ALL=C awk -v n=600 -v seed=1 -v side=src -f tests/data/toy_corpus.awk
BEGIN {
    ns = split("el niño|la mujer|el pájaro|josé|maría|el rey|la madre|el pueblo", S, "|")
    split("the boy|the woman|the bird|joseph|mary|the king|the mother|the people", SE, "|")
    nv = split("comió|miró|oyó|bendijo|llamó|amó", V, "|")
    split("ate|saw|heard|blessed|called|loved", VE, "|")
    no = split("el pan|la montaña|el árbol|la casa|el agua|la ciudad|el camino", O, "|")
    split("the bread|the mountain|the tree|the house|the water|the city|the way", OE, "|")
    x = seed
    for (i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) % 2147483648; a = int(x / 65536) % ns + 1
        x = (x * 1103515245 + 12345) % 2147483648; b = int(x / 65536) % nv + 1
        x = (x * 1103515245 + 12345) % 2147483648; c = int(x / 65536) % no + 1
        if (side == "src") print S[a] " " V[b] " " O[c] "."
        else print SE[a] " " VE[b] " " OE[c] "."
    }
}
