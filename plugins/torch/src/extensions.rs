//! The host side of the script extensions: `redis.execute` / `redis.asList` and
//! `redisAI.model_execute`, registered as TorchScript operators by the shim, call back
//! into these functions, which forward to the host ([`Host::redis_command`],
//! [`Host::model_execute`]).
//!
//! The host context of the script run in progress is kept in a thread-local for the
//! duration of the run: TorchScript runs a function's operators on the calling thread.
//! A callback outside a run (no context) fails with an error, as does one on a host
//! without these services.

use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redisai_plugin_api::sdk::{self, Error, HostContext, Reply, Result, TensorRef};

use crate::ffi::{self, RtCallbacks, RtSink, RtView};

thread_local! {
    static RUN_CONTEXT: Cell<Option<HostContext>> = const { Cell::new(None) };
}

/// Makes `ctx` the host context of this thread until dropped (restoring the previous one,
/// so nested runs are fine).
pub(crate) struct RunContext(Option<HostContext>);

impl RunContext {
    pub(crate) fn enter(ctx: Option<HostContext>) -> RunContext {
        RunContext(RUN_CONTEXT.with(|cell| cell.replace(ctx)))
    }
}

impl Drop for RunContext {
    fn drop(&mut self) {
        RUN_CONTEXT.with(|cell| cell.set(self.0));
    }
}

/// The table the shim calls.
pub(crate) const CALLBACKS: RtCallbacks = RtCallbacks {
    redis_execute,
    model_execute,
};

/// Registers the extensions with libtorch.
pub(crate) fn register() -> Result<()> {
    ffi::register_ops(&CALLBACKS)
}

fn context(what: &str) -> Result<(sdk::Host, HostContext)> {
    let host = sdk::host().ok_or_else(|| Error::new(format!("{what}: the plugin has no host")))?;
    let ctx = RUN_CONTEXT
        .with(Cell::get)
        .ok_or_else(|| Error::new(format!("{what} is not available in this run")))?;
    Ok((host, ctx))
}

/// Writes an error into the sink.
///
/// # Safety
/// `sink` must be the live sink of the current callback.
unsafe fn sink_error(sink: *mut RtSink, message: &str) {
    // SAFETY: guaranteed by the caller; the message is copied.
    unsafe { ffi::rt_sink_error(sink, message.as_ptr().cast(), message.len()) };
}

/// Runs a callback body, catching panics; its error goes into `sink`, which must be the
/// live sink of the callback in progress (only the callbacks below call this).
fn callback(what: &str, sink: *mut RtSink, body: impl FnOnce() -> Result<()>) {
    let message = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return,
        Ok(Err(err)) => err.into_message(),
        Err(_) => format!("panic in the TORCH backend during {what}"),
    };
    // SAFETY: `sink` is the shim's live sink (see above).
    unsafe { sink_error(sink, &message) };
}

unsafe extern "C" fn redis_execute(
    argv: *const *const u8,
    lens: *const usize,
    argc: usize,
    sink: *mut RtSink,
) {
    callback("redis.execute", sink, || {
        let (host, ctx) = context("redis.execute")?;
        let args: Vec<&[u8]> = (0..argc)
            .map(|i| {
                // SAFETY: the shim passes `argc` pointers and lengths, valid for the call.
                let (ptr, len) = unsafe { (*argv.add(i), *lens.add(i)) };
                if len == 0 {
                    &[][..]
                } else {
                    // SAFETY: as above.
                    unsafe { std::slice::from_raw_parts(ptr, len) }
                }
            })
            .collect();
        let reply = host.redis_command(ctx, &args)?;
        let mut encoded = Vec::new();
        encode(&reply, &mut encoded);
        // SAFETY: the sink copies the bytes.
        unsafe { ffi::rt_sink_reply(sink, encoded.as_ptr(), encoded.len()) };
        Ok(())
    })
}

unsafe extern "C" fn model_execute(
    key: *const c_char,
    inputs: *const RtView,
    n_inputs: usize,
    n_outputs: usize,
    sink: *mut RtSink,
) {
    callback("redisAI.model_execute", sink, || {
        let (host, ctx) = context("redisAI.model_execute")?;
        // SAFETY: the shim passes a NUL-terminated key.
        let key = unsafe { CStr::from_ptr(key) }.to_string_lossy();
        let tensors: Vec<TensorRef<'_>> = (0..n_inputs)
            // SAFETY: the shim passes `n_inputs` views valid for the call.
            .map(|i| unsafe { ffi::tensor_of(&*inputs.add(i)) })
            .collect::<Result<_>>()?;
        let outputs = host.model_execute(ctx, &key, &tensors, n_outputs)?;
        for output in &outputs {
            let view = ffi::view_of(&TensorRef {
                dtype: output.dtype,
                device: sdk::Device {
                    kind: sdk::DeviceKind::Cpu,
                    id: 0,
                },
                shape: &output.shape,
                data: &output.data,
            });
            // SAFETY: the sink copies the tensor.
            unsafe { ffi::rt_sink_tensor(sink, &view) };
        }
        Ok(())
    })
}

/// Encodes a reply the way the shim reads it (shim.h, `rt_sink_reply`).
fn encode(reply: &Reply, out: &mut Vec<u8>) {
    let bytes = |out: &mut Vec<u8>, tag: u8, data: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    };
    match reply {
        Reply::Nil => out.push(b'N'),
        Reply::Integer(value) => {
            out.push(b'I');
            out.extend_from_slice(&value.to_le_bytes());
        }
        Reply::Double(value) => {
            out.push(b'D');
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
        Reply::String(data) => bytes(out, b'S', data),
        Reply::Error(message) => bytes(out, b'E', message.as_bytes()),
        Reply::Array(items) => {
            out.push(b'A');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                encode(item, out);
            }
        }
    }
}
