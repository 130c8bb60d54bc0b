//! TensorFlow in its own link namespace does not bind to the host's symbols.
//!
//! redis-server exports a `zcalloc(size_t)` of its own; TensorFlow's framework library
//! bundles zlib and calls zlib's `zcalloc(opaque, items, size)` through its exported name,
//! so loaded into the global namespace its zlib binds to Redis's function (a 1 MB
//! `compress2` through it never returns). This test executable exports a `zcalloc` too
//! (build.rs passes `--export-dynamic-symbol=zcalloc`), one that counts its calls: graphs
//! that go through TensorFlow's zlib (`DecodeCompressed` with ZLIB, which leaves zlib's
//! allocator to zlib, and a PNG round trip) must not call it. As a control, the same
//! framework library opened the usual way (`dlopen`, global namespace) does call it.
//!
//! Two libcs number their thread-specific data keys each from 0 into slots the threads
//! share: the host's values must survive TensorFlow's (inside Redis, absl's per-thread
//! state and jemalloc's overwrote each other and the server aborted).

mod common;

use std::ffi::{c_int, c_uint, c_ulong, c_void, CString};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{backend, ensure_runtime_lib, load, run, test_image, values, zlib_input, Input};
use redisai_plugin_api::sdk::DType;
use redisai_tensorflow::FRAMEWORK_LIB_NAME;

static ZCALLOC_CALLS: AtomicUsize = AtomicUsize::new(0);

/// zlib's allocation hook, under its exported name, as a host might define it. It behaves
/// like zlib's own (so the control works) and counts its calls.
#[no_mangle]
pub extern "C" fn zcalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    ZCALLOC_CALLS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: calloc has no preconditions; zlib frees the block with zcfree (free).
    unsafe { libc::calloc(items as usize, size as usize) }
}

#[test]
fn the_hosts_thread_specific_data_survives_tensorflow() {
    // Keys made before TensorFlow is loaded, as Redis's and jemalloc's are: key 0 and up.
    let keys: Vec<libc::pthread_key_t> = (0..4)
        .map(|_| {
            let mut key: libc::pthread_key_t = 0;
            // SAFETY: a valid out-pointer, no destructor.
            assert_eq!(unsafe { libc::pthread_key_create(&mut key, None) }, 0);
            key
        })
        .collect();
    let set_all = || {
        for (i, &key) in keys.iter().enumerate() {
            // SAFETY: a live key; the value is a plain number, never dereferenced.
            assert_eq!(
                unsafe { libc::pthread_setspecific(key, (0x1000 + i) as *const c_void) },
                0
            );
        }
    };
    let check_all = |when: &str| {
        for (i, &key) in keys.iter().enumerate() {
            // SAFETY: a live key.
            let value = unsafe { libc::pthread_getspecific(key) } as usize;
            assert_eq!(value, 0x1000 + i, "key {key} {when}");
        }
    };
    set_all();
    let backend = backend();
    let model = load(&backend, "zlib.pb", &["data"], &["size"]);
    let models: Vec<_> = (0..4)
        .map(|_| load(&backend, "mlp.pb", &["x"], &["y"]))
        .collect();
    check_all("on the loading thread");
    // From several host threads at once, each with its own values.
    std::thread::scope(|scope| {
        for mlp in &models {
            let backend = &backend;
            scope.spawn(move || {
                set_all();
                for _ in 0..20 {
                    run(
                        backend,
                        mlp,
                        &[Input::f32(&[1, 4], &[1.0, 2.0, 3.0, 4.0])],
                        1,
                    );
                    check_all("on a running thread");
                }
            });
        }
    });
    let out = run(&backend, &model, &[zlib_input()], 1);
    assert_eq!(values::<i32>(&out[0].data), [1 << 20]);
    check_all("after the runs");
}

type Compress2 = unsafe extern "C" fn(*mut u8, *mut c_ulong, *const u8, c_ulong, c_int) -> c_int;

#[test]
fn tensorflows_zlib_ignores_the_hosts_symbols() {
    let backend = backend();
    let model = load(&backend, "png.pb", &["image"], &["decoded", "png_size"]);
    let image = test_image(512, 512);
    let shape = [512, 512, 4];
    let out = run(
        &backend,
        &model,
        &[Input::new(DType::Uint8, &shape, image.clone())],
        2,
    );
    assert!(
        out[0].data == image,
        "the PNG round trip changed the pixels"
    );
    assert!(values::<i32>(&out[1].data)[0] > 0);
    let model = load(&backend, "zlib.pb", &["data"], &["size"]);
    let out = run(&backend, &model, &[zlib_input()], 1);
    assert_eq!(values::<i32>(&out[0].data), [1 << 20]);
    assert_eq!(
        ZCALLOC_CALLS.load(Ordering::SeqCst),
        0,
        "TensorFlow's zlib called the host's zcalloc"
    );

    // The control: opened the usual way, the framework library's compress2 allocates
    // through this executable's zcalloc.
    let framework = ensure_runtime_lib().with_file_name(FRAMEWORK_LIB_NAME);
    let path = CString::new(framework.to_str().expect("utf-8 path")).expect("path");
    // SAFETY: opening the library runs its initialisers (a second, independent copy of
    // TensorFlow's framework, in the global namespace; only compress2 is used).
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {}", framework.display());
    // SAFETY: a live handle and a NUL-terminated name.
    let symbol = unsafe { libc::dlsym(handle, c"compress2".as_ptr()) };
    assert!(!symbol.is_null(), "compress2 not found");
    // SAFETY: zlib's compress2 has this signature.
    let compress2: Compress2 = unsafe { std::mem::transmute::<*mut c_void, Compress2>(symbol) };
    let source = vec![7u8; 1 << 20];
    let mut dest = vec![0u8; source.len() + 1024];
    let mut dest_len = dest.len() as c_ulong;
    // SAFETY: buffers of the stated lengths, alive for the call.
    let status = unsafe {
        compress2(
            dest.as_mut_ptr(),
            &mut dest_len,
            source.as_ptr(),
            source.len() as c_ulong,
            6,
        )
    };
    assert_eq!(status, 0, "compress2");
    assert!(
        ZCALLOC_CALLS.load(Ordering::SeqCst) > 0,
        "the control did not reach this executable's zcalloc: the test proves nothing"
    );
}
