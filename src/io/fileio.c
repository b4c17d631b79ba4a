/* Opening files to read and replacing files atomically: see fileio.h. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkstemp, fsync, fchmod, fdopen, realpath, strdup */
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE   /* O_CLOEXEC, O_NONBLOCK, DT_* */
#endif

#include "fileio.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static at_status fail(char *err, size_t errlen, at_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static at_status fail(char *err, size_t errlen, at_status s, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return s;
}

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

at_status file_open_read(const char *path, FILE **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!path || !*path)
        return fail(err, errlen, AT_E_ARG, "no file name given");
    /* O_NONBLOCK: opening a FIFO without a writer would block forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), e;
    if (fd < 0) {
        e = errno;
        return fail(err, errlen, AT_E_IO, "cannot open '%s': %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        e = errno;
        close(fd);
        return fail(err, errlen, AT_E_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return fail(err, errlen, AT_E_IO, "'%s' is %s; only regular files are read", path,
                    kind_of(sb.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1 || !(*out = fdopen(fd, "rb"))) {
        e = errno;
        close(fd);
        return fail(err, errlen, e == ENOMEM ? AT_E_NOMEM : AT_E_IO, "cannot open '%s': %s",
                    path, strerror(e));
    }
    return AT_OK;
}

at_status file_read_all(const char *path, size_t max, unsigned char **out, size_t *len,
                        char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    FILE *fp;
    at_status s = file_open_read(path, &fp, err, errlen);
    if (s != AT_OK)
        return s;
    struct stat sb;
    int e;
    if (fstat(fileno(fp), &sb) != 0 || sb.st_size < 0) {
        e = errno;
        fclose(fp);
        return fail(err, errlen, AT_E_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if ((uintmax_t)sb.st_size >= SIZE_MAX || (max && (uintmax_t)sb.st_size > max)) {
        fclose(fp);
        return fail(err, errlen, AT_E_RANGE, "'%s' has %jd bytes, more than the %zu allowed",
                    path, (intmax_t)sb.st_size, max ? max : SIZE_MAX - 1);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return fail(err, errlen, AT_E_NOMEM, "cannot allocate %zu bytes for '%s'", n, path);
    }
    size_t got = fread(buf, 1, n, fp);
    e = ferror(fp) ? errno : 0;
    /* a file that grew while it was read is read as far as its size said */
    fclose(fp);
    if (got != n) {
        free(buf);
        if (e)
            return fail(err, errlen, AT_E_IO, "cannot read '%s': %s", path, strerror(e));
        return fail(err, errlen, AT_E_IO, "'%s' shrank while it was read", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return AT_OK;
}

/* ---------------------------------------------------------------- writing */

/* The file that writing to path replaces, malloc'd: path itself, or what a
 * symlink at path points to. Refuses anything but a regular file or a path
 * that does not exist. */
static at_status resolve_target(const char *path, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!path || !*path)
        return fail(err, errlen, AT_E_ARG, "no file name given");
    struct stat sb;
    const char *target = path;
    char *resolved = NULL;
    if (lstat(path, &sb) != 0) {
        if (errno != ENOENT) {
            int e = errno;
            return fail(err, errlen, AT_E_IO, "cannot write '%s': %s", path, strerror(e));
        }
    } else {
        if (S_ISLNK(sb.st_mode)) {
            resolved = realpath(path, NULL);
            if (!resolved) {
                int e = errno;
                return fail(err, errlen, e == ENOMEM ? AT_E_NOMEM : AT_E_IO,
                            "cannot write '%s': it is a symbolic link that cannot be followed "
                            "(%s)", path, strerror(e));
            }
            if (stat(resolved, &sb) != 0) {
                int e = errno;
                fail(err, errlen, AT_E_IO, "cannot write '%s' (a link to '%s'): %s", path,
                     resolved, strerror(e));
                free(resolved);
                return AT_E_IO;
            }
            target = resolved;
        }
        if (!S_ISREG(sb.st_mode)) {
            fail(err, errlen, AT_E_IO, "will not write '%s': it is %s, not a regular file",
                 target, kind_of(sb.st_mode));
            free(resolved);
            return AT_E_IO;
        }
    }
    *out = resolved ? resolved : strdup(path);
    return *out ? AT_OK : fail(err, errlen, AT_E_NOMEM, "out of memory");
}

/* dir and base of a path, malloc'd into one buffer: "a/b" gives "a" and "b",
 * "b" gives "." and "b", "/b" gives "/" and "b". */
static char *split_path(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
    const char *b = slash ? slash + 1 : path;
    char *buf = malloc(dlen + 1 + strlen(b) + 1);
    if (!buf)
        return NULL;
    memcpy(buf, slash ? path : ".", dlen);
    buf[dlen] = '\0';
    strcpy(buf + dlen + 1, b);
    *base = buf + dlen + 1;
    return buf;
}

