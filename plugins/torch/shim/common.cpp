// The shim's common part: the helpers of common.h (error strings, tensor conversions,
// devices), and the entry points that are neither models nor scripts: error strings,
// libtorch's version, thread pools, the CUDA probes, and the outputs of a run. No C++
// exception leaves this file: every entry point catches everything.

#include "common.h"

#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/ops/empty.h>
#include <torch/cuda.h>
#include <torch/headeronly/version.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

char kOutOfMemory[] = "out of memory while reporting a libtorch error";

const char *dtype_name(uint32_t code) {
    static const char *names[] = {"FLOAT", "DOUBLE", "INT8",   "INT16", "INT32",
                                  "INT64", "UINT8",  "UINT16", "BOOL",  "STRING"};
    return code < 10 ? names[code] : "unknown";
}

at::ScalarType to_scalar_type(uint32_t code) {
    switch (code) {
    case RT_FLOAT: return at::kFloat;
    case RT_DOUBLE: return at::kDouble;
    case RT_INT8: return at::kChar;
    case RT_INT16: return at::kShort;
    case RT_INT32: return at::kInt;
    case RT_INT64: return at::kLong;
    case RT_UINT8: return at::kByte;
    case RT_UINT16: return at::kUInt16;
    case RT_BOOL: return at::kBool;
    default:
        throw std::runtime_error(std::string("the TORCH backend does not support ") +
                                 dtype_name(code) + " tensors");
    }
}

uint32_t from_scalar_type(at::ScalarType type) {
    switch (type) {
    case at::kFloat: return RT_FLOAT;
    case at::kDouble: return RT_DOUBLE;
    case at::kChar: return RT_INT8;
    case at::kShort: return RT_INT16;
    case at::kInt: return RT_INT32;
    case at::kLong: return RT_INT64;
    case at::kByte: return RT_UINT8;
    case at::kUInt16: return RT_UINT16;
    case at::kBool: return RT_BOOL;
    default:
        throw std::runtime_error(std::string("the TORCH backend cannot return tensors of type ") +
                                 c10::toString(type) + " (no RedisAI dtype matches it)");
    }
}

}  // namespace

namespace rt_shim {

char *dup_error(const std::string &message) {
    char *copy = static_cast<char *>(std::malloc(message.size() + 1));
    if (copy == nullptr) {
        return kOutOfMemory;
    }
    std::memcpy(copy, message.data(), message.size());
    copy[message.size()] = '\0';
    return copy;
}

// A tensor that owns a copy of `view`'s data (copied: the host's buffer is read-only
// and may be unaligned).
at::Tensor make_tensor(const rt_view &view) {
    at::ScalarType type = to_scalar_type(view.dtype);
    std::vector<int64_t> shape(view.shape, view.shape + view.ndim);
    for (int64_t dim : shape) {
        if (dim < 0) {
            throw std::runtime_error("negative tensor dimension");
        }
    }
    at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(type).device(at::kCPU));
    size_t needed = static_cast<size_t>(tensor.numel()) * tensor.element_size();
    if (needed != view.nbytes) {
        throw std::runtime_error("a " + std::string(dtype_name(view.dtype)) + " tensor of " +
                                 std::to_string(tensor.numel()) + " elements needs " +
                                 std::to_string(needed) + " bytes of data, got " +
                                 std::to_string(view.nbytes));
    }
    if (needed > 0) {
        std::memcpy(tensor.data_ptr(), view.data, needed);
    }
    return tensor;
}

// A CPU, contiguous tensor of a dtype the host knows.
at::Tensor host_tensor(const at::Tensor &tensor) {
    from_scalar_type(tensor.scalar_type());
    return tensor.to(at::kCPU).contiguous();
}

rt_view view_of(const at::Tensor &tensor) {
    rt_view view;
    view.dtype = from_scalar_type(tensor.scalar_type());
    view.ndim = static_cast<size_t>(tensor.dim());
    view.shape = tensor.sizes().data();
    view.data = tensor.data_ptr();
    view.nbytes = static_cast<size_t>(tensor.numel()) * tensor.element_size();
    return view;
}

// Collects the tensors of a result: a Tensor, a tuple or list of tensors, or None.
void collect(const c10::IValue &value, bool none_ok, std::vector<at::Tensor> &out) {
    auto one = [&out](const c10::IValue &item) {
        if (!item.isTensor()) {
            throw std::runtime_error("an output is a " + item.tagKind() + ", not a Tensor");
        }
        out.push_back(host_tensor(item.toTensor()));
    };
    if (value.isTensor()) {
        one(value);
    } else if (value.isTuple()) {
        for (const auto &item : value.toTupleRef().elements()) {
            one(item);
        }
    } else if (value.isList()) {
        for (const c10::IValue item : value.toListRef()) {
            one(item);
        }
    } else if (value.isNone() && none_ok) {
        // no outputs
    } else {
        throw std::runtime_error("the result is a " + value.tagKind() +
                                 ", not a Tensor or a list of tensors");
    }
}

// The device of a shim device code (RT_DEVICE_CPU or a CUDA index).
c10::Device device_of(int32_t code) {
    if (code == RT_DEVICE_CPU) {
        return c10::Device(c10::kCPU);
    }
    if (code < 0 || code > 127) {
        throw std::runtime_error("bad device code " + std::to_string(code));
    }
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(code));
}

// A run's input on `device`: a copy of `view`, moved there when it is not the CPU.
at::Tensor input_tensor(const rt_view &view, const c10::Device &device) {
    at::Tensor tensor = make_tensor(view);
    return device.is_cpu() ? tensor : tensor.to(device);
}

}  // namespace rt_shim

using namespace rt_shim;

extern "C" {

void rt_error_free(char *error) {
    if (error != kOutOfMemory) {
        std::free(error);
    }
}

const char *rt_torch_version(void) { return TORCH_VERSION; }

char *rt_set_threads(int64_t intra_op, int64_t inter_op) {
    return guarded([&] {
        if (intra_op > 0) {
            at::set_num_threads(static_cast<int>(intra_op));
        }
        if (inter_op > 0) {
            at::set_num_interop_threads(static_cast<int>(inter_op));
        }
    });
}

void rt_get_threads(int64_t *intra_op, int64_t *inter_op) {
    try {
        *intra_op = at::get_num_threads();
        *inter_op = at::get_num_interop_threads();
    } catch (...) {
        *intra_op = -1;
        *inter_op = -1;
    }
}

int64_t rt_cuda_device_count(void) {
    try {
        return static_cast<int64_t>(torch::cuda::device_count());
    } catch (...) {
        return 0;
    }
}

int rt_cuda_backend_registered(void) {
    try {
        // A build-time constant of libtorch_cuda's hooks (no driver needed); the stubs
        // of libtorch_cpu say false.
        return at::detail::getCUDAHooks().compiledWithCuDNN() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

size_t rt_outputs_count(const rt_outputs *outputs) { return outputs->tensors.size(); }

rt_view rt_outputs_get(const rt_outputs *outputs, size_t index) {
    // Outputs were checked by collect(): view_of cannot throw for them.
    try {
        return view_of(outputs->tensors.at(index));
    } catch (...) {
        return rt_view{RT_FLOAT, 0, nullptr, nullptr, 0};
    }
}

void rt_outputs_free(rt_outputs *outputs) {
    try {
        delete outputs;
    } catch (...) {
    }
}

}  // extern "C"
