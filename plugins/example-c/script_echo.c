/*
 * script_echo.c: an ABI exercise for the script entry points and the ABI 1.1 host
 * services, written against redisai_plugin.h alone. It is NOT a TorchScript runtime:
 * it calls itself "TORCH" only so that the core's script commands (TORCH-only, as in
 * RedisAI) can load it with AI.CONFIG LOADBACKEND TORCH <path> in ABI tests.
 *
 * A "script" is any source text; `syntax_error` in it fails the load. Functions:
 *   echo    returns a copy of each input (several outputs from one call)
 *   incr    redis_command INCR keys[0], then GET keys[0]; returns it as INT64 [1]
 *   len     redis_command LRANGE keys[0] 0 -1; returns the element count as INT64 [1]
 *   exec    runs the command given in ARGS; an error reply fails the call, otherwise
 *           returns the integer reply (or 0) as INT64 [1]
 *   model   model_execute args[0] (else keys[0]) on the inputs; returns its one output
 *   wait    waits until the host cancels the run (at most 10 s), then fails
 *   calling returns the call's convention and variadic index (ABI 1.2) as two INT64 [1]
 * Any other function: "Function <name> does not exist in the given script."
 */

#define _POSIX_C_SOURCE 199309L

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redisai_plugin.h"

/* `code` is a RaiErrorCode (ABI 1.4), read by the host through error_code. */
struct RaiError {
    uint32_t code;
    char *message;
};

static char out_of_memory_text[] = "script_echo: out of memory";
static RaiError out_of_memory = {RaiErrorCode_OutOfMemory, out_of_memory_text};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static RaiError *error_new(RaiErrorCode code, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int length = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (length < 0) {
        return &out_of_memory;
    }
    RaiError *error = malloc(sizeof *error);
    char *message = malloc((size_t)length + 1);
    if (error == NULL || message == NULL) {
        free(error);
        free(message);
        return &out_of_memory;
    }
    va_start(args, format);
    vsnprintf(message, (size_t)length + 1, format, args);
    va_end(args);
    error->code = code;
    error->message = message;
    return error;
}

static const char *error_message(const RaiError *error) {
    return error != NULL ? error->message : "";
}

static uint32_t error_code(const RaiError *error) {
    return error != NULL ? error->code : RaiErrorCode_Failed;
}

static void error_free(RaiError *error) {
    if (error == NULL || error == &out_of_memory) {
        return;
    }
    free(error->message);
    free(error);
}

static const RaiHostApi *host;

static RaiError *init(const RaiHostApi *host_api) {
    if (host_api == NULL || host_api->abi_major != RAI_PLUGIN_ABI_MAJOR) {
        return error_new(RaiErrorCode_Failed, "script_echo: unusable host table");
    }
    host = host_api;
    return NULL;
}

static int host_has_services(void) {
    return host != NULL && host->abi_minor >= 1 &&
           host->struct_size >= offsetof(RaiHostApi, host_tensor_release) +
                                    sizeof host->host_tensor_release &&
           host->redis_command != NULL && host->reply_free != NULL &&
           host->model_execute != NULL && host->host_tensor_release != NULL;
}

/* No models. */
static RaiError *model_load(const RaiModelOptions *options, const uint8_t *blob, size_t blob_len,
                            RaiModel **out) {
    (void)options;
    (void)blob;
    (void)blob_len;
    if (out != NULL) {
        *out = NULL;
    }
    return error_new(RaiErrorCode_Failed, "script_echo: no models");
}

static void model_free(RaiModel *model) {
    (void)model;
}

static size_t model_count(const RaiModel *model) {
    (void)model;
    return 0;
}

static const char *model_name(const RaiModel *model, size_t index) {
    (void)model;
    (void)index;
    return NULL;
}

static RaiError *model_run(RaiModel *model, const RaiRunOptions *options,
                           const RaiTensorView *inputs, size_t n_inputs, RaiTensorOut *outputs,
                           size_t n_outputs) {
    (void)model;
    (void)options;
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    return error_new(RaiErrorCode_Failed, "script_echo: no models");
}

