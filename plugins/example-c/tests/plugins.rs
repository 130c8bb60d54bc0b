//! Loads the C plugins with `dlopen` and drives their tables from Rust through the
//! `redisai-plugin-api` types, as the core does.

use std::ffi::{c_char, c_void, CStr};
use std::mem::{align_of, offset_of, size_of};
use std::ptr;
use std::sync::Mutex;

use libloading::Library;
use redisai_example_c_plugins::{
    BAD_ABI_PLUGIN, EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN, LAYOUT_PROBE_LIBRARY,
    NEWER_MINOR_PLUGIN,
};
use redisai_plugin_api::abi::*;

/// Opens `path` and returns its library (to keep it loaded) and its plugin table.
fn open(path: &str) -> (Library, &'static RaiPluginApi) {
    // SAFETY: the test plugins have no library constructors.
    let library = unsafe { Library::new(path) }.unwrap_or_else(|e| panic!("dlopen {path}: {e}"));
    // SAFETY: the entry symbol has type `RaiPluginEntryFn` per the ABI.
    let table = unsafe {
        let entry = library
            .get::<RaiPluginEntryFn>(RAI_PLUGIN_ENTRY_SYMBOL.as_bytes())
            .unwrap_or_else(|e| panic!("{path} lacks {RAI_PLUGIN_ENTRY_SYMBOL}: {e}"));
        entry()
    };
    // SAFETY: the table is static in the library, which the caller keeps loaded; the
    // reference does not outlive `library` in these tests.
    let table = unsafe { table.as_ref() }.expect("the entry returned null");
    (library, table)
}

/// Lines logged through the host table.
static LOG: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn host_log(level: u32, message: *const c_char) {
    // SAFETY: the plugin passes a NUL-terminated string.
    let message = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    LOG.lock().unwrap().push((level, message));
}

unsafe extern "C" fn host_config_get(_key: u32) -> i64 {
    0
}

static HOST: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: size_of::<RaiHostApi>(),
    log: Some(host_log),
    config_get: Some(host_config_get),
    redis_command: None,
    reply_free: None,
    model_execute: None,
    host_tensor_release: None,
    output_alloc: None,
};

fn c_str(ptr: *const c_char) -> String {
    assert!(!ptr.is_null(), "null string");
    // SAFETY: the plugin returns NUL-terminated strings that outlive this call.
    unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_owned()
}

/// An output read back: shape and elements.
type FloatTensor = (Vec<i64>, Vec<f32>);

/// The plugin's table, with every function the example must provide.
struct Plugin {
    api: &'static RaiPluginApi,
}

impl Plugin {
    /// Reads and frees `error`, or returns `Ok` for null.
    fn result(&self, error: *mut RaiError) -> Result<(), String> {
        if error.is_null() {
            return Ok(());
        }
        // SAFETY: a live error of this plugin, freed once right after.
        unsafe {
            let message = c_str((self.api.error_message.unwrap())(error));
            (self.api.error_free.unwrap())(error);
            Err(message)
        }
    }

    fn load(&self, blob: &[u8]) -> Result<*mut RaiModel, String> {
        let options = RaiModelOptions {
            device: RaiDevice {
                kind: RaiDeviceKind::Cpu,
                id: 0,
            },
            batch_size: 0,
            input_names: ptr::null(),
            n_input_names: 0,
            output_names: ptr::null(),
            n_output_names: 0,
        };
        let mut model = ptr::null_mut();
        // SAFETY: valid options and blob for the call; `model` receives the result.
        let error = unsafe {
            (self.api.model_load.unwrap())(&options, blob.as_ptr(), blob.len(), &mut model)
        };
        self.result(error)?;
        assert!(!model.is_null());
        Ok(model)
    }

    /// Runs `model` and reads back (then releases) its FLOAT outputs.
    fn run(
        &self,
        model: *mut RaiModel,
        inputs: &[RaiTensorView],
        n_outputs: usize,
    ) -> Result<Vec<FloatTensor>, String> {
        let options = RaiRunOptions {
            timeout_ms: 0,
            cancel: std::ptr::null(),
            host_ctx: std::ptr::null_mut(),
        };
        let mut outputs = vec![
            RaiTensorOut {
                view: float_view(&[], &[]),
                owner: ptr::null_mut(),
            };
            n_outputs
        ];
        // SAFETY: the views borrow live data; `outputs` has room for `n_outputs`.
        let error = unsafe {
            (self.api.model_run.unwrap())(
                model,
                &options,
                inputs.as_ptr(),
                inputs.len(),
                outputs.as_mut_ptr(),
                n_outputs,
            )
        };
        self.result(error)?;
        Ok(outputs
            .into_iter()
            .map(|out| {
                let view = out.view;
                assert_eq!(view.dtype, RaiDType::Float);
                assert_eq!(view.device.kind, RaiDeviceKind::Cpu);
                assert!(view.strides.is_null());
                assert!(!out.owner.is_null());
                // SAFETY: the output is valid until `tensor_release(owner)`.
                unsafe {
                    let shape = std::slice::from_raw_parts(view.shape, view.ndim).to_vec();
                    let bytes = std::slice::from_raw_parts(view.data.cast::<u8>(), view.byte_len);
                    let data = bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    (self.api.tensor_release.unwrap())(out.owner);
                    (shape, data)
                }
            })
            .collect())
    }
}

