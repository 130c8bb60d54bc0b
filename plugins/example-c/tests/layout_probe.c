/*
 * layout_probe.c: sizes, alignments and field offsets of the ABI types as a C compiler
 * sees them through redisai_plugin.h; tests/plugins.rs compares them with abi.rs.
 */

#include <stddef.h>

#include "redisai_plugin.h"

typedef struct {
    const char *name;
    size_t value;
} LayoutEntry;

#define TYPE(T) {"sizeof " #T, sizeof(T)}, {"alignof " #T, _Alignof(T)}
#define FIELD(T, f) {#T "." #f, offsetof(T, f)}

static const LayoutEntry entries[] = {
    TYPE(RaiDType),
    TYPE(RaiDeviceKind),
    TYPE(RaiLogLevel),
    TYPE(RaiConfigKey),
    TYPE(RaiDevice),
    FIELD(RaiDevice, kind),
    FIELD(RaiDevice, id),
    TYPE(RaiTensorView),
    FIELD(RaiTensorView, dtype),
    FIELD(RaiTensorView, device),
    FIELD(RaiTensorView, ndim),
    FIELD(RaiTensorView, shape),
    FIELD(RaiTensorView, strides),
    FIELD(RaiTensorView, data),
    FIELD(RaiTensorView, byte_len),
    TYPE(RaiTensorOut),
    FIELD(RaiTensorOut, view),
    FIELD(RaiTensorOut, owner),
    TYPE(RaiHostApi),
    FIELD(RaiHostApi, abi_major),
    FIELD(RaiHostApi, abi_minor),
    FIELD(RaiHostApi, struct_size),
    FIELD(RaiHostApi, log),
    FIELD(RaiHostApi, config_get),
    FIELD(RaiHostApi, redis_command),
    FIELD(RaiHostApi, reply_free),
    FIELD(RaiHostApi, model_execute),
    FIELD(RaiHostApi, host_tensor_release),
    FIELD(RaiHostApi, output_alloc),
    TYPE(RaiReplyKind),
    TYPE(RaiReply),
    FIELD(RaiReply, kind),
    FIELD(RaiReply, integer),
    FIELD(RaiReply, double_value),
    FIELD(RaiReply, str),
    FIELD(RaiReply, len),
    FIELD(RaiReply, elements),
    FIELD(RaiReply, n_elements),
    TYPE(RaiModelOptions),
    FIELD(RaiModelOptions, device),
    FIELD(RaiModelOptions, batch_size),
    FIELD(RaiModelOptions, input_names),
    FIELD(RaiModelOptions, n_input_names),
    FIELD(RaiModelOptions, output_names),
    FIELD(RaiModelOptions, n_output_names),
    TYPE(RaiRunOptions),
    FIELD(RaiRunOptions, timeout_ms),
    FIELD(RaiRunOptions, cancel),
    FIELD(RaiRunOptions, host_ctx),
    TYPE(RaiScriptCall),
    FIELD(RaiScriptCall, function),
    FIELD(RaiScriptCall, inputs),
    FIELD(RaiScriptCall, n_inputs),
    FIELD(RaiScriptCall, keys),
    FIELD(RaiScriptCall, n_keys),
    FIELD(RaiScriptCall, args),
    FIELD(RaiScriptCall, n_args),
    FIELD(RaiScriptCall, convention),
    FIELD(RaiScriptCall, variadic),
    TYPE(RaiPluginApi),
    FIELD(RaiPluginApi, abi_major),
    FIELD(RaiPluginApi, abi_minor),
    FIELD(RaiPluginApi, struct_size),
    FIELD(RaiPluginApi, name),
    FIELD(RaiPluginApi, runtime_version),
    FIELD(RaiPluginApi, device_mask),
    FIELD(RaiPluginApi, dtype_mask),
    FIELD(RaiPluginApi, flags),
    FIELD(RaiPluginApi, init),
    FIELD(RaiPluginApi, error_message),
    FIELD(RaiPluginApi, error_free),
    FIELD(RaiPluginApi, model_load),
    FIELD(RaiPluginApi, model_free),
    FIELD(RaiPluginApi, model_input_count),
    FIELD(RaiPluginApi, model_input_name),
    FIELD(RaiPluginApi, model_output_count),
    FIELD(RaiPluginApi, model_output_name),
    FIELD(RaiPluginApi, model_run),
    FIELD(RaiPluginApi, tensor_release),
    FIELD(RaiPluginApi, script_load),
    FIELD(RaiPluginApi, script_free),
    FIELD(RaiPluginApi, script_run),
};

RAI_PLUGIN_EXPORT const LayoutEntry *rai_layout_probe(size_t *count) {
    *count = sizeof entries / sizeof entries[0];
    return entries;
}
