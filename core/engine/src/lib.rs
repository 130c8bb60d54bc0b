//! redisai-rs's engine: tensors, models, scripts and DAGs, how they are parsed, planned,
//! batched and run, the backend plugins that run them, and the settings and statistics
//! around them. It has no Redis in it: the Redis module (`core/module`, crate `redisai`)
//! turns commands into calls here and installs the services that need the server
//! ([`backend::host_services`]) at load.

pub mod backend;
pub mod config;
pub mod dag;
pub mod device;
pub mod exec;
pub mod model;
pub mod redisai_formats;
pub mod script;
pub mod settings;
pub mod stats;
pub mod tensor;
