//! Running the real `onramp` binary.

use std::process::{Command, Output};

use super::TestDb;

/// What a CLI run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `onramp` against `db`, with `product` when given.
pub fn onramp(db: &TestDb, product: Option<&str>, args: &[&str]) -> Run {
    onramp_env(db, product, args, &[])
}

/// [`onramp`] with environment variables set.
pub fn onramp_env(db: &TestDb, product: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onramp"));
    // Tests never reach the internet's DNS.
    cmd.env("ONRAMP_DNS_RESOLVER", "off");
    cmd.envs(env.iter().copied());
    cmd.args(db.cli_args());
    if let Some(p) = product {
        cmd.arg("--product").arg(super::repo_path(p));
    }
    cmd.args(args)
        .env_remove("ONRAMP_DATABASE_URL")
        .env_remove("ONRAMP_PRODUCT")
        .env_remove("ONRAMP_DATA_DIR");
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run onramp");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A running `onramp serve` process.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
    /// Every line the server wrote to stderr.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `onramp serve` on a free port against `db`, with injected faults and a lease.
    pub fn start(db: &TestDb, faults: Option<&str>, lease_seconds: u64) -> Self {
        Self::launch(db, None, faults, lease_seconds, "warn")
    }

    /// Starts `onramp serve` on a free port against `db` with a product file.
    pub fn start_with_product(db: &TestDb, product: Option<&str>) -> Self {
        Self::launch(db, product, None, 30, "warn")
    }

    /// Starts `onramp serve` with a product file and a log filter, keeping every log line.
    pub fn start_logging(db: &TestDb, product: &str, rust_log: &str) -> Self {
        Self::launch(db, Some(product), None, 30, rust_log)
    }

    /// Starts `onramp serve` on a free port against `db`, with injected faults and a job
    /// lease of `job_lease_seconds`.
    pub fn start_jobs(db: &TestDb, faults: Option<&str>, job_lease_seconds: u64) -> Self {
        // A short run lease too, so that run recovery (every half of it) runs often.
        Self::launch_with(
            db,
            None,
            faults,
            1,
            "warn",
            &["--job-lease-seconds", &job_lease_seconds.to_string()],
        )
    }

    fn launch(
        db: &TestDb,
        product: Option<&str>,
        faults: Option<&str>,
        lease_seconds: u64,
        rust_log: &str,
    ) -> Self {
        // Jobs (run recovery among them) pass from a killed server to a new one as soon as
        // its runs do.
        Self::launch_with(
            db,
            product,
            faults,
            lease_seconds,
            rust_log,
            &["--job-lease-seconds", &lease_seconds.to_string()],
        )
    }

    fn launch_with(
        db: &TestDb,
        product: Option<&str>,
        faults: Option<&str>,
        lease_seconds: u64,
        rust_log: &str,
        extra: &[&str],
    ) -> Self {
        use std::io::{BufRead, BufReader};
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onramp"));
        cmd.env("ONRAMP_DNS_RESOLVER", "off");
        cmd.args(db.cli_args());
        cmd.args(extra);
        if let Some(p) = product {
            cmd.arg("--product").arg(super::repo_path(p));
        }
        cmd.args([
            "--run-lease-seconds",
            &lease_seconds.to_string(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("ONRAMP_DATABASE_URL")
        .env_remove("ONRAMP_PRODUCT")
        .env_remove("ONRAMP_FAULTS")
        .env("RUST_LOG", rust_log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        if let Some(f) = faults {
            cmd.env("ONRAMP_FAULTS", f);
        }
        let mut child = cmd.spawn().expect("spawn onramp serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = logs.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if !sent {
                    if let Some(rest) = line.strip_prefix("onramp listening on ") {
                        let _ = tx.send(
                            rest.split_whitespace()
                                .next()
                                .unwrap_or_default()
                                .to_owned(),
                        );
                        sent = true;
                    }
                }
            }
        });
        let base = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("onramp serve printed its address");
        Server { child, base, logs }
    }

    /// The owner name this process takes leases under begins with this.
    pub fn owner_prefix(&self) -> String {
        format!("onramp-{}-", self.child.id())
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
