/*
 * BACKEND_MEMORY_LIMIT for TensorFlow, in the first object of TensorFlow's link namespace
 * (linked into the threads shim: see threads_shim.c and src/ffi/namespace.rs). Ahead of
 * the namespace's libc in its global scope, it interposes malloc, calloc, realloc, free,
 * posix_memalign, aligned_alloc, memalign, valloc and pvalloc for everything loaded there
 * (TensorFlow, its libstdc++'s operator new, protobuf, Eigen, oneDNN), and counts the
 * bytes they hold (malloc_usable_size of each block, at allocation and at free).
 *
 * The limit is enforced on posix_memalign and memalign only: posix_memalign is what
 * TensorFlow's CPU allocator (tsl::port::AlignedMalloc) calls for every tensor buffer
 * (weights of Const nodes, inputs, intermediate values, outputs), and TensorFlow handles
 * its failure: the kernel's allocate_output gets a null buffer and the run fails with
 * "OOM when allocating tensor ...". A failed malloc, calloc, realloc or aligned_alloc
 * would reach operator new (libstdc++'s aligned new calls aligned_alloc), which throws
 * std::bad_alloc through code built without exceptions in mind: the process would abort.
 * So those are counted, never refused.
 *
 * Not seen: what the namespace's libc allocates for itself (strdup, fopen...: internal
 * calls do not go through these symbols) and what the dynamic loader allocates (the
 * host's malloc). A block libc allocated internally and TensorFlow frees here is
 * subtracted without having been added: the count is clamped at zero when read.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_fn)(size_t, size_t);
typedef size_t (*usable_fn)(void *);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static posix_memalign_fn real_posix_memalign;
static aligned_fn real_aligned_alloc;
static aligned_fn real_memalign;
static malloc_fn real_valloc;
static malloc_fn real_pvalloc;
static usable_fn real_usable;

static _Atomic long long held;
static _Atomic unsigned long long peak;
static _Atomic unsigned long long limit;
static _Atomic unsigned long long refused;

/* Allocations made while the real functions are being looked up (dlsym may allocate):
 * served from here, never freed. */
static char bootstrap[16384] __attribute__((aligned(16)));
static _Atomic size_t bootstrap_used;
static _Atomic int resolving;

static int in_bootstrap(const void *p) {
    return (const char *)p >= bootstrap && (const char *)p < bootstrap + sizeof bootstrap;
}

static void *bootstrap_alloc(size_t size) {
    size = (size + 15) & ~(size_t)15;
    size_t at = atomic_fetch_add(&bootstrap_used, size);
    if (at + size > sizeof bootstrap) {
        return NULL;
    }
    return bootstrap + at;
}

