/* libat_text: whole corpora, one segment per line, as sacreBLEU's command
 * line reads them (at_text_eval_buffers, at_text_eval_files). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "text_internal.h"

typedef struct line {
    size_t off, len;   /* len: trailing white space removed */
} line;

/* Splits s at '\n' as Python's line iteration with newline="\n" does. */
static at_status split_lines(const char *s, size_t n, line **out, size_t *count)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n';
    if (n > 0 && s[n - 1] != '\n')
        k++;
    *out = NULL;
    *count = k;
    if (k == 0)
        return AT_OK;
    line *l = malloc(k * sizeof *l);
    if (!l)
        return text_fail(AT_E_NOMEM, "out of memory (%zu lines)", k);
    size_t j = 0, st = 0;
    for (size_t i = 0; i <= n && j < k; i++) {
        if (i == n || s[i] == '\n') {
            l[j].off = st;
            l[j].len = rstrip_len((const unsigned char *)s + st, i - st);
            j++;
            st = i + 1;
        }
    }
    *out = l;
    return AT_OK;
}

/* Line and byte (both from 1) of offset at in s. */
static void where(const char *s, size_t at, size_t *lineno, size_t *col)
{
    size_t ln = 1, st = 0;
    for (size_t i = 0; i < at; i++)
        if (s[i] == '\n') {
            ln++;
            st = i + 1;
        }
    *lineno = ln;
    *col = at - st + 1;
}

static at_status eval_locked(const char *hyp, size_t hyp_len, const char *const *refs,
                             const size_t *ref_lens, size_t n_refs, const char *const *names,
                             at_bleu *bleu, at_chrf *chrf)
{
    const char *who = "at_text_eval";
    size_t nt = n_refs + 1;
    const char **texts = malloc(nt * sizeof *texts);
    size_t *lens = malloc(nt * sizeof *lens), *counts = calloc(nt, sizeof *counts);
    line **lines = calloc(nt, sizeof *lines);
    char (*dflt)[32] = malloc(nt * sizeof *dflt);
    const char **nm = calloc(nt, sizeof *nm);
    const char **seg = malloc(n_refs * sizeof *seg);
    size_t *seglen = malloc(n_refs * sizeof *seglen);
    at_status s = AT_OK;
    if (!texts || !lens || !counts || !lines || !dflt || !nm || !seg || !seglen) {
        s = text_fail(AT_E_NOMEM, "%s: out of memory", who);
        goto done;
    }
    for (size_t t = 0; t < nt; t++) {
        texts[t] = t ? refs[t - 1] : hyp;
        lens[t] = t ? ref_lens[t - 1] : hyp_len;
        if (t == 0)
            snprintf(dflt[t], sizeof dflt[t], "hypothesis");
        else if (n_refs == 1)
            snprintf(dflt[t], sizeof dflt[t], "reference");
        else
            snprintf(dflt[t], sizeof dflt[t], "reference %zu", t);
        nm[t] = names && names[t] ? names[t] : dflt[t];
        if (!texts[t] && lens[t]) {
            s = text_fail(AT_E_ARG, "%s: the text of %s is NULL", who, nm[t]);
            goto done;
        }
    }
    for (size_t t = 0; t < nt; t++) {
        size_t at = utf8_invalid_at((const unsigned char *)texts[t], lens[t]);
        if (at < lens[t]) {
            size_t ln, col;
            where(texts[t], at, &ln, &col);
            s = text_fail(AT_E_FORMAT, "%s: line %zu is not valid UTF-8 (byte %zu of the line, "
                                       "0x%02x)", nm[t], ln, col,
                          (unsigned)(unsigned char)texts[t][at]);
            goto done;
        }
        s = split_lines(texts[t], lens[t], &lines[t], &counts[t]);
        if (s != AT_OK)
            goto done;
    }
    if (counts[0] == 0) {
        s = text_fail(AT_E_FORMAT, "%s has no line to score", nm[0]);
        goto done;
    }
    for (size_t t = 1; t < nt; t++)
        if (counts[t] != counts[0]) {
            size_t first = (counts[t] < counts[0] ? counts[t] : counts[0]) + 1;
            s = text_fail(AT_E_FORMAT, "%s has %zu line%s but %s has %zu: line %zu of %s has "
                                       "no partner",
                          nm[t], counts[t], counts[t] == 1 ? "" : "s", nm[0], counts[0],
                          first, counts[t] > counts[0] ? nm[t] : nm[0]);
            goto done;
        }
    for (size_t i = 0; i < counts[0]; i++) {
        bool any = false;
        for (size_t t = 1; t < nt; t++)
            any |= lines[t][i].len > 0;
        if (!any) {
            s = text_fail(AT_E_FORMAT, "%s: line %zu is empty (sacreBLEU refuses an empty "
                                       "reference too)", nm[1], i + 1);
            goto done;
        }
    }
    for (size_t i = 0; i < counts[0]; i++) {
        for (size_t r = 0; r < n_refs; r++) {
            seg[r] = texts[r + 1] + lines[r + 1][i].off;
            seglen[r] = lines[r + 1][i].len;
        }
        const char *h = hyp + lines[0][i].off;
        size_t hl = lines[0][i].len;
        if (bleu && (s = bleu_add_segment(bleu, h, hl, seg, seglen, n_refs)) != AT_OK)
            goto done;
        if (chrf && (s = chrf_add_segment(chrf, h, hl, seg, seglen, n_refs)) != AT_OK)
            goto done;
    }
done:
    if (lines)
        for (size_t t = 0; t < nt; t++)
            free(lines[t]);
    free(lines);
    free(texts);
    free(lens);
    free(counts);
    free(dflt);
    free(nm);
    free(seg);
    free(seglen);
    return s;
}

