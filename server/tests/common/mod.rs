//! Helpers shared by the server's binary tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `opengateway` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_opengateway"))
}

/// Starts `opengateway serve` and returns the child and its base URL, read from stdout.
pub fn spawn_server(config: &Path) -> (Child, String) {
    spawn(bin(), config)
}

/// Starts `opengateway serve` restricted to one CPU (`taskset -c 0`), where it runs tokio's
/// single-threaded runtime.
pub fn spawn_server_on_one_cpu(config: &Path) -> (Child, String) {
    let mut pinned = Command::new("taskset");
    pinned.args(["-c", "0", env!("CARGO_BIN_EXE_opengateway")]);
    spawn(pinned, config)
}

fn spawn(mut command: Command, config: &Path) -> (Child, String) {
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("opengateway listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server announced its address");
    (child, base)
}
