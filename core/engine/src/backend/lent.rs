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
//!
//! Each scope also holds the call's [`OutputBudget`]: a lent buffer, and the engine's
//! copy of an output that was not lent ([`LentScope::charge_copy`]), is charged before it
//! is allocated, and refused past the budget. A nested scope draws from its own budget
//! and from what is left of the outer one's.

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::output_budget::{past_maxmemory, OutputBudget};
use super::{BackendError, ErrorCode};
use crate::tensor::AlignedBuffer;

/// The state of the call in progress on one thread.
struct Call {
    lent: Vec<AlignedBuffer>,
    /// Whether a loan was refused for the budget: a plugin that then fails for memory
    /// failed for that.
    refused: bool,
    /// Every limited budget the call draws from: its own and its outer calls', each
    /// once.
    budgets: Vec<OutputBudget>,
}

impl Call {
    /// Charges `bytes` to every budget, or to none when one of them has not the room.
    fn charge(&self, bytes: usize) -> bool {
        for (index, budget) in self.budgets.iter().enumerate() {
            if !budget.charge(bytes) {
                for charged in &self.budgets[..index] {
                    charged.refund(bytes);
                }
                return false;
            }
        }
        true
    }

    fn refund(&self, bytes: usize) {
        for budget in &self.budgets {
            budget.refund(bytes);
        }
    }
}

thread_local! {
    /// The call in progress on this thread; `None` outside calls.
    static CALL: RefCell<Option<Call>> = const { RefCell::new(None) };
}

/// The lent buffers of one call into a plugin on this thread; those not adopted are freed
/// when it is dropped.
pub(crate) struct LentScope {
    /// The enclosing call, put back on drop.
    outer: Option<Call>,
}

impl LentScope {
    /// Opens a scope for a call about to be made on this thread, whose outputs may take
    /// `budget` (and what is left of the enclosing call's, if any).
    pub(crate) fn enter(budget: &OutputBudget) -> LentScope {
        CALL.with(|call| {
            let mut call = call.borrow_mut();
            let mut budgets = call
                .as_ref()
                .map_or_else(Vec::new, |outer| outer.budgets.clone());
            if budget.is_limited() && !budgets.iter().any(|b| b.shares_with(budget)) {
                budgets.push(budget.clone());
            }
            let inner = Call {
                lent: Vec::new(),
                refused: false,
                budgets,
            };
            LentScope {
                outer: call.replace(inner),
            }
        })
    }

    /// The lent buffer that starts at `data`, shortened to `byte_len`, when there is one
    /// of at least that length; it is no longer the scope's to free.
    pub(crate) fn adopt(&self, data: *const c_void, byte_len: usize) -> Option<AlignedBuffer> {
        if data.is_null() || byte_len == 0 {
            return None;
        }
        CALL.with(|call| {
            let mut call = call.borrow_mut();
            let buffers = &mut call.as_mut()?.lent;
            let at = buffers
                .iter()
                .position(|b| b.as_ptr().cast::<c_void>() == data && byte_len <= b.len())?;
            let mut buffer = buffers.swap_remove(at);
            buffer.truncate(byte_len);
            Some(buffer)
        })
    }

    /// `error` as the call's outcome: an out-of-memory failure of the plugin after the
    /// host refused it a loan for the budget is the budget's refusal (Redis's OOM reply).
    pub(crate) fn plugin_error(&self, error: BackendError) -> BackendError {
        let refused = CALL.with(|call| call.borrow().as_ref().is_some_and(|c| c.refused));
        if refused && error.code == ErrorCode::OutOfMemory {
            past_maxmemory()
        } else {
            error
        }
    }

    /// Charges the engine's copy of an output of `byte_len` bytes, before it is
    /// allocated: the OOM refusal when it does not fit the call's budget.
    pub(crate) fn charge_copy(&self, byte_len: usize) -> Result<(), BackendError> {
        let charged = CALL.with(|call| call.borrow().as_ref().is_none_or(|c| c.charge(byte_len)));
        if charged {
            Ok(())
        } else {
            Err(past_maxmemory())
        }
    }

