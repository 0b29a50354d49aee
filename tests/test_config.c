/* Settings: defaults, the YAML loader and its messages, sf_config_set,
 * and the writer's round trip. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf.h"
#include "testutil.h"

static const char *srcdir(void)
{
    const char *d = getenv("top_srcdir");
    return d && *d ? d : ".";
}

/* Field by field, so padding bytes do not matter. */
static int cfg_equal(const sf_config *a, const sf_config *b)
{
    if (a->n_scales != b->n_scales)
        return 0;
    for (int i = 0; i < a->n_scales; i++)
        if (a->scales[i] != b->scales[i])
            return 0;
    for (int c = 0; c < 3; c++)
        if (a->mean[c] != b->mean[c] || a->std[c] != b->std[c])
            return 0;
    return a->image_size == b->image_size && a->autorotate == b->autorotate &&
           a->max_pixels == b->max_pixels && a->max_bytes == b->max_bytes &&
           a->max_memory == b->max_memory && a->features_num == b->features_num &&
           a->global == b->global && strcmp(a->backend, b->backend) == 0 &&
           a->threads == b->threads && strcmp(a->model, b->model) == 0 &&
           a->codebook_size == b->codebook_size &&
           a->kmeans_iterations == b->kmeans_iterations && a->kmeans_seed == b->kmeans_seed &&
           a->ma_database == b->ma_database && a->ma_query == b->ma_query &&
           a->binary == b->binary && a->alpha == b->alpha && a->threshold == b->threshold &&
           a->idf == b->idf;
}

static sf_status load(const char *yaml, sf_config *cfg, sf_error *err)
{
    sf_config_init(cfg);
    return sf_config_load_buffer(cfg, yaml, strlen(yaml), "t.yaml", err);
}

/* Loading yaml fails with status and a message containing want (and want2
 * when not NULL), leaving the defaults untouched. */
#define LOAD_FAILS(yaml, status, want, want2) \
    load_fails(__LINE__, yaml, sizeof(yaml) - 1, status, want, want2)
static void load_fails(int line, const char *yaml, size_t size, sf_status status,
                       const char *want, const char *want2)
{
    sf_config cfg, def;
    sf_error err;
    sf_config_init(&cfg);
    sf_config_init(&def);
    sf_status st = sf_config_load_buffer(&cfg, yaml, size, "t.yaml", &err);
    CHECK(st == status, "line %d: status %d, want %d (%s)", line, st, status,
          st ? err.message : "ok");
    if (st != SF_OK) {
        CHECK(strstr(err.message, want) != NULL, "line %d: message '%s' lacks '%s'", line,
              err.message, want);
        CHECK(!want2 || strstr(err.message, want2) != NULL, "line %d: message '%s' lacks '%s'",
              line, err.message, want2);
        CHECK(!strchr(err.message, '\n'), "line %d: message has a newline", line);
    }
    CHECK(cfg_equal(&cfg, &def), "line %d: config changed by a failed load", line);
}

#define SET_FAILS(key, value, want) set_fails(__LINE__, key, value, want)
static void set_fails(int line, const char *key, const char *value, const char *want)
{
    sf_config cfg, def;
    sf_error err;
    sf_config_init(&cfg);
    sf_config_init(&def);
    sf_status st = sf_config_set(&cfg, key, value, &err);
    CHECK(st == SF_ERR_CONFIG, "line %d: set %s=%s: status %d", line, key, value, st);
    if (st != SF_OK)
        CHECK(strstr(err.message, want) != NULL, "line %d: message '%s' lacks '%s'", line,
              err.message, want);
    CHECK(cfg_equal(&cfg, &def), "line %d: config changed by a failed set", line);
}

static void test_defaults(void)
{
    sf_config c;
    static const double scales[] = { 2.0, 1.414, 1.0, 0.707, 0.5, 0.353, 0.25 };
    sf_config_init(&c);
    CHECK(c.image_size == 0, "image.size %d (0: the model's own)", c.image_size);
    CHECK(c.mean[0] == 0.485f && c.mean[1] == 0.456f && c.mean[2] == 0.406f, "image.mean");
    CHECK(c.std[0] == 0.229f && c.std[1] == 0.224f && c.std[2] == 0.225f, "image.std");
    CHECK(c.n_scales == 7, "n_scales %d", c.n_scales);
    for (int i = 0; i < 7; i++)
        CHECK(c.scales[i] == scales[i], "scale %d: %g", i, c.scales[i]);
    CHECK(c.autorotate == 1, "image.autorotate");
    CHECK(c.max_pixels == 178956970u, "image.max_pixels");
    CHECK(c.max_memory == UINT64_C(2147483648), "image.max_memory");
    CHECK(c.features_num == 0, "features.keep (0: the model's own)");
    CHECK(c.global == 0, "features.global");
    CHECK(c.backend[0] == '\0' && c.model[0] == '\0', "compute strings");
    CHECK(c.threads == 0, "compute.threads");
    CHECK(c.codebook_size == 0, "asmk.codebook_size (0: follows the data)");
    CHECK(c.kmeans_iterations == 10, "asmk.kmeans_iterations");
    CHECK(c.kmeans_seed == 0, "asmk.kmeans_seed");
    CHECK(c.ma_database == 1 && c.ma_query == 5, "multiple assignment");
    CHECK(c.binary == 1 && c.idf == 0, "asmk.binary / idf");
    CHECK(c.alpha == 3.0 && c.threshold == 0.0, "alpha / threshold");
}

