#!/bin/sh
# Tests of attn train --task translate and attn demo translate (CTest test
# `translate`), on a corpus of three short books of the Debian Bibles and a
# model small enough to train in seconds:
#   sh tests/translate_test.sh path/to/attn
# Failures are one line "attn: ..." on stderr with exit status 1 (runtime)
# or 2 (usage). Prints one line per check; exits 1 if any failed.
set -u

ATTN=${1:?usage: translate_test.sh ATTN}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/attn-translate.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr
passed=0
failed=0
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"

C=$TMP/corpus
ok "corpus of Ruth, Jonah and Obadiah" corpus bible --books Ruth,Jonah,Obad --out "$C"

# a tiny model: every flag of the copy task's model, a small vocabulary
TINY="--vocab-size 300 --layers 1 --d-model 32 --heads 2 --d-ff 64 --batch-tokens 600
      --warmup 20 --lr 1 --max-tokens 120 --threads 1 --quiet"
# shellcheck disable=SC2086  # TINY is a list of words
ok "train 2 epochs" train --task translate --data "$C" $TINY --epochs 2 --out "$TMP/a.safetensors"
check "the training checkpoint is written" [ -s "$TMP/a.safetensors" ]
check "the best model is written beside it" [ -s "$TMP/a.best.safetensors" ]
expect "the summary line" "best validation BLEU" "$OUT"
expect "the tokenizer travels in the checkpoint" '"tokenizer":"' "$TMP/a.safetensors"
expect "so does the best BLEU" '"train.best_bleu":"' "$TMP/a.safetensors"
ok "attn info reads it" info --model "$TMP/a.safetensors"
expect "and shows the tokenizer's size, not its text" "tokenizer = .*bytes)" "$OUT"

# one line per evaluation when not quiet
# shellcheck disable=SC2086
ok "train, not quiet" train --task translate --data "$C" $(echo $TINY | sed 's/--quiet//') \
    --epochs 1 --out "$TMP/v.safetensors"
expect "a line per evaluation with BLEU and chrF" "valid loss .* BLEU .* chrF2" "$OUT"
expect "the tokenizer line" "tokenizer: SentencePiece bpe, a joint vocabulary of 300" "$OUT"

# the four files instead of --data, separate vocabularies
# shellcheck disable=SC2086
ok "train from four files, separate vocabularies" train --task translate \
    --train-src "$C/train.src" --train-tgt "$C/train.tgt" --valid-src "$C/valid.src" \
    --valid-tgt "$C/valid.tgt" --separate-vocab --tokenizer-model unigram $TINY --epochs 1 \
    --out "$TMP/s.safetensors" --best "$TMP/s-best.safetensors"
expect "a tokenizer per side" '"tokenizer.src":"' "$TMP/s.safetensors"
expect "a tokenizer per side (target)" '"tokenizer.tgt":"' "$TMP/s.safetensors"
check "--best names the best model" [ -s "$TMP/s-best.safetensors" ]

# --resume is exact: 1 epoch, then on to 2, equals 2 epochs at once
# shellcheck disable=SC2086
ok "train 1 epoch" train --task translate --data "$C" $TINY --epochs 1 --out "$TMP/b.safetensors"
# shellcheck disable=SC2086
ok "resume it to 2 epochs" train --task translate --data "$C" --batch-tokens 600 \
    --max-tokens 120 --threads 1 --quiet --epochs 2 --resume "$TMP/b.safetensors" \
    --out "$TMP/b.safetensors"
check "the resumed run equals the straight one, byte for byte" \
    cmp -s "$TMP/a.safetensors" "$TMP/b.safetensors"
check "and so do their best models" cmp -s "$TMP/a.best.safetensors" "$TMP/b.best.safetensors"

# with evaluations every 3 steps (counted from the last one, the end of an
# epoch's too) the resumed run evaluates where the straight one did
# shellcheck disable=SC2086
ok "train 2 epochs, evaluating every 3 steps" train --task translate --data "$C" $TINY \
    --epochs 2 --eval-every 3 --out "$TMP/e.safetensors"
# shellcheck disable=SC2086
ok "the same, 1 epoch" train --task translate --data "$C" $TINY --epochs 1 --eval-every 3 \
    --out "$TMP/f.safetensors"
ok "then resumed to 2" train --task translate --data "$C" --batch-tokens 600 \
    --max-tokens 120 --threads 1 --quiet --epochs 2 --eval-every 3 --resume "$TMP/f.safetensors" \
    --out "$TMP/f.safetensors"
check "evaluations every K steps resume exactly too, byte for byte" \
    cmp -s "$TMP/e.safetensors" "$TMP/f.safetensors"
check "and so do their best models" cmp -s "$TMP/e.best.safetensors" "$TMP/f.best.safetensors"
expect "the last evaluation's step travels in the checkpoint" '"train.last_eval":"16"' \
    "$TMP/e.safetensors"

# a time budget that runs out after the first step, then resumed: the same
# shellcheck disable=SC2086
run train --task translate --data "$C" $TINY --epochs 2 --minutes 0.0001 --out "$TMP/c.safetensors"
check "a budget that ran out exits 0" [ "$rc" -eq 0 ]
expect "and says so" "the time budget ran out" "$OUT"
# shellcheck disable=SC2086
ok "resume after the budget" train --task translate --data "$C" --batch-tokens 600 \
    --max-tokens 120 --threads 1 --quiet --epochs 2 --resume "$TMP/c.safetensors" \
    --out "$TMP/c.safetensors"
