//! Scripts of every RedisAI encoding.

use super::*;

const SCRIPT: &str = "def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def twice(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] + float(args[0])]
";

const SCRIPT_LINES: [&str; 3] = ["AI.SCRIPTGET {} META", "AI.SCRIPTGET {} SOURCE", "TYPE {}"];

fn run_script(c: &mut Connection, key: &str, encver: u64, when: &str) {
    run_str(c, "AI.TENSORSET mig:t FLOAT 2 VALUES 1 2").expect("t");
    if encver >= 3 {
        run_str(
            c,
            &format!("AI.SCRIPTEXECUTE {key} twice INPUTS 1 mig:t ARGS 1 10 OUTPUTS 2 mig:x mig:y"),
        )
        .unwrap_or_else(|e| panic!("{when}: {key}: {e}"));
        assert_eq!(
            run_str(c, "AI.TENSORGET mig:y VALUES").expect("y"),
            floats(&["11", "12"])
        );
    } else {
        run_str(
            c,
            &format!("AI.SCRIPTRUN {key} bar INPUTS mig:t mig:t OUTPUTS mig:x"),
        )
        .unwrap_or_else(|e| panic!("{when}: {key}: {e}"));
    }
    assert_eq!(
        run_str(c, "AI.TENSORGET mig:x VALUES").expect("x"),
        floats(&["2", "4"]),
        "{when}: {key}"
    );
}

#[test]
fn scripts_of_every_version_load_and_run() {
    if !backend_built("redisai_torch") {
        eprintln!("the TORCH plugin is not built; skipped");
        return;
    }
    let mut server = Server::start();
    let reference = Server::start();
    let mut r = reference.client();
    let early_replica = server.start_replica();
    let mut c = server.client();
    let mut entries: Vec<Restored> = Vec::new();
    for encver in 0..=4u64 {
        let key = format!("s:{encver}");
        let tag = format!("tag{encver}");
        let entry_points: &[&str] = if encver >= 3 { &["bar", "twice"] } else { &[] };
        let fields = rai::script_fields(encver, "CPU", tag.as_bytes(), SCRIPT, entry_points);
        restore_ok(
            &mut c,
            &key,
            &rai::module_dump(rai::SCRIPT, encver, &fields),
        );
        let mut args: Vec<&[u8]> = vec![
            if entry_points.is_empty() {
                b"AI.SCRIPTSET".as_slice()
            } else {
                b"AI.SCRIPTSTORE".as_slice()
            },
            key.as_bytes(),
            b"CPU".as_slice(),
            b"TAG".as_slice(),
            tag.as_bytes(),
        ];
        let count = entry_points.len().to_string();
        if !entry_points.is_empty() {
            args.push(b"ENTRY_POINTS");
            args.push(count.as_bytes());
            args.extend(entry_points.iter().map(|n| n.as_bytes()));
        }
        args.push(b"SOURCE");
        args.push(SCRIPT.as_bytes());
        run(&mut r, &args).unwrap_or_else(|e| panic!("reference {key}: {e}"));
        same_answers(&mut c, &mut r, &key, &SCRIPT_LINES, "restored");
        run_script(&mut c, &key, encver, "restored");
        entries.push((key, encver, fields));
    }
    check_rdb_file(
        rai::SCRIPT,
        &entries,
        &mut r,
        &SCRIPT_LINES,
        &[
            "AI.TENSORSET mig:t FLOAT 2 VALUES 1 2",
            "AI.SCRIPTRUN s:0 bar INPUTS mig:t mig:t OUTPUTS mig:x",
            "AI.SCRIPTEXECUTE s:4 twice INPUTS 1 mig:t ARGS 1 10 OUTPUTS 2 mig:x mig:y",
        ],
    );
    let keys: Vec<&str> = entries.iter().map(|entry| entry.0.as_str()).collect();
    check_stages(
        &mut server,
        &early_replica,
        &mut r,
        &keys,
        &SCRIPT_LINES,
        |c, i, when| run_script(c, keys[i], entries[i].1, when),
    );
}
