/* The intervention options of attn dump, decode, translate and importance:
 * head gates, attention overrides, taps and the capture policy, from the
 * command line to the library (docs/interventions.md, "On the command line"). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_viz.h"
#include "attn.h"

/* ---------------------------------------------------------------- options */

int intv_opts(intv *iv, const char *who, unsigned which, opt *opts)
{
    memset(iv, 0, sizeof *iv);
    iv->who = who;
    int n = 0;
    if (which & IV_GATE)
        opts[n++] = (opt){"gate", OPT_LIST, &iv->gate_args, 0, 0, false};
    if (which & IV_OVERRIDE)
        opts[n++] = (opt){"override", OPT_STR, &iv->override_path, 0, 0, false};
    if (which & IV_TAPS)
        opts[n++] = (opt){"taps", OPT_STR, &iv->taps_arg, 0, 0, false};
    if (which & IV_KEEP)
        opts[n++] = (opt){"keep", OPT_LIST, &iv->keep_args, 0, 0, false};
    return n;
}

/* ---------------------------------------------------------------- specs */

/* The kind a spec names, or -1. */
static int kind_of(const char *s, size_t len)
{
    for (int k = 0; k < 3; k++) {
        const char *name = at_viz_kind_name((at_attn_kind)k);
        if (strlen(name) == len && strncmp(name, s, len) == 0)
            return k;
    }
    return -1;
}

/* A 1-based layer or head of a spec ("*": AT_ALL) as 0-based; false when it
 * is not a whole number >= 1 (the range is checked against the model later). */
static bool index_of(const char *s, size_t len, int *out)
{
    if (len == 1 && *s == '*') {
        *out = AT_ALL;
        return true;
    }
    if (len == 0 || len > 9)
        return false;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1)
        return false;
    *out = v - 1;
    return true;
}

/* Parses KIND[:L[:H]] (the parts up to the first '=' or the end); min_parts
 * of them are required. Prints the error naming the flag. */
static int parse_head(const char *who, const char *flag, const char *text, size_t len,
                      int min_parts, head_spec *out)
{
    const char *form = min_parts == 3 ? "KIND:L:H=G" : "KIND, KIND:L or KIND:L:H";
    out->kind = out->layer = out->head = AT_ALL;
    out->text = text;
    const char *p = text, *end = text + len;
    int part = 0;
    while (p <= end && part < 3) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        size_t n = (size_t)((c ? c : end) - p);
        bool good = part == 0 ? (out->kind = kind_of(p, n)) >= 0
                              : index_of(p, n, part == 1 ? &out->layer : &out->head);
        if (!good && part == 0) {
            attn_error("%s: --%s '%s': unknown kind '%.*s' (the kinds are enc_self, dec_self "
                       "and cross; the form is %s)", who, flag, text, (int)(n < 40 ? n : 40), p,
                       form);
            return ATTN_USAGE;
        }
        if (!good) {
            attn_error("%s: --%s '%s': the %s must be a whole number from 1, or *, not '%.*s' (the "
                       "form is %s)", who, flag, text, part == 1 ? "layer" : "head",
                       (int)(n < 40 ? n : 40), p, form);
            return ATTN_USAGE;
        }
        part++;
        if (!c)
            break;
        p = c + 1;
        if (part == 3) {
            attn_error("%s: --%s '%s': too many parts (the form is %s)", who, flag, text, form);
            return ATTN_USAGE;
        }
    }
    if (part < min_parts) {
        attn_error("%s: --%s '%s': the form is %s (L and H count from 1; * for every one)",
                   who, flag, text, form);
        return ATTN_USAGE;
    }
    return ATTN_OK;
}

/* --gate KIND:L:H=G */
static int parse_gate(const char *who, const char *text, head_spec *out)
{
    const char *eq = strchr(text, '=');
    if (!eq) {
        attn_error("%s: --gate '%s': no '=G' (the form is KIND:L:H=G, e.g. enc_self:1:*=0)",
                   who, text);
        return ATTN_USAGE;
    }
    int rc = parse_head(who, "gate", text, (size_t)(eq - text), 3, out);
    if (rc != ATTN_OK)
        return rc;
    char *end;
    errno = 0;
    double g = strtod(eq + 1, &end);
    if (eq[1] == '\0' || *end != '\0' || !isfinite(g) || fabs(g) > 3.4e38) {
        attn_error("%s: --gate '%s': G must be a finite number, not '%.40s'", who, text, eq + 1);
        return ATTN_USAGE;
    }
    out->value = (float)g;
    return ATTN_OK;
}

