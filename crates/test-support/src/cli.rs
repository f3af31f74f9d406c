//! The operator binaries (`smaregi-ne`, `sne-aws-admin`) as a test runs them:
//! quiet, unable to reach the real services, their output checked.

use std::process::Command;

/// `program` with every API endpoint pointed at nothing: a test of a command
/// that calls out by mistake fails instead of reaching NextEngine or Smaregi.
pub fn offline(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("RUST_LOG", "warn")
        .env("SNE_NEXTENGINE_API_URL", "http://127.0.0.1:9")
        .env("SNE_NEXTENGINE_SIGNIN_URL", "http://127.0.0.1:9")
        .env("SNE_SMAREGI_API_URL", "http://127.0.0.1:9/access/");
    command
}

/// Runs `command`, fails the test with its stderr when it fails, and returns
/// its stdout.
pub fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}
