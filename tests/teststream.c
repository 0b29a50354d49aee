/* Test streams that pass the programs' checks: see testutil.h. */
#include "config.h"

#include <stdio.h>

#include "sf.h"
#include "testutil.h"

int tu_write_provenance(FILE *fp, const char *key)
{
    const sf_provenance p = { SF_STAGE_LIT, 1, 2, 3, 2, 4 };
    uint64_t fields[SF_PROVENANCE_FIELDS];
    sf_record rec;
    sf_error err;
    sf_provenance_record(&rec, &p, key, fields);
    if (sf_stream_write_record(fp, &rec, &err) != SF_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 99;
    }
    return 0;
}

int tu_close_stream(FILE *fp, uint64_t images)
{
    sf_error err;
    if (sf_stream_write_end(fp, "test", images, &err) != SF_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 99;
    }
    return (fp == stdout ? fflush(fp) : fclose(fp)) == 0 ? 0 : 99;
}
