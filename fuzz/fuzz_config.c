/* libFuzzer target for the YAML settings loader: any bytes must give
 * SF_OK or an error with a one-line message, never a crash, a leak, or a
 * config changed by a failed load. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sf_config cfg, before;
    sf_error err;
    sf_config_init(&cfg);
    memcpy(&before, &cfg, sizeof cfg);
    sf_status st = sf_config_load_buffer(&cfg, (const char *)data, size, "fuzz.yaml", &err);
    if (st != SF_OK) {
        if (st != SF_ERR_CONFIG && st != SF_ERR_NOMEM)
            abort();
        if (err.message[0] == '\0' || strchr(err.message, '\n'))
            abort();
        if (memcmp(&cfg, &before, sizeof cfg) != 0)
            abort();
        return 0;
    }
    /* What loaded must write out and load back the same. */
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    if (!fp)
        return 0;
    st = sf_config_write(&cfg, fp, &err);
    fclose(fp);
    /* Whatever loads is valid, so it can always be written. */
    if (st != SF_OK && st != SF_ERR_NOMEM && st != SF_ERR_IO)
        abort();
    if (st == SF_OK) {
        sf_config again;
        sf_config_init(&again);
        if (sf_config_load_buffer(&again, text, len, "written.yaml", &err) != SF_OK)
            abort();
        if (sf_config_write(&again, NULL, &err) != SF_ERR_INVALID_ARGUMENT)
            abort();
        char *text2 = NULL;
        size_t len2 = 0;
        fp = open_memstream(&text2, &len2);
        if (fp) {
            sf_config_write(&again, fp, &err);
            fclose(fp);
            if (len2 != len || memcmp(text, text2, len) != 0)
                abort();
            free(text2);
        }
    }
    free(text);
    return 0;
}