# (the metadata differ: the stopped run evaluated after its first step)
ok "a budget's stop and resume equal the straight run" compare "$TMP/a.safetensors" \
    "$TMP/c.safetensors" --atol 0

# bad input
B=$TMP/bad
mkdir -p "$B"
head -n 10 "$C/train.src" >"$B/short.src"
head -n 11 "$C/train.tgt" >"$B/short.tgt"
fails_with "line counts differ" 1 "has 10 lines but .* has 11" train --task translate \
    --train-src "$B/short.src" --train-tgt "$B/short.tgt" --valid-src "$C/valid.src" \
    --valid-tgt "$C/valid.tgt" --out "$TMP/x.safetensors"
{ head -n 3 "$C/train.src"; echo; head -n 6 "$C/train.src" | tail -n 2; } >"$B/empty.src"
head -n 6 "$C/train.tgt" >"$B/empty.tgt"
fails_with "an empty line" 1 "line 4 is empty" train --task translate \
    --train-src "$B/empty.src" --train-tgt "$B/empty.tgt" --valid-src "$C/valid.src" \
    --valid-tgt "$C/valid.tgt" --out "$TMP/x.safetensors"
{ cat "$C/train.src"; printf 'caf\351 con leche\n'; } >"$B/latin1.src"
{ cat "$C/train.tgt"; printf 'coffee with milk\n'; } >"$B/latin1.tgt"
fails_with "invalid UTF-8" 1 "UTF-8" train --task translate --vocab-size 300 \
    --train-src "$B/latin1.src" --train-tgt "$B/latin1.tgt" --valid-src "$C/valid.src" \
    --valid-tgt "$C/valid.tgt" --out "$TMP/x.safetensors"
fails_with "no data" 2 "needs --data" train --task translate --out "$TMP/x.safetensors"
fails_with "--data and files" 2 "not both" train --task translate --data "$C" \
    --train-src "$C/train.src" --out "$TMP/x.safetensors"
fails_with "a missing folder" 1 "train.src" train --task translate --data "$TMP/nowhere" \
    --out "$TMP/x.safetensors"
fails_with "a vocabulary the text cannot fill" 2 "tokenizer" train --task translate --data "$C" \
    --vocab-size 100000 --out "$TMP/x.safetensors"
fails_with "an unknown tokenizer model" 2 "bpe or unigram" train --task translate --data "$C" \
    --tokenizer-model wordpiece --out "$TMP/x.safetensors"
fails_with "--best equal to --out" 2 "same file" train --task translate --data "$C" \
    --out "$TMP/x.safetensors" --best "$TMP/x.safetensors"
fails_with "an unwritable --out, before any work" 1 "" train --task translate --data "$C" \
    --out /nonexistent/dir/x.safetensors
fails_with "resume with another tokenizer" 2 "keeps the checkpoint's tokenizer" train --task \
    translate --data "$C" --resume "$TMP/a.safetensors" --vocab-size 500
fails_with "resume with another model" 2 "differs from the checkpoint" train --task translate \
    --data "$C" --resume "$TMP/a.safetensors" --d-model 64 --out "$TMP/x.safetensors"
fails_with "resume from weights only" 1 "not a training checkpoint" train --task translate \
    --data "$C" --resume "$TMP/a.best.safetensors" --out "$TMP/x.safetensors"
fails_with "an unknown task" 2 "copy, translate" train --task summarize
check "no file was left behind by the failures" [ ! -e "$TMP/x.safetensors" ]

# attn demo translate, end to end on the small corpus with a tiny model (the
# demo passes train flags on)
D=$TMP/demo
run demo translate --books Ruth,Jonah,Obad --minutes 0.05 --vocab-size 300 --layers 1 \
    --d-model 32 --heads 2 --d-ff 64 --eval-every 0 --max-tokens 120 --batch-tokens 600 \
    --threads 1 --out "$D"
check "demo translate exits 0" [ "$rc" -eq 0 ]
expect "it builds the corpus" "attn corpus bible --out $D/corpus" "$OUT"
expect "it scores the test verses greedily" "greedy:  BLEU" "$OUT"
expect "and with beam 4" "beam 4:  BLEU" "$OUT"
expect "it shows test verses" "^   es:  Y murió Elimelech" "$OUT"
for f in model.safetensors train.safetensors test.greedy.txt test.beam4.txt report/index.html \
         corpus/test.src; do
    check "demo translate wrote $f" [ -s "$D/$f" ]
done
check "a translation per test verse" [ "$(wc -l <"$D/test.beam4.txt")" -eq "$(wc -l <"$D/corpus/test.src")" ]
expect "the report has subword pieces on its axes" "▁" "$D/report/index.html"
ok "the demo's model translates" translate --model "$D/model.safetensors" --beam 1 "Y murió"
run demo translate --books Ruth,Jonah,Obad --minutes 0.02 --vocab-size 300 --layers 1 \
    --d-model 32 --heads 2 --d-ff 64 --eval-every 0 --max-tokens 120 --batch-tokens 600 \
    --threads 1 --out "$D"
expect "a second run reuses the corpus" "the corpus: reusing" "$OUT"
fails_with "the demo's own paths are not flags of train" 2 "the demo's to set" \
    demo translate --data "$C" --out "$D"
fails_with "a bad train flag is train's error" 2 "train:" demo translate --books Ruth \
    --layers 0 --out "$D"

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
