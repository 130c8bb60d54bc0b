// BACKEND_MEMORY_LIMIT for libtorch: a CPU allocator installed in front of libtorch's
// own (c10::SetAllocator) that counts the bytes of every CPU tensor storage libtorch
// allocates (weights when a model loads, inputs copied in, intermediate values and
// outputs of runs) and refuses an allocation that would take the count past the limit
// by throwing c10::OutOfMemoryError, exactly as libtorch's own allocator does when
// malloc fails: the operator unwinds, every entry point's guarded() turns it into an
// error string, the run fails, and the storages already made are freed as usual.
//
// Not counted: libtorch's small bookkeeping (graph, schemas, IValues: plain new/malloc),
// and on a GPU, CUDA memory (its caching allocator has its own settings).
//
// The storages come from glibc's allocator even where the process's malloc is another
// one. Debian's redis-server links jemalloc, whose `malloc` then serves libtorch too, and
// jemalloc returns allocations over its oversize threshold (8 MiB) to the system when
// they are freed: every run of a model with large intermediate tensors (a batch of
// images, a 512x512 feature map) faults all of their pages in again. glibc keeps freed
// blocks of the sizes a run repeats (its mmap threshold grows to them), which is what
// libtorch is tuned with outside Redis: measured on ResNet-50 and a 512x512 conv net,
// libtorch in a process with jemalloc as its malloc ran at 0.80x and 0.32x of the
// same process with glibc's.

#include "common.h"

#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::atomic<uint64_t> g_limit{0};
std::atomic<uint64_t> g_held{0};
std::atomic<uint64_t> g_peak{0};
// Allocations the limit refused: how the plugin tells a failure of the limit from others.
std::atomic<uint64_t> g_refused{0};
std::atomic<bool> g_installed{false};

// Each counted storage carries its size in a header in front of its data, so that its
// DataPtr's context is the data pointer itself: libtorch's Allocator::raw_allocate and
// is_simple_data_ptr require that (some CPU kernels, e.g. convolutions, allocate their
// buffers through raw_allocate). 64 bytes keep libtorch's 64-byte alignment of the data.
constexpr size_t kHeader = 64;
constexpr size_t kAlignment = 64;

}  // namespace

#ifdef __GLIBC__
// glibc's own entry points, exported beside `malloc` and not replaced by an allocator
// that interposes `malloc` (see the top of this file).
extern "C" void *__libc_memalign(size_t alignment, size_t size);
extern "C" void __libc_free(void *ptr);
#endif

namespace {

void *system_alloc(size_t bytes) {
#ifdef __GLIBC__
    return __libc_memalign(kAlignment, bytes);
#else
    void *p = nullptr;
    return posix_memalign(&p, kAlignment, bytes) == 0 ? p : nullptr;
#endif
}

void system_free(void *p) {
#ifdef __GLIBC__
    __libc_free(p);
#else
    std::free(p);
#endif
}

void release_counted(void *data) {
    char *base = static_cast<char *>(data) - kHeader;
    size_t bytes = 0;
    std::memcpy(&bytes, base, sizeof bytes);
    g_held.fetch_sub(bytes, std::memory_order_relaxed);
    system_free(base);
}

void note_peak(uint64_t now) {
    uint64_t peak = g_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
}

class LimitedCpuAllocator final : public c10::Allocator {
  public:
    c10::DataPtr allocate(size_t n) override {
        uint64_t limit = g_limit.load(std::memory_order_relaxed);
        uint64_t now = g_held.fetch_add(n, std::memory_order_relaxed) + n;
        if (limit != 0 && now > limit) {
            g_held.fetch_sub(n, std::memory_order_relaxed);
            g_refused.fetch_add(1, std::memory_order_relaxed);
            uint64_t held = now - n;
            throw c10::OutOfMemoryError(
                {__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                "TORCH memory limit exceeded: allocating " + std::to_string(n) +
                    " bytes with " + std::to_string(held) +
                    " bytes in use would pass BACKEND_MEMORY_LIMIT (" +
                    std::to_string(limit / 1000000) + " MB)");
        }
        void *base = n > SIZE_MAX - kHeader ? nullptr : system_alloc(n + kHeader);
        if (base == nullptr) {
            g_held.fetch_sub(n, std::memory_order_relaxed);
            throw c10::OutOfMemoryError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                                        "TORCH cannot allocate " + std::to_string(n) + " bytes");
        }
        std::memcpy(base, &n, sizeof n);
        note_peak(now);
        void *data = static_cast<char *>(base) + kHeader;
        return c10::DataPtr(data, data, &release_counted, c10::Device(c10::DeviceType::CPU));
    }

    c10::DeleterFnPtr raw_deleter() const override {
        return &release_counted;
    }

    void copy_data(void *dest, const void *src, std::size_t count) const override {
        default_copy_data(dest, src, count);
    }
};

LimitedCpuAllocator g_allocator;

}  // namespace

extern "C" {

char *rt_memory_install(void) {
    return rt_shim::guarded([] {
        if (g_installed.exchange(true)) {
            return;
        }
        // A priority above the default one's (0), so that nothing registered later at
        // the default priority replaces it.
        c10::SetAllocator(c10::DeviceType::CPU, &g_allocator, 1);
    });
}

void rt_memory_set_limit(uint64_t limit_bytes) {
    g_limit.store(limit_bytes, std::memory_order_relaxed);
}

void rt_memory_stats(uint64_t *held, uint64_t *peak, uint64_t *limit) {
    *held = g_held.load(std::memory_order_relaxed);
    *peak = g_peak.load(std::memory_order_relaxed);
    *limit = g_limit.load(std::memory_order_relaxed);
}

uint64_t rt_memory_refusals(void) {
    return g_refused.load(std::memory_order_relaxed);
}

}  // extern "C"
