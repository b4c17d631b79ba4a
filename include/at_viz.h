/**
 * @file at_viz.h
 * @brief libat charts: attention heatmaps, head and layer comparisons, the
 *        model view, statistics and masks, as SVG, Vega-Lite or an offline
 *        HTML explorer.
 *
 * The charts read the model's current views: call at_forward(),
 * at_greedy_decode() or at_train_step() first, then draw. Nothing is copied
 * out of the model but what a chart file needs; a chart is written from the
 * views as they are at the call.
 *
 * How a chart is laid out:
 * - rows are queries, columns are keys: encoder self-attention is source ×
 *   source, decoder self-attention target × target, cross-attention target
 *   (rows) × source (columns);
 * - every position is its own row or column, labelled by its token: a token
 *   that occurs twice gives two rows;
 * - layers and heads are numbered from 1 in titles and labels, as people
 *   count; the functions take them 0-based, as the rest of the API does;
 * - one sequential colour scale (light yellow through green to dark blue,
 *   interpolated in RGB between nine fixed colours) is used by every format,
 *   so an SVG, its Vega-Lite twin and the explorer show the same colours.
 *
 * The three formats:
 * - ::AT_VIZ_SVG: one self-contained SVG file (no external reference), with
 *   a tooltip on every cell (an SVG @c title element) where the chart is
 *   small enough, and a font stack that renders Chinese, Japanese and Korean
 *   labels (Noto Sans CJK, Source Han Sans, PingFang, Microsoft YaHei, …);
 * - ::AT_VIZ_VEGALITE: a Vega-Lite v5 specification with its data inline,
 *   the grammar Altair writes: it opens in the Vega editor, in Jupyter, and in
 *   Python with @c alt.Chart.from_dict(json.load(f));
 * - ::AT_VIZ_HTML: the interactive explorer (::AT_VIZ_EXPLORER), one HTML
 *   file with its script and style inline that makes no network request; any
 *   other chart in this format is its SVG inside a minimal page.
 *
 * Example (after a forward pass with a target):
 * @code
 * at_viz_options *o;
 * at_viz_options_create(&o);
 * const char *src[] = {"the", "cat", "sat", "on", "the", "mat"};
 * at_viz_options_set_labels(o, AT_VIZ_SRC, src, 6);
 * at_viz_save("cross-l2-h1.svg", m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_CROSS, 1, 0, o);
 * at_viz_save("index.html", m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, o);
 * at_viz_options_free(o);
 * @endcode
 */
#ifndef AT_VIZ_H
#define AT_VIZ_H

#include <stdint.h>
#include <stdio.h>

