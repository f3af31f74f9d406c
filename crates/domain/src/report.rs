//! The run report of design.md §5 as data: what happened in one run for one tenant,
//! and its Japanese subject and body. How it is sent is not this module's business.

use crate::QueId;
use crate::que_message::{FREE_STOCK_TEXT, RowError, RowErrorKind};
use crate::row_application::{FateCounts, RowVerdict, unapplied_lines};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const SUBJECT_PREFIX: &str = "【スマレジtoネクストエンジン】";
pub const TOKEN_ERROR_TEXT: &str = "ファイルのアップロード中にトークンのエラーが発生しました";
pub const SUSPENDED_TEXT: &str =
    "ネクストエンジンのご利用が停止されているため、アップロードできませんでした";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub tenant_name: String,
    pub run_at: DateTime<Utc>,
    pub upload: UploadSection,
    pub previous: PreviousSection,
    /// `None` while the order import is off: the section is then left out.
    pub orders: Option<OrderSection>,
    /// Fallbacks and warnings the operator should know about (design.md §3: never guess silently).
    pub notices: Vec<String>,
    /// 「在庫差異」: only in a drift check's run.
    #[serde(default)]
    pub drift: Option<DriftSection>,
}

/// The drift check's part of its run's mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DriftSection {
    Checked {
        check_id: String,
        goods_compared: usize,
        lines: usize,
        corrections: usize,
        /// The largest differences, at most [`crate::drift::LINES_IN_MAIL`].
        largest: Vec<crate::drift::DriftLine>,
        /// The attached CSV of every line, when there are lines.
        csv_file_name: Option<String>,
        report_only: bool,
        unsettled: usize,
        unmapped_products: usize,
        set_goods_skipped: usize,
    },
    Failed {
        reason: String,
    },
}

impl DriftSection {
    pub fn of(check: &crate::drift::DriftCheck, csv_file_name: Option<String>) -> Self {
        DriftSection::Checked {
            check_id: check.id.clone(),
            goods_compared: check.goods_compared,
            lines: check.lines.len(),
            corrections: check.corrections().len(),
            largest: check
                .lines
                .iter()
                .take(crate::drift::LINES_IN_MAIL)
                .cloned()
                .collect(),
            csv_file_name,
            report_only: check.master == crate::tenant::StockMaster::NextEngine,
            unsettled: check.unsettled.len(),
            unmapped_products: check.unmapped_products,
            set_goods_skipped: check.set_goods_skipped,
        }
    }

    fn status(&self) -> String {
        match self {
            DriftSection::Checked { lines: 0, .. } => "なし".into(),
            DriftSection::Checked { lines, .. } => format!("{lines}件"),
            DriftSection::Failed { .. } => "失敗".into(),
        }
    }

    fn render_into(&self, body: &mut String) {
        match self {
            DriftSection::Failed { reason } => {
                push_line(
                    body,
                    "スマレジとネクストエンジンの在庫を比較できませんでした。",
                );
                push_line(body, format!("原因: {reason}"));
                push_line(body, "次回の確認で再度比較します。");
            }
            DriftSection::Checked {
                check_id,
                goods_compared,
                lines,
                corrections,
                largest,
                csv_file_name,
                report_only,
                unsettled,
                unmapped_products,
                set_goods_skipped,
            } => {
                push_line(
                    body,
                    format!("比較した商品: {goods_compared}件 / 差異のある商品: {lines}件"),
                );
                if *lines == 0 {
                    push_line(body, "スマレジとネクストエンジンの在庫は一致しています。");
                } else {
                    push_line(
                        body,
                        "差異の大きい商品 (差異 = 反映後のフリー在庫 − 期待されるフリー在庫):",
                    );
                    for l in largest {
                        let ne = l
                            .nextengine
                            .map(|n| {
                                format!("在庫数{} 引当数{} フリー{}", n.stock, n.allocated, n.free)
                            })
                            .unwrap_or_else(|| "未登録".into());
                        push_line(
                            body,
                            format!(
                                "・{} スマレジ{} / ネクストエンジン {} / 差異{:+} / 原因: {}",
                                l.goods_code,
                                l.smaregi,
                                ne,
                                l.difference,
                                l.cause_text()
                            ),
                        );
                    }
                    if let Some(name) = csv_file_name {
                        push_line(body, format!("全件: {name} (このメールに添付しています)"));
                    }
                    if *report_only {
                        push_line(
                            body,
                            "在庫マスタがネクストエンジンのため、差異はお知らせのみです (補正は行いません)。",
                        );
                    } else if *corrections > 0 {
                        push_line(
                            body,
                            format!(
                                "管理画面の「在庫差異」で補正内容を確認し、「揃える」で{corrections}件の商品を補正できます。"
                            ),
                        );
                    }
                }
                if *unsettled > 0 {
                    push_line(
                        body,
                        format!(
                            "確認中に在庫が動いた商品 {unsettled}件は、次回の確認で比較します。"
                        ),
                    );
                }
                if *unmapped_products > 0 {
                    push_line(
                        body,
                        format!(
                            "商品コードに対応しないスマレジの商品 {unmapped_products}件は比較していません。"
                        ),
                    );
                }
                if *set_goods_skipped > 0 {
                    push_line(
                        body,
                        format!(
                            "セット商品 {set_goods_skipped}件はネクストエンジンが在庫を計算するため比較していません。"
                        ),
                    );
                }
                push_line(body, format!("確認ID: {check_id}"));
            }
        }
    }
}