/* ---- tensors ---- */

typedef struct {
    int64_t *shape;
    void *data;
} OwnedTensor;

static void tensor_release(void *owner) {
    OwnedTensor *tensor = owner;
    if (tensor == NULL) {
        return;
    }
    free(tensor->shape);
    free(tensor->data);
    free(tensor);
}

/* Copies `view` into a plugin-owned output. */
static RaiError *copy_out(const RaiTensorView *view, RaiTensorOut *out) {
    OwnedTensor *tensor = malloc(sizeof *tensor);
    int64_t *shape = malloc((view->ndim > 0 ? view->ndim : 1) * sizeof *shape);
    void *data = malloc(view->byte_len > 0 ? view->byte_len : 1);
    if (tensor == NULL || shape == NULL || data == NULL) {
        free(tensor);
        free(shape);
        free(data);
        return &out_of_memory;
    }
    if (view->ndim > 0) {
        memcpy(shape, view->shape, view->ndim * sizeof *shape);
    }
    if (view->byte_len > 0) {
        memcpy(data, view->data, view->byte_len);
    }
    tensor->shape = shape;
    tensor->data = data;
    *out = (RaiTensorOut){
        .view = {.dtype = view->dtype,
                 .device = {.kind = RaiDeviceKind_Cpu, .id = 0},
                 .ndim = view->ndim,
                 .shape = shape,
                 .strides = NULL,
                 .data = data,
                 .byte_len = view->byte_len},
        .owner = tensor,
    };
    return NULL;
}

static RaiError *int64_out(int64_t value, RaiTensorOut *out) {
    int64_t one = 1;
    RaiTensorView view = {.dtype = RaiDType_Int64,
                          .device = {.kind = RaiDeviceKind_Cpu, .id = 0},
                          .ndim = 1,
                          .shape = &one,
                          .strides = NULL,
                          .data = &value,
                          .byte_len = sizeof value};
    return copy_out(&view, out);
}

/* ---- scripts ---- */

struct RaiScript {
    char **entry_points;
    size_t n_entry_points;
};

static void script_free(RaiScript *script) {
    if (script == NULL) {
        return;
    }
    for (size_t i = 0; i < script->n_entry_points; i++) {
        free(script->entry_points[i]);
    }
    free(script->entry_points);
    free(script);
}

static RaiError *script_load(RaiDevice device, const char *source,
                             const char *const *entry_points, size_t n_entry_points,
                             RaiScript **out) {
    if (out == NULL || source == NULL) {
        return error_new(RaiErrorCode_Failed, "script_echo: null argument");
    }
    *out = NULL;
    if (device.kind != RaiDeviceKind_Cpu) {
        return error_new(RaiErrorCode_Failed, "script_echo: only CPU is supported");
    }
    if (strstr(source, "syntax_error") != NULL) {
        return error_new(RaiErrorCode_Failed, "script_echo: syntax error in the script source");
    }
    RaiScript *script = calloc(1, sizeof *script);
    if (script == NULL) {
        return &out_of_memory;
    }
    script->entry_points = calloc(n_entry_points > 0 ? n_entry_points : 1, sizeof(char *));
    if (script->entry_points == NULL) {
        free(script);
        return &out_of_memory;
    }
    for (size_t i = 0; i < n_entry_points; i++) {
        size_t len = strlen(entry_points[i]);
        script->entry_points[i] = malloc(len + 1);
        if (script->entry_points[i] == NULL) {
            script_free(script);
            return &out_of_memory;
        }
        memcpy(script->entry_points[i], entry_points[i], len + 1);
        script->n_entry_points = i + 1;
    }
    *out = script;
    return NULL;
}

