//! Redis Cluster: three masters with one replica each, on loopback, all with the module
//! (AOF on). Hashtagged tensors, models and DAGs work through MOVED redirections; keys
//! in different slots are CROSSSLOT (also the script key, KEYS, INPUTS and OUTPUTS of a
//! TorchScript script, which runs on the shard that owns its hashtag); a DAG with ROUTING runs on the shard that owns the
//! routing key; read-only DAGs run on replicas in READONLY mode; a shard that restarts
//! comes back with its module data from its AOF.

use std::process::Command;
use std::time::Duration;

use redisai_tests::bulk_array as floats;
use redisai_tests::hardening::{backend_built, model_bytes, wait_until};
use redisai_tests::redis::{self, Connection, ConnectionLike, RedisResult, Value};
use redisai_tests::{Server, ServerConfig};

struct Cluster {
    nodes: Vec<Server>,
}

fn node() -> Server {
    Server::start_with(
        ServerConfig::default()
            .option("cluster-enabled", &["yes"])
            .option("cluster-node-timeout", &["5000"])
            .option("appendonly", &["yes"])
            .option("appendfsync", &["always"]),
    )
}

fn info(c: &mut Connection, what: &str) -> String {
    redis::cmd("CLUSTER").arg(what).query(c).unwrap_or_default()
}

impl Cluster {
    fn start() -> Cluster {
        let nodes: Vec<Server> = (0..6).map(|_| node()).collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            output.status.success(),
            "cluster create failed:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = Cluster { nodes };
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        for n in &self.nodes {
            let mut c = n.client();
            assert!(
                wait_until(Duration::from_secs(60), || info(&mut c, "INFO")
                    .contains("cluster_state:ok")),
                "node {} never reached cluster_state:ok",
                n.port
            );
        }
    }

    fn by_port(&self, port: u16) -> &Server {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// The port of the master that owns `key`'s slot (from CLUSTER SLOTS).
    fn owner(&self, key: &str) -> u16 {
        let mut c = self.nodes[0].client();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut c)
            .expect("KEYSLOT");
        let slots: Vec<Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut c)
            .expect("SLOTS");
        for range in slots {
            let Value::Array(fields) = range else {
                continue;
            };
            if let (Some(Value::Int(lo)), Some(Value::Int(hi)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            {
                if (*lo..=*hi).contains(&slot) {
                    if let Some(Value::Int(port)) = master.get(1) {
                        return *port as u16;
                    }
                }
            }
        }
        panic!("no owner for slot {slot}")
    }

    /// A replica of the master on `port`.
    fn replica_of(&self, port: u16) -> &Server {
        let mut c = self.by_port(port).client();
        let id = info(&mut c, "MYID");
        let replicas: Vec<String> = redis::cmd("CLUSTER")
            .arg("REPLICAS")
            .arg(&id)
            .query(&mut c)
            .expect("REPLICAS");
        let line = replicas.first().expect("one replica");
        let port: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|addr| addr.split(['@', ':']).nth(1))
            .and_then(|p| p.parse().ok())
            .expect("replica port");
        self.by_port(port)
    }

    /// Runs a command on the node at `port`, following MOVED; returns the reply and the
    /// port of the node that gave it.
    fn run_at(&self, mut port: u16, args: &[&[u8]]) -> (RedisResult<Value>, u16) {
        for _ in 0..4 {
            let mut c = self.by_port(port).client();
            let mut cmd = redis::Cmd::new();
            for a in args {
                cmd.arg(*a);
            }
            let reply = c.req_packed_command(&cmd.get_packed_command());
            let moved = match &reply {
                Ok(Value::ServerError(err)) if err.code() == "MOVED" => {
                    err.details().map(str::to_owned)
                }
                Err(err) if err.code() == Some("MOVED") => err.detail().map(str::to_owned),
                _ => None,
            };
            match moved.and_then(|d| d.rsplit(':').next().and_then(|p| p.parse().ok())) {
                Some(next) => port = next,
                None => return (reply, port),
            }
        }
        panic!("too many redirections")
    }

    fn run(&self, line: &str) -> (RedisResult<Value>, u16) {
        let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.run_at(self.nodes[0].port, &words)
    }
}