static void resolve_memory(void) {
    if (real_usable) {
        return;
    }
    atomic_store(&resolving, 1);
    real_malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
    real_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
    real_realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
    real_free = (free_fn)dlsym(RTLD_NEXT, "free");
    real_posix_memalign = (posix_memalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (aligned_fn)dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = (aligned_fn)dlsym(RTLD_NEXT, "memalign");
    real_valloc = (malloc_fn)dlsym(RTLD_NEXT, "valloc");
    real_pvalloc = (malloc_fn)dlsym(RTLD_NEXT, "pvalloc");
    real_usable = (usable_fn)dlsym(RTLD_NEXT, "malloc_usable_size");
    atomic_store(&resolving, 0);
}

__attribute__((constructor)) static void resolve_memory_at_load(void) { resolve_memory(); }

static int ready(void) {
    if (!real_usable && !atomic_load(&resolving)) {
        resolve_memory();
    }
    return real_malloc && real_calloc && real_realloc && real_free && real_usable;
}

static void *counted(void *p) {
    if (p) {
        long long size = (long long)real_usable(p);
        long long now = atomic_fetch_add(&held, size) + size;
        unsigned long long seen = atomic_load(&peak);
        while (now > 0 && (unsigned long long)now > seen &&
               !atomic_compare_exchange_weak(&peak, &seen, (unsigned long long)now)) {
        }
    }
    return p;
}

static void uncount(void *p) {
    if (p) {
        atomic_fetch_sub(&held, (long long)real_usable(p));
    }
}

/* Whether `size` more bytes would pass the limit. */
static int over_limit(size_t size) {
    unsigned long long bound = atomic_load(&limit);
    if (bound == 0) {
        return 0;
    }
    long long now = atomic_load(&held);
    unsigned long long base = now > 0 ? (unsigned long long)now : 0;
    if (base + size > bound || base + size < base) {
        atomic_fetch_add(&refused, 1);
        return 1;
    }
    return 0;
}

EXPORT void *malloc(size_t size) {
    if (!ready()) {
        return bootstrap_alloc(size);
    }
    return counted(real_malloc(size));
}

EXPORT void *calloc(size_t n, size_t size) {
    if (!ready()) {
        return bootstrap_alloc(n * size); /* zeroed: static storage, never reused */
    }
    return counted(real_calloc(n, size));
}

EXPORT void free(void *p) {
    if (p == NULL || in_bootstrap(p)) {
        return;
    }
    if (!ready()) {
        return; /* cannot happen: nothing was allocated by the real malloc yet */
    }
    uncount(p);
    real_free(p);
}

EXPORT void *realloc(void *p, size_t size) {
    if (!ready()) {
        return bootstrap_alloc(size);
    }
    if (p && in_bootstrap(p)) {
        void *moved = malloc(size);
        if (moved) {
            size_t room = (size_t)(bootstrap + sizeof bootstrap - (char *)p);
            memcpy(moved, p, size < room ? size : room);
        }
        return moved;
    }
    size_t before = p ? real_usable(p) : 0;
    void *moved = real_realloc(p, size);
    if (moved) {
        atomic_fetch_sub(&held, (long long)before);
        counted(moved);
    } else if (size == 0 && p) {
        atomic_fetch_sub(&held, (long long)before); /* realloc(p, 0) freed p */
    }
    return moved;
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
    if (!ready() || !real_posix_memalign) {
        return ENOMEM;
    }
    if (over_limit(size)) {
        return ENOMEM;
    }
    int result = real_posix_memalign(out, alignment, size);
    if (result == 0) {
        counted(*out);
    }
    return result;
}

EXPORT void *aligned_alloc(size_t alignment, size_t size) {
    if (!ready() || !real_aligned_alloc) {
        errno = ENOMEM;
        return NULL;
    }
    return counted(real_aligned_alloc(alignment, size));
}

EXPORT void *memalign(size_t alignment, size_t size) {
    if (!ready() || !real_memalign || over_limit(size)) {
        errno = ENOMEM;
        return NULL;
    }
    return counted(real_memalign(alignment, size));
}

EXPORT void *valloc(size_t size) {
    if (!ready() || !real_valloc) {
        errno = ENOMEM;
        return NULL;
    }
    return counted(real_valloc(size));
}

EXPORT void *pvalloc(size_t size) {
    if (!ready() || !real_pvalloc) {
        errno = ENOMEM;
        return NULL;
    }
    return counted(real_pvalloc(size));
}

/* Whether the real functions were found (the plugin checks it before trusting counts). */
EXPORT int redisai_tf_memory_ready(void) { return ready(); }

/* Sets the limit in bytes (0: none), enforced on aligned allocations from now on. */
EXPORT void redisai_tf_memory_set_limit(unsigned long long bytes) {
    atomic_store(&limit, bytes);
}

/* Bytes held now (clamped at 0), the peak, the limit and how many allocations the limit
 * refused. */
EXPORT void redisai_tf_memory_stats(unsigned long long *held_out, unsigned long long *peak_out,
                                    unsigned long long *limit_out,
                                    unsigned long long *refused_out) {
    long long now = atomic_load(&held);
    *held_out = now > 0 ? (unsigned long long)now : 0;
    *peak_out = atomic_load(&peak);
    *limit_out = atomic_load(&limit);
    *refused_out = atomic_load(&refused);
}
