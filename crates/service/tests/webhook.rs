//! `POST /smaregi/webhook` through the router, on the embedded store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sne_service::AdminContext;
use sne_service::tenants::{NewTenant, create_tenant};
use sne_test_support::Wiring;
use tower::ServiceExt;

struct Fixture {
    dir: tempfile::TempDir,
    ctx: AdminContext,
    code: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // The webhook never calls out: the clients point nowhere.
    let ctx = Wiring::new(dir.path()).contexts().admin;
    let code = fixture_tenant_code(&ctx).await;
    Fixture { dir, ctx, code }
}

const PARAMS: &str = r#"{"data":[{"table_name":"Stock","rows":[{"id":"17","storeId":"1","productId":"8000001","amount":"-1","stockAmount":"4","stockDivision":"02","updDateTime":"2026-11-27 10:00:00"}]}]}"#;

fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

async fn post(ctx: &AdminContext, body: String, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut request = Request::post("/smaregi/webhook")
        .header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sne_service::http::router(ctx.clone())
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn tenant_c1(ctx: &AdminContext) -> sne_domain::tenant::Tenant {
    ctx.storage.tenant_by_contract("c1").await.unwrap().unwrap()
}

async fn pending(f: &Fixture) -> usize {
    let tenant = tenant_c1(&f.ctx).await;
    f.ctx.storage.pending_changes(&tenant.id).await.unwrap()
}

#[tokio::test]
async fn a_push_with_the_right_code_is_stored_and_a_resend_changes_nothing() {
    let f = fixture().await;
    let body = form(&[
        ("proc_name", "stock_send"),
        ("params", PARAMS),
        ("contract_id", "c1"),
        ("code", &f.code),
    ]);
    assert_eq!(
        post(&f.ctx, body.clone(), &[]).await,
        (StatusCode::OK, "OK".into())
    );
    assert_eq!(pending(&f).await, 1);
    assert_eq!(post(&f.ctx, body, &[]).await.0, StatusCode::OK);
    assert_eq!(pending(&f).await, 1, "a resend lands on the same key");
}

#[tokio::test]
async fn the_pairs_may_arrive_as_headers() {
    let f = fixture().await;
    let body = form(&[("proc_name", "stock_send"), ("params", PARAMS)]);
    let (status, _) = post(&f.ctx, body, &[("contract_id", "c1"), ("code", &f.code)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending(&f).await, 1);
}

#[tokio::test]
async fn pair_names_match_in_any_case_and_with_a_hyphen_for_the_underscore() {
    let f = fixture().await;
    let push = [("proc_name", "stock_send"), ("params", PARAMS)];
    // As headers: a proxy such as nginx drops `contract_id`, so shops type
    // `contract-id`; some screens capitalise what was typed.
    for (contract_name, code_name) in [
        ("Contract-Id", "Code"),
        ("contract-id", "code"),
        ("CONTRACT_ID", "CODE"),
    ] {
        let (status, body) = post(
            &f.ctx,
            form(&push),
            &[(contract_name, "c1"), (code_name, &f.code)],
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "OK"),
            "headers {contract_name} / {code_name}"
        );
    }
    // As form fields (the older screen).
    for (contract_name, code_name) in [
        ("CONTRACT_ID", "Code"),
        ("contract-id", "code"),
        ("Contract-Id", "CODE"),
    ] {
        let mut fields = push.to_vec();
        fields.extend([(contract_name, "c1"), (code_name, f.code.as_str())]);
        let (status, body) = post(&f.ctx, form(&fields), &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "OK"),
            "form fields {contract_name} / {code_name}"
        );
    }
    assert_eq!(pending(&f).await, 1, "one change, delivered six times");
}

#[tokio::test]
async fn a_wrong_code_is_refused_whatever_the_pair_names() {
    let f = fixture().await;
    let push = [("proc_name", "stock_send"), ("params", PARAMS)];
    for headers in [
        [("Contract-Id", "c1"), ("Code", "wrong")],
        [("contract-id", "c1"), ("code", "")],
        [("CONTRACT_ID", "nobody"), ("CODE", f.code.as_str())],
    ] {
        assert_eq!(
            post(&f.ctx, form(&push), &headers).await,
            (StatusCode::BAD_REQUEST, "code_mismatch".into()),
            "{headers:?}"
        );
    }
    let mut fields = push.to_vec();
    fields.extend([("Contract-Id", "c1"), ("CODE", "wrong")]);
    assert_eq!(
        post(&f.ctx, form(&fields), &[]).await,
        (StatusCode::BAD_REQUEST, "code_mismatch".into())
    );
    assert_eq!(pending(&f).await, 0);
}

