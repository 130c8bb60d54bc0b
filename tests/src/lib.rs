//! Test harness: starts Debian's `redis-server` with the freshly built module on a free
//! loopback port, hands out clients, and kills the server when dropped (also on panic).
//!
//! `$REDIS_SERVER` picks another server binary: Valkey's `valkey-server` (scripts/test runs
//! the end-to-end tests against Debian's Redis 7.0 and then Valkey 8.1, from
//! scripts/fetch-valkey), or a wrapper such as valgrind's. [`cli_binary`] and
//! [`check_rdb_binary`] find the matching `redis-cli`/`valkey-cli` and `redis-check-rdb`;
//! `$REDIS_SERVER_ARGS` adds options to every server started (see [`extra_server_args`]).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

pub mod graphs;
pub mod hardening;
pub mod redisai_rdb;

pub use redis;
use redis::{Connection, RedisResult, Value};
/// The protobuf writer the tests share with the plugins' tests.
pub use redisai_plugin_testkit::protobuf;

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The module under test: `$REDISAI_MODULE`, else `dist/redisai.so` in the workspace.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("REDISAI_MODULE") {
        return PathBuf::from(path);
    }
    let path = workspace_root().join("dist").join("redisai.so");
    assert!(
        path.exists(),
        "{} is missing: run scripts/build (or scripts/test) first, or set REDISAI_MODULE",
        path.display()
    );
    path
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// The server binary the tests start: `$REDIS_SERVER`, else `redis-server` from PATH.
pub fn server_binary() -> String {
    redis_server_binary()
}

/// The first line of `<server> --version` (e.g. `Redis server v=7.0.15 ...` or
/// `Valkey server v=8.1.8 ...`); empty if it cannot be run (a wrapper may not pass it on).
pub fn server_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        Command::new(redis_server_binary())
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default()
    })
}

/// Whether the server under test is Valkey (from `--version`, or the binary's name).
pub fn server_is_valkey() -> bool {
    server_version().starts_with("Valkey")
        || Path::new(&redis_server_binary())
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("valkey"))
}

