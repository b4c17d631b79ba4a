/* attn stats: the statistics of every attention head on an input, as a
 * table, CSV and JSON (with the Jensen-Shannon divergence between heads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "dist.h"
#include "report.h"

static const char help[] =
    "usage: attn stats --model M.safetensors [--heads H]\n"
    "                  (--src \"...\" [--tgt \"...\"] | --input BATCH.safetensors |\n"
    "                   --src-text \"...\" [--tgt-text \"...\"])\n"
    "                  [--decode [--max-len N] [--start ID] [--end ID]] [--pad ID]\n"
    "                  [--src-vocab F] [--tgt-vocab F] [--topk K] [--csv F] [--json F]\n"
    "\n"
    "Run the model on an input (as attn viz does; see attn viz --help for the input\n"
    "options) and print the statistics of every head of every kind of attention\n"
    "computed, over the valid region only: padded keys carry no weight, padded query\n"
    "rows and, in decoder self-attention, the masked future are left out. Rows of\n"
    "every batch row are averaged together. Columns:\n"
    "  kind       enc_self, dec_self or cross\n"
    "  layer head counted from 1\n"
    "  entropy    mean entropy of a row, in nats\n"
    "  ent/ln n   the same divided by ln(number of valid keys): 0 one key, 1 uniform\n"
    "  max        mean largest weight of a row\n"
    "  disp       dispersion, 1 - max\n"
    "  topK       mean mass of a row's K largest weights\n"
    "  distance   mean attended distance, sum over keys of weight * |query - key|\n"
    "  rows       the number of valid rows averaged\n"
    "\n"
    "  --topk K   K of the top-K mass (default 3)\n"
    "  --csv F    also write the table as CSV (one header line, then a line per head)\n"
    "  --json F   also write it as JSON: {\"heads\": [{kind, layer, head, entropy,\n"
    "             entropy_norm, max, dispersion, topk_mass, distance, rows}, ...],\n"
    "             \"js\": {KIND: [[[...heads] x heads] per layer]}, ...}; js holds the\n"
    "             Jensen-Shannon divergence between every pair of heads of a layer, in\n"
    "             bits (0 identical, 1 disjoint), averaged over the valid rows\n"
    "  -h, --help this text\n"
    "(other options as attn viz: --model, --heads, --src, --tgt, --input, --decode,\n"
    "--max-len, --start, --end, --pad, --src-vocab, --tgt-vocab, and --src-text,\n"
    "--tgt-text: a sentence read by the model's tokenizer, translated greedily when\n"
    "--tgt-text is not given)\n"
    "\n"
    "Under mpirun -np K the ranks share the rows of --input and rank 0 prints the\n"
    "statistics of all of them (each a mean over valid rows, merged as one process\n"
    "takes it); --src, --src-text and --decode run on one process.\n";

/* Under mpirun: keeps this rank's contiguous rows of --input (the first
 * B mod K ranks one more), before the pass. */
static int shard_rows(const pass_args *a, pass *p)
{
    if (!a->input || a->decode) {
        attn_error("stats: under mpirun the ranks share the rows of --input; --src, "
                   "--src-text and --decode run on one process");
        return ATTN_USAGE;
    }
    if (p->B < dist_size()) {
        attn_error("stats: %d rows of --input for %d ranks: every rank needs one", p->B,
                   dist_size());
        return ATTN_FAIL;
    }
    int first, rows;
    dist_shard(p->B, &first, &rows);
    memmove(p->src, p->src + (size_t)first * p->S, (size_t)rows * p->S * sizeof *p->src);
    if (p->tgt)
        memmove(p->tgt, p->tgt + (size_t)first * p->T, (size_t)rows * p->T * sizeof *p->tgt);
    p->B = rows;
    p->row = 0;
    return ATTN_OK;
}

/* Under mpirun: one layer's statistics (H heads) and Jensen-Shannon matrix
 * of this rank's rows become those of every rank's: each a mean over valid
 * rows, so the sums of mean x rows over the ranks, divided by the rows of
 * all, are the means one process takes over all the rows. */
