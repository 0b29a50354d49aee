/* Progress on long work: one line on stderr, redrawn in place on a
 * terminal, or whole lines at an interval when asked for off one (a job
 * scheduler's log).  One report at a time per process; messages printed
 * meanwhile (sf_cli_error and friends) clear the line first and draw it
 * again after, so the two never share a line. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define TTY_INTERVAL 0.2   /* seconds between redraws on a terminal */
#define LINE_INTERVAL 10.0 /* seconds between lines off a terminal */

static struct {
    int active;
    int tty;   /* redraw in place; else whole lines */
    int shown; /* a line is on the terminal now */
    int dumb;  /* TERM=dumb (an editor's shell): spaces clear, not escapes */
    size_t width; /* of the line on the terminal */
    const char *prog, *label, *unit;
    uint64_t total, bytes_total; /* 0: unknown */
    uint64_t done, bytes_done;
    double interval, t0, last_draw;
} P;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sf_cli_progress_wanted(const sf_cli *cli, int input_is_pipe)
{
    if (!cli->reports_progress)
        return 0;
    if (cli->progress_mode == SF_CLI_PROGRESS_ON)
        return 1;
    if (cli->progress_mode == SF_CLI_PROGRESS_OFF || cli->verbosity < 1)
        return 0;
    /* In a pipeline, the program at its head reports for all: the others
     * would fight over one terminal line. */
    return !input_is_pipe && isatty(STDERR_FILENO);
}

/* "1:05", "2:03:04", "3d 04h". */
static void put_duration(char *buf, size_t size, double s)
{
    if (!(s >= 0))
        s = 0;
    if (s > 3.6e9)
        s = 3.6e9; /* a century or so: "41666d 16h" */
    if (s > 359999) {
        unsigned long h = (unsigned long)(s / 3600);
        snprintf(buf, size, "%lud %02luh", h / 24, h % 24);
        return;
    }
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%lu:%02lu", t / 60, t % 60);
}

/* The line, without its end; final: the closing line of a log. */
static size_t format_line(char *buf, size_t size, double t, int final)
{
    double elapsed = t - P.t0;
    size_t n = 0;
#define PUT(...)                                                                 \
    do {                                                                         \
        int w_ = snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__);       \
        if (w_ > 0)                                                              \
            n += (size_t)w_;                                                     \
    } while (0)
    char d[32];
    PUT("%s: ", P.prog);
    if (!P.unit) {
        /* A step that counts nothing: what it is, and how long it took. */
        PUT("%s", P.label ? P.label : "working");
        if (final) {
            put_duration(d, sizeof d, elapsed);
            PUT(", in %s", d);
        }
        return n < size ? n : size - 1;
    }
    if (P.label)
        PUT("%s ", P.label);
    size_t ul = strlen(P.unit);
    /* The unit without its plural s: "1 image", "2.4 s/image". */
    int singular = (int)(ul > 1 && P.unit[ul - 1] == 's' ? ul - 1 : ul);
    if (P.total)
        PUT("%llu/%llu %s", (unsigned long long)P.done, (unsigned long long)P.total, P.unit);
    else if (P.done == 1)
        PUT("1 %.*s", singular, P.unit);
    else
        PUT("%llu %s", (unsigned long long)P.done, P.unit);
    /* The share done: by count when the total is known, else by bytes. */
    double frac = -1;
    if (P.total)
        frac = (double)P.done / (double)P.total;
    else if (P.bytes_total)
        frac = (double)P.bytes_done / (double)P.bytes_total;
    if (frac > 1)
        frac = 1;
    if (frac >= 0)
        PUT(" (%d%%)", (int)(100 * frac));
    if (P.done > 0 && elapsed > 0) {
        double rate = (double)P.done / elapsed;
        if (rate >= 100)
            PUT(", %.0f/s", rate);
        else if (rate >= 10)
            PUT(", %.1f/s", rate);
        else if (rate >= 1)
            PUT(", %.2f/s", rate);
        else
            PUT(", %.1f s/%.*s", 1 / rate, singular, P.unit);
    }
    if (final) {
        put_duration(d, sizeof d, elapsed);
        PUT(", in %s", d);
    } else if (frac > 0 && elapsed > 0) {
        put_duration(d, sizeof d, elapsed * (1 - frac) / frac);
        PUT(", %s left", d);
    } else if (frac < 0 && P.done > 0) {
        put_duration(d, sizeof d, elapsed);
        PUT(", %s elapsed", d);
    }