#[tokio::test]
async fn only_case_and_the_separator_are_tolerated_in_pair_names() {
    let f = fixture().await;
    let push = [("proc_name", "stock_send"), ("params", PARAMS)];
    for (contract_name, code_name) in [
        ("contractid", "code"),
        ("contract__id", "code"),
        ("contract_id_", "code"),
        ("x-contract-id", "code"),
        ("contract_id", "codes"),
        ("contract_id", "x-code"),
    ] {
        let headers = [(contract_name, "c1"), (code_name, f.code.as_str())];
        assert_eq!(
            post(&f.ctx, form(&push), &headers).await,
            (StatusCode::BAD_REQUEST, "code_mismatch".into()),
            "headers {headers:?}"
        );
        let mut fields = push.to_vec();
        fields.extend(headers);
        assert_eq!(
            post(&f.ctx, form(&fields), &[]).await,
            (StatusCode::BAD_REQUEST, "code_mismatch".into()),
            "form fields {contract_name} / {code_name}"
        );
    }
    assert_eq!(pending(&f).await, 0);
}

#[tokio::test]
async fn form_fields_win_over_headers_and_spellings_that_disagree_are_refused() {
    let f = fixture().await;
    let push = [("proc_name", "stock_send"), ("params", PARAMS)];
    // A wrong code in the form is not rescued by a right one in a header.
    let mut fields = push.to_vec();
    fields.extend([("contract_id", "c1"), ("code", "wrong")]);
    assert_eq!(
        post(&f.ctx, form(&fields), &[("code", &f.code)]).await,
        (StatusCode::BAD_REQUEST, "code_mismatch".into())
    );
    // Two spellings of one pair with different values: neither is guessed.
    let mut fields = push.to_vec();
    fields.extend([
        ("contract_id", "c1"),
        ("code", f.code.as_str()),
        ("Code", "wrong"),
    ]);
    assert_eq!(
        post(&f.ctx, form(&fields), &[]).await,
        (StatusCode::BAD_REQUEST, "code_mismatch".into())
    );
    let headers = [
        ("contract-id", "c1"),
        ("code", f.code.as_str()),
        ("CODE", "wrong"),
    ];
    assert_eq!(
        post(&f.ctx, form(&push), &headers).await,
        (StatusCode::BAD_REQUEST, "code_mismatch".into())
    );
    assert_eq!(pending(&f).await, 0);
    // Spellings that agree are one pair.
    let headers = [
        ("contract-id", "c1"),
        ("contract_id", "c1"),
        ("code", f.code.as_str()),
    ];
    assert_eq!(post(&f.ctx, form(&push), &headers).await.0, StatusCode::OK);
    assert_eq!(pending(&f).await, 1);
}

#[tokio::test]
async fn a_wrong_code_or_unknown_contract_is_code_mismatch_and_stores_nothing() {
    let f = fixture().await;
    for (contract, code) in [
        ("c1", "wrong"),
        ("c1", ""),
        ("nobody", f.code.as_str()),
        ("", ""),
    ] {
        let body = form(&[
            ("proc_name", "stock_send"),
            ("params", PARAMS),
            ("contract_id", contract),
            ("code", code),
        ]);
        assert_eq!(
            post(&f.ctx, body, &[]).await,
            (StatusCode::BAD_REQUEST, "code_mismatch".into()),
            "contract {contract:?} code {code:?}"
        );
    }
    assert_eq!(pending(&f).await, 0);
}

