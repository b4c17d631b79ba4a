/* Output paths: checking them before a long job. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "attn.h"
#include "fileio.h"

int io_check_output(const char *who, const char *path)
{
    char err[1024];
    if (file_check_writable(path, err, sizeof err) == AT_OK)
        return ATTN_OK;
    attn_error("%s: %s", who, err);
    return ATTN_FAIL;
}

/* ---------------------------------------------------------------- paths */

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* A copy of dir without trailing slashes ("/" stays "/"). */
static char *trimmed(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, dir, n);
        p[n] = '\0';
    }
    return p;
}

/* The parent of a trimmed path, malloc'd: "a/b" gives "a", "b" gives ".",
 * "/b" gives "/". */
static char *parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, path, n);
        p[n] = '\0';
    }
    return p;
}

/* ---------------------------------------------------------------- checks */

/* The nearest ancestor of a missing path that exists, as a message-ready
 * check: it must be a directory this process may write into. */
static int check_creatable(const char *who, const char *dir)
{
    char *p = parent_of(dir);
    struct stat st;
    while (p && stat(p, &st) != 0 && errno == ENOENT && strcmp(p, ".") != 0 &&
           strcmp(p, "/") != 0) {
        char *q = parent_of(p);
        free(p);
        p = q;
    }
    if (!p) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    int rc = ATTN_OK;
    if (stat(p, &st) != 0) {
        attn_error("%s: cannot create '%s': '%s': %s", who, dir, p, strerror(errno));
        rc = ATTN_FAIL;
    } else if (!S_ISDIR(st.st_mode)) {
        attn_error("%s: cannot create '%s': '%s' is not a directory", who, dir, p);
        rc = ATTN_FAIL;
    } else if (access(p, W_OK | X_OK) != 0) {
        attn_error("%s: cannot create '%s' in '%s': %s", who, dir, p, strerror(errno));
        rc = ATTN_FAIL;
    }
    free(p);
    return rc;
}

int outdir_check(const char *who, const char *dir, const char *const *files,
                 const char *const *subdirs)
{
    char *d = trimmed(dir);
    if (!d) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    struct stat st;
    int rc = ATTN_OK;
    if (stat(d, &st) != 0) {
        if (errno == ENOENT && lstat(d, &st) == 0)
            attn_error("%s: '%s' is a symbolic link to nothing", who, d), rc = ATTN_FAIL;
        else if (errno == ENOENT)
            rc = check_creatable(who, d);
        else
            attn_error("%s: cannot write into '%s': %s", who, d, strerror(errno)), rc = ATTN_FAIL;
    } else if (!S_ISDIR(st.st_mode)) {
        attn_error("%s: '%s' exists and is not a directory", who, d);
        rc = ATTN_FAIL;
    } else if (access(d, W_OK | X_OK) != 0) {
        attn_error("%s: cannot write into '%s': %s", who, d, strerror(errno));
        rc = ATTN_FAIL;
    } else {
        for (int i = 0; files && files[i] && rc == ATTN_OK; i++) {
            char *p = join(d, files[i]);
            rc = p ? io_check_output(who, p) : ATTN_FAIL;
            free(p);
        }
        for (int i = 0; subdirs && subdirs[i] && rc == ATTN_OK; i++) {
            char *p = join(d, subdirs[i]);
            if (p && stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) {
                attn_error("%s: '%s' exists and is not a directory", who, p);
                rc = ATTN_FAIL;
            }
            free(p);
        }
    }
    free(d);
    return rc;
}
