/* Helpers shared by the test suites: golden sets and tensor comparison. */
#ifndef AT_TESTUTIL_H
#define AT_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "at.h"
#include "io/st.h"

typedef struct golden {
    char dir[1024];
    at_model *m;     /* model.safetensors, loaded with the case's head count */
    st_file io;      /* io.safetensors */
    cJSON *kase;     /* case.json */
} golden;

/* Opens a golden set: tests/data/golden/NAME, else ../shared/golden/NAME.
 * Returns false when neither exists (the caller skips); fails the test on
 * any other problem. */
bool golden_open(golden *g, const char *name);
void golden_close(golden *g);

/* A tensor of io.safetensors; fails the test when it is missing. */
const st_tensor *golden_tensor(const golden *g, const char *name);
/* An integer tensor of io.safetensors as int32 (malloc'd). */
int32_t *golden_ids(const golden *g, const char *name, int64_t *rows, int64_t *cols);
/* case.json: tolerances[group][field]. */
double golden_tol(const golden *g, const char *group, const char *field);
int golden_config_int(const golden *g, const char *key);

/* Compares a view with a reference tensor: same shape, |a−b| <= atol + rtol·|b|
 * everywhere. Prints the largest error. Returns the number of violations. */
long compare_view(const at_view *v, const st_tensor *ref, double atol, double rtol,
                  const char *label, double *max_err);

/* The greedy.* tensors of a golden set, against ids the test decoded (n of
 * them), the model's current decoder self- and cross-attention views (the last
 * step of the decoding) and its log-probabilities logp, a (T, V) view. Fails
 * the test on a wrong id; returns the number of elements out of tolerance. */
long golden_check_greedy(const golden *g, const int32_t *ys, int64_t n, const at_view *logp);

/* The path of a fresh file in a temporary directory (removed by tmp_cleanup). */
const char *tmp_path(const char *name);
void tmp_cleanup(void);

/* A small random model: 2 layers, d_model 16, 2 heads, d_ff 32, source
 * vocabulary 7, target vocabulary 9, max_len 64. */
at_model *small_model(int seed);

/* Whole-file helpers. */
unsigned char *read_all(const char *path, size_t *len);
bool write_all(const char *path, const void *data, size_t len);

#endif
