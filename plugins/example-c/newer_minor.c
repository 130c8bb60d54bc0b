/*
 * newer_minor.c: a plugin built for a newer minor version of the ABI than the host's
 * (as if it filled a table with fields the host does not know). The host must refuse
 * it after reading abi_minor, without calling anything in its table.
 *
 * Its functions only return errors, so that a host that wrongly accepts it fails
 * cleanly instead of crashing.
 */

#include "redisai_plugin.h"

struct RaiError {
    const char *message;
};

static RaiError refused = {"newer_minor plugin: this plugin must have been refused"};

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

/* The table of the next minor: this one plus an optional function at the end. */
typedef struct {
    RaiPluginApi current;
    void (*added_in_next_minor)(void);
} NextMinorApi;

static const NextMinorApi plugin_api = {
    .current =
        {
            .abi_major = RAI_PLUGIN_ABI_MAJOR,
            .abi_minor = RAI_PLUGIN_ABI_MINOR + 1,
            .struct_size = sizeof(NextMinorApi),
            .name = "NEWER_MINOR",
            .runtime_version = "0",
            .device_mask = 1u << RaiDeviceKind_Cpu,
            .dtype_mask = 1u << RaiDType_Float,
            .init = init,
            .error_message = error_message,
            .error_free = error_free,
        },
    .added_in_next_minor = NULL,
};

RAI_PLUGIN_EXPORT const RaiPluginApi *redisai_plugin_entry(void) {
    return &plugin_api.current;
}
