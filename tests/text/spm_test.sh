#!/bin/sh
# Test `tokenizer_spm_encode`: a tokenizer trained by libat_text (BPE, vocab
# 200, and unigram, vocab 60) encodes lines as Debian's spm_encode (package
# sentencepiece, an independent program) encodes them with the same model
# file: the same ids and the same pieces, line by line.
#   spm_test.sh SPM_IDS WORKDIR
set -eu
spm_ids=$1
work=$2
if ! command -v spm_encode >/dev/null 2>&1; then
    echo "spm_test.sh: spm_encode not found (Debian package sentencepiece;" \
         "sh cmake/dev.sh deps installs it)" >&2
    exit 1
fi
rm -rf "$work"
mkdir -p "$work"
cd "$work"
# The training text: 600 generated Spanish sentences with accents and ñ.
awk 'BEGIN {
    split("El niño|La mujer|Nuestro señor|El pájaro|La canción|José|María|El corazón|Los días|Aquél", s, "|");
    split("comió|cantó|miró|está en|llegó a|habló con|bendijo|oyó|guardó|pidió", v, "|");
    split("la montaña|el pan|la mañana|el árbol|la nación|el camión|su compañía|la vendimia|el año|la búsqueda", o, "|");
    split(".|?| hoy.| también.| después.| allí.|, y calló.|; así fue.", e, "|");
    x = 12345;
    for (i = 0; i < 600; i++) {
        x = (x * 1103515245 + 12345) % 2147483648; a = int(x / 65536) % 10;
        x = (x * 1103515245 + 12345) % 2147483648; b = int(x / 65536) % 10;
        x = (x * 1103515245 + 12345) % 2147483648; c = int(x / 65536) % 10;
        x = (x * 1103515245 + 12345) % 2147483648; d = int(x / 65536) % 8;
        print s[a+1] " " v[b+1] " " o[c+1] e[d+1];
    }
}' > train.txt
# The lines to encode: seen and unseen words, accents, upper case, a character
# the vocabulary lacks, runs of spaces, an empty line.
cat > lines.txt <<'LINES'
El niño comió el pan.
¿María cantó la canción?
José habló con la nación después.
Aquél guardó   su compañía; así fue.
ÁRBOLES Y MONTAÑAS, Ñandú, pingüino, corazón.
La búsqueda del 中 año
  espacios  al principio y al final  

En el principio creó Dios los cielos y la tierra.
LINES
for m in "bpe 200" "unigram 60"; do
    set -- $m
    "$spm_ids" "$1" "$2" train.txt "$1.model" lines.txt
    spm_encode --model "$1.model" --output_format=id < lines.txt > "spm_ids_$1.txt"
    spm_encode --model "$1.model" --output_format=piece < lines.txt > "spm_pieces_$1.txt"
    if ! cmp -s ids.txt "spm_ids_$1.txt"; then
        echo "spm_test.sh: $1: ids differ from spm_encode's:" >&2
        diff ids.txt "spm_ids_$1.txt" >&2 || true
        exit 1
    fi
    if ! cmp -s pieces.txt "spm_pieces_$1.txt"; then
        echo "spm_test.sh: $1: pieces differ from spm_encode's:" >&2
        diff pieces.txt "spm_pieces_$1.txt" >&2 || true
        exit 1
    fi
    lines=$(wc -l < ids.txt)
    tokens=$(wc -w < ids.txt)
    if [ "$lines" -ne 9 ] || [ "$tokens" -lt 40 ]; then
        echo "spm_test.sh: $1: $lines lines, $tokens ids: too few" >&2
        exit 1
    fi
    echo "spm_test.sh: $1: $lines lines, $tokens ids, the same as spm_encode's"
done