/* --taps SITE,SITE,... into iv->tap_site. */
static int parse_taps(intv *iv)
{
    const char *p = iv->taps_arg;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        char name[32];
        at_site site;
        bool good = n > 0 && n < sizeof name;
        if (good) {
            memcpy(name, p, n);
            name[n] = '\0';
            good = at_site_from_name(name, &site) == AT_OK;
        }
        if (!good) {
            char all[400] = "";
            for (int s = 0; s < AT_SITE_COUNT; s++) {
                const char *sn = at_site_name((at_site)s);
                if (sn && strlen(all) + strlen(sn) + 3 < sizeof all)
                    strcat(strcat(all, s ? ", " : ""), sn);
            }
            attn_error("%s: --taps: unknown site '%.*s' (the sites are %s)", iv->who,
                       (int)(n < 40 ? n : 40), p, all);
            return ATTN_USAGE;
        }
        iv->tap_site[site] = true;
        if (!c)
            return ATTN_OK;
        p = c + 1;
    }
}

int intv_parse(intv *iv)
{
    int ng = iv->gate_args.n, nk = iv->keep_args.n;
    iv->gates = calloc((size_t)(ng ? ng : 1), sizeof *iv->gates);
    iv->keeps = calloc((size_t)(nk ? nk : 1), sizeof *iv->keeps);
    if (!iv->gates || !iv->keeps) {
        attn_error("%s: out of memory", iv->who);
        return ATTN_FAIL;
    }
    for (; iv->ngates < ng; iv->ngates++) {
        int rc = parse_gate(iv->who, iv->gate_args.v[iv->ngates], &iv->gates[iv->ngates]);
        if (rc != ATTN_OK)
            return rc;
    }
    for (; iv->nkeeps < nk; iv->nkeeps++) {
        const char *t = iv->keep_args.v[iv->nkeeps];
        int rc = parse_head(iv->who, "keep", t, strlen(t), 1, &iv->keeps[iv->nkeeps]);
        if (rc != ATTN_OK)
            return rc;
    }
    return iv->taps_arg ? parse_taps(iv) : ATTN_OK;
}

/* ---------------------------------------------------------------- against the model */

/* A spec's layer and head inside the model (ATTN_USAGE naming the range). */
static int check_range(const intv *iv, const char *flag, const head_spec *s)
{
    if (s->layer != AT_ALL && s->layer >= iv->layers) {
        attn_error("%s: --%s '%s': layer %d is out of range; the model has layers 1..%d", iv->who,
                   flag, s->text, s->layer + 1, iv->layers);
        return ATTN_USAGE;
    }
    if (s->head != AT_ALL && s->head >= iv->heads) {
        attn_error("%s: --%s '%s': head %d is out of range; the model has heads 1..%d", iv->who,
                   flag, s->text, s->head + 1, iv->heads);
        return ATTN_USAGE;
    }
    return ATTN_OK;
}

int intv_parse_spec(const char *who, const char *flag, const char *text, int min_parts,
                    head_spec *out)
{
    return parse_head(who, flag, text, strlen(text), min_parts, out);
}

int intv_check_spec(const intv *iv, const char *flag, const head_spec *s)
{
    return check_range(iv, flag, s);
}

bool intv_spec_has(const head_spec *s, int kind, int layer, int head)
{
    return (s->kind == AT_ALL || s->kind == kind) && (s->layer == AT_ALL || s->layer == layer) &&
           (s->head == AT_ALL || s->head == head);
}

