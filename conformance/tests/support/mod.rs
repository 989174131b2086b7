//! Shared by the integration tests: building server binaries, and running one check alone.
#![allow(dead_code)] // each test crate uses part of this module

use std::path::PathBuf;
use std::process::Command;

/// The tests start real servers and measure timing: one test at a time, so that they do not
/// compete for the machine's cores.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `target/<profile>`, found from this test executable (`target/<profile>/deps/<test>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// Builds `--bin name` (or `--example name`) of `package` with the same profile as this test,
/// and returns its path.
pub fn build(package: &str, target: Target<'_>) -> PathBuf {
    let profile = profile_dir();
    let release = profile.file_name().is_some_and(|name| name == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "-p", package]);
    let path = match target {
        Target::Bin(name) => {
            command.args(["--bin", name]);
            profile.join(name)
        }
        Target::Example(name) => {
            command.args(["--example", name]);
            profile.join("examples").join(name)
        }
    };
    if release {
        command.arg("--release");
    }
    eprintln!("building {package} ({target:?}) …");
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p {package} failed");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Every example server of the workspace (`examples/*`, as each `Cargo.toml` describes it).
pub fn examples() -> Vec<sse_core::Framework> {
    sse_core::Framework::all()
}

/// The runtime a test of a harness of its own (libtest-mimic) runs in: like
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Bin(&'a str),
    Example(&'a str),
}
