/* Finding and loading compute backends (ggml-style): dlopen a module, look
 * up sf_backend_init, check the ABI version and ask whether it can run here.
 * Nothing links a backend directly. */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sf_backend_impl.h"
#include "sf_internal.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define BACKEND_DIR SF_PKGLIBDIR "/backends-" STRINGIFY(SF_BACKEND_ABI_VERSION)
#define MODULE_PREFIX "sf_backend_"
#define MODULE_SUFFIX ".so"

struct sf_backend {
    void *dl;
    const sf_backend_iface *iface;
    char path[4096];
};

/* The directories to search, colon-separated: flag, environment, install dir. */
static void search_dirs(const char *search_path, char *out, size_t size)
{
    const char *env = getenv("SF_BACKEND_PATH");
    snprintf(out, size, "%s%s%s%s%s", search_path && *search_path ? search_path : "",
             search_path && *search_path ? ":" : "", env && *env ? env : "",
             env && *env ? ":" : "", BACKEND_DIR);
}

/* Load one module file and check it; fills info, returns the handle or NULL. */
static void *probe_module(const char *path, sf_backend_info *info, const sf_backend_iface **iface_out)
{
    memset(info, 0, sizeof *info);
    snprintf(info->path, sizeof info->path, "%s", path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base) - strlen(MODULE_PREFIX) - strlen(MODULE_SUFFIX);
    snprintf(info->name, sizeof info->name, "%.*s", (int)len, base + strlen(MODULE_PREFIX));

    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(info->problem, sizeof info->problem, "cannot load: %s", dlerror());
        return NULL;
    }
    sf_backend_init_fn init;
    *(void **)&init = dlsym(dl, "sf_backend_init");
    if (!init) {
        snprintf(info->problem, sizeof info->problem, "not an sf backend (no sf_backend_init)");
        dlclose(dl);
        return NULL;
    }
    const sf_backend_iface *iface = init();
    if (!iface || iface->abi_version != SF_BACKEND_ABI_VERSION ||
        iface->struct_size < sizeof(sf_backend_iface)) {
        snprintf(info->problem, sizeof info->problem,
                 "backend ABI version %u, this sf needs %u",
                 iface ? iface->abi_version : 0, SF_BACKEND_ABI_VERSION);
        dlclose(dl);
        return NULL;
    }
    if (!iface->net_create || !iface->net_free || !iface->backbone || !iface->lit) {
        snprintf(info->problem, sizeof info->problem, "backend table is incomplete");
        dlclose(dl);
        return NULL;
    }
    snprintf(info->name, sizeof info->name, "%s", iface->name ? iface->name : "?");
    snprintf(info->description, sizeof info->description, "%s",
             iface->description ? iface->description : "");
    char why[256] = "";
    info->score = iface->score ? iface->score(why, sizeof why) : 1;
    if (info->score <= 0) {
        info->score = 0;
        snprintf(info->problem, sizeof info->problem, "cannot run on this machine: %s",
                 why[0] ? why : "the backend's probe said no");
    }
    *iface_out = iface;
    return dl;
}

typedef int (*module_visitor)(const char *path, void *ctx);

/* Call visit for every module file in the search directories, in order. */
static void for_each_module(const char *search_path, module_visitor visit, void *ctx)
{
    char dirs[8192];
    search_dirs(search_path, dirs, sizeof dirs);
    for (char *save = NULL, *dir = strtok_r(dirs, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        struct dirent **names;
        int n = scandir(dir, &names, NULL, alphasort);
        if (n < 0)
            continue;
        int stop = 0;
        for (int i = 0; i < n; i++) {
            const char *f = names[i]->d_name;
            size_t fl = strlen(f);
            if (!stop && fl > strlen(MODULE_PREFIX) + strlen(MODULE_SUFFIX) &&
                strncmp(f, MODULE_PREFIX, strlen(MODULE_PREFIX)) == 0 &&
                strcmp(f + fl - strlen(MODULE_SUFFIX), MODULE_SUFFIX) == 0) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", dir, f);
                stop = visit(path, ctx);
            }
            free(names[i]);
        }
        free(names);
        if (stop)
            return;
    }
}

