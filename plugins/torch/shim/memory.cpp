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

#include "common.h"

#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

namespace {

std::atomic<uint64_t> g_limit{0};
std::atomic<uint64_t> g_held{0};
std::atomic<uint64_t> g_peak{0};
// Allocations the limit refused: how the plugin tells a failure of the limit from others.
std::atomic<uint64_t> g_refused{0};
c10::Allocator *g_inner = nullptr;

// What a counted storage's DataPtr owns: the inner allocator's DataPtr and its size.
struct Counted {
    c10::DataPtr inner;
    size_t bytes;
};

void release_counted(void *context) {
    auto *counted = static_cast<Counted *>(context);
    g_held.fetch_sub(counted->bytes, std::memory_order_relaxed);
    delete counted;  // frees the storage through the inner DataPtr's deleter
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
        c10::DataPtr inner;
        Counted *counted = nullptr;
        try {
            inner = g_inner->allocate(n);
            counted = new Counted{std::move(inner), n};
        } catch (...) {
            g_held.fetch_sub(n, std::memory_order_relaxed);
            throw;
        }
        note_peak(now);
        void *data = counted->inner.get();
        c10::Device device = counted->inner.device();
        return c10::DataPtr(data, counted, &release_counted, device);
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
        if (g_inner != nullptr) {
            return;
        }
        g_inner = c10::GetAllocator(c10::DeviceType::CPU);
        if (g_inner == nullptr) {
            throw std::runtime_error("libtorch has no CPU allocator");
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
