//! Replication: a random mixed workload (tensors of every dtype, models, executions,
//! DAG PERSIST, deletes, copies; TorchScript scripts stored, run, deleted, and writing
//! through `redis.execute`, when the TORCH plugin is built) on a master with two replicas ends with the same
//! `DEBUG DIGEST` on all three, also after each replica does a full resync (one from
//! an RDB file, one diskless) into a new replica.

use redisai_tests::hardening::{backend_built, env_usize, model_bytes, Rng};
use redisai_tests::redis::{self, Connection};
use redisai_tests::{digest, run, run_str, Server, ServerConfig};

const DTYPES: [&str; 9] = [
    "FLOAT", "DOUBLE", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "BOOL",
];

const SCRIPT: &str = r#"
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def setk(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    redis.execute("INCR", keys[1])
    return [tensors[0] * 2, tensors[0] - 1]
"#;

/// A script write: store (with a random tag), run with outputs, run writing keys
/// through `redis.execute`, delete, copy, or a DAG that runs it.
fn random_script_write(c: &mut Connection, rng: &mut Rng) {
    let script = format!("s{}", rng.below(2));
    let f = |rng: &mut Rng| format!("f{}", rng.below(4));
    match rng.below(6) {
        0 => {
            let tag = format!("v{}", rng.below(100));
            let _ = run(
                c,
                &[
                    b"AI.SCRIPTSTORE",
                    script.as_bytes(),
                    b"CPU",
                    b"TAG",
                    tag.as_bytes(),
                    b"ENTRY_POINTS",
                    b"2",
                    b"bar",
                    b"setk",
                    b"SOURCE",
                    SCRIPT.as_bytes(),
                ],
            );
        }
        1 => {
            let _ = run_str(
                c,
                &format!(
                    "AI.SCRIPTEXECUTE {script} bar INPUTS 2 {} {} OUTPUTS 1 sout{}",
                    f(rng),
                    f(rng),
                    rng.below(3)
                ),
            );
        }
        2 => {
            let _ = run_str(
                c,
                &format!(
                    "AI.SCRIPTEXECUTE {script} setk KEYS 2 str{} n{} INPUTS 1 {} ARGS 1 {} OUTPUTS 2 sout{} sout{}",
                    rng.below(3),
                    rng.below(2),
                    f(rng),
                    rng.below(1000),
                    rng.below(3),
                    3 + rng.below(3)
                ),
            );
        }
        3 => {
            let _ = run_str(c, &format!("AI.SCRIPTDEL {script}"));
        }
        4 => {
            let _ = run_str(c, &format!("COPY {script} s{} REPLACE", rng.below(3)));
        }
        _ => {
            let f = f(rng);
            let _ = run_str(
                c,
                &format!(
                    "AI.DAGEXECUTE KEYS 2 str0 n0 LOAD 1 {f} PERSIST 1 sdag |> AI.SCRIPTEXECUTE {script} setk INPUTS 1 {f} ARGS 1 x OUTPUTS 2 sdag tmp"
                ),
            );
        }
    }
}

/// One random write; errors (e.g. a model run on a deleted input) are fine, they
/// must only be the same everywhere, which the digest checks.
fn random_write(c: &mut Connection, rng: &mut Rng, add: &[u8], mlp: &[u8]) {
    let t = |rng: &mut Rng| format!("t{}", rng.below(12));
    if backend_built("redisai_torch") && rng.chance(25) {
        random_script_write(c, rng);
        return;
    }
    match rng.below(10) {
        0..=2 => {
            let dtype = rng.pick(&DTYPES);
            let n = 1 + rng.below(6);
            let values: Vec<String> = (0..n).map(|_| (rng.below(2)).to_string()).collect();
            let _ = run_str(
                c,
                &format!(
                    "AI.TENSORSET {} {dtype} {n} VALUES {}",
                    t(rng),
                    values.join(" ")
                ),
            );
        }
        3 => {
            let n = 1 + rng.below(4);
            let blob = rng.bytes(4 * n);
            let key = format!("f{}", rng.below(4));
            let _ = run(
                c,
                &[
                    b"AI.TENSORSET",
                    key.as_bytes(),
                    b"FLOAT",
                    n.to_string().as_bytes(),
                    b"BLOB",
                    &blob,
                ],
            );
        }
        4 => {
            let (key, blob) = if rng.chance(50) {
                ("add", add)
            } else {
                ("mlp", mlp)
            };
            let tag = format!("v{}", rng.below(100));
            let _ = run(
                c,
                &[
                    b"AI.MODELSTORE",
                    key.as_bytes(),
                    b"ONNX",
                    b"CPU",
                    b"TAG",
                    tag.as_bytes(),
                    b"BLOB",
                    blob,
                ],
            );
        }
        5 => {
            let (a, b) = (format!("f{}", rng.below(4)), format!("f{}", rng.below(4)));
            let _ = run_str(
                c,
                &format!(
                    "AI.MODELEXECUTE add INPUTS 2 {a} {b} OUTPUTS 1 out{}",
                    rng.below(3)
                ),
            );
        }
        6 => {
            let out = format!("dag{}", rng.below(3));
            let _ = run_str(
                c,
                &format!(
                    "AI.DAGEXECUTE PERSIST 1 {out} |> AI.TENSORSET x FLOAT 1 4 VALUES 1 2 3 {} |> AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 {out}",
                    rng.below(9)
                ),
            );
        }
        7 => {
            let _ = run_str(c, &format!("DEL {}", t(rng)));
        }
        8 => {
            let _ = run_str(
                c,
                if rng.chance(50) {
                    "AI.MODELDEL add"
                } else {
                    "AI.MODELDEL mlp"
                },
            );
        }
        _ => {
            let _ = run_str(c, &format!("COPY {} {} REPLACE", t(rng), t(rng)));
        }
    }
}

fn replica_of(master: &Server) -> Server {
    let replica = Server::start_with(
        ServerConfig::default().option("replicaof", &["127.0.0.1", &master.port.to_string()]),
    );
    replica.wait_for_sync(master);
    replica
}

fn assert_same_digest(master: &Server, replicas: &[&Server], when: &str) {
    let mut m = master.client();
    let expected = digest(&mut m);
    let keys: i64 = redis::cmd("DBSIZE").query(&mut m).expect("DBSIZE");
    assert!(keys > 0, "{when}: the workload left data behind");
    for (i, replica) in replicas.iter().enumerate() {
        replica.wait_for_sync(master);
        assert_eq!(
            digest(&mut replica.client()),
            expected,
            "{when}: replica {i}"
        );
    }
}

#[test]
fn mixed_workload_ends_with_identical_digests() {
    let ops = env_usize("REDISAI_REPL_OPS", 400);
    let mut rng = Rng::from_env("replication");
    let (add, mlp) = (
        model_bytes("onnx", "add.onnx"),
        model_bytes("onnx", "mlp.onnx"),
    );
    let master = Server::start();
    let replica1 = replica_of(&master);
    let replica2 = replica_of(&master);
    let mut c = master.client();
    for _ in 0..ops {
        random_write(&mut c, &mut rng, &add, &mlp);
    }
    assert_same_digest(&master, &[&replica1, &replica2], "after the workload");

    let full_syncs = |c: &mut Connection| {
        redisai_tests::hardening::info_field(c, "stats", "sync_full").expect("sync_full")
    };
    let before = full_syncs(&mut c);
    // Full resync from an RDB file: a new, empty replica replaces one while writes go on.
    drop(replica1);
    for _ in 0..ops / 4 {
        random_write(&mut c, &mut rng, &add, &mlp);
    }
    let replica1 = replica_of(&master);
    assert_same_digest(&master, &[&replica1, &replica2], "after an RDB full resync");

    // Diskless full resync.
    run_str(&mut c, "CONFIG SET repl-diskless-sync yes").expect("diskless");
    run_str(&mut c, "CONFIG SET repl-diskless-sync-delay 0").expect("delay");
    drop(replica2);
    for _ in 0..ops / 4 {
        random_write(&mut c, &mut rng, &add, &mlp);
    }
    let replica2 = replica_of(&master);
    for _ in 0..ops / 4 {
        random_write(&mut c, &mut rng, &add, &mlp);
    }
    assert_same_digest(
        &master,
        &[&replica1, &replica2],
        "after a diskless full resync",
    );
    let after = full_syncs(&mut c);
    eprintln!("replication: {ops} ops, full syncs {before} -> {after}");
    assert_eq!(
        after - before,
        2,
        "each restarted replica did a full resync"
    );
}

/// Runs `add` on two 256 KiB tensors into `out` (an output large enough that the module
/// asks whether anything reads its propagation before copying it for that).
fn run_large_add(c: &mut Connection, add: &[u8], out: &str, seed: u8) -> Vec<u8> {
    const ELEMENTS: usize = 64 * 1024;
    let blob: Vec<u8> = (0..ELEMENTS)
        .flat_map(|i| ((i % 251) as f32 + f32::from(seed)).to_le_bytes())
        .collect();
    let len = ELEMENTS.to_string();
    for key in ["big:a", "big:b"] {
        run(
            c,
            &[
                b"AI.TENSORSET",
                key.as_bytes(),
                b"FLOAT",
                len.as_bytes(),
                b"BLOB",
                &blob,
            ],
        )
        .expect("TENSORSET");
    }
    run(
        c,
        &[b"AI.MODELSTORE", b"big:m", b"ONNX", b"CPU", b"BLOB", add],
    )
    .expect("MODELSTORE");
    run_str(
        c,
        &format!("AI.MODELEXECUTE big:m INPUTS 2 big:a big:b OUTPUTS 1 {out}"),
    )
    .expect("MODELEXECUTE");
    redis::cmd("AI.TENSORGET")
        .arg(out)
        .arg("BLOB")
        .query(c)
        .expect("TENSORGET")
}

fn backlog_active(c: &mut Connection) -> bool {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(c)
        .expect("INFO replication");
    info.contains("repl_backlog_active:1")
}

/// A large output written while nothing reads the replication stream (no replica, no
/// backlog, no AOF) is not copied for it; a replica attached afterwards still gets it
/// through its full sync, and from then on outputs reach it through the stream; with
/// the AOF on they reach the AOF.
#[test]
fn large_outputs_reach_replicas_that_attach_later_and_the_aof() {
    if !backend_built("redisai_onnxruntime") {
        eprintln!("replication: the ONNX backend is not built; skipped");
        return;
    }
    let add = model_bytes("onnx", "add.onnx");
    let master = Server::start();
    let mut c = master.client();
    assert!(!backlog_active(&mut c), "a fresh master keeps no backlog");
    let before = run_large_add(&mut c, &add, "big:out1", 1);
    assert_eq!(before.len(), 256 * 1024);

    let replica = replica_of(&master);
    let after = run_large_add(&mut c, &add, "big:out2", 2);
    assert!(backlog_active(&mut c));
    replica.wait_for_sync(&master);
    let mut r = replica.client();
    for (key, expected) in [("big:out1", &before), ("big:out2", &after)] {
        let on_replica: Vec<u8> = redis::cmd("AI.TENSORGET")
            .arg(key)
            .arg("BLOB")
            .query(&mut r)
            .expect("TENSORGET on the replica");
        assert_eq!(&on_replica, expected, "{key} on the replica");
    }
    assert_same_digest(&master, &[&replica], "after large outputs");

    let mut persistent = Server::start_with(ServerConfig::default().option("appendonly", &["yes"]));
    let mut p = persistent.client();
    let written = run_large_add(&mut p, &add, "big:out", 3);
    drop(p);
    persistent.restart();
    let reloaded: Vec<u8> = redis::cmd("AI.TENSORGET")
        .arg("big:out")
        .arg("BLOB")
        .query(&mut persistent.client())
        .expect("TENSORGET after the AOF reload");
    assert_eq!(reloaded, written, "the output came back from the AOF");
}