typedef struct list_ctx {
    sf_backend_info *infos;
    size_t max, count;
} list_ctx;

static int list_visit(const char *path, void *vctx)
{
    list_ctx *ctx = vctx;
    sf_backend_info info;
    const sf_backend_iface *iface;
    /* A module of the same name earlier in the path shadows later ones. */
    void *dl = probe_module(path, &info, &iface);
    if (dl)
        dlclose(dl);
    for (size_t i = 0; i < ctx->count && i < ctx->max; i++)
        if (strcmp(ctx->infos[i].name, info.name) == 0)
            return 0;
    if (ctx->count < ctx->max)
        ctx->infos[ctx->count] = info;
    ctx->count++;
    return 0;
}

sf_status sf_backend_list(const char *search_path, sf_backend_info *infos, size_t max,
                          size_t *count, sf_error *err)
{
    list_ctx ctx = { infos, max, 0 };
    for_each_module(search_path, list_visit, &ctx);
    *count = ctx.count;
    return SF_OK;
}

typedef struct open_ctx {
    const char *want;       /* NULL: best */
    sf_backend_info best;
    char best_path[4096];
    int found;
    char problems[1024];
} open_ctx;

static int open_visit(const char *path, void *vctx)
{
    open_ctx *ctx = vctx;
    sf_backend_info info;
    const sf_backend_iface *iface = NULL;
    void *dl = probe_module(path, &info, &iface);
    if (dl)
        dlclose(dl);
    if (ctx->want && strcmp(info.name, ctx->want) != 0)
        return 0;
    if (info.score == 0) {
        size_t used = strlen(ctx->problems);
        snprintf(ctx->problems + used, sizeof ctx->problems - used, "%s%s: %s",
                 used ? "; " : "", info.path, info.problem);
        return ctx->want != NULL; /* a named backend: the first one found decides */
    }
    if (!ctx->found || info.score > ctx->best.score) {
        ctx->best = info;
        snprintf(ctx->best_path, sizeof ctx->best_path, "%s", path);
        ctx->found = 1;
    }
    return ctx->want != NULL;
}

sf_status sf_backend_open(sf_backend **out, const char *name, const char *search_path,
                          sf_error *err)
{
    open_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.want = name && *name ? name : NULL;
    for_each_module(search_path, open_visit, &ctx);
    char dirs[8192];
    search_dirs(search_path, dirs, sizeof dirs);
    if (!ctx.found) {
        if (ctx.problems[0])
            return sf_error_set(err, SF_ERR_BACKEND, "backend %s%s%s unusable: %s",
                                ctx.want ? "'" : "", ctx.want ? ctx.want : "", ctx.want ? "'" : "",
                                ctx.problems);
        if (ctx.want)
            return sf_error_set(err, SF_ERR_BACKEND,
                                "no backend named '%s' in %s (try --backend list)", ctx.want, dirs);
        return sf_error_set(err, SF_ERR_BACKEND, "no backend found in %s", dirs);
    }
    sf_backend *be = calloc(1, sizeof *be);
    if (!be)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    sf_backend_info info;
    be->dl = probe_module(ctx.best_path, &info, &be->iface);
    if (!be->dl) {
        free(be);
        return sf_error_set(err, SF_ERR_BACKEND, "%s: %s", ctx.best_path, info.problem);
    }
    snprintf(be->path, sizeof be->path, "%s", ctx.best_path);
    *out = be;
    return SF_OK;
}

void sf_backend_close(sf_backend *backend)
{
    if (!backend)
        return;
    dlclose(backend->dl);
    free(backend);
}

const char *sf_backend_name(const sf_backend *backend)
{
    return backend->iface->name;
}

const char *sf_backend_path(const sf_backend *backend)
{
    return backend->path;
}

const sf_backend_iface *sf_backend_iface_of(const sf_backend *backend)
{
    return backend->iface;
}