/* Precedence model < preset < flags: only the settings left at 0 take the
 * model's values; without a model image.size is 1024. */
static void test_use_model(void)
{
    sf_config c;
    sf_net_params p;
    sf_net_params_init(&p);
    p.image_size = 320;
    p.features_num = 100;
    sf_config_init(&c);
    sf_config_use_model(&c, &p);
    CHECK(c.image_size == 320 && c.features_num == 100, "model: %d %d", c.image_size,
          c.features_num);
    sf_config_init(&c);
    c.image_size = 512;
    c.features_num = 1000;
    sf_config_use_model(&c, &p);
    CHECK(c.image_size == 512 && c.features_num == 1000, "preset over model: %d %d",
          c.image_size, c.features_num);
    sf_config_init(&c);
    sf_config_use_model(&c, NULL);
    CHECK(c.image_size == SF_CONFIG_DEFAULT_IMAGE_SIZE && c.image_size == 1024 &&
          c.features_num == 0, "no model: %d %d", c.image_size, c.features_num);
}

/* Key names as the writer lists them ("image.size"), from its output. */
static int written_keys(char names[][64], int max)
{
    sf_config c;
    sf_error err;
    char line[512], section[64] = "";
    int n = 0;
    FILE *fp = tmpfile();
    if (!fp)
        return 0;
    sf_config_init(&c);
    CHECK(sf_config_write(&c, fp, &err) == SF_OK, "write: %s", err.message);
    rewind(fp);
    while (fgets(line, sizeof line, fp) && n < max) {
        char *colon = strchr(line, ':');
        if (line[0] == '#' || line[0] == '\n' || !colon)
            continue;
        if (line[0] != ' ') {
            snprintf(section, sizeof section, "%.*s", (int)(colon - line), line);
            continue;
        }
        char *name = line + strspn(line, " ");
        if (*name == '#')
            continue;
        size_t sl = strlen(section), kl = (size_t)(colon - name);
        if (sl + 1 + kl >= 64)
            continue;
        memcpy(names[n], section, sl);
        names[n][sl] = '.';
        memcpy(names[n] + sl + 1, name, kl);
        names[n++][sl + 1 + kl] = '\0';
    }
    fclose(fp);
    return n;
}

static void test_example_and_docs(void)
{
    char path[4096], names[64][64];
    sf_config c, def;
    sf_error err;
    snprintf(path, sizeof path, "%s/examples/fire.yaml", srcdir());
    sf_config_init(&def);
    sf_config_init(&c);
    c.image_size = 7; /* the file must set it back */
    CHECK(sf_config_load_file(&c, path, &err) == SF_OK, "%s", err.message);
    /* The preset leaves the model's own settings to the model. */
    CHECK(c.features_num == 0, "examples/fire.yaml: features.keep %d", c.features_num);
    CHECK(c.image_size == 0, "examples/fire.yaml: image.size %d", c.image_size);
    CHECK(cfg_equal(&c, &def), "examples/fire.yaml differs from the defaults");

    /* Every key is spelled out in the example and documented in the man page. */
    size_t n_yaml, n_man;
    char *yaml = tu_read_file(srcdir(), "examples/fire.yaml", &n_yaml);
    char *man = tu_read_file(srcdir(), "man/sf-config.5", &n_man);
    yaml = realloc(yaml, n_yaml + 1);
    man = realloc(man, n_man + 1);
    if (!yaml || !man)
        exit(99);
    yaml[n_yaml] = man[n_man] = '\0';
    int n = written_keys(names, 64);
    CHECK(n == 23, "the writer lists %d keys", n);
    for (int i = 0; i < n; i++) {
        char want[80];
        snprintf(want, sizeof want, "\n  %s:", strchr(names[i], '.') + 1);
        CHECK(strstr(yaml, want) != NULL, "examples/fire.yaml lacks %s", names[i]);
        CHECK(strstr(man, names[i]) != NULL, "man/sf-config.5 lacks %s", names[i]);
    }
    free(yaml);
    free(man);
}

