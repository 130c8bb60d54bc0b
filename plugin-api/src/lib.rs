//! The C ABI shared by the redisai-rs core and its backend plugins.
//!
//! This crate starts with the shared vocabulary (ABI version and data types); the
//! function tables, the generated header and the safe plugin SDK build on it.

/// Major version of the plugin ABI: a plugin built for another major is refused.
pub const ABI_VERSION_MAJOR: u32 = 0;
/// Minor version of the plugin ABI: the core accepts plugins with a minor up to its own.
pub const ABI_VERSION_MINOR: u32 = 1;

/// Element type of a tensor as it crosses the ABI.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiDType {
    Float = 0,
    Double = 1,
    Int8 = 2,
    Int16 = 3,
    Int32 = 4,
    Int64 = 5,
    Uint8 = 6,
    Uint16 = 7,
    Bool = 8,
    String = 9,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_are_stable() {
        assert_eq!(RaiDType::Float as u32, 0);
        assert_eq!(RaiDType::String as u32, 9);
    }
}
