// The plugin's C++ shim over libtorch: TorchScript models, scripts and the script
// extensions (redis.execute, redis.asList, redisAI.model_execute), behind the C
// interface of shim.h. No C++ exception leaves this file: every entry point catches
// everything and returns the message as an error string.

#include "shim.h"

#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/function_schema_parser.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/csrc/jit/runtime/custom_operator.h>
#include <torch/csrc/jit/runtime/operator.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/cuda.h>
#include <torch/headeronly/version.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

char kOutOfMemory[] = "out of memory while reporting a libtorch error";

char *dup_error(const std::string &message) {
    char *copy = static_cast<char *>(std::malloc(message.size() + 1));
    if (copy == nullptr) {
        return kOutOfMemory;
    }
    std::memcpy(copy, message.data(), message.size());
    copy[message.size()] = '\0';
    return copy;
}

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

struct rt_script {
    std::shared_ptr<torch::jit::CompilationUnit> unit;
    c10::Device device{c10::kCPU};
};

struct rt_outputs {
    std::vector<at::Tensor> tensors;
};

struct rt_sink {
    std::string reply;
    std::vector<at::Tensor> tensors;
    bool failed = false;
    std::string error;
};

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

void rt_bytes_free(uint8_t *bytes) { std::free(bytes); }

}  // extern "C"

// ---- scripts ----

namespace {

// `torch` in a script: aten's operators, and the dtypes (torch.float32, torch.int64, ...)
// as the integer constants TorchScript uses for them.
struct TorchModule : torch::jit::BuiltinModule {
    TorchModule() : BuiltinModule("aten") {}

    std::shared_ptr<torch::jit::SugaredValue> attr(const torch::jit::SourceRange &loc,
                                                   torch::jit::GraphFunction &m,
                                                   const std::string &field) override {
        static const std::pair<const char *, at::ScalarType> dtypes[] = {
            {"float32", at::kFloat},  {"float", at::kFloat},     {"float64", at::kDouble},
            {"double", at::kDouble},  {"float16", at::kHalf},    {"half", at::kHalf},
            {"bfloat16", at::kBFloat16}, {"int8", at::kChar},    {"int16", at::kShort},
            {"short", at::kShort},    {"int32", at::kInt},       {"int", at::kInt},
            {"int64", at::kLong},     {"long", at::kLong},       {"uint8", at::kByte},
            {"uint16", at::kUInt16},  {"bool", at::kBool},
        };
        for (const auto &dtype : dtypes) {
            if (field == dtype.first) {
                return std::make_shared<torch::jit::SimpleValue>(
                    m.graph()->insertConstant(static_cast<int64_t>(dtype.second), loc));
            }
        }
        return BuiltinModule::attr(loc, m, field);
    }
};

// Resolves the free names a script may use: torch, redis and redisAI.
struct ScriptResolver : torch::jit::Resolver {
    std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string &name,
                                                           torch::jit::GraphFunction &,
                                                           const torch::jit::SourceRange &) override {
        if (name == "torch") {
            return std::make_shared<TorchModule>();
        }
        if (name == "redis" || name == "redisAI") {
            return std::make_shared<torch::jit::BuiltinModule>(name);
        }
        return nullptr;
    }
};

std::string expected_signature(const std::string &name) {
    return "Wrong inputs type in function " + name +
           ". Expected signature similar to: def " + name +
           "(tensors: List[Tensor], keys: List[str], args: List[str])";
}

torch::jit::Function &find_function(const torch::jit::CompilationUnit &unit,
                                    const std::string &name) {
    torch::jit::Function *function = unit.find_function(c10::QualifiedName(name));
    if (function == nullptr) {
        throw std::runtime_error("Function " + name + " does not exist in the given script.");
    }
    return *function;
}

bool is_tensor(const c10::Argument &argument) {
    return argument.type()->kind() == c10::TypeKind::TensorType;
}

bool is_tensor_list(const c10::Argument &argument) {
    return *argument.type() == *c10::ListType::ofTensors();
}

bool is_lists_signature(const c10::FunctionSchema &schema) {
    const auto &arguments = schema.arguments();
    const c10::TypePtr strings = c10::ListType::ofStrings();
    return arguments.size() == 3 && is_tensor_list(arguments[0]) &&
           *arguments[1].type() == *strings && *arguments[2].type() == *strings;
}