#[tokio::test]
async fn a_malformed_push_is_refused_with_a_reason_and_changes_nothing() {
    let f = fixture().await;
    for (proc_name, params) in [
        ("stock_send", "{not json"),
        ("product_send", PARAMS),
        (
            "stock_send",
            r#"{"data":[{"table_name":"Stock","rows":[{"storeId":"1","productId":"1","stockAmount":"1.5"}]}]}"#,
        ),
    ] {
        let body = form(&[
            ("proc_name", proc_name),
            ("params", params),
            ("contract_id", "c1"),
            ("code", &f.code),
        ]);
        let (status, reason) = post(&f.ctx, body, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(!reason.is_empty() && reason != "code_mismatch", "{reason}");
    }
    assert_eq!(pending(&f).await, 0);
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let f = fixture().await;
    let huge = "x".repeat(sne_service::webhook::MAX_BODY_BYTES + 1);
    let (status, _) = post(&f.ctx, huge, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_storage_failure_is_a_500_so_smaregi_marks_the_send_failed() {
    let f = fixture().await;
    // Break the ledger table behind the store's back.
    let db = rusqlite::Connection::open(f.dir.path().join(sne_embedded::DB_FILE_NAME)).unwrap();
    db.execute_batch("ALTER TABLE changes RENAME TO changes_gone")
        .unwrap();
    let body = form(&[
        ("proc_name", "stock_send"),
        ("params", PARAMS),
        ("contract_id", "c1"),
        ("code", &f.code),
    ]);
    let (status, body) = post(&f.ctx, body, &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.contains(&f.code), "no secret in the answer");
}

/// The ledger's pending changes, by claiming them (the test owns the store).
async fn claimed_rows(f: &Fixture) -> Vec<sne_domain::ChangeRow> {
    let tenant = f
        .ctx
        .storage
        .tenant_by_contract("c1")
        .await
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now();
    let claim = sne_ports::ClaimRequest {
        new_batch_id: "b_test".into(),
        owner: "test".into(),
        now,
        lease_until: now + chrono::Duration::minutes(5),
        max_changes: 100,
    };
    match f.ctx.storage.claim_batch(&tenant.id, &claim).await.unwrap() {
        Some(batch) => batch.changes.into_iter().map(|c| c.row).collect(),
        None => vec![],
    }
}

#[tokio::test]
async fn decimal_integers_and_iso_times_are_accepted_and_stored() {
    let f = fixture().await;
    let params = r#"{"data":[{"table_name":"Stock","rows":[
        {"id":"18.0","storeId":"1","productId":"8000001","amount":"-1.000","stockAmount":"3.000","stockDivision":"02","updDateTime":"2026-01-02T03:04:05+09:00"},
        {"storeId":1.0,"productId":"8000002","amount":-2.0,"stockAmount":5.0,"stockDivision":"02","updDateTime":"2026-01-01T18:04:06.5Z"}
    ]}]}"#;
    let body = form(&[
        ("proc_name", "stock_send"),
        ("params", params),
        ("contract_id", "c1"),
        ("code", &f.code),
    ]);
    assert_eq!(
        post(&f.ctx, body.clone(), &[]).await,
        (StatusCode::OK, "OK".into())
    );
    assert_eq!(post(&f.ctx, body, &[]).await.0, StatusCode::OK);
    let rows = claimed_rows(&f).await;
    let jst =
        |text: &str| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let stored: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.store_id.as_str(),
                r.product_id.as_str(),
                r.amount,
                r.after,
                r.changed_at,
                r.history_id,
            )
        })
        .collect();
    assert_eq!(
        stored,
        vec![
            (
                "1",
                "8000001",
                Some(-1),
                Some(3),
                Some(jst("2026-01-02 03:04:05")),
                Some(18)
            ),
            (
                "1",
                "8000002",
                Some(-2),
                Some(5),
                Some(jst("2026-01-02 03:04:06.5")),
                None
            ),
        ],
        "both rows stored once, a resend adds nothing"
    );
}

#[tokio::test]
async fn a_really_malformed_value_is_refused_naming_row_and_field() {
    let f = fixture().await;
    let params = r#"{"data":[{"table_name":"Stock","rows":[
        {"storeId":"1","productId":"8000001","stockAmount":"3.000"},
        {"storeId":"1","productId":"8000001","stockAmount":"3","updDateTime":"2026-02-30T10:00:00+09:00"}
    ]}]}"#;
    let body = form(&[
        ("proc_name", "stock_send"),
        ("params", params),
        ("contract_id", "c1"),
        ("code", &f.code),
    ]);
    let (status, reason) = post(&f.ctx, body, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        reason.contains("2 行目") && reason.contains("updDateTime"),
        "{reason}"
    );
    assert_eq!(pending(&f).await, 0, "no row of a refused push is stored");
}

async fn push_rows(f: &Fixture, params: &str) -> StatusCode {
    let body = form(&[
        ("proc_name", "stock_send"),
        ("params", params),
        ("contract_id", "c1"),
        ("code", &f.code),
    ]);
    post(&f.ctx, body, &[]).await.0
}

#[tokio::test]
async fn same_second_sales_without_id_are_two_changes_and_an_identical_resend_is_none() {
    let f = fixture().await;
    // Two registers sell one each in the same second: the full row shape, no id.
    let params = r#"{"data":[{"table_name":"Stock","rows":[
        {"storeId":"1","productId":"8000001","amount":"-1","stockAmount":"4","layawayStockAmount":"0","stockDivision":"02","updDateTime":"2026-11-27 10:00:00"},
        {"storeId":"1","productId":"8000001","amount":"-1","stockAmount":"3","layawayStockAmount":"0","stockDivision":"02","updDateTime":"2026-11-27 10:00:00"}
    ]}]}"#;
    assert_eq!(push_rows(&f, params).await, StatusCode::OK);
    assert_eq!(pending(&f).await, 2);
    assert_eq!(push_rows(&f, params).await, StatusCode::OK);
    assert_eq!(pending(&f).await, 2, "an identical resend adds nothing");
}

