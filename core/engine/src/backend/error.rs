//! What a failed call into a plugin (or the engine's handling around it) reports: a
//! kind and the message as written. The engine adds no reply prefix; the module turns a
//! failure into the text a client reads (`core/module/src/error_text.rs`).

use std::fmt;

pub use redisai_plugin_api::abi::RaiErrorCode as ErrorCode;

/// A plugin's error (its `error_code`, ABI minor 4, and message), or one of the
/// engine's own around a plugin call (always [`ErrorCode::Failed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    pub code: ErrorCode,
    pub message: String,
}

impl BackendError {
    /// A failure of no particular kind: what every error of a plugin before ABI 1.4 is.
    pub fn failed(message: impl Into<String>) -> BackendError {
        BackendError {
            code: ErrorCode::Failed,
            message: message.into(),
        }
    }
}

impl From<String> for BackendError {
    fn from(message: String) -> BackendError {
        BackendError::failed(message)
    }
}

impl From<&str> for BackendError {
    fn from(message: &str) -> BackendError {
        BackendError::failed(message)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}
