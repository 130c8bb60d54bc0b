/*
 * example_add.c: a complete redisai-rs backend plugin in C11, written against
 * redisai_plugin.h alone.
 *
 * Backend "EXAMPLE": a model is any blob whose content is the ASCII text `add`. It has
 * two FLOAT inputs, "a" and "b", of the same shape and one output, "sum" = a + b.
 * Runs only read the model, so they may overlap (RAI_PLUGIN_FLAG_CONCURRENT_RUN).
 *
 * Build: cc -std=c11 -shared -fPIC -fvisibility=hidden -I plugin-api/include \
 *            -o example_add.so plugins/example-c/example_add.c
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redisai_plugin.h"

/* ---- errors: heap objects, freed by error_free ---- */

/* `code` is a RaiErrorCode: what kind of failure it is (ABI 1.4); the host reads it
 * through error_code and treats a plugin without that function as always "failed". */
struct RaiError {
    uint32_t code;
    char *message;
};

/* Returned when an error cannot be allocated; error_free leaves it alone. */
static char out_of_memory_text[] = "example plugin: out of memory";
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

/* ---- init ---- */

/* Set once by init, on the main thread, before any other call. */
static const RaiHostApi *host;

static RaiError *init(const RaiHostApi *host_api) {
    if (host_api == NULL) {
        return error_new(RaiErrorCode_Failed, "example plugin: null host table");
    }
    if (host_api->abi_major != RAI_PLUGIN_ABI_MAJOR) {
        return error_new(RaiErrorCode_Failed, "example plugin: host ABI %u, plugin ABI %u",
                         (unsigned)host_api->abi_major, (unsigned)RAI_PLUGIN_ABI_MAJOR);
    }
    host = host_api;
    /* struct_size says which fields the host filled. */
    if (host->struct_size >= offsetof(RaiHostApi, log) + sizeof host->log && host->log != NULL) {
        host->log(RaiLogLevel_Notice, "example plugin: ready");
    }
    return NULL;
}

/* ---- models ---- */

static const char *const input_names[] = {"a", "b"};
static const char *const output_names[] = {"sum"};
enum { N_INPUTS = 2, N_OUTPUTS = 1 };

/* Every "add" model is the same; the object exists so that each load has its handle. */
struct RaiModel {
    unsigned char unused;
};

static RaiError *model_load(const RaiModelOptions *options, const uint8_t *blob, size_t blob_len,
                            RaiModel **out) {
    if (out == NULL) {
        return error_new(RaiErrorCode_Failed, "example plugin: null output pointer");
    }
    *out = NULL;
    if (options != NULL && options->device.kind != RaiDeviceKind_Cpu) {
        return error_new(RaiErrorCode_Failed, "example plugin: only CPU is supported");
    }
    static const char text[] = "add";
    if (blob == NULL || blob_len != sizeof text - 1 || memcmp(blob, text, blob_len) != 0) {
        return error_new(RaiErrorCode_Failed, "example plugin: unknown model blob");
    }
    RaiModel *model = calloc(1, sizeof *model);
    if (model == NULL) {
        return &out_of_memory;
    }
    *out = model;
    return NULL;
}

static void model_free(RaiModel *model) {
    free(model);
}

static size_t model_input_count(const RaiModel *model) {
    return model != NULL ? N_INPUTS : 0;
}

static const char *model_input_name(const RaiModel *model, size_t index) {
    return model != NULL && index < N_INPUTS ? input_names[index] : NULL;
}

static size_t model_output_count(const RaiModel *model) {
    return model != NULL ? N_OUTPUTS : 0;
}

static const char *model_output_name(const RaiModel *model, size_t index) {
    return model != NULL && index < N_OUTPUTS ? output_names[index] : NULL;
}

/* ---- tensors ---- */

/* What an output's `owner` points to; released by tensor_release. */
typedef struct {
    int64_t *shape;
    float *data;
    /* `data` is memory the host lent (ABI 1.5): the host owns it, never free it. */
    int lent;
} OwnedTensor;

static void tensor_release(void *owner) {
    OwnedTensor *tensor = owner;
    if (tensor == NULL) {
        return;
    }
    free(tensor->shape);
    if (!tensor->lent) {
        free(tensor->data);
    }
    free(tensor);
}

/* `bytes` for an output: lent by the host when it can (ABI 1.5, `output_alloc`; the host
 * then stores the output without copying it, and frees the memory itself if the run
 * fails), else from malloc. Sets `*lent` to say which. */
static void *output_memory(size_t bytes, int *lent) {
    *lent = 0;
    if (bytes > 0 && host != NULL && host->abi_minor >= 5 &&
        host->struct_size >= offsetof(RaiHostApi, output_alloc) + sizeof host->output_alloc &&
        host->output_alloc != NULL) {
        void *memory = host->output_alloc(bytes);
        if (memory != NULL) {
            *lent = 1;
            return memory;
        }
    }
    return malloc(bytes > 0 ? bytes : 1);
}

