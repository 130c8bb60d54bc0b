/*
 * redisai_plugin.h: the C ABI between the redisai-rs core (the host) and a backend
 * plugin.
 *
 * GENERATED FILE, DO NOT EDIT. It is generated from plugin-api/src/abi.rs by cbindgen
 * with plugin-api/cbindgen.toml. Regenerate with:
 *
 *     REDISAI_UPDATE_HEADER=1 cargo test -p redisai-plugin-api --test header
 */
/*
 * The C ABI between the redisai-rs core (the host) and a backend plugin.
 *
 * `include/redisai_plugin.h` is generated from this file (see `tests/header.rs`); C
 * plugins include that header, Rust plugins use `crate::sdk`.
 *
 * # Versioning
 * A plugin exports one symbol, `RAI_PLUGIN_ENTRY_SYMBOL`, of type `RaiPluginEntryFn`.
 * The table it returns starts with `abi_major` and `abi_minor`, which never move. The
 * host refuses a plugin whose major differs from its own or whose minor is newer than
 * its own. Adding an optional function at the end of a table bumps the minor; any
 * other change bumps the major. `struct_size` tells the host how much of the table the
 * plugin filled, so an older plugin's table can be read by a newer host. A struct the
 * host passes in may also grow at its end with a minor (each new field says which); a
 * plugin reads such a field only when the host's `abi_minor` has it, and an older
 * plugin never sees it.
 *
 * # Ownership
 * - The host owns what it passes in (blobs, option strings, input tensors, the host
 *   table); pointers stay valid only for the duration of the call.
 * - The plugin owns what it returns (models, scripts, output tensors, errors) and frees
 *   it when the host calls the matching free function. The host calls each free
 *   function exactly once per object.
 * - Strings are NUL-terminated UTF-8 unless a length is given.
 * - From minor 5 the host may also lend output memory (`RaiHostApi::output_alloc`): an
 *   output whose data is such a buffer becomes the stored tensor without a copy. The
 *   plugin still releases the output's `owner`, but never frees lent memory itself.
 *
 * # Threading
 * - `init` is called once, before any other function and never alongside another call
 *   into the plugin: on Redis's main thread (module load, `AI.CONFIG LOADBACKEND`) or on
 *   the host's loader thread (a backend opened on first use by a model or script store).
 * - `model_load`, `model_free`, `script_load` and `script_free` may be called from any
 *   thread, one at a time per object.
 * - `model_run` on the same model may be called from several threads at once only when
 *   the plugin sets `RAI_PLUGIN_FLAG_CONCURRENT_RUN`; otherwise the host serialises
 *   runs of each model. Runs of different models may always overlap.
 * - Host services may be called from any thread during a call into the plugin.
 *   `redis_command` and `model_execute` need the `host_ctx` of the run they serve and
 *   are valid only during that run; the host serialises their access to the keyspace.
 *
 * # Errors
 * Every fallible function returns a `RaiError *`: null on success, otherwise an error
 * the host reads with `error_message` and releases with `error_free`. From minor 4 a
 * plugin may also say what kind of failure it was through `error_code` (a
 * `RaiErrorCode`); without it, or for a value the host does not know, an error counts
 * as `RaiErrorCode::Failed`. The code never changes the message. A plugin must
 * never abort the process, throw a C++ exception or unwind a Rust panic across this
 * boundary.
 */

#ifndef REDISAI_PLUGIN_H
#define REDISAI_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

/* Exports the entry symbol from a shared library built with hidden visibility. */
#if defined(_WIN32)
#define RAI_PLUGIN_EXPORT __declspec(dllexport)
#else
#define RAI_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Opaque plugin-owned objects; only pointers to them cross the ABI. */
typedef struct RaiError RaiError;
typedef struct RaiModel RaiModel;
typedef struct RaiScript RaiScript;

/** Name of the one symbol a plugin exports. */
#define RAI_PLUGIN_ENTRY_SYMBOL "redisai_plugin_entry"

/**
 * Major version of this ABI. A plugin built for another major is refused.
 */
#define RAI_PLUGIN_ABI_MAJOR 1

/**
 * Minor version of this ABI. A plugin with a newer minor is refused.
 */
#define RAI_PLUGIN_ABI_MINOR 5

