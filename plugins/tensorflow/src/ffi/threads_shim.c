/*
 * The first object of TensorFlow's link namespace (see src/ffi/namespace.rs, "Thread
 * stacks"): it interposes pthread_create, pthread_join (and its try/timed/clock variants)
 * and pthread_detach for everything loaded in the namespace after it, so that every thread
 * made there runs on a stack this file maps itself (pthread_attr_setstack).
 *
 * Why: glibc keeps the stacks of ended threads in a cache shared by every libc of the
 * process, and a pthread_create that takes a cached stack frees the dynamic TLS blocks the
 * previous thread left in it with its own libc's free. Those blocks come from the dynamic
 * loader's malloc, the host's: the namespace's libc must never take a cached stack. glibc
 * never caches a user-provided stack (the thread's TLS is freed through the loader's free
 * when the thread is joined), and never hands one out.
 *
 * Threads are kept joinable underneath: a stack may be unmapped only once the kernel is
 * done with it, which a successful join tells. A thread created detached, or detached
 * later, is joined here (pthread_tryjoin_np) at a later create or detach, once it has
 * ended. A stack the caller provides itself is left alone.
 *
 * Built by build.rs, embedded in the plugin and opened from a memfd.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int (*join_fn)(pthread_t, void **);
typedef int (*timedjoin_fn)(pthread_t, void **, const struct timespec *);
typedef int (*clockjoin_fn)(pthread_t, void **, clockid_t, const struct timespec *);
typedef int (*detach_fn)(pthread_t);

static create_fn real_create;
static join_fn real_join;
static join_fn real_tryjoin;
static timedjoin_fn real_timedjoin;
static clockjoin_fn real_clockjoin;
static detach_fn real_detach;

/* A thread made here: its mapping (guard page and stack) and whether it is to be joined
 * here once it ends. */
