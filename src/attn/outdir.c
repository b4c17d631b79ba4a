/* Output paths: checking them before a long job, and folders written as a
 * whole (a temporary folder renamed or moved into place once every file in it
 * is written; removed on failure). */
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
#include "io/fileio.h"

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

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Removes a tree this program wrote: files, links and folders (links are
 * removed, never followed). Best effort. */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            for (struct dirent *e; (e = readdir(d));) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char *sub = join(path, e->d_name);
                if (sub)
                    remove_tree(sub);
                free(sub);
            }
            closedir(d);
        }
        (void)rmdir(path);
    } else {
        (void)unlink(path);
    }
}

/* Whether name is PREFIX.tmp.PID.XXXXXX for a PID that runs no more. */
static bool stale(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || strncmp(name + n, ".tmp.", 5) != 0)
        return false;
    const char *p = name + n + 5;
    long pid = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        pid = pid * 10 + (*p - '0');
    if (!digits || *p != '.' || strlen(p + 1) != 6 || pid <= 0 || pid > INT_MAX ||
        (pid_t)pid == getpid())
        return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Removes the temporary folders PREFIX.tmp.PID.XXXXXX in dir that a killed
 * run left behind. Best effort. */
static void remove_stale(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!stale(e->d_name, prefix))
            continue;
        char *p = join(dir, e->d_name);
        struct stat st;
        if (p && lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        free(p);
    }
    closedir(d);
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

/* ---------------------------------------------------------------- folders */

int outdir_begin(outdir *o, const char *who, const char *dir)
{
    memset(o, 0, sizeof *o);
    o->who = who;
    o->dir = trimmed(dir);
    if (!o->dir) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    struct stat st;
    char *parent = NULL;
    int rc = ATTN_OK;
    if (stat(o->dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            attn_error("%s: '%s' exists and is not a directory", who, o->dir);
            rc = ATTN_FAIL;
        } else {
            /* the new files are written inside it, then moved in beside the others */
            o->merge = true;
            remove_stale(o->dir, ".attn");
            o->tmp = malloc(strlen(o->dir) + 40);
            if (o->tmp)
                sprintf(o->tmp, "%s/.attn.tmp.%ld.XXXXXX", o->dir, (long)getpid());
        }
    } else if (errno != ENOENT || lstat(o->dir, &st) == 0) {
        attn_error("%s: cannot write into '%s': %s", who, o->dir,
                   errno == ENOENT ? "a symbolic link to nothing" : strerror(errno));
        rc = ATTN_FAIL;
    } else {
        /* mkdir -p of the parent, remembering the first folder made */
        parent = parent_of(o->dir);
        size_t n = parent ? strlen(parent) : 0;
        for (size_t i = 1; parent && i <= n && rc == ATTN_OK; i++) {
            if (parent[i] != '/' && parent[i] != '\0')
                continue;
            char c = parent[i];
            parent[i] = '\0';
            if (mkdir(parent, 0777) == 0) {
                if (!o->made && !(o->made = strdup(parent))) {
                    attn_error("%s: out of memory", who);
                    rc = ATTN_FAIL;
                }
            } else {
                int e = errno;
                if (e != EEXIST) {
                    attn_error("%s: cannot create directory '%s': %s", who, parent,
                               strerror(e));
                    rc = ATTN_FAIL;
                } else if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode)) {
                    attn_error("%s: '%s' exists and is not a directory", who, parent);
                    rc = ATTN_FAIL;
                }
            }
            parent[i] = c;
        }
        if (rc == ATTN_OK && parent) {
            remove_stale(parent, base_of(o->dir));
            o->tmp = malloc(strlen(o->dir) + 40);
            if (o->tmp)
                sprintf(o->tmp, "%s.tmp.%ld.XXXXXX", o->dir, (long)getpid());
        }
    }
    free(parent);
    if (rc == ATTN_OK && !o->tmp) {
        attn_error("%s: out of memory", who);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && !mkdtemp(o->tmp)) {
        attn_error("%s: cannot create a temporary folder for '%s': %s", who, o->dir,
                   strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        rc = ATTN_FAIL;
    }
    if (rc != ATTN_OK) {
        outdir_abort(o);
        return rc;
    }
    mode_t mask = umask(0);   /* mkdtemp makes the folder 0700; a report is shared */
    umask(mask);
    (void)chmod(o->tmp, 0777 & ~mask);
    return ATTN_OK;
}

char *outdir_path(const outdir *o, const char *name)
{
    char *p = join(o->tmp, name);
    if (!p)
        attn_error("%s: out of memory", o->who);
    return p;
}

