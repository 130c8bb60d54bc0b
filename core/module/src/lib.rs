//! redisai-rs: a Redis module that stores tensors and runs models next to them.
//!
//! This crate is the Redis side: it registers commands and data types, turns commands
//! into calls to the engine (`redisai-engine`), replies, persists and handles server
//! events. This file only registers things with Redis.

mod blocking;
mod commands;
mod error_text;
mod event_subscription;
mod events;
mod host;
mod info;
mod persist;
mod reply;
mod retained;

/// Version of this module as Redis sees it (`MODULE LIST`; major * 10000 + minor * 100 +
/// patch): RedisAI 1.2.7's number, the release whose commands and replies this module
/// follows, since clients and dashboards compare it against RedisAI's. Our own version is
/// INFO's `ai_version`.
pub const MODULE_VERSION: i32 = 10_207;

mod registration {
    use redis_module::{redis_module, Context, InfoContext, RedisResult, RedisString, Status};

    use crate::commands::{dag, guarded, model, run_info, script, subcommands, tensor};
    use crate::info::report_info;
    use crate::persist::model_type::MODEL_TYPE;
    use crate::persist::script_type::SCRIPT_TYPE;
    use crate::persist::tensor_type::TENSOR_TYPE;

    fn initialize(ctx: &Context, args: &[RedisString]) -> Status {
        crate::retained::set_main_thread();
        crate::host::install_services();
        ctx.set_module_options(redis_module::ModuleOptions::HANDLE_IO_ERRORS);
        let args: Vec<&[u8]> = args.iter().map(RedisString::as_slice).collect();
        match redisai_engine::settings::initialize(&args) {
            Ok(config) => {
                if crate::events::subscribe(ctx) == Status::Err
                    || subcommands::register_config(ctx) == Status::Err
                    || crate::commands::key_specs::declare(ctx) == Status::Err
                {
                    return Status::Err;
                }
                ctx.log_notice(&format!(
                    "redisai-rs {} loaded; BACKENDSPATH is {}",
                    env!("CARGO_PKG_VERSION"),
                    config.backends_path.display()
                ));
                for (kind, path) in &config.backends_at_load {
                    // A backend that fails to load is logged; the module still loads.
                    let _ =
                        crate::commands::config::load_named(ctx, kind.identifier(), path.clone());
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
        data_types: [TENSOR_TYPE, MODEL_TYPE, SCRIPT_TYPE],
        init: initialize,
        info: report_info,
        commands: [
            ["AI.TENSORSET", |ctx, args| guarded(ctx, args, tensor::tensorset), "write deny-oom", 1, 1, 1, ""],
            ["AI.TENSORGET", |ctx, args| guarded(ctx, args, tensor::tensorget), "readonly", 1, 1, 1, ""],
            ["AI.MODELSTORE", |ctx, args| guarded(ctx, args, model::modelstore), "write deny-oom", 1, 1, 1, ""],
            ["AI.MODELSET", |ctx, args| guarded(ctx, args, model::modelset), "write deny-oom", 1, 1, 1, ""],
            ["AI.MODELGET", |ctx, args| guarded(ctx, args, model::modelget), "readonly", 1, 1, 1, ""],
            ["AI.MODELDEL", |ctx, args| guarded(ctx, args, model::modeldel), "write", 1, 1, 1, ""],
            ["AI.MODELEXECUTE", |ctx, args| guarded(ctx, args, model::modelexecute), "write deny-oom getkeys-api", 1, 1, 1, ""],
            ["AI.MODELRUN", |ctx, args| guarded(ctx, args, model::modelrun), "write deny-oom getkeys-api", 1, 1, 1, ""],
            ["AI._MODELSCAN", |ctx, args| guarded(ctx, args, model::modelscan), "readonly", 0, 0, 0, ""],
            ["AI.SCRIPTSTORE", |ctx, args| guarded(ctx, args, script::scriptstore), "write deny-oom", 1, 1, 1, ""],
            ["AI.SCRIPTSET", |ctx, args| guarded(ctx, args, script::scriptset), "write deny-oom", 1, 1, 1, ""],
            ["AI.SCRIPTGET", |ctx, args| guarded(ctx, args, script::scriptget), "readonly", 1, 1, 1, ""],
            ["AI.SCRIPTDEL", |ctx, args| guarded(ctx, args, script::scriptdel), "write", 1, 1, 1, ""],
            ["AI.SCRIPTEXECUTE", |ctx, args| guarded(ctx, args, script::scriptexecute), "write deny-oom getkeys-api", 1, 1, 1, ""],
            ["AI.SCRIPTRUN", |ctx, args| guarded(ctx, args, script::scriptrun), "write deny-oom getkeys-api", 1, 1, 1, ""],
            ["AI._SCRIPTSCAN", |ctx, args| guarded(ctx, args, script::scriptscan), "readonly", 0, 0, 0, ""],
            ["AI.INFO", |ctx, args| guarded(ctx, args, run_info::info), "readonly", 1, 1, 1, ""],
            ["AI.DAGEXECUTE", |ctx, args| guarded(ctx, args, dag::dagexecute), "write deny-oom getkeys-api", 0, 0, 0, ""],
            ["AI.DAGEXECUTE_RO", |ctx, args| guarded(ctx, args, dag::dagexecute_ro), "readonly getkeys-api", 0, 0, 0, ""],
            ["AI.DAGRUN", |ctx, args| guarded(ctx, args, dag::dagrun), "write deny-oom getkeys-api", 0, 0, 0, ""],
            ["AI.DAGRUN_RO", |ctx, args| guarded(ctx, args, dag::dagrun_ro), "readonly getkeys-api", 0, 0, 0, ""],
        ],
    }
}