// The AI.SCRIPTEXECUTE signature, with RedisAI's error texts.
void check_lists_signature(const torch::jit::Function &function, const std::string &name) {
    const auto &arguments = function.getSchema().arguments();
    if (arguments.size() != 3) {
        throw std::runtime_error("Wrong number of inputs in function " + name +
                                 ". Expected 3 but was " + std::to_string(arguments.size()));
    }
    if (!is_lists_signature(function.getSchema())) {
        throw std::runtime_error(expected_signature(name));
    }
}

void check_entry_point(const torch::jit::CompilationUnit &unit, const std::string &name) {
    check_lists_signature(find_function(unit, name), name);
}

c10::List<std::string> string_list(const char *const *items, size_t count) {
    c10::List<std::string> list;
    list.reserve(count);
    for (size_t i = 0; i < count; i++) {
        list.push_back(items[i]);
    }
    return list;
}

std::vector<at::Tensor> input_tensors(const rt_view *inputs, size_t n_inputs,
                                      const c10::Device &device) {
    std::vector<at::Tensor> tensors;
    tensors.reserve(n_inputs);
    for (size_t i = 0; i < n_inputs; i++) {
        tensors.push_back(input_tensor(inputs[i], device));
    }
    return tensors;
}

// fn(tensors: List[Tensor], keys: List[str], args: List[str])
torch::jit::Stack lists_stack(std::vector<at::Tensor> tensors, const char *const *keys,
                              size_t n_keys, const char *const *args, size_t n_args) {
    c10::List<at::Tensor> list;
    list.reserve(tensors.size());
    for (at::Tensor &tensor : tensors) {
        list.push_back(std::move(tensor));
    }
    return torch::jit::Stack{c10::IValue(std::move(list)), c10::IValue(string_list(keys, n_keys)),
                             c10::IValue(string_list(args, n_args))};
}

// "name(a: Tensor, args: List[Tensor])", for error messages.
std::string signature_text(const c10::FunctionSchema &schema, const std::string &name) {
    std::string text = name + "(";
    const auto &arguments = schema.arguments();
    for (size_t i = 0; i < arguments.size(); i++) {
        text += (i > 0 ? ", " : "") + arguments[i].name() + ": " +
                arguments[i].type()->annotation_str();
    }
    return text + ")";
}

std::string tensors_text(size_t count) {
    return std::to_string(count) + (count == 1 ? " tensor" : " tensors");
}

// How many Tensor and List[Tensor] parameters a function has.
struct TensorParameters {
    size_t tensors = 0;
    size_t lists = 0;
};

// Counts them; any other parameter needs a default value (AI.SCRIPTRUN passes tensors only).
TensorParameters count_parameters(const c10::FunctionSchema &schema, const std::string &name,
                                  const std::string &signature) {
    TensorParameters counts;
    for (const c10::Argument &argument : schema.arguments()) {
        if (is_tensor(argument)) {
            counts.tensors++;
        } else if (is_tensor_list(argument)) {
            counts.lists++;
        } else if (!argument.default_value()) {
            throw std::runtime_error("Wrong inputs type in function " + name + ": parameter " +
                                     argument.name() + " of " + signature +
                                     " is not a Tensor or a List[Tensor] (AI.SCRIPTRUN passes "
                                     "tensors only)");
        }
    }
    if (counts.lists > 1) {
        throw std::runtime_error("Wrong inputs type in function " + name + ": " + signature +
                                 " has " + std::to_string(counts.lists) +
                                 " List[Tensor] parameters, AI.SCRIPTRUN fills one at most "
                                 "(with the inputs after $)");
    }
    return counts;
}

std::string wrong_count(const std::string &name, const std::string &signature,
                        const std::string &takes, size_t given) {
    return "Wrong number of inputs in function " + name + ": " + signature + " takes " + takes +
           ", AI.SCRIPTRUN gave " + tensors_text(given);
}

