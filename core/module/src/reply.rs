//! Error replies as Redis receives them, and panics turned into error text: shared by
//! the command handlers, the blocked-client replies and the data type callbacks. (The
//! text of a failed run or store is `error_text.rs`'s.)

use redis_module::{RedisError, RedisResult};
/// The bytes of an error reply, as RedisAI gave them: line breaks (and NUL, which ends a
/// C string) become spaces, as RedisAI's one-line error did; every other byte, tabs and
/// UTF-8 included, stays as the backend or client wrote it.
pub fn reply_bytes(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|byte| match byte {
            b'\r' | b'\n' | 0 => b' ',
            other => other,
        })
        .collect()
}

/// [`reply_bytes`] in the form the `redis-module` crate's error replies need: it sends
/// each `char` as its low byte (`c as u8`) and panics (an abort, outside any catch) on a
/// resulting NUL, so a non-ASCII character such as U+0600 would be cut to a NUL, and
/// U+010D to a bare `\r`. Each reply byte is therefore carried as the `char` of the
/// same number (U+0000..U+00FF), which the crate turns back into exactly that byte.
pub fn resp_safe(text: &str) -> String {
    reply_bytes(text).into_iter().map(char::from).collect()
}

/// [`resp_safe`] applied to an error result.
pub fn resp_safe_result(result: RedisResult) -> RedisResult {
    match result {
        Err(RedisError::String(text)) => Err(RedisError::String(resp_safe(&text))),
        other => other,
    }
}

pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}