/// Options for every server the tests start, from `$REDIS_SERVER_ARGS` (words split on
/// whitespace, e.g. `--lazyfree-lazy-user-flush no`); a test's own options come after
/// them and so win.
pub fn extra_server_args() -> Vec<String> {
    std::env::var("REDIS_SERVER_ARGS")
        .map(|args| args.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A tool of the server's own installation: `NAME` beside `$REDIS_SERVER` (Valkey's
/// `valkey-*` first when the server is Valkey), else the one found in PATH.
fn server_tool(env: &str, valkey_name: &str, redis_name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    if let Ok(server) = std::env::var("REDIS_SERVER") {
        if let Some(dir) = Path::new(&server).parent() {
            let names = if server_is_valkey() {
                [valkey_name, redis_name]
            } else {
                [redis_name, valkey_name]
            };
            for name in names {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
    }
    PathBuf::from(if server_is_valkey() && which(valkey_name) {
        valkey_name
    } else {
        redis_name
    })
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

/// The command-line client for the server under test: `$REDIS_CLI`, else `valkey-cli` or
/// `redis-cli` beside `$REDIS_SERVER`, else from PATH. Debian's `redis-cli` 7.0 also
/// drives Valkey 8 (`--cluster create` included): they speak the same protocol.
pub fn cli_binary() -> PathBuf {
    server_tool("REDIS_CLI", "valkey-cli", "redis-cli")
}

/// The RDB checker matching the server under test: `$REDIS_CHECK_RDB`, else
/// `valkey-check-rdb` or `redis-check-rdb` beside `$REDIS_SERVER`, else from PATH. Debian's
/// `redis-check-rdb` 7.0 refuses Valkey 8's files ("Can't handle RDB format version 11");
/// Valkey's reads both.
pub fn check_rdb_binary() -> PathBuf {
    server_tool("REDIS_CHECK_RDB", "valkey-check-rdb", "redis-check-rdb")
}

/// How to start a server: module arguments and extra `redis-server` options.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub module_args: Vec<String>,
    /// Extra options as `--name value...` pairs, e.g. `["appendonly", "yes"]`.
    pub options: Vec<(String, Vec<String>)>,
    /// Reuse this data directory (for restarts) instead of a fresh one.
    pub data_dir: Option<PathBuf>,
    /// Path of the module; defaults to [`module_path`].
    pub module: Option<PathBuf>,
}

impl ServerConfig {
    pub fn module_args(mut self, args: &[&str]) -> Self {
        self.module_args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn option(mut self, name: &str, values: &[&str]) -> Self {
        self.options.push((
            name.to_owned(),
            values.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }
}

/// A running `redis-server` that is killed on drop; its data directory is removed then
/// unless it was given by the test.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    owns_dir: bool,
    config: ServerConfig,
}

/// The server exited before it answered (typically: the module refused to load).
#[derive(Debug)]
pub struct StartError {
    pub log: String,
}

impl Server {
    /// Starts a server with the module and no module arguments.
    pub fn start() -> Server {
        Server::start_with(ServerConfig::default())
    }

    pub fn start_with(config: ServerConfig) -> Server {
        match Server::try_start(config) {
            Ok(server) => server,
            Err(err) => panic!(
                "{} did not start; its log:\n{}",
                redis_server_binary(),
                err.log
            ),
        }
    }

    /// Starts a server, or returns its log if it exits before answering PING.
    pub fn try_start(config: ServerConfig) -> Result<Server, StartError> {
        let (dir, owns_dir) = match &config.data_dir {
            Some(dir) => (dir.clone(), false),
            None => (fresh_dir(), true),
        };
        fs::create_dir_all(&dir).map_err(|err| StartError {
            log: format!("cannot create {}: {err}", dir.display()),
        })?;
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port();
            let mut server = Server {
                child: None,
                port,
                dir: dir.clone(),
                owns_dir,
                config: config.clone(),
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(err) if err.log.contains("Address already in use") => {
                    server.owns_dir = false;
                    last_error = Some(err);
                }
                Err(err) => {
                    server.owns_dir = false;
                    return Err(err);
                }
            }
        }
        Err(last_error.unwrap_or(StartError {
            log: "no free port".to_owned(),
        }))
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        let module = self.config.module.clone().unwrap_or_else(module_path);
        let log_path = self.log_path();
        let mut command = Command::new(redis_server_binary());
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log_path)
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "yes"])
            .args(["--enable-module-command", "yes"])
            .arg("--loadmodule")
            .arg(&module)
            .args(&self.config.module_args)
            .args(extra_server_args());
        for (name, values) in &self.config.options {
            command.arg(format!("--{name}")).args(values);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| StartError {
                log: format!("cannot run {}: {err}", redis_server_binary()),
            })?;
        self.child = Some(child);
        self.wait_until_ready()
    }

    fn wait_until_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(StartError {
                        log: format!("exited with {status}\n{}", self.log()),
                    });
                }
            }
            if let Ok(mut connection) = self.try_client() {
                let pong: RedisResult<Value> = redis::cmd("PING").query(&mut connection);
                // A server still loading its data set answers PING with -LOADING.
                if matches!(pong, Ok(Value::SimpleString(ref s)) if s == "PONG") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(StartError {
                    log: format!("did not answer PING in {START_TIMEOUT:?}\n{}", self.log()),
                });
            }
            sleep(Duration::from_millis(20));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("redis-{}.log", self.port))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn try_client(&self) -> RedisResult<Connection> {
        let client = redis::Client::open(self.url())?;
        client.get_connection_with_timeout(Duration::from_secs(5))
    }

    /// A new connection to this server.
    pub fn client(&self) -> Connection {
        match self.try_client() {
            Ok(connection) => connection,
            Err(err) => panic!("cannot connect to {}: {err}\n{}", self.url(), self.log()),
        }
    }

    /// Kills the process at once (like a crash; nothing is saved on the way out).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SHUTDOWN NOSAVE and waits for it to exit.
    pub fn shutdown(&mut self) {
        if let Ok(mut connection) = self.try_client() {
            let _: RedisResult<Value> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut connection);
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port and data directory, with
    /// the same module arguments and options.
    pub fn restart(&mut self) {
        self.shutdown();
        let port = self.port;
        if let Err(err) = self.spawn() {
            panic!("restart on port {port} failed:\n{}", err.log);
        }
    }

    /// Starts a replica of this server (same module and module arguments) and waits
    /// until it is in sync.
    pub fn start_replica(&self) -> Server {
        let config = ServerConfig {
            module_args: self.config.module_args.clone(),
            module: self.config.module.clone(),
            ..ServerConfig::default()
        }
        .option("replicaof", &["127.0.0.1", &self.port.to_string()]);
        let replica = Server::start_with(config);
        replica.wait_for_sync(self);
        replica
    }

    /// Waits until this replica has processed everything its master has sent so far.
    pub fn wait_for_sync(&self, master: &Server) {
        let mut master_connection = master.client();
        let mut replica_connection = self.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let master_offset = replication_field(&mut master_connection, "master_repl_offset");
            let replica_info = replication_info(&mut replica_connection);
            let linked = replica_info.contains("master_link_status:up");
            let replica_offset = field(&replica_info, "slave_repl_offset");
            if linked && master_offset.is_some() && master_offset == replica_offset {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica did not catch up: master offset {master_offset:?}, replica:\n{replica_info}\n{}",
                self.log()
            );
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn replication_info(connection: &mut Connection) -> String {
    redis::cmd("INFO")
        .arg("replication")
        .query(connection)
        .unwrap_or_default()
}

fn replication_field(connection: &mut Connection, name: &str) -> Option<i64> {
    field(&replication_info(connection), name)
}

fn field(info: &str, name: &str) -> Option<i64> {
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .and_then(|value| value.trim().parse().ok())
}

fn fresh_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("redisai-test-{}-{n}", std::process::id()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or(0)
}

/// Runs a command and returns the raw reply (errors included as `Err`).
pub fn run(connection: &mut Connection, args: &[&[u8]]) -> RedisResult<Value> {
    let mut command = redis::cmd(std::str::from_utf8(args[0]).expect("command names are ASCII"));
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(connection)
}

/// Runs a command given as space-separated words.
pub fn run_str(connection: &mut Connection, line: &str) -> RedisResult<Value> {
    let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    run(connection, &words)
}

/// Runs a command and returns the reply as sent, with error replies nested in arrays
/// kept as `Value::ServerError` (a DAG reply carries per-op errors).
pub fn run_nested(connection: &mut Connection, line: &str) -> RedisResult<Value> {
    use redis::ConnectionLike;
    let mut command = redis::Cmd::new();
    for word in line.split_whitespace() {
        command.arg(word);
    }
    connection.req_packed_command(&command.get_packed_command())
}

/// An array reply of bulk strings (TENSORGET VALUES of floats, names, script outputs).
pub fn bulk_array(items: &[&str]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|item| Value::BulkString(item.as_bytes().to_vec()))
            .collect(),
    )
}

/// An array reply of integers.
pub fn int_array(values: &[i64]) -> Value {
    Value::Array(values.iter().map(|&v| Value::Int(v)).collect())
}

/// Runs a command that must fail and returns the full error text (`CODE detail`).
pub fn error_text(result: RedisResult<Value>) -> String {
    match result {
        Ok(value) => panic!("expected an error reply, got {value:?}"),
        Err(err) => match (err.code(), err.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_owned(),
            _ => err.to_string(),
        },
    }
}

/// Waits until no AOF rewrite is running or scheduled, and checks the last one succeeded.
pub fn wait_for_rewrite(c: &mut Connection) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(c)
            .expect("INFO persistence");
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "AOF rewrite did not finish: {info}"
        );
        sleep(Duration::from_millis(50));
    }
}

/// `DEBUG DIGEST` of the whole data set.
pub fn digest(connection: &mut Connection) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query(connection)
        .expect("DEBUG DIGEST")
}
