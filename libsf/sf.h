/* sf: FIRe super-feature image retrieval.  The one header users include. */
#ifndef SF_H
#define SF_H

#include "sf_status.h"
#include "sf_stream.h"
#include "sf_config.h"
#include "sf_image.h"
#include "sf_model.h"
#include "sf_network.h"
#include "sf_asmk.h"
#include "sf_kmeans.h"
#include "sf_codebook.h"
#include "sf_eval.h"
#include "sf_match.h"
#include "sf_index.h"
#include "sf_hits.h"
#include "sf_search.h"
#include "sf_draw.h"
#include "sf_report.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library actually loaded, e.g. "0.1.0". */
const char *sf_version(void);

/* Remove the temporary files libsf is writing (a model, a codebook, an
 * index or an export being saved): a program calls it from its handlers
 * of SIGTERM, SIGINT and SIGHUP, so that a signal leaves nothing
 * half-written behind.  Async-signal-safe. */
void sf_remove_temp_files(void);

#ifdef __cplusplus
}
#endif
#endif