/// A borrowed FLOAT view of `data` with `shape`.
fn float_view(shape: &[i64], data: &[f32]) -> RaiTensorView {
    RaiTensorView {
        dtype: RaiDType::Float,
        device: RaiDevice {
            kind: RaiDeviceKind::Cpu,
            id: 0,
        },
        ndim: shape.len(),
        shape: shape.as_ptr(),
        strides: ptr::null(),
        data: data.as_ptr().cast::<c_void>(),
        byte_len: std::mem::size_of_val(data),
    }
}

#[test]
fn example_add_plugin() {
    let (_library, api) = open(EXAMPLE_ADD_PLUGIN);
    assert_eq!(api.abi_major, RAI_PLUGIN_ABI_MAJOR);
    assert_eq!(api.abi_minor, RAI_PLUGIN_ABI_MINOR);
    assert_eq!(api.struct_size, size_of::<RaiPluginApi>());
    assert_eq!(c_str(api.name), EXAMPLE_ADD_BACKEND);
    assert_eq!(c_str(api.runtime_version), "1.0");
    assert_eq!(api.device_mask, 1 << RaiDeviceKind::Cpu as u32);
    assert_eq!(api.dtype_mask, 1 << RaiDType::Float as u32);
    assert_eq!(api.flags, RAI_PLUGIN_FLAG_CONCURRENT_RUN);
    assert!(api.script_load.is_none() && api.script_free.is_none() && api.script_run.is_none());
    let plugin = Plugin { api };

    // SAFETY: `HOST` lives for the whole process.
    plugin
        .result(unsafe { (api.init.unwrap())(&HOST) })
        .unwrap();
    assert!(LOG.lock().unwrap().contains(&(
        RaiLogLevel::Notice as u32,
        "example plugin: ready".to_owned()
    )));

    assert_eq!(
        plugin.load(b"mul").unwrap_err(),
        "example plugin: unknown model blob"
    );
    assert_eq!(
        plugin.load(b"add\0").unwrap_err(),
        "example plugin: unknown model blob"
    );
    assert_eq!(
        plugin.load(b"").unwrap_err(),
        "example plugin: unknown model blob"
    );

    let model = plugin.load(b"add").unwrap();
    // SAFETY: `model` is live until `model_free` below.
    unsafe {
        assert_eq!((api.model_input_count.unwrap())(model), 2);
        assert_eq!(c_str((api.model_input_name.unwrap())(model, 0)), "a");
        assert_eq!(c_str((api.model_input_name.unwrap())(model, 1)), "b");
        assert!((api.model_input_name.unwrap())(model, 2).is_null());
        assert_eq!((api.model_output_count.unwrap())(model), 1);
        assert_eq!(c_str((api.model_output_name.unwrap())(model, 0)), "sum");
        assert!((api.model_output_name.unwrap())(model, 1).is_null());
    }

    let shape = [2i64, 2];
    let a = [1.0f32, 2.0, 3.0, 4.0];
    let b = [10.0f32, 20.0, 30.0, 40.5];
    let outputs = plugin
        .run(model, &[float_view(&shape, &a), float_view(&shape, &b)], 1)
        .unwrap();
    assert_eq!(outputs, vec![(vec![2, 2], vec![11.0, 22.0, 33.0, 44.5])]);

    // A scalar and an empty tensor.
    let outputs = plugin
        .run(
            model,
            &[float_view(&[], &[1.5]), float_view(&[], &[2.0])],
            1,
        )
        .unwrap();
    assert_eq!(outputs, vec![(vec![], vec![3.5])]);
    let outputs = plugin
        .run(
            model,
            &[float_view(&[0, 3], &[]), float_view(&[0, 3], &[])],
            1,
        )
        .unwrap();
    assert_eq!(outputs, vec![(vec![0, 3], vec![])]);

    // Errors.
    let error = plugin
        .run(model, &[float_view(&[4], &a), float_view(&shape, &b)], 1)
        .unwrap_err();
    assert_eq!(
        error,
        "example plugin: inputs 'a' and 'b' have different shapes"
    );
    let mut doubles = float_view(&[2], &a);
    doubles.dtype = RaiDType::Double;
    let error = plugin
        .run(model, &[float_view(&[2], &a[..2]), doubles], 1)
        .unwrap_err();
    assert_eq!(error, "example plugin: input 'b' must be FLOAT");
    let error = plugin
        .run(
            model,
            &[float_view(&[3], &a[..2]), float_view(&[3], &b[..2])],
            1,
        )
        .unwrap_err();
    assert_eq!(
        error,
        "example plugin: input 'a' has 8 bytes for 3 FLOAT elements"
    );
    let error = plugin.run(model, &[float_view(&shape, &a)], 1).unwrap_err();
    assert_eq!(error, "example plugin: expected 2 inputs, got 1");
    let error = plugin
        .run(model, &[float_view(&shape, &a), float_view(&shape, &b)], 2)
        .unwrap_err();
    assert_eq!(error, "example plugin: expected 1 output, got 2");
    let strides = [1i64, 2];
    let mut transposed = float_view(&shape, &b);
    transposed.strides = strides.as_ptr();
    let error = plugin
        .run(model, &[float_view(&shape, &a), transposed], 1)
        .unwrap_err();
    assert_eq!(error, "example plugin: input 'b' is not contiguous");

    // RAI_PLUGIN_FLAG_CONCURRENT_RUN: runs of one model overlap.
    let shared = model as usize;
    std::thread::scope(|scope| {
        for t in 0..8 {
            let plugin = &plugin;
            scope.spawn(move || {
                let a: Vec<f32> = (0..1000).map(|i| (i + t) as f32).collect();
                let b: Vec<f32> = (0..1000).map(|i| i as f32).collect();
                for _ in 0..50 {
                    let views = [float_view(&[1000], &a), float_view(&[1000], &b)];
                    let outputs = plugin.run(shared as *mut RaiModel, &views, 1).unwrap();
                    let sum = &outputs[0].1;
                    assert!(sum
                        .iter()
                        .enumerate()
                        .all(|(i, &s)| s == (2 * i + t) as f32));
                }
            });
        }
    });

    // SAFETY: freed once; no run is in progress.
    unsafe { (api.model_free.unwrap())(model) };
}