    /// Gives back a charge of [`LentScope::charge_copy`] whose copy was not made.
    pub(crate) fn refund_copy(&self, byte_len: usize) {
        CALL.with(|call| {
            if let Some(call) = call.borrow().as_ref() {
                call.refund(byte_len);
            }
        });
    }
}

impl Drop for LentScope {
    fn drop(&mut self) {
        let ended = CALL.with(|call| call.replace(self.outer.take()));
        if let Some(ended) = ended {
            // Buffers never adopted are freed here: their bytes are the budget's again.
            let unadopted: usize = ended.lent.iter().map(AlignedBuffer::len).sum();
            ended.refund(unadopted);
        }
    }
}

/// `RaiHostApi::output_alloc`: a buffer of the call in progress on this thread, or null
/// (no call in progress here, `byte_len` 0, past the call's output budget, or no
/// memory).
pub(crate) unsafe extern "C" fn output_alloc(byte_len: usize) -> *mut c_void {
    let lend = || {
        if byte_len == 0 {
            return std::ptr::null_mut();
        }
        CALL.with(|call| {
            let mut call = call.borrow_mut();
            let Some(call) = call.as_mut() else {
                return std::ptr::null_mut();
            };
            // Charged before the allocator is asked: Redis's aborts when it fails.
            if !call.charge(byte_len) {
                call.refused = true;
                return std::ptr::null_mut();
            }
            // SAFETY: the host reads the bytes only once the plugin returned the buffer
            // as an output, which the ABI says it wrote.
            match unsafe { AlignedBuffer::uninit(byte_len) } {
                Ok(mut buffer) => {
                    let data = buffer.as_mut_ptr().cast::<c_void>();
                    call.lent.push(buffer);
                    data
                }
                Err(_) => {
                    call.refund(byte_len);
                    std::ptr::null_mut()
                }
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
        CALL.with(|call| call.borrow().as_ref().map_or(0, |c| c.lent.len()))
    }

    #[test]
    fn an_output_in_a_lent_buffer_is_adopted_without_a_copy() {
        let scope = LentScope::enter(&OutputBudget::unlimited());
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
        let scope = LentScope::enter(&OutputBudget::unlimited());
        let data = lend_filled(100, 1);
        assert!(scope.adopt(data, 101).is_none(), "longer than lent");
        let buffer = scope.adopt(data, 60).expect("adopted");
        assert_eq!(buffer.len(), 60);
    }

    #[test]
    fn pointers_that_were_not_lent_are_not_adopted() {
        let scope = LentScope::enter(&OutputBudget::unlimited());
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
            let _scope = LentScope::enter(&OutputBudget::unlimited());
            lend_filled(64, 0);
            lend_filled(128, 0);
            assert_eq!(lent_count(), 2);
        }
        assert_eq!(lent_count(), 0);
        assert!(CALL.with(|call| call.borrow().is_none()));
        // SAFETY: as above.
        assert!(unsafe { output_alloc(0) }.is_null());
    }

    #[test]
    fn a_nested_call_has_its_own_buffers_and_the_outer_ones_come_back() {
        let outer = LentScope::enter(&OutputBudget::unlimited());
        let outer_data = lend_filled(64, 1);
        {
            let inner = LentScope::enter(&OutputBudget::unlimited());
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
        let _scope = LentScope::enter(&OutputBudget::unlimited());
        // SAFETY: called as a plugin would, from a thread with no call in progress.
        let elsewhere = std::thread::spawn(|| unsafe { output_alloc(64) } as usize)
            .join()
            .expect("thread");
        assert_eq!(elsewhere, 0);
    }

    #[test]
    fn lent_and_copied_outputs_are_charged_to_one_budget() {
        let budget = OutputBudget::bytes(1000);
        let scope = LentScope::enter(&budget);
        let data = lend_filled(600, 1);
        assert_eq!(budget.left(), Some(400));
        scope.charge_copy(300).expect("fits");
        assert_eq!(budget.left(), Some(100));
        assert_eq!(
            scope.charge_copy(101).expect_err("past the budget"),
            past_maxmemory()
        );
        assert_eq!(budget.left(), Some(100), "a refused copy takes nothing");
        scope.refund_copy(300);
        assert!(scope.adopt(data, 600).is_some());
        drop(scope);
        assert_eq!(budget.left(), Some(400), "adopted bytes stay charged");
    }

    #[test]
    fn an_exhausted_budget_lends_nothing_and_freed_leftovers_are_given_back() {
        let budget = OutputBudget::bytes(256);
        {
            let _scope = LentScope::enter(&budget);
            lend_filled(200, 0);
            // SAFETY: called as a plugin would, during a call.
            assert!(unsafe { output_alloc(57) }.is_null(), "past the budget");
            assert_eq!(lent_count(), 1, "nothing allocated for the refusal");
            lend_filled(56, 0);
            // SAFETY: as above.
            assert!(unsafe { output_alloc(1) }.is_null());
        }
        assert_eq!(budget.left(), Some(256), "unadopted buffers were freed");
    }

    #[test]
    fn a_nested_call_draws_from_what_is_left_of_the_outer_budget() {
        let outer_budget = OutputBudget::bytes(1000);
        let outer = LentScope::enter(&outer_budget);
        let outer_data = lend_filled(700, 1);
        {
            // The nested call's own budget is roomier: the outer one still binds.
            let inner_budget = OutputBudget::bytes(10_000);
            let inner = LentScope::enter(&inner_budget);
            assert!(inner.charge_copy(301).is_err());
            assert_eq!(inner_budget.left(), Some(10_000), "charged to none");
            let inner_data = lend_filled(300, 2);
            assert_eq!(outer_budget.left(), Some(0));
            assert_eq!(inner_budget.left(), Some(9_700));
            assert!(inner.adopt(inner_data, 300).is_some());
        }
        {
            // An unlimited nested call (a script's `model_execute`) inherits the outer
            // budget; given the outer budget again, it is charged once.
            let inner = LentScope::enter(&OutputBudget::unlimited());
            assert!(inner.charge_copy(1).is_err());
            drop(inner);
            let inner = LentScope::enter(&outer_budget);
            assert!(inner.charge_copy(0).is_ok());
            inner.refund_copy(50);
            inner.charge_copy(50).expect("charged once, not twice");
        }
        assert!(outer.adopt(outer_data, 700).is_some());
    }

    #[test]
    fn without_a_budget_nothing_is_refused() {
        let scope = LentScope::enter(&OutputBudget::unlimited());
        scope.charge_copy(usize::MAX).expect("unlimited");
        lend_filled(4096, 3);
        assert_eq!(lent_count(), 1);
    }

    #[test]
    fn a_plugin_out_of_memory_after_a_refused_loan_is_the_budgets_refusal() {
        let oom = || BackendError {
            code: ErrorCode::OutOfMemory,
            message: "the host refused 100 bytes of output memory".to_owned(),
        };
        let failed = || BackendError::failed("something else");
        {
            let scope = LentScope::enter(&OutputBudget::bytes(100));
            assert_eq!(
                scope.plugin_error(oom()).message,
                oom().message,
                "nothing refused yet"
            );
            // SAFETY: called as a plugin would, inside the call.
            assert!(unsafe { output_alloc(101) }.is_null());
            assert_eq!(scope.plugin_error(oom()), past_maxmemory());
            assert_eq!(
                scope.plugin_error(failed()),
                failed(),
                "other failures stay"
            );
        }
        let scope = LentScope::enter(&OutputBudget::bytes(100));
        assert_eq!(
            scope.plugin_error(oom()).message,
            oom().message,
            "a new call"
        );
    }
}