/* The table of kept heads, for the writer: kept[(kind * layers + layer) * heads + head]. */
static void mark_kept(intv *iv, const head_spec *s)
{
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < iv->layers; l++)
            for (int h = 0; h < iv->heads; h++)
                if (intv_spec_has(s, k, l, h))
                    iv->kept[((size_t)k * iv->layers + l) * iv->heads + h] = true;
}

/* --keep: drop everything, then keep what each spec names. */
static int apply_keep(intv *iv, at_model *m)
{
    iv->kept = calloc((size_t)3 * iv->layers * iv->heads, sizeof *iv->kept);
    if (!iv->kept) {
        attn_error("%s: out of memory", iv->who);
        return ATTN_FAIL;
    }
    if (at_capture_set(m, AT_ALL, AT_ALL, AT_ALL, 0) != AT_OK) {
        attn_error("%s: --keep: %s", iv->who, at_errmsg(m));
        return ATTN_FAIL;
    }
    for (int i = 0; i < iv->nkeeps; i++) {
        const head_spec *s = &iv->keeps[i];
        if (at_capture_set(m, s->kind, s->layer, s->head, 1) != AT_OK) {
            attn_error("%s: --keep '%s': %s", iv->who, s->text, at_errmsg(m));
            return ATTN_FAIL;
        }
        mark_kept(iv, s);
    }
    return ATTN_OK;
}

int intv_apply(intv *iv, at_model *m)
{
    iv->layers = io_model_int(m, AT_P_LAYERS);
    iv->heads = io_model_int(m, AT_P_HEADS);
    for (int i = 0; i < iv->ngates; i++)
        if (check_range(iv, "gate", &iv->gates[i]) != ATTN_OK)
            return ATTN_USAGE;
    for (int i = 0; i < iv->nkeeps; i++)
        if (check_range(iv, "keep", &iv->keeps[i]) != ATTN_OK)
            return ATTN_USAGE;
    /* in the order given: a later spec wins where two name the same head */
    for (int i = 0; i < iv->ngates; i++) {
        const head_spec *g = &iv->gates[i];
        if (at_gate_set(m, g->kind, g->layer, g->head, g->value) != AT_OK) {
            attn_error("%s: --gate '%s': %s", iv->who, g->text, at_errmsg(m));
            return ATTN_FAIL;
        }
    }
    return iv->nkeeps > 0 ? apply_keep(iv, m) : ATTN_OK;
}

bool intv_kept(const intv *iv, int kind, int layer, int head)
{
    return !iv || !iv->kept || iv->kept[((size_t)kind * iv->layers + layer) * iv->heads + head];
}

/* ---------------------------------------------------------------- --override */

/* Whether name is one attn dump, decode or translate writes besides the
 * attention (a dump may be given as F whole): its outputs, ids and taps. */