fn ok(result: (RedisResult<Value>, u16), what: &str) -> (Value, u16) {
    match result {
        (Ok(Value::ServerError(err)), _) => panic!("{what}: {err:?}"),
        (Ok(value), port) => (value, port),
        (Err(err), _) => panic!("{what}: {err}"),
    }
}

fn error_code(result: RedisResult<Value>) -> String {
    match result {
        Ok(Value::ServerError(err)) => err.code().to_owned(),
        Err(err) => err.code().unwrap_or_default().to_owned(),
        Ok(other) => panic!("expected an error, got {other:?}"),
    }
}

const SCRIPT: &str = r#"
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def setk(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    return tensors[0] * 2
"#;

fn store_script(key: &[u8]) -> Vec<&[u8]> {
    vec![
        b"AI.SCRIPTSTORE",
        key,
        b"CPU",
        b"ENTRY_POINTS",
        b"2",
        b"bar",
        b"setk",
        b"SOURCE",
        SCRIPT.as_bytes(),
    ]
}

#[test]
fn tensors_models_and_dags_in_a_cluster() {
    if !backend_built("redisai_onnxruntime") {
        eprintln!("cluster: the ONNX backend is not built; skipped");
        return;
    }
    let cluster = Cluster::start();
    let add = model_bytes("onnx", "add.onnx");
    let a_owner = cluster.owner("{a}");
    let b_owner = cluster.owner("{b}");
    assert_ne!(a_owner, b_owner, "{{a}} and {{b}} live on different shards");

    // Tensors, a model and an execution with one hashtag, through MOVED.
    ok(cluster.run("AI.TENSORSET {a}x FLOAT 2 VALUES 1 2"), "x");
    ok(cluster.run("AI.TENSORSET {a}y FLOAT 2 VALUES 10 20"), "y");
    ok(cluster.run("AI.TENSORSET {b}y FLOAT 2 VALUES 5 5"), "{b}y");
    let (_, port) = ok(
        cluster.run_at(
            cluster.nodes[0].port,
            &[b"AI.MODELSTORE", b"{a}m", b"ONNX", b"CPU", b"BLOB", &add],
        ),
        "MODELSTORE",
    );
    assert_eq!(port, a_owner);
    ok(
        cluster.run("AI.MODELEXECUTE {a}m INPUTS 2 {a}x {a}y OUTPUTS 1 {a}z"),
        "execute",
    );
    assert_eq!(
        ok(cluster.run("AI.TENSORGET {a}z VALUES"), "z").0,
        floats(&["11", "22"])
    );
    let (dag, port) = ok(
        cluster.run("AI.DAGEXECUTE LOAD 2 {a}x {a}y PERSIST 1 {a}w |> AI.MODELEXECUTE {a}m INPUTS 2 {a}x {a}y OUTPUTS 1 {a}w |> AI.TENSORGET {a}w VALUES"),
        "DAG",
    );
    assert_eq!(port, a_owner);
    assert_eq!(dag, Value::Array(vec![Value::Okay, floats(&["11", "22"])]));

    // A script with hashtag keys runs on the shard that owns them, and its
    // redis.execute writes there.
    let torch = backend_built("redisai_torch");
    if torch {
        let (_, port) = ok(
            cluster.run_at(cluster.nodes[0].port, &store_script(b"{a}s")),
            "SCRIPTSTORE",
        );
        assert_eq!(port, a_owner);
        let (_, port) = ok(
            cluster.run(
                "AI.SCRIPTEXECUTE {a}s setk KEYS 1 {a}k INPUTS 1 {a}x ARGS 1 hello OUTPUTS 1 {a}sz",
            ),
            "SCRIPTEXECUTE",
        );
        assert_eq!(port, a_owner);
        let mut owner = cluster.by_port(a_owner).client();
        assert_eq!(
            redis::cmd("GET")
                .arg("{a}k")
                .query::<String>(&mut owner)
                .expect("GET"),
            "hello"
        );
        assert_eq!(
            ok(cluster.run("AI.TENSORGET {a}sz VALUES"), "sz").0,
            floats(&["2", "4"])
        );
        let (dag, port) = ok(
            cluster.run("AI.DAGEXECUTE LOAD 2 {a}x {a}y |> AI.SCRIPTEXECUTE {a}s bar INPUTS 2 {a}x {a}y OUTPUTS 1 o |> AI.TENSORGET o VALUES"),
            "script DAG",
        );
        assert_eq!(port, a_owner);
        assert_eq!(dag, Value::Array(vec![Value::Okay, floats(&["11", "22"])]));
        ok(
            cluster.run("AI.SCRIPTRUN {a}s bar INPUTS {a}x {a}y OUTPUTS {a}sr"),
            "SCRIPTRUN",
        );
        for line in [
            "AI.SCRIPTEXECUTE {a}s bar INPUTS 2 {a}x {b}y OUTPUTS 1 {a}o",
            "AI.SCRIPTEXECUTE {a}s bar INPUTS 2 {a}x {a}y OUTPUTS 1 {b}o",
            "AI.SCRIPTEXECUTE {a}s setk KEYS 1 {b}k INPUTS 1 {a}x ARGS 1 v OUTPUTS 1 {a}o",
            "AI.SCRIPTEXECUTE {b}s bar INPUTS 2 {a}x {a}y OUTPUTS 1 {a}o",
            "AI.SCRIPTRUN {a}s bar INPUTS {a}x $ {b}y OUTPUTS {a}o",
            "AI.SCRIPTRUN {a}s bar INPUTS {a}x {a}y OUTPUTS {b}o",
            "AI.DAGEXECUTE KEYS 1 {b}k LOAD 1 {a}x |> AI.SCRIPTEXECUTE {a}s setk INPUTS 1 {a}x ARGS 1 v OUTPUTS 1 o",
            "AI.DAGEXECUTE LOAD 1 {a}x |> AI.SCRIPTEXECUTE {b}s bar INPUTS 2 {a}x {a}x OUTPUTS 1 o",
        ] {
            let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
            let (reply, _) = cluster.run_at(a_owner, &words);
            assert_eq!(error_code(reply), "CROSSSLOT", "{line}");
        }
        let mut b = cluster.by_port(b_owner).client();
        let exists: i64 = redis::cmd("EXISTS")
            .arg("{b}k")
            .arg("{b}o")
            .query(&mut b)
            .expect("EXISTS");
        assert_eq!(exists, 0, "nothing was written on the other shard");
        // A script key served by another shard answers MOVED.
        let mut c = cluster.by_port(b_owner).client();
        assert_eq!(
            error_code(redisai_tests::run_nested(
                &mut c,
                "AI.SCRIPTEXECUTE {a}s bar INPUTS 2 {a}x {a}y OUTPUTS 1 {a}o"
            )),
            "MOVED"
        );
    } else {
        eprintln!("cluster: the TORCH plugin is not built; script cases skipped");
    }

    // Keys in different slots.
    for line in [
        "AI.MODELEXECUTE {a}m INPUTS 2 {a}x {b}y OUTPUTS 1 {a}z",
        "AI.MODELEXECUTE {a}m INPUTS 2 {a}x {a}y OUTPUTS 1 {b}z",
        "AI.DAGEXECUTE LOAD 2 {a}x {b}y |> AI.TENSORGET {a}x VALUES",
        "AI.DAGEXECUTE LOAD 1 {a}x PERSIST 1 {b}out |> AI.TENSORSET {b}out FLOAT 1 VALUES 1",
        "AI.DAGEXECUTE_RO LOAD 1 {a}x |> AI.MODELEXECUTE {b}m INPUTS 1 {a}x OUTPUTS 1 o",
    ] {
        let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        let (reply, _) = cluster.run_at(a_owner, &words);
        assert_eq!(error_code(reply), "CROSSSLOT", "{line}");
    }

    // Truncated commands are refused; slot routing reads their keys safely.
    for line in [
        "AI.MODELEXECUTE",
        "AI.MODELRUN",
        "AI.MODELEXECUTE {a}m INPUTS 5 {a}x",
        "AI.DAGEXECUTE LOAD 9",
        "AI.SCRIPTEXECUTE",
        "AI.SCRIPTEXECUTE {a}s bar KEYS 7 {a}k",
        "AI.SCRIPTRUN {a}s bar INPUTS",
        "AI.SCRIPTGET",
        "AI.DAGEXECUTE KEYS 4 {a}k",
    ] {
        let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        let (reply, _) = cluster.run_at(a_owner, &words);
        assert!(!error_code(reply).is_empty(), "{line}");
        let mut c = cluster.by_port(a_owner).client();
        assert_eq!(
            redis::cmd("PING").query::<String>(&mut c).expect("PING"),
            "PONG"
        );
    }

    // ROUTING sends a key-less DAG to the shard that owns the routing key.
    let (reply, port) = ok(
        cluster.run("AI.DAGEXECUTE ROUTING {b}r |> AI.TENSORSET t FLOAT 1 VALUES 7 |> AI.TENSORGET t VALUES"),
        "ROUTING",
    );
    assert_eq!(port, b_owner);
    assert_eq!(reply, Value::Array(vec![Value::Okay, floats(&["7"])]));
    let (wrong, _) = {
        let mut c = cluster.by_port(a_owner).client();
        (
            redisai_tests::run_nested(
                &mut c,
                "AI.DAGEXECUTE ROUTING {b}r |> AI.TENSORSET t FLOAT 1 VALUES 7",
            ),
            a_owner,
        )
    };
    assert_eq!(error_code(wrong), "MOVED");

    // Read-only DAGs on a replica in READONLY mode, once it has caught up. `cluster_state:ok`
    // says nothing about replication: on a loaded machine the replica may still be in its
    // first sync, when WAIT answers 0 after its timeout.
    let mut master = cluster.by_port(a_owner).client();
    assert!(
        wait_until(Duration::from_secs(60), || {
            redis::cmd("WAIT")
                .arg(1)
                .arg(1000)
                .query::<i64>(&mut master)
                .is_ok_and(|acked| acked >= 1)
        }),
        "the replica of {a_owner} never acknowledged the writes"
    );
    let replica = cluster.replica_of(a_owner);
    let mut r = replica.client();
    let line = "AI.DAGEXECUTE_RO LOAD 2 {a}x {a}y |> AI.MODELEXECUTE {a}m INPUTS 2 {a}x {a}y OUTPUTS 1 s |> AI.TENSORGET s VALUES";
    assert_eq!(
        error_code(redisai_tests::run_nested(&mut r, line)),
        "MOVED",
        "without READONLY"
    );
    redis::cmd("READONLY")
        .query::<()>(&mut r)
        .expect("READONLY");
    assert_eq!(
        redisai_tests::run_nested(&mut r, line).expect("RO DAG on the replica"),
        Value::Array(vec![Value::Okay, floats(&["11", "22"])])
    );
    assert_eq!(
        redisai_tests::run_nested(&mut r, "AI.TENSORGET {a}z VALUES")
            .expect("TENSORGET on the replica"),
        floats(&["11", "22"])
    );
    // Writes still go to the master.
    assert_eq!(
        error_code(redisai_tests::run_nested(
            &mut r,
            "AI.TENSORSET {a}q FLOAT 1 VALUES 1"
        )),
        "MOVED"
    );

    // A shard restarts and its module data comes back from its AOF.
    let mut cluster = cluster;
    let index = cluster
        .nodes
        .iter()
        .position(|n| n.port == a_owner)
        .expect("owner");
    cluster.nodes[index].restart();
    cluster.wait_ok();
    assert_eq!(
        ok(cluster.run("AI.TENSORGET {a}z VALUES"), "z after restart").0,
        floats(&["11", "22"])
    );
    assert_eq!(
        ok(cluster.run("AI.TENSORGET {a}w VALUES"), "w after restart").0,
        floats(&["11", "22"])
    );
    ok(
        cluster.run("AI.MODELEXECUTE {a}m INPUTS 2 {a}x {a}y OUTPUTS 1 {a}z2"),
        "model after restart",
    );
    assert_eq!(
        ok(cluster.run("AI.TENSORGET {a}z2 VALUES"), "z2").0,
        floats(&["11", "22"])
    );
    if torch {
        ok(
            cluster.run("AI.SCRIPTEXECUTE {a}s bar INPUTS 2 {a}x {a}y OUTPUTS 1 {a}s2"),
            "script after restart",
        );
        assert_eq!(
            ok(cluster.run("AI.TENSORGET {a}s2 VALUES"), "s2").0,
            floats(&["11", "22"])
        );
    }
    let mut restarted = cluster.nodes[index].client();
    let keys: i64 = redis::cmd("DBSIZE").query(&mut restarted).expect("DBSIZE");
    assert!(
        keys >= 6,
        "the restarted node holds its shard's keys: {keys}"
    );
}