struct entry {
    pthread_t thread;
    void *map;
    size_t map_size;
    int reap;
    struct entry *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *threads;
static unsigned long long made, unmapped;

__attribute__((constructor)) static void resolve(void) {
    real_create = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    real_join = (join_fn)dlsym(RTLD_NEXT, "pthread_join");
    real_tryjoin = (join_fn)dlsym(RTLD_NEXT, "pthread_tryjoin_np");
    real_timedjoin = (timedjoin_fn)dlsym(RTLD_NEXT, "pthread_timedjoin_np");
    real_clockjoin = (clockjoin_fn)dlsym(RTLD_NEXT, "pthread_clockjoin_np");
    real_detach = (detach_fn)dlsym(RTLD_NEXT, "pthread_detach");
}

/* Whether every function was found (the plugin checks it before trusting the shim). */
EXPORT int redisai_tf_threads_ready(void) {
    return real_create && real_join && real_tryjoin && real_timedjoin && real_detach;
}

/* Threads made here, and mappings unmapped after their thread was joined. */
EXPORT void redisai_tf_threads_counts(unsigned long long *made_out,
                                      unsigned long long *unmapped_out) {
    pthread_mutex_lock(&lock);
    *made_out = made;
    *unmapped_out = unmapped;
    pthread_mutex_unlock(&lock);
}

/* Unlinks the entry of `thread` (NULL when it is not one of ours). Call with the lock. */
static struct entry *take(pthread_t thread) {
    for (struct entry **at = &threads; *at; at = &(*at)->next) {
        if (pthread_equal((*at)->thread, thread)) {
            struct entry *found = *at;
            *at = found->next;
            return found;
        }
    }
    return NULL;
}

static void release(struct entry *entry) {
    if (entry) {
        munmap(entry->map, entry->map_size);
        pthread_mutex_lock(&lock);
        unmapped++;
        pthread_mutex_unlock(&lock);
        free(entry);
    }
}

/* Joins the threads to be reaped that have ended, and unmaps their stacks. */
static void reap(void) {
    struct entry *done = NULL;
    pthread_mutex_lock(&lock);
    for (struct entry **at = &threads; *at;) {
        struct entry *entry = *at;
        if (entry->reap && real_tryjoin(entry->thread, NULL) == 0) {
            *at = entry->next;
            entry->next = done;
            done = entry;
        } else {
            at = &entry->next;
        }
    }
    pthread_mutex_unlock(&lock);
    while (done) {
        struct entry *next = done->next;
        release(done);
        done = next;
    }
}

/* After a successful join of `thread`: its stack is free. */
static int joined(int result, pthread_t thread) {
    if (result == 0) {
        pthread_mutex_lock(&lock);
        struct entry *entry = take(thread);
        pthread_mutex_unlock(&lock);
        release(entry);
    }
    return result;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int has_own_stack(const pthread_attr_t *attr) {
    void *address = NULL;
    return attr && pthread_attr_getstackaddr(attr, &address) == 0 && address != NULL;
}
#pragma GCC diagnostic pop

EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start)(void *), void *arg) {
    if (!real_create) {
        return EAGAIN;
    }
    if (has_own_stack(attr)) {
        return real_create(thread, attr, start, arg);
    }
    reap();
    /* A shallow copy of the caller's attributes: only fields stored in the object itself
     * are changed (stack, detach state), and the copy is never destroyed, so what the
     * caller's object points to (CPU set, signal mask) is shared, read-only. */
    pthread_attr_t local;
    int own_attr = attr == NULL;
    if (own_attr) {
        if (pthread_attr_init(&local) != 0) {
            return EAGAIN;
        }
    } else {
        memcpy(&local, attr, sizeof local);
    }
    size_t size = 0, guard = 0;
    int detach = PTHREAD_CREATE_JOINABLE;
    pthread_attr_getstacksize(&local, &size); /* the namespace's default when unset */
    pthread_attr_getguardsize(&local, &guard);
    pthread_attr_getdetachstate(&local, &detach);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size < (size_t)PTHREAD_STACK_MIN) {
        size = PTHREAD_STACK_MIN;
    }
    size = (size + page - 1) & ~(page - 1);
    guard = guard < page ? page : (guard + page - 1) & ~(page - 1);
    int result = EAGAIN;
    void *map = mmap(NULL, size + guard, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    struct entry *entry = malloc(sizeof *entry);
    if (map == MAP_FAILED || entry == NULL || mprotect(map, guard, PROT_NONE) != 0 ||
        pthread_attr_setstack(&local, (char *)map + guard, size) != 0 ||
        pthread_attr_setdetachstate(&local, PTHREAD_CREATE_JOINABLE) != 0) {
        goto fail;
    }
    /* Held across the create: the new thread may detach itself at once, and its entry
     * must be there when it does. */
    pthread_mutex_lock(&lock);
    result = real_create(thread, &local, start, arg);
    if (result == 0) {
        entry->thread = *thread;
        entry->map = map;
        entry->map_size = size + guard;
        entry->reap = detach == PTHREAD_CREATE_DETACHED;
        entry->next = threads;
        threads = entry;
        made++;
    }
    pthread_mutex_unlock(&lock);
    if (result == 0) {
        if (own_attr) {
            pthread_attr_destroy(&local);
        }
        return 0;
    }
fail:
    if (map != MAP_FAILED) {
        munmap(map, size + guard);
    }
    free(entry);
    if (own_attr) {
        pthread_attr_destroy(&local);
    }
    return result;
}

EXPORT int pthread_detach(pthread_t thread) {
    if (!real_detach) {
        return EINVAL;
    }
    pthread_mutex_lock(&lock);
    int ours = 0;
    for (struct entry *entry = threads; entry; entry = entry->next) {
        if (pthread_equal(entry->thread, thread)) {
            entry->reap = 1;
            ours = 1;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    if (!ours) {
        return real_detach(thread);
    }
    reap();
    return 0;
}

EXPORT int pthread_join(pthread_t thread, void **value) {
    return joined(real_join(thread, value), thread);
}

EXPORT int pthread_tryjoin_np(pthread_t thread, void **value) {
    return joined(real_tryjoin(thread, value), thread);
}

EXPORT int pthread_timedjoin_np(pthread_t thread, void **value, const struct timespec *at) {
    return joined(real_timedjoin(thread, value, at), thread);
}

EXPORT int pthread_clockjoin_np(pthread_t thread, void **value, clockid_t clock,
                                const struct timespec *at) {
    if (!real_clockjoin) {
        return ENOSYS;
    }
    return joined(real_clockjoin(thread, value, clock, at), thread);
}
