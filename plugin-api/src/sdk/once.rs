//! A value made once per process on first use, where a failed attempt is not kept.

use std::sync::{Mutex, OnceLock, PoisonError};

use super::Result;

/// Holds what a backend makes once per process (its runtime, with the library opened).
/// Unlike a plain `OnceLock`, a failed attempt is not cached: a later call tries again
/// (for example once the library has been put in place). Attempts never overlap.
pub struct RetryOnce<T> {
    value: OnceLock<T>,
    attempt: Mutex<()>,
}

impl<T> RetryOnce<T> {
    pub const fn new() -> Self {
        RetryOnce {
            value: OnceLock::new(),
            attempt: Mutex::new(()),
        }
    }

    /// The value, made by `make` if no earlier call made it.
    pub fn get_or_try_init(&self, make: impl FnOnce() -> Result<T>) -> Result<&T> {
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let _one_at_a_time = self.attempt.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let value = make()?;
        Ok(self.value.get_or_init(|| value))
    }

    /// The value, if a call made it.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }
}

impl<T> Default for RetryOnce<T> {
    fn default() -> Self {
        RetryOnce::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::Error;

    #[test]
    fn a_failure_is_tried_again_and_a_success_kept() {
        let once = RetryOnce::new();
        assert_eq!(
            once.get_or_try_init(|| Err(Error::new("not yet"))),
            Err(Error::new("not yet"))
        );
        assert_eq!(once.get(), None);
        assert_eq!(once.get_or_try_init(|| Ok(7)), Ok(&7));
        assert_eq!(once.get_or_try_init(|| Ok(8)), Ok(&7));
        assert_eq!(once.get(), Some(&7));
    }
}
