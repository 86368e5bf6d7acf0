/* fastnn's own threads, included through _engine.pyx: a team of threads that runs one
 * job (an epoch of training steps) together, taking the items of its phases of work
 * (below), and the control of BLAS's threads while it does.
 *
 *   - The helpers of every team in the process come from one budget: the CPUs the
 *     process may use, less one (the calling thread is the user's), so teams started
 *     from many threads at once never add up to more threads than cores; a team that
 *     finds the budget spent runs with fewer helpers, down to none. Helpers outlive
 *     their teams, asleep in between (a fork's child starts without them).
 *   - BLAS (scipy's OpenBLAS, which fastnn's products call) runs on one thread while any
 *     team whose job calls BLAS runs: the team's threads are the parallelism (a job
 *     that calls none leaves BLAS's limit alone). Its limit before the first
 *     team (what OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or threadpoolctl set) is put back
 *     when the last team ends, and is what fnn_blas_limit() reports meanwhile.
 *
 * POSIX threads; on other systems every team runs on the calling thread alone.
 */
#ifndef FASTNN_TEAM_H
#define FASTNN_TEAM_H

#include <stddef.h>

#if defined(__unix__) || defined(__APPLE__)
#define FNN_THREADS 1
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#endif

/* ------------------------------------------------------------------ waiting */

/* One look of a wait: spin (the members of a team are busy with short steps),
 * yielding the CPU after a while so that an oversubscribed machine still makes
 * progress, and on a long wait (signal handlers, a slow reader) sleeping between
 * looks. */
static void fnn_wait_a_little(unsigned* spins) {
#ifdef FNN_THREADS
    if (++*spins < 20000) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else if (*spins < 21000) {
        sched_yield();
    } else {
        struct timespec nap = {0, 100000};
        nanosleep(&nap, NULL);
        *spins = 20999;
    }
#else
    (void) spins;
#endif
}

/* ------------------------------------------------------------------ work items */

/* A phase of work is a number of items that any member of the team may take, one at
 * a time, in any order: the member that publishes it takes items too and then waits
 * until all are done, so that a member the system has descheduled holds up at most
 * the item it took, never the others (a barrier waited for each member's whole
 * share). The ticket holds the phase's generation (its high 32 bits), its item count
 * (16 bits) and the next item to take (the low 16 bits). */

/* Publish phase gen of count items (after writing whatever describes it). */
static void fnn_publish(unsigned long long* ticket, unsigned long long gen, long count) {
    __atomic_store_n(ticket, (gen << 32) | ((unsigned long long) count << 16),
                     __ATOMIC_RELEASE);
}

/* The next item of the published phase, its generation into *gen; -1 (and the
 * generation) when every item of it has been taken. */
