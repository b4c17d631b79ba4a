/* Helper of tests/text/spm_test.sh (test `tokenizer_spm_encode`):
 *
 *   spm_ids bpe|unigram VOCAB TRAIN MODEL LINES
 *
 * trains a tokenizer on TRAIN with libat_text, writes it to MODEL, and
 * prints, for every line of LINES, its ids (one line, space-separated) and
 * then its pieces (same), as `spm_encode --output_format=id` and
 * `--output_format=piece` print them. Exit status 1 and a message on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_text.h"

static int fail(const char *what)
{
    fprintf(stderr, "spm_ids: %s: %s\n", what, at_text_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: spm_ids bpe|unigram VOCAB TRAIN MODEL LINES\n");
        return 2;
    }
    at_tokenizer_options o = {.struct_size = sizeof o,
                              .model = strcmp(argv[1], "bpe") == 0 ? AT_TOK_BPE : AT_TOK_UNIGRAM,
                              .vocab_size = atoi(argv[2])};
    const char *train = argv[3];
    at_tokenizer *t;
    if (at_tokenizer_train(&train, 1, &o, &t) != AT_OK)
        return fail("train");
    if (at_tokenizer_save(t, argv[4]) != AT_OK)
        return fail("save");
    FILE *in = fopen(argv[5], "r");
    if (!in) {
        perror(argv[5]);
        return 1;
    }
    FILE *ids_out = fopen("ids.txt", "w"), *pieces_out = fopen("pieces.txt", "w");
    if (!ids_out || !pieces_out) {
        perror("ids.txt/pieces.txt");
        return 1;
    }
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        size_t len = strcspn(line, "\n");
        const int32_t *ids;
        size_t n;
        if (at_tokenizer_encode(t, line, len, &ids, &n) != AT_OK)
            return fail("encode");
        for (size_t i = 0; i < n; i++)
            fprintf(ids_out, "%s%d", i ? " " : "", (int)ids[i]);
        fputc('\n', ids_out);
        const char *const *pieces;
        if (at_tokenizer_encode_pieces(t, line, len, &pieces, &n) != AT_OK)
            return fail("encode_pieces");
        for (size_t i = 0; i < n; i++)
            fprintf(pieces_out, "%s%s", i ? " " : "", pieces[i]);
        fputc('\n', pieces_out);
    }
    fclose(in);
    if (fclose(ids_out) || fclose(pieces_out)) {
        perror("write");
        return 1;
    }
    at_tokenizer_free(t);
    return 0;
}
