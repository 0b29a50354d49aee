/* sf-match: find the database images that match each query image of a
 * feature stream.  Three ways: ASMK against on-disk indexes (query mode),
 * super-feature matching against a small set (pairwise mode), and
 * global-descriptor search re-ranked with ASMK (global mode).  The
 * searching is libsf's; this file reads streams and writes hit records. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sf_codebook.h"
#include "sf_hits.h"
#include "sf_index.h"
#include "sf_match.h"

enum {
    OPT_PAIRWISE = SF_OPT_FIRST_PROGRAM,
    OPT_GLOBAL,
    OPT_MA,
    OPT_RERANK,
    OPT_RATIO,
    OPT_SAME_TEMPLATE,
    OPT_MIN_MATCHES,
    OPT_ALLOW_LOCAL_IDF,
    OPT_NO_PAIRS,
};

static const struct option longopts[] = {
    { "index", required_argument, NULL, 'i' },
    { "pairwise", required_argument, NULL, OPT_PAIRWISE },
    { "global", required_argument, NULL, OPT_GLOBAL },
    { "codebook", required_argument, NULL, 'C' },
    { "top", required_argument, NULL, 'k' },
    { "ma", required_argument, NULL, OPT_MA },
    { "threads", required_argument, NULL, SF_OPT_THREADS },
    { "allow-local-idf", no_argument, NULL, OPT_ALLOW_LOCAL_IDF },
    { "rerank", required_argument, NULL, OPT_RERANK },
    { "ratio", required_argument, NULL, OPT_RATIO },
    { "same-template", no_argument, NULL, OPT_SAME_TEMPLATE },
    { "min-matches", required_argument, NULL, OPT_MIN_MATCHES },
    { "no-pairs", no_argument, NULL, OPT_NO_PAIRS },
    SF_CLI_MISMATCH_LONGOPT,
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "Modes (one of):\n"
    "  -i, --index FILE     ASMK search of this index; repeat to search shards as one\n"
    "      --pairwise FILE  match the super-features of each query with those of each\n"
    "                       image of the stream FILE (mutual nearest neighbours,\n"
    "                       ratio test); score: the number of matches\n"
    "      --global FILE    rank the images of the stream FILE by global descriptor;\n"
    "                       with -i, re-rank the first --rerank of them with ASMK\n"
    "\nOptions:\n"
    "  -k, --top N          hits per query, best first (default 100; 0: all)\n"
    "  -C, --codebook FILE  the index's codebook (default: the one it was built with)\n"
    "      --ma N           nearest words per query descriptor (default 5)\n"
    "      --threads N      search threads (default: all cores where it pays)\n"
    "      --allow-local-idf  search idf shards together, each with its own idf\n"
    "      --rerank N       global: candidates re-ranked with ASMK (default 100)\n"
    "      --ratio R        pairwise: distance ratio test (default 0.9)\n"
    "      --same-template  pairwise: match only super-features of the same template\n"
    "      --min-matches N  pairwise: report images with at least N matches (default 1)\n"
    "      --no-pairs       pairwise: leave out the matched pairs, keep the counts\n"
    SF_CLI_MISMATCH_HELP;

enum mode { MODE_NONE, MODE_INDEX, MODE_PAIRWISE, MODE_GLOBAL };

/* A database image and its score, for global mode. */
typedef struct scored_t {
    double score;
    size_t id;
} scored_t;

/* One image of a --pairwise or --global database stream. */
typedef struct db_image {
    char *key;
    float *desc;     /* n x dim local descriptors */
    int32_t *tmpl;   /* n templates, or NULL */
    size_t n;
    float *global;   /* gdim, or NULL */
} db_image;

typedef struct matcher {
    sf_cli *cli;
    enum mode mode;
    const char **index_paths;
    size_t n_indexes;
    const char *codebook_path;
    const char *db_path;
    size_t top_k;
    int ma;
    int threads;
    int allow_local_idf;
    size_t rerank;
    sf_match_options match;
    size_t min_matches;
    int no_pairs;

    /* query mode */
    sf_index **indexes;
    sf_index_searcher *searcher;
    sf_codebook *codebook;
    sf_asmk_codebook *acb;
    const sf_index_params *params;
    sf_index_hit *hits;
    size_t hits_cap;

    /* pairwise and global modes */
    db_image *db;
    size_t n_db, db_cap, dim, gdim;
    uint64_t features; /* what the queries must be made as; 0: anything */
    size_t n_queries;
    float *gmat; /* global: n_db x gdim, contiguous for the scan */
    scored_t *cand;

    /* the query image being read */
    float *qdesc;
    int32_t *qtmpl;
    size_t qn, qcap, qtmpl_n;
    float *qglobal;
    int have_desc, have_tmpl, have_global;
    int warned_missing;
} matcher;