/**
 * The plugin's `model_run` may be called concurrently on the same model.
 */
#define RAI_PLUGIN_FLAG_CONCURRENT_RUN 1

/**
 * The plugin stops every `model_run` once `RaiRunOptions::timeout_ms` has passed
 * (within a few milliseconds) and returns an error. Only such a plugin's models may run
 * on the server's main thread, where a run that cannot be stopped would stall the
 * server for as long as it takes. A plugin without the flag (any plugin built before
 * it) is never run there.
 */
#define RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN 2

/**
 * `RaiScriptCall::convention` of `AI.SCRIPTEXECUTE`: the function is called as
 * `fn(tensors: List[Tensor], keys: List[str], args: List[str])`.
 */
#define RAI_SCRIPT_CALL_LISTS 0

/**
 * `RaiScriptCall::convention` of the deprecated `AI.SCRIPTRUN`: the inputs are the
 * function's own parameters, in order (no keys or args); those after `$` (from
 * `RaiScriptCall::variadic`) form one list of tensors.
 */
#define RAI_SCRIPT_CALL_POSITIONAL 1

/**
 * `RaiMemoryStats` and `model_memory` value for "the runtime cannot tell".
 */
#define RAI_MEMORY_UNKNOWN UINT64_MAX

/**
 * Kind of a `RaiReply`.
 */
enum RaiReplyKind
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * A null reply (a missing key, for example).
     */
    RaiReplyKind_Nil = 0,
    /**
     * `integer` holds the value.
     */
    RaiReplyKind_Integer = 1,
    /**
     * `str`/`len` hold the bytes (a bulk or status string).
     */
    RaiReplyKind_String = 2,
    /**
     * `str`/`len` hold the error message, e.g. `ERR wrong number of arguments`.
     */
    RaiReplyKind_Error = 3,
    /**
     * `elements`/`n_elements` hold the items.
     */
    RaiReplyKind_Array = 4,
    /**
     * `double_value` holds the value.
     */
    RaiReplyKind_Double = 5,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum RaiReplyKind RaiReplyKind;
#else
typedef uint32_t RaiReplyKind;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Element types. Numeric data is little-endian; STRING data is the concatenation of
 * NUL-terminated elements; BOOL is one byte, 0 or 1.
 */
enum RaiDType
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    RaiDType_Float = 0,
    RaiDType_Double = 1,
    RaiDType_Int8 = 2,
    RaiDType_Int16 = 3,
    RaiDType_Int32 = 4,
    RaiDType_Int64 = 5,
    RaiDType_Uint8 = 6,
    RaiDType_Uint16 = 7,
    RaiDType_Bool = 8,
    RaiDType_String = 9,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum RaiDType RaiDType;
#else
typedef uint32_t RaiDType;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Kind of device a tensor's data lives on, or a model runs on.
 */
enum RaiDeviceKind
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    RaiDeviceKind_Cpu = 0,
    RaiDeviceKind_Gpu = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum RaiDeviceKind RaiDeviceKind;
#else
typedef uint32_t RaiDeviceKind;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Log levels of `RaiHostApi::log`, as Redis names them.
 */
enum RaiLogLevel
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    RaiLogLevel_Debug = 0,
    RaiLogLevel_Verbose = 1,
    RaiLogLevel_Notice = 2,
    RaiLogLevel_Warning = 3,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum RaiLogLevel RaiLogLevel;
#else
typedef uint32_t RaiLogLevel;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Settings a plugin may read at any time through `RaiHostApi::config_get`.
 */
enum RaiConfigKey
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Threads inside one operator; 0 lets the runtime choose.
     */
    RaiConfigKey_IntraOpParallelism = 0,
    /**
     * Operators run in parallel; 0 lets the runtime choose.
     */
    RaiConfigKey_InterOpParallelism = 1,
    /**
     * Longest run of one model in milliseconds; 0 means none.
     */
    RaiConfigKey_ModelExecutionTimeoutMs = 2,
    /**
     * Memory the backend may use in MB; 0 means no limit.
     */
    RaiConfigKey_BackendMemoryLimitMb = 3,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum RaiConfigKey RaiConfigKey;
