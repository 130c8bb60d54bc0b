// The script extensions: the operators redis::execute, redis::asList and
// redisAI::model_execute, registered with torch::jit (rt_register_ops) and calling back
// into the plugin through rt_callbacks; and the sink those callbacks write their result
// into (rt_sink_*), with the decoding of an encoded reply. No C++ exception leaves this
// file: every entry point catches everything.

#include "common.h"

#include <torch/csrc/jit/frontend/function_schema_parser.h>
#include <torch/csrc/jit/runtime/custom_operator.h>
#include <torch/csrc/jit/runtime/operator.h>

#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace rt_shim;

struct rt_sink {
    std::string reply;
    std::vector<at::Tensor> tensors;
    bool failed = false;
    std::string error;
};

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

}  // extern "C"