// How many of `n` inputs the List[Tensor] parameter gets: those after `$` (`variadic` is
// where they start, -1 without `$`), else those the Tensor parameters leave. Throws when
// the inputs do not fit the parameters.
size_t listed_inputs(const TensorParameters &counts, size_t n, int64_t variadic,
                     const std::string &name, const std::string &signature) {
    if (variadic >= 0) {
        if (counts.lists == 0) {
            throw std::runtime_error("Wrong inputs type in function " + name + ": " +
                                     signature +
                                     " has no List[Tensor] parameter for the inputs after $");
        }
        const size_t before = static_cast<size_t>(variadic);
        if (before != counts.tensors) {
            throw std::runtime_error(
                wrong_count(name, signature, tensors_text(counts.tensors) + " before $", before));
        }
        return n - before;
    }
    if (counts.lists == 0 && n != counts.tensors) {
        throw std::runtime_error(wrong_count(name, signature, tensors_text(counts.tensors), n));
    }
    if (n < counts.tensors) {
        throw std::runtime_error(
            wrong_count(name, signature, "at least " + tensors_text(counts.tensors), n));
    }
    return n - counts.tensors;
}

// Binds AI.SCRIPTRUN's inputs to the function's own parameters, as RedisAI 1.2 did:
// each Tensor parameter takes the next input, the List[Tensor] parameter the inputs
// after `$` (without `$`: the ones left over, at its place), and other parameters keep
// their default values.
torch::jit::Stack positional_stack(const c10::FunctionSchema &schema, const std::string &name,
                                   const std::vector<at::Tensor> &tensors, int64_t variadic) {
    const std::string signature = signature_text(schema, name);
    const TensorParameters counts = count_parameters(schema, name, signature);
    const size_t listed = listed_inputs(counts, tensors.size(), variadic, name, signature);
    torch::jit::Stack stack;
    size_t next = 0;
    for (const c10::Argument &argument : schema.arguments()) {
        if (is_tensor(argument)) {
            stack.emplace_back(tensors[next++]);
        } else if (is_tensor_list(argument)) {
            const size_t first = variadic >= 0 ? static_cast<size_t>(variadic) : next;
            c10::List<at::Tensor> list;
            list.reserve(listed);
            for (size_t i = first; i < first + listed; i++) {
                list.push_back(tensors[i]);
            }
            stack.emplace_back(std::move(list));
            if (variadic < 0) {
                next += listed;
            }
        } else {
            stack.push_back(*argument.default_value());
        }
    }
    return stack;
}

rt_outputs *call_function(torch::jit::Function &function, torch::jit::Stack stack) {
    c10::IValue result = function(std::move(stack));
    auto outputs = std::make_unique<rt_outputs>();
    collect(result, true, outputs->tensors);
    return outputs.release();
}

}  // namespace

extern "C" {

char *rt_script_load(const char *source, const char *const *entry_points, size_t n_entry_points,
                     int32_t device, rt_script **out) {
    return guarded([&] {
        auto script = std::make_unique<rt_script>();
        script->device = device_of(device);
        script->unit = std::make_shared<torch::jit::CompilationUnit>();
        script->unit->define(std::nullopt, source, std::make_shared<ScriptResolver>(), nullptr);
        for (size_t i = 0; i < n_entry_points; i++) {
            check_entry_point(*script->unit, entry_points[i]);
        }
        *out = script.release();
    });
}

void rt_script_free(rt_script *script) {
    try {
        delete script;
    } catch (...) {
    }
}

char *rt_script_run(rt_script *script, const char *function, const rt_view *inputs,
                    size_t n_inputs, const char *const *keys, size_t n_keys,
                    const char *const *args, size_t n_args, rt_outputs **out) {
    return guarded([&] {
        torch::jit::Function &entry = find_function(*script->unit, function);
        check_lists_signature(entry, function);
        c10::InferenceMode inference;
        torch::jit::Stack stack =
            lists_stack(input_tensors(inputs, n_inputs, script->device), keys, n_keys, args, n_args);
        *out = call_function(entry, std::move(stack));
    });
}

char *rt_script_run_positional(rt_script *script, const char *function, const rt_view *inputs,
                               size_t n_inputs, int64_t variadic, rt_outputs **out) {
    return guarded([&] {
        torch::jit::Function &entry = find_function(*script->unit, function);
        if (variadic > static_cast<int64_t>(n_inputs)) {
            throw std::runtime_error("the inputs after $ start past the last input");
        }
        c10::InferenceMode inference;
        std::vector<at::Tensor> tensors = input_tensors(inputs, n_inputs, script->device);
        const c10::FunctionSchema &schema = entry.getSchema();
        torch::jit::Stack stack =
            is_lists_signature(schema)
                ? lists_stack(std::move(tensors), nullptr, 0, nullptr, 0)
                : positional_stack(schema, function, tensors, variadic);
        *out = call_function(entry, std::move(stack));
    });
}

}  // extern "C"