static int merge_ranks(double *st, double *js, int H)
{
    const size_t nst = (size_t)H * AT_STAT_COUNT, n = nst + (size_t)H * H;
    double *sum = malloc(n * sizeof *sum);
    if (!sum) {
        attn_error("stats: out of memory");
        return ATTN_FAIL;
    }
    for (size_t i = 0; i < nst; i++) {
        double rows = st[i - i % AT_STAT_COUNT + AT_STAT_ROWS];
        sum[i] = i % AT_STAT_COUNT == AT_STAT_ROWS ? st[i] : st[i] * rows;
    }
    /* a layer's valid rows are the same for every head: head 0's weigh js */
    for (size_t i = 0; i < (size_t)H * H; i++)
        sum[nst + i] = js[i] * st[AT_STAT_ROWS];
    if (dist_allreduce(NULL, sum, n, AT_REDUCE_DOUBLE) != AT_OK) {
        free(sum);
        attn_error("stats: the reduction over the ranks failed");
        return ATTN_FAIL;
    }
    for (size_t i = 0; i < nst; i++) {
        double rows = sum[i - i % AT_STAT_COUNT + AT_STAT_ROWS];
        st[i] = i % AT_STAT_COUNT == AT_STAT_ROWS ? sum[i] : rows > 0 ? sum[i] / rows : 0;
    }
    for (size_t i = 0; i < (size_t)H * H; i++)
        js[i] = st[AT_STAT_ROWS] > 0 ? sum[nst + i] / st[AT_STAT_ROWS] : 0;
    free(sum);
    return ATTN_OK;
}

