//! The error a plugin returns: a [`ErrorCode`] the host can act on and the message the
//! client reads.

use std::fmt;

pub use crate::abi::RaiErrorCode as ErrorCode;

/// An error a plugin returns. Its message reaches the client unchanged; its code (ABI
/// minor 4) tells the host what kind of failure it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    /// A failure of no particular kind ([`ErrorCode::Failed`]).
    pub fn new(message: impl Into<String>) -> Error {
        Error::with_code(ErrorCode::Failed, message)
    }

    /// A [`ErrorCode::Failed`] error from another library's error, for
    /// `.map_err(Error::failed)`.
    pub fn failed(err: impl fmt::Display) -> Error {
        Error::new(err.to_string())
    }

    pub fn with_code(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// The inputs do not fit the model: count, shape, element type or size.
    pub fn invalid_input(message: impl Into<String>) -> Error {
        Error::with_code(ErrorCode::InvalidInput, message)
    }

    /// The run passed its timeout and was stopped.
    pub fn timed_out(message: impl Into<String>) -> Error {
        Error::with_code(ErrorCode::TimedOut, message)
    }

    /// The run was stopped because the host no longer wants its result.
    pub fn cancelled(message: impl Into<String>) -> Error {
        Error::with_code(ErrorCode::Cancelled, message)
    }

    /// The backend refused an allocation.
    pub fn out_of_memory(message: impl Into<String>) -> Error {
        Error::with_code(ErrorCode::OutOfMemory, message)
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn into_message(self) -> String {
        self.message
    }

    /// The same kind of error with its message rewritten (context added, or the runtime's
    /// text replaced by the one clients expect).
    pub fn map_message(self, rewrite: impl FnOnce(String) -> String) -> Error {
        Error {
            code: self.code,
            message: rewrite(self.message),
        }
    }

    /// The message without line breaks or trailing blanks (error texts end up in Redis
    /// replies), keeping the code.
    pub fn one_line(self) -> Error {
        self.map_message(|message| message.trim_end().replace(['\r', '\n'], " "))
    }

    /// `"{context}: {message}"`, keeping the code.
    pub fn context(self, context: impl fmt::Display) -> Error {
        self.map_message(|message| format!("{context}: {message}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

/// Errors of the standard library that plugins pass on with `?` as plain failures.
macro_rules! failed_from {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for Error {
            fn from(err: $source) -> Self {
                Error::new(err.to_string())
            }
        }
    )*};
}

failed_from!(
    std::io::Error,
    std::ffi::NulError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    std::num::TryFromIntError,
    std::num::ParseIntError,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_their_code() {
        let cases = [
            (Error::new("a"), ErrorCode::Failed),
            (Error::invalid_input("a"), ErrorCode::InvalidInput),
            (Error::timed_out("a"), ErrorCode::TimedOut),
            (Error::cancelled("a"), ErrorCode::Cancelled),
            (Error::out_of_memory("a"), ErrorCode::OutOfMemory),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code);
            assert_eq!(error.message(), "a");
        }
    }

    #[test]
    fn display_is_the_message_alone() {
        let error = Error::timed_out("Model run timed out");
        assert_eq!(error.to_string(), "Model run timed out");
        let boxed: Box<dyn std::error::Error> = Box::new(error);
        assert_eq!(boxed.to_string(), "Model run timed out");
    }

    #[test]
    fn context_keeps_the_code() {
        let error = Error::invalid_input("wrong shape").context("input 0 ('x')");
        assert_eq!(error.message(), "input 0 ('x'): wrong shape");
        assert_eq!(error.code(), ErrorCode::InvalidInput);
        let one_line = Error::timed_out("a\nb\r\nc\n").one_line();
        assert_eq!(one_line, Error::timed_out("a b  c"));
        let rewritten = Error::out_of_memory("arena").map_message(|m| m.to_uppercase());
        assert_eq!(rewritten, Error::out_of_memory("ARENA"));
    }

    #[test]
    fn conversions_are_plain_failures() {
        let from_io = Error::from(std::io::Error::other("disk"));
        assert_eq!(
            (from_io.code(), from_io.message()),
            (ErrorCode::Failed, "disk")
        );
        let from_text: Error = "text".into();
        assert_eq!(from_text, Error::new("text"));
    }

    #[test]
    fn unknown_raw_codes_read_as_failed() {
        for code in [
            ErrorCode::Failed,
            ErrorCode::InvalidInput,
            ErrorCode::TimedOut,
            ErrorCode::Cancelled,
            ErrorCode::OutOfMemory,
        ] {
            assert_eq!(ErrorCode::from_raw(code as u32), code);
        }
        assert_eq!(ErrorCode::from_raw(5), ErrorCode::Failed);
        assert_eq!(ErrorCode::from_raw(u32::MAX), ErrorCode::Failed);
    }
}