#undef PUT
    return n < size ? n : size - 1;
}

static void put_all(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return; /* progress is best effort: never an error of the program */
        s += w;
        n -= (size_t)w;
    }
}

static void draw(double t, int final)
{
    char buf[512];
    size_t n;
    if (P.tty) {
        /* Start of line, the text, then clear what a longer line left.  The
         * text is cut to the terminal's width: a wrapped line cannot be
         * redrawn in place. */
        memcpy(buf, "\r", 1);
        n = 1 + format_line(buf + 1, sizeof buf - 8, t, final);
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && n > ws.ws_col)
            n = ws.ws_col; /* "\r" and ws_col - 1 characters */
        size_t text = n - 1;
        if (!P.dumb) {
            memcpy(buf + n, "\033[K", 3);
            n += 3;
        }
        for (size_t i = text; P.dumb && i < P.width && n < sizeof buf; i++)
            buf[n++] = ' ';
        put_all(buf, n);
        P.width = text;
        P.shown = 1;
    } else {
        n = format_line(buf, sizeof buf - 1, t, final);
        buf[n++] = '\n';
        put_all(buf, n);
    }
    P.last_draw = t;
}

void sf_cli_progress_hide(void)
{
    if (P.shown && !P.dumb) {
        put_all("\r\033[K", 4);
    } else if (P.shown) {
        char blank[512];
        size_t w = P.width < sizeof blank - 2 ? P.width : sizeof blank - 2;
        blank[0] = '\r';
        memset(blank + 1, ' ', w);
        blank[w + 1] = '\r';
        put_all(blank, w + 2);
    }
    P.shown = 0;
    P.width = 0;
}

void sf_cli_progress_show(void)
{
    if (P.active && P.tty)
        draw(now(), 0);
}

static void clear_at_exit(void)
{
    sf_cli_progress_hide();
}

void sf_cli_progress_begin(const sf_cli *cli, int input_is_pipe, const char *label,
                           const char *unit, uint64_t total, uint64_t bytes_total)
{
    static int registered;
    P.active = sf_cli_progress_wanted(cli, input_is_pipe);
    /* A report that follows another on a terminal overwrites its line. */
    if (!P.active || !isatty(STDERR_FILENO))
        sf_cli_progress_hide();
    if (!P.active)
        return;
    if (!registered++)
        atexit(clear_at_exit);
    P.tty = isatty(STDERR_FILENO);
    const char *term = getenv("TERM");
    P.dumb = term && strcmp(term, "dumb") == 0;
    P.prog = cli->prog;
    P.label = label;
    P.unit = unit;
    P.total = total;
    P.bytes_total = bytes_total;
    P.done = P.bytes_done = 0;
    P.interval = cli->progress_interval >= 0 ? cli->progress_interval
                 : P.tty                      ? TTY_INTERVAL
                                              : LINE_INTERVAL;
    P.t0 = now();
    draw(P.t0, 0);
}

void sf_cli_progress_update(uint64_t done, uint64_t bytes_done)
{
    if (!P.active)
        return;
    P.done = done;
    P.bytes_done = bytes_done;
    if (P.total && done > P.total)
        P.total = 0; /* the count ahead was wrong: say only what is known */
    double t = now();
    if (t - P.last_draw >= P.interval)
        draw(t, 0);
}

void sf_cli_progress_end(void)
{
    if (!P.active)
        return;
    if (P.tty)
        sf_cli_progress_hide();
    else
        draw(now(), 1);
    P.active = 0;
}
