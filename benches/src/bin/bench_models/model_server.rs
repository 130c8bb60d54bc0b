//! The Python model server (benches/python/model_server.py) and its table.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use redisai_benches::shared::repo_root;

use crate::clients::{HttpClient, ModuleClient};
use crate::manifest::{ModelSpec, TensorSpec};
use crate::measure::alternate;
use crate::report::{Report, ServerRow};
use crate::server::{connect_one, delete_keys, store_model};
use crate::Options;

pub(crate) struct ModelServer {
    child: Child,
    port: u16,
}

impl ModelServer {
    fn start(python: &Path, models: &[(&str, &Path)], intra_op: i64) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let script = repo_root().join("benches/python/model_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--intra-op")
            .arg(intra_op.to_string())
            .stdout(Stdio::null());
        for (name, path) in models {
            cmd.arg(format!("{name}={}", path.display()));
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let mut server = ModelServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(120);
        let health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("the model server exited ({status}) before answering");
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let mut answer = [0u8; 12];
                if stream.write_all(health).is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && answer.ends_with(b"200")
                {
                    return Ok(server);
                }
            }
            ensure!(
                Instant::now() < deadline,
                "the model server did not answer in 120 s"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn measure_server(
    opts: &Options,
    python: &Path,
    models: &[ModelSpec],
    report: &mut Report,
) -> Result<()> {
    let mlp = ModelSpec::onnx_fixed(
        "mlp",
        opts.mlp.clone(),
        TensorSpec {
            name: "x".into(),
            dtype: "FLOAT".into(),
            shape: vec![1, 4],
        },
        TensorSpec {
            name: "y".into(),
            dtype: "FLOAT".into(),
            shape: vec![1, 3],
        },
    );
    let mut served = vec![mlp];
    served.extend(models.iter().filter(|m| m.name == "resnet50_onnx").cloned());
    let paths: Vec<(&str, &Path)> = served
        .iter()
        .map(|m| (m.name.as_str(), m.path.as_path()))
        .collect();
    eprintln!("==> starting the Python model server");
    let server = ModelServer::start(python, &paths, opts.intra_op)?;
    let mut con = connect_one(opts.port)?;
    for spec in &served {
        let key = format!("bm:{}", spec.name);
        store_model(&mut con, &key, spec, 0)?;
        let request = Arc::new(HttpClient::request(spec, &spec.name));
        for &n in &opts.clients {
            let mut module: Vec<ModuleClient> = (0..n)
                .map(|i| Ok(ModuleClient::new(connect_one(opts.port)?, spec, &key, i)))
                .collect::<Result<_>>()?;
            let mut http: Vec<HttpClient> = (0..n)
                .map(|_| HttpClient::connect(server.port, request.clone(), spec.output.byte_len()))
                .collect::<Result<_>>()?;
            let (m, s) = alternate(opts, &mut module, 1, &mut http, 1)?;
            eprintln!(
                "    {} clients {n}: module {:.1}/s, model server {:.1}/s",
                spec.name,
                m.rate(),
                s.rate()
            );
            report.server.push(ServerRow {
                model: spec.name.clone(),
                clients: n,
                module: m,
                server: s,
            });
        }
        delete_keys(&mut con, &[&key])?;
    }
    Ok(())
}
