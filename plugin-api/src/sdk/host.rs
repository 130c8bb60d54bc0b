//! The host's services as a plugin sees them: logging, settings, and the script-time
//! services (`redis_command`, `model_execute`).

use std::ffi::{c_char, c_void, CString};

use super::ffi::{tensor_ref, view_of};
use super::{
    ConfigKey, DType, Device, DeviceKind, Error, LogLevel, OwnedTensor, Result, TensorRef,
};
use crate::abi::{RaiHostApi, RaiReply, RaiReplyKind, RaiTensorOut, RaiTensorView};

/// Services of the host (the Redis module).
#[derive(Clone, Copy)]
pub struct Host {
    pub(super) api: &'static RaiHostApi,
}

impl Host {
    pub fn log(&self, level: LogLevel, message: &str) {
        let Some(log) = self.api.log else { return };
        let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the host's log function takes a NUL-terminated string for the call.
        unsafe { log(level as u32, text.as_ptr()) };
    }

    pub fn config(&self, key: ConfigKey) -> i64 {
        // SAFETY: the host's config function takes a plain enum value.
        self.api
            .config_get
            .map_or(0, |get| unsafe { get(key as u32) })
    }

    /// Runs a Redis command for the run that `ctx` belongs to (`redis.execute` in a
    /// script). An error reply from Redis is `Ok(Reply::Error(..))`; `Err` means the
    /// host could not run the command at all.
    pub fn redis_command(&self, ctx: HostContext, args: &[&[u8]]) -> Result<Reply> {
        let command = self
            .api_fn(|api| api.redis_command)
            .ok_or_else(|| Error::new("the host does not offer redis_command"))?;
        let mut ptrs = Vec::with_capacity(args.len());
        let mut lens = Vec::with_capacity(args.len());
        for arg in args {
            ptrs.push(arg.as_ptr().cast::<c_char>());
            lens.push(arg.len());
        }
        // SAFETY: `ptrs` and `lens` describe `args`, which outlive the call; `ctx` came
        // from the host for the run in progress.
        let raw = unsafe { command(ctx.0, ptrs.as_ptr(), lens.as_ptr(), args.len()) };
        // SAFETY: the host returns a reply tree it owns until `reply_free`.
        Ok(unsafe { self.take_reply(raw) }.unwrap_or(Reply::Nil))
    }

    /// Runs the stored model at `key` on `inputs` for the run that `ctx` belongs to
    /// (`redisAI.model_execute` in a script) and returns `n_outputs` tensors.
    pub fn model_execute(
        &self,
        ctx: HostContext,
        key: &str,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        let (Some(execute), Some(release)) = (
            self.api_fn(|api| api.model_execute),
            self.api_fn(|api| api.host_tensor_release),
        ) else {
            return Err(Error::new("the host does not offer model_execute"));
        };
        let key = CString::new(key).map_err(|_| Error::new("model key contains NUL"))?;
        let views: Vec<RaiTensorView> = inputs.iter().map(view_of).collect();
        let empty = RaiTensorOut {
            view: view_of(&TensorRef {
                dtype: DType::Float,
                device: Device {
                    kind: DeviceKind::Cpu,
                    id: 0,
                },
                shape: &[],
                data: &[],
            }),
            owner: std::ptr::null_mut(),
        };
        let mut outs = vec![empty; n_outputs];
        // SAFETY: the views borrow `inputs`, which outlive the call; `outs` has room for
        // `n_outputs` outputs; `ctx` came from the host for the run in progress.
        let raw = unsafe {
            execute(
                ctx.0,
                key.as_ptr(),
                views.as_ptr(),
                views.len(),
                outs.as_mut_ptr(),
                n_outputs,
            )
        };
        // SAFETY: a non-null result is an error reply the host owns until `reply_free`.
        if let Some(reply) = unsafe { self.take_reply(raw) } {
            return Err(Error::new(match reply {
                Reply::Error(message) => message,
                other => format!("model_execute failed: {other:?}"),
            }));
        }
        let mut tensors = Vec::with_capacity(n_outputs);
        for out in outs {
            // SAFETY: on success the host filled every output with a valid view.
            let tensor = unsafe { tensor_ref(&out.view) }.map(|t| OwnedTensor {
                dtype: t.dtype,
                shape: t.shape.to_vec(),
                data: t.data.to_vec().into(),
            });
            // SAFETY: each output is released once, after its data was copied.
            unsafe { release(out.owner) };
            tensors.push(tensor?);
        }
        Ok(tensors)
    }

