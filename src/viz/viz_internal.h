/* Private declarations of the charts' writers (viz_svg.c, viz_vl.c,
 * viz_html.c, viz_assets.c), which viz.c calls; what they share is in
 * common.h, below them. */
#ifndef AT_VIZ_INTERNAL_H
#define AT_VIZ_INTERNAL_H

#include "common.h"

/* ---- writers ---- */
at_status viz_svg(viz_ctx *c, vout *o, bool in_html);
at_status viz_vegalite(viz_ctx *c, vout *o);
at_status viz_explorer(viz_ctx *c, vout *o);
/* the explorer's analysis layers (viz_analysis.c): checked against the pass,
 * and written as the "analysis" member of the page's data */
at_status viz_check_analysis(viz_ctx *c);
at_status viz_analysis_json(viz_ctx *c, vout *o);

extern const char viz_explorer_css[];
extern const char viz_explorer_js[];

#endif