AT_TEXT_API at_status at_text_eval_buffers(const char *hyp, size_t hyp_len,
                                           const char *const *refs, const size_t *ref_lens,
                                           size_t n_refs, const char *const *names,
                                           at_bleu *bleu, at_chrf *chrf)
{
    if ((!hyp && hyp_len) || !refs || !ref_lens || n_refs == 0 || (!bleu && !chrf))
        return text_fail(AT_E_ARG, "at_text_eval_buffers: %s",
                         n_refs == 0 ? "no reference text"
                         : !bleu && !chrf ? "neither a BLEU nor a chrF accumulator"
                                          : "a NULL pointer");
    if (bleu && !text_enter(bleu_busy(bleu), "at_text_eval_buffers"))
        return AT_E_STATE;
    if (chrf && !text_enter(chrf_busy(chrf), "at_text_eval_buffers")) {
        if (bleu)
            text_leave(bleu_busy(bleu));
        return AT_E_STATE;
    }
    at_status s = eval_locked(hyp, hyp_len, refs, ref_lens, n_refs, names, bleu, chrf);
    if (chrf)
        text_leave(chrf_busy(chrf));
    if (bleu)
        text_leave(bleu_busy(bleu));
    return s;
}

AT_TEXT_API at_status at_text_eval_files(const char *hyp_path, const char *const *ref_paths,
                                         size_t n_refs, at_bleu *bleu, at_chrf *chrf)
{
    if (!hyp_path || !ref_paths || n_refs == 0 || (!bleu && !chrf))
        return text_fail(AT_E_ARG, "at_text_eval_files: %s",
                         n_refs == 0 ? "no reference file"
                         : !bleu && !chrf ? "neither a BLEU nor a chrF accumulator"
                                          : "a NULL pointer");
    for (size_t r = 0; r < n_refs; r++)
        if (!ref_paths[r])
            return text_fail(AT_E_ARG, "at_text_eval_files: reference path %zu is NULL", r + 1);
    size_t nt = n_refs + 1;
    unsigned char **bufs = calloc(nt, sizeof *bufs);
    size_t *lens = calloc(nt, sizeof *lens);
    const char **names = malloc(nt * sizeof *names);
    at_status s = AT_OK;
    if (!bufs || !lens || !names) {
        s = text_fail(AT_E_NOMEM, "at_text_eval_files: out of memory");
        goto done;
    }
    for (size_t t = 0; t < nt; t++) {
        names[t] = t ? ref_paths[t - 1] : hyp_path;
        char err[512];
        s = file_read_all(names[t], 0, &bufs[t], &lens[t], err, sizeof err);
        if (s != AT_OK) {
            text_fail(s, "%s", err);
            goto done;
        }
    }
    s = at_text_eval_buffers((const char *)bufs[0], lens[0], (const char *const *)(bufs + 1),
                             lens + 1, n_refs, names, bleu, chrf);
done:
    if (bufs)
        for (size_t t = 0; t < nt; t++)
            free(bufs[t]);
    free(bufs);
    free(lens);
    free(names);
    return s;
}
