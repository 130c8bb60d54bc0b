//! Load-time arguments, AI.CONFIG and INFO MODULES.

use redisai_tests::redis::Value;
use redisai_tests::{error_text, run_str, Server, ServerConfig};

fn info_modules(server: &Server) -> String {
    redisai_tests::redis::cmd("INFO")
        .arg("modules")
        .query(&mut server.client())
        .expect("info")
}

#[test]
fn defaults_are_visible_in_info_and_config_get() {
    let server = Server::start();
    let mut c = server.client();
    let expected_path = redisai_tests::module_path()
        .canonicalize()
        .expect("module path")
        .parent()
        .expect("dir")
        .join("backends");
    assert_eq!(
        run_str(&mut c, "AI.CONFIG GET BACKENDSPATH").expect("get"),
        Value::BulkString(expected_path.display().to_string().into_bytes())
    );
    assert_eq!(
        run_str(&mut c, "AI.CONFIG GET MODEL_CHUNK_SIZE").expect("get"),
        Value::Int(511 * 1024 * 1024)
    );
    let info = info_modules(&server);
    for field in [
        "module:name=ai",
        "ai_version:",
        "ai_threads_per_queue:1",
        "ai_model_chunk_size:535822336",
        "ai_model_execution_timeout:5000",
        "ai_backend_memory_limit:0",
        "ai_intra_op_parallelism:0",
        "ai_inter_op_parallelism:0",
        &format!("ai_backends_path:{}", expected_path.display()),
    ] {
        assert!(info.contains(field), "INFO MODULES lacks {field}:\n{info}");
    }
}

#[test]
fn load_time_arguments_are_applied() {
    let server = Server::start_with(ServerConfig::default().module_args(&[
        "THREADS_PER_QUEUE",
        "3",
        "MODEL_CHUNK_SIZE",
        "4096",
        "INTRA_OP_PARALLELISM",
        "2",
        "INTER_OP_PARALLELISM",
        "1",
        "MODEL_EXECUTION_TIMEOUT",
        "1500",
        "BACKEND_MEMORY_LIMIT",
        "256",
        "BACKENDSPATH",
        "/opt/redisai/backends",
    ]));
    let mut c = server.client();
    assert_eq!(
        run_str(&mut c, "AI.CONFIG GET MODEL_CHUNK_SIZE").expect("get"),
        Value::Int(4096)
    );
    assert_eq!(
        run_str(&mut c, "AI.CONFIG GET BACKENDSPATH").expect("get"),
        Value::BulkString(b"/opt/redisai/backends".to_vec())
    );
    let info = info_modules(&server);
    for field in [
        "ai_threads_per_queue:3",
        "ai_intra_op_parallelism:2",
        "ai_inter_op_parallelism:1",
        "ai_model_execution_timeout:1500",
        "ai_backend_memory_limit:256",
        "ai_backends_path:/opt/redisai/backends",
    ] {
        assert!(info.contains(field), "INFO MODULES lacks {field}:\n{info}");
    }
}

#[test]
fn bad_load_time_arguments_refuse_to_load_with_a_reason() {
    for (args, reason) in [
        (
            &["THREADS_PER_QUEUE", "zero"][..],
            "THREADS_PER_QUEUE must be an integer",
        ),
        (
            &["THREADS_PER_QUEUE", "0"][..],
            "THREADS_PER_QUEUE must be an integer",
        ),
        (
            &["MODEL_CHUNK_SIZE", "-1"][..],
            "MODEL_CHUNK_SIZE must be an integer",
        ),
        (
            &["NO_SUCH_OPTION", "1"][..],
            "unknown module argument 'NO_SUCH_OPTION'",
        ),
        (&["THREADS_PER_QUEUE"][..], "NAME VALUE pairs"),
        (
            &["BACKENDSPATH", "../relative"][..],
            "may not leave the working directory",
        ),
    ] {
        let err = match Server::try_start(ServerConfig::default().module_args(args)) {
            Ok(_) => panic!("{args:?} should not load"),
            Err(err) => err,
        };
        assert!(
            err.log.contains("redisai-rs refuses to load"),
            "{args:?}:\n{}",
            err.log
        );
        assert!(
            err.log.contains(reason),
            "{args:?} should log '{reason}':\n{}",
            err.log
        );
    }
}

