// The shim's half of the sandbox policy (the decisions are the plugin's, src/policy.rs):
//
// - rt_module_operations / rt_script_operations list what a loaded model or compiled
//   script can run: the kind of every node (aten::add, prim::If, c10d::send, ...) of every
//   graph reachable from it (every method and hook of the module and of each submodule,
//   every function of its compilation unit, the blocks nested in If/Loop/closures and the
//   subgraphs of fork, fusion groups and the like), and the custom classes
//   (__torch__.torch.classes.*) that any value in those graphs, or any attribute of a
//   module, has.
// - rt_operator_names lists libtorch's registered operators; rt_stub_operators replaces
//   the named ones in the JIT's registry with operators of the same schemas that only
//   throw, so code that uses them still compiles (and is refused by name when loaded) but
//   never runs them: not in a model's __setstate__, which libtorch runs while it loads
//   the model, before the plugin can look at it, and not at compile time (constant
//   propagation). rt_custom_class_names and rt_stub_custom_classes do the same for the
//   methods of custom classes (torch.classes.*). rt_take_forbidden reports the stub a
//   failure on this thread ran into.
//
// No C++ exception leaves this file: every entry point catches everything.

#include "common.h"

#include <ATen/core/builtin_function.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/custom_class.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/operator.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

using namespace rt_shim;

// Defined in models.cpp and scripts.cpp.
namespace rt_shim {
const torch::jit::Module &module_of(const rt_module *module);
const torch::jit::CompilationUnit &unit_of(const rt_script *script);
}  // namespace rt_shim

namespace {

const char kCustomClassPrefix[] = "__torch__.torch.classes.";

// Collects node kinds and custom class names, each graph once.
struct Walker {
    std::set<std::string> found;
    std::unordered_set<const torch::jit::Graph *> graphs;
    std::unordered_set<const c10::Type *> types;

    void type(const c10::TypePtr &type) {
        if (!type || !types.insert(type.get()).second) {
            return;
        }
        if (auto cls = type->cast<c10::ClassType>()) {
            if (auto name = cls->name()) {
                const std::string qualified = name->qualifiedName();
                if (qualified.rfind(kCustomClassPrefix, 0) == 0) {
                    found.insert(qualified);
                }
            }
        }
        for (const c10::TypePtr &contained : type->containedTypes()) {
            this->type(contained);
        }
    }

    void graph(const std::shared_ptr<torch::jit::Graph> &graph) {
        if (!graph || !graphs.insert(graph.get()).second) {
            return;
        }
        block(graph->block());
    }

    void block(const torch::jit::Block *block) {
        for (const torch::jit::Value *input : block->inputs()) {
            type(input->type());
        }
        for (const torch::jit::Node *node : block->nodes()) {
            this->node(node);
        }
        for (const torch::jit::Value *output : block->outputs()) {
            type(output->type());
        }
    }

    void node(const torch::jit::Node *node) {
        found.insert(node->kind().toQualString());
        for (const torch::jit::Value *input : node->inputs()) {
            type(input->type());
        }
        for (const torch::jit::Value *output : node->outputs()) {
            type(output->type());
        }
        for (const torch::jit::Block *nested : node->blocks()) {
            block(nested);
        }
        for (const c10::Symbol &name : node->attributeNames()) {
            switch (node->kindOf(name)) {
            case torch::jit::AttributeKind::g:
                graph(node->g(name));
                break;
            case torch::jit::AttributeKind::gs:
                for (const auto &subgraph : node->gs(name)) {
                    graph(subgraph);
                }
                break;
            case torch::jit::AttributeKind::ty:
                type(node->ty(name));
                break;
            case torch::jit::AttributeKind::tys:
                for (const auto &t : node->tys(name)) {
                    type(t);
                }
                break;
            default:
                break;
            }
        }
    }

    void function(torch::jit::Function *function) {
        if (function == nullptr) {
            return;
        }
        if (torch::jit::GraphFunction *graph_function = torch::jit::tryToGraphFunction(*function)) {
            // graph() compiles a lazily defined function first.
            graph(graph_function->graph());
        } else {
            // A builtin (a custom class's C++ method): named by its qualified name.
            found.insert(function->qualname().qualifiedName());
        }
    }

    void unit(const torch::jit::CompilationUnit &unit) {
        for (torch::jit::Function *function : unit.get_functions()) {
            this->function(function);
        }
    }

    void class_type(const c10::ClassTypePtr &cls) {
        if (!cls) {
            return;
        }
        type(cls);
        for (torch::jit::Function *method : cls->methods()) {
            function(method);
        }
        for (torch::jit::Function *hook : cls->getForwardPreHooks()) {
            function(hook);
        }
        for (torch::jit::Function *hook : cls->getForwardHooks()) {
            function(hook);
        }
        for (size_t i = 0; i < cls->numAttributes(); i++) {
            type(cls->getAttribute(i));
        }
    }

    void module(const torch::jit::Module &root) {
        for (const torch::jit::Module &module : root.modules()) {
            class_type(module.type());
            const auto &object = module._ivalue();
            for (const c10::IValue &slot : object->slots()) {
                type(slot.type());
            }
            if (auto unit = object->compilation_unit()) {
                this->unit(*unit);
            }
        }
    }