#[tokio::test]
async fn identical_relative_sales_in_one_push_are_two_changes() {
    let f = fixture().await;
    let row = r#"{"storeId":"1","productId":"8000001","stockAmount":"-1","stockDivision":"02","updDateTime":"2026-11-27 10:00:00"}"#;
    let params = format!(
        r#"{{"proc_info":{{"proc_detail_division":"2"}},"data":[{{"table_name":"Stock","rows":[{row},{row}]}}]}}"#
    );
    assert_eq!(push_rows(&f, &params).await, StatusCode::OK);
    assert_eq!(pending(&f).await, 2, "two registers, one second");
    assert_eq!(push_rows(&f, &params).await, StatusCode::OK);
    assert_eq!(pending(&f).await, 2, "a resend numbers them alike");
}

#[tokio::test]
async fn same_second_transfers_to_different_stores_are_two_changes() {
    let f = fixture().await;
    let params = r#"{"data":[{"table_name":"Stock","rows":[
        {"storeId":"1","productId":"8000001","amount":"-1","stockAmount":"4","stockDivision":"04","fromStoreId":"1","toStoreId":"2","updDateTime":"2026-11-27 10:00:00"},
        {"storeId":"1","productId":"8000001","amount":"-1","stockAmount":"4","stockDivision":"04","fromStoreId":"1","toStoreId":"3","updDateTime":"2026-11-27 10:00:00"}
    ]}]}"#;
    assert_eq!(push_rows(&f, params).await, StatusCode::OK);
    assert_eq!(pending(&f).await, 2);
}

/// A run trigger that answers as told, for the webhook's run request.
struct Trigger(Behaviour);

enum Behaviour {
    Fails,
    Hangs,
}

#[async_trait::async_trait]
impl sne_ports::RunTrigger for Trigger {
    async fn request_run(&self, _tenant: &sne_domain::TenantId) -> Result<(), String> {
        unreachable!("the webhook never asks for 今すぐ実行")
    }

    async fn request_drift_check(&self, _tenant: &sne_domain::TenantId) -> Result<(), String> {
        unreachable!("the webhook never asks for a drift check")
    }

    async fn changes_stored(&self, _tenant: &sne_domain::TenantId) -> Result<(), String> {
        match self.0 {
            Behaviour::Fails => Err("queue unavailable".into()),
            Behaviour::Hangs => std::future::pending().await,
        }
    }
}

fn push_of(f: &Fixture, params: &str) -> String {
    form(&[
        ("proc_name", "stock_send"),
        ("params", params),
        ("contract_id", "c1"),
        ("code", &f.code),
    ])
}

#[tokio::test]
async fn a_stored_push_asks_for_its_tenants_run_and_a_resend_or_refusal_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let sne_test_support::Contexts {
        admin,
        mut requests,
        ..
    } = Wiring::new(dir.path()).contexts();
    let f = Fixture {
        code: fixture_tenant_code(&admin).await,
        dir,
        ctx: admin,
    };
    let tenant = tenant_c1(&f.ctx).await;
    assert_eq!(
        post(&f.ctx, push_of(&f, PARAMS), &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        requests.try_recv().unwrap(),
        sne_service::trigger::RunRequest::Changes(tenant.id.clone())
    );
    assert_eq!(
        post(&f.ctx, push_of(&f, PARAMS), &[]).await.0,
        StatusCode::OK
    );
    assert!(requests.try_recv().is_err(), "a resend stored nothing new");
    let wrong = form(&[
        ("proc_name", "stock_send"),
        ("params", PARAMS),
        ("contract_id", "c1"),
        ("code", "wrong"),
    ]);
    assert_eq!(post(&f.ctx, wrong, &[]).await.0, StatusCode::BAD_REQUEST);
    assert!(
        requests.try_recv().is_err(),
        "a refused push asks for nothing"
    );
}

async fn fixture_tenant_code(ctx: &AdminContext) -> String {
    create_tenant(
        ctx,
        NewTenant {
            name: "店".into(),
            contract_id: "c1".into(),
            admin_email: "a@shop.example".into(),
            admin_password: "password1".into(),
            notify_emails: vec!["n@shop.example".into()],
            counted_stores: None,
        },
    )
    .await
    .unwrap()
    .customer_code
}

#[tokio::test]
async fn a_run_request_that_fails_or_hangs_never_fails_the_stored_push() {
    for behaviour in [Behaviour::Fails, Behaviour::Hangs] {
        let mut f = fixture().await;
        f.ctx.trigger = std::sync::Arc::new(Trigger(behaviour));
        // A hanging queue is given up on, so Smaregi's send does not time out
        // (the guard only keeps a regression from hanging the suite).
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            post(&f.ctx, push_of(&f, PARAMS), &[]),
        )
        .await
        .expect("the webhook answers although the run request hangs");
        assert_eq!(answer, (StatusCode::OK, "OK".into()));
        assert_eq!(pending(&f).await, 1, "stored before the request was made");
    }
}