    /// The host's `output_alloc` (minor 5), or `None` when its table predates it.
    pub(super) fn output_alloc(&self) -> Option<unsafe extern "C" fn(usize) -> *mut c_void> {
        let needed = std::mem::offset_of!(RaiHostApi, output_alloc)
            + std::mem::size_of::<Option<unsafe extern "C" fn(usize) -> *mut c_void>>();
        if self.api.abi_minor < 5 || self.api.struct_size < needed {
            return None;
        }
        self.api.output_alloc
    }

    /// A minor-1 host function, or `None` when the host's table predates it.
    fn api_fn<F>(&self, field: impl FnOnce(&RaiHostApi) -> Option<F>) -> Option<F> {
        let needed = std::mem::offset_of!(RaiHostApi, host_tensor_release)
            + std::mem::size_of::<Option<unsafe extern "C" fn(*mut c_void)>>();
        if self.api.abi_minor < 1 || self.api.struct_size < needed {
            return None;
        }
        field(self.api)
    }

    /// Copies a host reply into a [`Reply`] and releases it; `None` for a null pointer.
    ///
    /// # Safety
    /// `raw` must be null or a reply from this host not yet released.
    unsafe fn take_reply(&self, raw: *mut RaiReply) -> Option<Reply> {
        if raw.is_null() {
            return None;
        }
        // SAFETY: guaranteed by the caller.
        let reply = unsafe { Reply::from_raw(&*raw) };
        if let Some(free) = self.api_fn(|api| api.reply_free) {
            // SAFETY: released once, after the copy above.
            unsafe { free(raw) };
        }
        Some(reply)
    }
}

/// The host's handle on the run in progress, for [`Host::redis_command`] and
/// [`Host::model_execute`]. Valid only while that run's call into the plugin lasts.
#[derive(Debug, Clone, Copy)]
pub struct HostContext(pub(super) *mut c_void);

// SAFETY: the host accepts the context from any thread during the run it belongs to.
unsafe impl Send for HostContext {}
// SAFETY: as above.
unsafe impl Sync for HostContext {}

/// A Redis reply, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Integer(i64),
    /// A bulk or status string.
    String(Vec<u8>),
    Error(String),
    Array(Vec<Reply>),
    Double(f64),
}

impl Reply {
    /// Copies a host reply tree.
    ///
    /// # Safety
    /// `raw` and everything it points to must be valid.
    unsafe fn from_raw(raw: &RaiReply) -> Reply {
        let bytes = || {
            if raw.str.is_null() || raw.len == 0 {
                Vec::new()
            } else {
                // SAFETY: guaranteed by the caller: `str` holds `len` bytes.
                unsafe { std::slice::from_raw_parts(raw.str.cast::<u8>(), raw.len) }.to_vec()
            }
        };
        match raw.kind {
            RaiReplyKind::Nil => Reply::Nil,
            RaiReplyKind::Integer => Reply::Integer(raw.integer),
            RaiReplyKind::Double => Reply::Double(raw.double_value),
            RaiReplyKind::String => Reply::String(bytes()),
            RaiReplyKind::Error => Reply::Error(String::from_utf8_lossy(&bytes()).into_owned()),
            RaiReplyKind::Array => {
                let items = if raw.elements.is_null() || raw.n_elements == 0 {
                    &[][..]
                } else {
                    // SAFETY: guaranteed by the caller.
                    unsafe { std::slice::from_raw_parts(raw.elements, raw.n_elements) }
                };
                // SAFETY: guaranteed by the caller, recursively.
                Reply::Array(
                    items
                        .iter()
                        .map(|item| unsafe { Reply::from_raw(item) })
                        .collect(),
                )
            }
        }
    }
}