// ---- script extensions ----

namespace {

// redis.execute returns `Any?` rather than `Any`: with `Any`, the compiler folds
// `reply is None` to False; the optional keeps that test at run time.
const char *const kSchemas[] = {
    "redis::execute(str cmd, ...) -> Any?",
    "redis::asList(Any x) -> Any[]",
    "redisAI::model_execute(str key, Tensor[] inputs, int num_outputs) -> Tensor[]",
};

std::mutex g_ops_mutex;
rt_callbacks g_callbacks = {nullptr, nullptr};
bool g_ops_registered = false;

rt_callbacks current_callbacks() {
    std::lock_guard<std::mutex> lock(g_ops_mutex);
    return g_callbacks;
}

// Reads an encoded reply (see rt_sink_reply).
struct ReplyReader {
    const uint8_t *at;
    const uint8_t *end;

    void need(size_t n) {
        if (static_cast<size_t>(end - at) < n) {
            throw std::runtime_error("truncated reply from the host");
        }
    }
    uint64_t u64() {
        need(8);
        uint64_t value;
        std::memcpy(&value, at, 8);
        at += 8;
        return value;
    }
    std::string bytes() {
        uint64_t len = u64();
        need(len);
        std::string text(reinterpret_cast<const char *>(at), len);
        at += len;
        return text;
    }
    c10::IValue value() {
        need(1);
        uint8_t tag = *at++;
        switch (tag) {
        case 'N': return c10::IValue();
        case 'I': return c10::IValue(static_cast<int64_t>(u64()));
        case 'D': {
            uint64_t bits = u64();
            double number;
            std::memcpy(&number, &bits, 8);
            return c10::IValue(number);
        }
        case 'S': return c10::IValue(bytes());
        case 'E': throw std::runtime_error(bytes());
        case 'A': {
            uint64_t count = u64();
            c10::impl::GenericList list(c10::AnyType::get());
            for (uint64_t i = 0; i < count; i++) {
                list.push_back(value());
            }
            return c10::IValue(std::move(list));
        }
        default: throw std::runtime_error("malformed reply from the host");
        }
    }
};

void fail_if(const rt_sink &sink) {
    if (sink.failed) {
        throw std::runtime_error(sink.error);
    }
}

std::string argument_text(const c10::IValue &value) {
    if (value.isString()) {
        return value.toStringRef();
    }
    if (value.isInt()) {
        return std::to_string(value.toInt());
    }
    if (value.isDouble()) {
        std::ostringstream text;
        text.precision(17);
        text << value.toDouble();
        return text.str();
    }
    throw std::runtime_error("redis.execute arguments must be strings or numbers, got a " +
                             value.tagKind());
}

void op_redis_execute(torch::jit::Stack &stack) {
    int64_t count = torch::jit::pop(stack).toInt();
    std::vector<std::string> words;
    for (const c10::IValue &value : torch::jit::last(stack, count)) {
        words.push_back(argument_text(value));
    }
    torch::jit::drop(stack, count);
    rt_callbacks callbacks = current_callbacks();
    if (callbacks.redis_execute == nullptr) {
        throw std::runtime_error("redis.execute is not available");
    }
    std::vector<const uint8_t *> argv;
    std::vector<size_t> lens;
    for (const std::string &word : words) {
        argv.push_back(reinterpret_cast<const uint8_t *>(word.data()));
        lens.push_back(word.size());
    }
    rt_sink sink;
    callbacks.redis_execute(argv.data(), lens.data(), argv.size(), &sink);
    fail_if(sink);
    ReplyReader reader{reinterpret_cast<const uint8_t *>(sink.reply.data()),
                       reinterpret_cast<const uint8_t *>(sink.reply.data()) + sink.reply.size()};
    torch::jit::push(stack, reader.value());
}

void op_as_list(torch::jit::Stack &stack) {
    c10::IValue value = torch::jit::pop(stack);
    if (!value.isList()) {
        throw std::runtime_error("redis.asList: the reply is a " + value.tagKind() +
                                 ", not an array");
    }
    torch::jit::push(stack, std::move(value));
}

void op_model_execute(torch::jit::Stack &stack) {
    int64_t n_outputs = torch::jit::pop(stack).toInt();
    c10::List<at::Tensor> inputs = torch::jit::pop(stack).toTensorList();
    std::string key = torch::jit::pop(stack).toStringRef();
    if (n_outputs < 0) {
        throw std::runtime_error("redisAI.model_execute: negative number of outputs");
    }
    rt_callbacks callbacks = current_callbacks();
    if (callbacks.model_execute == nullptr) {
        throw std::runtime_error("redisAI.model_execute is not available");
    }
    std::vector<at::Tensor> kept;
    for (const at::Tensor &tensor : inputs) {
        kept.push_back(host_tensor(tensor));
    }
    std::vector<rt_view> views;
    for (const at::Tensor &tensor : kept) {
        views.push_back(view_of(tensor));
    }
    rt_sink sink;
    callbacks.model_execute(key.c_str(), views.data(), views.size(),
                            static_cast<size_t>(n_outputs), &sink);
    fail_if(sink);
    c10::List<at::Tensor> outputs;
    for (at::Tensor &tensor : sink.tensors) {
        outputs.push_back(std::move(tensor));
    }
    torch::jit::push(stack, std::move(outputs));
}

void deregister_locked() {
    if (!g_ops_registered) {
        return;
    }
    for (const char *schema : kSchemas) {
        torch::jit::deregisterOperator(torch::jit::parseSchema(schema));
    }
    g_ops_registered = false;
}

// Deregisters the operators when the library is unloaded (or the process exits). Made
// after the first registration, so it is destroyed before libtorch's registry is.
struct Deregistration {
    ~Deregistration() {
        try {
            std::lock_guard<std::mutex> lock(g_ops_mutex);
            deregister_locked();
        } catch (...) {
        }
    }
};

}  // namespace

