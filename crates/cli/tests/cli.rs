//! The `smaregi-ne` binary as operators use it.

use sne_test_support::cli::{offline, run_ok};
use std::process::Command;

fn smaregi_ne(data_dir: &std::path::Path) -> Command {
    let mut command = offline(env!("CARGO_BIN_EXE_smaregi-ne"));
    command.arg("--data-dir").arg(data_dir);
    command
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

/// An upload held as 要確認 in the tenant's store, as a run leaves it when the
/// queue list cannot prove which queue was ours.
fn hold_an_upload(data_dir: &std::path::Path, contract: &str) -> String {
    with_tenant_store(data_dir, contract, |store, tenant| async move {
        sne_test_support::fixtures::hold_a_batch(
            &store,
            &tenant,
            "b_held",
            sne_domain::upload_csv::UploadLine {
                goods_code: "8000001".into(),
                delta: -1,
            },
            vec![sne_ports::QueueCandidate {
                que_id: "77".into(),
                created_at: "2026-12-01 10:00:00".into(),
                upload_name: String::new(),
                client_file_name: String::new(),
            }],
            chrono::Utc::now(),
        )
        .await
        .batch_id
    })
}

/// A tenant made through the CLI, as an operator makes one.
fn create_tenant(data_dir: &std::path::Path, contract: &str) {
    run_ok(smaregi_ne(data_dir).args([
        "tenant",
        "create",
        "--contract-id",
        contract,
        "--admin-email",
        "admin@shop.example",
        "--admin-password",
        "long-enough-password",
        "--notify-email",
        "shop@shop.example",
    ]));
}

/// Runs `f` on the data directory's store and the tenant of `contract`, the way
/// a run would leave things, for the commands that act on them.
fn with_tenant_store<F, Fut, T>(data_dir: &std::path::Path, contract: &str, f: F) -> T
where
    F: FnOnce(sne_embedded::SqliteStore, sne_domain::TenantId) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    use sne_ports::TenantStore;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = sne_embedded::SqliteStore::open(data_dir).unwrap();
        let tenant = store
            .tenant_by_contract(contract)
            .await
            .unwrap()
            .unwrap()
            .id;
        f(store, tenant).await
    })
}

#[test]
fn a_held_upload_is_listed_and_decided_once_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    create_tenant(dir.path(), "c-held");
    let batch = hold_an_upload(dir.path(), "c-held");
    let list = run_ok(smaregi_ne(dir.path()).args(["held", "list", "--contract-id", "c-held"]));
    let json: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(json[0]["batch_id"], batch.as_str());
    assert_eq!(json[0]["candidates"][0]["que_id"], "77");
    assert!(json[0]["csv"].as_str().unwrap().contains("8000001,-1"));

    // Bad input: a queue id that is no number changes nothing.
    let bad = smaregi_ne(dir.path())
        .args([
            "held",
            "resolve",
            "--contract-id",
            "c-held",
            "--batch-id",
            &batch,
        ])
        .args(["--uploaded", "--que-id", "x7", "--by", "ops@shop.example"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("半角数字"));

    let done = run_ok(
        smaregi_ne(dir.path())
            .args([
                "held",
                "resolve",
                "--contract-id",
                "c-held",
                "--batch-id",
                &batch,
            ])
            .args(["--uploaded", "--que-id", "77", "--by", "ops@shop.example"]),
    );
    assert!(done.contains("キューID 77"), "{done}");
    let list = run_ok(smaregi_ne(dir.path()).args(["held", "list", "--contract-id", "c-held"]));
    assert_eq!(list.trim(), "[]");
    let twice = smaregi_ne(dir.path())
        .args([
            "held",
            "resolve",
            "--contract-id",
            "c-held",
            "--batch-id",
            &batch,
        ])
        .arg("--reupload")
        .output()
        .unwrap();
    assert!(!twice.status.success(), "decided once");
    assert!(String::from_utf8_lossy(&twice.stderr).contains("要確認ではありません"));

    let decided = with_tenant_store(dir.path(), "c-held", |store, tenant| async move {
        use sne_ports::BatchStore;
        store.batch(&tenant, &batch).await.unwrap().unwrap()
    });
    assert_eq!(decided.que_id.as_deref(), Some("77"));
    assert_eq!(decided.decision.unwrap().by, "ops@shop.example");
}

