//! The bytes of an output tensor: host memory lent for the run in progress (ABI minor 5's
//! `output_alloc`), which the host adopts as the stored tensor without a copy, or a `Vec`
//! of the plugin's own when the host is older (or lends nothing: outside a run, on
//! another thread, out of memory).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::{host, Error};

/// Output bytes, lent by the host or owned (see the module docs). Derefs to `[u8]`.
///
/// Lent memory belongs to the call into the plugin that asked for it: return it as an
/// output of that call (the host frees it otherwise when the call returns) and do not
/// keep it past the call. Dropping a lent buffer leaves it to the host.
pub struct OutputBuffer(Bytes);

enum Bytes {
    Owned(Vec<u8>),
    Lent { data: NonNull<u8>, len: usize },
}

// SAFETY: lent memory is plain host memory that only this value points to during the
// call; moving it to or reading it from another thread within the call is fine.
unsafe impl Send for OutputBuffer {}
// SAFETY: as above; `&OutputBuffer` only reads.
unsafe impl Sync for OutputBuffer {}

impl OutputBuffer {
    /// A copy of `bytes`: the plugin's one copy, into host memory when the host lends it.
    pub fn copy_from(bytes: &[u8]) -> OutputBuffer {
        match lend(bytes.len()) {
            Some(data) => {
                // SAFETY: `data` holds `bytes.len()` fresh bytes that cannot overlap `bytes`.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.as_ptr(), bytes.len())
                };
                OutputBuffer(Bytes::Lent {
                    data,
                    len: bytes.len(),
                })
            }
            None => OutputBuffer(Bytes::Owned(bytes.to_vec())),
        }
    }

    /// `len` bytes for a runtime to write an output into (through
    /// [`OutputBuffer::as_mut_ptr`]): host memory left as the host's allocator gave it
    /// when the host lends it, zeroes of the plugin's own otherwise.
    ///
    /// # Safety
    /// Every byte must be written before the buffer is read or returned as an output
    /// (a buffer dropped unread needs nothing).
    pub unsafe fn uninit(len: usize) -> OutputBuffer {
        match lend(len) {
            Some(data) => OutputBuffer(Bytes::Lent { data, len }),
            None => OutputBuffer(Bytes::Owned(vec![0; len])),
        }
    }

    /// Like [`OutputBuffer::copy_from`], called on the thread of the host's call in
    /// progress (`model_run`, `script_run`): when the host lends output memory but
    /// refuses these bytes (the run's outputs would pass what it may take under
    /// `maxmemory`, or the host has no memory), an out-of-memory error instead of a copy
    /// of the plugin's own that the host would refuse anyway.
    pub fn try_copy_from(bytes: &[u8]) -> Result<OutputBuffer, Error> {
        match lend_in_call(bytes.len())? {
            Some(data) => {
                // SAFETY: `data` holds `bytes.len()` fresh bytes that cannot overlap `bytes`.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.as_ptr(), bytes.len())
                };
                Ok(OutputBuffer(Bytes::Lent {
                    data,
                    len: bytes.len(),
                }))
            }
            None => Ok(OutputBuffer(Bytes::Owned(bytes.to_vec()))),
        }
    }

    /// Like [`OutputBuffer::uninit`], with the refusal of [`OutputBuffer::try_copy_from`].
    ///
    /// # Safety
    /// As for [`OutputBuffer::uninit`].
    pub unsafe fn try_uninit(len: usize) -> Result<OutputBuffer, Error> {
        Ok(match lend_in_call(len)? {
            Some(data) => OutputBuffer(Bytes::Lent { data, len }),
            None => OutputBuffer(Bytes::Owned(vec![0; len])),
        })
    }

    /// Whether the bytes are host memory the host will adopt without a copy.
    pub fn is_lent(&self) -> bool {
        matches!(self.0, Bytes::Lent { .. })
    }

    /// The bytes as a `Vec` of the plugin's own (a copy when they are lent).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Bytes::Owned(bytes) => bytes,
            Bytes::Lent { .. } => self.to_vec(),
        }
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        match &mut self.0 {
            Bytes::Owned(bytes) => bytes.as_mut_ptr(),
            Bytes::Lent { data, .. } => data.as_ptr(),
        }
    }
}

/// `len` bytes from the host's `output_alloc`, when it lends them; an error when the host
/// lends on this thread (a byte is lent) but not `len` bytes. The ABI's null does not say
/// why: outside a call, on another thread, or past the call's memory; the byte tells the
/// first two apart from the last (the host frees it with the call's other unused loans).
fn lend_in_call(len: usize) -> Result<Option<NonNull<u8>>, Error> {
    if let Some(data) = lend(len) {
        return Ok(Some(data));
    }
    if len > 1 && lend(1).is_some() {
        return Err(Error::out_of_memory(format!(
            "the host refused {len} bytes of output memory"
        )));
    }
    Ok(None)
}

/// `len` bytes from the host's `output_alloc`, when it has one and lends them.
fn lend(len: usize) -> Option<NonNull<u8>> {
    if len == 0 {
        return None;
    }
    let alloc = host()?.output_alloc()?;
    // SAFETY: the ABI's `output_alloc` takes a length and returns null or that many bytes.
    NonNull::new(unsafe { alloc(len) }.cast::<u8>())
}

impl Deref for OutputBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Bytes::Owned(bytes) => bytes,
            // SAFETY: `len` lent bytes, written before any read (see `uninit`), valid
            // during the call this buffer belongs to.
            Bytes::Lent { data, len } => unsafe { std::slice::from_raw_parts(data.as_ptr(), *len) },
        }
    }
}

impl DerefMut for OutputBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Bytes::Owned(bytes) => bytes,
            // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
            Bytes::Lent { data, len } => unsafe {
                std::slice::from_raw_parts_mut(data.as_ptr(), *len)
            },
        }
    }
}

impl AsRef<[u8]> for OutputBuffer {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for OutputBuffer {
    fn from(bytes: Vec<u8>) -> OutputBuffer {
        OutputBuffer(Bytes::Owned(bytes))
    }
}

impl Clone for OutputBuffer {
    /// A copy of the plugin's own (a clone is never lent).
    fn clone(&self) -> OutputBuffer {
        OutputBuffer::from(self.to_vec())
    }
}

impl fmt::Debug for OutputBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_lent() { "lent" } else { "owned" };
        write!(f, "OutputBuffer({kind}, {:?})", &**self)
    }
}

impl<T: AsRef<[u8]> + ?Sized> PartialEq<T> for OutputBuffer {
    fn eq(&self, other: &T) -> bool {
        **self == *other.as_ref()
    }
}