static bool dump_name(const char *name)
{
    static const char *const plain[] = {"src_mask", "tgt_mask", "memory", "decoder_out",
                                        "logprobs", "src", "tgt", "ys"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        if (strcmp(name, plain[i]) == 0)
            return true;
    const char *dot = strchr(name, '.');
    size_t n = dot ? (size_t)(dot - name) : strlen(name);
    char site[32];
    at_site s;
    if (n == 0 || n >= sizeof site)
        return false;
    memcpy(site, name, n);
    site[n] = '\0';
    return strcmp(site, "attn") != 0 && at_site_from_name(site, &s) == AT_OK;
}

/* attn.KIND.I or attn.KIND.I.headJ (0-based I and J, as the dump names them). */
static bool override_name(const char *name, int *kind, int *layer, int *head)
{
    if (strncmp(name, "attn.", 5) != 0)
        return false;
    const char *k = name + 5, *dot = strchr(k, '.');
    if (!dot || (*kind = kind_of(k, (size_t)(dot - k))) < 0)
        return false;
    char *end;
    const char *p = dot + 1;
    if (*p < '0' || *p > '9')
        return false;
    long l = strtol(p, &end, 10);
    *head = AT_ALL;
    *layer = l > 100000 ? 100000 : (int)l;
    if (*end == '\0')
        return true;
    if (strncmp(end, ".head", 5) != 0 || end[5] < '0' || end[5] > '9')
        return false;
    long h = strtol(end + 5, &end, 10);
    *head = h > 100000 ? 100000 : (int)h;
    return *end == '\0';
}

static void shape_str(const st_tensor *t, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < t->ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (n < len)
        snprintf(buf + n, len - n, ")");
}

/* The shape the pass needs of override o, or a message: B rows, h heads
 * unless one head, exact S and T where they are >= 0. */
static bool override_shape_ok(const intv *iv, const st_tensor *t, override_t *o, int B, int S,
                              int T, char *why, size_t len)
{
    int nd = o->head == AT_ALL ? 4 : 3;
    if (t->ndim != nd) {
        snprintf(why, len, "must have %d dimensions, %s", nd,
                 nd == 4 ? "(B, h, Lq, Lk)" : "(B, Lq, Lk)");
        return false;
    }
    const int64_t *sh = t->shape;
    int64_t q = sh[nd - 2], k = sh[nd - 1];
    if (sh[0] != B || (nd == 4 && sh[1] != iv->heads) || q < 1 || k < 1 || q > INT32_MAX ||
        k > INT32_MAX) {
        if (nd == 4)
            snprintf(why, len, "must start (%d, %d, ...): the pass's rows, then the model's "
                     "heads", B, iv->heads);
        else
            snprintf(why, len, "must start (%d, ...): the pass's rows", B);
        return false;
    }
    if (o->kind != AT_ATTN_ENC_SELF && T == 0) {
        snprintf(why, len, "is decoder attention, and this pass has no target (no tgt)");
        return false;
    }
    int64_t wq = o->kind == AT_ATTN_ENC_SELF ? S : T, wk = o->kind == AT_ATTN_DEC_SELF ? T : S;
    bool square = o->kind != AT_ATTN_CROSS;
    if ((wq >= 0 && q != wq) || (wk >= 0 && k != wk) || (square && q != k)) {
        if (wq >= 0 && wk >= 0)
            snprintf(why, len, "needs Lq %lld and Lk %lld for this pass", (long long)wq,
                     (long long)wk);
        else if (o->kind == AT_ATTN_CROSS)
            snprintf(why, len, "needs Lk %lld (the source positions), any Lq", (long long)wk);
        else
            snprintf(why, len, "needs Lq = Lk%s", wk >= 0 ? " = the source positions" : "");
        return false;
    }
    o->B = B;
    o->q_len = (int)q;
    o->k_len = (int)k;
    return true;
}

/* Checks tensor t as an override and reads it into o (exit 1 with a message). */
static int read_override(intv *iv, const st_tensor *t, int B, int S, int T, override_t *o)
{
    const char *F = iv->override_path;
    char buf[96], why[160];
    if (!override_name(t->name, &o->kind, &o->layer, &o->head)) {
        attn_error("%s: --override %s: unknown tensor '%.60s' (attention is named "
                   "attn.KIND.I or attn.KIND.I.headJ, I and J from 0, KIND enc_self, dec_self "
                   "or cross)", iv->who, F, t->name);
        return ATTN_FAIL;
    }
    if (o->layer >= iv->layers || (o->head != AT_ALL && o->head >= iv->heads)) {
        attn_error("%s: --override %s: tensor '%.60s': the model has layers 0..%d and heads "
                   "0..%d (counted from 0 in tensor names)", iv->who, F, t->name,
                   iv->layers - 1, iv->heads - 1);
        return ATTN_FAIL;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F64 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        attn_error("%s: --override %s: tensor '%.60s' has dtype %s; probabilities are floats "
                   "(F32, or F64, F16, BF16)", iv->who, F, t->name, st_dtype_name(t->dtype));
        return ATTN_FAIL;
    }
    if (!override_shape_ok(iv, t, o, B, S, T, why, sizeof why)) {
        shape_str(t, buf, sizeof buf);
        attn_error("%s: --override %s: tensor '%.60s' has shape %s; it %s", iv->who, F, t->name,
                   buf, why);
        return ATTN_FAIL;
    }
    o->probs = malloc((size_t)t->numel * sizeof *o->probs);
    char err[512];
    if (!o->probs) {
        attn_error("%s: --override %s: out of memory for '%.60s'", iv->who, F, t->name);
        return ATTN_FAIL;
    }
    if (st_to_f32(t, o->probs, err, sizeof err) != AT_OK) {
        attn_error("%s: --override %s: %s", iv->who, F, err);
        return ATTN_FAIL;
    }
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(o->probs[i])) {
            attn_error("%s: --override %s: tensor '%.60s' has a value that is not finite "
                       "(element %lld)", iv->who, F, t->name, (long long)i);
            return ATTN_FAIL;
        }
    return ATTN_OK;
}

