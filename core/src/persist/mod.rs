//! Persistence glue: RDB encodings, AOF rewrite and digests of the module's data types.

pub mod boxed;
pub mod model_type;
pub mod script_type;
pub mod tensor_type;