/* Checks that `view` is a contiguous CPU FLOAT tensor; sets its element count. */
static RaiError *check_input(const RaiTensorView *view, const char *name, size_t *count) {
    if (view->dtype != RaiDType_Float) {
        return error_new(RaiErrorCode_InvalidInput,
                         "example plugin: input '%s' must be FLOAT", name);
    }
    if (view->device.kind != RaiDeviceKind_Cpu) {
        return error_new(RaiErrorCode_InvalidInput,
                         "example plugin: input '%s' is not on the CPU", name);
    }
    if (view->ndim > 0 && view->shape == NULL) {
        return error_new(RaiErrorCode_InvalidInput,
                         "example plugin: input '%s' has no shape", name);
    }
    /* Row-major: the stride of dimension i is the product of the later dimensions. */
    size_t elements = 1;
    for (size_t i = view->ndim; i-- > 0;) {
        int64_t dim = view->shape[i];
        if (dim < 0 || (elements > 0 && (uint64_t)dim > SIZE_MAX / sizeof(float) / elements)) {
            return error_new(RaiErrorCode_InvalidInput,
                             "example plugin: input '%s' has a bad shape", name);
        }
        if (view->strides != NULL && dim > 1 && (uint64_t)view->strides[i] != elements) {
            return error_new(RaiErrorCode_InvalidInput,
                             "example plugin: input '%s' is not contiguous", name);
        }
        elements *= (size_t)dim;
    }
    if (view->byte_len != elements * sizeof(float) || (elements > 0 && view->data == NULL)) {
        return error_new(RaiErrorCode_InvalidInput,
                         "example plugin: input '%s' has %zu bytes for %zu FLOAT elements", name,
                         view->byte_len, elements);
    }
    *count = elements;
    return NULL;
}

static RaiError *model_run(RaiModel *model, const RaiRunOptions *options,
                           const RaiTensorView *inputs, size_t n_inputs, RaiTensorOut *outputs,
                           size_t n_outputs) {
    (void)options; /* a run is too short to time out */
    if (model == NULL) {
        return error_new(RaiErrorCode_Failed, "example plugin: null model");
    }
    if (n_inputs != N_INPUTS || inputs == NULL) {
        return error_new(RaiErrorCode_InvalidInput,
                         "example plugin: expected 2 inputs, got %zu", n_inputs);
    }
    if (n_outputs != N_OUTPUTS || outputs == NULL) {
        return error_new(RaiErrorCode_InvalidInput,
                         "example plugin: expected 1 output, got %zu", n_outputs);
    }
    const RaiTensorView *a = &inputs[0];
    const RaiTensorView *b = &inputs[1];
    size_t count = 0, b_count = 0;
    RaiError *error = check_input(a, input_names[0], &count);
    if (error == NULL) {
        error = check_input(b, input_names[1], &b_count);
    }
    if (error != NULL) {
        return error;
    }
    if (a->ndim != b->ndim ||
        (a->ndim > 0 && memcmp(a->shape, b->shape, a->ndim * sizeof *a->shape) != 0)) {
        return error_new(RaiErrorCode_InvalidInput,
                         "example plugin: inputs 'a' and 'b' have different shapes");
    }

    /* Never NULL, even for a scalar or an empty tensor. */
    OwnedTensor *sum = malloc(sizeof *sum);
    int64_t *shape = malloc((a->ndim > 0 ? a->ndim : 1) * sizeof *shape);
    int lent = 0;
    float *data = output_memory(count * sizeof *data, &lent);
    if (sum == NULL || shape == NULL || data == NULL) {
        free(sum);
        free(shape);
        if (!lent) {
            free(data);
        }
        return &out_of_memory;
    }
    if (a->ndim > 0) {
        memcpy(shape, a->shape, a->ndim * sizeof *shape);
    }
    /* The host's data need not be aligned for float: copy elements bytewise. */
    const unsigned char *a_bytes = a->data;
    const unsigned char *b_bytes = b->data;
    for (size_t i = 0; i < count; i++) {
        float x, y;
        memcpy(&x, a_bytes + i * sizeof x, sizeof x);
        memcpy(&y, b_bytes + i * sizeof y, sizeof y);
        data[i] = x + y;
    }
    sum->shape = shape;
    sum->data = data;
    sum->lent = lent;

    outputs[0] = (RaiTensorOut){
        .view =
            {
                .dtype = RaiDType_Float,
                .device = {.kind = RaiDeviceKind_Cpu, .id = 0},
                .ndim = a->ndim,
                .shape = shape,
                .strides = NULL,
                .data = data,
                .byte_len = count * sizeof *data,
            },
        .owner = sum,
    };
    return NULL;
}

/* ---- the table ---- */

static const RaiPluginApi plugin_api = {
    .abi_major = RAI_PLUGIN_ABI_MAJOR,
    .abi_minor = RAI_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(RaiPluginApi),
    .name = "EXAMPLE",
    .runtime_version = "1.0",
    .device_mask = 1u << RaiDeviceKind_Cpu,
    .dtype_mask = 1u << RaiDType_Float,
    .flags = RAI_PLUGIN_FLAG_CONCURRENT_RUN,
    .init = init,
    .error_message = error_message,
    .error_free = error_free,
    .model_load = model_load,
    .model_free = model_free,
    .model_input_count = model_input_count,
    .model_input_name = model_input_name,
    .model_output_count = model_output_count,
    .model_output_name = model_output_name,
    .model_run = model_run,
    .tensor_release = tensor_release,
    /* No scripts. */
    .script_load = NULL,
    .script_free = NULL,
    .script_run = NULL,
    /* No memory statistics (ABI 1.3). */
    .memory_stats = NULL,
    .model_memory = NULL,
    .error_code = error_code,
};

RAI_PLUGIN_EXPORT const RaiPluginApi *redisai_plugin_entry(void) {
    return &plugin_api;
}