#include "at.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup viz Charts
 *  Charts of the attention of the last pass, in three formats.
 *  @{ */

/** What a chart shows. Values are fixed; new charts are added at the end.
 *  Each chart uses some of the @c kind, @c layer and @c head arguments of
 *  at_viz_write(); the ones it does not use must be 0. */
typedef enum at_viz_chart {
    AT_VIZ_HEATMAP = 0,  /**< one head: queries down, keys across, a legend and a tooltip
                              per cell; uses kind, layer, head */
    AT_VIZ_HEADS = 1,    /**< every head of one layer side by side, each coloured on its
                              own scale (0 to that head's largest weight); uses kind, layer */
    AT_VIZ_LAYERS = 2,   /**< one head through every layer, each panel on its own scale;
                              uses kind, head */
    AT_VIZ_MODEL = 3,    /**< the model view: a layers × heads grid of small heatmaps,
                              each on its own scale; uses kind */
    AT_VIZ_STATS = 4,    /**< normalised entropy and mean largest weight of every layer
                              and head, for each kind of attention computed (the
                              statistics of at_attention_stats(), over the whole
                              batch); uses none */
    AT_VIZ_MASKS = 5,    /**< the subsequent mask, the source padding mask of the whole
                              batch and the combined target mask of the charted row, as
                              the pass applied them; uses none */
    AT_VIZ_EXPLORER = 6  /**< the interactive HTML explorer (::AT_VIZ_HTML only): choose
                              kind, layer and head; heatmap and line views; statistics
                              and head similarity tables; kind, layer and head say what
                              it shows first */
} at_viz_chart;

/** The number of charts this header knows. */
#define AT_VIZ_CHART_COUNT 7

/** File formats. Values are fixed; new formats are added at the end. */
typedef enum at_viz_format {
    AT_VIZ_SVG = 0,      /**< SVG 1.1, UTF-8, self-contained */
    AT_VIZ_VEGALITE = 1, /**< Vega-Lite v5 JSON, data inline */
    AT_VIZ_HTML = 2      /**< HTML5, UTF-8, script and style inline, no network access */
} at_viz_format;

/** Which sequence a list of labels or ids names. */
typedef enum at_viz_side {
    AT_VIZ_SRC = 0,      /**< the source: encoder positions (keys of cross-attention) */
    AT_VIZ_TGT = 1       /**< the target: decoder input positions (queries of
                              cross-attention) */
} at_viz_side;

/** Integer settings of at_viz_options_set(). Values are fixed and numbered
 *  from 1 without gaps; new ones are added at the end. */
typedef enum at_viz_param {
    AT_VIZ_ROW = 1,      /**< the batch row charted, 0-based (default 0) */
    AT_VIZ_TOPK = 2,     /**< k of the top-k mass in statistics (default 3), 1 .. 1000 */
    AT_VIZ_CELL = 3,     /**< side of a heatmap cell in pixels, 2 .. 64; 0 chooses from
                              the sequence lengths (default 0) */
    AT_VIZ_TRIM = 4      /**< 1: leave out the positions after the row's last token that
                              is not padding (default); 0: chart every position of the
                              pass. The masks chart always shows every position. */
} at_viz_param;

/** An opaque, growable set of chart settings: labels, font, batch row, … */
typedef struct at_viz_options at_viz_options;

/**
 * @brief Create chart settings holding the defaults: no labels (positions
 *        are shown as numbers), the default font stack, batch row 0, top-3
 *        mass, automatic cell size, trailing padding left out.
 * @param[out] out receives the settings; free them with at_viz_options_free().
 * @return ::AT_OK, ::AT_E_ARG if @p out is NULL, ::AT_E_NOMEM.
 */
AT_API at_status at_viz_options_create(at_viz_options **out);

/**
 * @brief Free chart settings and the labels they copied.
 * @param o the settings, or NULL (then nothing happens).
 */
AT_API void at_viz_options_free(at_viz_options *o);

/**
 * @brief Set one integer setting.
 * @param o the settings.
 * @param key which setting.
 * @param value its new value, within the range the key documents. A row
 *              beyond the batch of the pass is refused when a chart is drawn.
 * @return ::AT_OK, or ::AT_E_ARG (NULL @p o, unknown key, value out of
 *         range); the reason is in at_errmsg(NULL).
 */
AT_API at_status at_viz_options_set(at_viz_options *o, at_viz_param key, int value);

/**
 * @brief Read one integer setting.
 * @param o the settings.
 * @param key which setting.
 * @param[out] out receives the value.
 * @return ::AT_OK, or ::AT_E_ARG (NULL pointer, unknown key).
 */
AT_API at_status at_viz_options_get(const at_viz_options *o, at_viz_param key, int *out);

/**
 * @brief Name the tokens of one sequence.
 *
 * Position i of the sequence is labelled @p labels[i]. Positions beyond
 * @p count fall back to the ids of at_viz_options_set_ids(), then to the
 * position number. Labels are UTF-8 strings of any content: charts escape
 * them for SVG, JSON and HTML. Invalid UTF-8 bytes are shown as U+FFFD,
 * control characters (tabs and newlines included) as spaces.
 * Axis labels longer than 16 characters are shortened with an ellipsis;
 * tooltips show them whole.
 * @param o the settings.
 * @param side the source or the target.
 * @param labels @p count strings, copied (may be freed afterwards); NULL with
 *               @p count 0 removes the labels. A NULL entry is shown as its
 *               id or position.
 * @param count the number of labels, 0 .. 1,000,000.
 * @return ::AT_OK, ::AT_E_ARG (NULL @p o, bad side, NULL @p labels with a
 *         count, count out of range), ::AT_E_NOMEM.
 */
AT_API at_status at_viz_options_set_labels(at_viz_options *o, at_viz_side side,
                                           const char *const *labels, int count);

/**
 * @brief Give the token ids of one sequence, shown as numbers where no label
 *        is set (the pass itself keeps no ids).
 * @param o the settings.
 * @param side the source or the target.
 * @param ids @p count ids, copied; NULL with @p count 0 removes them.
 * @param count the number of ids, 0 .. 1,000,000.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_NOMEM.
 */
AT_API at_status at_viz_options_set_ids(at_viz_options *o, at_viz_side side,
                                        const int32_t *ids, int count);

/**
 * @brief Put a font family first in the font stack of every chart (e.g.
 *        "Noto Serif CJK JP"); the default stack follows it as a fallback.
 * @param o the settings.
 * @param family the family name, at most 100 bytes of letters, digits,
 *               spaces and - _ . , (no quotes); NULL or "" restores the
 *               default stack.
 * @return ::AT_OK, or ::AT_E_ARG (NULL @p o, a name with other characters).
 */
AT_API at_status at_viz_options_set_font(at_viz_options *o, const char *family);

/**
 * @brief A line of text shown under every chart's title (e.g. the model and
 *        the input), and in the explorer's header.
 * @param o the settings.
 * @param caption UTF-8 text, copied, at most 1,000 bytes (cleaned as labels
 *                are); NULL or "" for none.
 * @return ::AT_OK, ::AT_E_ARG (NULL @p o, too long), ::AT_E_NOMEM.
 */
AT_API at_status at_viz_options_set_caption(at_viz_options *o, const char *caption);

/**
 * @brief Write a chart of the model's last pass to an open stream.
 *
 * Reads the attention views (at_get_attention()), the mask views
 * (::AT_OUT_SRC_MASK, ::AT_OUT_TGT_MASK) and, for the statistics chart and
 * the explorer, at_attention_stats() and at_attention_js(). Writes nothing
 * when an argument is refused. The stream is not closed; a write error is
 * reported as ::AT_E_IO.
 * @param out the stream, open for writing.
 * @param m the model, after a pass.
 * @param chart what to draw.
 * @param fmt the format; ::AT_VIZ_EXPLORER exists only as ::AT_VIZ_HTML.
 * @param kind the attention charted (see ::at_viz_chart; 0 when unused).
 * @param layer 0-based layer (0 when unused).
 * @param head 0-based head (0 when unused).
 * @param opts settings, or NULL for the defaults.
 * @return ::AT_OK; ::AT_E_ARG (NULL stream or model, unknown chart, format or
 *         kind, layer, head or batch row out of range, an unused argument
 *         that is not 0, the explorer in another format than HTML);
 *         ::AT_E_STATE (no pass yet, or the kind needs a target and the pass
 *         had none); ::AT_E_IO; ::AT_E_NOMEM. The reason is in at_errmsg(m)
 *         (at_errmsg(NULL) when @p m is NULL).
 */
AT_API at_status at_viz_write(FILE *out, at_model *m, at_viz_chart chart, at_viz_format fmt,
                              at_attn_kind kind, int layer, int head,
                              const at_viz_options *opts);

/**
 * @brief Write a chart to a file, atomically: into a temporary file in the
 *        same directory, flushed, then renamed over @p path. On failure no
 *        file is left behind and an existing @p path is untouched.
 * @param path the file to write.
 * @param m the model, after a pass.
 * @param chart what to draw.
 * @param fmt the format.
 * @param kind the attention charted (0 when unused).
 * @param layer 0-based layer (0 when unused).
 * @param head 0-based head (0 when unused).
 * @param opts settings, or NULL for the defaults.
 * @return as at_viz_write(); ::AT_E_IO also when the file cannot be created,
 *         written or renamed (the message says which step failed).
 */
AT_API at_status at_viz_save(const char *path, at_model *m, at_viz_chart chart,
                             at_viz_format fmt, at_attn_kind kind, int layer, int head,
                             const at_viz_options *opts);

/**
 * @brief A short fixed name for a chart, as the attn program uses it in file
 *        names: "heatmap", "heads", "layers", "model", "stats", "masks",
 *        "explorer".
 * @param chart any value.
 * @return A static string, or NULL for an unknown chart.
 */
AT_API const char *at_viz_chart_name(at_viz_chart chart);

/**
 * @brief A short fixed name for a kind of attention: "enc_self", "dec_self",
 *        "cross" (the names of attn dump's tensors).
 * @param kind any value.
 * @return A static string, or NULL for an unknown kind.
 */
AT_API const char *at_viz_kind_name(at_attn_kind kind);

/**
 * @brief The file name extension of a format: ".svg", ".vl.json", ".html".
 * @param fmt any value.
 * @return A static string, or NULL for an unknown format.
 */
AT_API const char *at_viz_format_ext(at_viz_format fmt);

/** @} */

/** @defgroup vizanalysis Analysis layers of the explorer
 *  Results of the analysis functions (at_analysis.h: head importance,
 *  ablations, rollout, Chefer et al.'s relevance, head roles, …) attached to
 *  chart settings, so that the explorer (::AT_VIZ_EXPLORER) shows them in its
 *  "Analysis" section beside the attention of the pass. The caller computes
 *  them; the settings keep copies. The other charts ignore them.
 *
 *  Two shapes, and gold links:
 *  - a head grid: one value per (layer, head) of one kind of attention, drawn
 *    as a small layers × heads heatmap with the value (and an optional label,
 *    e.g. a head's role) in its tooltip; clicking a cell shows that head's
 *    attention in the main view;
 *  - a token map: a matrix over the positions of the source or the target of
 *    the charted batch row (rollout S × S or T × S, relevance T × S or T × T),
 *    drawn as the attention heatmap is; a map whose rows are the target also
 *    has a "per output token" view: the row of a chosen target position as
 *    bars over the column tokens;
 *  - gold links (target position, source position), outlined on every
 *    cross-attention heatmap; the explorer's head grids then include the
 *    share of each head's attention on the links and its alignment error rate.
 *
 *  Positions are those of the pass (0-based). A map is given either for the
 *  pass's lengths or for the lengths charted (trailing padding left out, see
 *  ::AT_VIZ_TRIM): at_viz_write() refuses other shapes with ::AT_E_SHAPE and
 *  crops a map of the pass's lengths to the positions charted.
 *
 *  The file stays bounded: the analysis layers of one set of settings hold
 *  at most ::AT_VIZ_MAP_VALUES_MAX map values (4 bytes each in base64: at
 *  most 21.4 MB), ::AT_VIZ_GRID_VALUES_MAX head-grid values (at most 25
 *  bytes each as decimals: 6.3 MB) and ::AT_VIZ_LABEL_BYTES_MAX bytes of
 *  head-grid labels, besides the attention's own cap (docs/explorer.md).
 *  @{ */

/** The most head grids and maps one set of settings holds (together). */
#define AT_VIZ_ANALYSIS_MAX 64

/** The most values of all the maps of one set of settings together. */
#define AT_VIZ_MAP_VALUES_MAX 4000000

/** The most values of all the head grids of one set of settings together. */
#define AT_VIZ_GRID_VALUES_MAX 250000

/** The most bytes of all the head-grid labels of one set of settings together. */
#define AT_VIZ_LABEL_BYTES_MAX 4000000

/** The longest title of a head grid or map, in bytes. */
#define AT_VIZ_TITLE_MAX 200

/**
 * @brief Attach a head grid: one value per layer and head of one kind.
 * @param o the settings.
 * @param title what the values are, UTF-8, 1 .. ::AT_VIZ_TITLE_MAX bytes
 *              (copied; cleaned as labels are). Grids of one title are shown
 *              together, one per kind.
 * @param kind the attention whose heads the values describe.
 * @param layers the model's layers (checked against the model when the
 *               explorer is written), 1 .. 1,000,000.
 * @param heads its heads per layer, 1 .. 1,000,000.
 * @param values layers · heads values, (layer, head) order, copied; NaN for
 *               a head without a value (shown empty).
 * @param labels NULL, or layers · heads UTF-8 strings of at most
 *               ::AT_VIZ_TITLE_MAX bytes each (a role name, say), copied;
 *               a NULL entry has none.
 * @param diverging 0: a sequential scale from 0 to the largest value;
 *                  1: a diverging scale around 0 (for signed values).
 * @return ::AT_OK; ::AT_E_ARG (NULL @p o, @p title or @p values, an empty or
 *         too long title or label, unknown kind, sizes out of range,
 *         @p diverging not 0 or 1); ::AT_E_NUMERIC (an infinite value);
 *         ::AT_E_RANGE (::AT_VIZ_ANALYSIS_MAX layers attached already, or
 *         the grids would hold more than ::AT_VIZ_GRID_VALUES_MAX values or
 *         ::AT_VIZ_LABEL_BYTES_MAX bytes of labels); ::AT_E_NOMEM. Nothing
 *         is attached on failure; the reason is in at_errmsg(NULL).
 */
AT_API at_status at_viz_options_add_headmap(at_viz_options *o, const char *title,
                                            at_attn_kind kind, int layers, int heads,
                                            const double *values, const char *const *labels,
                                            int diverging);

/**
 * @brief Attach a token map: a matrix over the positions of one batch row.
 * @param o the settings.
 * @param title what the values are, 1 .. ::AT_VIZ_TITLE_MAX bytes, copied.
 * @param rows the sequence of the rows (::AT_VIZ_SRC or ::AT_VIZ_TGT).
 * @param cols the sequence of the columns.
 * @param nrows the rows, 1 .. 1,000,000: the pass's length of @p rows or the
 *              length charted (checked when the explorer is written).
 * @param ncols the columns, likewise.
 * @param values nrows · ncols values, row-major, copied; NaN for none.
 * @param diverging 0 sequential (from 0), 1 diverging around 0.
 * @return ::AT_OK; ::AT_E_ARG (NULL @p o, @p title or @p values, a bad
 *         title, unknown side, sizes out of range, @p diverging not 0 or 1);
 *         ::AT_E_NUMERIC (an infinite value); ::AT_E_RANGE (the maps would
 *         hold more than ::AT_VIZ_MAP_VALUES_MAX values, or
 *         ::AT_VIZ_ANALYSIS_MAX layers are attached); ::AT_E_NOMEM.
 */
AT_API at_status at_viz_options_add_map(at_viz_options *o, const char *title, at_viz_side rows,
                                        at_viz_side cols, int nrows, int ncols,
                                        const float *values, int diverging);

/**
 * @brief Set gold links between target and source positions, drawn as
 *        outlined cells on every cross-attention heatmap of the explorer.
 *
 * The explorer also shows, per head of cross-attention, the share of the
 * attention on the links (the mean, over the target rows with a link, of the
 * weight the row puts on its linked source positions) and the alignment
 * error rate of the head's alignment (each charted target row linked to the
 * source position it attends most) against the links, with the links as
 * both sure and possible: AER = 1 − 2·|A ∩ G| / (|A| + |G|).
 * @param o the settings.
 * @param pairs @p count pairs (target position, source position), 0-based
 *              positions of the pass: the target position is the row of
 *              cross-attention (the decoder input position), copied. A
 *              repeated pair counts once. NULL with @p count 0 removes the
 *              links.
 * @param count the number of pairs, 0 .. 1,000,000.
 * @return ::AT_OK; ::AT_E_ARG (NULL @p o, NULL @p pairs with a count, count
 *         out of range, a negative position); ::AT_E_NOMEM. A position beyond
 *         the pass is refused by at_viz_write() (::AT_E_RANGE); links on
 *         positions left out of the chart (trailing padding) are not drawn.
 */
AT_API at_status at_viz_options_set_links(at_viz_options *o, const int32_t *pairs, int count);

/**
 * @brief Copy the head grids, maps and gold links of one set of settings
 *        into another, replacing the ones it had (its other settings stay).
 * @param dst the settings that receive the copies.
 * @param src the settings copied; may be @p dst (then nothing changes).
 * @return ::AT_OK, ::AT_E_ARG (a NULL pointer), ::AT_E_NOMEM (then @p dst
 *         is unchanged).
 */
AT_API at_status at_viz_options_copy_analysis(at_viz_options *dst, const at_viz_options *src);

/**
 * @brief Remove every head grid, map and gold link from the settings.
 * @param o the settings.
 * @return ::AT_OK, or ::AT_E_ARG for NULL @p o.
 */
AT_API at_status at_viz_options_clear_analysis(at_viz_options *o);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* AT_VIZ_H */
