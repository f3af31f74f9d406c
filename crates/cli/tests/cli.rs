//! The `smaregi-ne` binary as operators use it.

use std::process::Command;

fn smaregi_ne(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smaregi-ne"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        // Nothing in these tests may reach the real services.
        .env("SNE_NEXTENGINE_API_URL", "http://127.0.0.1:9")
        .env("SNE_NEXTENGINE_SIGNIN_URL", "http://127.0.0.1:9")
        .env("SNE_SMAREGI_API_URL", "http://127.0.0.1:9/access/");
    command
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn tenant_create_prints_its_id_and_customer_code_and_refuses_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let create = |contract: &str| {
        let mut c = smaregi_ne(dir.path());
        c.args([
            "tenant",
            "create",
            "--contract-id",
            contract,
            "--name",
            "テスト店",
            "--admin-email",
            "admin@shop.example",
            "--admin-password",
            "long-enough-password",
            "--notify-email",
            "shop@shop.example",
        ]);
        c
    };
    let out = run_ok(&mut create("c-123"));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(json["tenant_id"].as_str().unwrap().starts_with("t_"));
    assert_eq!(json["customer_code"].as_str().unwrap().len(), 32);

    let again = create("c-123").output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("既に登録"));

    let list = run_ok(smaregi_ne(dir.path()).args(["tenant", "list"]));
    assert!(list.contains("c-123"));
    assert!(
        !list.contains(json["customer_code"].as_str().unwrap()),
        "no secrets in the list"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = smaregi_ne(dir.path())
        .args([
            "tenant",
            "create",
            "--contract-id",
            "c-1",
            "--admin-email",
            "not-an-address",
            "--admin-password",
            "long-enough-password",
            "--notify-email",
            "shop@shop.example",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("メールアドレス"));
    let list = run_ok(smaregi_ne(dir.path()).args(["tenant", "list"]));
    assert_eq!(list.trim(), "[]");
}

#[test]
fn the_demo_scenario_moves_a_sale_into_nextengine_and_writes_a_mail() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(smaregi_ne(dir.path()).args([
        "demo",
        "--scenario",
        "--listen",
        "127.0.0.1:0",
        "--nextengine-sim-listen",
        "127.0.0.1:0",
        "--smaregi-sim-listen",
        "127.0.0.1:0",
    ]));
    // Sale of 2 (10 → 8) and 棚卸 to 7 reached NextEngine; 8000003 is untouched there.
    assert!(out.contains("ネクストエンジン在庫 8000001: 8"), "{out}");
    assert!(out.contains("ネクストエンジン在庫 8000002: 7"), "{out}");
    assert!(out.contains("処理結果:成功"), "{out}");
    let mails = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .count();
    assert!(mails >= 1, "{out}");
}