/* Whether name is BASE.tmp.PID.XXXXXX for a PID that runs no more. */
static bool stale_temp(const char *name, const char *base, size_t blen)
{
    static const char mid[] = ".tmp.";
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, mid, sizeof mid - 1) != 0)
        return false;
    const char *p = name + blen + sizeof mid - 1;
    long pid = 0;
    int digits = 0;
    for (; isdigit((unsigned char)*p) && digits < 10; p++, digits++)
        pid = pid * 10 + (*p - '0');
    if (!digits || *p != '.' || strlen(p + 1) != 6 || pid <= 0 || pid > INT_MAX)
        return false;
    if ((pid_t)pid == getpid())
        return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Removes what an earlier writer of target left behind when it was killed.
 * Best effort: a directory that cannot be listed is not an error. */
static void remove_stale_temps(const char *target)
{
    const char *base;
    char *dir = split_path(target, &base);
    if (!dir)
        return;
    DIR *d = opendir(dir);
    if (d) {
        size_t blen = strlen(base);
        int dfd = dirfd(d);
        for (struct dirent *e; (e = readdir(d));)
            if (stale_temp(e->d_name, base, blen))
                (void)unlinkat(dfd, e->d_name, 0);
        closedir(d);
    }
    free(dir);
}

/* Makes the rename itself durable. Best effort: some file systems refuse
 * fsync on a directory, and the new file is in place already. */
static void sync_dir(const char *target)
{
    const char *base;
    char *dir = split_path(target, &base);
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

at_status file_out_begin(file_out *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    at_status s = resolve_target(path, &f->target, err, errlen);
    if (s != AT_OK)
        return s;
    remove_stale_temps(f->target);
    size_t n = strlen(f->target) + 32;
    f->tmp = malloc(n);
    if (!f->tmp) {
        file_out_abort(f);
        return fail(err, errlen, AT_E_NOMEM, "out of memory");
    }
    snprintf(f->tmp, n, "%s.tmp.%ld.XXXXXX", f->target, (long)getpid());
    int fd = mkstemp(f->tmp), e;
    if (fd < 0) {
        e = errno;
        fail(err, errlen, AT_E_IO, "cannot create a temporary file beside '%s': %s", f->target,
             strerror(e));
        free(f->tmp);
        f->tmp = NULL;
        file_out_abort(f);
        return AT_E_IO;
    }
    /* mkstemp makes the file 0600; what we write is usually shared, but a
     * file we replace keeps its own permissions */
    struct stat old;
    mode_t mode = stat(f->target, &old) == 0 ? old.st_mode & 0777 : 0644;
    if (fchmod(fd, mode) != 0 || !(f->fp = fdopen(fd, "wb"))) {
        e = errno;
        close(fd);
        fail(err, errlen, e == ENOMEM ? AT_E_NOMEM : AT_E_IO,
             "cannot open the temporary file '%s': %s", f->tmp, strerror(e));
        file_out_abort(f);
        return e == ENOMEM ? AT_E_NOMEM : AT_E_IO;
    }
    return AT_OK;
}

void file_out_abort(file_out *f)
{
    if (f->fp)
        fclose(f->fp);
    if (f->tmp)
        unlink(f->tmp);
    free(f->tmp);
    free(f->target);
    memset(f, 0, sizeof *f);
}

at_status file_out_commit(file_out *f, char *err, size_t errlen)
{
    const char *step = NULL;
    if (!f->fp)
        step = "open";
    else if (ferror(f->fp))
        step = "write";
    else if (fflush(f->fp) != 0)
        step = "flush";
    else if (fsync(fileno(f->fp)) != 0)
        step = "sync";
    if (!step) {
        int r = fclose(f->fp);
        f->fp = NULL;
        if (r != 0)
            step = "close";
    }
    if (!step && rename(f->tmp, f->target) != 0)
        step = "rename";
    if (step) {
        int e = errno;
        if (!strcmp(step, "rename"))
            fail(err, errlen, AT_E_IO, "cannot rename '%s' to '%s': %s", f->tmp, f->target,
                 strerror(e));
        else
            fail(err, errlen, AT_E_IO, "cannot %s the temporary file '%s': %s", step,
                 f->tmp ? f->tmp : "?", strerror(e));
        file_out_abort(f);
        return AT_E_IO;
    }
    sync_dir(f->target);
    free(f->tmp);
    f->tmp = NULL;             /* in place now: nothing to remove */
    file_out_abort(f);
    return AT_OK;
}

at_status file_check_writable(const char *path, char *err, size_t errlen)
{
    char *target;
    at_status s = resolve_target(path, &target, err, errlen);
    if (s != AT_OK)
        return s;
    const char *base;
    char *dir = split_path(target, &base);
    if (!dir) {
        free(target);
        return fail(err, errlen, AT_E_NOMEM, "out of memory");
    }
    struct stat sb;
    int e = 0;
    if (stat(dir, &sb) != 0)
        e = errno;
    else if (!S_ISDIR(sb.st_mode))
        e = ENOTDIR;
    else if (access(dir, W_OK | X_OK) != 0)
        e = errno;
    if (e)
        s = fail(err, errlen, AT_E_IO, "cannot write '%s': directory '%s': %s", path, dir,
                 strerror(e));
    free(dir);
    free(target);
    return s;
}
