/* Opening files to read and replacing files atomically (internal; the attn
 * program compiles it in too).
 *
 * Readers open only regular files: a FIFO, a device or a directory is
 * refused before anything blocks on it (the open itself is non-blocking and
 * the type is checked on the descriptor, so nothing can swap the file in
 * between).
 *
 * Writers replace a path only when it is a regular file or does not exist.
 * A symlink is followed on purpose: the file it points to is replaced and
 * the link stays (a dangling link is refused). Devices, FIFOs, sockets and
 * directories are refused with a message. The new content goes to
 * TARGET.tmp.PID.XXXXXX in the target's directory, is synced, and renamed
 * over the target; on any failure the temporary file is removed and the
 * target is untouched. A temporary file of the same target left by a process
 * that no longer runs (killed with SIGKILL, say) is removed by the next
 * writer of that target. */
#ifndef AT_FILEIO_H
#define AT_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "at.h"

/* Opens path for reading ("rb") when it is a regular file. On failure *out
 * is NULL, err names the path and why: AT_E_IO. */
at_status file_open_read(const char *path, FILE **out, char *err, size_t errlen);

/* Reads a whole regular file into a malloc'd buffer (NUL-terminated, so
 * text can be parsed in place; *len excludes the NUL). max bounds the size
 * (0: no bound beyond SIZE_MAX): a larger file is AT_E_RANGE. */
at_status file_read_all(const char *path, size_t max, unsigned char **out, size_t *len,
                        char *err, size_t errlen);

/* One file being written in place of another. */
typedef struct file_out {
    FILE *fp;                     /* write here between file_out_begin and _commit */
    char *target;                 /* the path that will be replaced (links resolved) */
    char *tmp;                    /* the temporary file */
} file_out;

/* Checks that path may be written (see above) and opens its temporary file.
 * AT_E_IO or AT_E_NOMEM; on failure nothing exists and f is zeroed. */
at_status file_out_begin(file_out *f, const char *path, char *err, size_t errlen);

/* Flushes, syncs and renames into place; on failure removes the temporary
 * file (AT_E_IO). Either way f is released. */
at_status file_out_commit(file_out *f, char *err, size_t errlen);

/* Gives up: closes and removes the temporary file. f may be zeroed. */
void file_out_abort(file_out *f);

/* Whether path could be written by file_out_begin now (the checks only, and
 * that its directory is writable); for programs that want to fail before a
 * long job rather than after it. */
at_status file_check_writable(const char *path, char *err, size_t errlen);

#endif
