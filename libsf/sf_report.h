/* An HTML report of rankings: one self-contained folder (index.html,
 * thumbs/, matches/) that shows each query, its first results with
 * thumbnails and scores and, with an answer key, which results are right
 * and each query's AP.  No script, no network: the page is plain HTML and
 * CSS, and every picture is a file in the folder named by a number, so no
 * key ever becomes part of a path or a URL.  What the page shows is
 * decided here; a program (sf-report) reads the hits, maps keys to files
 * and says what failed. */
#ifndef SF_REPORT_H
#define SF_REPORT_H

#include <stddef.h>

#include "sf_eval.h"
#include "sf_hits.h"
#include "sf_image.h"
#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_report sf_report;

/* What the answer key says of one result. */
typedef enum sf_report_mark {
    SF_REPORT_UNMARKED = 0, /* no answer key, or one that does not name the query */
    SF_REPORT_RIGHT = 1,    /* a positive of the query: the rest of its group */
    SF_REPORT_WRONG = 2,    /* any other image the key names */
    SF_REPORT_IGNORED = 3,  /* the query itself, which evaluation leaves out */
    SF_REPORT_UNKNOWN = 4   /* an image the key does not name: a negative for the AP */
} sf_report_mark;

/* A report of set, which must be ranked (sf_hit_set_rank) with all its
 * results kept, so that APs are over whole lists; the page shows each
 * query's first top_k results (0: all).  set is borrowed: it must outlive
 * the report, unchanged. */
sf_status sf_report_create(const sf_hit_set *set, size_t top_k, sf_report **out,
                           sf_error *err);
void sf_report_free(sf_report *report);

/* Evaluate against a `file<TAB>group` answer key, as `sf-rank --groups`
 * does (sf_eval_hits_groups: keys name files by path or by file name):
 * every query's AP over its whole list, the mAP, and a mark for each
 * shown result.  SF_ERR_NOT_FOUND when the key names none of the
 * queries; *n_unknown (may be NULL) counts the queries it does not name,
 * the first of them in *first_unknown (may be NULL; a key of the set). */
sf_status sf_report_evaluate_groups(sf_report *report, const sf_groups *groups,
                                    const char *groups_file, size_t *n_unknown,
                                    const char **first_unknown, sf_error *err);

/* The images the page shows, each key once, in the order first met
 * (query, its shown results, next query, ...). */
size_t sf_report_image_count(const sf_report *report);
const char *sf_report_image_key(const sf_report *report, size_t i);

/* The file a key names: root/key when root is given (not NULL, not
 * empty) and key is relative, else key itself.  An empty key names no
 * file (SF_ERR_INVALID_ARGUMENT).  *path is malloc'd. */
sf_status sf_report_key_path(const char *root, const char *key, char **path, sf_error *err);

/* Decode file as sf_image_load_file does with options (options->size:
 * the thumbnail's long side; limits apply), and write it as
 * dir/thumbs/NNNNNN.jpg, NNNNNN being i + 1, for image i.  On failure
 * the page shows a placeholder for that image and err says why, naming
 * file. */
sf_status sf_report_thumbnail(sf_report *report, size_t i, const char *file, const char *dir,
                              const sf_decode_options *options, sf_error *err);

/* The hook for pictures of matches (e.g. those `sf-draw match` makes):
 * picture_file is decoded as options say (size 0: as it is) and written
 * as dir/matches/NNNNNN.png; result hit of query then links to it.
 * SF_ERR_NOT_FOUND when the page shows no such result; a second picture
 * for the same result replaces the first. */
sf_status sf_report_match_picture(sf_report *report, const char *query, const char *hit,
                                  const char *picture_file, const char *dir,
                                  const sf_decode_options *options, sf_error *err);

/* Write dir/index.html, replacing it whole; title NULL: "sf report".
 * Every key and the title are escaped (sf_html_escape). */
sf_status sf_report_write_html(const sf_report *report, const char *dir, const char *title,
                               sf_error *err);

/* s for HTML text and attribute values: & < > " ' as character
 * references, control characters other than tab, newline and CR as
 * U+FFFD.  malloc'd; NULL out of memory. */
char *sf_html_escape(const char *s);

#ifdef __cplusplus
}
#endif
#endif