static void test_valid_documents(void)
{
    sf_config c, def;
    sf_error err;
    sf_config_init(&def);

    const char *empty[] = { "", "# only a comment\n", "---\n", "---\n...\n", "\n\n",
                            "image:\n", "image: ~\nasmk:\n", "\xEF\xBB\xBF# BOM\n" };
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        CHECK(load(empty[i], &c, &err) == SF_OK, "empty doc %zu: %s", i, err.message);
        CHECK(cfg_equal(&c, &def), "empty doc %zu changed the config", i);
    }
    sf_config_init(&c);
    CHECK(sf_config_load_buffer(&c, NULL, 0, NULL, &err) == SF_OK, "NULL, 0: %s", err.message);

    /* Nested, flat and quoted keys; YAML's spellings of booleans. */
    CHECK(load("image.size: 512\n"
               "asmk.binary: No\n"
               "\"features.keep\": 12\n"
               "image:\n"
               "  scales:\n"
               "    - 1\n"
               "    - 0.5\n"
               "  autorotate: OFF\n"
               "  mean: [0, -1.5e-3, +2]\n"
               "asmk: {idf: yes, alpha: 1e1, threshold: -1, kmeans_seed: 18446744073709551615}\n"
               "compute:\n"
               "  model: 'r50 fire.pth'\n"
               "  backend: ~\n"
               "  threads: \"8\"\n"
               "features: {global: on}\n",
               &c, &err) == SF_OK, "%s", err.message);
    CHECK(c.image_size == 512 && c.binary == 0 && c.features_num == 12, "flat keys");
    CHECK(c.n_scales == 2 && c.scales[0] == 1.0 && c.scales[1] == 0.5, "scales");
    CHECK(c.autorotate == 0 && c.idf == 1 && c.global == 1, "booleans");
    CHECK(c.mean[0] == 0.0f && c.mean[1] == -1.5e-3f && c.mean[2] == 2.0f, "mean");
    CHECK(c.alpha == 10.0 && c.threshold == -1.0, "doubles");
    CHECK(c.kmeans_seed == UINT64_MAX, "seed %llu", (unsigned long long)c.kmeans_seed);
    CHECK(strcmp(c.model, "r50 fire.pth") == 0 && c.backend[0] == '\0', "strings");
    CHECK(c.threads == 8, "quoted number");

    /* An anchor alone is harmless. */
    CHECK(load("image:\n  size: &a 640\n", &c, &err) == SF_OK && c.image_size == 640,
          "anchor: %s", err.message);
}