#[test]
fn bad_abi_plugin_reports_the_next_major() {
    let (_library, api) = open(BAD_ABI_PLUGIN);
    assert_eq!(api.abi_major, RAI_PLUGIN_ABI_MAJOR + 1);
    assert_eq!(c_str(api.name), "BAD_ABI");
}

#[test]
fn newer_minor_plugin_reports_the_next_minor() {
    let (_library, api) = open(NEWER_MINOR_PLUGIN);
    assert_eq!(api.abi_major, RAI_PLUGIN_ABI_MAJOR);
    assert_eq!(api.abi_minor, RAI_PLUGIN_ABI_MINOR + 1);
    assert!(api.struct_size > size_of::<RaiPluginApi>());
    assert_eq!(c_str(api.name), "NEWER_MINOR");
}

/// The C compiler's view of the header matches abi.rs, field by field.
#[test]
fn c_layout_matches_abi_rs() {
    #[repr(C)]
    struct LayoutEntry {
        name: *const c_char,
        value: usize,
    }
    type ProbeFn = unsafe extern "C" fn(count: *mut usize) -> *const LayoutEntry;

    macro_rules! layout {
        ($( $ty:ident { $($field:ident),* } )*) => {
            vec![$(
                (format!("sizeof {}", stringify!($ty)), size_of::<$ty>()),
                (format!("alignof {}", stringify!($ty)), align_of::<$ty>()),
                $((
                    format!("{}.{}", stringify!($ty), stringify!($field)),
                    offset_of!($ty, $field),
                ),)*
            )*]
        };
    }
    let expected = layout! {
        RaiDType {}
        RaiDeviceKind {}
        RaiLogLevel {}
        RaiConfigKey {}
        RaiDevice { kind, id }
        RaiTensorView { dtype, device, ndim, shape, strides, data, byte_len }
        RaiTensorOut { view, owner }
        RaiHostApi {
            abi_major, abi_minor, struct_size, log, config_get, redis_command, reply_free,
            model_execute, host_tensor_release, output_alloc
        }
        RaiReplyKind {}
        RaiReply { kind, integer, double_value, str, len, elements, n_elements }
        RaiModelOptions {
            device, batch_size, input_names, n_input_names, output_names, n_output_names
        }
        RaiRunOptions { timeout_ms, cancel, host_ctx }
        RaiScriptCall { function, inputs, n_inputs, keys, n_keys, args, n_args, convention, variadic }
        RaiPluginApi {
            abi_major, abi_minor, struct_size, name, runtime_version, device_mask, dtype_mask,
            flags, init, error_message, error_free, model_load, model_free, model_input_count,
            model_input_name, model_output_count, model_output_name, model_run, tensor_release,
            script_load, script_free, script_run
        }
    };

    // SAFETY: the probe library has no constructors; `rai_layout_probe` has `ProbeFn`'s
    // type and returns a static array of `count` entries with static names.
    let actual: Vec<(String, usize)> = unsafe {
        let library = Library::new(LAYOUT_PROBE_LIBRARY).unwrap();
        let probe = library.get::<ProbeFn>(b"rai_layout_probe").unwrap();
        let mut count = 0;
        let entries = std::slice::from_raw_parts(probe(&mut count), count);
        entries
            .iter()
            .map(|entry| (c_str(entry.name), entry.value))
            .collect()
    };
    assert_eq!(actual, expected);
}
