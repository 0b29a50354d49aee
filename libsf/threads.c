/* Thread counts for libsf's own worker threads. */
#include "config.h"

#include <unistd.h>

#include "sf_internal.h"

/* oneDNN runs its sgemm on OpenMP here (libgomp comes with libdnnl).
 * Weak: a oneDNN on another runtime leaves them NULL and nothing is set. */
extern void omp_set_num_threads(int n) __attribute__((weak));
extern int omp_get_max_threads(void) __attribute__((weak));

int sf_online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < 1024 ? n : 1024) : 1;
}

int sf_sgemm_single_begin(void)
{
    int prev = omp_get_max_threads && omp_set_num_threads ? omp_get_max_threads() : 0;
    if (prev > 1)
        omp_set_num_threads(1);
    return prev;
}

void sf_sgemm_single_end(int prev)
{
    if (prev > 1)
        omp_set_num_threads(prev); /* matters for the caller's own thread */
}
