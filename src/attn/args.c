/* One-line error messages and the option parser shared by every subcommand. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"

const char *attn_program = "attn";   /* main sets argv[0] */

void attn_error(const char *fmt, ...)
{
    char msg[8192];   /* room for a command line with two long paths */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    fflush(stdout);
    fprintf(stderr, "attn: %s\n", msg);
}

/* An option's value as it may appear in a message: cut short, no controls. */
static const char *shown(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);
    if (n + 1 > len) {
        snprintf(buf, len, "%.*s...", (int)(len - 4), s);
    } else {
        memcpy(buf, s, n + 1);
    }
    return buf;
}

static int set_value(const char *cmd, opt *o, const char *val)
{
    char b[64];
    if (o->kind == OPT_STR || o->kind == OPT_LIST) {
        if (*val == '\0') {
            attn_error("%s: --%s needs a non-empty value", cmd, o->name);
            return ARGS_ERROR;
        }
        if (o->kind == OPT_STR) {
            *(const char **)o->dest = val;
            return ARGS_OK;
        }
        opt_list *l = o->dest;
        if (l->n >= OPT_LIST_MAX) {
            attn_error("%s: --%s is given more than %d times", cmd, o->name, OPT_LIST_MAX);
            return ARGS_ERROR;
        }
        l->v[l->n++] = val;
        return ARGS_OK;
    }
    char *end;
    errno = 0;
    if (o->kind == OPT_INT) {
        long long v = strtoll(val, &end, 10);
        double lo = o->lo < INT_MIN ? INT_MIN : o->lo, hi = o->hi > INT_MAX ? INT_MAX : o->hi;
        if (*val == '\0' || *end != '\0' || errno == ERANGE || (double)v < lo ||
            (double)v > hi) {
            attn_error("%s: --%s must be a whole number from %.0f to %.0f, not '%s'", cmd,
                       o->name, lo, hi, shown(val, b, sizeof b));
            return ARGS_ERROR;
        }
        *(int *)o->dest = (int)v;
    } else {
        double v = strtod(val, &end);
        if (*val == '\0' || *end != '\0' || !isfinite(v) || v < o->lo || v > o->hi) {
            attn_error("%s: --%s must be a number from %g to %g, not '%s'", cmd, o->name,
                       o->lo, o->hi, shown(val, b, sizeof b));
            return ARGS_ERROR;
        }
        *(double *)o->dest = v;
    }
    return ARGS_OK;
}

int args_parse(int argc, char **argv, opt *opts, int nopts, char **pos, int maxpos,
               int *npos)
{
    const char *cmd = argv[0];
    char b[64];
    bool options_done = false;
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (*npos >= maxpos) {
                attn_error("%s: unexpected argument '%s' (see attn %s --help)", cmd,
                           shown(a, b, sizeof b), cmd);
                return ARGS_ERROR;
            }
            pos[(*npos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return ARGS_HELP;
        if (a[1] != '-') {
            attn_error("%s: unknown option '%s' (options are spelt --name; see attn %s --help)",
                       cmd, shown(a, b, sizeof b), cmd);
            return ARGS_ERROR;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        opt *o = NULL;
        for (int k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
                o = &opts[k];
        if (!o) {
            attn_error("%s: unknown option '%.*s' (see attn %s --help)", cmd,
                       (int)(len + 2 < 60 ? len + 2 : 60), a, cmd);
            return ARGS_ERROR;
        }
        if (o->seen && o->kind != OPT_LIST) {
            attn_error("%s: --%s is given twice", cmd, o->name);
            return ARGS_ERROR;
        }
        o->seen = true;
        if (o->kind == OPT_FLAG) {
            if (eq) {
                attn_error("%s: --%s takes no value", cmd, o->name);
                return ARGS_ERROR;
            }
            *(bool *)o->dest = true;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            /* "--model --heads 4" is a forgotten value, not a file named --heads */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                attn_error("%s: --%s needs a value", cmd, o->name);
                return ARGS_ERROR;
            }
            val = argv[++i];
        }
        if (set_value(cmd, o, val) != ARGS_OK)
            return ARGS_ERROR;
    }
    return ARGS_OK;
}

int args_require(const char *cmd, const opt *o)
{
    if (o->seen)
        return ATTN_OK;
    attn_error("%s: --%s is required (see attn %s --help)", cmd, o->name, cmd);
    return ATTN_USAGE;
}

bool args_command(int argc, char **argv, opt *opts, int nopts, const char *help,
                  int *exit_code)
{
    int npos;
    int r = args_parse(argc, argv, opts, nopts, NULL, 0, &npos);
    if (r == ARGS_HELP)
        fputs(help, stdout);
    *exit_code = r == ARGS_HELP ? ATTN_OK : ATTN_USAGE;
    return r == ARGS_OK;
}
