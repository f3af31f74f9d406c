//! `sne-aws-admin` runs the operator command set `smaregi-ne` runs, with the same
//! flags and output; here on `--storage sqlite`, which needs no AWS account.

use sne_test_support::cli::{offline, run_ok};
use std::io::Write;
use std::process::{Command, Stdio};

fn admin(data_dir: &std::path::Path) -> Command {
    let mut command = offline(env!("CARGO_BIN_EXE_sne-aws-admin"));
    command
        .args(["--storage", "sqlite", "--data-dir"])
        .arg(data_dir)
        .env_remove("SNE_ADMIN_PASSWORD")
        .env_remove("SNE_TABLE_NAME")
        .env_remove("SNE_STORAGE");
    command
}

#[test]
fn the_shared_commands_run_on_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    // The password from standard input: never on the command line.
    let mut create = admin(dir.path())
        .args([
            "tenant",
            "create",
            "--contract-id",
            "c-ops",
            "--admin-email",
            "admin@shop.example",
            "--notify-email",
            "shop@shop.example",
            "--store",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"long-enough-password\n")
        .unwrap();
    let created = create.wait_with_output().unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(json["contract_id"], "c-ops");
    let code = json["customer_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 32);

    let shown = run_ok(admin(dir.path()).args(["tenant", "show-code", "--contract-id", "c-ops"]));
    assert_eq!(shown.trim(), code);

    let list: serde_json::Value =
        serde_json::from_str(&run_ok(admin(dir.path()).args(["tenant", "list"]))).unwrap();
    assert_eq!(list[0]["contract_id"], "c-ops");
    assert_eq!(list[0]["tenant_id"], json["tenant_id"]);
    assert!(
        !list.to_string().contains(&code),
        "no secret in the listing"
    );

    let held = run_ok(admin(dir.path()).args(["held", "list", "--contract-id", "c-ops"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&held).unwrap(),
        serde_json::json!([])
    );

    let unknown = admin(dir.path())
        .args(["failed", "list", "--contract-id", "c-none"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("契約ID c-none のテナントがありません")
    );
}

#[test]
fn dynamodb_storage_needs_its_table_and_a_local_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let no_table = Command::new(env!("CARGO_BIN_EXE_sne-aws-admin"))
        .args(["tenant", "list"])
        .env_remove("SNE_TABLE_NAME")
        .env_remove("SNE_STORAGE")
        .output()
        .unwrap();
    assert!(!no_table.status.success());
    assert!(
        String::from_utf8_lossy(&no_table.stderr).contains("--table"),
        "{}",
        String::from_utf8_lossy(&no_table.stderr)
    );

    let run = admin(dir.path())
        .args(["run", "--tenant-id", "t_x"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("smaregi-ne run all"));
}
