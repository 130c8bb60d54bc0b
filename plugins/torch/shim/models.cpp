// TorchScript models: loading a serialised module (.pt) onto a device, its inputs and
// outputs, and running forward; and rt_make_module, which builds and serialises one from
// source (for tests and tools). No C++ exception leaves this file: every entry point
// catches everything.

#include "common.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

using namespace rt_shim;

namespace {

// Reads a model blob in place (no copy); used only while torch::jit::load runs, which
// copies what it keeps.
class BlobReader : public caffe2::serialize::ReadAdapterInterface {
  public:
    BlobReader(const uint8_t *data, size_t len) : data_(data), len_(len) {}
    size_t size() const override { return len_; }
    size_t read(uint64_t pos, void *buf, size_t n, const char *) const override {
        if (pos >= len_) {
            return 0;
        }
        size_t count = std::min<uint64_t>(n, len_ - pos);
        std::memcpy(buf, data_ + pos, count);
        return count;
    }

  private:
    const uint8_t *data_;
    size_t len_;
};

size_t declared_outputs(const c10::FunctionSchema &schema) {
    if (schema.returns().size() != 1) {
        return 0;
    }
    const c10::TypePtr &type = schema.returns()[0].type();
    if (type->kind() == c10::TypeKind::TensorType) {
        return 1;
    }
    if (auto tuple = type->cast<c10::TupleType>()) {
        return tuple->elements().size();
    }
    return 0;
}

}  // namespace

struct rt_module {
    torch::jit::Module module;
    c10::Device device{c10::kCPU};
    std::vector<std::string> inputs;
    size_t outputs = 0;
};

namespace rt_shim {
const torch::jit::Module &module_of(const rt_module *module) { return module->module; }
}  // namespace rt_shim

namespace {

// The serialised bytes of `module` (a .pt file), malloc'd into *out, *out_len.
void save_module(const torch::jit::Module &module, uint8_t **out, size_t *out_len) {
    std::ostringstream stream;
    module.save(stream);
    std::string bytes = stream.str();
    auto *copy = static_cast<uint8_t *>(std::malloc(bytes.size() == 0 ? 1 : bytes.size()));
    if (copy == nullptr) {
        throw std::bad_alloc();
    }
    std::memcpy(copy, bytes.data(), bytes.size());
    *out = copy;
    *out_len = bytes.size();
}

}  // namespace

extern "C" {

char *rt_module_load(const uint8_t *blob, size_t len, int32_t device, rt_module **out) {
    return guarded([&] {
        if (len == 0) {
            throw std::runtime_error("the TorchScript model blob is empty");
        }
        auto module = std::make_unique<rt_module>();
        module->device = device_of(device);
        // map_location: every parameter and buffer is loaded onto the device.
        module->module = torch::jit::load(std::make_shared<BlobReader>(blob, len), module->device);
        module->module.eval();
        auto forward = module->module.find_method("forward");
        if (!forward) {
            throw std::runtime_error("the TorchScript module has no forward method");
        }
        const c10::FunctionSchema &schema = forward->function().getSchema();
        const auto &arguments = schema.arguments();
        for (size_t i = 1; i < arguments.size(); i++) {
            module->inputs.push_back(arguments[i].name());
        }
        module->outputs = declared_outputs(schema);
        *out = module.release();
    });
}

void rt_module_free(rt_module *module) {
    try {
        delete module;
    } catch (...) {
    }
}

size_t rt_module_input_count(const rt_module *module) { return module->inputs.size(); }

const char *rt_module_input_name(const rt_module *module, size_t index) {
    return index < module->inputs.size() ? module->inputs[index].c_str() : nullptr;
}

size_t rt_module_output_count(const rt_module *module) { return module->outputs; }

char *rt_module_forward(rt_module *module, const rt_view *inputs, size_t n_inputs,
                        rt_outputs **out) {
    return guarded([&] {
        c10::InferenceMode inference;
        std::vector<c10::IValue> args;
        args.reserve(n_inputs);
        for (size_t i = 0; i < n_inputs; i++) {
            args.emplace_back(input_tensor(inputs[i], module->device));
        }
        c10::IValue result = module->module.forward(std::move(args));
        auto outputs = std::make_unique<rt_outputs>();
        collect(result, false, outputs->tensors);
        *out = outputs.release();
    });
}

char *rt_make_module(const char *source, const char *const *param_names, const rt_view *params,
                     size_t n_params, uint8_t **out, size_t *out_len) {
    return guarded([&] {
        torch::jit::Module module(c10::QualifiedName("__torch__.RedisAIModel"));
        for (size_t i = 0; i < n_params; i++) {
            module.register_parameter(param_names[i], make_tensor(params[i]), false);
        }
        module.define(source);
        save_module(module, out, out_len);
    });
}

char *rt_make_module_with_child(const char *source, const char *child_name,
                                const char *child_source, uint8_t **out, size_t *out_len) {
    return guarded([&] {
        torch::jit::Module child(c10::QualifiedName("__torch__.RedisAIChild"));
        child.define(child_source);
        torch::jit::Module module(c10::QualifiedName("__torch__.RedisAIModel"));
        module.register_module(child_name, child);
        module.define(source);
        save_module(module, out, out_len);
    });
}

void rt_bytes_free(uint8_t *bytes) { std::free(bytes); }

uint64_t rt_module_memory(const rt_module *module) {
    try {
        // The storages of the module's parameters and buffers (its weights), each
        // counted once however many tensors share it.
        std::unordered_set<const void *> seen;
        uint64_t total = 0;
        auto add = [&](const at::Tensor &tensor) {
            if (!tensor.defined() || !tensor.has_storage()) {
                return;
            }
            const c10::Storage &storage = tensor.storage();
            if (seen.insert(storage.data()).second) {
                total += storage.nbytes();
            }
        };
        for (const auto &parameter : module->module.parameters(true)) {
            add(parameter);
        }
        for (const auto &buffer : module->module.buffers(true)) {
            add(buffer);
        }
        return total;
    } catch (...) {
        return UINT64_MAX;
    }
}

}  // extern "C"