static void test_load_errors(void)
{
    /* Values a float cannot hold are out of range where they are read,
     * not infinite later (sf-index create --alpha 1e300 exited 3). */
    LOAD_FAILS("asmk:\n  alpha: 1e300\n", SF_ERR_CONFIG, "asmk.alpha: 1e300 is out of range", NULL);
    LOAD_FAILS("image:\n  mean: [1e300, 0, 0]\n", SF_ERR_CONFIG, "image.mean: 1e300 is too large", NULL);
    /* A key holding a NUL, or too long to fit: unknown, shown safely
     * (this once copied 255 bytes from a 3-byte key). */
    LOAD_FAILS("compute:\n  precision: fp16\n", SF_ERR_CONFIG,
               "t.yaml:2: compute.precision: expected one of f32|bf16, got 'fp16'", NULL);
    LOAD_FAILS("\"a\\0b\": 1\n", SF_ERR_CONFIG, "t.yaml:1: unknown key 'a?b'", NULL);
    LOAD_FAILS("image:\n  \"s\\0\": 1\n", SF_ERR_CONFIG, "unknown key 'image.s?'", NULL);
    /* unknown keys, with and without a suggestion */
    LOAD_FAILS("image:\n  size: 5\n  sise: 5\n", SF_ERR_CONFIG,
               "t.yaml:3: unknown key 'image.sise' (did you mean 'image.size'?)", NULL);
    LOAD_FAILS("imgae.size: 5\n", SF_ERR_CONFIG,
               "t.yaml:1: unknown key 'imgae.size' (did you mean 'image.size'?)", NULL);
    LOAD_FAILS("imag:\n  size: 5\n", SF_ERR_CONFIG, "t.yaml:1: unknown key 'imag' (did you mean 'image'?)",
               NULL);
    LOAD_FAILS("size: 5\n", SF_ERR_CONFIG, "t.yaml:1: unknown key 'size' (did you mean 'image.size'?)",
               NULL);
    LOAD_FAILS("\n\nfrobnicate: 1\n", SF_ERR_CONFIG, "t.yaml:3: unknown key 'frobnicate'", NULL);
    {
        sf_config c;
        sf_error err;
        load("frobnicate: 1\n", &c, &err);
        CHECK(!strstr(err.message, "did you mean"), "no suggestion expected: %s", err.message);
    }
    LOAD_FAILS("image:\n  size:\n    deep: 1\n", SF_ERR_CONFIG,
               "t.yaml:3: image.size: expected an integer, got a mapping", NULL);

    /* wrong types */
    LOAD_FAILS("image:\n  autorotate: true\n  size: big\n", SF_ERR_CONFIG,
               "t.yaml:3: image.size: expected an integer, got 'big'", NULL);
    LOAD_FAILS("image:\n  size: 0x10\n", SF_ERR_CONFIG, "t.yaml:2: image.size: expected an integer", NULL);
    LOAD_FAILS("image:\n  size: 1e3\n", SF_ERR_CONFIG, "image.size: expected an integer, got '1e3'", NULL);
    LOAD_FAILS("image:\n  size: 512.0\n", SF_ERR_CONFIG, "image.size: expected an integer", NULL);
    LOAD_FAILS("image:\n  size:\n", SF_ERR_CONFIG, "t.yaml:2: image.size: expected an integer, got ''", NULL);
    LOAD_FAILS("image:\n  size: ' 12'\n", SF_ERR_CONFIG, "image.size: expected an integer", NULL);
    LOAD_FAILS("image:\n  size: [1]\n", SF_ERR_CONFIG,
               "t.yaml:2: image.size: expected an integer, got a list", NULL);
    LOAD_FAILS("asmk:\n  binary: maybe\n", SF_ERR_CONFIG,
               "t.yaml:2: asmk.binary: expected true or false, got 'maybe'", NULL);
    LOAD_FAILS("asmk:\n  binary: 1\n", SF_ERR_CONFIG, "asmk.binary: expected true or false", NULL);
    LOAD_FAILS("asmk:\n  alpha: nan\n", SF_ERR_CONFIG, "t.yaml:2: asmk.alpha: expected a number, got 'nan'", NULL);
    LOAD_FAILS("asmk:\n  alpha: .inf\n", SF_ERR_CONFIG, "asmk.alpha: expected a number", NULL);
    LOAD_FAILS("asmk:\n  alpha: 0x1p3\n", SF_ERR_CONFIG, "asmk.alpha: expected a number", NULL);
    LOAD_FAILS("asmk:\n  alpha: 1e999\n", SF_ERR_CONFIG, "t.yaml:2: asmk.alpha: 1e999 is too large", NULL);
    LOAD_FAILS("asmk:\n  kmeans_seed: 1.5\n", SF_ERR_CONFIG,
               "asmk.kmeans_seed: expected a non-negative integer, got '1.5'", NULL);
    LOAD_FAILS("compute:\n  model: [a]\n", SF_ERR_CONFIG, "t.yaml:2: compute.model: expected a string, got a list", NULL);
    LOAD_FAILS("compute:\n  model: \"a\\0b\"\n", SF_ERR_CONFIG, "compute.model: the value contains a NUL", NULL);

    /* ranges */
    LOAD_FAILS("image:\n  size: 65537\n", SF_ERR_CONFIG, "t.yaml:2: image.size: 65537 is out of range (0..65536)", NULL);
    LOAD_FAILS("image:\n  size: -5\n", SF_ERR_CONFIG, "image.size: -5 is out of range", NULL);
    LOAD_FAILS("image:\n  size: 99999999999999999999999999\n", SF_ERR_CONFIG,
               "image.size: 99999999999999999999999999 is out of range (0..65536)", NULL);
    LOAD_FAILS("compute:\n  threads: -9223372036854775808\n", SF_ERR_CONFIG,
               "compute.threads: -9223372036854775808 is out of range (0..1024)", NULL);
    LOAD_FAILS("image:\n  max_pixels: -1\n", SF_ERR_CONFIG,
               "t.yaml:2: image.max_pixels: -1 is out of range (0..18446744073709551615)", NULL);
    LOAD_FAILS("asmk:\n  kmeans_seed: 18446744073709551616\n", SF_ERR_CONFIG,
               "asmk.kmeans_seed: 18446744073709551616 is out of range", NULL);
    LOAD_FAILS("asmk:\n  alpha: 0\n", SF_ERR_CONFIG, "t.yaml:2: asmk.alpha: 0 is out of range (> 0 and <= 1000)", NULL);
    LOAD_FAILS("asmk:\n  threshold: 1.5\n", SF_ERR_CONFIG,
               "t.yaml:2: asmk.threshold: 1.5 is out of range (-1..1)", NULL);
    LOAD_FAILS("features:\n  keep: 1000001\n", SF_ERR_CONFIG, "features.keep: 1000001 is out of range (0..1000000)", NULL);
    LOAD_FAILS("asmk:\n  codebook_size: 16777217\n", SF_ERR_CONFIG, "(0..16777216)", NULL);
    LOAD_FAILS("asmk:\n  multiple_assignment_query: 65\n", SF_ERR_CONFIG,
               "asmk.multiple_assignment_query: 65 is out of range (1..64)", NULL);
    LOAD_FAILS("compute:\n  threads: 1025\n", SF_ERR_CONFIG, "compute.threads: 1025 is out of range (0..1024)", NULL);

    /* lists */
    LOAD_FAILS("image:\n  scales: 2.0\n", SF_ERR_CONFIG,
               "t.yaml:2: image.scales: expected a list of numbers, got '2.0'", NULL);
    LOAD_FAILS("image:\n  scales: {a: 1}\n", SF_ERR_CONFIG, "image.scales: expected a list of numbers, got a mapping",
               NULL);
    LOAD_FAILS("image:\n  scales: []\n", SF_ERR_CONFIG, "t.yaml:2: image.scales: expected 1 to 16 values, got 0", NULL);
    LOAD_FAILS("image:\n  scales: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n", SF_ERR_CONFIG,
               "t.yaml:2: image.scales: too many values (at most 16)", NULL);
    LOAD_FAILS("image:\n  scales:\n    - 1\n    - 0\n", SF_ERR_CONFIG,
               "t.yaml:4: image.scales: 0 is out of range (> 0 and <= 16)", NULL);
    LOAD_FAILS("image:\n  scales: [1, 16.5]\n", SF_ERR_CONFIG, "image.scales: 16.5 is out of range", NULL);
    LOAD_FAILS("image:\n  scales: [1, x]\n", SF_ERR_CONFIG, "t.yaml:2: image.scales: expected a number, got 'x'", NULL);
    LOAD_FAILS("image:\n  scales: [1, [2]]\n", SF_ERR_CONFIG, "image.scales: expected a number, got a list", NULL);
    LOAD_FAILS("image:\n  mean: [0.5, 0.5]\n", SF_ERR_CONFIG, "t.yaml:2: image.mean: expected 3 values, got 2", NULL);
    LOAD_FAILS("image:\n  mean: [0.5, 0.5, 0.5, 0.5]\n", SF_ERR_CONFIG, "image.mean: expected 3 values", NULL);
    LOAD_FAILS("image:\n  mean: [1e39, 0, 0]\n", SF_ERR_CONFIG, "image.mean: 1e39 is too large", NULL);
    LOAD_FAILS("image:\n  std: [0.2, 0, 0.2]\n", SF_ERR_CONFIG, "t.yaml:2: image.std: 0 is out of range (> 0)", NULL);
    LOAD_FAILS("image:\n  std: [0.2, 1e-50, 0.2]\n", SF_ERR_CONFIG, "image.std: 1e-50 is out of range", NULL);

    /* structure */
    LOAD_FAILS("image: 5\n", SF_ERR_CONFIG, "t.yaml:1: 'image' is a section: expected a mapping", NULL);
    LOAD_FAILS("- image\n", SF_ERR_CONFIG, "t.yaml:1: expected a mapping of settings", NULL);
    LOAD_FAILS("hello\n", SF_ERR_CONFIG, "t.yaml:1: expected a mapping of settings (key: value), got 'hello'", NULL);
    LOAD_FAILS("? [a]\n: 1\n", SF_ERR_CONFIG, "t.yaml:1: expected a key name, got a list", NULL);
    LOAD_FAILS("image:\n  size: 5\n  size: 6\n", SF_ERR_CONFIG,
               "t.yaml:3: duplicate key 'image.size' (first set at line 2)", NULL);
    LOAD_FAILS("image.size: 5\nimage:\n  size: 6\n", SF_ERR_CONFIG,
               "t.yaml:3: duplicate key 'image.size' (first set at line 1)", NULL);
    LOAD_FAILS("image:\n  size: 5\nasmk: {}\nimage:\n  threads: 6\n", SF_ERR_CONFIG,
               "t.yaml:4: duplicate key 'image' (first set at line 1)", NULL);
    LOAD_FAILS("image:\n  size: &a 5\nasmk:\n  kmeans_iterations: *a\n", SF_ERR_CONFIG,
               "t.yaml:4: aliases (*a) are not supported", NULL);
    LOAD_FAILS("image:\n  size: !!int 5\n", SF_ERR_CONFIG, "t.yaml:2: tags (", "are not supported");
    LOAD_FAILS("image:\n  size: 5\n---\nimage:\n  size: 6\n", SF_ERR_CONFIG,
               "t.yaml:3: only one YAML document is allowed", NULL);

    /* YAML syntax and encoding */
    LOAD_FAILS("image:\n  size: 5\n  scales: [1, 2\n", SF_ERR_CONFIG, "t.yaml:", "flow sequence");
    LOAD_FAILS("image:\n  size: 5\n bad: 6\n", SF_ERR_CONFIG, "t.yaml:3: ", NULL);
    LOAD_FAILS("image:\n  size: 5: 6\n", SF_ERR_CONFIG, "t.yaml:2: mapping values are not allowed", NULL);
    LOAD_FAILS("image:\n  size: \"5\n", SF_ERR_CONFIG, "t.yaml:", "quoted scalar");
    LOAD_FAILS("image:\n  size: \xFF\n", SF_ERR_CONFIG, "t.yaml:2: invalid", NULL);
    LOAD_FAILS("image:\n  size: 5\x01\n", SF_ERR_CONFIG, "t.yaml:2: control characters", NULL);
    LOAD_FAILS("image:\n  size: 5\0\n", SF_ERR_CONFIG, "t.yaml:2:", NULL);

    /* A failure after valid keys leaves everything as it was. */
    LOAD_FAILS("image:\n  size: 512\n  std: [1, 2]\n", SF_ERR_CONFIG, "t.yaml:3: image.std", NULL);

    /* Long junk is shortened in messages. */
    {
        sf_config c;
        sf_error err;
        char yaml[4200];
        memset(yaml, 'k', 1000);
        strcpy(yaml + 1000, ": 1\n");
        CHECK(load(yaml, &c, &err) == SF_ERR_CONFIG, "long key");
        CHECK(strlen(err.message) < 120 && strstr(err.message, "...'"), "long key: %s", err.message);
    }
}

