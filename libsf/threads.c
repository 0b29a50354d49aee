/* libsf's own worker threads. */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "sf_internal.h"

int sf_threads_resolve(int requested)
{
    if (requested > 0)
        return requested < 1024 ? requested : 1024;
    long n = 0;
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
#endif
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < 1024 ? n : 1024) : 1;
}

typedef struct thread_arg {
    void (*fn)(void *ctx, size_t index);
    void *ctx;
    size_t index;
    pthread_t thread;
} thread_arg;

static void *thread_main(void *arg)
{
    thread_arg *a = arg;
    a->fn(a->ctx, a->index);
    return NULL;
}

void sf_threads_run(size_t count, void (*fn)(void *ctx, size_t index), void *ctx)
{
    if (count == 0)
        return;
    thread_arg *a = count > 1 ? calloc(count, sizeof *a) : NULL;
    size_t started = 1;
    for (; a && started < count; started++) {
        a[started] = (thread_arg){ fn, ctx, started, 0 };
        if (pthread_create(&a[started].thread, NULL, thread_main, &a[started]) != 0)
            break;
    }
    fn(ctx, 0);
    for (size_t i = started; i < count; i++)
        fn(ctx, i);
    for (size_t i = 1; a && i < started; i++)
        pthread_join(a[i].thread, NULL);
    free(a);
}
