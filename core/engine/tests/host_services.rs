//! Installed host services: the plugin-facing table forwards to them. (Without them the
//! entries answer NOT_AVAILABLE: `backend::host`'s unit tests. This file is its own
//! process, so installing here does not affect those.)

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use redisai_engine::backend::host::HOST_API;
use redisai_engine::backend::host_services::{self, HostServices, LogLevel};
use redisai_engine::backend::reply::{make_reply, ReplyValue};
use redisai_plugin_api::abi::{RaiReply, RaiReplyKind, RaiTensorOut, RaiTensorView};

static COMMAND_ARGC: AtomicUsize = AtomicUsize::new(0);
static LOGGED: Mutex<Vec<(LogLevel, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn fake_command(
    _host_ctx: *mut c_void,
    _argv: *const *const c_char,
    _argv_len: *const usize,
    argc: usize,
) -> *mut RaiReply {
    COMMAND_ARGC.store(argc, Ordering::SeqCst);
    make_reply(ReplyValue::String(b"from the server".to_vec()))
}

unsafe extern "C" fn fake_execute(
    _host_ctx: *mut c_void,
    _key: *const c_char,
    _inputs: *const RaiTensorView,
    _n_inputs: usize,
    _outputs: *mut RaiTensorOut,
    _n_outputs: usize,
) -> *mut RaiReply {
    make_reply(ReplyValue::Error(b"ERR fake model_execute".to_vec()))
}

fn record_log(level: LogLevel, text: &str) {
    LOGGED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push((level, text.to_owned()));
}

/// Reads and frees a reply made by the host.
fn take_text(reply: *mut RaiReply) -> (RaiReplyKind, String) {
    assert!(!reply.is_null());
    // SAFETY: `reply` is a live root from `make_reply`, freed once here.
    unsafe {
        let kind = (*reply).kind;
        let text = CStr::from_ptr((*reply).str).to_string_lossy().into_owned();
        (HOST_API.reply_free.expect("reply_free"))(reply);
        (kind, text)
    }
}

#[test]
fn the_host_table_forwards_to_installed_services() {
    assert!(host_services::install(HostServices {
        redis_command: fake_command,
        model_execute: fake_execute,
        log: record_log,
    }));
    assert!(!host_services::install(HostServices {
        redis_command: fake_command,
        model_execute: fake_execute,
        log: record_log,
    }));

    let args = [c"SET".as_ptr(), c"k".as_ptr(), c"v".as_ptr()];
    let lens = [3usize, 1, 1];
    let command = HOST_API.redis_command.expect("redis_command entry");
    // SAFETY: three valid arguments; the reply is freed by `take_text`.
    let reply = unsafe { command(std::ptr::null_mut(), args.as_ptr(), lens.as_ptr(), 3) };
    assert_eq!(
        take_text(reply),
        (RaiReplyKind::String, "from the server".to_owned())
    );
    assert_eq!(COMMAND_ARGC.load(Ordering::SeqCst), 3);

    let execute = HOST_API.model_execute.expect("model_execute entry");
    // SAFETY: no inputs or outputs; the key is a valid C string.
    let reply = unsafe {
        execute(
            std::ptr::null_mut(),
            c"m".as_ptr(),
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(
        take_text(reply),
        (RaiReplyKind::Error, "ERR fake model_execute".to_owned())
    );

    let log = HOST_API.log.expect("log entry");
    // SAFETY: a valid C string for the call; 3 is RaiLogLevel::Warning.
    unsafe { log(3, c"disk on fire".as_ptr()) };
    assert_eq!(
        LOGGED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_slice(),
        &[(LogLevel::Warning, "backend: disk on fire".to_owned())]
    );
}