void outdir_abort(outdir *o)
{
    if (o->tmp)
        remove_tree(o->tmp);
    if (o->made && o->dir) {
        /* the parents outdir_begin made, deepest first, as far as they are empty */
        char *p = parent_of(o->dir);
        while (p && strlen(p) >= strlen(o->made) && rmdir(p) == 0) {
            char *q = parent_of(p);
            free(p);
            p = q;
        }
        free(p);
    }
    free(o->tmp);
    free(o->dir);
    free(o->made);
    memset(o, 0, sizeof *o);
}

/* Where a file of the new folder goes in the old one: dst itself, or the
 * file a symbolic link there points to (as file_out follows links). *out is
 * malloc'd. Refuses what file_out refuses: devices, FIFOs, directories. */
static int target_of(const outdir *o, const char *dst, char **out)
{
    char err[1024];
    *out = NULL;
    if (file_check_writable(dst, err, sizeof err) != AT_OK) {
        attn_error("%s: %s", o->who, err);
        return ATTN_FAIL;
    }
    struct stat st;
    if (lstat(dst, &st) == 0 && S_ISLNK(st.st_mode))
        *out = realpath(dst, NULL);
    else
        *out = strdup(dst);
    if (!*out) {
        attn_error("%s: cannot resolve '%s': %s", o->who, dst, strerror(errno));
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* Copies src over dst atomically (dst on another file system than src). */
static int copy_over(const outdir *o, const char *src, const char *dst)
{
    unsigned char *buf;
    size_t len;
    char err[1024];
    file_out f;
    if (file_read_all(src, 0, &buf, &len, err, sizeof err) != AT_OK) {
        attn_error("%s: %s", o->who, err);
        return ATTN_FAIL;
    }
    at_status s = file_out_begin(&f, dst, err, sizeof err);
    if (s == AT_OK) {
        (void)fwrite(buf, 1, len, f.fp);   /* file_out_commit sees a write error */
        s = file_out_commit(&f, err, sizeof err);
    }
    free(buf);
    if (s != AT_OK) {
        attn_error("%s: %s", o->who, err);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* Moves every entry of src into dst (an existing folder). With check, only
 * says whether every move is possible, moving nothing. */
static int merge(const outdir *o, const char *src, const char *dst, bool check)
{
    DIR *d = opendir(src);
    if (!d) {
        attn_error("%s: cannot list '%s': %s", o->who, src, strerror(errno));
        return ATTN_FAIL;
    }
    int rc = ATTN_OK;
    for (struct dirent *e; rc == ATTN_OK && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *from = join(src, e->d_name), *to = join(dst, e->d_name), *target = NULL;
        struct stat sf, st;
        if (!from || !to) {
            attn_error("%s: out of memory", o->who);
            rc = ATTN_FAIL;
        } else if (lstat(from, &sf) != 0) {
            attn_error("%s: cannot read '%s': %s", o->who, from, strerror(errno));
            rc = ATTN_FAIL;
        } else if (S_ISDIR(sf.st_mode)) {
            if (stat(to, &st) == 0 && S_ISDIR(st.st_mode)) {
                rc = merge(o, from, to, check);
            } else if (lstat(to, &st) == 0) {
                attn_error("%s: '%s' exists and is not a directory", o->who, to);
                rc = ATTN_FAIL;
            } else if (!check && rename(from, to) != 0) {
                attn_error("%s: cannot move '%s' to '%s': %s", o->who, from, to,
                           strerror(errno));
                rc = ATTN_FAIL;
            }
        } else {
            rc = target_of(o, to, &target);
            if (rc == ATTN_OK && !check && rename(from, target) != 0) {
                if (errno == EXDEV)
                    rc = copy_over(o, from, target);
                else {
                    attn_error("%s: cannot move '%s' to '%s': %s", o->who, from, target,
                               strerror(errno));
                    rc = ATTN_FAIL;
                }
            }
        }
        free(from);
        free(to);
        free(target);
    }
    closedir(d);
    return rc;
}

int outdir_commit(outdir *o)
{
    int rc = ATTN_OK;
    if (!o->merge && rename(o->tmp, o->dir) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) {
            o->merge = true;   /* made meanwhile by someone else: move the files in */
        } else {
            attn_error("%s: cannot rename '%s' to '%s': %s", o->who, o->tmp, o->dir,
                       strerror(errno));
            rc = ATTN_FAIL;
        }
    } else if (!o->merge) {
        free(o->tmp);
        o->tmp = NULL;          /* in place: nothing to remove */
        free(o->made);
        o->made = NULL;
    }
    if (rc == ATTN_OK && o->merge) {
        /* every move checked first, so that a refusal moves nothing */
        rc = merge(o, o->tmp, o->dir, true);
        if (rc == ATTN_OK)
            rc = merge(o, o->tmp, o->dir, false);
        if (rc == ATTN_OK) {
            free(o->made);
            o->made = NULL;
        }
    }
    outdir_abort(o);
    return rc;
}
