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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onramp"));
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
