/* The weights' store (src/core/): the state_dict table and the slab that
 * handles sharing weights share, with the packed copy packed.c makes.
 * It knows nothing of the handle (model/internal.h). */
#ifndef AT_CORE_WEIGHTS_H
#define AT_CORE_WEIGHTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AT_NAME_MAX 96

/* One entry of the state_dict table. */
struct tensor_info;
typedef struct tensor_info {
    char name[AT_NAME_MAX];
    int ndim;
    int64_t shape[3];
    size_t offset;                /* into params, or into buffers when is_buffer */
    size_t numel;
    bool is_buffer;               /* the pe tables: saved, never trained */
} tensor_info;

/* What handles that share weights (at_model_share) share: the table, the
 * slab, the owner count, and a packed copy of the matrices for products with
 * libat's kernels (packed.c). */
typedef struct shared_weights {
    _Atomic int owners;           /* open handles: writable only when 1 */
    _Atomic int refs;             /* handles not yet destroyed: the memory's owners */
    const struct tensor_info *table;
    int ntensors;
    float *param_mem;
    size_t nparams;
    bool shapes_packable;         /* d_model and d_ff multiples of 32 */
    bool packable;                /* that, and AT_P_PACKED */
    float *_Atomic packed;        /* NULL until first needed; dropped on change */
    float *spare;                 /* a stale copy's memory, for the next (under lock) */
    pthread_mutex_t lock;         /* serialises packing */
    /* the host's metadata (at_model_set_meta), saved in __metadata__ */
    char **meta_keys, **meta_vals;
    int meta_count;
} shared_weights;

#endif
