//! A first look at a model blob before LiteRT parses it: LiteRT verifies the
//! flatbuffer itself (truncated and damaged blobs fail there), this only turns blobs
//! that are not .tflite files at all away with a clearer message.

use redisai_plugin_api::sdk::{Error, Result};

/// The file identifier of TFLite flatbuffers, at offset 4.
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// RedisAI's text for a blob TFLite cannot read.
pub const NOT_A_MODEL: &str = "Failed to load model from buffer";

/// Checks that `blob` looks like a .tflite flatbuffer.
pub fn check_model(blob: &[u8]) -> Result<()> {
    // Empty, or without the TFL3 identifier: RedisAI's text for every unreadable blob.
    if blob.len() < 8 || &blob[4..8] != FILE_IDENTIFIER {
        return Err(Error::new(NOT_A_MODEL));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tflite_flatbuffers_pass() {
        assert!(check_model(b"").is_err_and(|e| e.message() == NOT_A_MODEL));
        assert!(check_model(b"\x1c\0\0\0TFL").is_err());
        assert!(check_model(b"\x1c\0\0\0ONNX").is_err_and(|e| e.message() == NOT_A_MODEL));
        assert!(check_model(b"\x1c\0\0\0TFL3").is_ok());
    }
}
