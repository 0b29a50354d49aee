/* sf-match: find the database images that match each query image of a
 * feature stream.  Three ways: ASMK against on-disk indexes (query mode),
 * super-feature matching against a small set (pairwise mode), and
 * global-descriptor search re-ranked with ASMK (global mode).  The
 * searching is libsf's (sf_search.h); this file reads streams and writes
 * hit records. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sf_codebook.h"
#include "sf_search.h"

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
    OPT_INDEX_GLOBAL,
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
    { "index-global", no_argument, NULL, OPT_INDEX_GLOBAL },
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
    "      --index-global   with one -i: rank by the global descriptors the index\n"
    "                       holds (no stream); --rerank N re-ranks with its ASMK\n"
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

enum mode { MODE_NONE, MODE_INDEX, MODE_PAIRWISE, MODE_GLOBAL, MODE_INDEX_GLOBAL };

typedef struct matcher {
    sf_cli *cli;
    enum mode mode;
    const char **index_paths;
    size_t n_indexes;
    const char *codebook_path;
    const char *db_path;
    int threads;
    int allow_local_idf;
    int no_pairs;
    sf_search_options opt; /* its searcher and codebook: those below */

    sf_index **indexes;
    sf_index_searcher *searcher;
    sf_codebook *codebook;
    sf_asmk_codebook *acb;
    sf_search_db *db; /* pairwise and global modes */
    uint64_t features; /* what the queries must be made as; 0: anything */
    size_t n_queries;
    sf_search_result result;
    int warned_missing;
} matcher;

/* ---- Loading a small database stream (pairwise, global) ---- */

/* Images that are refused, or lack what the mode needs, are reported and
 * left out. */
static int load_db_image(void *vctx, const sf_stream_image *img, const char *name)
{
    matcher *m = vctx;
    sf_error err;
    sf_status st = m->features ? sf_provenance_check_features(img, m->features,
                                                              "the first database images", &err)
                               : sf_provenance_check_stage(img, SF_STAGE_LIT, 0, &err);
    if (sf_cli_provenance(m->cli, name, st, &err))
        return SF_EXIT_FAILURE;
    if (!m->features && img->has_provenance)
        m->features = sf_provenance_features(&img->provenance);
    st = sf_search_db_add(m->db, img, &err);
    if (st == SF_ERR_NOMEM)
        sf_cli_out_of_memory(m->cli);
    if (st != SF_OK) {
        sf_cli_error(m->cli, "%s: %s", name, err.message);
        return SF_EXIT_FAILURE;
    }
    return SF_EXIT_OK;
}

static int load_db(matcher *m)
{
    sf_error err;
    if (sf_search_db_create(m->mode == MODE_PAIRWISE ? SF_SEARCH_PAIRWISE : SF_SEARCH_GLOBAL,
                            &m->opt, &m->db, &err) != SF_OK)
        sf_cli_out_of_memory(m->cli);
    m->cli->all_inputs = 1;
    m->cli->progress_label = "database";
    int status = sf_cli_each_image(m->cli, m->db_path, load_db_image, m);
    m->cli->progress_label = NULL;
    m->cli->all_inputs = 0;
    if (status != SF_EXIT_FATAL)
        sf_cli_info(m->cli, "%s: %zu database images", m->db_path, sf_search_db_count(m->db));
    return status;
}

/* ---- Opening the indexes ---- */

