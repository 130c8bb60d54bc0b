// TorchScript scripts: compiling the source (with torch, redis and redisAI as the free
// names a script may use) and checking the entry points; AI.SCRIPTEXECUTE's call of
// fn(tensors: List[Tensor], keys: List[str], args: List[str]) (rt_script_run); and
// AI.SCRIPTRUN's binding of the inputs to the function's own parameters
// (rt_script_run_positional). No C++ exception leaves this file: every entry point
// catches everything.

#include "common.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace rt_shim;

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

struct rt_script {
    std::shared_ptr<torch::jit::CompilationUnit> unit;
    c10::Device device{c10::kCPU};
};

namespace rt_shim {
const torch::jit::CompilationUnit &unit_of(const rt_script *script) { return *script->unit; }
}  // namespace rt_shim

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