extern "C" {

char *rt_register_ops(const rt_callbacks *callbacks) {
    return guarded([&] {
        std::lock_guard<std::mutex> lock(g_ops_mutex);
        g_callbacks = *callbacks;
        if (g_ops_registered) {
            return;
        }
        const auto conservative = c10::AliasAnalysisKind::CONSERVATIVE;
        torch::jit::registerOperator(torch::jit::Operator(kSchemas[0], op_redis_execute, conservative));
        torch::jit::registerOperator(torch::jit::Operator(kSchemas[1], op_as_list, conservative));
        torch::jit::registerOperator(torch::jit::Operator(kSchemas[2], op_model_execute, conservative));
        g_ops_registered = true;
        static Deregistration deregistration;
        (void)deregistration;
    });
}

void rt_deregister_ops(void) {
    try {
        std::lock_guard<std::mutex> lock(g_ops_mutex);
        deregister_locked();
    } catch (...) {
    }
}

void rt_sink_reply(rt_sink *sink, const uint8_t *encoded, size_t len) {
    try {
        sink->reply.assign(reinterpret_cast<const char *>(encoded), len);
    } catch (...) {
        sink->failed = true;
    }
}

void rt_sink_tensor(rt_sink *sink, const rt_view *tensor) {
    try {
        sink->tensors.push_back(make_tensor(*tensor));
    } catch (const std::exception &e) {
        sink->failed = true;
        sink->error = e.what();
    } catch (...) {
        sink->failed = true;
        sink->error = "could not copy a tensor from the host";
    }
}

void rt_sink_error(rt_sink *sink, const char *message, size_t len) {
    sink->failed = true;
    try {
        sink->error.assign(message, len);
    } catch (...) {
    }
}

char *rt_make_module(const char *source, const char *const *param_names, const rt_view *params,
                     size_t n_params, uint8_t **out, size_t *out_len) {
    return guarded([&] {
        torch::jit::Module module(c10::QualifiedName("__torch__.RedisAIModel"));
        for (size_t i = 0; i < n_params; i++) {
            module.register_parameter(param_names[i], make_tensor(params[i]), false);
        }
        module.define(source);
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
    });
}

}  // extern "C"
