//! Output memory the host lends a plugin during one `model_run` or `script_run` (ABI
//! minor 5's `output_alloc`), so that the runtime, or the plugin's one copy, writes
//! straight into the buffer that becomes the stored tensor.
//!
//! The buffers come from the host's allocator (Redis's, in the module), so `used_memory`,
//! `maxmemory` and eviction see them, and they never count against a backend's
//! BACKEND_MEMORY_LIMIT. A call's buffers live in a thread-local list, opened by
//! [`LentScope::enter`] before the call: an output whose data is one of them is adopted
//! ([`LentScope::adopt`]), the rest are freed when the scope ends. A script that runs a
//! model through `model_execute` nests a second scope on the same thread; the outer one
//! is put back when the inner one ends.

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::tensor::AlignedBuffer;

thread_local! {
    /// The lent buffers of the call in progress on this thread; `None` outside calls.
    static LENT: RefCell<Option<Vec<AlignedBuffer>>> = const { RefCell::new(None) };
}

/// The lent buffers of one call into a plugin on this thread; those not adopted are freed
/// when it is dropped.
pub(crate) struct LentScope {
    /// The enclosing call's buffers, put back on drop.
    outer: Option<Vec<AlignedBuffer>>,
}

impl LentScope {
    /// Opens a scope for a call about to be made on this thread.
    pub(crate) fn enter() -> LentScope {
        LentScope {
            outer: LENT.with(|lent| lent.replace(Some(Vec::new()))),
        }
    }

    /// The lent buffer that starts at `data`, shortened to `byte_len`, when there is one
    /// of at least that length; it is no longer the scope's to free.
    pub(crate) fn adopt(&self, data: *const c_void, byte_len: usize) -> Option<AlignedBuffer> {
        if data.is_null() || byte_len == 0 {
            return None;
        }
        LENT.with(|lent| {
            let mut lent = lent.borrow_mut();
            let buffers = lent.as_mut()?;
            let at = buffers
                .iter()
                .position(|b| b.as_ptr().cast::<c_void>() == data && byte_len <= b.len())?;
            let mut buffer = buffers.swap_remove(at);
            buffer.truncate(byte_len);
            Some(buffer)
        })
    }
}

impl Drop for LentScope {
    fn drop(&mut self) {
        let unadopted = LENT.with(|lent| lent.replace(self.outer.take()));
        drop(unadopted);
    }
}

/// `RaiHostApi::output_alloc`: a buffer of the call in progress on this thread, or null
/// (no call in progress here, `byte_len` 0, or no memory).
pub(crate) unsafe extern "C" fn output_alloc(byte_len: usize) -> *mut c_void {
    let lend = || {
        if byte_len == 0 {
            return std::ptr::null_mut();
        }
        LENT.with(|lent| {
            let mut lent = lent.borrow_mut();
            let Some(buffers) = lent.as_mut() else {
                return std::ptr::null_mut();
            };
            // SAFETY: the host reads the bytes only once the plugin returned the buffer
            // as an output, which the ABI says it wrote.
            match unsafe { AlignedBuffer::uninit(byte_len) } {
                Ok(mut buffer) => {
                    let data = buffer.as_mut_ptr().cast::<c_void>();
                    buffers.push(buffer);
                    data
                }
                Err(_) => std::ptr::null_mut(),
            }
        })
    };
    catch_unwind(AssertUnwindSafe(lend)).unwrap_or(std::ptr::null_mut())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lends `len` bytes and fills them with `byte`, as a plugin would.
    fn lend_filled(len: usize, byte: u8) -> *mut c_void {
        // SAFETY: called as a plugin calls it; the pointer is written within its length.
        unsafe {
            let data = output_alloc(len);
            assert!(!data.is_null());
            std::ptr::write_bytes(data.cast::<u8>(), byte, len);
            data
        }
    }

    fn lent_count() -> usize {
        LENT.with(|lent| lent.borrow().as_ref().map_or(0, Vec::len))
    }

    #[test]
    fn an_output_in_a_lent_buffer_is_adopted_without_a_copy() {
        let scope = LentScope::enter();
        let data = lend_filled(256, 7);
        assert_eq!(data as usize % 64, 0, "64-byte aligned");
        let buffer = scope.adopt(data, 256).expect("adopted");
        assert_eq!(buffer.as_ptr().cast::<c_void>(), data.cast_const());
        assert_eq!(buffer.as_slice(), &[7u8; 256][..]);
        assert_eq!(
            lent_count(),
            0,
            "an adopted buffer is no longer the scope's"
        );
        // Once adopted, the same pointer cannot be adopted twice.
        assert!(scope.adopt(data, 256).is_none());
    }

    #[test]
    fn a_shorter_output_is_adopted_shortened_and_a_longer_one_is_not() {
        let scope = LentScope::enter();
        let data = lend_filled(100, 1);
        assert!(scope.adopt(data, 101).is_none(), "longer than lent");
        let buffer = scope.adopt(data, 60).expect("adopted");
        assert_eq!(buffer.len(), 60);
    }

    #[test]
    fn pointers_that_were_not_lent_are_not_adopted() {
        let scope = LentScope::enter();
        let data = lend_filled(64, 0);
        let own = [0u8; 64];
        assert!(scope.adopt(own.as_ptr().cast(), 64).is_none());
        // Inside a lent buffer but not at its start: not adopted (copied by the caller).
        // SAFETY: an offset within the 64 lent bytes.
        let inside = unsafe { data.cast::<u8>().add(8) };
        assert!(scope.adopt(inside.cast(), 8).is_none());
        assert!(scope.adopt(std::ptr::null(), 0).is_none());
    }

    #[test]
    fn leftovers_are_freed_when_the_call_ends_and_nothing_is_lent_outside_calls() {
        // SAFETY: called as a plugin would, outside any call.
        assert!(unsafe { output_alloc(64) }.is_null());
        {
            let _scope = LentScope::enter();
            lend_filled(64, 0);
            lend_filled(128, 0);
            assert_eq!(lent_count(), 2);
        }
        assert_eq!(lent_count(), 0);
        assert!(LENT.with(|lent| lent.borrow().is_none()));
        // SAFETY: as above.
        assert!(unsafe { output_alloc(0) }.is_null());
    }

    #[test]
    fn a_nested_call_has_its_own_buffers_and_the_outer_ones_come_back() {
        let outer = LentScope::enter();
        let outer_data = lend_filled(64, 1);
        {
            let inner = LentScope::enter();
            assert!(
                inner.adopt(outer_data, 64).is_none(),
                "not the inner call's"
            );
            let inner_data = lend_filled(32, 2);
            assert!(inner.adopt(inner_data, 32).is_some());
        }
        assert!(outer.adopt(outer_data, 64).is_some());
    }

    #[test]
    fn another_thread_gets_nothing_from_this_threads_call() {
        let _scope = LentScope::enter();
        // SAFETY: called as a plugin would, from a thread with no call in progress.
        let elsewhere = std::thread::spawn(|| unsafe { output_alloc(64) } as usize)
            .join()
            .expect("thread");
        assert_eq!(elsewhere, 0);
    }
}
