//! redisai-rs: a Redis module that stores tensors and runs models next to them.
//!
//! This file only registers things with Redis; the logic lives in the modules below.

pub mod config;
pub mod tensor;

#[cfg(not(test))]
mod commands;
#[cfg(not(test))]
mod events;
#[cfg(not(test))]
mod info;
#[cfg(not(test))]
mod persist;
#[cfg(not(test))]
mod retained;
#[cfg(not(test))]
mod settings;

/// Version of this module as Redis sees it (major * 10000 + minor * 100 + patch).
pub const MODULE_VERSION: i32 = 10_000;

#[cfg(not(test))]
mod registration {
    use redis_module::{redis_module, Context, InfoContext, RedisResult, RedisString, Status};

    use crate::commands::{config as config_cmd, guarded, tensor};
    use crate::info::report_info;
    use crate::persist::tensor_type::TENSOR_TYPE;

    fn initialize(ctx: &Context, args: &[RedisString]) -> Status {
        crate::retained::set_main_thread();
        ctx.set_module_options(redis_module::ModuleOptions::HANDLE_IO_ERRORS);
        let args: Vec<&[u8]> = args.iter().map(RedisString::as_slice).collect();
        match crate::settings::initialize(&args) {
            Ok(config) => {
                if crate::events::subscribe(ctx) == Status::Err {
                    return Status::Err;
                }
                ctx.log_notice(&format!(
                    "redisai-rs {} loaded; BACKENDSPATH is {}",
                    env!("CARGO_PKG_VERSION"),
                    config.backends_path.display()
                ));
                for (kind, path) in &config.backends_at_load {
                    ctx.log_warning(&format!(
                        "backend {kind} requested at {}: backend plugins are not available in \
                         this build yet, so it is not loaded",
                        path.display()
                    ));
                }
                Status::Ok
            }
            Err(err) => {
                ctx.log_warning(&format!("redisai-rs refuses to load: {err}"));
                Status::Err
            }
        }
    }

    redis_module! {
        name: "ai",
        version: crate::MODULE_VERSION,
        allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
        data_types: [TENSOR_TYPE],
        init: initialize,
        info: report_info,
        commands: [
            ["AI.TENSORSET", |ctx, args| guarded(ctx, args, tensor::tensorset), "write deny-oom", 1, 1, 1, ""],
            ["AI.TENSORGET", |ctx, args| guarded(ctx, args, tensor::tensorget), "readonly", 1, 1, 1, ""],
            ["AI.CONFIG", |ctx, args| guarded(ctx, args, config_cmd::config), "", 0, 0, 0, ""],
        ],
    }
}