static _Noreturn void out_of_memory(const sf_cli *cli)
{
    sf_cli_error(cli, "out of memory");
    exit(SF_EXIT_FATAL);
}

static void *xmalloc(const sf_cli *cli, size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        out_of_memory(cli);
    return p;
}

/* ---- Loading a small database stream (pairwise, global) ---- */

static void db_free(matcher *m)
{
    for (size_t i = 0; i < m->n_db; i++) {
        free(m->db[i].key);
        free(m->db[i].desc);
        free(m->db[i].tmpl);
        free(m->db[i].global);
    }
    free(m->db);
    free(m->gmat);
    free(m->cand);
}

/* One database image: local_desc (and local_index) for pairwise, global
 * for global mode.  Images without what the mode needs, or made with
 * other features than the first, are reported and left out. */
static int load_db_image(void *vctx, const sf_stream_image *img, const char *name)
{
    matcher *m = vctx;
    sf_cli *cli = m->cli;
    const int want_local = m->mode == MODE_PAIRWISE;
    sf_error err;
    sf_status st = m->features ? sf_provenance_check_features(img, m->features,
                                                              "the first database images", &err)
                               : sf_provenance_check_stage(img, SF_STAGE_LIT, 0, &err);
    if (sf_cli_provenance(cli, name, st, &err))
        return SF_EXIT_FAILURE;
    if (!m->features && img->has_provenance)
        m->features = sf_provenance_features(&img->provenance);
    const sf_record *desc = sf_stream_image_find(img, SF_KIND_LOCAL_DESC);
    const sf_record *tmpl = sf_stream_image_find(img, SF_KIND_LOCAL_INDEX);
    const sf_record *global = sf_stream_image_find(img, SF_KIND_GLOBAL);
    if (want_local && !desc) {
        sf_cli_error(cli, "%s: %s: no local_desc record (the output of sf-lit)", name, img->key);
        return SF_EXIT_FAILURE;
    }
    if (want_local && m->dim && desc->shape[1] != m->dim) {
        sf_cli_error(cli, "%s: %s: local_desc is not one K x %zu float32 array", name, img->key,
                     m->dim);
        return SF_EXIT_FAILURE;
    }
    if (want_local && m->match.same_index && !tmpl) {
        /* Left out here rather than failing every query. */
        sf_cli_error(cli, "%s: %s: --same-template needs a local_index record", name, img->key);
        return SF_EXIT_FAILURE;
    }
    if (!want_local && !global) {
        sf_cli_error(cli, "%s: %s: no global record (sf-lit --global)", name, img->key);
        return SF_EXIT_FAILURE;
    }
    if (!want_local && m->gdim && global->shape[0] != m->gdim) {
        sf_cli_error(cli, "%s: %s: global is not one float32 vector of %zu", name, img->key,
                     m->gdim);
        return SF_EXIT_FAILURE;
    }
    db_image cur = { 0 };
    if (want_local) {
        m->dim = (size_t)desc->shape[1];
        cur.n = (size_t)desc->shape[0];
        cur.desc = xmalloc(cli, (size_t)desc->data_size);
        memcpy(cur.desc, desc->data, (size_t)desc->data_size);
        if (tmpl) {
            cur.tmpl = xmalloc(cli, (size_t)tmpl->data_size);
            memcpy(cur.tmpl, tmpl->data, (size_t)tmpl->data_size);
        }
    } else {
        m->gdim = (size_t)global->shape[0];
    }
    if (m->n_db == m->db_cap) {
        m->db_cap = m->db_cap ? 2 * m->db_cap : 64;
        db_image *d = realloc(m->db, m->db_cap * sizeof *d);
        if (!d)
            out_of_memory(cli);
        m->db = d;
        if (!want_local) {
            float *g = realloc(m->gmat, m->db_cap * m->gdim * sizeof *g);
            if (!g)
                out_of_memory(cli);
            m->gmat = g;
        }
    }
    if (!want_local)
        memcpy(m->gmat + m->n_db * m->gdim, global->data, m->gdim * sizeof(float));
    cur.key = strdup(img->key);
    if (!cur.key)
        out_of_memory(cli);
    m->db[m->n_db++] = cur;
    return SF_EXIT_OK;
}