/// A goods code that was left out of the upload, with the delta it would have carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedLine {
    pub goods_code: String,
    pub delta: i64,
    pub reason: ParkReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// 未登録商品: NextEngine does not know the goods code.
    NotRegistered,
    /// The code breaks NextEngine's rule (ASCII letters, digits, `-`, `_`, ≤ 30).
    InvalidCode,
    /// The Smaregi product has no goods code under the tenant's mapping.
    Unmapped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UploadSection {
    /// No stock change needed uploading in this run.
    Nothing { parked: Vec<ParkedLine> },
    Uploaded {
        batch_id: String,
        que_id: QueId,
        products: usize,
        /// Stock changes that went into the file.
        changes: usize,
        csv_file_name: String,
        download_url: Option<String>,
        parked: Vec<ParkedLine>,
    },
    /// NextEngine refused our tokens; the batch waits for 再取得.
    TokenError { batch_id: String, detail: String },
    /// NextEngine answered that the account is suspended (利用停止); the batch
    /// waits until the contract is in order. 再取得 would not help.
    Suspended {
        batch_id: Option<String>,
        detail: String,
    },
    /// Any other failure; the batch is kept and retried by the next run.
    Failed {
        batch_id: Option<String>,
        reason: String,
    },
    /// The outcome of an upload is not known yet (timeout); the next run resolves it
    /// from NextEngine's queue before anything is sent again.
    Unresolved { batch_id: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueResult {
    pub que_id: QueId,
    pub batch_id: String,
    pub outcome: QueueOutcome,
    /// How a person resolved the file while it was held as 要確認.
    #[serde(default)]
    pub decision: Option<crate::upload_batch::OperatorDecision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueOutcome {
    Succeeded,
    Failed {
        row_errors: Vec<RowError>,
        raw_message: String,
        /// What became of each row, as NextEngine's stock in/out history shows it.
        /// Empty in records from before the history was read: nothing known.
        #[serde(default)]
        rows: Vec<RowVerdict>,
    },
    /// Still waiting or running in NextEngine's queue, longer than the configured limit.
    Overdue {
        minutes: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PreviousSection {
    Nothing,
    Results {
        results: Vec<QueueResult>,
    },
    /// The queue could not be read (e.g. token error); the check is repeated next run.
    Error {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedOrder {
    /// NextEngine 伝票番号.
    pub receive_order_id: String,
    /// The shop's 受注番号.
    pub shop_order_no: String,
    pub shipment_id: String,
    pub lines: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedOrder {
    pub receive_order_id: String,
    pub shop_order_no: String,
    pub reason: String,
    /// goods code × quantity, so the operator can register the shipment by hand.
    pub lines: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OrderSection {
    pub imported: Vec<ImportedOrder>,
    pub failed: Vec<FailedOrder>,
    /// Orders cancelled in NextEngine after they were imported.
    pub cancelled_after_import: Vec<ImportedOrder>,
    /// The import itself could not run (e.g. Smaregi or token error).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedReport {
    pub subject: String,
    pub body: String,
}

impl RunReport {
    /// Whether this run did anything an operator should hear about.
    pub fn is_worth_sending(&self) -> bool {
        let upload_quiet =
            matches!(&self.upload, UploadSection::Nothing { parked } if parked.is_empty());
        let previous_quiet = match &self.previous {
            PreviousSection::Nothing => true,
            PreviousSection::Results { results } => results.is_empty(),
            PreviousSection::Error { .. } => false,
        };
        let orders_quiet = self.orders.as_ref().is_none_or(OrderSection::is_empty);
        self.drift.is_some()
            || !(upload_quiet && previous_quiet && orders_quiet && self.notices.is_empty())
    }

    pub fn render(&self) -> RenderedReport {
        RenderedReport {
            subject: self.subject(),
            body: self.body(),
        }
    }

    fn subject(&self) -> String {
        let mut subject = format!(
            "{SUBJECT_PREFIX}{} アップロード:{} 処理結果:{}",
            self.tenant_name,
            self.upload.status(),
            self.previous.status()
        );
        if let Some(orders) = &self.orders {
            subject.push_str(" 受注取込:");
            subject.push_str(orders.status());
        }
        if let Some(drift) = &self.drift {
            subject.push_str(" 在庫差異:");
            subject.push_str(&drift.status());
        }
        subject
    }

    fn body(&self) -> String {
        let mut body = String::new();
        push_line(&mut body, format!("{} 様", self.tenant_name));
        push_line(&mut body, "");
        push_line(
            &mut body,
            "スマレジtoネクストエンジン連携の実行結果をお知らせします。",
        );
        push_line(
            &mut body,
            format!(
                "実行日時: {} (日本時間)",
                crate::time::format_jst(self.run_at)
            ),
        );
        push_heading(&mut body, "アップロード");
        self.upload.render_into(&mut body);
        push_heading(&mut body, "前回の処理結果");
        self.previous.render_into(&mut body);
        if let Some(orders) = &self.orders {
            push_heading(&mut body, "受注取込");
            orders.render_into(&mut body);
        }
        if let Some(drift) = &self.drift {
            push_heading(&mut body, "在庫差異");
            drift.render_into(&mut body);
        }
        if !self.notices.is_empty() {
            push_heading(&mut body, "お知らせ");
            for notice in &self.notices {
                push_line(&mut body, format!("・{notice}"));
            }
        }
        body
    }
}

impl UploadSection {
    fn status(&self) -> &'static str {
        match self {
            UploadSection::Uploaded { .. } => "成功",
            UploadSection::Nothing { .. } => "なし",
            UploadSection::TokenError { .. }
            | UploadSection::Suspended { .. }
            | UploadSection::Failed { .. } => "失敗",
            UploadSection::Unresolved { .. } => "確認中",
        }
    }

    fn render_into(&self, body: &mut String) {
        match self {
            UploadSection::Nothing { parked } => {
                push_line(
                    body,
                    "なし (今回アップロードする在庫の増減はありませんでした)",
                );
                render_parked(body, parked);
            }
            UploadSection::Uploaded {
                batch_id,
                que_id,
                products,
                changes,
                csv_file_name,
                download_url,
                parked,
            } => {
                push_line(body, "ネクストエンジンへのアップロードに成功しました。");
                push_line(body, format!("キューID: {que_id}"));
                push_line(
                    body,
                    format!("商品数: {products}件 (在庫の増減 {changes}件分)"),
                );
                push_line(
                    body,
                    format!("ファイル: {csv_file_name} (このメールに添付しています)"),
                );
                // The admin screen's download route (see the uploader): it asks
                // for a login, so the mail says so.
                if let Some(url) = download_url {
                    push_line(
                        body,
                        format!("ダウンロード (管理画面へのログインが必要です): {url}"),
                    );
                }
                push_line(body, format!("バッチID: {batch_id}"));
                push_line(
                    body,
                    "ネクストエンジンでの処理結果は、次回の通知メールの「前回の処理結果」でお知らせします。\
                     処理に失敗した場合はこのメールのキューIDと添付ファイルを使いますので、保管してください。",
                );
                render_parked(body, parked);
            }
            UploadSection::TokenError { batch_id, detail } => {
                push_line(body, format!("{TOKEN_ERROR_TEXT}。"));
                push_line(
                    body,
                    "ネクストエンジンにアクセスするためのトークンが有効ではありません。",
                );
                push_line(body, "対処方法:");
                push_line(
                    body,
                    "スマレジtoネクストエンジン管理画面にログインし、トークンの再取得欄で「再取得」ボタンをクリックしてください。\
                     ネクストエンジンのログイン画面が表示された場合はログインしてください。\
                     トークンの再取得欄に「トークンを更新しました」と表示されれば完了です。",
                );
                push_line(
                    body,
                    "在庫の増減は保存されています。再取得の後、次回の実行でこのファイルをアップロードします。",
                );
                push_line(body, format!("詳細: {detail}"));
                push_line(body, format!("バッチID: {batch_id}"));
            }
            UploadSection::Suspended { batch_id, detail } => {
                push_line(body, format!("{SUSPENDED_TEXT}。"));
                push_line(
                    body,
                    "トークンの問題ではないため、管理画面でトークンを再取得しても解決しません。",
                );
                push_line(body, "対処方法:");
                push_line(
                    body,
                    "ネクストエンジンのご契約の状況 (ご利用料金のお支払いなど) と、ネクストエンジンのアプリの利用状況 \
                     (このアプリの利用が停止・解約されていないか) を確認してください。\
                     停止の理由はネクストエンジンのメッセージ (下の「詳細」) に書かれています。\
                     ご不明な点はネクストエンジンの窓口にお問い合わせください。",
                );
                push_line(
                    body,
                    "在庫の増減は保存されています。利用が再開された後の実行で、このファイルをアップロードします。",
                );
                push_line(body, format!("詳細: {detail}"));
                if let Some(batch_id) = batch_id {
                    push_line(body, format!("バッチID: {batch_id}"));
                }
            }
            UploadSection::Failed { batch_id, reason } => {
                push_line(body, "ネクストエンジンへのアップロードに失敗しました。");
                push_line(body, format!("原因: {reason}"));
                push_line(
                    body,
                    "在庫の増減は保存されています。次回の実行で再試行します。",
                );
                if let Some(batch_id) = batch_id {
                    push_line(body, format!("バッチID: {batch_id}"));
                }
            }
            UploadSection::Unresolved { batch_id, reason } => {
                push_line(
                    body,
                    "アップロードの結果を確認できませんでした (ネクストエンジンが受け付けたかどうか確認中です)。",
                );
                push_line(body, format!("原因: {reason}"));
                push_line(
                    body,
                    "次回の実行で、ネクストエンジンのアップロードキューを確認してから送信します。\
                     同じファイルが二重にアップロードされることはありません。",
                );
                push_line(body, format!("バッチID: {batch_id}"));
            }
        }
    }
}

impl ParkReason {
    /// A short label and what the operator should do about such lines.
    fn explanation(self) -> (&'static str, &'static str) {
        match self {
            ParkReason::NotRegistered => (
                "未登録商品",
                "ネクストエンジンに登録されていない商品コードです。\
                 ネクストエンジンに商品を登録してください。登録後の在庫は手動で調整してください。",
            ),
            ParkReason::InvalidCode => (
                "商品コード不正",
                "ネクストエンジンの商品コードに使えない文字を含むか、30文字を超えています \
                 (使えるのは半角英数字と「-」「_」のみ)。商品コードを修正し、在庫は手動で調整してください。",
            ),
            ParkReason::Unmapped => (
                "対応付けなし",
                "スマレジの商品IDに対応するネクストエンジンの商品コードがありません。\
                 管理画面で商品の対応付けを確認し、在庫は手動で調整してください。",
            ),
        }
    }

    /// Unmapped lines carry the Smaregi product id, the others a goods code.
    fn code_label(self) -> &'static str {
        match self {
            ParkReason::Unmapped => "商品ID",
            ParkReason::NotRegistered | ParkReason::InvalidCode => "商品コード",
        }
    }
}

fn render_parked(body: &mut String, parked: &[ParkedLine]) {
    if parked.is_empty() {
        return;
    }
    push_line(body, "");
    push_line(
        body,
        format!("アップロードしなかった在庫の増減 ({}件):", parked.len()),
    );
    for reason in [
        ParkReason::NotRegistered,
        ParkReason::InvalidCode,
        ParkReason::Unmapped,
    ] {
        let lines: Vec<_> = parked.iter().filter(|line| line.reason == reason).collect();
        if lines.is_empty() {
            continue;
        }
        let (label, advice) = reason.explanation();
        push_line(body, format!("【{label}】{advice}"));
        for line in lines {
            push_line(
                body,
                format!(
                    "  ・{}:{} 増減:{:+}",
                    reason.code_label(),
                    line.goods_code,
                    line.delta
                ),
            );
        }
    }
}

impl PreviousSection {
    fn status(&self) -> String {
        match self {
            PreviousSection::Nothing => "なし".into(),
            PreviousSection::Error { .. } => "失敗".into(),
            PreviousSection::Results { results } if results.is_empty() => "なし".into(),
            PreviousSection::Results { results } => {
                let failed: Vec<&str> = results
                    .iter()
                    .filter(|r| matches!(r.outcome, QueueOutcome::Failed { .. }))
                    .map(|r| r.que_id.as_str())
                    .collect();
                if !failed.is_empty() {
                    format!("失敗(キューID:{})", failed.join(","))
                } else if results
                    .iter()
                    .any(|r| matches!(r.outcome, QueueOutcome::Overdue { .. }))
                {
                    "遅延".into()
                } else {
                    "成功".into()
                }
            }
        }
    }

    fn render_into(&self, body: &mut String) {
        match self {
            PreviousSection::Nothing => push_line(body, "なし"),
            PreviousSection::Results { results } if results.is_empty() => push_line(body, "なし"),
            PreviousSection::Results { results } => {
                for result in results {
                    result.render_into(body);
                }
            }
            PreviousSection::Error { reason } => {
                push_line(
                    body,
                    "ネクストエンジンの処理結果を確認できませんでした。次回の実行で再度確認します。",
                );
                push_line(body, format!("原因: {reason}"));
            }
        }
    }
}

impl QueueResult {
    fn render_into(&self, body: &mut String) {
        let que_id = &self.que_id;
        match &self.outcome {
            QueueOutcome::Succeeded => push_line(body, format!("キューID {que_id}: 成功")),
            QueueOutcome::Overdue { minutes } => push_line(
                body,
                format!(
                    "キューID {que_id}: 遅延 (アップロードから{minutes}分たっても、ネクストエンジンでの処理が終わっていません。次回の実行で再度確認します)"
                ),
            ),
            QueueOutcome::Failed {
                row_errors,
                raw_message,
                rows,
            } => {
                push_line(body, format!("キューID {que_id}: 失敗"));
                render_row_errors(body, row_errors, raw_message);
                render_failure_advice(body, que_id, row_errors, rows);
            }
        }
        if let Some(decision) = &self.decision {
            push_line(body, format!("  {}", describe_decision(decision)));
        }
    }
}

/// The 要確認 resolution as the report and the history page tell it.
pub fn describe_decision(decision: &crate::upload_batch::OperatorDecision) -> String {
    use crate::upload_batch::DecisionAction;
    let action = match decision.action {
        DecisionAction::TreatAsUploaded => "「アップロード済みとして扱う」",
        DecisionAction::Reupload => "「再アップロードする」",
    };
    format!(
        "要確認として保留していたファイルです。{} が {} に{}を選びました",
        decision.by,
        crate::time::to_jst(decision.at).format("%Y-%m-%d %H:%M"),
        action
    )
}

fn render_row_errors(body: &mut String, row_errors: &[RowError], raw_message: &str) {
    if row_errors.is_empty() {
        let raw_message = raw_message.trim();
        if raw_message.is_empty() {
            push_line(
                body,
                "  ネクストエンジンからエラーの内容は返されませんでした。",
            );
        } else {
            push_line(
                body,
                format!("  ネクストエンジンのメッセージ: {raw_message}"),
            );
        }
        return;
    }
    // Free-stock refusals are listed apart: the operator checks allocations
    // there, not the goods master, and usually uploads nothing again.
    let (free_stock, others): (Vec<&RowError>, Vec<&RowError>) = row_errors
        .iter()
        .partition(|e| e.kind() == RowErrorKind::FreeStock);
    for (title, errors) in [
        ("  エラーになった行:", others),
        ("  フリー在庫不足で取り込まれなかった行:", free_stock),
    ] {
        if errors.is_empty() {
            continue;
        }
        push_line(body, title);
        for error in errors {
            let mut line = String::from("  ・");
            if let Some(number) = error.line {
                line.push_str(&format!("{number}行目 "));
            }
            if let Some(code) = &error.goods_code {
                line.push_str(&format!("商品コード:{code} "));
            }
            line.push_str(&error.message);
            push_line(body, line);
        }
    }
}

fn render_failure_advice(
    body: &mut String,
    que_id: &str,
    row_errors: &[RowError],
    rows: &[RowVerdict],
) {
    let free_stock = row_errors
        .iter()
        .any(|e| e.kind() == RowErrorKind::FreeStock);
    // Without parsed rows the cause is unknown, so the common one is named.
    let others = row_errors.is_empty()
        || row_errors
            .iter()
            .any(|e| e.kind() != RowErrorKind::FreeStock);
    let FateCounts {
        applied,
        not_applied,
        unknown,
        ..
    } = FateCounts::of(rows);
    let resend = unapplied_lines(rows, false).len();
    let resend_with_free_stock = unapplied_lines(rows, true).len();
    push_line(body, "  対処方法:");
    if others {
        push_line(
            body,
            "  ・「○○は必須です」とある行は、ネクストエンジンに未登録の商品です。エラーになった商品コードの商品をネクストエンジンに登録してください。",
        );
    }
    if free_stock {
        push_line(
            body,
            format!(
                "  ・フリー在庫不足の行 (「{FREE_STOCK_TEXT}」) は、ネクストエンジンのフリー在庫数を超えて減らそうとしたため取り込まれなかった行です (フリー在庫数 = 在庫数 − 引当数)。\
                 商品の登録の問題ではありません。ネクストエンジンで、その商品の在庫数と引当数 (どの受注に引き当てられているか) を確認してください。"
            ),
        );
        push_line(
            body,
            "  ・引当が正しく、この減少がその受注の分 (ウェブの受注の商品をスマレジで出荷した場合など) であれば、ネクストエンジンの在庫はその受注の出荷確定で減ります。\
             この行を再アップロードする必要はありません (再アップロードしても同じ理由で取り込まれません)。",
        );
        push_line(
            body,
            "  ・店頭での販売などで実際の在庫が引当数を下回っている場合は、在庫が足りなくなる受注がないか確認し、ネクストエンジンで引当を調整してから在庫数を手動で調整してください。",
        );
    }
    if rows.is_empty() {
        push_line(
            body,
            "  ・どの行が反映されたかは記録されていません。ネクストエンジンで在庫数を確認してから対処してください。",
        );
    }
    if applied > 0 {
        push_line(
            body,
            format!(
                "  ・エラーのなかった行のうち {applied} 行は、ネクストエンジンの入出庫履歴で反映を確認しました。ファイル全体を再アップロードすると、その行の在庫が二重に計上されます。"
            ),
        );
    }
    if not_applied > 0 {
        push_line(
            body,
            format!(
                "  ・エラーのなかった行のうち {not_applied} 行は反映されていません (ネクストエンジンの入出庫履歴に記録がありません。ファイル全体が取り込まれなかったと考えられます)。"
            ),
        );
    }
    if unknown > 0 {
        push_line(
            body,
            format!(
                "  ・エラーのなかった行 {unknown} 行は、ネクストエンジンの入出庫履歴を読めなかったため、反映されたかどうかを確認できませんでした。\
                 ネクストエンジンで在庫数を確認してください。二重に計上しないよう、この行は再アップロードの対象にしていません。"
            ),
        );
    }
    if resend_with_free_stock > 0 {
        push_line(
            body,
            format!(
                "  ・エラーの原因を解消した後 (商品の登録など)、管理画面の「アップロード履歴」でこのファイルの「未反映の行を再アップロード」を押してください。\
                 反映されていない行 ({resend} 行) だけが、一度だけアップロードされます。手動でアップロードする場合は、このメールに添付の failed_rows_{que_id}.csv (反映されていない行だけのファイル) を使ってください。"
            ),
        );
        if resend_with_free_stock > resend {
            push_line(
                body,
                "  ・フリー在庫不足の行は、引当を調整したうえで「フリー在庫不足の行も含める」を選んだときだけ再アップロードします。",
            );
        }
    }
    push_line(
        body,
        format!(
            "  ・アップロードしたCSVファイルは、キューID {que_id} をアップロードした回の通知メールに添付されています。"
        ),
    );
}

impl OrderSection {
    fn is_empty(&self) -> bool {
        self.imported.is_empty()
            && self.failed.is_empty()
            && self.cancelled_after_import.is_empty()
            && self.error.is_none()
    }

    fn status(&self) -> &'static str {
        if self.error.is_some() || !self.failed.is_empty() {
            "エラー発生"
        } else if !self.imported.is_empty() {
            "成功"
        } else {
            "なし"
        }
    }

    fn render_into(&self, body: &mut String) {
        if self.is_empty() {
            push_line(body, "なし");
            return;
        }
        if let Some(error) = &self.error {
            push_line(body, "受注取込を実行できませんでした。");
            push_line(body, format!("原因: {error}"));
        }
        if !self.imported.is_empty() {
            push_line(
                body,
                format!(
                    "スマレジに出荷として登録した受注 ({}件):",
                    self.imported.len()
                ),
            );
            for order in &self.imported {
                push_line(body, format!("  ・{}", describe_imported(order)));
            }
        }
        if !self.failed.is_empty() {
            push_line(
                body,
                format!(
                    "スマレジに登録できなかった受注 ({}件): スマレジ管理画面の 在庫 > 在庫情報 > 出荷登録 から手動で登録してください。",
                    self.failed.len()
                ),
            );
            for order in &self.failed {
                push_line(
                    body,
                    format!(
                        "  ・伝票番号:{} 受注番号:{} 原因:{}",
                        order.receive_order_id, order.shop_order_no, order.reason
                    ),
                );
                for (goods_code, quantity) in &order.lines {
                    push_line(
                        body,
                        format!("      商品コード:{goods_code} 数量:{quantity}"),
                    );
                }
            }
        }
        if !self.cancelled_after_import.is_empty() {
            push_line(
                body,
                format!(
                    "取込後にネクストエンジンでキャンセルされた受注 ({}件): スマレジの出荷は自動では取り消されません。\
                     スマレジ管理画面で該当の出荷IDの出荷を取り消してください (出荷による増減はネクストエンジンに通知されないため、二重には計上されません)。",
                    self.cancelled_after_import.len()
                ),
            );
            for order in &self.cancelled_after_import {
                push_line(body, format!("  ・{}", describe_imported(order)));
            }
        }
    }
}

fn describe_imported(order: &ImportedOrder) -> String {
    format!(
        "伝票番号:{} 受注番号:{} 出荷ID:{} ({}明細)",
        order.receive_order_id, order.shop_order_no, order.shipment_id, order.lines
    )
}

fn push_heading(body: &mut String, title: &str) {
    push_line(body, "");
    push_line(body, format!("■ {title}"));
}

fn push_line(body: &mut String, line: impl AsRef<str>) {
    body.push_str(line.as_ref());
    body.push('\n');
}

/// Words of a subject an operator must act on (manual §1: 件名に「失敗」や
/// 「エラー発生」と表示がある場合).
const ALARMING: [&str; 3] = ["失敗", "エラー", "要確認"];

/// Several reports of one tenant as one mail, oldest first: the runs for
/// stored changes leave their reports to the next scheduled run, which sends
/// all that are waiting at once. The subject is the first alarming one (so
/// 「失敗」 stays in the subject the manual tells operators to look at), else
/// the newest, with the count of the others; the body holds every report whole.
pub fn digest(reports: &[RenderedReport]) -> Option<RenderedReport> {
    let (newest, older) = reports.split_last()?;
    if older.is_empty() {
        return Some(newest.clone());
    }
    let lead = reports
        .iter()
        .find(|r| ALARMING.iter().any(|word| r.subject.contains(word)))
        .unwrap_or(newest);
    let mut body = String::new();
    push_line(
        &mut body,
        format!("{}回分の実行結果をまとめてお知らせします。", reports.len()),
    );
    for (n, report) in reports.iter().enumerate() {
        push_line(&mut body, "");
        push_line(
            &mut body,
            format!("==== {}/{} {} ====", n + 1, reports.len(), report.subject),
        );
        body.push_str(&report.body);
        if !report.body.ends_with('\n') {
            body.push('\n');
        }
    }
    Some(RenderedReport {
        subject: format!("{} ほか{}件", lead.subject, older.len()),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row_application::RowFate;

    fn report(upload: UploadSection, previous: PreviousSection) -> RunReport {
        RunReport {
            tenant_name: "店名".into(),
            run_at: crate::time::from_jst(
                crate::time::parse_api_time("2026-11-27 10:00:00").unwrap(),
            ),
            upload,
            previous,
            orders: None,
            notices: Vec::new(),
            drift: None,
        }
    }

    fn quiet() -> RunReport {
        report(
            UploadSection::Nothing { parked: Vec::new() },
            PreviousSection::Nothing,
        )
    }

    fn uploaded(parked: Vec<ParkedLine>) -> UploadSection {
        UploadSection::Uploaded {
            batch_id: "b-1".into(),
            que_id: "12346".into(),
            products: 3,
            changes: 7,
            csv_file_name: "stock_20261127100000.csv".into(),
            download_url: Some("https://admin.example.test/history/batches/b-1/csv".into()),
            parked,
        }
    }

    fn result(que_id: &str, outcome: QueueOutcome) -> QueueResult {
        QueueResult {
            que_id: que_id.into(),
            batch_id: format!("batch-{que_id}"),
            outcome,
            decision: None,
        }
    }

    fn verdict(code: &str, delta: i64, fate: RowFate) -> RowVerdict {
        RowVerdict {
            goods_code: code.into(),
            delta,
            fate,
            free_stock: false,
        }
    }

    /// ABC-002 refused; ABC-001 applied or not, as the history showed.
    fn failed(good_row: RowFate) -> QueueOutcome {
        QueueOutcome::Failed {
            row_errors: vec![
                RowError {
                    line: Some(3),
                    goods_code: Some("ABC-002".into()),
                    message:
                        "仕入先コードは必須です。商品名は必須です。原価は必須です。売価は必須です。"
                            .into(),
                },
                RowError {
                    line: None,
                    goods_code: None,
                    message: "その他のエラー".into(),
                },
            ],
            raw_message: "3行目: 仕入先コードは必須です。…".into(),
            rows: vec![
                verdict("ABC-001", -1, good_row),
                verdict("ABC-002", 2, RowFate::Refused),
            ],
        }
    }

    fn results(results: Vec<QueueResult>) -> PreviousSection {
        PreviousSection::Results { results }
    }

    fn succeeded(que_id: &str) -> PreviousSection {
        results(vec![result(que_id, QueueOutcome::Succeeded)])
    }

    #[test]
    fn subject_on_a_token_error() {
        let r = report(
            UploadSection::TokenError {
                batch_id: "b-1".into(),
                detail: "002002".into(),
            },
            succeeded("1"),
        );
        let rendered = r.render();
        assert_eq!(
            rendered.subject,
            "【スマレジtoネクストエンジン】店名 アップロード:失敗 処理結果:成功"
        );
        assert!(rendered.body.contains(TOKEN_ERROR_TEXT));
        assert!(
            rendered
                .body
                .contains("トークンの再取得欄で「再取得」ボタンをクリック")
        );
        assert!(
            rendered
                .body
                .contains("次回の実行でこのファイルをアップロードします")
        );
    }

    #[test]
    fn subject_with_the_order_import_on() {
        let mut r = report(uploaded(Vec::new()), succeeded("1"));
        r.orders = Some(OrderSection {
            error: Some("スマレジAPIに接続できません".into()),
            ..OrderSection::default()
        });
        assert_eq!(
            r.render().subject,
            "【スマレジtoネクストエンジン】店名 アップロード:成功 処理結果:成功 受注取込:エラー発生"
        );
    }

    #[test]
    fn a_failed_result_names_its_queue_ids() {
        let r = report(
            uploaded(Vec::new()),
            results(vec![result("12345", failed(RowFate::Applied))]),
        );
        assert!(
            r.render()
                .subject
                .ends_with("処理結果:失敗(キューID:12345)")
        );
        let r = report(
            uploaded(Vec::new()),
            results(vec![
                result("12345", failed(RowFate::Applied)),
                result("12346", QueueOutcome::Succeeded),
                result("12347", failed(RowFate::NotApplied)),
            ]),
        );
        assert!(
            r.render()
                .subject
                .ends_with("処理結果:失敗(キューID:12345,12347)")
        );
    }

    #[test]
    fn upload_and_result_states() {
        let subject = |upload, previous| report(upload, previous).render().subject;
        let nothing = || UploadSection::Nothing { parked: Vec::new() };
        assert!(
            subject(nothing(), PreviousSection::Nothing)
                .ends_with("アップロード:なし 処理結果:なし")
        );
        assert!(
            subject(
                UploadSection::Failed {
                    batch_id: None,
                    reason: "x".into()
                },
                PreviousSection::Error { reason: "y".into() }
            )
            .ends_with("アップロード:失敗 処理結果:失敗")
        );
        assert!(
            subject(
                UploadSection::Unresolved {
                    batch_id: "b".into(),
                    reason: "timeout".into()
                },
                results(vec![
                    result("1", QueueOutcome::Succeeded),
                    result("2", QueueOutcome::Overdue { minutes: 90 })
                ])
            )
            .ends_with("アップロード:確認中 処理結果:遅延")
        );
    }

    #[test]
    fn order_import_states() {
        let status = |orders: OrderSection| orders.status();
        let order = ImportedOrder {
            receive_order_id: "1001".into(),
            shop_order_no: "A-1".into(),
            shipment_id: "55".into(),
            lines: 2,
        };
        assert_eq!(status(OrderSection::default()), "なし");
        assert_eq!(
            status(OrderSection {
                imported: vec![order.clone()],
                ..Default::default()
            }),
            "成功"
        );
        assert_eq!(
            status(OrderSection {
                imported: vec![order],
                failed: vec![FailedOrder {
                    receive_order_id: "1002".into(),
                    shop_order_no: "A-2".into(),
                    reason: "商品が見つかりません".into(),
                    lines: vec![("ABC-001".into(), 2)],
                }],
                ..Default::default()
            }),
            "エラー発生"
        );
    }

    #[test]
    fn the_upload_section_says_where_the_file_is() {
        let body = report(uploaded(Vec::new()), PreviousSection::Nothing)
            .render()
            .body;
        for expected in [
            "■ アップロード",
            "キューID: 12346",
            "商品数: 3件",
            "7件",
            "stock_20261127100000.csv (このメールに添付しています)",
            "ダウンロード (管理画面へのログインが必要です): https://admin.example.test/history/batches/b-1/csv",
            "■ 前回の処理結果\nなし",
            "2026-11-27 10:00:00",
        ] {
            assert!(body.contains(expected), "{expected} missing in\n{body}");
        }
    }

    #[test]
    fn parked_lines_are_listed_per_reason() {
        let parked = vec![
            ParkedLine {
                goods_code: "NEW-1".into(),
                delta: -2,
                reason: ParkReason::NotRegistered,
            },
            ParkedLine {
                goods_code: "商品2".into(),
                delta: 3,
                reason: ParkReason::InvalidCode,
            },
            ParkedLine {
                goods_code: "8000003".into(),
                delta: -1,
                reason: ParkReason::Unmapped,
            },
        ];
        let body = report(UploadSection::Nothing { parked }, PreviousSection::Nothing)
            .render()
            .body;
        for expected in [
            "ネクストエンジンに商品を登録してください。登録後の在庫は手動で調整してください",
            "商品コード:NEW-1 増減:-2",
            "商品コード:商品2 増減:+3",
            "商品ID:8000003 増減:-1",
        ] {
            assert!(body.contains(expected), "{expected} missing in\n{body}");
        }
    }

    #[test]
    fn failed_results_list_row_errors_and_what_to_do() {
        let body = report(
            quiet().upload,
            results(vec![result("12345", failed(RowFate::Applied))]),
        )
        .render()
        .body;
        for expected in [
            "キューID 12345: 失敗",
            "3行目 商品コード:ABC-002 仕入先コードは必須です。",
            "・その他のエラー",
            "ネクストエンジンに登録してください",
            "エラーのなかった行のうち 1 行は、ネクストエンジンの入出庫履歴で反映を確認しました",
            "二重に計上されます",
            "「未反映の行を再アップロード」",
            "反映されていない行 (1 行) だけが、一度だけアップロードされます",
            "キューID 12345 をアップロードした回の通知メールに添付されています",
        ] {
            assert!(body.contains(expected), "{expected} missing in\n{body}");
        }

        let body = report(
            quiet().upload,
            results(vec![result("12345", failed(RowFate::NotApplied))]),
        )
        .render()
        .body;
        assert!(
            body.contains("エラーのなかった行のうち 1 行は反映されていません"),
            "{body}"
        );
        assert!(body.contains("反映されていない行 (2 行)"), "{body}");
        assert!(!body.contains("二重に計上"), "{body}");
    }

    #[test]
    fn rows_whose_fate_is_unknown_are_not_offered_for_re_upload() {
        let body = report(
            quiet().upload,
            results(vec![result("12345", failed(RowFate::Unknown))]),
        )
        .render()
        .body;
        for expected in [
            "エラーのなかった行 1 行は、ネクストエンジンの入出庫履歴を読めなかったため",
            "この行は再アップロードの対象にしていません",
            "反映されていない行 (1 行)",
        ] {
            assert!(body.contains(expected), "{expected} missing in\n{body}");
        }
    }

    fn free_stock_row(line: u32, code: &str) -> RowError {
        RowError {
            line: Some(line),
            goods_code: Some(code.into()),
            message: "フリー在庫数以上の在庫を減らすことはできません。".into(),
        }
    }

    #[test]
    fn free_stock_errors_are_their_own_case() {
        let outcome = QueueOutcome::Failed {
            row_errors: vec![free_stock_row(5, "ABC-004")],
            raw_message: String::new(),
            rows: vec![
                verdict("ABC-003", 1, RowFate::Applied),
                RowVerdict {
                    free_stock: true,
                    ..verdict("ABC-004", -9, RowFate::Refused)
                },
            ],
        };
        let body = report(quiet().upload, results(vec![result("9", outcome)]))
            .render()
            .body;
        for expected in [
            "フリー在庫不足で取り込まれなかった行:\n  ・5行目 商品コード:ABC-004 フリー在庫数以上",
            "フリー在庫数を超えて減らそうとした",
            "商品の登録の問題ではありません",
            "在庫数と引当数",
            "この行を再アップロードする必要はありません",
            "引当を調整してから在庫数を手動で調整",
            "ファイル全体を再アップロードすると、その行の在庫が二重に計上されます",
            "反映されていない行 (0 行)",
            "「フリー在庫不足の行も含める」を選んだときだけ",
        ] {
            assert!(body.contains(expected), "{expected} missing in\n{body}");
        }
        // Nothing in it points to the goods master.
        for unexpected in ["エラーになった行:", "未登録の商品"] {
            assert!(!body.contains(unexpected), "{unexpected} in\n{body}");
        }
    }

    #[test]
    fn free_stock_and_unknown_goods_rows_are_listed_apart() {
        let QueueOutcome::Failed {
            mut row_errors,
            raw_message,
            ..
        } = failed(RowFate::NotApplied)
        else {
            unreachable!()
        };
        row_errors.insert(0, free_stock_row(2, "ABC-001"));
        let outcome = QueueOutcome::Failed {
            row_errors,
            raw_message,
            rows: vec![
                RowVerdict {
                    free_stock: true,
                    ..verdict("ABC-001", -1, RowFate::Refused)
                },
                verdict("ABC-002", 2, RowFate::Refused),
                verdict("ABC-003", 4, RowFate::NotApplied),
            ],
        };
        let body = report(quiet().upload, results(vec![result("9", outcome)]))
            .render()
            .body;
        let unknown = body
            .find("  エラーになった行:\n  ・3行目 商品コード:ABC-002")
            .expect(&body);
        let free = body
            .find("  フリー在庫不足で取り込まれなかった行:\n  ・2行目 商品コード:ABC-001")
            .expect(&body);
        let advice = body.find("  対処方法:").unwrap();
        assert!(unknown < free && free < advice, "{body}");
        for expected in [
            "ネクストエンジンに未登録の商品です",
            "フリー在庫数を超えて減らそうとした",
            "エラーのなかった行のうち 1 行は反映されていません",
            "反映されていない行 (2 行)",
            "「フリー在庫不足の行も含める」",
        ] {
            assert!(body.contains(expected), "{expected} missing in\n{body}");
        }
    }

    #[test]
    fn overdue_results_give_their_age() {
        let body = report(
            quiet().upload,
            results(vec![result("7", QueueOutcome::Overdue { minutes: 45 })]),
        )
        .render()
        .body;
        assert!(body.contains("キューID 7: 遅延"));
        assert!(body.contains("45分"));
    }

    #[test]
    fn a_suspended_account_has_its_own_text_not_the_token_one() {
        let r = report(
            UploadSection::Suspended {
                batch_id: Some("b-9".into()),
                detail: "NextEngine account suspended (002003): [店]様のネクストエンジンが、次の理由により利用停止になっています。[未払い]".into(),
            },
            PreviousSection::Nothing,
        );
        let rendered = r.render();
        assert!(
            rendered.subject.contains("アップロード:失敗"),
            "{}",
            rendered.subject
        );
        let body = rendered.body;
        for expected in [
            SUSPENDED_TEXT,
            "再取得しても解決しません",
            "ご契約の状況",
            "アプリの利用状況",
            "利用停止になっています。[未払い]",
            "バッチID: b-9",
        ] {
            assert!(body.contains(expected), "{expected} missing in\n{body}");
        }
        assert!(!body.contains(TOKEN_ERROR_TEXT), "{body}");
        assert!(!body.contains("「再取得」ボタン"), "{body}");
    }

    #[test]
    fn failed_and_unresolved_uploads_say_what_happens_next() {
        let failed = report(
            UploadSection::Failed {
                batch_id: Some("b".into()),
                reason: "接続できません".into(),
            },
            PreviousSection::Nothing,
        );
        let body = failed.render().body;
        assert!(body.contains("接続できません") && body.contains("次回の実行で再試行します"));

        let unresolved = report(
            UploadSection::Unresolved {
                batch_id: "b".into(),
                reason: "タイムアウト".into(),
            },
            PreviousSection::Nothing,
        );
        let body = unresolved.render().body;
        assert!(body.contains("タイムアウト"));
        assert!(body.contains("アップロードキューを確認してから送信します"));
    }

    #[test]
    fn order_section_is_left_out_when_the_import_is_off() {
        let r = report(uploaded(Vec::new()), succeeded("1"));
        let rendered = r.render();
        assert!(!rendered.subject.contains("受注取込"));
        assert!(!rendered.body.contains("受注取込"));

        let mut r = r;
        r.orders = Some(OrderSection::default());
        let rendered = r.render();
        assert!(rendered.subject.ends_with("受注取込:なし"));
        assert!(rendered.body.contains("■ 受注取込\nなし"));
    }

    #[test]
    fn order_section_lists_every_order() {
        let mut r = quiet();
        r.orders = Some(OrderSection {
            imported: vec![ImportedOrder {
                receive_order_id: "1001".into(),
                shop_order_no: "A-1".into(),
                shipment_id: "55".into(),
                lines: 2,
            }],
            failed: vec![FailedOrder {
                receive_order_id: "1002".into(),
                shop_order_no: "A-2".into(),
                reason: "商品が見つかりません".into(),
                lines: vec![("ABC-001".into(), 2), ("ABC-009".into(), 1)],
            }],
            cancelled_after_import: vec![ImportedOrder {
                receive_order_id: "990".into(),
                shop_order_no: "A-0".into(),
                shipment_id: "40".into(),
                lines: 1,
            }],
            error: None,
        });
        let body = r.render().body;
        for expected in [
            "伝票番号:1001 受注番号:A-1 出荷ID:55",
            "伝票番号:1002 受注番号:A-2 原因:商品が見つかりません",
            "商品コード:ABC-001 数量:2",
            "商品コード:ABC-009 数量:1",
            "出荷登録",
            "キャンセルされた受注 (1件)",
            "伝票番号:990 受注番号:A-0 出荷ID:40",
        ] {
            assert!(body.contains(expected), "{expected} missing in\n{body}");
        }
    }

    #[test]
    fn notices_come_last() {
        let mut r = report(uploaded(Vec::new()), PreviousSection::Nothing);
        r.notices = vec!["店舗1 商品2: 初めて受信した在庫数のため基準値として記録しました".into()];
        let body = r.render().body;
        let notices_at = body.find("■ お知らせ").expect("notices heading");
        assert!(body[notices_at..].contains("・店舗1 商品2"));
        assert!(body.find("■ 前回の処理結果").unwrap() < notices_at);
    }

    #[test]
    fn rows_that_cannot_be_told_from_a_resend_are_a_notice_to_check() {
        let mut r = quiet();
        r.notices =
            vec![crate::complete::CompletionNote::Indistinguishable { count: 3 }.describe()];
        assert!(r.is_worth_sending());
        let body = r.render().body;
        let notices_at = body.find("■ お知らせ").expect("notices heading");
        let notice = &body[notices_at..];
        assert!(
            notice.contains("・【要確認】再送と区別できない在庫変動 3件"),
            "{body}"
        );
        assert!(notice.contains("在庫変動履歴の読み取り"), "{body}");
    }

    #[test]
    fn a_quiet_run_is_not_worth_an_email() {
        let mut r = quiet();
        assert!(!r.is_worth_sending());
        r.orders = Some(OrderSection::default());
        assert!(!r.is_worth_sending());
        r.previous = results(Vec::new());
        assert!(!r.is_worth_sending());
    }

    #[test]
    fn anything_happening_is_worth_an_email() {
        fn quiet_but(change: impl FnOnce(&mut RunReport)) -> RunReport {
            let mut r = quiet();
            change(&mut r);
            r
        }
        let parked = vec![ParkedLine {
            goods_code: "X".into(),
            delta: 1,
            reason: ParkReason::Unmapped,
        }];
        let cancelled = ImportedOrder {
            receive_order_id: "1".into(),
            shop_order_no: "2".into(),
            shipment_id: "3".into(),
            lines: 1,
        };
        let reports = [
            quiet_but(|r| r.upload = uploaded(Vec::new())),
            quiet_but(|r| r.upload = UploadSection::Nothing { parked }),
            quiet_but(|r| {
                r.upload = UploadSection::Failed {
                    batch_id: None,
                    reason: "x".into(),
                }
            }),
            quiet_but(|r| r.previous = succeeded("1")),
            quiet_but(|r| r.previous = PreviousSection::Error { reason: "x".into() }),
            quiet_but(|r| r.notices.push("注意".into())),
            quiet_but(|r| {
                r.orders = Some(OrderSection {
                    error: Some("x".into()),
                    ..Default::default()
                })
            }),
            quiet_but(|r| {
                r.orders = Some(OrderSection {
                    cancelled_after_import: vec![cancelled],
                    ..Default::default()
                })
            }),
        ];
        for (index, report) in reports.iter().enumerate() {
            assert!(report.is_worth_sending(), "case {index}");
        }
    }

    #[test]
    fn a_digest_keeps_every_report_and_an_alarming_subject() {
        let r = |subject: &str, body: &str| RenderedReport {
            subject: format!("{SUBJECT_PREFIX}店 {subject}"),
            body: body.into(),
        };
        assert_eq!(digest(&[]), None);
        let one = r("アップロード:成功 処理結果:なし", "一件\n");
        assert_eq!(digest(std::slice::from_ref(&one)), Some(one.clone()));
        let reports = [
            one.clone(),
            r("アップロード:失敗 処理結果:なし", "二件\n"),
            r("アップロード:成功 処理結果:成功", "三件"),
        ];
        let got = digest(&reports).unwrap();
        assert_eq!(
            got.subject,
            format!("{SUBJECT_PREFIX}店 アップロード:失敗 処理結果:なし ほか2件")
        );
        for (n, body) in ["一件", "二件", "三件"].iter().enumerate() {
            assert!(got.body.contains(body), "{n}: {}", got.body);
        }
        assert!(got.body.starts_with("3回分の実行結果"));
        assert!(
            got.body.find("一件") < got.body.find("三件"),
            "oldest first"
        );
        let calm = digest(&[one, r("アップロード:成功 処理結果:成功", "x")]).unwrap();
        assert!(
            calm.subject
                .ends_with("アップロード:成功 処理結果:成功 ほか1件"),
            "{}",
            calm.subject
        );
    }

    #[test]
    fn a_drift_check_has_its_section_and_subject() {
        use crate::drift::{DriftCheck, InFlight, NeFigures, WebOrders, compare};
        use std::collections::{BTreeMap, HashMap};
        let lines = compare(
            crate::tenant::StockMaster::Smaregi,
            &BTreeMap::from([("A".into(), 5), ("B".into(), 1)]),
            &HashMap::from([(
                "A".into(),
                NeFigures {
                    stock: 8,
                    allocated: 0,
                    free: 8,
                },
            )]),
            &InFlight::default(),
            &WebOrders::NotImported,
        );
        let check = DriftCheck {
            id: "d-1".into(),
            tenant_id: crate::TenantId("t".into()),
            checked_at: quiet().run_at,
            master: crate::tenant::StockMaster::Smaregi,
            goods_compared: 2,
            set_goods_skipped: 1,
            unmapped_products: 0,
            unsettled: vec![],
            lines,
        };
        let mut r = quiet();
        assert!(!r.is_worth_sending());
        r.drift = Some(DriftSection::of(&check, Some("drift_x.csv".into())));
        assert!(r.is_worth_sending());
        let rendered = r.render();
        assert!(
            rendered.subject.ends_with(" 在庫差異:2件"),
            "{}",
            rendered.subject
        );
        assert!(rendered.body.contains("■ 在庫差異"));
        assert!(
            rendered
                .body
                .contains("・A スマレジ5 / ネクストエンジン 在庫数8 引当数0 フリー8 / 差異+3")
        );
        assert!(rendered.body.contains(
            "・B スマレジ1 / ネクストエンジン 未登録 / 差異-1 / 原因: ネクストエンジンに未登録"
        ));
        assert!(
            rendered
                .body
                .contains("drift_x.csv (このメールに添付しています)")
        );
        assert!(
            rendered
                .body
                .contains("「揃える」で1件の商品を補正できます")
        );
        assert!(rendered.body.contains("セット商品 1件"));
        r.drift = Some(DriftSection::Failed { reason: "x".into() });
        assert!(r.render().subject.ends_with(" 在庫差異:失敗"));
    }
}
