/* The C interface of the plugin's C++ shim over libtorch (common.cpp, models.cpp,
 * scripts.cpp and script_ops.cpp; common.h holds what they share).
 *
 * Every function catches every C++ exception: a failure is returned as an error string
 * (allocated with malloc, released with rt_error_free), never thrown. Objects returned
 * through out-pointers are owned by the caller and released with their *_free function.
 */
#ifndef REDISAI_TORCH_SHIM_H
#define REDISAI_TORCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, with the codes of the plugin ABI's RaiDType. */
enum {
    RT_FLOAT = 0, RT_DOUBLE = 1, RT_INT8 = 2, RT_INT16 = 3, RT_INT32 = 4,
    RT_INT64 = 5, RT_UINT8 = 6, RT_UINT16 = 7, RT_BOOL = 8, RT_STRING = 9
};

/* A borrowed row-major CPU tensor. */
typedef struct rt_view {
    uint32_t dtype;
    size_t ndim;
    const int64_t *shape;
    const void *data;
    size_t nbytes;
} rt_view;

typedef struct rt_module rt_module;   /* a TorchScript module */
typedef struct rt_script rt_script;   /* a compiled TorchScript script */
typedef struct rt_outputs rt_outputs; /* tensors produced by a run */
typedef struct rt_sink rt_sink;       /* where a host callback writes its result */

void rt_error_free(char *error);

/* Thread pools: 0 leaves libtorch's default. Call once, before any run. */
char *rt_set_threads(int64_t intra_op, int64_t inter_op);
/* The thread counts libtorch uses now. */
void rt_get_threads(int64_t *intra_op, int64_t *inter_op);

/* Devices: -1 is the CPU, n >= 0 is CUDA device n (torch::Device(kCUDA, n)). On a CUDA
 * device, inputs are copied to the device before a run and outputs back to the CPU. */
#define RT_DEVICE_CPU (-1)

/* How many CUDA devices libtorch sees: 0 when its CUDA backend (libtorch_cuda.so) is not
 * loaded, when there is no driver or no device; never throws. */
int64_t rt_cuda_device_count(void);

/* 1 when libtorch's CUDA hooks are libtorch_cuda's (it was loaded before libtorch first
 * asked for them), 0 when they are libtorch_cpu's stubs; never throws. */
int rt_cuda_backend_registered(void);

/* Models, loaded onto `device` (map_location). */
char *rt_module_load(const uint8_t *blob, size_t len, int32_t device, rt_module **out);
void rt_module_free(rt_module *module);
/* Names of forward's inputs (without self) and outputs; valid while the module lives. */
size_t rt_module_input_count(const rt_module *module);
const char *rt_module_input_name(const rt_module *module, size_t index);
/* Number of outputs forward declares: 1 for a Tensor, N for a tuple of N; 0 if unknown. */
size_t rt_module_output_count(const rt_module *module);
char *rt_module_forward(rt_module *module, const rt_view *inputs, size_t n_inputs,
                        rt_outputs **out);

/* Outputs of a run. */
size_t rt_outputs_count(const rt_outputs *outputs);
/* A view of output `index`, valid while `outputs` lives. */
rt_view rt_outputs_get(const rt_outputs *outputs, size_t index);
void rt_outputs_free(rt_outputs *outputs);

/* Scripts, with the tensors on `device`. rt_script_run calls fn(tensors: List[Tensor],
 * keys: List[str], args: List[str]) (AI.SCRIPTEXECUTE); rt_script_run_positional passes the
 * inputs as the function's own parameters (AI.SCRIPTRUN): those from index `variadic` on
 * (-1: none) form its List[Tensor] parameter; a three-list function gets them as `tensors`. */
char *rt_script_load(const char *source, const char *const *entry_points, size_t n_entry_points,
                     int32_t device, rt_script **out);
void rt_script_free(rt_script *script);
char *rt_script_run(rt_script *script, const char *function, const rt_view *inputs,
                    size_t n_inputs, const char *const *keys, size_t n_keys,
                    const char *const *args, size_t n_args, rt_outputs **out);
char *rt_script_run_positional(rt_script *script, const char *function, const rt_view *inputs,
                               size_t n_inputs, int64_t variadic, rt_outputs **out);

/* The script extensions call back into the plugin through these functions; they write
 * their result, or an error, into the sink and must not throw or unwind. */
