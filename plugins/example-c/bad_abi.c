/*
 * bad_abi.c: a plugin built for the next major version of the ABI. The host must refuse
 * it after reading abi_major, without calling anything in its table.
 *
 * Its functions only return errors, so that a host that wrongly accepts it fails
 * cleanly instead of crashing.
 */

#include "redisai_plugin.h"

struct RaiError {
    const char *message;
};

static RaiError refused = {"bad_abi plugin: this plugin must have been refused"};

static RaiError *init(const RaiHostApi *host) {
    (void)host;
    return &refused;
}

static const char *error_message(const RaiError *error) {
    return error != NULL ? error->message : "";
}

static void error_free(RaiError *error) {
    (void)error; /* static */
}

static const RaiPluginApi plugin_api = {
    .abi_major = RAI_PLUGIN_ABI_MAJOR + 1,
    .abi_minor = 0,
    .struct_size = sizeof(RaiPluginApi),
    .name = "BAD_ABI",
    .runtime_version = "0",
    .device_mask = 1u << RaiDeviceKind_Cpu,
    .dtype_mask = 1u << RaiDType_Float,
    .init = init,
    .error_message = error_message,
    .error_free = error_free,
};

RAI_PLUGIN_EXPORT const RaiPluginApi *redisai_plugin_entry(void) {
    return &plugin_api;
}
