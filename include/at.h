/**
 * @file at.h
 * @brief libat: the annotated Transformer as an embeddable C library.
 *
 * libat trains and runs the encoder–decoder Transformer of "Attention Is All
 * You Need" exactly as the annotated PyTorch walkthrough computes it, and lends
 * every attention tensor it computes to the host as a zero-copy view.
 *
 * Conventions used throughout this header:
 * - every function that can fail returns an ::at_status; ::AT_OK is 0;
 * - outputs come first and are named @c out;
 * - a handle is used by one thread at a time (a call that finds another thread
 *   inside a call on the same handle returns ::AT_E_STATE and does nothing);
 *   separate handles are independent;
 * - the library never prints and never exits; why a call failed is in
 *   at_errmsg().
 */
#ifndef AT_H
#define AT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup version Version
 *  Compile-time and run-time version numbers.
 *  @{ */

/** Major version: changes when the ABI breaks (it is the SONAME's number). */
#define AT_VERSION_MAJOR 0
/** Minor version: changes when functions or enum values are added. */
#define AT_VERSION_MINOR 3
/** Patch version: changes for fixes that add nothing. */
#define AT_VERSION_PATCH 0
/** The version as one number, MAJOR*10000 + MINOR*100 + PATCH. */
#define AT_VERSION_NUMBER \
    (AT_VERSION_MAJOR * 10000 + AT_VERSION_MINOR * 100 + AT_VERSION_PATCH)

/** @cond AT_INTERNAL */
#define AT_STR_(x) #x
#define AT_STR(x) AT_STR_(x)
/** @endcond */

/** The version as a string literal, "MAJOR.MINOR.PATCH". */
#define AT_VERSION_STRING \
    AT_STR(AT_VERSION_MAJOR) "." AT_STR(AT_VERSION_MINOR) "." AT_STR(AT_VERSION_PATCH)

/** @cond AT_INTERNAL */
#if defined(AT_BUILDING) && defined(__GNUC__)
#  define AT_API __attribute__((visibility("default")))
#else
#  define AT_API
#endif
/** @endcond */

/**
 * @brief The version of the library that is running.
 * @return AT_VERSION_NUMBER of the library the program loaded, which may be
 *         newer than the header it was compiled with.
 */
AT_API unsigned at_version_number(void);

/**
 * @brief The version of the library that is running, as a string.
 * @return A static string "MAJOR.MINOR.PATCH"; never NULL.
 */
AT_API const char *at_version_string(void);

/** @} */

/** @defgroup errors Status codes and messages
 *  Every fallible call returns a status; the values are fixed forever.
 *  @{ */

/** Result of a call. New codes are only ever added at the end. */
typedef enum at_status {
    AT_OK = 0,          /**< success */
    AT_E_ARG = 1,       /**< an argument is invalid (NULL, out of bounds, unknown enum) */
    AT_E_NOMEM = 2,     /**< memory could not be allocated */
    AT_E_IO = 3,        /**< a file could not be opened, read, written or renamed */
    AT_E_FORMAT = 4,    /**< a file is malformed (bad header, bad dtype, truncated) */
    AT_E_SHAPE = 5,     /**< a tensor is missing or has the wrong shape */
    AT_E_RANGE = 6,     /**< an id or length is outside what the model supports */
    AT_E_STATE = 7,     /**< the requested result has not been computed yet, or the
                             handle is in use by another thread */
    AT_E_NUMERIC = 8,   /**< a value is not finite (NaN or infinity): in a file's
                             weights, or in a training step's loss or gradients */
    AT_E_CALLBACK = 9   /**< a host callback (a tap, see at_tap_add()) returned a
                             status other than ::AT_OK: the pass stopped there */
} at_status;

/**
 * @brief A short fixed name for a status code.
 * @param s any value; unknown values give "unknown status".
 * @return A static string such as "AT_E_SHAPE"; never NULL.
 */
AT_API const char *at_status_string(at_status s);

/** @} */

/** @defgroup config Model configuration
 *  The hyperparameters of make_model, set by key so that new ones can be added
 *  without breaking the ABI (the way zstd sets its parameters).
 *  @{ */

/** An opaque, growable set of hyperparameters. */
typedef struct at_config at_config;

/** Hyperparameter keys. Values are fixed; they are numbered from 1 without
 *  gaps and new keys are added at the end, so a loop from 1 while
 *  at_param_name() is not NULL visits every key the library knows. */
typedef enum at_param {
    AT_P_SRC_VOCAB = 1,    /**< source vocabulary size (default 11, the copy task) */
    AT_P_TGT_VOCAB = 2,    /**< target vocabulary size (default 11) */
    AT_P_LAYERS = 3,       /**< N, layers in the encoder and in the decoder (default 6) */
    AT_P_D_MODEL = 4,      /**< d_model, must be even and a multiple of heads (default 512) */
    AT_P_HEADS = 5,        /**< h, attention heads (default 8) */
    AT_P_D_FF = 6,         /**< inner width of the feed-forward block (default 2048) */
    AT_P_DROPOUT = 7,      /**< dropout in training: embeddings, sublayers, FFN (default 0.1) */
    AT_P_MAX_LEN = 8,      /**< rows of the positional-encoding table (default 5000) */
    AT_P_SEED = 9,         /**< seed of initialisation and dropout (default 0) */
    AT_P_ATTN_DROPOUT = 10, /**< dropout on attention probabilities in training (default 0.1,
                                 whatever AT_P_DROPOUT says, as in the reference) */
    AT_P_LR = 11,           /**< base learning rate that the Noam rate multiplies (default 0.5,
                                 the copy task's) */
    AT_P_WARMUP = 12,       /**< Noam warmup steps (default 400, the copy task's) */
    AT_P_FACTOR = 13,       /**< Noam factor (default 1) */
    AT_P_SMOOTHING = 14,    /**< label smoothing (default 0, the copy task's; the paper uses 0.1) */
    AT_P_BETA1 = 15,        /**< Adam β₁ (default 0.9) */
    AT_P_BETA2 = 16,        /**< Adam β₂ (default 0.98) */
    AT_P_ADAM_EPS = 17,     /**< Adam ε (default 1e-9) */
    AT_P_PACKED = 18        /**< 1 (default): the linear layers multiply with a copy of the
                                 weights packed for libat's kernels, made on first use
                                 (it doubles the weights' memory, and saves repacking them
                                 in every product); 0: never. Same results either way */
} at_param;

/**
 * @brief Create a configuration holding the reference defaults
 *        (make_model(11, 11, N=6, d_model=512, d_ff=2048, h=8, dropout=0.1)).
 * @param[out] out receives the new configuration; free it with at_config_free().
 * @return ::AT_OK, ::AT_E_ARG if @p out is NULL, ::AT_E_NOMEM.
 */
AT_API at_status at_config_create(at_config **out);

/**
 * @brief Free a configuration.
 * @param cfg the configuration, or NULL (then nothing happens).
 */
AT_API void at_config_free(at_config *cfg);

/**
 * @brief Set one hyperparameter.
 *
 * Integer parameters must be given as whole numbers. A value outside
 * at_param_bounds() is refused and the configuration is left as it was.
 * Relations between parameters (d_model divisible by heads, d_model even)
 * are checked by at_model_create().
 * @param cfg the configuration.
 * @param key which hyperparameter.
 * @param value its new value.
 * @return ::AT_OK, or ::AT_E_ARG (NULL @p cfg, unknown key, value out of
 *         bounds or not whole); the reason is in at_errmsg(NULL).
 */
AT_API at_status at_config_set(at_config *cfg, at_param key, double value);

/**
 * @brief Read one hyperparameter.
 * @param cfg the configuration.
 * @param key which hyperparameter.
 * @param[out] out receives the value.
 * @return ::AT_OK, or ::AT_E_ARG for a NULL pointer or an unknown key.
 */
AT_API at_status at_config_get(const at_config *cfg, at_param key, double *out);

/**
 * @brief The range a hyperparameter accepts (both ends included).
 * @param key which hyperparameter.
 * @param[out] lo receives the smallest accepted value (may be NULL).
 * @param[out] hi receives the largest accepted value (may be NULL).
 * @return ::AT_OK, or ::AT_E_ARG for an unknown key.
 */
AT_API at_status at_param_bounds(at_param key, double *lo, double *hi);

/**
 * @brief The name of a hyperparameter as it is written in checkpoint
 *        metadata, e.g. "d_model".
 * @param key which hyperparameter.
 * @return A static string, or NULL for an unknown key.
 */
AT_API const char *at_param_name(at_param key);

/** @} */

/** @defgroup model Models: create, load, save
 *  A model owns its parameters, its activation arena and its error message.
 *  @{ */

/** An opaque model: parameters, activations, attention, error message. */
typedef struct at_model at_model;

/**
 * @brief Create a model initialised as the reference's make_model does.
 *
 * Matrices (every parameter with more than one dimension, both embedding
 * tables and the generator included) are drawn from xavier-uniform; biases
 * from U(±1/√fan_in), each kind of bias drawn once and copied to every layer
 * as the reference's deep copies do; layer norms start at ones and zeros; the
 * positional encodings are computed. The draws come from AT_P_SEED, so the
 * same seed gives the same model on every machine.
 * @param cfg the hyperparameters (copied; may be freed afterwards), or NULL
 *            for the defaults.
 * @param[out] out receives the model; free it with at_model_free().
 * @return ::AT_OK, ::AT_E_ARG (NULL @p out, inconsistent sizes),
 *         ::AT_E_NOMEM; the reason is in at_errmsg(NULL).
 */
AT_API at_status at_model_create(const at_config *cfg, at_model **out);

/**
 * @brief Load a safetensors checkpoint saved by at_model_save() or exported
 *        from PyTorch's state_dict of the annotated model.
 *
 * Tensor names are the reference's state_dict names (94 for N = 2); the
 * layer count, widths and vocabularies follow from the shapes. A file without
 * libat's `__metadata__` does not say the number of heads: the caller supplies
 * it in @p hint (AT_P_HEADS). Keys set in @p hint that the file also states
 * must agree with it; AT_P_DROPOUT, AT_P_ATTN_DROPOUT and AT_P_SEED set in
 * @p hint override the file's.
 * Every tensor's name, dtype and shape are checked before the weights are
 * allocated, and every value after it is read: a weight or moment that is
 * NaN or infinite, or a negative second moment, refuses the file.
 * @param path the file; only a regular file is read (a FIFO or a device is
 *        refused at once, never waited on).
 * @param hint hyperparameters the file may lack, or NULL.
 * @param[out] out receives the model; free it with at_model_free().
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_IO, ::AT_E_FORMAT (not safetensors, wrong
 *         dtype, metadata that is not a decimal number), ::AT_E_SHAPE (a tensor
 *         missing or inconsistent: the message names it), ::AT_E_NUMERIC (a
 *         value that is not finite, a negative second moment: the message
 *         names the tensor), ::AT_E_NOMEM; the reason is in at_errmsg(NULL).
 */
AT_API at_status at_model_load(const char *path, const at_config *hint, at_model **out);

/**
 * @brief Load a checkpoint from memory; otherwise as at_model_load().
 * @param data the bytes of a safetensors file (not kept after the call).
 * @param size their number.
 * @param hint hyperparameters the file may lack, or NULL.
 * @param[out] out receives the model.
 * @return as at_model_load().
 */
AT_API at_status at_model_load_buffer(const void *data, size_t size,
                                      const at_config *hint, at_model **out);

/**
 * @brief Save the parameters and positional-encoding buffers as safetensors,
 *        under the reference's state_dict names, in state_dict order, with the
 *        configuration in `__metadata__`. PyTorch's load_state_dict takes the
 *        file as it is.
 *
 * The file is written next to @p path under a temporary name
 * (PATH.tmp.PID.XXXXXX), synced, and renamed over @p path, so a failed save
 * leaves an existing file untouched and no temporary file behind; a
 * temporary file that a killed process left beside the same path is removed.
 * Only a regular file or a path that does not exist is written: a symbolic
 * link is followed (the file it points to is replaced, the link stays); a
 * device, FIFO, socket or directory is refused with ::AT_E_IO.
 * @param m the model.
 * @param path where to write.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_IO (the message says which step failed).
 */
AT_API at_status at_model_save(at_model *m, const char *path);

/**
 * @brief Save a training checkpoint: what at_model_save() writes, plus both
 *        Adam moments of every parameter (`adam.exp_avg.<name>`,
 *        `adam.exp_avg_sq.<name>`) and the step count (`step` in the
 *        metadata).
 *
 * at_model_load() of such a file resumes exactly: k steps, save, load, k more
 * steps give the parameters of 2k steps bit for bit (same seed, same
 * threads). Written atomically, as at_model_save().
 * @param m the model.
 * @param path where to write.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_IO, ::AT_E_NOMEM.
 */
AT_API at_status at_model_save_training(at_model *m, const char *path);

/**
 * @brief A second handle on a model's weights, without copying them: it has
 *        its own activations, views, error message and settings (dropout,
 *        learning rate…), and shares the parameters read-only.
 *
 * Handles that share weights may run at the same time in different threads
 * (each handle in one thread at a time): forward passes, decoding,
 * statistics and charts only read the weights. While more than one handle
 * shares them, nothing may change them: at_train_step() and
 * at_model_tensor_write() answer ::AT_E_STATE on every one of them. The
 * weights live until the last handle is freed, in any order.
 * @param base the model whose weights to share.
 * @param[out] out receives the new handle; free it with at_model_free().
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_NOMEM.
 */
AT_API at_status at_model_share(at_model *base, at_model **out);

/**
 * @brief Free a model and everything it owns, views' memory included (what
 *        an at_view_hold() keeps is freed when the hold is released).
 * @param m the model, or NULL (then nothing happens).
 */
AT_API void at_model_free(at_model *m);

/**
 * @brief Why the last failing call failed.
 * @param m a model: the message of the last call on @p m that failed; or NULL:
 *          the message of the last call in this thread that had no model to
 *          report on (configuration, create, load).
 * @return A string owned by the library, valid until the next call on @p m
 *         (or, for NULL, the next such call in this thread); "" if nothing
 *         failed yet. Never NULL.
 */
AT_API const char *at_errmsg(const at_model *m);

/**
 * @brief Change a hyperparameter of an existing model.
 *
 * Only what does not change the shapes can be changed: dropout, attention
 * dropout, seed and the training settings (AT_P_LR .. AT_P_ADAM_EPS).
 * @param m the model.
 * @param key which hyperparameter.
 * @param value its new value, within at_param_bounds().
 * @return ::AT_OK, or ::AT_E_ARG (NULL model, unknown key, a shape key, value
 *         out of bounds).
 */
AT_API at_status at_model_set(at_model *m, at_param key, double value);

/**
 * @brief Read a model's hyperparameter.
 * @param m the model.
 * @param key which hyperparameter.
 * @param[out] out receives the value.
 * @return ::AT_OK, or ::AT_E_ARG.
 */
AT_API at_status at_model_get(const at_model *m, at_param key, double *out);

/**
 * @brief Attach a text value to the model's weights, saved in the
 *        checkpoint's @c __metadata__ and read back by at_model_load().
 *
 * For what a model needs beside its weights to be used: its tokenizer (the
 * text library stores a SentencePiece model under @c "tokenizer", see
 * at_text.h), the corpus it was trained on, a note. Handles that share the
 * weights (at_model_share()) share the metadata too. Keys keep the order in
 * which they were first set. libat's own keys — @c "format",
 * @c "libat_version", @c "step" and every at_param_name() — are reserved.
 * @param m the model.
 * @param key 1 to 256 bytes of UTF-8.
 * @param value UTF-8 text (it may be large: a file's header holds up to
 *              100 MB), or NULL to remove the key.
 * @return ::AT_OK, ::AT_E_ARG (NULL, a key empty, too long or reserved),
 *         ::AT_E_FORMAT (not UTF-8), ::AT_E_STATE (the weights are shared:
 *         free the other handles first), ::AT_E_NOMEM.
 */
AT_API at_status at_model_set_meta(at_model *m, const char *key, const char *value);

/**
 * @brief Read a metadata value set by at_model_set_meta() or loaded with
 *        the checkpoint.
 * @param m the model.
 * @param key the key.
 * @param[out] value receives the value (library memory, valid until the key
 *             is set again or the weights are freed), or NULL when the model
 *             has no such key.
 * @return ::AT_OK (also for a missing key), ::AT_E_ARG (NULL).
 */
AT_API at_status at_model_get_meta(at_model *m, const char *key, const char **value);

/**
 * @brief How many metadata keys the model has (libat's own not counted).
 * @param m the model (NULL gives 0).
 * @return the count.
 */
AT_API int at_model_meta_count(const at_model *m);

/**
 * @brief The key of one metadata entry, for listing them.
 * @param m the model.
 * @param index 0 .. at_model_meta_count()-1.
 * @return the key (library memory, valid as a value of at_model_get_meta()),
 *         or NULL for a NULL model or an index out of range.
 */
AT_API const char *at_model_meta_key(const at_model *m, int index);

/** @} */

/** @defgroup views Views on library memory
 *  Tensors the library lends out without copying.
 *  @{ */

/**
 * @brief A read-only window on library-owned float32 memory.
 *
 * Element (i0, i1, …) is at data[i0*stride[0] + i1*stride[1] + …]; strides
 * count elements, not bytes. Unused trailing dimensions have shape 1.
 * This struct is final: it will never change size or layout.
 *
 * Lifetime: a view of activations (attention, outputs, masks) is valid until
 * the next call that recomputes activations on the same model (at_forward)
 * or until the model is freed. @c generation is the model's generation when
 * the view was made; the view is current while it equals
 * at_model_generation(). Views of parameters stay valid until the model is
 * freed or loaded over.
 */
typedef struct at_view {
    const float *data;   /**< first element; library memory, do not free */
    int32_t ndim;        /**< number of meaningful dimensions, 1..4 */
    int32_t reserved;    /**< zero */
    int64_t shape[4];    /**< extent of each dimension */
    int64_t stride[4];   /**< distance between neighbours, in elements */
    uint64_t generation; /**< at_model_generation() when the view was made */
} at_view;

/** The three kinds of attention (paper §3.2.3). */
typedef enum at_attn_kind {
    AT_ATTN_ENC_SELF = 0, /**< encoder self-attention, (B, h, S, S) */
    AT_ATTN_DEC_SELF = 1, /**< masked decoder self-attention, (B, h, T, T) */
    AT_ATTN_CROSS = 2     /**< encoder–decoder attention, (B, h, T, S) */
} at_attn_kind;

/** Other tensors of the last forward pass. */
typedef enum at_output {
    AT_OUT_SRC_EMBED = 0, /**< source embedding·√d + PE, (B, S, d) */
    AT_OUT_ENC_LAYER = 1, /**< output of encoder layer @c layer, (B, S, d) */
    AT_OUT_MEMORY = 2,    /**< encoder output after its final norm, (B, S, d) */
    AT_OUT_TGT_EMBED = 3, /**< target embedding·√d + PE, (B, T, d) */
    AT_OUT_DEC_LAYER = 4, /**< output of decoder layer @c layer, (B, T, d) */
    AT_OUT_DECODER = 5,   /**< decoder output after its final norm, (B, T, d) */
    AT_OUT_LOGPROBS = 6,  /**< generator log-probabilities, (B, T, V_tgt) */
    AT_OUT_SRC_MASK = 7,  /**< source mask applied, 1 or 0, (B, 1, S) */
    AT_OUT_TGT_MASK = 8   /**< target mask applied, 1 or 0, (B, T, T) */
} at_output;

/**
 * @brief The attention probabilities of one layer, all heads:
 *        a (batch, head, query, key) view of library memory, no copy.
 *
 * Masked keys hold exactly 0. Rows of padded query positions are computed
 * as the reference computes them (only keys are masked).
 * @param m the model, after at_forward().
 * @param kind which attention.
 * @param layer 0-based layer index, below AT_P_LAYERS.
 * @param[out] out receives the view; valid as described at ::at_view.
 * @return ::AT_OK, ::AT_E_ARG (NULL, unknown kind, layer out of range),
 *         ::AT_E_STATE (nothing computed yet, or no target was given).
 */
AT_API at_status at_get_attention(at_model *m, at_attn_kind kind, int layer,
                                  at_view *out);

/**
 * @brief Another tensor of the last forward pass, as a view.
 * @param m the model, after at_forward().
 * @param which which tensor.
 * @param layer the layer for ::AT_OUT_ENC_LAYER and ::AT_OUT_DEC_LAYER; must
 *              be 0 for the others.
 * @param[out] out receives the view; valid as described at ::at_view.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE (not computed yet).
 */
AT_API at_status at_get_output(at_model *m, at_output which, int layer, at_view *out);

/**
 * @brief The generation of a model's activations: it grows by one every time
 *        a call recomputes them, which ends the life of earlier views.
 * @param m the model (NULL gives 0).
 * @return the current generation.
 */
AT_API uint64_t at_model_generation(const at_model *m);

/** A hold on the memory behind a model's views (opaque). */
typedef struct at_hold at_hold;

/**
 * @brief Keep the memory behind every view of @p m that exists now
 *        allocated until at_hold_release(), for hosts whose arrays outlive
 *        a pass (Python's numpy arrays, DLPack capsules).
 *
 * The activation block that attention and output views point into, the
 * weights and the gradients stay allocated past the next pass, a larger
 * batch (which moves the activations to a new block) and at_model_free().
 * Their contents may change with later passes on the handle, which makes the
 * views stale (see at_model_generation()), but a held block is never freed.
 * @param m the model.
 * @param[out] out receives the hold.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_NOMEM, ::AT_E_STATE (another thread is
 *         inside a call on @p m).
 */
AT_API at_status at_view_hold(at_model *m, at_hold **out);

/**
 * @brief Release a hold: the memory it kept is freed once neither the model
 *        nor another hold uses it. Any thread may release any hold.
 * @param h the hold, or NULL (then nothing happens).
 */
AT_API void at_hold_release(at_hold *h);

/**
 * @brief The number of tensors in the model's state_dict (parameters and the
 *        two positional-encoding buffers): 94 for N = 2.
 * @param m the model (NULL gives 0).
 * @return the count.
 */
AT_API int at_model_tensor_count(const at_model *m);

/**
 * @brief One tensor of the state_dict, in the reference's order.
 * @param m the model.
 * @param index 0 .. at_model_tensor_count()-1.
 * @param[out] name receives the reference's name (library memory, valid while
 *             @p m lives); may be NULL.
 * @param[out] out receives a view of the values; may be NULL.
 * @return ::AT_OK, or ::AT_E_ARG.
 */
AT_API at_status at_model_tensor(at_model *m, int index, const char **name,
                                 at_view *out);

/**
 * @brief Whether a state_dict tensor is a trained parameter (1) or a buffer
 *        (0: the positional encodings `src_embed.1.pe`, `tgt_embed.1.pe`).
 * @param m the model.
 * @param index 0 .. at_model_tensor_count()-1.
 * @return 1, 0, or -1 for a NULL model or an index out of range.
 */
AT_API int at_model_tensor_trainable(const at_model *m, int index);

/**
 * @brief Overwrite one state_dict tensor with the host's values (to set
 *        weights from another framework, or to perturb one for research).
 *
 * Activations computed before are stale afterwards: their views end, as
 * after a forward pass (the generation grows).
 * @param m the model.
 * @param index 0 .. at_model_tensor_count()-1.
 * @param data the new values, in the tensor's row-major order.
 * @param count the number of values; must equal the tensor's element count.
 * @return ::AT_OK, ::AT_E_ARG (NULL, index), ::AT_E_SHAPE (count differs),
 *         ::AT_E_STATE (the weights are shared, see at_model_share()),
 *         ::AT_E_NUMERIC (a value is NaN or infinite; nothing is written).
 */
AT_API at_status at_model_tensor_write(at_model *m, int index, const float *data,
                                       size_t count);

/**
 * @brief Find a state_dict tensor by its reference name.
 * @param m the model.
 * @param name e.g. "decoder.layers.0.src_attn.linears.3.weight".
 * @param[out] out receives a view of the values.
 * @return ::AT_OK, ::AT_E_ARG (NULL), ::AT_E_SHAPE (no such tensor).
 */
AT_API at_status at_model_find_tensor(at_model *m, const char *name, at_view *out);

/** @} */

/** @defgroup run Running the model
 *  @{ */

/**
 * @brief The forward pass in evaluation mode (no dropout) on a batch.
 *
 * Builds the masks as the reference's Batch does: the source mask is
 * (src != pad), shape (B, 1, S); the target mask is (tgt != pad) AND the
 * subsequent mask, shape (B, T, T). Then encodes, decodes with teacher
 * forcing and applies the generator. Afterwards every attention tensor and
 * output is available through at_get_attention() and at_get_output().
 * Activations live in one arena that grows when a larger batch arrives and is
 * otherwise reused: a repeated call of the same size allocates nothing.
 * @param m the model.
 * @param src source ids, (batch, src_len) row-major, each below AT_P_SRC_VOCAB.
 * @param tgt decoder input ids, (batch, tgt_len) row-major, each below
 *            AT_P_TGT_VOCAB; or NULL with @p tgt_len 0 to run the encoder only.
 * @param batch B ≥ 1.
 * @param src_len S, 1 .. AT_P_MAX_LEN.
 * @param tgt_len T, 0 .. AT_P_MAX_LEN (0 only with @p tgt NULL).
 * @param pad the padding id (the reference's Batch default is 2, the copy
 *            task's 0). Pad positions are embedded like any other token, so
 *            every id, pads included, must lie inside its vocabulary; a pad id
 *            outside the vocabulary simply masks nothing.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_RANGE (an id or length out of range: the
 *         message gives the position), ::AT_E_NOMEM. On failure the previous
 *         results are gone (at_get_attention() answers ::AT_E_STATE).
 */
AT_API at_status at_forward(at_model *m, const int32_t *src, const int32_t *tgt,
                            int batch, int src_len, int tgt_len, int32_t pad);

/**
 * @brief Greedy decoding with a key/value cache, for a batch.
 *
 * Encodes once, then at each step computes only the new position of every
 * row and appends the most probable next id (ties go to the lowest id), as
 * the reference's greedy_decode does but without re-running the prefix. As
 * there, the decoder masks only the future: ids in the decoded sequence are
 * never masked as padding. The source mask is src != @p pad (pass a pad id
 * outside the vocabulary, e.g. -1, for the reference's all-ones mask).
 *
 * Afterwards the views show the whole decoded sequence: decoder
 * self-attention (B, h, T, T) and cross-attention (B, h, T, S) of every
 * layer, T = *out_len − 1 positions (the last id is predicted, not fed
 * back); they equal a forward pass over out[:, :T] with the same source
 * mask and no target padding. When decoding stopped early the views keep the
 * strides of max_len − 1 positions.
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param pad the padding id of the source; also what fills a row after its end.
 * @param max_len the most ids per row, the start id included (≥ 1).
 * @param start the first id of every row.
 * @param end an id that ends a row, or -1; a row that emitted it is filled
 *            with @p pad (with @p end when @p pad is no id); decoding stops
 *            when every row has ended.
 * @param[out] out (batch, max_len) ids, row-major.
 * @param[out] out_len the number of columns decoded (≤ max_len); columns
 *             after it are filled as ended rows are.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_RANGE (ids, lengths), ::AT_E_NOMEM,
 *         ::AT_E_NUMERIC (the log-probabilities of a step are not finite:
 *         weights that overflow; the message names the row and position).
 */
AT_API at_status at_greedy_decode(at_model *m, const int32_t *src, int batch, int src_len,
                                  int32_t pad, int max_len, int32_t start, int32_t end,
                                  int32_t *out, int *out_len);

/** The largest beam at_beam_decode() accepts. */
#define AT_BEAM_MAX 256

/**
 * @brief The settings of at_beam_decode().
 *
 * The struct may grow in later minor versions, at its end only: fill it with
 * at_beam_options_init(), which sets @c struct_size to the size the caller
 * was compiled with and every field to its default, then change the fields
 * wanted. A library older than the caller's header accepts the larger struct
 * as long as the fields it does not know are zero.
 */
typedef struct at_beam_options {
    size_t struct_size;  /**< sizeof(at_beam_options) as the caller compiled it */
    int32_t beam_size;   /**< K, hypotheses kept per row, 1 .. ::AT_BEAM_MAX (default 4) */
    int32_t reserved;    /**< zero */
    double alpha;        /**< α of GNMT's length penalty ((5 + |Y|)/6)^α, finite and
                              ≥ 0; 0 ranks by log-probability alone (default 0.6) */
    double max_len_a;    /**< a of the longest hypothesis, a + b·|x| ids (default 10) */
    double max_len_b;    /**< b of the longest hypothesis, ≥ 0 (default 2) */
} at_beam_options;

/**
 * @brief Fill beam-search options with their defaults (beam 4, α 0.6,
 *        a 10, b 2) and @c struct_size with this header's sizeof.
 * @param[out] opts the options; NULL does nothing.
 */
AT_API void at_beam_options_init(at_beam_options *opts);

/**
 * @brief Beam search with a key/value cache, for a batch: the best
 *        hypothesis of each row under GNMT's length penalty.
 *
 * Each row keeps K hypotheses. The encoder runs once per row and the K
 * hypotheses of a row share its memory and cross-attention keys and values;
 * each step computes one new position per hypothesis, and the
 * self-attention keys and values of earlier positions are gathered from the
 * hypotheses' parents, not recomputed. A hypothesis Y (the ids after the
 * start, the end id included) scores log P(Y | x) / lp(Y) with
 * lp(Y) = ((5 + |Y|) / 6)^α (Wu et al. 2016, §7). At each step the 2K best
 * continuations by log P are ranked (exact ties: the lower hypothesis, then
 * the lower id; hypotheses equal in exact arithmetic may differ by float32
 * rounding, about 1e-7, and then rank by it); an end id among the first K finishes a hypothesis, the first K
 * others go on. A row may grow to a + b·|x| ids (rounded down, the start
 * included), |x| its source ids that are not @p pad, at most AT_P_MAX_LEN + 1;
 * at that length its K best continuations finish whatever they end with. A
 * row stops once no live hypothesis can outscore its best finished one, so
 * the answer is the one a search run to the full length would give. With
 * K = 1, α = 0 and no end id the ids are at_greedy_decode()'s. The target
 * side masks only the future: ids are never masked as padding.
 *
 * Afterwards the views show each row's best hypothesis: decoder
 * self-attention (B, h, T, T), cross-attention (B, h, T, S) and the decoder
 * outputs of every layer, T = the longest *out_len − 1; for row b the
 * positions below out_len[b] − 1 equal a teacher-forced at_forward() over
 * out[b][0 .. out_len[b] − 2] with the same source mask and no target
 * padding (a hypothesis may contain the pad id: it is not masked, so compare
 * with a pad id that does not occur in it, as for greedy decoding); positions from
 * out_len[b] − 1 on are padding, zero in every view and in the target mask.
 * The views keep the strides of the longest length the batch allowed.
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param pad the source padding id (src != pad is the source mask; -1: no
 *            padding); ids after a row's end are @p pad when it is a target
 *            id, -1 otherwise.
 * @param start the first id of every hypothesis.
 * @param end the id that ends a hypothesis, or -1 (then every hypothesis
 *            runs to its row's longest length).
 * @param opts the settings, or NULL for the defaults of
 *             at_beam_options_init().
 * @param[out] out (batch, out_cols) ids, row-major: each row's best
 *             hypothesis, the start id first.
 * @param out_cols the row stride of @p out; at least the longest length
 *                 any row may reach (the message of ::AT_E_ARG says it).
 * @param[out] out_len (batch) the ids of each row's best hypothesis, the
 *             start included (≥ 2).
 * @param[out] out_score (batch) the score of each best hypothesis,
 *             log P / lp; may be NULL.
 * @return ::AT_OK, ::AT_E_ARG (NULL, beam size, α, a and b, a row allowed
 *         fewer than 2 ids, @p out_cols, options of a newer header with
 *         fields set), ::AT_E_RANGE (ids, lengths, a batch too large),
 *         ::AT_E_NOMEM, ::AT_E_NUMERIC (log-probabilities that are not
 *         finite). On failure no views are available.
 */
AT_API at_status at_beam_decode(at_model *m, const int32_t *src, int batch, int src_len,
                                int32_t pad, int32_t start, int32_t end,
                                const at_beam_options *opts, int32_t *out, int out_cols,
                                int *out_len, double *out_score);

/**
 * @brief Set the number of threads the library's own loops and OpenBLAS use.
 *
 * OpenBLAS keeps one thread count for the whole process, so this affects
 * every model in it.
 * @param n threads, 1 or more; 0 restores the default: the number of cores
 *          the process may run on (its CPU affinity: taskset, a cpuset, an
 *          MPI launcher's binding).
 * @return ::AT_OK, or ::AT_E_ARG for a negative count.
 */
AT_API at_status at_set_threads(int n);

/**
 * @brief The number of threads the library's own loops use (see
 *        at_set_threads()).
 * @return the count, at least 1.
 */
AT_API int at_get_threads(void);

/**
 * @brief Say whether OpenBLAS runs kernels below what this CPU supports.
 *
 * OpenBLAS picks its kernels when it loads, from its own table of CPU
 * models; on a CPU newer than its table, Debian's OpenBLAS 0.3.21 falls back
 * to its Prescott (SSE3) kernels, and libat's larger products run several
 * times slower. The choice cannot be changed inside a running process: the
 * message names the OPENBLAS_CORETYPE value to set before it starts.
 * `attn bench` prints this line (and a warning when it is a fallback).
 * @param[out] buf receives a one-line message, NUL-terminated and cut to
 *             @p size bytes; may be NULL when @p size is 0.
 * @param size the size of @p buf.
 * @return 1 when the kernels are below the CPU (SSE kernels on a CPU with
 *         AVX2, say), 0 when they are not, −1 for a NULL @p buf with a
 *         @p size (nothing written).
 */
AT_API int at_blas_report(char *buf, size_t size);

/**
 * @brief The kernels libat's matrix products run on.
 *
 * libat multiplies with its own packed kernels, chosen once per process
 * from what the CPU says it can run (cpuid and the OS's support of the
 * registers), not from a table of CPU models: "avx512" (12 × 32 tiles),
 * "avx2" (AVX2 and FMA, 6 × 16), or "generic" (portable C). The
 * environment variable LIBAT_GEMM, read when the first product runs, may
 * name a kernel the CPU can run (to compare them, or to test each on one
 * machine), or "openblas" to hand the products to OpenBLAS's sgemm as
 * before version 0.3; an unknown or unusable name is ignored. The kernels
 * round alike within float32's limits (the golden sets pass with each), and
 * a result never depends on the thread count.
 * @return a static string: "avx512", "avx2", "generic" or "openblas".
 */
AT_API const char *at_kernel_name(void);

/**
 * @brief Measure the ceiling of libat's matrix products on this machine.
 *
 * Every thread of libat's pool runs the kernel that at_kernel_name() names
 * on blocks of the size the products use, packed once and held in the
 * core's caches, for about @p seconds, and the rates are added: the
 * throughput no product of the model can exceed, since a product also
 * reads its operands from memory and packs them. A workload's GFLOP/s
 * divided by this says how much of the machine it uses; on a shared host,
 * whose clock changes from one hour to the next, that share moves far less
 * than the time does. `attn bench` prints it beside each workload.
 * @param seconds how long to measure, in (0, 60]; 0.5 is plenty.
 * @return GFLOP/s (float32, multiply and add counted as 2), or −1 when
 *         @p seconds is out of range or not a number, when the products
 *         are OpenBLAS's (LIBAT_GEMM=openblas: nothing of libat's to
 *         measure), or when a thread could not get its 0.7 MiB of blocks.
 */
AT_API double at_kernel_peak(double seconds);

/** @} */

/** @defgroup stats Attention statistics
 *  Summaries of each head of the last pass, over the valid region only: keys
 *  that the mask hides carry no weight, query rows at padded positions and
 *  (for decoder self-attention) the masked future are left out. Rows of every
 *  batch element are averaged together.
 *  @{ */

/** Statistics of a head; the values are fixed and new ones are added at the end. */
typedef enum at_stat {
    AT_STAT_ENTROPY = 0,      /**< mean entropy of a row, in nats */
    AT_STAT_ENTROPY_NORM = 1, /**< mean entropy divided by ln(valid keys) (0 for one key) */
    AT_STAT_MAX = 2,          /**< mean largest weight of a row */
    AT_STAT_DISPERSION = 3,   /**< 1 − AT_STAT_MAX */
    AT_STAT_TOPK = 4,         /**< mean mass of a row's k largest weights */
    AT_STAT_DISTANCE = 5,     /**< mean attended distance Σ_j p_ij·|i − j| */
    AT_STAT_ROWS = 6          /**< the number of valid rows averaged */
} at_stat;

/** The number of statistics this header knows. */
#define AT_STAT_COUNT 7

/**
 * @brief Statistics of every head of one attention tensor of the last pass.
 * @param m the model, after a pass (forward, training step, decoding).
 * @param kind which attention.
 * @param layer 0-based layer.
 * @param topk k of ::AT_STAT_TOPK, ≥ 1 (rows with fewer valid keys count all).
 * @param nstats how many statistics per head the caller wants (normally
 *               ::AT_STAT_COUNT; at most the library's count).
 * @param[out] out (heads, nstats) values, row-major: out[h·nstats + s]. A head
 *                 with a weight that is not finite in its valid region gets NaN
 *                 for every statistic but ::AT_STAT_ROWS.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE (no such attention computed).
 */
AT_API at_status at_attention_stats(at_model *m, at_attn_kind kind, int layer, int topk,
                                    int nstats, double *out);

/**
 * @brief Jensen–Shannon divergence between every pair of heads of one layer:
 *        the mean over valid rows of JS(p_a, p_b) in bits, so 0 for identical
 *        heads and 1 for heads that attend to disjoint keys (1 − it is their
 *        similarity).
 * @param m the model, after a pass.
 * @param kind which attention.
 * @param layer 0-based layer.
 * @param[out] out (heads, heads) values, row-major; symmetric, zero diagonal; NaN
 *                 for a pair where either head has a weight that is not finite.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE.
 */
AT_API at_status at_attention_js(at_model *m, at_attn_kind kind, int layer, double *out);

/** @} */

/** @defgroup train Training
 *  The reference's training loop, one batch at a time (SEMANTICS §10–§12):
 *  label-smoothed KL loss over the non-pad labels, backward, and Adam
 *  (β₁, β₂, ε from AT_P_BETA1, AT_P_BETA2, AT_P_ADAM_EPS) whose learning rate
 *  is AT_P_LR times the Noam rate. Dropout follows AT_P_DROPOUT and
 *  AT_P_ATTN_DROPOUT, its masks drawn from AT_P_SEED and the step count.
 *  @{ */

/**
 * @brief One training step on a batch: forward in training mode, loss,
 *        backward, one Adam update.
 *
 * As the reference's Batch, @p tgt is the full target Y: the decoder reads
 * Y[:, :-1] and learns to predict Y[:, 1:]; labels equal to @p pad do not
 * count. Optimizer step k (1-based) uses AT_P_LR · rate(k − 1), rate(0)
 * being rate(1), as LambdaLR does. Afterwards at_model_grad() shows the
 * gradients and the views show this pass's activations (computed with the
 * parameters before the update; attention before its dropout). The biases of
 * the key projections get their exact gradient, 0 (softmax ignores a constant
 * added to every score of a query), not the float noise a sum would leave.
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param tgt full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id; it must lie inside the target vocabulary.
 * @param[out] loss the loss that was minimised: KL sum / ntokens.
 * @param[out] ntokens the number of labels that are not pad (may be NULL).
 * @return ::AT_OK, ::AT_E_ARG (NULL, sizes, every label pad), ::AT_E_RANGE
 *         (ids, lengths, pad, a batch too large), ::AT_E_STATE (the weights
 *         are shared, see at_model_share()), ::AT_E_NOMEM, ::AT_E_NUMERIC (the
 *         loss or a gradient is NaN or infinite: the step is not taken, the
 *         step count does not grow; at_model_grad() shows the gradients). On
 *         failure the parameters and the optimizer state are unchanged.
 */
AT_API at_status at_train_step(at_model *m, const int32_t *src, const int32_t *tgt,
                               int batch, int src_len, int tgt_len, int32_t pad,
                               float *loss, int64_t *ntokens);

/** What an ::at_allreduce_fn sums: its @p data points to floats or doubles. */
typedef enum at_reduce_type {
    AT_REDUCE_FLOAT = 0,   /**< float: the gradients */
    AT_REDUCE_DOUBLE = 1   /**< double: counts, loss sums and flags (exact up to 2^53) */
} at_reduce_type;

/**
 * @brief A host's allreduce: sums @p data element by element over every
 *        participant of a data-parallel step, in place.
 *
 * Every participant must end with the same sum, bit for bit (an MPI_Allreduce
 * with MPI_SUM does, as do ring and tree reductions), so that every one takes
 * the same Adam step. With one participant it is the identity.
 * @param user the pointer given to at_train_step_reduce().
 * @param data @p count floats or doubles, as @p type says.
 * @param count elements.
 * @param type ::AT_REDUCE_FLOAT or ::AT_REDUCE_DOUBLE.
 * @return ::AT_OK, or a status the step then returns.
 */
typedef at_status (*at_allreduce_fn)(void *user, void *data, size_t count, at_reduce_type type);

/**
 * @brief One data-parallel training step: this participant's shard of a
 *        global batch, the gradients summed over every participant by
 *        @p reduce, then the same Adam update on every participant.
 *
 * The participants hold the same parameters and optimizer state and each
 * calls this with its rows of the global batch (row @p row_offset onwards;
 * every shard padded to the same src_len and tgt_len). The step is the one
 * at_train_step() takes on the whole global batch: the loss is the global
 * KL sum over the global count of labels that are not pad, the dropout mask
 * of a row is the one its global row index draws, and with one participant
 * (@p reduce the identity, @p row_offset 0) the result equals at_train_step()
 * bit for bit. Otherwise it equals it to within the rounding of the sums.
 *
 * Every call makes the same @p reduce calls on every participant, in the
 * same order, whatever happens once @p m, @p reduce and @p loss are valid
 * and the handle is free: (1) 2 doubles, the local label count and a
 * failure flag, after the forward pass; unless some participant failed,
 * (2) the gradients, the floats of every trainable parameter (4 bytes each:
 * what at_model_tensor_trainable() counts), and (3) 2 doubles, the local KL
 * sum and a non-finite flag. So a participant whose arguments are wrong
 * fails, and the others fail too (::AT_E_STATE) instead of waiting for it;
 * a non-finite gradient anywhere makes every participant skip the step.
 * @param m the model.
 * @param src this shard's source ids (batch, src_len); NULL when batch is 0.
 * @param tgt this shard's full target ids (batch, tgt_len).
 * @param batch this shard's rows, ≥ 0 (0: a participant with no rows this
 *        step takes part in the reductions and the update).
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id; it must lie inside the target vocabulary.
 * @param row_offset the global batch's index of this shard's first row, ≥ 0.
 * @param reduce the allreduce.
 * @param user passed to @p reduce.
 * @param[out] loss the global loss: global KL sum / global ntokens.
 * @param[out] ntokens the global number of labels that are not pad (may be NULL).
 * @return as at_train_step(); ::AT_E_STATE when another participant failed;
 *         @p reduce's status when it failed.
 */
AT_API at_status at_train_step_reduce(at_model *m, const int32_t *src, const int32_t *tgt,
                                      int batch, int src_len, int tgt_len, int32_t pad,
                                      int64_t row_offset, at_allreduce_fn reduce, void *user,
                                      float *loss, int64_t *ntokens);

/**
 * @brief The loss of a batch in evaluation mode (no dropout), without any
 *        update; arguments as at_train_step().
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param tgt full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id, inside the target vocabulary.
 * @param[out] loss KL sum / ntokens.
 * @param[out] ntokens labels that are not pad (may be NULL).
 * @return as at_train_step().
 */
AT_API at_status at_eval_loss(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                              int src_len, int tgt_len, int32_t pad, float *loss,
                              int64_t *ntokens);

/**
 * @brief The gradient of the last training step's loss for one state_dict
 *        tensor, as a view (same index as at_model_tensor()).
 * @param m the model.
 * @param index 0 .. at_model_tensor_count()-1.
 * @param[out] out the view; valid until the next training step or free.
 * @return ::AT_OK, ::AT_E_ARG (NULL, index, a pe buffer), ::AT_E_STATE (no
 *         training step yet).
 */
AT_API at_status at_model_grad(at_model *m, int index, at_view *out);

/**
 * @brief How many optimizer steps the model has taken.
 * @param m the model (NULL gives 0).
 * @return the count.
 */
AT_API uint64_t at_model_steps(const at_model *m);

/**
 * @brief The learning rate the next at_train_step() will apply.
 * @param m the model (NULL gives 0).
 * @return AT_P_LR · rate(max(steps, 1)).
 */
AT_API double at_model_learning_rate(const at_model *m);

/**
 * @brief The reference's rate(step, model_size, factor, warmup) =
 *        factor · model_size^−0.5 · min(step^−0.5, step · warmup^−1.5), step 0
 *        counted as 1 (paper §5.3).
 * @param step the step, ≥ 0.
 * @param model_size d_model, ≥ 1.
 * @param factor the factor.
 * @param warmup warmup steps, ≥ 1.
 * @return the rate, or 0 for arguments out of range.
 */
AT_API double at_noam_rate(int64_t step, int model_size, double factor, int64_t warmup);

/** @} */

/** @defgroup interventions Interventions: taps, head gates, attention overrides, capture
 *  Touching the model instead of watching it (docs/interventions.md).
 *
 *  Everything here belongs to one handle (a context): a handle made by
 *  at_model_share() starts with no taps, every gate at 1, no override and
 *  every attention kept. Settings last until changed; they apply to every
 *  later pass: at_forward(), at_greedy_decode(), at_beam_decode(),
 *  at_train_step(), at_eval_loss() and at_gate_gradients().
 *
 *  Kinds, layers and heads count from 0; ::AT_ALL in a layer or head
 *  argument (and as a kind, where said) means every one.
 *  @{ */

/** Every kind, layer or head, where an argument allows it. */
#define AT_ALL (-1)

/**
 * @brief The places of a pass where a tap sees (and may change) a tensor.
 *
 * Attention sites belong to one attention block (kind, layer); layer sites
 * to an encoder layer (kind ::AT_ATTN_ENC_SELF) or a decoder layer
 * (::AT_ATTN_DEC_SELF); model sites to the whole pass (kind and layer 0).
 * Shapes are those of a full pass over B rows, S source and T target
 * positions; h heads of d_k = d/h columns; Lq and Lk the query and key
 * lengths of the block.
 */
typedef enum at_site {
    AT_SITE_Q = 0,          /**< queries, (B, h, Lq, d_k) */
    AT_SITE_K = 1,          /**< keys, (B, h, Lk, d_k) */
    AT_SITE_V = 2,          /**< values, (B, h, Lk, d_k) */
    AT_SITE_SCORES = 3,     /**< q·kᵀ/√d_k with masked entries at -1e9, exactly what
                                 softmax receives, (B, h, Lq, Lk) */
    AT_SITE_PROBS = 4,      /**< the probabilities, (B, h, Lq, Lk) */
    AT_SITE_HEAD_OUT = 5,   /**< each head's P·V before its gate and the output
                                 projection, (B, h, Lq, d_k) */
    AT_SITE_ATTN_OUT = 6,   /**< the output projection of the heads, before dropout and
                                 the residual, (B, Lq, d) */
    AT_SITE_FF_HIDDEN = 7,  /**< relu(x·W_1ᵀ + b_1) of a layer, (B, L, d_ff) */
    AT_SITE_LAYER_OUT = 8,  /**< a layer's output, (B, L, d) */
    AT_SITE_SRC_EMBED = 9,  /**< source embedding·√d + PE, (B, S, d) */
    AT_SITE_TGT_EMBED = 10, /**< target embedding·√d + PE, (B, T, d) */
    AT_SITE_MEMORY = 11,    /**< the encoder's output after its final norm, (B, S, d) */
    AT_SITE_DECODER = 12,   /**< the decoder's output after its final norm, (B, T, d) */
    AT_SITE_LOGPROBS = 13   /**< the generator's log-probabilities, (B, T, V_tgt) */
} at_site;

/** One more than the largest ::at_site. */
#define AT_SITE_COUNT 14

/**
 * @brief The short name of a site, as the command line spells it ("q", "k",
 *        "v", "scores", "probs", "head_out", "attn_out", "ff_hidden",
 *        "layer_out", "src_embed", "tgt_embed", "memory", "decoder",
 *        "logprobs").
 * @param site a site.
 * @return A static string; NULL for an unknown site.
 */
AT_API const char *at_site_name(at_site site);

/**
 * @brief The site of a short name (at_site_name()).
 * @param name the name.
 * @param[out] out the site.
 * @return ::AT_OK, ::AT_E_ARG (NULL, unknown name).
 */
AT_API at_status at_site_from_name(const char *name, at_site *out);

/** The call a tap fires in. */
typedef enum at_pass {
    AT_PASS_FORWARD = 0, /**< at_forward(), at_eval_loss(), at_gate_gradients() */
    AT_PASS_GREEDY = 1,  /**< at_greedy_decode() */
    AT_PASS_BEAM = 2,    /**< at_beam_decode() */
    AT_PASS_TRAIN = 3    /**< at_train_step() */
} at_pass;

/**
 * @brief What a tap is handed: where it is, and the tensor, writable.
 *
 * In a full pass the tensor covers every position ([pos_begin, pos_end) is
 * [0, L), the key positions for k and v). In decoding, a decoder-side site fires once per step with the
 * rows of the position being decoded only (@c step = pos_begin, pos_end =
 * step + 1; its keys are the step + 1 positions so far), and @c batch counts
 * the decoder's rows: B in greedy decoding; in beam search the K hypothesis
 * slots of every source row from the first to the last one not yet finished
 * (B·K at the start, slots row_begin .. row_begin + batch − 1). Encoder-side sites (and the cross-attention k and v, computed once
 * from the memory) fire once, before the first step, with @c step -1.
 */
typedef struct at_tap_event {
    at_site site;        /**< where */
    at_attn_kind kind;   /**< the block's kind; the stack's for layer sites */
    int32_t layer;       /**< 0-based layer; 0 for model sites */
    at_pass pass;        /**< the call */
    int32_t step;        /**< the decoding step, or -1 outside decoding */
    int32_t pos_begin;   /**< first query (or row) position the tensor covers */
    int32_t pos_end;     /**< one past the last */
    int32_t batch;       /**< rows in the first dimension of @c view */
    int32_t row_begin;   /**< the decoder row (beam slot: source · K + hypothesis) of
                              the first dimension's index 0; 0 outside beam search */
    int32_t reserved;    /**< zero */
    float *data;         /**< the tensor's first element, writable (== view.data) */
    at_view view;        /**< shape and strides (elements); may be strided */
} at_tap_event;

/**
 * @brief A tap: called with each tensor of its site as the pass produces it.
 *
 * What the tap leaves in @c ev->data is what the rest of the pass uses.
 * It must not call into the same handle. Returning anything but ::AT_OK
 * stops the pass, whose call then returns ::AT_E_CALLBACK.
 */
typedef at_status (*at_tap_fn)(void *user, const at_tap_event *ev);

/**
 * @brief Register a tap for a site of one block or layer (or all).
 *
 * Taps fire in the order of the pass (docs/interventions.md lists it); two
 * taps on the same site fire in the order they were added. At most 256 taps
 * per handle.
 * @param m the model.
 * @param site the site.
 * @param kind the kind (attention sites), the stack (layer sites: enc_self or
 *             dec_self), or ::AT_ALL; ignored for model sites.
 * @param layer the layer, or ::AT_ALL; must be 0 or ::AT_ALL for model sites.
 * @param fn the callback.
 * @param user passed to @p fn.
 * @return ::AT_OK, ::AT_E_ARG (NULL, unknown site or kind, layer out of
 *         range, a layer site with the cross kind), ::AT_E_NOMEM (too many).
 */
AT_API at_status at_tap_add(at_model *m, at_site site, int kind, int layer, at_tap_fn fn,
                            void *user);

/**
 * @brief Remove every tap of the handle.
 * @param m the model.
 * @return ::AT_OK, ::AT_E_ARG (NULL).
 */
AT_API at_status at_tap_clear(at_model *m);

/**
 * @brief Set head gates: ξ multiplies a head's output before the output
 *        projection (Michel et al. 2019), in every later pass.
 *
 * ξ = 1 (the default) is exactly the plain model; ξ = 0 removes the head.
 * @param m the model.
 * @param kind the kind, or ::AT_ALL.
 * @param layer the layer, or ::AT_ALL.
 * @param head the head, or ::AT_ALL.
 * @param value ξ, finite.
 * @return ::AT_OK, ::AT_E_ARG (NULL, kind, layer or head out of range),
 *         ::AT_E_NUMERIC (not finite).
 */
AT_API at_status at_gate_set(at_model *m, int kind, int layer, int head, float value);

/**
 * @brief One head's gate.
 * @param m the model.
 * @param kind the kind.
 * @param layer the layer.
 * @param head the head.
 * @param[out] out ξ.
 * @return ::AT_OK, ::AT_E_ARG.
 */
AT_API at_status at_gate_get(const at_model *m, at_attn_kind kind, int layer, int head,
                             float *out);

/**
 * @brief The gradient ∂L/∂ξ of every gate, from one forward and one
 *        backward pass in evaluation mode, without any update.
 *
 * L is the mean negative log-likelihood of tgt[:, 1:] over the labels that
 * are not @p pad (no dropout, no label smoothing), taken at the current
 * gates; |∂L/∂ξ| at ξ = 1 is Michel et al.'s head importance. Arguments as
 * at_train_step(). The weights may be shared (nothing is written to them).
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param tgt full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id, inside the target vocabulary.
 * @param[out] loss L (may be NULL).
 * @param[out] grad 3 · AT_P_LAYERS · AT_P_HEADS values, [kind][layer][head]
 *             (kinds in ::at_attn_kind order); may be NULL.
 * @return as at_train_step(), and ::AT_E_STATE when the capture policy
 *         drops attention that the backward pass needs.
 */
AT_API at_status at_gate_gradients(at_model *m, const int32_t *src, const int32_t *tgt,
                                   int batch, int src_len, int tgt_len, int32_t pad,
                                   double *loss, float *grad);

/**
 * @brief The mean negative log-likelihood of a batch (as at_gate_gradients()
 *        defines L), forward only, at the current gates and overrides.
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param tgt full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id, inside the target vocabulary.
 * @param[out] loss L.
 * @param[out] ntokens labels that are not pad (may be NULL).
 * @return as at_eval_loss().
 */
AT_API at_status at_eval_nll(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                             int src_len, int tgt_len, int32_t pad, double *loss,
                             int64_t *ntokens);

/**
 * @brief Replace the attention probabilities of a block (or of one head)
 *        with the host's, in every later pass; the library keeps a copy.
 *
 * The rest of the pass runs on the given values. In a full pass the block's
 * query and key lengths must equal @p q_len and @p k_len (else the pass
 * fails with ::AT_E_SHAPE). In decoding, step t uses row t (rows from
 * @p q_len on are the model's own), so a decode and a teacher-forced pass
 * over its output with the same override agree exactly. Rows need not sum
 * to one (a zero row removes the block's contribution at that position);
 * values must be finite, and decoder self-attention may not look ahead:
 * entries above the diagonal must be 0. @p batch counts sources: in beam
 * search all hypotheses of a source share its rows.
 * @param m the model.
 * @param kind the kind.
 * @param layer the layer.
 * @param head a head, or ::AT_ALL for all.
 * @param probs (batch, h, q_len, k_len) for ::AT_ALL, else (batch, q_len,
 *              k_len), row-major; NULL removes the override of that block
 *              (or head).
 * @param batch rows, ≥ 1.
 * @param q_len query positions, ≥ 1.
 * @param k_len key positions, ≥ 1 (= q_len for decoder self-attention).
 * @return ::AT_OK, ::AT_E_ARG (NULL handle, kind, layer, head, sizes,
 *         look-ahead), ::AT_E_NUMERIC (a value not finite), ::AT_E_RANGE
 *         (a length above AT_P_MAX_LEN), ::AT_E_NOMEM.
 */
AT_API at_status at_attention_override(at_model *m, at_attn_kind kind, int layer, int head,
                                       const float *probs, int batch, int q_len, int k_len);

/**
 * @brief Remove every override, reset every gate to 1 and keep every
 *        attention again; taps stay (at_tap_clear()).
 * @param m the model.
 * @return ::AT_OK, ::AT_E_ARG (NULL).
 */
AT_API at_status at_interventions_reset(at_model *m);

/**
 * @brief The capture policy: whether later passes keep a head's attention
 *        probabilities for the views (the default) or compute them in
 *        scratch memory and drop them.
 *
 * Dropped attention costs no arena memory: a pass over long inputs fits
 * where keeping every (Lq, Lk) matrix would not. Views of a dropped head
 * return ::AT_E_STATE; at_get_attention() needs every head of the layer
 * kept, at_get_attention_head() only its own. A block with a tap on its
 * scores or probs, or with an override, is kept whole regardless.
 * at_train_step() and at_gate_gradients() need all attention and fail with
 * ::AT_E_STATE under a policy that drops some.
 * @param m the model.
 * @param kind the kind, or ::AT_ALL.
 * @param layer the layer, or ::AT_ALL.
 * @param head the head, or ::AT_ALL.
 * @param keep 1 keep, 0 drop.
 * @return ::AT_OK, ::AT_E_ARG.
 */
AT_API at_status at_capture_set(at_model *m, int kind, int layer, int head, int keep);

/**
 * @brief The attention probabilities of one head: a (batch, query, key)
 *        view, no copy; works under a capture policy that keeps this head.
 * @param m the model, after a pass.
 * @param kind which attention.
 * @param layer 0-based layer.
 * @param head 0-based head.
 * @param[out] out the view; valid as described at ::at_view.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE (not computed, or not kept).
 */
AT_API at_status at_get_attention_head(at_model *m, at_attn_kind kind, int layer, int head,
                                       at_view *out);

/**
 * @brief The arena memory the last pass used, in bytes (activations, the
 *        kept attention, scratch); what a capture policy saves shows here.
 * @param m the model (NULL gives 0).
 * @return bytes.
 */
AT_API size_t at_model_activation_bytes(const at_model *m);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* AT_H */