static int declared(const RaiScript *script, const char *function) {
    if (script->n_entry_points == 0) {
        return 1; /* stored with the deprecated SCRIPTSET: any function */
    }
    for (size_t i = 0; i < script->n_entry_points; i++) {
        if (strcmp(script->entry_points[i], function) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Runs a command; an error reply becomes an error; an integer reply is stored. */
static RaiError *command(void *ctx, const char *const *argv, size_t argc, RaiReply **reply_out) {
    size_t lens[16];
    if (argc > 16) {
        return error_new(RaiErrorCode_Failed, "script_echo: too many arguments");
    }
    for (size_t i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    RaiReply *reply = host->redis_command(ctx, argv, lens, argc);
    if (reply == NULL) {
        return error_new(RaiErrorCode_Failed, "script_echo: redis_command returned null");
    }
    if (reply->kind == RaiReplyKind_Error) {
        RaiError *error =
            error_new(RaiErrorCode_Failed, "%s", reply->str != NULL ? reply->str : "");
        host->reply_free(reply);
        return error;
    }
    *reply_out = reply;
    return NULL;
}

/* The ABI 1.2 fields of the call as two outputs; a host of an older minor has none, and
 * calls every function the AI.SCRIPTEXECUTE way. */
static RaiError *calling_out(const RaiScriptCall *call, RaiTensorOut *outputs,
                             size_t max_outputs, size_t *n_outputs) {
    int64_t convention = RAI_SCRIPT_CALL_LISTS;
    int64_t variadic = -1;
    if (host != NULL && host->abi_minor >= 2) {
        convention = call->convention;
        variadic = call->variadic;
    }
    if (max_outputs < 2) {
        return error_new(RaiErrorCode_Failed, "script_echo: calling returns 2 outputs");
    }
    RaiError *error = int64_out(convention, &outputs[0]);
    if (error != NULL) {
        return error;
    }
    error = int64_out(variadic, &outputs[1]);
    if (error != NULL) {
        tensor_release(outputs[0].owner);
        return error;
    }
    *n_outputs = 2;
    return NULL;
}

static RaiError *script_run(RaiScript *script, const RaiRunOptions *options,
                            const RaiScriptCall *call, RaiTensorOut *outputs, size_t max_outputs,
                            size_t *n_outputs) {
    if (script == NULL || options == NULL || call == NULL || n_outputs == NULL) {
        return error_new(RaiErrorCode_Failed, "script_echo: null argument");
    }
    *n_outputs = 0;
    const char *function = call->function;
    if (!declared(script, function)) {
        return error_new(RaiErrorCode_Failed, "Function %s does not exist in the given script.",
                         function);
    }
    if (strcmp(function, "echo") == 0) {
        if (call->n_inputs > max_outputs) {
            return error_new(RaiErrorCode_InvalidInput,
                             "script_echo: %zu inputs, room for %zu outputs", call->n_inputs,
                             max_outputs);
        }
        for (size_t i = 0; i < call->n_inputs; i++) {
            RaiError *error = copy_out(&call->inputs[i], &outputs[i]);
            if (error != NULL) {
                for (size_t j = 0; j < i; j++) {
                    tensor_release(outputs[j].owner);
                }
                return error;
            }
        }
        *n_outputs = call->n_inputs;
        return NULL;
    }
    if (strcmp(function, "wait") == 0) {
        struct timespec pause = {0, 1000000};
        for (int i = 0; i < 10000; i++) {
            if (options->cancel != NULL && __atomic_load_n(options->cancel, __ATOMIC_RELAXED)) {
                return error_new(RaiErrorCode_Cancelled, "script_echo: cancelled");
            }
            nanosleep(&pause, NULL);
        }
        return error_new(RaiErrorCode_Failed, "script_echo: never cancelled");
    }
    if (strcmp(function, "calling") == 0) {
        return calling_out(call, outputs, max_outputs, n_outputs);
    }
    if (!host_has_services() || options->host_ctx == NULL) {
        return error_new(RaiErrorCode_Failed, "script_echo: the host offers no script services");
    }
    void *ctx = options->host_ctx;
    if (max_outputs < 1) {
        return error_new(RaiErrorCode_Failed, "script_echo: no room for an output");
    }
    if (strcmp(function, "incr") == 0 || strcmp(function, "len") == 0) {
        if (call->n_keys < 1) {
            return error_new(RaiErrorCode_InvalidInput, "script_echo: %s needs a key", function);
        }
        RaiReply *reply = NULL;
        int64_t value = 0;
        if (strcmp(function, "incr") == 0) {
            const char *incr[] = {"INCR", call->keys[0]};
            RaiError *error = command(ctx, incr, 2, &reply);
            if (error != NULL) {
                return error;
            }
            host->reply_free(reply);
            const char *get[] = {"GET", call->keys[0]};
            error = command(ctx, get, 2, &reply);
            if (error != NULL) {
                return error;
            }
            value = reply->kind == RaiReplyKind_String ? strtoll(reply->str, NULL, 10) : -1;
        } else {
            const char *lrange[] = {"LRANGE", call->keys[0], "0", "-1"};
            RaiError *error = command(ctx, lrange, 4, &reply);
            if (error != NULL) {
                return error;
            }
            value = reply->kind == RaiReplyKind_Array ? (int64_t)reply->n_elements : -1;
        }
        host->reply_free(reply);
        RaiError *error = int64_out(value, &outputs[0]);
        if (error == NULL) {
            *n_outputs = 1;
        }
        return error;
    }
    if (strcmp(function, "exec") == 0) {
        if (call->n_args < 1) {
            return error_new(RaiErrorCode_InvalidInput, "script_echo: exec needs ARGS");
        }
        RaiReply *reply = NULL;
        RaiError *error = command(ctx, call->args, call->n_args, &reply);
        if (error != NULL) {
            return error;
        }
        int64_t value = reply->kind == RaiReplyKind_Integer ? reply->integer : 0;
        host->reply_free(reply);
        error = int64_out(value, &outputs[0]);
        if (error == NULL) {
            *n_outputs = 1;
        }
        return error;
    }
    if (strcmp(function, "model") == 0) {
        if (call->n_keys < 1 && call->n_args < 1) {
            return error_new(RaiErrorCode_InvalidInput, "script_echo: model needs a key");
        }
        const char *key = call->n_args > 0 ? call->args[0] : call->keys[0];
        RaiTensorOut result;
        RaiReply *failure = host->model_execute(ctx, key, call->inputs, call->n_inputs, &result, 1);
        if (failure != NULL) {
            RaiError *error =
                error_new(RaiErrorCode_Failed, "%s", failure->str != NULL ? failure->str : "");
            host->reply_free(failure);
            return error;
        }
        RaiError *error = copy_out(&result.view, &outputs[0]);
        host->host_tensor_release(result.owner);
        if (error == NULL) {
            *n_outputs = 1;
        }
        return error;
    }
    return error_new(RaiErrorCode_Failed, "Function %s does not exist in the given script.",
                     function);
}

/* build.rs also builds this file as a plugin of ABI 1.1 (before RaiScriptCall's
 * convention): the host must still load it and call it. */
#ifndef SCRIPT_ECHO_ABI_MINOR
#define SCRIPT_ECHO_ABI_MINOR RAI_PLUGIN_ABI_MINOR
#endif

static const RaiPluginApi plugin_api = {
    .abi_major = RAI_PLUGIN_ABI_MAJOR,
    .abi_minor = SCRIPT_ECHO_ABI_MINOR,
    .struct_size = sizeof(RaiPluginApi),
    .name = "TORCH",
    .runtime_version = "script-echo-abi-test",
    .device_mask = 1u << RaiDeviceKind_Cpu,
    .dtype_mask = 0x3ffu,
    .flags = RAI_PLUGIN_FLAG_CONCURRENT_RUN,
    .init = init,
    .error_message = error_message,
    .error_free = error_free,
    .model_load = model_load,
    .model_free = model_free,
    .model_input_count = model_count,
    .model_input_name = model_name,
    .model_output_count = model_count,
    .model_output_name = model_name,
    .model_run = model_run,
    .tensor_release = tensor_release,
    .script_load = script_load,
    .script_free = script_free,
    .script_run = script_run,
    .memory_stats = NULL,
    .model_memory = NULL,
    /* Read by the host only when abi_minor >= 4 (not for the ABI 1.1 build). */
    .error_code = error_code,
};

RAI_PLUGIN_EXPORT const RaiPluginApi *redisai_plugin_entry(void) {
    return &plugin_api;
}