#[test]
fn unapplied_rows_of_a_failed_file_are_listed_and_re_sent_once_from_the_cli() {
    use sne_domain::row_application::{RowFate, RowVerdict};
    let dir = tempfile::tempdir().unwrap();
    create_tenant(dir.path(), "c-failed");
    let batch = with_tenant_store(dir.path(), "c-failed", |store, tenant| async move {
        let verdict = |code: &str, delta, fate| RowVerdict {
            goods_code: code.into(),
            delta,
            fate,
            free_stock: false,
        };
        sne_test_support::fixtures::fail_a_batch(
            &store,
            &tenant,
            "b_failed",
            vec![
                verdict("8000001", -1, RowFate::Applied),
                verdict("8000002", 3, RowFate::NotApplied),
            ],
            chrono::Utc::now(),
        )
        .await
        .batch_id
    });
    let list = run_ok(smaregi_ne(dir.path()).args(["failed", "list", "--contract-id", "c-failed"]));
    let json: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(json[0]["batch_id"], batch.as_str());
    assert_eq!(json[0]["rows"][0]["fate"], "applied");
    assert_eq!(json[0]["rows"][1]["fate"], "not_applied");
    assert_eq!(json[0]["resend"][0]["goods_code"], "8000002");
    assert_eq!(json[0]["resend"].as_array().unwrap().len(), 1);

    let resend = |by: &str| {
        smaregi_ne(dir.path())
            .args(["failed", "resend", "--contract-id", "c-failed"])
            .args(["--batch-id", &batch, "--by", by])
            .output()
            .unwrap()
    };
    let done = resend("ops@shop.example");
    assert!(done.status.success(), "{done:?}");
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("未反映の 1 行をファイル"),
        "{done:?}"
    );
    let twice = resend("someone-else");
    assert!(!twice.status.success(), "once per failed file");
    assert!(String::from_utf8_lossy(&twice.stderr).contains("すでにファイル"));
    let list = run_ok(smaregi_ne(dir.path()).args(["failed", "list", "--contract-id", "c-failed"]));
    let json: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(json[0]["follow_up"]["by"], "ops@shop.example");
    assert_eq!(json[0]["resend"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_prints_the_check_and_apply_freezes_its_corrections_once() {
    use sne_simulators::nextengine::{NeConfig, NeSim, SeedGoods};
    use sne_simulators::smaregi::{SmaregiConfig, SmaregiSim};
    let local = || "127.0.0.1:0".parse().unwrap();
    let ne = NeSim::start(NeConfig::default(), local()).await.unwrap();
    ne.seed_goods(
        "shop",
        vec![SeedGoods {
            goods_id: "8000001".into(),
            goods_name: "商品".into(),
            stock_quantity: 7,
            allocation_quantity: 0,
        }],
    );
    let smaregi = SmaregiSim::start(SmaregiConfig::default(), local())
        .await
        .unwrap();
    smaregi.add_contract("c-drift", "smaregi-token");
    smaregi.add_store("c-drift", "1", "本店");
    smaregi.add_product("c-drift", "8000001", "CODE-1", "商品");
    smaregi
        .set_stock("c-drift", "1", "8000001", 10)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = NeConfig::default();
    let (ne_url, smaregi_url) = (ne.base_url(), smaregi.access_url());
    let cli = move |args: &[&str]| {
        let mut command = smaregi_ne(dir.path());
        command
            .env("SNE_NEXTENGINE_API_URL", &ne_url)
            .env("SNE_NEXTENGINE_CLIENT_ID", &config.client_id)
            .env("SNE_NEXTENGINE_CLIENT_SECRET", &config.client_secret)
            .env("SNE_SMAREGI_API_URL", &smaregi_url)
            .args(args);
        command.output().unwrap()
    };
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(cli(&[
        "tenant",
        "create",
        "--contract-id",
        "c-drift",
        "--admin-email",
        "admin@shop.example",
        "--admin-password",
        "long-enough-password",
        "--notify-email",
        "shop@shop.example",
    ]));
    let tokens = ne.issue_tokens("shop");
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    ok(cli(&[
        "tenant",
        "set-nextengine-tokens",
        "--contract-id",
        "c-drift",
        "--access-token",
        &tokens.access_token,
        "--refresh-token",
        &tokens.refresh_token,
        "--access-token-end",
        &fmt(tokens.access_token_end_date),
        "--refresh-token-end",
        &fmt(tokens.refresh_token_end_date),
    ]));
    ok(cli(&[
        "tenant",
        "stock-history",
        "--contract-id",
        "c-drift",
        "--on",
        "--smaregi-access-token",
        "smaregi-token",
    ]));

    let preview: serde_json::Value =
        serde_json::from_str(&ok(cli(&["drift", "--contract-id", "c-drift"]))).unwrap();
    let line = &preview["check"]["lines"][0];
    assert_eq!(line["goods_code"], "8000001");
    assert_eq!(
        (line["smaregi"].as_i64(), line["difference"].as_i64()),
        (Some(10), Some(-3))
    );
    assert_eq!(preview["corrections"][0]["delta"], 3);
    assert!(
        preview["aligned"].is_null(),
        "without --apply nothing is frozen"
    );
    let id = preview["check"]["id"].as_str().unwrap().to_string();

    let applied: serde_json::Value = serde_json::from_str(&ok(cli(&[
        "drift",
        "--contract-id",
        "c-drift",
        "--apply",
        "--check-id",
        &id,
        "--by",
        "ops",
    ])))
    .unwrap();
    assert_eq!(applied["aligned"]["batch_id"], format!("b_align_{id}"));
    let twice = cli(&[
        "drift",
        "--contract-id",
        "c-drift",
        "--apply",
        "--check-id",
        &id,
    ]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("すでに登録されています"));
    let without_apply = cli(&["drift", "--contract-id", "c-drift", "--check-id", &id]);
    assert!(!without_apply.status.success(), "--check-id needs --apply");
    let unknown = cli(&["drift", "--contract-id", "nobody"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("テナントがありません"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_switches_to_the_platform_api_at_the_history_boundary_and_back() {
    use sne_simulators::smaregi::platform::PlatformConfig;
    use sne_simulators::smaregi::{SmaregiConfig, SmaregiSim};
    let smaregi = SmaregiSim::start(SmaregiConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    smaregi.add_contract("c-intake", "smaregi-token");
    smaregi.add_store("c-intake", "1", "本店");
    smaregi.add_product("c-intake", "8000001", "CODE-1", "商品");
    smaregi.sale("c-intake", "1", "8000001", 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = PlatformConfig::default();
    let (base, access) = (smaregi.base_url(), smaregi.access_url());
    let cli = move |args: &[&str], secret: &str| {
        let mut command = smaregi_ne(dir.path());
        command
            .env("SNE_SMAREGI_API_URL", &access)
            .env("SNE_SMAREGI_PLATFORM_CLIENT_ID", &app.client_id)
            .env("SNE_SMAREGI_PLATFORM_CLIENT_SECRET", secret)
            .env("SNE_SMAREGI_PLATFORM_ID_URL", &base)
            .env("SNE_SMAREGI_PLATFORM_API_URL", &base)
            .args(args);
        command.output().unwrap()
    };
    let secret = PlatformConfig::default().client_secret;
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let created = cli(
        &[
            "tenant",
            "create",
            "--contract-id",
            "c-intake",
            "--admin-email",
            "admin@shop.example",
            "--admin-password",
            "long-enough-password",
            "--notify-email",
            "shop@shop.example",
        ],
        &secret,
    );
    assert!(created.status.success());
    let history = cli(
        &[
            "tenant",
            "stock-history",
            "--contract-id",
            "c-intake",
            "--on",
            "--smaregi-access-token",
            "smaregi-token",
        ],
        &secret,
    );
    assert!(history.status.success());
    let to_platform = ["intake", "--contract-id", "c-intake", "--to", "platform"];
    let refused = cli(&to_platform, &secret);
    assert!(!refused.status.success(), "the app is not installed yet");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("アプリがこの契約で使えません"));
    smaregi.platform_subscribe("c-intake", &[]).await.unwrap();
    let wrong_secret = cli(&to_platform, "not-the-secret");
    assert!(!wrong_secret.status.success());
    assert!(!String::from_utf8_lossy(&wrong_secret.stderr).contains("not-the-secret"));

    let switched = ok(cli(&to_platform, &secret));
    let boundary = smaregi.history("c-intake").last().unwrap().id;
    assert_eq!(switched["intake"]["intake"], "platform");
    assert_eq!(switched["intake"]["boundary_id"], boundary);
    assert!(
        switched["message"]
            .as_str()
            .unwrap()
            .contains(&boundary.to_string())
    );
    let again = ok(cli(&to_platform, &secret));
    assert!(again["message"].as_str().unwrap().contains("既に"));

    let back = ok(cli(
        &["intake", "--contract-id", "c-intake", "--to", "old"],
        &secret,
    ));
    assert_eq!(back["intake"]["intake"], "old_api");
    assert_eq!(back["intake"]["old_api_cursor"], boundary);
    let bad = cli(
        &["intake", "--contract-id", "c-intake", "--to", "sideways"],
        &secret,
    );
    assert!(!bad.status.success());
}
