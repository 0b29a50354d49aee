/* The options and set-up shared by the programs that run the network
 * (sf-extract, sf-lit). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ---- programs that run the network ---- */

void sf_cli_prefer_passive_threads(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* No /proc: go on with spinning threads, slower only under contention. */
}

int sf_cli_network_option(sf_cli *cli, sf_cli_network *nw, int opt, const char *arg)
{
    switch (opt) {
    case 'm':
        sf_cli_set(cli, "compute.model", arg);
        return 1;
    case SF_OPT_BACKEND:
        nw->backend_name = arg;
        return 1;
    case SF_OPT_BACKEND_PATH:
        nw->backend_path = arg;
        return 1;
    case SF_OPT_THREADS:
        sf_cli_set(cli, "compute.threads", arg);
        return 1;
    case SF_OPT_PRECISION:
        if (strcmp(arg, "f32") != 0 && strcmp(arg, "bf16") != 0)
            sf_cli_usage_error(cli, "--precision: expected f32 or bf16, got '%s'", arg);
        sf_cli_set(cli, "compute.precision", arg);
        return 1;
    }
    return 0;
}

static void list_backends(sf_cli *cli, const sf_cli_network *nw)
{
    sf_backend_info infos[32];
    size_t n = 0;
    sf_error err;
    if (sf_backend_list(nw->backend_path, infos, 32, &n, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        exit(SF_EXIT_FATAL);
    }
    for (size_t i = 0; i < n && i < 32; i++)
        printf("%s\t%s\t%s\t%s\n", infos[i].name,
               infos[i].score > 0 ? "usable" : "unusable",
               infos[i].score > 0 ? infos[i].description : infos[i].problem, infos[i].path);
    if (n == 0)
        sf_cli_error(cli, "no backend installed (searched --backend-path, $SF_BACKEND_PATH, "
                          "and %s)", SF_PKGLIBDIR);
    exit(sf_cli_finish(cli, n ? SF_EXIT_OK : SF_EXIT_FAILURE));
}

void sf_cli_network_open(sf_cli *cli, sf_cli_network *nw)
{
    sf_error err;
    const char *name = nw->backend_name;
    if (!name)
        name = getenv("SF_BACKEND");
    if (!name || !*name)
        name = cli->config.backend;
    if (strcmp(name, "list") == 0)
        list_backends(cli, nw);
    /* compute.precision: the flag's value, else the preset's. */
    if (strcmp(cli->config.precision, "f32") == 0)
        nw->precision = SF_PRECISION_F32;
    else if (strcmp(cli->config.precision, "bf16") == 0)
        nw->precision = SF_PRECISION_BF16;
    else
        sf_cli_usage_error(cli, "compute.precision: expected f32 or bf16, got '%s'",
                           cli->config.precision);
    if (!cli->config.model[0])
        sf_cli_usage_error(cli, "no model: give -m FILE (fire.pth, or sf-model random -o FILE)");
    if (sf_model_load(&nw->model, cli->config.model, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        exit(SF_EXIT_FATAL);
    }
    if (sf_backend_open(&nw->backend, name, nw->backend_path, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        exit(SF_EXIT_FATAL);
    }
    sf_network_options opt = { .threads = cli->config.threads, .precision = nw->precision };
    if (sf_network_create(&nw->net, nw->backend, nw->model, &opt, &err) != SF_OK) {
        sf_cli_error(cli, "%s: %s", sf_backend_name(nw->backend), err.message);
        exit(SF_EXIT_FATAL);
    }
    sf_cli_info(cli, "model %s, backend %s (%s)", cli->config.model, sf_backend_name(nw->backend),
                sf_backend_path(nw->backend));
}

void sf_cli_network_close(sf_cli_network *nw)
{
    sf_network_free(nw->net);
    sf_backend_close(nw->backend);
    sf_model_free(nw->model);
    nw->net = NULL;
    nw->backend = NULL;
    nw->model = NULL;
}