#else
typedef uint32_t RaiConfigKey;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Minor 4: what kind of failure a `RaiError` reports, as `error_code` returns it. The
 * host reads the value as a plain `uint32_t` and treats any value it does not know as
 * `RaiErrorCode::Failed`, so later minors may add codes.
 */
enum RaiErrorCode
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Any other failure (the only kind before minor 4).
     */
    RaiErrorCode_Failed = 0,
    /**
     * The inputs do not fit the model or script: count, shape, element type or size.
     */
    RaiErrorCode_InvalidInput = 1,
    /**
     * The run passed its `timeout_ms` and was stopped.
     */
    RaiErrorCode_TimedOut = 2,
    /**
     * The run was stopped because the host set its `cancel` flag.
     */
    RaiErrorCode_Cancelled = 3,
    /**
     * The backend refused an allocation (its BACKEND_MEMORY_LIMIT or the device's memory).
     */
    RaiErrorCode_OutOfMemory = 4,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum RaiErrorCode RaiErrorCode;
#else
typedef uint32_t RaiErrorCode;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * A Redis reply as the host hands it to a plugin: a tree owned by the host, released
 * as a whole with `RaiHostApi::reply_free` on its root. Strings are binary safe (use
 * `len`) and also NUL-terminated for convenience.
 */
typedef struct RaiReply {
    RaiReplyKind kind;
    int64_t integer;
    double double_value;
    const char *str;
    size_t len;
    const struct RaiReply *elements;
    size_t n_elements;
} RaiReply;

/**
 * A device: its kind and index (`GPU:1` is `{Gpu, 1}`; `CPU` is `{Cpu, 0}`).
 */
typedef struct RaiDevice {
    RaiDeviceKind kind;
    int32_t id;
} RaiDevice;

/**
 * A borrowed tensor. `strides` counts elements and may be null for row-major
 * contiguous data (the only layout the host produces). For STRING tensors
 * `byte_len` is the total length of the NUL-terminated elements. `shape` may be null
 * when `ndim` is 0, and `data` when `byte_len` is 0.
 */
typedef struct RaiTensorView {
    RaiDType dtype;
    struct RaiDevice device;
    size_t ndim;
    const int64_t *shape;
    const int64_t *strides;
    const void *data;
    size_t byte_len;
} RaiTensorView;

/**
 * An output tensor filled in by the plugin: a view of CPU data that stays valid until
 * the host calls `tensor_release(owner)`. The host reads outputs only when `model_run`
 * (or `script_run`) succeeds; on error the plugin keeps and frees what it produced.
 */
typedef struct RaiTensorOut {
    struct RaiTensorView view;
    void *owner;
} RaiTensorOut;

/**
 * Services the host offers to the plugin, passed to `init` and valid until the
 * process exits.
 */
typedef struct RaiHostApi {
    uint32_t abi_major;
    uint32_t abi_minor;
    size_t struct_size;
    /**
     * Writes a line to the Redis log. `level` is a `RaiLogLevel` (passed as a plain
     * integer so that no value can be misread). Callable from any thread.
     */
    void (*log)(uint32_t level, const char *message);
    /**
     * Reads a setting; `key` is a `RaiConfigKey`; unknown keys give 0.
     */
    int64_t (*config_get)(uint32_t key);
    /**
     * Runs a Redis command (`argv[0]` is its name; each argument is `argv_len[i]`
     * bytes) on behalf of the run that owns `host_ctx`, as `redis.execute` does in a
     * script. Never null: a refused or failed command comes back as an error reply.
     * Release it with `reply_free`.
     */
    struct RaiReply *(*redis_command)(void *host_ctx,
                                      const char *const *argv,
                                      const size_t *argv_len,
                                      size_t argc);
    /**
     * Releases a reply from `redis_command` or `model_execute`.
     */
    void (*reply_free)(struct RaiReply *reply);
    /**
     * Runs the stored model at `key` (of any backend) on `inputs`, on the calling
     * thread, for the run that owns `host_ctx`, as `redisAI.model_execute` does in a
     * script. On success returns null and fills exactly `n_outputs` host-owned
     * outputs, each released with `host_tensor_release(owner)`; on failure returns an
     * error reply (release it with `reply_free`) and fills nothing.
     */
    struct RaiReply *(*model_execute)(void *host_ctx,
                                      const char *key,
                                      const struct RaiTensorView *inputs,
                                      size_t n_inputs,
                                      struct RaiTensorOut *outputs,
                                      size_t n_outputs);
    /**
     * Releases an output of `model_execute`.
     */
    void (*host_tensor_release)(void *owner);
    /**
     * Optional: lends `byte_len` bytes of host memory (64-byte aligned, uninitialised,
     * from the host's allocator, so the server counts it as its own) for an output of
     * the `model_run` or `script_run` call in progress; null when it cannot (no memory,
     * `byte_len` 0, or not called from the thread inside that call). An output whose
     * `view.data` is a pointer this returned during the same call, with `view.byte_len`
     * at most the length asked for, is adopted by the host with no copy; the plugin
     * still releases the output's `owner`, but must not free that data. The host frees
     * every lent buffer that is not adopted (error paths, buffers left unused) when the
     * call returns; the plugin must not touch any of them after that.
     */
    void *(*output_alloc)(size_t byte_len);
} RaiHostApi;

