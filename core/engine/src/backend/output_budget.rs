//! How many bytes a run's outputs may take before they are allocated.
//!
//! The module measures the room left under `maxmemory` when it dispatches a run, on the
//! main thread, and hands it to the engine as a plain number. Every byte of an output
//! the host allocates during the run (memory lent to the plugin, the engine's copy of an
//! output that was not lent, the pieces of a batch) is charged first; a charge past what
//! is left is refused before the allocator is called, so a model whose outputs are huge
//! cannot take Redis past `maxmemory` (or make its allocator abort) before the check
//! made after the run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{BackendError, ErrorCode};

/// Redis's own reply to a command refused for memory (`shared.oomerr`): what a run whose
/// outputs do not fit its budget answers, as it is.
pub const OUTPUTS_PAST_MAXMEMORY: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// The bytes left for the outputs of one request; clones share what is left, so the ops
/// of a DAG and the models a script runs draw from the request's one budget.
#[derive(Debug, Clone, Default)]
pub struct OutputBudget {
    /// `None`: no limit (no `maxmemory`).
    left: Option<Arc<AtomicU64>>,
}

impl OutputBudget {
    /// No limit.
    pub fn unlimited() -> OutputBudget {
        OutputBudget { left: None }
    }

    /// At most `bytes` in all.
    pub fn bytes(bytes: u64) -> OutputBudget {
        OutputBudget {
            left: Some(Arc::new(AtomicU64::new(bytes))),
        }
    }

    /// Bytes left; `None` when unlimited.
    pub fn left(&self) -> Option<u64> {
        self.left.as_ref().map(|left| left.load(Ordering::Relaxed))
    }

    pub fn is_limited(&self) -> bool {
        self.left.is_some()
    }

    /// Takes `bytes` from what is left, or nothing when they do not fit.
    pub fn charge(&self, bytes: usize) -> bool {
        let Some(left) = &self.left else {
            return true;
        };
        let Ok(bytes) = u64::try_from(bytes) else {
            return false;
        };
        left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(bytes)
        })
        .is_ok()
    }

    /// Gives back `bytes` charged earlier and freed since.
    pub fn refund(&self, bytes: usize) {
        if let Some(left) = &self.left {
            let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
            let _ = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_add(bytes))
            });
        }
    }

    /// Takes `bytes` from what is left until the returned reservation is dropped (for
    /// memory that lives only as long as a call, such as a nested run's inputs); `None`
    /// when they do not fit.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation<'_>> {
        // Built only once charged: dropping it gives the bytes back.
        self.charge(bytes).then(|| Reservation {
            budget: self,
            bytes,
        })
    }

    /// Whether both draw from the same bytes (two unlimited budgets do not).
    pub fn shares_with(&self, other: &OutputBudget) -> bool {
        matches!((&self.left, &other.left), (Some(a), Some(b)) if Arc::ptr_eq(a, b))
    }

    /// The budget of the runs of a batch: the one of them with the least left (each was
    /// measured against the same `maxmemory` when its command came).
    pub fn tightest<'a>(budgets: impl IntoIterator<Item = &'a OutputBudget>) -> OutputBudget {
        budgets
            .into_iter()
            .filter(|budget| budget.is_limited())
            .min_by_key(|budget| budget.left())
            .cloned()
            .unwrap_or_default()
    }
}

/// Bytes taken from a budget and given back when dropped ([`OutputBudget::reserve`]).
#[must_use = "the bytes are given back when the reservation is dropped"]
pub struct Reservation<'a> {
    budget: &'a OutputBudget,
    bytes: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.refund(self.bytes);
    }
}

/// The error of a run whose outputs would pass its budget.
pub fn past_maxmemory() -> BackendError {
    BackendError {
        code: ErrorCode::OutOfMemory,
        message: OUTPUTS_PAST_MAXMEMORY.to_owned(),
    }
}

/// Whether `error` is a refusal of [`past_maxmemory`] (a plugin's own out-of-memory
/// errors keep their text).
pub fn is_past_maxmemory(error: &BackendError) -> bool {
    error.code == ErrorCode::OutOfMemory && error.message == OUTPUTS_PAST_MAXMEMORY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlimited_budget_takes_any_charge() {
        let budget = OutputBudget::unlimited();
        assert!(budget.charge(usize::MAX));
        assert!(budget.charge(usize::MAX));
        assert_eq!(budget.left(), None);
    }

    #[test]
    fn charges_are_taken_until_the_next_one_does_not_fit() {
        let budget = OutputBudget::bytes(100);
        assert!(budget.charge(60));
        assert!(budget.charge(40));
        assert_eq!(budget.left(), Some(0));
        assert!(!budget.charge(1), "exhausted");
        assert!(budget.charge(0));
        budget.refund(30);
        assert!(!budget.charge(31), "refused whole, nothing taken");
        assert_eq!(budget.left(), Some(30));
        assert!(budget.charge(30));
    }

    #[test]
    fn clones_share_what_is_left_and_fresh_budgets_do_not() {
        let budget = OutputBudget::bytes(100);
        let op = budget.clone();
        assert!(op.charge(70));
        assert_eq!(budget.left(), Some(30));
        assert!(budget.shares_with(&op));
        assert!(!budget.shares_with(&OutputBudget::bytes(100)));
        assert!(!OutputBudget::unlimited().shares_with(&OutputBudget::unlimited()));
    }

    #[test]
    fn a_reservation_is_given_back_when_dropped() {
        let budget = OutputBudget::bytes(100);
        let held = budget.reserve(80).expect("fits");
        assert!(budget.reserve(21).is_none());
        assert_eq!(budget.left(), Some(20));
        drop(held);
        assert_eq!(budget.left(), Some(100));
        assert!(OutputBudget::unlimited().reserve(usize::MAX).is_some());
    }

    #[test]
    fn a_batch_draws_from_its_tightest_budget() {
        let (roomy, tight) = (OutputBudget::bytes(1000), OutputBudget::bytes(10));
        let none = OutputBudget::unlimited();
        let batch = OutputBudget::tightest([&roomy, &none, &tight]);
        assert!(batch.shares_with(&tight));
        assert!(!OutputBudget::tightest([&none, &none]).is_limited());
    }

    #[test]
    fn the_refusal_is_told_from_a_plugins_own_out_of_memory_error() {
        assert!(is_past_maxmemory(&past_maxmemory()));
        let plugin = BackendError {
            code: ErrorCode::OutOfMemory,
            message: "Failed to allocate memory".to_owned(),
        };
        assert!(!is_past_maxmemory(&plugin));
        assert!(!is_past_maxmemory(&BackendError::failed(
            OUTPUTS_PAST_MAXMEMORY
        )));
    }
}