typedef struct rt_callbacks {
    /* redis.execute: argv[0] is the command. Writes one encoded reply (rt_sink_reply). */
    void (*redis_execute)(const uint8_t *const *argv, const size_t *lens, size_t argc,
                          rt_sink *sink);
    /* redisAI.model_execute: writes n_outputs tensors (rt_sink_tensor). */
    void (*model_execute)(const char *key, const rt_view *inputs, size_t n_inputs,
                          size_t n_outputs, rt_sink *sink);
} rt_callbacks;

/* Registers redis::execute, redis::asList and redisAI::model_execute (once per process;
 * later calls only replace the callbacks). */
char *rt_register_ops(const rt_callbacks *callbacks);
/* Removes them (also done when the library is unloaded). */
void rt_deregister_ops(void);

/* An encoded reply: 'N' | 'I' i64 | 'D' f64 | 'S' u64 len, bytes | 'E' u64 len, bytes |
 * 'A' u64 count, items; numbers little-endian. */
void rt_sink_reply(rt_sink *sink, const uint8_t *encoded, size_t len);
void rt_sink_tensor(rt_sink *sink, const rt_view *tensor);
void rt_sink_error(rt_sink *sink, const char *message, size_t len);

/* For tests and tools: builds a TorchScript module from source (its methods may use the
 * given float parameters as self.<name>) and writes the serialised module (a .pt file)
 * into *out, *out_len (release with rt_bytes_free). */
char *rt_make_module(const char *source, const char *const *param_names,
                     const rt_view *params, size_t n_params, uint8_t **out, size_t *out_len);
/* As rt_make_module, for a module with one submodule, `child_name`, whose methods are
 * `child_source` (the module's own methods may call them as self.<child_name>.f(...)). */
char *rt_make_module_with_child(const char *source, const char *child_name,
                                const char *child_source, uint8_t **out, size_t *out_len);
void rt_bytes_free(uint8_t *bytes);

/* BACKEND_MEMORY_LIMIT (shim/memory.cpp): rt_memory_install puts the counting CPU
 * allocator in front of libtorch's (once, before any model loads); rt_memory_set_limit
 * sets the bound in bytes (0: none), checked at each CPU allocation; rt_memory_stats reads
 * the bytes held now, the peak and the limit; rt_memory_refusals counts the allocations
 * the limit refused so far. rt_module_memory: bytes of a module's parameters and buffers
 * (UINT64_MAX when it cannot tell). */
char *rt_memory_install(void);
void rt_memory_set_limit(uint64_t limit_bytes);
void rt_memory_stats(uint64_t *held, uint64_t *peak, uint64_t *limit);
uint64_t rt_memory_refusals(void);
uint64_t rt_module_memory(const rt_module *module);

/* The sandbox policy's view of libtorch (policy.cpp; the plugin decides, src/policy.rs).
 * rt_module_operations and rt_script_operations write into *out (release with
 * rt_error_free) the node kinds ("aten::add", "prim::If", ...) of every graph the model
 * or script can run, and the custom classes ("__torch__.torch.classes.ns.Name") its
 * values and attributes have: one per line, sorted, each once. */
char *rt_module_operations(const rt_module *module, char **out, size_t *out_len);
char *rt_script_operations(const rt_script *script, char **out, size_t *out_len);
/* The names ("aten::from_file") of libtorch's registered operators, as above. */
char *rt_operator_names(char **out, size_t *out_len);
/* Replaces every overload of the named operators with one that only throws (and notes
 * the name for rt_take_forbidden). */
char *rt_stub_operators(const char *const *names, size_t n_names);
/* The custom classes ("__torch__.torch.classes.ns.Name") libtorch registered, as above. */
char *rt_custom_class_names(char **out, size_t *out_len);
/* Replaces every method of the named custom classes with one that only throws (and
 * notes the class's name for rt_take_forbidden). */
char *rt_stub_custom_classes(const char *const *names, size_t n_names);
/* The name of the stubbed operator or class a call on this thread last ran into, and
 * forgets it; null when none (release with rt_error_free). */
char *rt_take_forbidden(void);

/* libtorch's version, e.g. "2.13.0". */
const char *rt_torch_version(void);

#ifdef __cplusplus
}
#endif

#endif