/* Whole-layer overrides first: a head's own tensor then replaces its part. */
static int cmp_override(const void *a, const void *b)
{
    const override_t *x = a, *y = b;
    return (x->head != AT_ALL) - (y->head != AT_ALL);
}

int intv_load_override(intv *iv, at_model *m, int B, int S, int T)
{
    if (!iv->override_path)
        return ATTN_OK;
    iv->layers = io_model_int(m, AT_P_LAYERS);
    iv->heads = io_model_int(m, AT_P_HEADS);
    st_file f;
    char err[512];
    if (st_read(&f, iv->override_path, err, sizeof err) != AT_OK) {
        attn_error("%s: cannot read --override: %s", iv->who, err);
        return ATTN_FAIL;
    }
    int rc = ATTN_OK;
    iv->ov = calloc((size_t)(f.count ? f.count : 1), sizeof *iv->ov);
    if (!iv->ov) {
        attn_error("%s: out of memory", iv->who);
        rc = ATTN_FAIL;
    }
    for (int i = 0; rc == ATTN_OK && i < f.count; i++) {
        if (dump_name(f.tensors[i].name))
            continue;
        rc = read_override(iv, &f.tensors[i], B, S, T, &iv->ov[iv->nov]);
        iv->nov++;   /* counted even when it failed: intv_free frees its probs */
    }
    if (rc == ATTN_OK && iv->nov == 0) {
        attn_error("%s: --override %s has no attention tensor (attn.KIND.I, as attn dump "
                   "writes them)", iv->who, iv->override_path);
        rc = ATTN_FAIL;
    }
    st_free(&f);
    if (rc == ATTN_OK)
        qsort(iv->ov, (size_t)iv->nov, sizeof *iv->ov, cmp_override);
    return rc;
}