static long fnn_take(unsigned long long* ticket, unsigned long long* gen) {
    unsigned long long t = __atomic_load_n(ticket, __ATOMIC_ACQUIRE);
    for (;;) {
        *gen = t >> 32;
        if ((t & 0xffff) >= ((t >> 16) & 0xffff))
            return -1;
        if (__atomic_compare_exchange_n(ticket, &t, t + 1, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return (long) (t & 0xffff);
    }
}

/* An item of a phase is done: count it. */
static void fnn_item_done(long* done) { __atomic_add_fetch(done, 1, __ATOMIC_RELEASE); }

/* Wait until *done counts count items. */
static void fnn_wait_done(long* done, long count) {
    for (unsigned spins = 0; __atomic_load_n(done, __ATOMIC_ACQUIRE) < count;)
        fnn_wait_a_little(&spins);
}

/* Wait until a phase after generation gen is published; its generation. */
static unsigned long long fnn_wait_phase(unsigned long long* ticket,
                                         unsigned long long gen) {
    unsigned long long t;
    for (unsigned spins = 0; (t = __atomic_load_n(ticket, __ATOMIC_ACQUIRE)) >> 32 <= gen;)
        fnn_wait_a_little(&spins);
    return t >> 32;
}

/* ------------------------------------------------------------------ shared lines */

/* Drops the cache lines of [start, start + nbytes) from every core's caches (x86's
 * clflush; elsewhere nothing), before a member rewrites values that the other members
 * have read: a store to a line that another core also holds waits for that copy's
 * invalidation, one line after another (about 70 ns a line on the AMD EPYC VM), where
 * the flushes overlap and the rewrite then reads the lines from memory as a stream.
 * Only speed depends on it: the lines' values are kept (written back if modified). */
static void fnn_evict(const void* start, size_t nbytes) {
#if defined(__GNUC__) && (defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__)))
    const char* line = (const char*) ((size_t) start & ~(size_t) 63);
    const char* end = (const char*) start + nbytes;
    for (; nbytes > 0 && line < end; line += 64)  /* (an empty range: no line) */
        __builtin_ia32_clflush(line);
#else
    (void) start;
    (void) nbytes;
#endif
}

/* ------------------------------------------------------------------ budget */

#ifdef FNN_THREADS
static pthread_mutex_t fnn_team_lock = PTHREAD_MUTEX_INITIALIZER;
#define FNN_LOCK() pthread_mutex_lock(&fnn_team_lock)
#define FNN_UNLOCK() pthread_mutex_unlock(&fnn_team_lock)
#else
#define FNN_LOCK()
#define FNN_UNLOCK()
#endif
static int fnn_helpers_busy = 0;

/* The CPUs this process may use (its affinity mask on Linux). */
static int fnn_cpu_count(void) {
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
#ifdef FNN_THREADS
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int) n : 1;
#else
    return 1;
#endif
}

/* ------------------------------------------------------------------ BLAS threads */

typedef void (*fnn_set_threads_fn)(int);
typedef int (*fnn_get_threads_fn)(void);
static fnn_set_threads_fn fnn_blas_set = NULL;
static fnn_get_threads_fn fnn_blas_get = NULL;
static int fnn_blas_users = 0, fnn_blas_saved = 0;
static int fnn_blas_restore = 0;  /* a fork's child: put back fnn_blas_saved first */
static int fnn_fork_handled = 0;

#ifdef FNN_THREADS
struct fnn_helper;
static struct fnn_helper* fnn_idle;

/* Forks: the lock is held across them, and a child, which has none of the parent's
 * threads, starts without helpers or running teams (BLAS's limit to be put back). */
static void fnn_fork_prepare(void) { FNN_LOCK(); }
static void fnn_fork_parent(void) { FNN_UNLOCK(); }
static void fnn_fork_child(void) {
    fnn_idle = NULL;
    fnn_helpers_busy = 0;
    fnn_blas_restore = fnn_blas_users > 0;
    fnn_blas_users = 0;
    FNN_UNLOCK();
}
#endif

/* Finds the thread controls of the OpenBLAS that the shared library holding
 * blas_function (scipy's cython_blas) is linked to; without them (another BLAS),
 * fastnn leaves BLAS's threads alone. Called once, at import. */
static void fnn_blas_find(const void* blas_function) {
#ifdef FNN_THREADS
    static const char* names[][2] = {
        {"scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"},
        {"scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"},
        {"openblas_set_num_threads", "openblas_get_num_threads"},
        {"openblas_set_num_threads64_", "openblas_get_num_threads64_"}};
    Dl_info info;
    void* library;
    fnn_fork_handled = pthread_atfork(fnn_fork_prepare, fnn_fork_parent,
                                      fnn_fork_child) == 0;
    if (!dladdr(blas_function, &info) || info.dli_fname == NULL) return;
    library = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);  /* already loaded */
    if (library == NULL) return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        void* set = dlsym(library, names[i][0]);  /* searches its dependencies too */
        void* get = dlsym(library, names[i][1]);
        if (set != NULL && get != NULL) {
            fnn_blas_set = (fnn_set_threads_fn) set;
            fnn_blas_get = (fnn_get_threads_fn) get;
            return;
        }
    }
#else
    (void) blas_function;
#endif
}

/* BLAS's thread limit as the caller set it (while teams run, the one they put back
 * at the end); 0 when fastnn cannot see BLAS's threads. */
/* (lock held) a fork's child puts back the limit its parent's teams held at one */
static void fnn_blas_settle(void) {
    if (fnn_blas_restore && fnn_blas_users == 0) {
        fnn_blas_restore = 0;
        if (fnn_blas_saved != 1) fnn_blas_set(fnn_blas_saved);
    }
}

static int fnn_blas_limit(void) {
    int limit;
    if (fnn_blas_get == NULL) return 0;
    FNN_LOCK();
    fnn_blas_settle();
    limit = fnn_blas_users > 0 ? fnn_blas_saved : fnn_blas_get();
    FNN_UNLOCK();
    return limit;
}

static void fnn_blas_single_begin(void) {
    if (fnn_blas_get == NULL) return;
    FNN_LOCK();
    fnn_blas_settle();
    if (fnn_blas_users++ == 0) {
        fnn_blas_saved = fnn_blas_get();
        if (fnn_blas_saved != 1) fnn_blas_set(1);
    }
    FNN_UNLOCK();
}