static int load_db(matcher *m)
{
    m->cli->all_inputs = 1;
    int status = sf_cli_each_image(m->cli, m->db_path, load_db_image, m);
    m->cli->all_inputs = 0;
    if (status != SF_EXIT_FATAL)
        sf_cli_info(m->cli, "%s: %zu database images", m->db_path, m->n_db);
    return status;
}

/* ---- Opening the indexes ---- */

static int open_indexes(matcher *m)
{
    sf_cli *cli = m->cli;
    sf_error err;
    m->indexes = calloc(m->n_indexes, sizeof *m->indexes);
    if (!m->indexes)
        out_of_memory(cli);
    for (size_t i = 0; i < m->n_indexes; i++)
        if (sf_index_open(m->index_paths[i], &m->indexes[i], &err) != SF_OK) {
            sf_cli_error(cli, "%s", err.message);
            return SF_EXIT_FATAL;
        }
    const char *cb_path = m->codebook_path;
    if (!cb_path) {
        cb_path = sf_index_codebook_path(m->indexes[0]);
        if (!*cb_path)
            sf_cli_usage_error(cli, "%s does not name its codebook: give -C CODEBOOK",
                               m->index_paths[0]);
    }
    if (sf_codebook_load(cb_path, &m->codebook, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    sf_index_codebook_id id = { sf_codebook_size(m->codebook), sf_codebook_dim(m->codebook),
                                sf_codebook_checksum(m->codebook) };
    /* Said once here rather than by every query. */
    if ((uint64_t)m->ma > id.k)
        sf_cli_usage_error(cli, "--ma %d: %s has %llu words", m->ma, cb_path,
                           (unsigned long long)id.k);
    for (size_t i = 0; i < m->n_indexes; i++)
        if (sf_index_check_codebook(m->indexes[i], &id, &err) != SF_OK) {
            sf_cli_error(cli, "%s", err.message);
            return SF_EXIT_FATAL;
        }
    if (sf_asmk_codebook_create(sf_codebook_centroids(m->codebook), id.k, id.dim, &m->acb,
                                &err) != SF_OK) {
        sf_cli_error(cli, "%s: %s", cb_path, err.message);
        return SF_EXIT_FATAL;
    }
    sf_index_search_options so;
    sf_index_search_options_default(&so);
    so.threads = m->threads;
    so.allow_local_idf = m->allow_local_idf;
    if (sf_index_searcher_create((const sf_index *const *)m->indexes, m->n_indexes, &so,
                                 &m->searcher, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    m->params = sf_index_get_params(m->indexes[0]);
    /* Shards searched as one must hold the same kind of features. */
    for (size_t i = 0; i < m->n_indexes; i++) {
        uint64_t f = sf_index_features(m->indexes[i]);
        if (f && m->features && f != m->features) {
            err.status = SF_ERR_MISMATCH;
            snprintf(err.message, sizeof err.message,
                     "%s holds features %016llx, %s holds %016llx", m->index_paths[i],
                     (unsigned long long)f, m->index_paths[0], (unsigned long long)m->features);
            if (sf_cli_provenance(cli, "index", err.status, &err))
                return SF_EXIT_FATAL;
        }
        if (!m->features)
            m->features = f;
    }
    m->dim = (size_t)id.dim;
    return SF_EXIT_OK;
}

/* ---- Reading the query image ---- */

static int query_record(matcher *m, const sf_record *rec)
{
    int kind = rec->kind & ~SF_KIND_OPTIONAL;
    if (kind == SF_KIND_LOCAL_DESC && (m->mode != MODE_GLOBAL || m->searcher)) {
        if (m->dim && rec->shape[1] != m->dim) {
            sf_cli_error(m->cli, "%s: local_desc is not one K x %zu float32 array%s", rec->key,
                         m->dim, m->mode == MODE_INDEX ? " (made for another codebook?)" : "");
            return 1;
        }
        size_t n = (size_t)rec->shape[0], dim = (size_t)rec->shape[1];
        if (n * dim > m->qcap) {
            free(m->qdesc);
            m->qdesc = xmalloc(m->cli, n * dim * sizeof *m->qdesc);
            m->qcap = n * dim;
        }
        if (rec->data_size) /* qdesc is still NULL before the first non-empty query */
            memcpy(m->qdesc, rec->data, (size_t)rec->data_size);
        m->qn = n;
        m->have_desc = 1;
    } else if (kind == SF_KIND_LOCAL_INDEX && m->mode == MODE_PAIRWISE) {
        free(m->qtmpl);
        m->qtmpl = xmalloc(m->cli, (size_t)rec->data_size);
        memcpy(m->qtmpl, rec->data, (size_t)rec->data_size);
        m->qtmpl_n = (size_t)rec->shape[0];
        m->have_tmpl = 1;
    } else if (kind == SF_KIND_GLOBAL && m->mode == MODE_GLOBAL) {
        /* An empty database has no dimension to check against: no hits. */
        if (m->n_db > 0 && rec->shape[0] != m->gdim) {
            sf_cli_error(m->cli, "%s: global is not one float32 vector of %zu (as the "
                         "database's)", rec->key, m->gdim);
            return 1;
        }
        if (m->n_db > 0)
            memcpy(m->qglobal, rec->data, (size_t)rec->data_size);
        m->have_global = 1;
    }
    return 0;
}

static void query_reset(matcher *m)
{
    m->have_desc = m->have_tmpl = m->have_global = 0;
    m->qn = m->qtmpl_n = 0;
}

/* The hit records of one query into out. */
static int emit_hits(matcher *m, const char *key, const sf_hit_list *hits, sf_cli_batch *out)
{
    sf_record kr, sr;
    char *blob;
    double *scores;
    sf_error err;
    if (sf_hit_list_to_records(hits, key, &kr, &sr, &blob, &scores, &err) != SF_OK)
        out_of_memory(m->cli);
    sf_cli_batch_add_owned(m->cli, out, &kr, blob);
    sf_cli_batch_add_owned(m->cli, out, &sr, scores);
    return 0;
}

static size_t hits_wanted(const matcher *m, size_t available)
{
    return m->top_k == 0 || m->top_k > available ? available : m->top_k;
}

/* ---- Query mode ---- */

/* The query's aggregated vectors for the index; 1 after reporting why not. */
static int query_agg(matcher *m, const char *key, sf_asmk_agg *agg)
{
    sf_error err;
    if (sf_asmk_quantize_aggregate(m->acb, m->qdesc, m->qn, m->ma, m->params->asmk.binary, agg,
                                   &err) == SF_OK)
        return 0;
    sf_asmk_agg_release(agg);
    sf_cli_error(m->cli, "%s: %s", key, err.message);
    return 1;
}

static int search_index(matcher *m, const char *key, sf_cli_batch *out)
{
    sf_error err;
    sf_hit_list hl;
    sf_hit_list_init(&hl);
    /* Nothing to match with: every image would score 0, none is a hit. */
    if (m->qn == 0)
        return emit_hits(m, key, &hl, out);
    sf_asmk_agg agg;
    if (query_agg(m, key, &agg) != 0)
        return 1;
    size_t want = hits_wanted(m, sf_index_searcher_n_ids(m->searcher));
    if (want > m->hits_cap) {
        free(m->hits);
        m->hits = xmalloc(m->cli, want * sizeof *m->hits);
        m->hits_cap = want;
    }
    size_t n = 0;
    sf_status st = sf_index_searcher_search(m->searcher, &agg, want, m->hits, &n, &err);
    sf_asmk_agg_release(&agg);
    if (st != SF_OK) {
        sf_cli_error(m->cli, "%s: %s", key, err.message);
        if (st == SF_ERR_NOMEM || st == SF_ERR_FORMAT || st == SF_ERR_IO)
            exit(SF_EXIT_FATAL);
        return 1;
    }
    for (size_t i = 0; i < n && st == SF_OK; i++)
        st = sf_hit_list_append(&hl, m->hits[i].key, m->hits[i].key_len, m->hits[i].score,
                                &err);
    if (st != SF_OK)
        out_of_memory(m->cli);
    emit_hits(m, key, &hl, out);
    sf_hit_list_release(&hl);
    return 0;
}

/* ---- Pairwise mode ---- */

typedef struct pair_result {
    size_t db;
    sf_match_list list;
} pair_result;

static int by_count(const void *a, const void *b)
{
    const pair_result *x = a, *y = b;
    if (x->list.count != y->list.count)
        return x->list.count > y->list.count ? -1 : 1;
    return (x->db > y->db) - (x->db < y->db);
}

static int match_pairwise(matcher *m, const char *key, sf_cli_batch *out)
{
    if (m->have_tmpl && m->qtmpl_n != m->qn) {
        if (m->match.same_index) {
            sf_cli_error(m->cli, "%s: local_index has %zu entries for %zu local_desc rows "
                         "(--same-template needs one each)", key, m->qtmpl_n, m->qn);
            return 1;
        }
        sf_cli_warn(m->cli, "%s: local_index does not match local_desc; ignored", key);
        m->have_tmpl = 0;
    }
    if (m->match.same_index && !m->have_tmpl && m->qn > 0 && m->n_db > 0) {
        sf_cli_error(m->cli, "%s: --same-template needs a local_index record", key);
        return 1;
    }
    pair_result *res = xmalloc(m->cli, m->n_db * sizeof *res);
    size_t n_res = 0;
    sf_error err;
    for (size_t i = 0; i < m->n_db; i++) {
        const db_image *d = &m->db[i];
        sf_match_options o = m->match;
        o.a_template = m->have_tmpl ? m->qtmpl : NULL;
        o.b_template = d->tmpl;
        if (o.same_index && (!o.a_template || !o.b_template) && (m->qn > 0 && d->n > 0)) {
            sf_cli_error(m->cli, "%s: --same-template needs local_index records in the query "
                         "and in %s", key, d->key);
            for (size_t j = 0; j < n_res; j++)
                sf_match_list_release(&res[j].list);
            free(res);
            return 1;
        }
        pair_result r = { i, { 0 } };
        sf_status st = sf_match_find(m->qdesc, m->qn, d->desc, d->n, m->dim, &o, &r.list, &err);
        if (st != SF_OK) {
            /* The database was checked when read: the query is at fault
             * (NaN in its descriptors, too many of them). */
            sf_cli_error(m->cli, "%s: %s", key, err.message);
            if (st == SF_ERR_NOMEM)
                exit(SF_EXIT_FATAL);
            for (size_t j = 0; j < n_res; j++)
                sf_match_list_release(&res[j].list);
            free(res);
            return 1;
        }
        if (r.list.count >= m->min_matches && r.list.count > 0)
            res[n_res++] = r;
        else
            sf_match_list_release(&r.list);
    }
    qsort(res, n_res, sizeof *res, by_count);
    size_t keep = hits_wanted(m, n_res);
    sf_hit_list hl;
    sf_hit_list_init(&hl);
    for (size_t i = 0; i < keep; i++) {
        const char *dk = m->db[res[i].db].key;
        if (sf_hit_list_append(&hl, dk, strlen(dk), (double)res[i].list.count, &err) != SF_OK)
            out_of_memory(m->cli);
    }
    emit_hits(m, key, &hl, out);
    sf_hit_list_release(&hl);
    for (size_t i = 0; i < keep && !m->no_pairs; i++) {
        const sf_match_list *l = &res[i].list;
        sf_record rec = { .kind = SF_KIND_MATCH_PAIRS, .dtype = SF_DTYPE_I32, .ndim = 2,
                          .index = (uint32_t)i, .scale = 1.0, .shape = { l->count, 2 },
                          .key = key, .key_len = strlen(key) };
        int32_t *pairs = xmalloc(m->cli, l->count * 2 * sizeof *pairs);
        for (size_t j = 0; j < l->count; j++) {
            pairs[2 * j] = (int32_t)l->a[j];
            pairs[2 * j + 1] = (int32_t)l->b[j];
        }
        rec.data = pairs;
        rec.data_size = l->count * 2 * sizeof *pairs;
        sf_cli_batch_add_owned(m->cli, out, &rec, pairs);
        float *sim = xmalloc(m->cli, l->count * sizeof *sim);
        memcpy(sim, l->similarity, l->count * sizeof *sim);
        rec.kind = SF_KIND_MATCH_SIMILARITY;
        rec.dtype = SF_DTYPE_F32;
        rec.ndim = 1;
        rec.shape[1] = 0;
        rec.data = sim;
        rec.data_size = l->count * sizeof *sim;
        sf_cli_batch_add_owned(m->cli, out, &rec, sim);
    }
    for (size_t i = 0; i < n_res; i++)
        sf_match_list_release(&res[i].list);
    free(res);
    return 0;
}

/* ---- Global mode ---- */

/* Higher score first, NaN last, then lower id. */
static int better(const scored_t *x, const scored_t *y)
{
    int nx = isnan(x->score), ny = isnan(y->score);
    if (nx != ny)
        return ny;
    if (!nx && x->score != y->score)
        return x->score > y->score;
    return x->id < y->id;
}

static int by_score(const void *a, const void *b)
{
    const scored_t *x = a, *y = b;
    return better(x, y) ? -1 : better(y, x);
}

/* Sixteen partial sums that the compiler keeps in vector registers. */
static float dot_f32(const float *a, const float *b, size_t n)
{
    float acc[16] = { 0 };
    size_t d = 0;
    for (; d + 16 <= n; d += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[d + l] * b[d + l];
    float s = 0.0f;
    for (int l = 0; l < 16; l++)
        s += acc[l];
    for (; d < n; d++)
        s += a[d] * b[d];
    return s;
}

static void sift_down(scored_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(&h[w], &h[l]))
            w = l;
        if (r < n && better(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        scored_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The best want images by global score into m->cand, best first: a heap
 * whose root is the worst kept, so a scan of a million images costs a
 * comparison for most. */
static size_t global_candidates(matcher *m, size_t want)
{
    scored_t *h = m->cand;
    size_t n = 0;
    for (size_t i = 0; i < m->n_db; i++) {
        scored_t c = { dot_f32(m->gmat + i * m->gdim, m->qglobal, m->gdim), i };
        if (n < want) {
            /* Sift up into the min-heap of "better". */
            size_t j = n++;
            h[j] = c;
            while (j > 0 && better(&h[(j - 1) / 2], &h[j])) {
                scored_t t = h[j];
                h[j] = h[(j - 1) / 2];
                h[(j - 1) / 2] = t;
                j = (j - 1) / 2;
            }
        } else if (want > 0 && better(&c, &h[0])) {
            h[0] = c;
            sift_down(h, n, 0);
        }
    }
    qsort(h, n, sizeof *h, by_score);
    return n;
}

static int search_global(matcher *m, const char *key, sf_cli_batch *out)
{
    size_t want = m->searcher ? m->rerank : (m->top_k ? m->top_k : m->n_db);
    if (want > m->n_db)
        want = m->n_db;
    scored_t *s = m->cand;
    size_t n = global_candidates(m, want);
    sf_error err;
    if (m->searcher) {
        /* ASMK re-ranks the candidates; the rest are not reported. */
        if (!m->have_desc) {
            sf_cli_error(m->cli, "%s: no local_desc record to re-rank with", key);
            return 1;
        }
        sf_asmk_agg agg;
        if (query_agg(m, key, &agg) != 0)
            return 1;
        size_t *ids = xmalloc(m->cli, n * sizeof *ids);
        size_t *where = xmalloc(m->cli, n * sizeof *where);
        double *asmk = xmalloc(m->cli, n * sizeof *asmk);
        size_t found = 0;
        for (size_t i = 0; i < n; i++) {
            const char *k = m->db[s[i].id].key;
            sf_status st = sf_index_searcher_find(m->searcher, k, strlen(k), &ids[found], &err);
            if (st == SF_OK)
                where[found++] = i;
            else if (st != SF_ERR_NOT_FOUND) {
                sf_cli_error(m->cli, "%s", err.message);
                exit(SF_EXIT_FATAL);
            }
        }
        if (found < n && !m->warned_missing) {
            /* Likely a database stream and an index that do not hold the
             * same images (or keys); said once, not per query. */
            sf_cli_warn(m->cli, "%s: %zu of its %zu candidates are not in the index; left out "
                        "(said once)", key, n - found, n);
            m->warned_missing = 1;
        }
        sf_status st = sf_index_searcher_scores_subset(m->searcher, &agg, ids, found, asmk, &err);
        sf_asmk_agg_release(&agg);
        if (st != SF_OK) {
            sf_cli_error(m->cli, "%s: %s", key, err.message);
            exit(SF_EXIT_FATAL);
        }
        /* Candidates missing from the index rank last. */
        for (size_t i = 0; i < n; i++)
            s[i].score = NAN;
        for (size_t j = 0; j < found; j++)
            s[where[j]].score = asmk[j];
        qsort(s, n, sizeof *s, by_score);
        free(ids);
        free(where);
        free(asmk);
    }
    size_t keep = hits_wanted(m, n);
    sf_hit_list hl;
    sf_hit_list_init(&hl);
    for (size_t i = 0; i < keep; i++) {
        if (m->searcher && isnan(s[i].score))
            break;
        const char *dk = m->db[s[i].id].key;
        if (sf_hit_list_append(&hl, dk, strlen(dk), s[i].score, &err) != SF_OK)
            out_of_memory(m->cli);
    }
    emit_hits(m, key, &hl, out);
    sf_hit_list_release(&hl);
    return 0;
}

static int query_end(matcher *m, const char *key, sf_cli_batch *out)
{
    if (m->mode == MODE_GLOBAL) {
        if (!m->have_global) {
            sf_cli_error(m->cli, "%s: no global record (sf-lit --global)", key);
            return 1;
        }
        return search_global(m, key, out);
    }
    if (!m->have_desc) {
        sf_cli_error(m->cli, "%s: no local_desc record (the output of sf-lit)", key);
        return 1;
    }
    return m->mode == MODE_INDEX ? search_index(m, key, out) : match_pairwise(m, key, out);
}

static int query_image(void *ctx, const sf_stream_image *img, const char *name,
                       sf_cli_batch *out)
{
    matcher *m = ctx;
    sf_error err;
    m->n_queries++;
    sf_status st = m->features
                       ? sf_provenance_check_features(img, m->features,
                                                      m->db_path ? "the database" : "the index",
                                                      &err)
                       : SF_OK;
    if (sf_cli_provenance(m->cli, name, st, &err))
        return 1;
    query_reset(m);
    for (size_t i = 0; i < img->count; i++)
        if (query_record(m, &img->recs[i]))
            return 1;
    return query_end(m, img->key, out);
}

static void set_mode(matcher *m, enum mode mode, const char *flag)
{
    if (m->mode != MODE_NONE && m->mode != mode)
        sf_cli_usage_error(m->cli, "%s: choose one of -i, --pairwise and --global "
                           "(--global takes -i for re-ranking)", flag);
    m->mode = mode;
}

int main(int argc, char **argv)
{
    sf_cli_prefer_passive_threads(argv);
    sf_cli cli;
    matcher m;
    memset(&m, 0, sizeof m);
    m.cli = &cli;
    sf_cli_init(&cli, "sf-match", argc, argv);
    cli.synopsis = "(-i INDEX... | --pairwise DB | --global DB [-i INDEX...]) [OPTION]... "
                   "[STREAM]...";
    cli.summary = "Find the database images that match each query image of feature streams.";
    cli.options_help = options_help;
    m.top_k = 100;
    m.ma = cli.config.ma_query;
    m.rerank = 100;
    m.min_matches = 1;
    sf_match_options_default(&m.match);
    int global_with_index = 0;
    /* The last option met that only serves an index, or pairwise mode. */
    const char *index_only = NULL, *pairwise_only = NULL, *rerank_only = NULL;
    int c;
    while ((c = sf_cli_getopt(&cli, argc, argv, "i:C:k:", longopts)) != -1) {
        switch (c) {
        case 'i': {
            const char **p = realloc(m.index_paths, (m.n_indexes + 1) * sizeof *p);
            if (!p)
                out_of_memory(&cli);
            m.index_paths = p;
            m.index_paths[m.n_indexes++] = optarg;
            break;
        }
        case OPT_PAIRWISE:
        case OPT_GLOBAL:
            if (m.db_path)
                sf_cli_usage_error(&cli, "one --pairwise or --global database only");
            m.db_path = optarg;
            set_mode(&m, c == OPT_PAIRWISE ? MODE_PAIRWISE : MODE_GLOBAL,
                     c == OPT_PAIRWISE ? "--pairwise" : "--global");
            break;
        case 'C':
            m.codebook_path = optarg;
            index_only = "-C";
            break;
        case 'k': m.top_k = (size_t)sf_cli_parse_int(&cli, "--top", optarg, 0, 1000000000); break;
        case OPT_MA:
            m.ma = (int)sf_cli_parse_int(&cli, "--ma", optarg, 1, 64);
            index_only = "--ma";
            break;
        case SF_OPT_THREADS:
            m.threads = (int)sf_cli_parse_int(&cli, "--threads", optarg, 0, 256);
            index_only = "--threads";
            break;
        case OPT_ALLOW_LOCAL_IDF:
            m.allow_local_idf = 1;
            index_only = "--allow-local-idf";
            break;
        case OPT_RERANK:
            m.rerank = (size_t)sf_cli_parse_int(&cli, "--rerank", optarg, 1, 100000000);
            rerank_only = "--rerank";
            break;
        case OPT_RATIO: {
            char *end;
            errno = 0;
            double r = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(r >= 0.0 && r <= 1.0))
                sf_cli_usage_error(&cli, "--ratio: '%s' is not a number in [0, 1]", optarg);
            m.match.ratio = r;
            pairwise_only = "--ratio";
            break;
        }
        case OPT_SAME_TEMPLATE:
            m.match.same_index = 1;
            pairwise_only = "--same-template";
            break;
        case OPT_MIN_MATCHES:
            m.min_matches = (size_t)sf_cli_parse_int(&cli, "--min-matches", optarg, 1,
                                                     1000000000);
            pairwise_only = "--min-matches";
            break;
        case SF_OPT_ALLOW_MISMATCH: cli.allow_mismatch = 1; break;
        case OPT_NO_PAIRS:
            m.no_pairs = 1;
            pairwise_only = "--no-pairs";
            break;
        default: sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (m.mode == MODE_NONE && m.n_indexes > 0)
        m.mode = MODE_INDEX;
    if (m.mode == MODE_GLOBAL && m.n_indexes > 0)
        global_with_index = 1;
    if (m.mode == MODE_NONE)
        sf_cli_usage_error(&cli, "say what to search: -i INDEX, --pairwise DB or --global DB");
    if (m.mode == MODE_PAIRWISE && m.n_indexes > 0)
        sf_cli_usage_error(&cli, "--pairwise does not use an index (-i)");
    /* An option the chosen mode would ignore is a mistake worth saying. */
    if (index_only && m.n_indexes == 0)
        sf_cli_usage_error(&cli, "%s goes with an index (-i)", index_only);
    if (pairwise_only && m.mode != MODE_PAIRWISE)
        sf_cli_usage_error(&cli, "%s goes with --pairwise", pairwise_only);
    if (rerank_only && !global_with_index)
        sf_cli_usage_error(&cli, "%s goes with --global and -i", rerank_only);
    sf_cli_stream_output(&cli);

    int status = SF_EXIT_OK;
    if (m.mode == MODE_INDEX || global_with_index)
        status = open_indexes(&m);
    int db_status = SF_EXIT_OK;
    if (status == SF_EXIT_OK && m.db_path) {
        /* Database images that failed are reported; the others serve. */
        db_status = load_db(&m);
        if (db_status == SF_EXIT_FATAL)
            status = db_status;
    }
    if (status == SF_EXIT_OK && m.mode == MODE_GLOBAL) {
        m.qglobal = xmalloc(&cli, (m.gdim ? m.gdim : 1) * sizeof *m.qglobal);
        m.cand = xmalloc(&cli, (m.n_db ? m.n_db : 1) * sizeof *m.cand);
    }
    if (status == SF_EXIT_OK) {
        status = sf_cli_run_filter(&cli, argc, argv, optind, query_image, &m);
        if (status != SF_EXIT_FATAL && m.n_queries == 0) {
            sf_cli_error(&cli, "no query images in the input");
            status = SF_EXIT_FAILURE;
        }
        if (db_status > status)
            status = db_status;
    }

    sf_index_searcher_free(m.searcher);
    for (size_t i = 0; m.indexes && i < m.n_indexes; i++)
        sf_index_close(m.indexes[i]);
    free(m.indexes);
    free(m.index_paths);
    sf_asmk_codebook_free(m.acb);
    sf_codebook_free(m.codebook);
    free(m.hits);
    db_free(&m);
    free(m.qdesc);
    free(m.qtmpl);
    free(m.qglobal);
    return sf_cli_finish(&cli, status);
}