#[test]
fn config_set_commands() {
    let server = Server::start();
    let mut c = server.client();
    assert_eq!(
        run_str(&mut c, "AI.CONFIG MODEL_CHUNK_SIZE 1024").expect("set"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.CONFIG GET MODEL_CHUNK_SIZE").expect("get"),
        Value::Int(1024)
    );
    assert_eq!(
        run_str(&mut c, "ai.config backendspath /tmp/backends").expect("set"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.CONFIG GET BACKENDSPATH").expect("get"),
        Value::BulkString(b"/tmp/backends".to_vec())
    );
    assert!(info_modules(&server).contains("ai_backends_path:/tmp/backends"));
    // RedisAI's texts.
    for (line, expected) in [
        (
            "AI.CONFIG MODEL_CHUNK_SIZE 0",
            "ERR MODEL_CHUNK_SIZE: invalid chunk size",
        ),
        (
            "AI.CONFIG MODEL_CHUNK_SIZE many",
            "ERR MODEL_CHUNK_SIZE: invalid chunk size",
        ),
        (
            "AI.CONFIG MODEL_CHUNK_SIZE",
            "ERR MODEL_CHUNK_SIZE: missing chunk size",
        ),
        (
            "AI.CONFIG BACKENDSPATH",
            "ERR BACKENDSPATH: missing path argument",
        ),
        ("AI.CONFIG NOPE 1", "ERR unsupported subcommand"),
        ("AI.CONFIG help", "ERR unsupported subcommand"),
        ("AI.CONFIG _UNSUPPORTED", "ERR unsupported subcommand"),
        (
            "AI.CONFIG LOADBACKEND",
            "ERR wrong number of arguments for 'AI.CONFIG|LOADBACKEND' command",
        ),
    ] {
        assert_eq!(error_text(run_str(&mut c, line)), expected, "{line}");
    }
    // A relative BACKENDSPATH is taken from Redis's working directory, as RedisAI took
    // it, and may not climb out of it.
    assert_eq!(
        run_str(&mut c, "AI.CONFIG BACKENDSPATH rel/path").expect("relative"),
        Value::Okay
    );
    match run_str(&mut c, "AI.CONFIG GET BACKENDSPATH").expect("get") {
        Value::BulkString(path) => {
            let path = String::from_utf8_lossy(&path).into_owned();
            assert!(
                path.starts_with('/') && path.ends_with("/rel/path"),
                "{path}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(error_text(run_str(&mut c, "AI.CONFIG BACKENDSPATH ../up"))
        .contains("may not leave the working directory"));
    assert_eq!(
        error_text(run_str(&mut c, "AI.CONFIG")),
        "ERR wrong number of arguments for 'AI.CONFIG' command"
    );
    assert_eq!(
        error_text(run_str(&mut c, "AI.CONFIG GET")),
        "ERR wrong number of arguments for 'AI.CONFIG|GET' command"
    );
    assert_eq!(
        run_str(&mut c, "AI.CONFIG GET NOPE").expect("unknown name"),
        Value::Nil
    );
}

#[test]
fn loading_native_code_needs_admin_rights() {
    let server = Server::start();
    let mut c = server.client();
    run_str(&mut c, "ACL SETUSER app on >pw ~* +@all -@admin").expect("acl");
    run_str(&mut c, "ACL SETUSER nodanger on >pw ~* +@all -@dangerous").expect("acl");
    for user in ["app", "nodanger"] {
        let mut u = server.client();
        run_str(&mut u, &format!("AUTH {user} pw")).expect("auth");
        for command in [
            "AI.CONFIG LOADBACKEND ONNX /tmp/plugin.so",
            "AI.CONFIG BACKENDSPATH /tmp",
            "AI.CONFIG MODEL_CHUNK_SIZE 1",
            "AI.CONFIG INLINE_EXECUTION_LIMIT_US 10000",
        ] {
            let refused = error_text(run_str(&mut u, command));
            assert!(
                refused.starts_with("NOPERM"),
                "{user}: {command}: {refused}"
            );
        }
        assert!(matches!(
            run_str(&mut u, "AI.CONFIG GET BACKENDSPATH"),
            Ok(Value::BulkString(_))
        ));
        assert_eq!(
            run_str(&mut u, "AI.CONFIG GET MODEL_CHUNK_SIZE").expect("get"),
            Value::Int(511 * 1024 * 1024)
        );
    }
    // The default user may, and gets the loader's reason instead.
    let missing = error_text(run_str(
        &mut c,
        "AI.CONFIG LOADBACKEND ONNX /nonexistent/plugin.so",
    ));
    assert_eq!(
        missing,
        "ERR Could not load backend ONNX: /nonexistent/plugin.so: no such file"
    );
    let escape = error_text(run_str(
        &mut c,
        "AI.CONFIG LOADBACKEND ONNX ../../etc/plugin.so",
    ));
    assert!(escape.contains("may not leave BACKENDSPATH"), "{escape}");
    assert!(
        server.log().contains("Could not load backend ONNX"),
        "the reason is logged too"
    );
}