static void fnn_blas_single_end(void) {
    if (fnn_blas_get == NULL) return;
    FNN_LOCK();
    if (--fnn_blas_users == 0 && fnn_blas_saved != 1) fnn_blas_set(fnn_blas_saved);
    FNN_UNLOCK();
}

/* ------------------------------------------------------------------ team */

/* job(context, member, members): member 0 is the calling thread */
typedef void (*fnn_job)(void* context, int member, int members);

/* A helper's part in one team: set by the caller, read by the helper until it sets
 * finished, its last touch. */
typedef struct {
    fnn_job job;
    void* context;
    int member;
    int* members;  /* set, and then *ready, once the team is complete */
    int* ready;
    int finished;
} fnn_seat;

#define FNN_MAX_TEAM 64

#ifdef FNN_THREADS
/* The helpers outlive their teams: between teams they sleep, each on its own condition,
 * in the idle list, so that a team starts with a wake-up instead of a new thread. */
typedef struct fnn_helper {
    pthread_cond_t wake;
    fnn_seat* seat;  /* the part to play, or NULL while idle */
    struct fnn_helper* next;
} fnn_helper;

static fnn_helper* fnn_idle = NULL;

static void* fnn_helper_main(void* argument) {
    fnn_helper* self = (fnn_helper*) argument;
    FNN_LOCK();
    for (;;) {
        while (self->seat == NULL)
            pthread_cond_wait(&self->wake, &fnn_team_lock);
        fnn_seat* seat = self->seat;
        FNN_UNLOCK();
        while (!__atomic_load_n(seat->ready, __ATOMIC_ACQUIRE)) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        seat->job(seat->context, seat->member, *seat->members);
        FNN_LOCK();
        self->seat = NULL;
        self->next = fnn_idle;
        fnn_idle = self;
        __atomic_store_n(&seat->finished, 1, __ATOMIC_RELEASE);  /* the caller may go */
    }
    return NULL;
}


/* An idle helper given seat, or a new one (lock held); 0 when none can be had. */
static int fnn_hire(fnn_seat* seat) {
    fnn_helper* helper = fnn_idle;
    pthread_t thread;
    if (helper != NULL) {
        fnn_idle = helper->next;
    } else {
        if (!fnn_fork_handled)  /* a fork's child could not forget this thread */
            return 0;
        helper = (fnn_helper*) calloc(1, sizeof(fnn_helper));
        if (helper == NULL || pthread_cond_init(&helper->wake, NULL) != 0) {
            free(helper);
            return 0;
        }
        helper->seat = seat;
        if (pthread_create(&thread, NULL, fnn_helper_main, helper) != 0) {
            pthread_cond_destroy(&helper->wake);
            free(helper);
            return 0;
        }
        pthread_detach(thread);
        return 1;
    }
    helper->seat = seat;
    pthread_cond_signal(&helper->wake);
    return 1;
}
#endif

/* Runs job on the calling thread and up to wanted - 1 helpers (as many as the budget
 * and the system give), with BLAS on one thread when the job calls BLAS (blas: a job
 * that does not is spared the lock); returns when all are done. The job learns how
 * many members there are; what it computes must not depend on that. */
static void fnn_team_run(int wanted, fnn_job job, void* context, int blas) {
    int members = 1, ready = 0;
    if (blas) fnn_blas_single_begin();
#ifdef FNN_THREADS
    fnn_seat seats[FNN_MAX_TEAM];
    int helpers = 0;
    if (wanted > FNN_MAX_TEAM) wanted = FNN_MAX_TEAM;
    if (wanted > 1) {
        FNN_LOCK();
        helpers = fnn_cpu_count() - 1 - fnn_helpers_busy;
        if (helpers > wanted - 1) helpers = wanted - 1;
        for (; members - 1 < helpers; members++) {
            seats[members - 1] = (fnn_seat) {job, context, members, &members, &ready, 0};
            if (!fnn_hire(&seats[members - 1])) break;
        }
        fnn_helpers_busy += members - 1;
        FNN_UNLOCK();
    }
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    job(context, 0, members);
    for (int i = 0; i < members - 1; i++) {
        for (unsigned spins = 0; !__atomic_load_n(&seats[i].finished, __ATOMIC_ACQUIRE);)
            if (++spins > 1000) sched_yield();
    }
    if (members > 1) {  /* (a team of one took no lock: a tiny step is one run) */
        FNN_LOCK();
        fnn_helpers_busy -= members - 1;
        FNN_UNLOCK();
    }
#else
    (void) wanted;
    job(context, 0, members);
#endif
    if (blas) fnn_blas_single_end();
}

#endif