static int set_one(intv *iv, at_model *m, const override_t *o, const float *probs, int B,
                   int q, int k)
{
    if (at_attention_override(m, (at_attn_kind)o->kind, o->layer, o->head, probs, B, q, k) !=
        AT_OK) {
        attn_error("%s: --override %s: attn.%s.%d%s: %s", iv->who, iv->override_path,
                   at_viz_kind_name((at_attn_kind)o->kind), o->layer,
                   o->head == AT_ALL ? "" : " (one head)", at_errmsg(m));
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

int intv_set_override(intv *iv, at_model *m)
{
    for (int i = 0; i < iv->nov; i++) {
        const override_t *o = &iv->ov[i];
        if (set_one(iv, m, o, o->probs, o->B, o->q_len, o->k_len) != ATTN_OK)
            return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* Rows index[0 .. B-1] of o with S keys (and S queries for enc_self): the
 * file's keys beyond S are cut (they were padding), missing ones are 0. */
static float *rows_of(const intv *iv, const override_t *o, const int *index, int B, int S,
                      int *q_out, int *k_out)
{
    int nh = o->head == AT_ALL ? iv->heads : 1;
    int q = o->kind == AT_ATTN_ENC_SELF ? S : o->q_len;
    int k = o->kind == AT_ATTN_DEC_SELF ? o->k_len : S;
    float *p = calloc((size_t)B * nh * q * k, sizeof *p);
    if (!p)
        return NULL;
    int cq = q < o->q_len ? q : o->q_len, ck = k < o->k_len ? k : o->k_len;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < cq; i++)
                memcpy(p + (((size_t)b * nh + h) * q + i) * k,
                       o->probs + (((size_t)index[b] * nh + h) * o->q_len + i) * o->k_len,
                       (size_t)ck * sizeof *p);
    *q_out = q;
    *k_out = k;
    return p;
}

int intv_set_override_rows(intv *iv, at_model *m, const int *index, int B, int S)
{
    for (int i = 0; i < iv->nov; i++) {
        const override_t *o = &iv->ov[i];
        int q, k;
        float *p = rows_of(iv, o, index, B, S, &q, &k);
        if (!p) {
            attn_error("%s: out of memory for --override", iv->who);
            return ATTN_FAIL;
        }
        int rc = set_one(iv, m, o, p, B, q, k);
        free(p);
        if (rc != ATTN_OK)
            return rc;
    }
    return ATTN_OK;
}

/* ---------------------------------------------------------------- --taps */

/* The dump's name of what a tap sees: {site}.{kind}.{i}, or {site} for a
 * model site. */
static void tap_name(const at_tap_event *ev, char *buf, size_t len)
{
    const char *site = at_site_name(ev->site);
    if (ev->site >= AT_SITE_SRC_EMBED)
        snprintf(buf, len, "%s", site);
    else
        snprintf(buf, len, "%s.%s.%d", site, at_viz_kind_name(ev->kind), (int)ev->layer);
}

/* The slot of name in iv->taps (a site that fires again replaces its copy). */
static tap_copy *tap_slot(intv *iv, const char *name)
{
    for (int i = 0; i < iv->ntaps; i++)
        if (strcmp(iv->taps[i].name, name) == 0)
            return &iv->taps[i];
    if (iv->ntaps == iv->taps_cap) {
        int cap = iv->taps_cap ? 2 * iv->taps_cap : 32;
        tap_copy *g = realloc(iv->taps, (size_t)cap * sizeof *g);
        if (!g)
            return NULL;
        iv->taps = g;
        iv->taps_cap = cap;
    }
    tap_copy *t = &iv->taps[iv->ntaps++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

/* The tap: copies the view, strides followed, into a packed tensor. */
static at_status tap_copy_fn(void *user, const at_tap_event *ev)
{
    intv *iv = user;
    char name[48];
    tap_name(ev, name, sizeof name);
    tap_copy *t = tap_slot(iv, name);
    const at_view *v = &ev->view;
    int64_t sh[4] = {1, 1, 1, 1}, st[4] = {0, 0, 0, 0}, n = 1;
    for (int i = 0; i < v->ndim && i < 4; i++)
        sh[i] = v->shape[i], st[i] = v->stride[i], n *= v->shape[i];
    float *d = t ? realloc(t->data, (size_t)(n ? n : 1) * sizeof *d) : NULL;
    if (!d) {
        iv->tap_error = 1;
        return AT_E_NOMEM;
    }
    t->data = d;
    t->ndim = v->ndim;
    for (int i = 0; i < 4; i++)
        t->shape[i] = sh[i];
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++)
                for (int64_t e = 0; e < sh[3]; e++)
                    *d++ = ev->data[a * st[0] + b * st[1] + c * st[2] + e * st[3]];
    return AT_OK;
}

int intv_add_taps(intv *iv, at_model *m)
{
    for (int s = 0; s < AT_SITE_COUNT; s++) {
        if (!iv->tap_site[s])
            continue;
        if (at_tap_add(m, (at_site)s, AT_ALL, AT_ALL, tap_copy_fn, iv) != AT_OK) {
            attn_error("%s: --taps %s: %s", iv->who, at_site_name((at_site)s), at_errmsg(m));
            return ATTN_FAIL;
        }
    }
    return ATTN_OK;
}

void intv_free(intv *iv)
{
    free(iv->gates);
    free(iv->keeps);
    for (int i = 0; iv->ov && i < iv->nov; i++)
        free(iv->ov[i].probs);
    free(iv->ov);
    for (int i = 0; i < iv->ntaps; i++)
        free(iv->taps[i].data);
    free(iv->taps);
    free(iv->kept);
    iv->gates = iv->keeps = NULL;
    iv->ov = NULL;
    iv->taps = NULL;
    iv->kept = NULL;
    iv->ngates = iv->nkeeps = iv->nov = iv->ntaps = iv->taps_cap = 0;
}