static int stats_run(int argc, char **argv)
{
    pass_args a = {0};
    const char *csv = NULL, *json = NULL;
    int topk = 3;
    a.row = 1;
    opt opts[PASS_NOPTS + 3];
    int n = pass_opts(&a, opts);
    const opt own[] = {
        {"topk", OPT_INT, &topk, 1, 1000, false},
        {"csv", OPT_STR, &csv, 0, 0, false},
        {"json", OPT_STR, &json, 0, 0, false},
    };
    memcpy(opts + n, own, sizeof own);
    n += (int)(sizeof own / sizeof *own);
    int rc;
    if (!args_command(argc, argv, opts, n, help, &rc))
        return rc;
    if (args_require("stats", &opts[0]) != ATTN_OK)
        return ATTN_USAGE;
    bool lead = dist_rank() == 0;   /* under mpirun, rank 0 writes */
    if (lead && ((csv && io_check_output("stats", csv) != ATTN_OK) ||
                 (json && io_check_output("stats", json) != ATTN_OK)))   /* before the work */
        return ATTN_FAIL;
    pass p;
    rc = pass_load(&a, "stats", &p);
    int batch = p.B;                /* all the rows, whatever this rank runs */
    if (rc == ATTN_OK && dist_size() > 1 && (rc = shard_rows(&a, &p)) != ATTN_OK)
        pass_free(&p);
    if (rc == ATTN_OK)
        rc = pass_exec(&a, "stats", &p);
    if (rc != ATTN_OK)
        return rc;
    int L = io_model_int(p.m, AT_P_LAYERS), H = io_model_int(p.m, AT_P_HEADS);
    int nk = p.tgt ? 3 : 1;
    double *st = malloc((size_t)H * AT_STAT_COUNT * sizeof *st);
    double *js = malloc((size_t)H * H * sizeof *js);
    tbuf tab = {0}, cs = {0};
    cJSON *root = cJSON_CreateObject(), *rows = cJSON_CreateArray(), *jsd = cJSON_CreateObject();
    bool attached = false;   /* once rows and jsd belong to root, deleting root frees them */
    if (!st || !js || !root || !rows || !jsd) {
        attn_error("stats: out of memory");
        rc = ATTN_FAIL;
        goto done;
    }
    cJSON_AddStringToObject(root, "libat", at_version_string());
    cJSON_AddStringToObject(root, "model", a.model);
    if (a.input)
        cJSON_AddStringToObject(root, "input", a.input);
    cJSON_AddStringToObject(root, "pass", p.decoded ? "greedy decoding"
                                          : p.tgt   ? "teacher forcing"
                                                    : "encoder only");
    if (p.text) {
        cJSON_AddStringToObject(root, "src_text", a.src_text);
        cJSON_AddStringToObject(root, "tgt_text", p.translation ? p.translation : a.tgt_text);
    }
    cJSON_AddNumberToObject(root, "batch", batch);
    cJSON_AddNumberToObject(root, "src_len", p.S);
    cJSON_AddNumberToObject(root, "tgt_len", p.tgt ? p.T : 0);
    cJSON_AddNumberToObject(root, "layers", L);
    cJSON_AddNumberToObject(root, "heads_per_layer", H);
    cJSON_AddNumberToObject(root, "topk", topk);
    cJSON_AddItemToObject(root, "heads", rows);
    cJSON_AddItemToObject(root, "js", jsd);
    attached = true;
    char topcol[16];
    snprintf(topcol, sizeof topcol, "top%d", topk);
    tb_printf(&tab, "%-8s %5s %4s %9s %8s %7s %7s %7s %9s %6s\n", "kind", "layer", "head",
              "entropy", "ent/ln n", "max", "disp", topcol, "distance", "rows");
    tb_printf(&cs, "kind,layer,head,entropy,entropy_norm,max,dispersion,topk_mass,distance,"
                   "rows\n");
    for (int k = 0; k < nk && rc == ATTN_OK; k++) {
        const char *kn = at_viz_kind_name((at_attn_kind)k);
        cJSON *per_layer = cJSON_CreateArray();
        cJSON_AddItemToObject(jsd, kn, per_layer);
        for (int l = 0; l < L && rc == ATTN_OK; l++) {
            if (at_attention_stats(p.m, (at_attn_kind)k, l, topk, AT_STAT_COUNT, st) != AT_OK ||
                at_attention_js(p.m, (at_attn_kind)k, l, js) != AT_OK) {
                attn_error("stats: %s", at_errmsg(p.m));
                rc = ATTN_FAIL;
                break;
            }
            if (dist_size() > 1 && (rc = merge_ranks(st, js, H)) != ATTN_OK)
                break;
            for (int h = 0; h < H; h++) {
                const double *v = st + (size_t)h * AT_STAT_COUNT;
                tb_printf(&tab, "%-8s %5d %4d %9.4f %8.4f %7.4f %7.4f %7.4f %9.4f %6.0f\n", kn,
                          l + 1, h + 1, v[AT_STAT_ENTROPY], v[AT_STAT_ENTROPY_NORM],
                          v[AT_STAT_MAX], v[AT_STAT_DISPERSION], v[AT_STAT_TOPK],
                          v[AT_STAT_DISTANCE], v[AT_STAT_ROWS]);
                tb_printf(&cs, "%s,%d,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.0f\n", kn, l + 1, h + 1,
                          v[AT_STAT_ENTROPY], v[AT_STAT_ENTROPY_NORM], v[AT_STAT_MAX],
                          v[AT_STAT_DISPERSION], v[AT_STAT_TOPK], v[AT_STAT_DISTANCE],
                          v[AT_STAT_ROWS]);
                cJSON *o = cJSON_CreateObject();
                cJSON_AddItemToArray(rows, o);
                cJSON_AddStringToObject(o, "kind", kn);
                cJSON_AddNumberToObject(o, "layer", l + 1);
                cJSON_AddNumberToObject(o, "head", h + 1);
                cJSON_AddNumberToObject(o, "entropy", v[AT_STAT_ENTROPY]);
                cJSON_AddNumberToObject(o, "entropy_norm", v[AT_STAT_ENTROPY_NORM]);
                cJSON_AddNumberToObject(o, "max", v[AT_STAT_MAX]);
                cJSON_AddNumberToObject(o, "dispersion", v[AT_STAT_DISPERSION]);
                cJSON_AddNumberToObject(o, "topk_mass", v[AT_STAT_TOPK]);
                cJSON_AddNumberToObject(o, "distance", v[AT_STAT_DISTANCE]);
                cJSON_AddNumberToObject(o, "rows", v[AT_STAT_ROWS]);
            }
            cJSON *mat = cJSON_CreateArray();
            cJSON_AddItemToArray(per_layer, mat);
            for (int x = 0; x < H; x++)
                cJSON_AddItemToArray(mat, cJSON_CreateDoubleArray(js + (size_t)x * H, H));
        }
    }
    if (rc == ATTN_OK && (tab.oom || cs.oom)) {
        attn_error("stats: out of memory");
        rc = ATTN_FAIL;
    }
    if (rc != ATTN_OK)
        goto done;
    fputs(tab.p, stdout);
    if (csv && lead)
        rc = report_write_file("stats", csv, cs.p, cs.len);
    if (rc == ATTN_OK && json && lead) {
        char *text = cJSON_Print(root);
        if (!text) {
            attn_error("stats: out of memory");
            rc = ATTN_FAIL;
        } else {
            size_t n = strlen(text);
            char *line = malloc(n + 2);
            if (!line) {
                attn_error("stats: out of memory");
                rc = ATTN_FAIL;
            } else {
                memcpy(line, text, n);
                line[n] = '\n';
                rc = report_write_file("stats", json, line, n + 1);
                free(line);
            }
            cJSON_free(text);
        }
    }
done:
    if (!attached) {
        cJSON_Delete(rows);
        cJSON_Delete(jsd);
    }
    cJSON_Delete(root);
    free(tab.p);
    free(cs.p);
    free(st);
    free(js);
    pass_free(&p);
    return rc;
}

int cmd_stats(int argc, char **argv)
{
    int rc = dist_init("stats");
    if (rc == ATTN_OK)
        rc = stats_run(argc, argv);
    return dist_end(rc);
}