static int open_indexes(matcher *m)
{
    sf_cli *cli = m->cli;
    sf_error err;
    m->indexes = calloc(m->n_indexes, sizeof *m->indexes);
    if (!m->indexes)
        sf_cli_out_of_memory(cli);
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
    if ((uint64_t)m->opt.ma > id.k)
        sf_cli_usage_error(cli, "--ma %d: %s has %llu words", m->opt.ma, cb_path,
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
    m->opt.searcher = m->searcher;
    m->opt.codebook = m->acb;
    m->opt.binary = sf_index_get_params(m->indexes[0])->asmk.binary;
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
    return SF_EXIT_OK;
}

/* The index alone, for ranking by its global descriptors without
 * re-ranking: no codebook needed. */
static int open_global_index(matcher *m)
{
    sf_error err;
    m->indexes = calloc(1, sizeof *m->indexes);
    if (!m->indexes)
        sf_cli_out_of_memory(m->cli);
    if (sf_index_open(m->index_paths[0], &m->indexes[0], &err) != SF_OK) {
        sf_cli_error(m->cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    m->features = sf_index_features(m->indexes[0]);
    return SF_EXIT_OK;
}

/* An index that cannot answer by global descriptor fails every query
 * the same way: said once. */
static int check_global_stage(matcher *m)
{
    size_t missing;
    const sf_index *x = m->indexes[0];
    if (sf_index_n_images(x) > 0 && sf_index_global_dim(x, &missing) == 0) {
        sf_cli_error(m->cli, "%s: no global stage: %zu of its %zu images were added without "
                     "a global record (sf-lit --global)", m->index_paths[0], missing,
                     sf_index_n_images(x));
        return SF_EXIT_FATAL;
    }
    return SF_EXIT_OK;
}

/* ---- Searching ---- */

/* The records of one query's result into out: its hits, then the matches
 * of each hit. */
static void emit_result(matcher *m, const char *key, sf_cli_batch *out)
{
    const sf_search_result *r = &m->result;
    sf_record kr, sr;
    char *blob;
    double *scores;
    sf_error err;
    if (sf_hit_list_to_records(&r->hits, key, &kr, &sr, &blob, &scores, &err) != SF_OK)
        sf_cli_out_of_memory(m->cli);
    sf_cli_batch_add_owned(m->cli, out, &kr, blob);
    sf_cli_batch_add_owned(m->cli, out, &sr, scores);
    for (size_t i = 0; r->pairs && i < r->hits.count && !m->no_pairs; i++) {
        sf_record pr, mr;
        int32_t *pairs;
        float *sim;
        if (sf_search_result_pair_records(r, i, key, &pr, &mr, &pairs, &sim, &err) != SF_OK)
            sf_cli_out_of_memory(m->cli);
        sf_cli_batch_add_owned(m->cli, out, &pr, pairs);
        sf_cli_batch_add_owned(m->cli, out, &mr, sim);
    }
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
    if (m->mode == MODE_INDEX)
        st = sf_search_index(img, &m->opt, &m->result, &err);
    else if (m->mode == MODE_PAIRWISE)
        st = sf_search_pairwise(m->db, img, &m->opt, &m->result, &err);
    else if (m->mode == MODE_INDEX_GLOBAL)
        st = sf_search_global_index(m->indexes[0], img, &m->opt, m->threads, &m->result, &err);
    else
        st = sf_search_global(m->db, img, &m->opt, &m->result, &err);
    if (st != SF_OK) {
        sf_cli_error(m->cli, "%s", err.message);
        /* Not the query's fault: the others would fail the same way. */
        if (st == SF_ERR_NOMEM || st == SF_ERR_FORMAT || st == SF_ERR_IO ||
            st == SF_ERR_CHECKSUM)
            exit(SF_EXIT_FATAL);
        return 1;
    }
    if (m->result.not_indexed && !m->warned_missing) {
        /* Likely a database stream and an index that do not hold the same
         * images (or keys); said once, not per query. */
        sf_cli_warn(m->cli, "%s: %zu of its %zu candidates are not in the index; left out "
                    "(said once)", img->key, m->result.not_indexed, m->result.candidates);
        m->warned_missing = 1;
    }
    emit_result(m, img->key, out);
    return 0;
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
    cli.reports_progress = 1;
    cli.synopsis = "(-i INDEX... | --pairwise DB | --global DB [-i INDEX...] | "
                   "-i INDEX --index-global) [OPTION]... [STREAM]...";
    cli.summary = "Find the database images that match each query image of feature streams.";
    cli.options_help = options_help;
    sf_search_options_default(&m.opt);
    m.opt.ma = cli.config.ma_query;
    sf_search_result_init(&m.result);
    int global_with_index = 0, index_global = 0;
    /* The last option met that only serves an index, or pairwise mode. */
    const char *index_only = NULL, *pairwise_only = NULL, *rerank_only = NULL;
    int c;
    while ((c = sf_cli_getopt(&cli, argc, argv, "i:C:k:", longopts)) != -1) {
        switch (c) {
        case 'i': {
            const char **p = realloc(m.index_paths, (m.n_indexes + 1) * sizeof *p);
            if (!p)
                sf_cli_out_of_memory(&cli);
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
        case 'k':
            m.opt.top_k = (size_t)sf_cli_parse_int(&cli, "--top", optarg, 0, 1000000000);
            break;
        case OPT_MA:
            m.opt.ma = (int)sf_cli_parse_int(&cli, "--ma", optarg, 1, 64);
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
            m.opt.rerank = (size_t)sf_cli_parse_int(&cli, "--rerank", optarg, 1, 100000000);
            rerank_only = "--rerank";
            break;
        case OPT_RATIO: {
            char *end;
            errno = 0;
            double r = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(r >= 0.0 && r <= 1.0))
                sf_cli_usage_error(&cli, "--ratio: '%s' is not a number in [0, 1]", optarg);
            m.opt.match.ratio = r;
            pairwise_only = "--ratio";
            break;
        }
        case OPT_SAME_TEMPLATE:
            m.opt.match.same_index = 1;
            pairwise_only = "--same-template";
            break;
        case OPT_MIN_MATCHES:
            m.opt.min_matches = (size_t)sf_cli_parse_int(&cli, "--min-matches", optarg, 1,
                                                         1000000000);
            pairwise_only = "--min-matches";
            break;
        case OPT_INDEX_GLOBAL: index_global = 1; break;
        case SF_OPT_ALLOW_MISMATCH: cli.allow_mismatch = 1; break;
        case OPT_NO_PAIRS:
            m.no_pairs = 1;
            pairwise_only = "--no-pairs";
            break;
        default: sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (index_global) {
        if (m.mode == MODE_PAIRWISE || m.mode == MODE_GLOBAL)
            sf_cli_usage_error(&cli, "--index-global ranks the index's own global descriptors: "
                               "no --pairwise or --global DB");
        if (m.n_indexes != 1)
            sf_cli_usage_error(&cli, "--index-global takes one index (-i)");
        m.mode = MODE_INDEX_GLOBAL;
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
    if (rerank_only && !global_with_index && !index_global)
        sf_cli_usage_error(&cli, "%s goes with --global and -i, or --index-global",
                           rerank_only);
    if (index_global && !rerank_only && index_only && strcmp(index_only, "--threads") != 0)
        sf_cli_usage_error(&cli, "%s goes with --index-global only with --rerank", index_only);
    sf_cli_stream_output(&cli);

    int status = SF_EXIT_OK;
    if (m.mode == MODE_INDEX || global_with_index || (index_global && rerank_only))
        status = open_indexes(&m);
    else if (index_global)
        status = open_global_index(&m);
    if (status == SF_EXIT_OK && index_global)
        status = check_global_stage(&m);
    int db_status = SF_EXIT_OK;
    if (status == SF_EXIT_OK && m.db_path) {
        /* Database images that failed are reported; the others serve. */
        db_status = load_db(&m);
        if (db_status == SF_EXIT_FATAL)
            status = db_status;
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
    sf_search_db_free(m.db);
    sf_search_result_release(&m.result);
    return sf_cli_finish(&cli, status);
}