static void test_files(void)
{
    sf_config c, def;
    sf_error err;
    char dir[] = "/tmp/sf-test-config-XXXXXX", path[256];
    sf_config_init(&def);
    sf_config_init(&c);
    CHECK(sf_config_load_file(&c, "no-such-dir/x.yaml", &err) == SF_ERR_NOT_FOUND, "missing");
    CHECK(strcmp(err.message, "no-such-dir/x.yaml: No such file or directory") == 0, "%s", err.message);
    if (!mkdtemp(dir))
        exit(99);
    CHECK(sf_config_load_file(&c, dir, &err) == SF_ERR_IO, "directory: %s", err.message);
    CHECK(strstr(err.message, dir) != NULL, "%s", err.message);

    snprintf(path, sizeof path, "%s/fire.yaml", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        exit(99);
    fputs("# test\nimage:\n  size: 300\n  size: 301\n", fp);
    fclose(fp);
    CHECK(sf_config_load_file(&c, path, &err) == SF_ERR_CONFIG, "bad file");
    char want[300];
    snprintf(want, sizeof want, "%s:4: duplicate key 'image.size'", path);
    CHECK(strstr(err.message, want) == err.message, "%s", err.message);
    CHECK(cfg_equal(&c, &def), "failed file changed the config");

    if (geteuid() != 0) { /* root reads anything */
        chmod(path, 0);
        CHECK(sf_config_load_file(&c, path, &err) == SF_ERR_IO, "unreadable: %s", err.message);
        CHECK(strstr(err.message, "Permission denied") != NULL, "%s", err.message);
    }
    remove(path);

    /* A huge file is refused rather than read whole. */
    fp = fopen(path, "w");
    if (!fp)
        exit(99);
    for (int i = 0; i < (1 << 20) / 8 + 1; i++)
        fputs("#ffffff\n", fp);
    fclose(fp);
    CHECK(sf_config_load_file(&c, path, &err) == SF_ERR_TOO_LARGE, "huge: %s", err.message);
    remove(path);
    rmdir(dir);
}

static void test_set(void)
{
    sf_config c;
    sf_error err;
    sf_config_init(&c);
    CHECK(sf_config_set(&c, "image.size", "512", &err) == SF_OK && c.image_size == 512, "int");
    CHECK(sf_config_set(&c, "image.size", " 640 ", &err) == SF_OK && c.image_size == 640, "int, spaces");
    CHECK(sf_config_set(&c, "image.max_pixels", "0", &err) == SF_OK && c.max_pixels == 0, "u64");
    CHECK(sf_config_set(&c, "asmk.kmeans_seed", "18446744073709551615", &err) == SF_OK &&
              c.kmeans_seed == UINT64_MAX, "u64 max");
    CHECK(sf_config_set(&c, "asmk.alpha", "2.5", &err) == SF_OK && c.alpha == 2.5, "double");
    CHECK(sf_config_set(&c, "asmk.threshold", "-0.25", &err) == SF_OK && c.threshold == -0.25,
          "double");
    CHECK(sf_config_set(&c, "asmk.binary", "False", &err) == SF_OK && c.binary == 0, "bool");
    CHECK(sf_config_set(&c, "asmk.binary", "on", &err) == SF_OK && c.binary == 1, "bool");
    CHECK(sf_config_set(&c, "image.mean", "0.5,0.25,0", &err) == SF_OK && c.mean[0] == 0.5f &&
              c.mean[1] == 0.25f && c.mean[2] == 0.0f, "floats: %s", err.message);
    CHECK(sf_config_set(&c, "image.std", "[1, 2, 3]", &err) == SF_OK && c.std[2] == 3.0f,
          "floats, brackets: %s", err.message);
    CHECK(sf_config_set(&c, "image.scales", "2,1,0.5", &err) == SF_OK && c.n_scales == 3 &&
              c.scales[2] == 0.5, "doubles: %s", err.message);
    CHECK(sf_config_set(&c, "image.scales", " [ 1.5 ] ", &err) == SF_OK && c.n_scales == 1 &&
              c.scales[0] == 1.5, "one double: %s", err.message);
    CHECK(sf_config_set(&c, "compute.model", " a b.pth", &err) == SF_OK &&
              strcmp(c.model, " a b.pth") == 0, "string kept literally");
    CHECK(sf_config_set(&c, "compute.backend", "", &err) == SF_OK && c.backend[0] == '\0', "empty string");

    SET_FAILS("image.size", "big", "image.size: expected an integer, got 'big'");
    SET_FAILS("image.size", "", "image.size: expected an integer, got ''");
    SET_FAILS("image.size", "-1", "image.size: -1 is out of range (0..65536)");
    SET_FAILS("image.size", "5 5", "image.size: expected an integer");
    SET_FAILS("image.max_pixels", "-3", "image.max_pixels: -3 is out of range");
    SET_FAILS("asmk.alpha", "-1", "asmk.alpha: -1 is out of range (> 0 and <= 1000)");
    SET_FAILS("asmk.alpha", "inf", "asmk.alpha: expected a number, got 'inf'");
    SET_FAILS("asmk.idf", "2", "asmk.idf: expected true or false, got '2'");
    SET_FAILS("image.mean", "1,2", "image.mean: expected 3 values, got 2");
    SET_FAILS("image.mean", "1,2,3,4", "image.mean: expected 3 values");
    SET_FAILS("image.scales", "", "image.scales: expected 1 to 16 values, got 0");
    SET_FAILS("image.scales", "[]", "image.scales: expected 1 to 16 values, got 0");
    SET_FAILS("image.scales", "1,,2", "image.scales: expected a number, got ''");
    SET_FAILS("image.scales", "1,2,", "image.scales: expected a number after the last comma");
    SET_FAILS("image.scales", "1,2,x", "image.scales: expected a number, got 'x'");
    SET_FAILS("image.scales", "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", "image.scales: too many values (at most 16)");
    SET_FAILS("image.scales", "[1, 17]", "image.scales: 17 is out of range (> 0 and <= 16)");
    SET_FAILS("image.std", "1,0,1", "image.std: 0 is out of range (> 0)");
    /* A fixed set of values is refused when read, by every program
     * (compute.precision was once refused only where a network opened). */
    CHECK(sf_config_set(&c, "compute.precision", "bf16", &err) == SF_OK &&
              strcmp(c.precision, "bf16") == 0, "precision bf16: %s", err.message);
    SET_FAILS("compute.precision", "bf61", "compute.precision: expected one of f32|bf16, got 'bf61'");
    SET_FAILS("compute.precision", "f3", "compute.precision: expected one of f32|bf16, got 'f3'");
    SET_FAILS("compute.precision", "f32 ", "compute.precision: expected one of f32|bf16, got 'f32 '");
    SET_FAILS("compute.precision", "", "compute.precision: expected one of f32|bf16, got ''");
    SET_FAILS("image.sise", "5", "unknown key 'image.sise' (did you mean 'image.size'?)");
    SET_FAILS("threads", "5", "unknown key 'threads' (did you mean 'compute.threads'?)");
    SET_FAILS("image", "5", "'image' is a section, not a key");
    {
        char long_value[1100];
        memset(long_value, 'x', 1024);
        long_value[1024] = '\0';
        SET_FAILS("compute.model", long_value, "compute.model: the value is too long (at most 1023 bytes)");
        long_value[1023] = '\0';
        CHECK(sf_config_set(&c, "compute.model", long_value, &err) == SF_OK, "1023 bytes fit");
    }
    CHECK(sf_config_set(&c, NULL, "1", &err) == SF_ERR_INVALID_ARGUMENT, "NULL key");
}

static void round_trip(const sf_config *in, const char *what)
{
    sf_config out;
    sf_error err;
    FILE *fp = tmpfile();
    if (!fp)
        exit(99);
    CHECK(sf_config_write(in, fp, &err) == SF_OK, "%s: write: %s", what, err.message);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n)
        exit(99);
    buf[n] = '\0';
    fclose(fp);
    sf_config_init(&out);
    /* start from other values so every key must be read back */
    out.image_size = 3;
    out.n_scales = 1;
    out.kmeans_seed = 77;
    CHECK(sf_config_load_buffer(&out, buf, (size_t)n, "written.yaml", &err) == SF_OK,
          "%s: load: %s", what, err.message);
    CHECK(cfg_equal(in, &out), "%s: round trip differs:\n%s", what, buf);
    free(buf);
}