/**
 * What the host asks of a model at load time.
 */
typedef struct RaiModelOptions {
    struct RaiDevice device;
    /**
     * BATCHSIZE given at MODELSTORE (0: no autobatching).
     */
    uint64_t batch_size;
    /**
     * Input and output node names (TF only; counts are 0 for other backends).
     */
    const char *const *input_names;
    size_t n_input_names;
    const char *const *output_names;
    size_t n_output_names;
} RaiModelOptions;

/**
 * Per-run information.
 */
typedef struct RaiRunOptions {
    /**
     * Milliseconds this run may take; 0 for no limit. Plugins that can interrupt a run
     * should stop it after this long and return an error.
     */
    uint64_t timeout_ms;
    /**
     * Null, or a flag the host sets to non-zero (from another thread) when the run's
     * result is no longer wanted: its client went away, or the server is shutting
     * down. Plugins that can interrupt a run should watch it (read it atomically, e.g.
     * `__atomic_load_n`) and stop with an error. Valid only during the call.
     */
    const uint32_t *cancel;
    /**
     * Minor 1 (read only when the host's `abi_minor` >= 1): the context to pass to
     * `redis_command` and `model_execute` during this run; null when the run offers
     * them none.
     */
    void *host_ctx;
} RaiRunOptions;

/**
 * Arguments of a script function call, as `AI.SCRIPTEXECUTE` or `AI.SCRIPTRUN` gives
 * them.
 */
typedef struct RaiScriptCall {
    const char *function;
    const struct RaiTensorView *inputs;
    size_t n_inputs;
    const char *const *keys;
    size_t n_keys;
    const char *const *args;
    size_t n_args;
    /**
     * Minor 2 (read only when the host's `abi_minor` >= 2; before, every call is
     * `RAI_SCRIPT_CALL_LISTS`): how `inputs` map to the function's parameters, a
     * `RAI_SCRIPT_CALL_*` value. A plugin that knows only the lists convention may
     * ignore it.
     */
    uint32_t convention;
    /**
     * Minor 2: with `RAI_SCRIPT_CALL_POSITIONAL`, the index in `inputs` of the first
     * tensor after `AI.SCRIPTRUN`'s `$` marker (`n_inputs` when nothing follows it), or
     * -1 when the command had no `$`. -1 with `RAI_SCRIPT_CALL_LISTS`.
     */
    int64_t variadic;
} RaiScriptCall;

/**
 * Minor 3: the memory a backend holds, filled by `RaiPluginApi::memory_stats`. Each
 * field is a byte count, or `RAI_MEMORY_UNKNOWN`. The struct may grow at its end with
 * a minor; the host passes `struct_size` and the plugin fills only what fits.
 */
typedef struct RaiMemoryStats {
    /**
     * Size of this struct as the host knows it.
     */
    size_t struct_size;
    /**
     * Bytes the backend's runtime holds now (weights, arenas, live tensors), as far as
     * its allocator can count them.
     */
    uint64_t held_bytes;
    /**
     * Highest `held_bytes` since the plugin was initialised.
     */
    uint64_t peak_bytes;
    /**
     * The bound the backend enforces now (BACKEND_MEMORY_LIMIT in bytes), 0 for none,
     * or `RAI_MEMORY_UNKNOWN` when the backend cannot bound its memory.
     */
    uint64_t limit_bytes;
} RaiMemoryStats;

