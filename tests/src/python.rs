//! Runs the python-tuf scripts in `interop/` and reports their output on failure.

use std::path::PathBuf;
use std::process::Command;

/// The path of an interop script.
pub fn script(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "interop", name]
        .iter()
        .collect()
}

/// Runs `python3 interop/<name> args…`; returns stdout, or panics with stdout and stderr.
pub fn run(name: &str, args: &[&str]) -> String {
    run_with_env(name, args, &[])
}

/// [`run`] with the variables `env` set.
pub fn run_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new("python3")
        .arg(script(name))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("python3 runs (install python-tuf with `pip install tuf`)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