static void test_write(void)
{
    sf_config c;
    sf_error err;
    sf_config_init(&c);
    round_trip(&c, "defaults");

    c.image_size = 65536;
    c.mean[0] = 0.1f;
    c.mean[1] = -3.4028235e38f;
    c.mean[2] = 1e-45f;
    c.std[0] = 1.17549435e-38f;
    c.n_scales = 16;
    for (int i = 0; i < 16; i++)
        c.scales[i] = 0.1 * (i + 1) + 1e-13;
    c.scales[15] = 16;
    c.autorotate = 0;
    c.max_pixels = UINT64_MAX;
    c.max_bytes = 1;
    c.max_memory = 0;
    c.features_num = 1000000;
    c.global = 1;
    strcpy(c.backend, "cpu");
    c.threads = 1024;
    strcpy(c.model, "d\xC3\xA9j\xC3\xA0 \"vu\" \\ \t\n\r\x01\x7F\xC2\x85\xC2\xA0\xE2\x80\xA8\xEF\xBB\xBF"
                    "\xEF\xBF\xBE\xF0\x9F\x98\x80 # not a comment: [x] &y *z !w");
    c.codebook_size = 16777216;
    c.kmeans_iterations = 10000;
    c.kmeans_seed = 12345678901234567ull;
    c.ma_database = 64;
    c.ma_query = 1;
    c.binary = 0;
    c.alpha = 0.1 + 0.2;
    c.threshold = -1;
    c.idf = 1;
    round_trip(&c, "every key changed");
    c.alpha = 4.9e-324;
    c.threshold = -0.0;
    round_trip(&c, "tiny");

    /* What YAML cannot hold is refused before anything is written. */
    strcpy(c.model, "bad \xFF byte");
    FILE *fp = tmpfile();
    if (!fp)
        exit(99);
    CHECK(sf_config_write(&c, fp, &err) == SF_ERR_UNSUPPORTED, "invalid UTF-8");
    CHECK(strstr(err.message, "compute.model") != NULL, "%s", err.message);
    CHECK(ftell(fp) == 0, "partial output");
    c.model[0] = '\0';
    c.n_scales = 17;
    CHECK(sf_config_write(&c, fp, &err) == SF_ERR_INVALID_ARGUMENT, "n_scales 17");
    sf_config_init(&c);
    c.image_size = -1;
    CHECK(sf_config_write(&c, fp, &err) == SF_ERR_INVALID_ARGUMENT &&
              strcmp(err.message, "image.size: -1 is out of range (0..65536)") == 0,
          "invalid int: %s", err.message);
    sf_config_init(&c);
    c.alpha = NAN;
    CHECK(sf_config_write(&c, fp, &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "asmk.alpha: ") == err.message, "NaN: %s", err.message);
    sf_config_init(&c);
    c.idf = 2;
    CHECK(sf_config_write(&c, fp, &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "asmk.idf: ") == err.message, "bool 2: %s", err.message);
    sf_config_init(&c);
    c.n_scales = 0;
    CHECK(sf_config_write(&c, fp, &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "image.scales: ") == err.message, "no scales: %s", err.message);
    CHECK(ftell(fp) == 0, "partial output");
    fclose(fp);

    /* The written file names each key's meaning. */
    sf_config_init(&c);
    fp = tmpfile();
    if (!fp)
        exit(99);
    sf_config_write(&c, fp, &err);
    rewind(fp);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = '\0';
    fclose(fp);
    CHECK(strstr(text, "\nimage:\n  # long side") != NULL, "comment per key:\n%s", text);
    CHECK(strstr(text, "  scales: [2.0, 1.414, 1.0, 0.707, 0.5, 0.353, 0.25]\n") != NULL,
          "short numbers:\n%s", text);
    CHECK(strstr(text, "  size: 0\n") && strstr(text, "  model: \"\"\n"), "%s", text);
}

int main(void)
{
    test_defaults();
    test_use_model();
    test_example_and_docs();
    test_valid_documents();
    test_load_errors();
    test_files();
    test_set();
    test_write();
    return tu_finish("test_config");
}