/**
 * The table a plugin returns from its entry symbol. It must stay valid for the life
 * of the process.
 */
typedef struct RaiPluginApi {
    uint32_t abi_major;
    uint32_t abi_minor;
    size_t struct_size;
    /**
     * Backend name, e.g. "ONNX".
     */
    const char *name;
    /**
     * Version of the framework runtime inside, e.g. "1.32.0".
     */
    const char *runtime_version;
    /**
     * Bit `1 << RaiDeviceKind` for each device kind the plugin can run on.
     */
    uint32_t device_mask;
    /**
     * Bit `1 << RaiDType` for each element type the plugin accepts.
     */
    uint32_t dtype_mask;
    /**
     * `RAI_PLUGIN_FLAG_*` bits.
     */
    uint32_t flags;
    /**
     * Called once before anything else.
     */
    RaiError *(*init)(const struct RaiHostApi *host);
    const char *(*error_message)(const RaiError *error);
    void (*error_free)(RaiError *error);
    /**
     * Builds a model from its serialised form.
     */
    RaiError *(*model_load)(const struct RaiModelOptions *options,
                            const uint8_t *blob,
                            size_t blob_len,
                            RaiModel **out);
    void (*model_free)(RaiModel *model);
    size_t (*model_input_count)(const RaiModel *model);
    /**
     * Name of input `index`, valid while the model lives.
     */
    const char *(*model_input_name)(const RaiModel *model, size_t index);
    size_t (*model_output_count)(const RaiModel *model);
    const char *(*model_output_name)(const RaiModel *model, size_t index);
    /**
     * Runs the model: fills exactly `n_outputs` outputs, or returns an error.
     */
    RaiError *(*model_run)(RaiModel *model,
                           const struct RaiRunOptions *options,
                           const struct RaiTensorView *inputs,
                           size_t n_inputs,
                           struct RaiTensorOut *outputs,
                           size_t n_outputs);
    /**
     * Releases an output's data (the `owner` of a `RaiTensorOut`).
     */
    void (*tensor_release)(void *owner);
    /**
     * Optional (null when the backend has no scripts): compiles a script.
     */
    RaiError *(*script_load)(struct RaiDevice device,
                             const char *source,
                             const char *const *entry_points,
                             size_t n_entry_points,
                             RaiScript **out);
    void (*script_free)(RaiScript *script);
    /**
     * Optional: runs a script function; fills at most `max_outputs` outputs and sets
     * `n_outputs` to how many.
     */
    RaiError *(*script_run)(RaiScript *script,
                            const struct RaiRunOptions *options,
                            const struct RaiScriptCall *call,
                            struct RaiTensorOut *outputs,
                            size_t max_outputs,
                            size_t *n_outputs);
    /**
     * Optional: fills `stats` (whose `struct_size` the host has set) with the memory
     * the backend holds now and its peak. Callable from any thread, at any time after
     * `init`; cheap (no allocation, no lock held for long).
     */
    void (*memory_stats)(struct RaiMemoryStats *stats);
    /**
     * Optional: bytes held by one model (its weights and what its runtime keeps for
     * it), or `RAI_MEMORY_UNKNOWN`. Callable from any thread while the model lives.
     */
    uint64_t (*model_memory)(const RaiModel *model);
    /**
     * Optional: the `RaiErrorCode` of an error this plugin returned, as a plain
     * integer; the host reads unknown values as `Failed`. Callable from any thread
     * until the error's `error_free`.
     */
    uint32_t (*error_code)(const RaiError *error);
} RaiPluginApi;

/**
 * Type of the exported entry symbol: returns the plugin's table (never null).
 */
typedef const struct RaiPluginApi *(*RaiPluginEntryFn)(void);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The one symbol a plugin exports (its name is `RAI_PLUGIN_ENTRY_SYMBOL`, its type
 * `RaiPluginEntryFn`): returns the plugin's table, never null. The table must stay
 * valid for the life of the process.
 */
RAI_PLUGIN_EXPORT const struct RaiPluginApi *redisai_plugin_entry(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* REDISAI_PLUGIN_H */
