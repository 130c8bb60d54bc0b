// Internal declarations shared by the shim's translation units (never seen by Rust,
// which sees shim.h only): guarded(), the exception catcher every entry point returning an
// error string runs its body in; the tensor conversions between the host's rt_view and
// at::Tensor; the device of a shim device code; and rt_outputs, which models, scripts
// and the outputs' accessors share.
//
// The helpers live in namespace rt_shim; built with -fvisibility=hidden, none of them is
// exported from the plugin.

#ifndef REDISAI_TORCH_SHIM_COMMON_H
#define REDISAI_TORCH_SHIM_COMMON_H

#include "shim.h"

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <vector>

namespace rt_shim {

// A malloc'ed copy of `message` (a static text when out of memory; rt_error_free knows it).
char *dup_error(const std::string &message);

// Runs `body`, turning any exception into an error string (null on success).
template <class F>
char *guarded(F &&body) noexcept {
    try {
        body();
        return nullptr;
    } catch (const c10::Error &e) {
        return dup_error(e.what_without_backtrace());
    } catch (const std::exception &e) {
        return dup_error(e.what());
    } catch (...) {
        return dup_error("unknown C++ exception in libtorch");
    }
}

// A tensor that owns a copy of `view`'s data.
at::Tensor make_tensor(const rt_view &view);

// A CPU, contiguous tensor of a dtype the host knows.
at::Tensor host_tensor(const at::Tensor &tensor);

// A view of a host tensor (see host_tensor), valid while `tensor` lives.
rt_view view_of(const at::Tensor &tensor);

// Collects the tensors of a result: a Tensor, a tuple or list of tensors, or None.
void collect(const c10::IValue &value, bool none_ok, std::vector<at::Tensor> &out);

// The device of a shim device code (RT_DEVICE_CPU or a CUDA index).
c10::Device device_of(int32_t code);

// A run's input on `device`: a copy of `view`, moved there when it is not the CPU.
at::Tensor input_tensor(const rt_view &view, const c10::Device &device);

}  // namespace rt_shim

struct rt_outputs {
    std::vector<at::Tensor> tensors;
};

#endif