    void text(char **out, size_t *out_len) const;
};

// The operator a stub on this thread last refused.
thread_local std::string t_forbidden;

std::mutex g_stub_mutex;
std::vector<c10::FunctionSchema> g_stubbed;

// A custom class method replaced by a stub: the original goes back on unload.
struct StubbedMethod {
    c10::ClassTypePtr cls;
    std::string name;
    torch::jit::Function *original;
};
std::vector<StubbedMethod> g_stubbed_methods;

// Takes the stubs out again when the library is unloaded: their code goes with it (a
// refused operator is then only gone; a custom class gets its methods back).
struct StubRemoval {
    ~StubRemoval() {
        try {
            std::lock_guard<std::mutex> lock(g_stub_mutex);
            for (const c10::FunctionSchema &schema : g_stubbed) {
                torch::jit::deregisterOperator(schema);
            }
            g_stubbed.clear();
            for (const StubbedMethod &method : g_stubbed_methods) {
                method.cls->unsafeRemoveMethod(method.name);
                method.cls->addMethod(method.original);
            }
            g_stubbed_methods.clear();
        } catch (...) {
        }
    }
};

torch::jit::Operation stub_for(const std::string &name) {
    return [name](torch::jit::Stack &) {
        t_forbidden = name;
        throw std::runtime_error("forbidden operation: " + name);
    };
}

char *malloc_text(const std::string &text) {
    auto *copy = static_cast<char *>(std::malloc(text.size() + 1));
    if (copy == nullptr) {
        throw std::bad_alloc();
    }
    std::memcpy(copy, text.data(), text.size());
    copy[text.size()] = '\0';
    return copy;
}

void Walker::text(char **out, size_t *out_len) const {
    std::string joined;
    for (const std::string &item : found) {
        joined += item;
        joined += '\n';
    }
    *out = malloc_text(joined);
    *out_len = joined.size();
}

}  // namespace

extern "C" {

char *rt_module_operations(const rt_module *module, char **out, size_t *out_len) {
    return guarded([&] {
        Walker walker;
        walker.module(module_of(module));
        walker.text(out, out_len);
    });
}

char *rt_script_operations(const rt_script *script, char **out, size_t *out_len) {
    return guarded([&] {
        Walker walker;
        walker.unit(unit_of(script));
        walker.text(out, out_len);
    });
}

char *rt_operator_names(char **out, size_t *out_len) {
    return guarded([&] {
        std::set<std::string> names;
        for (const auto &op : torch::jit::getAllOperators()) {
            names.insert(op->schema().name());
        }
        std::string joined;
        for (const std::string &name : names) {
            joined += name;
            joined += '\n';
        }
        *out = malloc_text(joined);
        *out_len = joined.size();
    });
}

char *rt_stub_operators(const char *const *names, size_t n_names) {
    return guarded([&] {
        std::set<std::string> wanted(names, names + n_names);
        std::lock_guard<std::mutex> lock(g_stub_mutex);
        static StubRemoval removal;
        for (const auto &op : torch::jit::getAllOperators()) {
            const c10::FunctionSchema &schema = op->schema();
            const std::string &name = schema.name();
            if (wanted.count(name) == 0) {
                continue;
            }
            const c10::FunctionSchema copy = schema;
            std::optional<c10::OperatorHandle> handle;
            if (op->isC10Op()) {
                handle = c10::Dispatcher::singleton().findSchema(
                    c10::OperatorName(name, schema.overload_name()));
            }
            const c10::AliasAnalysisKind alias = copy.hasAnyAliasInfo()
                                                     ? c10::AliasAnalysisKind::FROM_SCHEMA
                                                     : c10::AliasAnalysisKind::CONSERVATIVE;
            const std::string text = c10::toString(copy);
            torch::jit::deregisterOperator(copy);
            // Without its stub (should the schema not re-register) the operator is only
            // gone: code that uses it no longer compiles, which is as safe.
            try {
                if (handle) {
                    torch::jit::registerOperator(torch::jit::Operator(*handle, stub_for(name)));
                } else {
                    torch::jit::registerOperator(
                        torch::jit::Operator(text, stub_for(name), alias));
                }
                g_stubbed.push_back(copy);
            } catch (...) {
            }
        }
    });
}

char *rt_custom_class_names(char **out, size_t *out_len) {
    return guarded([&] {
        std::set<std::string> names;
        for (const c10::FunctionSchema &schema : torch::customClassSchemasForBCCheck()) {
            if (schema.arguments().empty()) {
                continue;
            }
            if (auto cls = schema.arguments()[0].type()->cast<c10::ClassType>()) {
                if (auto name = cls->name()) {
                    names.insert(name->qualifiedName());
                }
            }
        }
        std::string joined;
        for (const std::string &name : names) {
            joined += name;
            joined += '\n';
        }
        *out = malloc_text(joined);
        *out_len = joined.size();
    });
}

char *rt_stub_custom_classes(const char *const *names, size_t n_names) {
    return guarded([&] {
        std::lock_guard<std::mutex> lock(g_stub_mutex);
        static StubRemoval removal;
        for (size_t i = 0; i < n_names; i++) {
            const std::string name = names[i];
            c10::ClassTypePtr cls = torch::getCustomClass(name);
            if (!cls) {
                continue;
            }
            const std::vector<torch::jit::Function *> methods = cls->methods();
            for (torch::jit::Function *method : methods) {
                auto stub = std::make_unique<torch::jit::BuiltinOpFunction>(
                    method->qualname(), method->getSchema(), stub_for(name));
                torch::jit::Function *raw = stub.get();
                // The registry owns it from here on (as it owns the original).
                torch::registerCustomClassMethod(std::move(stub));
                const std::string method_name = method->name();
                cls->unsafeRemoveMethod(method_name);
                cls->addMethod(raw);
                g_stubbed_methods.push_back(StubbedMethod{cls, method_name, method});
            }
        }
    });
}

char *rt_take_forbidden(void) {
    try {
        if (t_forbidden.empty()) {
            return nullptr;
        }
        std::string name;
        name.swap(t_forbidden);
        return malloc_text(name);
    } catch (...) {
        return nullptr;
    }
}

}  // extern "C"
