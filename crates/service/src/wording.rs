//! Every Japanese text of the service that an operator reads: report notices,
//! the admin screen's titles, flash messages and errors, and the error texts
//! that reach either of them.
//!
//! The wording is reviewed in one place, so it lives in one place: code
//! composes, this file words. Plain texts are constants; a text with values is
//! a small function that only formats them in. The groups follow the data path
//! (the webhook answers Smaregi in codes such as `400 code_mismatch` and has
//! no text here). Texts of tests and of logs stay with them.

use std::fmt::{Debug, Display};

// ---- cursors

pub fn cursor_unreadable(name: impl Display, text: impl Debug) -> String {
    format!("{name} の値を読めません: {text:?}")
}

// ---- stock history

pub const STOCK_HISTORY_NO_CREDENTIALS: &str =
    "スマレジAPIの契約IDとアクセストークンが設定されていません";

pub fn stock_history_not_permitted(error: impl Display) -> String {
    format!(
        "スマレジの在庫変動履歴を読めません。スマレジAPI設定で「在庫情報参照」を「利用する」にしてください: {error}"
    )
}

pub const STOCK_HISTORY_NEEDED_BY_ORDER_IMPORT: &str = "受注数取り込みが有効な間は在庫変動履歴の読み取りを停止できません。先に受注数取り込みを停止してください";

pub const STOCK_HISTORY_NO_CURSOR: &str =
    "在庫変動履歴の読み取り位置がありません。読み取りを設定し直してください";

pub const STOCK_HISTORY_STOPPED: &str = "在庫変動履歴の読み取りを停止しました";

pub const STOCK_HISTORY_ALREADY_ON: &str = "在庫変動履歴の読み取りはすでに有効です";

pub fn stock_history_started(latest_id: impl Display) -> String {
    format!("在庫変動履歴の読み取りを開始しました(履歴ID {latest_id} より後の変動を通知します)")
}

pub fn stock_history_refused_notice(error: impl Display) -> String {
    format!(
        "スマレジが在庫変動履歴の読み取りを受け付けませんでした。スマレジ管理画面 設定 > システム連携 > スマレジAPI設定 で契約ID・アクセストークンと、機能設定の「在庫情報参照」が「利用する」になっていることを確認してください。読み取れるまで在庫の変動は通知されません: {error}"
    )
}

pub fn stock_history_unread_notice(error: impl Display) -> String {
    format!("スマレジの在庫変動履歴を読めませんでした(次回再試行します): {error}")
}

// ---- platform intake (README "Platform API")

pub const PLATFORM_CONTRACT_SUSPENDED: &str = "スマレジ・プラットフォームAPIのアプリ契約が停止しています。契約が再開されるまで在庫の変動は通知されません";

pub const PLATFORM_NO_WATERMARK: &str =
    "プラットフォームAPIの取り込み開始時刻がありません。取り込み経路を切り替え直してください";

pub fn platform_unread_notice(error: impl Display) -> String {
    format!(
        "スマレジ・プラットフォームAPIから在庫変動を読めませんでした(次回再試行します): {error}"
    )
}

pub fn platform_refused_notice(error: impl Display) -> String {
    format!(
        "スマレジ・プラットフォームAPIが読み取りを受け付けませんでした。アプリのインストールとスコープ(pos.stock:read, pos.stock-changes:read)を確認してください。読み取れるまで在庫の変動は通知されません: {error}"
    )
}

pub fn platform_change_not_yet_visible(id: impl Display) -> String {
    format!(
        "在庫変動履歴ID {id} がまだスマレジで読めないため、このファイルは次回の実行で作ります(10分読めなければ要確認として通知します)"
    )
}

pub fn platform_change_not_found(id: u64, product: impl Display, store: impl Display) -> String {
    format!(
        "要確認: 在庫変動履歴ID {id}(商品ID {product}・店舗ID {store})はスマレジで見つからず、通知しませんでした"
    )
}

pub fn platform_contract_unusable(error: impl Display) -> String {
    format!("スマレジ・プラットフォームAPIのアプリがこの契約で使えません: {error}")
}

pub const INTAKE_NEEDS_HISTORY_IDS: &str = "切り替えの境界は在庫変動履歴IDで決めます。先に在庫変動履歴の読み取り(旧API)をオンにしてから切り替えてください";

pub const INTAKE_NEEDS_OLD_CREDENTIALS: &str =
    "旧スマレジAPIの契約ID・アクセストークンが設定されていません";

pub fn intake_platform_unread(error: impl Display) -> String {
    format!(
        "切り替え前にプラットフォームAPIの変動を読み切れませんでした。しばらくしてからやり直してください: {error}"
    )
}

pub const INTAKE_UNKNOWN_CHOICE: &str = "取り込み経路の指定が不正です";

pub const STOCK_HISTORY_NEEDED_BY_PLATFORM: &str = "プラットフォームAPIで取り込んでいる間は在庫変動履歴の読み取りを停止できません。先に取り込み経路を旧APIに戻してください";

pub const INTAKE_ALREADY_PLATFORM: &str = "既にプラットフォームAPIで取り込んでいます";

pub const INTAKE_ALREADY_OLD_API: &str = "既に旧APIで取り込んでいます";

pub fn intake_platform_started(boundary: u64) -> String {
    format!(
        "プラットフォームAPIでの取り込みを開始しました(在庫変動履歴ID {boundary} までは旧APIで、それより後はプラットフォームAPIで通知します)"
    )
}

pub fn intake_old_api_started(resume: u64) -> String {
    format!(
        "旧APIでの取り込みに戻しました(在庫変動履歴ID {resume} より後を旧APIで読み直します。重複は数えません)"
    )
}

// ---- batcher

pub fn other_stores_not_notified(changes: impl Display) -> String {
    format!("連携対象外の店舗の在庫変動 {changes} 件は通知していません")
}

// ---- uploader

pub fn held_uploads_waiting(count: impl Display) -> String {
    format!(
        "要確認のアップロードが {count} 件あります。管理画面の「要確認のアップロード」で「アップロード済みとして扱う」か「再アップロードする」を選んでください(それ以降の在庫変動は通常どおり通知しています)"
    )
}

pub fn upload_unanswered(error: impl Display) -> String {
    format!(
        "ネクストエンジンからの応答がありませんでした({error})。次回の実行でキューを確認してから再送します"
    )
}

pub const UPLOAD_BEING_CHECKED: &str =
    "前回のアップロードの結果をネクストエンジンのキューで確認中です";

pub const UPLOAD_NOT_QUEUED_SENT_AGAIN: &str =
    "ネクストエンジンのキューに見つからないため再送します";

pub fn upload_candidate_queues(que_ids: impl Display) -> String {
    format!("候補のキュー: {que_ids}")
}

pub fn upload_held(batch_id: impl Display, que_ids: impl Display) -> String {
    format!(
        "ファイル {batch_id} のアップロード結果を特定できません(候補のキューID: {que_ids})。二重計上を避けるため自動では再送せず、要確認として保留しました。管理画面の「要確認のアップロード」で確認してください"
    )
}

// ---- checker

pub fn queue_check_failed(error: impl Display) -> String {
    format!("{error}(次回の実行で再確認します)")
}

// ---- run: report notices

pub fn queue_results_partly_unchecked(reason: impl Display) -> String {
    format!(
        "ネクストエンジンの処理結果を一部確認できませんでした。次回の実行で再度確認します: {reason}"
    )
}

pub const TOKEN_EXPIRED_NOTICE: &str = "ネクストエンジンのトークンの有効期限が切れています。管理画面のトークンの再取得欄で「再取得」をクリックしてください";

pub fn token_expiring_notice(refresh_token_end: impl Display) -> String {
    format!(
        "ネクストエンジンのトークンの有効期限({refresh_token_end})が近づいています。期限までに処理が実行されない場合は管理画面で「再取得」をクリックしてください"
    )
}

pub fn next_file_uploaded(
    file_name: impl Display,
    que_id: impl Display,
    products: impl Display,
) -> String {
    format!("続けてファイル {file_name} もアップロードしました(キューID {que_id}、{products} 商品)")
}

// ---- orders: settings

pub const ORDER_IMPORT_STARTED: &str = "受注数取り込みを開始しました";

pub const ORDER_IMPORT_STOPPED: &str = "受注数取り込みを停止しました";

pub const ORDER_IMPORT_NEEDS_STOCK_HISTORY: &str = "受注数取り込みには在庫変動履歴の読み取りが必要です。取り込んだ出荷がネクストエンジンへ二重に通知されないよう、取り込みを止めています。管理画面の設定で「在庫変動履歴の読み取り」を有効にしてください";

pub const ORDER_IMPORT_UNKNOWN_TENANT: &str = "テナントが見つかりません";

pub fn order_import_not_saved(error: impl Display) -> String {
    format!("設定を保存できませんでした: {error}")
}

pub fn order_import_stock_history_started(message: impl Display) -> String {
    format!(
        "{message}。受注数取り込みの出荷が二重に通知されないよう、在庫の増減はスマレジの在庫変動履歴から読み取ります"
    )
}

pub const ORDER_IMPORT_TENANT_KEPT_CHANGING: &str =
    "テナント設定が更新され続けています。もう一度お試しください";

pub const ORDER_IMPORT_CONTRACT_ID_MISSING: &str = "スマレジ契約IDを入力してください";

pub const ORDER_IMPORT_STORE_ID_MISSING: &str = "取り込み先スマレジ側店舗IDを入力してください";

pub const ORDER_IMPORT_ACCESS_TOKEN_MISSING: &str = "スマレジアクセストークンを入力してください";

pub fn order_import_contract_mismatch(
    entered: impl Display,
    own_contract_id: impl Display,
) -> String {
    format!("スマレジ契約ID {entered} はこのアカウントの契約ID ({own_contract_id}) と一致しません")
}

pub const ORDER_IMPORT_STORE_ID_NOT_DIGITS: &str = "取り込み先スマレジ側店舗IDは半角数字で入力してください (スマレジ管理画面 店舗 > 店舗一覧 の店舗ID)";

pub const ORDER_IMPORT_ACCESS_TOKEN_BAD_CHARS: &str =
    "スマレジアクセストークンに使用できない文字が含まれています。コピーした内容を確認してください";

pub const ORDER_IMPORT_SMAREGI_UNREACHABLE: &str =
    "スマレジに接続できませんでした。時間をおいてもう一度「設定」をクリックしてください";

/// `what` is one of the `ORDER_IMPORT_CHECK_*` texts, `message` Smaregi's own.
pub fn order_import_check_refused(what: impl Display, message: impl Display) -> String {
    format!("{what} (スマレジの応答: {message})")
}

pub const ORDER_IMPORT_CHECK_SHIPMENTS: &str = "スマレジ契約ID・スマレジアクセストークンが正しいこと、スマレジ管理画面 設定 > システム連携 > スマレジAPI設定 の「受信機能を利用する」が「利用する」で、機能設定の「24.出荷情報取得」が「利用する」になっていることを確認してください";

pub fn order_import_store_missing(store_id: impl Display) -> String {
    format!(
        "取り込み先スマレジ側店舗ID {store_id} の店舗がスマレジにありません。スマレジ管理画面 店舗 > 店舗一覧 で店舗IDを確認してください"
    )
}

pub fn order_import_store_unchecked(store_id: impl Display) -> String {
    format!(
        "スマレジAPI設定の機能設定で「店舗情報参照」が利用できないため、店舗ID {store_id} を確認できませんでした。店舗IDが正しいことをスマレジ管理画面 店舗 > 店舗一覧 で確認してください(誤っている場合は最初の取り込みで止まり、通知メールでお知らせします)"
    )
}

pub const ORDER_IMPORT_CHECK_STOCK_HISTORY: &str = "受注数取り込みには在庫変動履歴の読み取りが必要です。スマレジAPI設定の機能設定で「在庫情報参照」も「利用する」にしてください";

// ---- orders: import

pub fn order_import_not_begun(error: impl Display) -> String {
    format!("受注取込を開始できませんでした(次回再試行します): {error}")
}

pub fn order_records_unreadable(error: impl Display) -> String {
    format!("受注取込の記録を読めませんでした: {error}")
}

pub fn order_import_store_failed(error: impl Display) -> String {
    format!("保存に失敗しました: {error}")
}

pub const ORDER_IMPORT_NO_CREDENTIALS: &str =
    "スマレジAPIの設定がありません。管理画面で受注数取り込みを設定し直してください";

pub const ORDER_IMPORT_NO_STORE: &str = "取り込み先スマレジ側店舗IDが設定されていません";

pub const ORDER_IMPORT_NO_START_DATE: &str =
    "受注数取り込みの開始日時がありません。設定し直してください";

pub const ORDER_IMPORT_LEASE_LOST: &str =
    "別の実行が受注取込を引き継いだため、この実行を止めました";

pub fn order_import_nextengine_token(error: impl Display) -> String {
    format!(
        "ネクストエンジンの受注の取得中にトークンのエラーが発生しました。管理画面のトークンの再取得欄で「再取得」をクリックしてください ({error})"
    )
}

pub fn order_import_nextengine_unreachable(error: impl Display) -> String {
    format!("ネクストエンジンから受注を取得できませんでした(次回再試行します): {error}")
}

pub fn order_import_smaregi_auth(error: impl Display) -> String {
    format!(
        "スマレジAPIの認証に失敗しました。スマレジアクセストークンと機能設定(17.出荷情報更新・24.出荷情報取得)を確認し、管理画面で受注数取り込みを設定し直してください ({error})"
    )
}

pub fn order_import_smaregi_unreachable(error: impl Display) -> String {
    format!("スマレジに接続できませんでした(次回再試行します): {error}")
}

pub fn order_import_shipment_setting(code: impl Display, message: impl Display) -> String {
    format!(
        "スマレジが出荷登録を受け付けませんでした ({code}): {message}。受注の内容ではなく設定の問題と考えられるため、受注は登録せずに取り込みを止めています。スマレジAPI設定の機能設定「17.出荷情報更新」が「利用する」か、取り込み先スマレジ側店舗IDが正しいかを確認してください"
    )
}

pub const ORDER_NOTHING_TO_SHIP: &str = "出荷する数量がありません";

/// The memo of the Smaregi shipment an order becomes.
pub fn shipment_memo(receive_order_id: impl Display, shop_order_no: impl Display) -> String {
    format!("ネクストエンジン 伝票番号:{receive_order_id} 受注番号:{shop_order_no}")
}

pub const ORDER_SHIPMENT_SKIPPED_BUT_MISSING: &str = "スマレジが登録済みとして処理しましたが、該当する出荷が見つかりません。スマレジ管理画面で出荷を確認してください";

pub fn order_shipment_refused(code: impl Display, message: impl Display) -> String {
    format!("スマレジが出荷登録を受け付けませんでした ({code}): {message}")
}

// ---- held / resend

pub fn batch_not_found(batch_id: impl Display) -> String {
    format!("ファイル {batch_id} が見つかりません")
}

pub fn held_not_held(batch_id: impl Display) -> String {
    format!("ファイル {batch_id} は要確認ではありません(すでに処理されています)")
}

pub const HELD_QUE_ID_NOT_DIGITS: &str = "キューIDは半角数字で入力してください";

pub fn held_que_id_taken(que_id: impl Display) -> String {
    format!("キューID {que_id} は別のアップロードの結果として記録済みです")
}

pub const BATCH_OPERATION_CONFLICT: &str =
    "ほかの操作と重なりました。画面を開き直してもう一度お試しください";

pub fn batch_not_saved(error: impl Display) -> String {
    format!("保存できませんでした: {error}")
}

pub fn resend_not_failed(batch_id: impl Display) -> String {
    format!("ファイル {batch_id} はネクストエンジンで失敗したファイルではありません")
}

pub fn resend_already_done(batch_id: impl Display, follow_up: impl Display) -> String {
    format!(
        "ファイル {batch_id} の未反映の行は、すでにファイル {follow_up} で再アップロードしています"
    )
}

pub fn resend_nothing_unapplied(batch_id: impl Display) -> String {
    format!(
        "ファイル {batch_id} には、反映されていないことを確認できた行がありません(フリー在庫不足の行は「フリー在庫不足の行も含める」を選んだときだけ送ります)"
    )
}

// ---- tenants

pub fn tenant_contract_taken(contract_id: impl Display) -> String {
    format!("契約ID {contract_id} は既に登録されています")
}

pub const TENANT_CONTRACT_ID_INVALID: &str = "契約IDが不正です";

pub const TENANT_ADMIN_EMAIL_INVALID: &str = "管理者メールアドレスが不正です";

pub const TENANT_NOTIFY_EMAILS_INVALID: &str = "通知先メールアドレスが不正です";

pub const TENANT_PASSWORD_TOO_SHORT: &str = "管理者パスワードは8文字以上にしてください";

pub fn nextengine_auth_failed(error: impl Display) -> String {
    format!("ネクストエンジンの認証に失敗しました: {error}")
}

// ---- admin: error pages

pub const PAGE_NOT_FOUND: &str = "お探しのページまたはファイルは見つかりませんでした。";

pub const PAGE_ERROR: &str = "エラーが発生しました。時間をおいてもう一度お試しください。";

pub const FORM_EXPIRED: &str =
    "フォームの有効期限が切れたか、不正な送信です。画面を開き直してもう一度操作してください。";

// ---- admin: login

pub const LOGIN_TITLE: &str = "ログイン";

pub const LOGIN_LOCKED: &str = "ログイン試行回数が多すぎます。しばらくしてから再度お試しください。";

pub const LOGIN_WRONG: &str = "メールアドレスまたはパスワードが正しくありません。";

pub const LOGIN_PAGE_EXPIRED: &str = "ページの有効期限が切れました。もう一度ログインしてください。";

pub const LOGGED_OUT: &str = "ログアウトしました。";

// ---- admin: dashboard

pub const DASHBOARD_TITLE: &str = "ダッシュボード";

/// A wait as operators read it: 「8秒」, 「2分5秒」, 「3時間12分」.
pub fn elapsed(wait: chrono::Duration) -> String {
    let secs = wait.num_seconds().max(0);
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}秒"),
        (0, m, s) => format!("{m}分{s}秒"),
        (h, m, _) => format!("{h}時間{m}分"),
    }
}

pub fn waiting_since(wait: chrono::Duration) -> String {
    format!("{}前から", elapsed(wait))
}

pub fn upload_lag(lag: chrono::Duration, uploaded_at: impl std::fmt::Display) -> String {
    format!("{}({uploaded_at} の送信)", elapsed(lag))
}

pub const PARKED_NOT_REGISTERED: &str = "ネクストエンジンに未登録";

pub const PARKED_INVALID_CODE: &str =
    "商品コードに使えない文字がある (半角英数字・-・_、30文字以内)";

pub const PARKED_UNMAPPED: &str = "商品コードの対応がない";

/// The words a report subject marks a failure with (worded by `sne_domain::report`).
pub const REPORT_SUBJECT_FAILURE_MARKS: [&str; 2] = ["失敗", "エラー発生"];

pub const TO_TOKEN_REACQUIRE: &str = "トークンの再取得へ";

pub const NE_NOT_CONNECTED_TITLE: &str = "ネクストエンジンと接続されていません";

pub const NE_NOT_CONNECTED_DETAIL: &str =
    "「トークンの再取得」欄の「再取得」をクリックし、ネクストエンジンにログインしてください。";

pub const NE_STATUS_NOT_CONNECTED: &str = "未接続";

pub const NE_TOKEN_EXPIRED_TITLE: &str = "ネクストエンジンのトークンの有効期限が切れています";

pub const NE_TOKEN_EXPIRED_DETAIL: &str =
    "在庫をアップロードできません。「再取得」をクリックしてトークンを更新してください。";

pub const NE_STATUS_EXPIRED: &str = "期限切れ";

pub const NE_TOKEN_EXPIRING_TITLE: &str = "ネクストエンジンのトークンの有効期限が近づいています";

pub const NE_TOKEN_EXPIRING_DETAIL: &str =
    "期限が切れる前に「再取得」をクリックしてトークンを更新してください。";

pub const NE_STATUS_EXPIRING: &str = "期限間近";

pub const NE_STATUS_VALID: &str = "有効";

pub const UPLOAD_TOKEN_ERROR_TITLE: &str =
    "ファイルのアップロード中にトークンのエラーが発生しました";

pub const UPLOAD_TOKEN_ERROR_DETAIL: &str = "「再取得」をクリックしてトークンを更新してください。保留中のファイルは次回の実行でアップロードされます。";

pub fn held_upload_title(created_at: impl Display) -> String {
    format!("{created_at} のアップロードが要確認です")
}

pub const HELD_UPLOAD_DETAIL: &str = "ネクストエンジンから応答がなく、どのキューがこのファイルか自動で特定できませんでした。二重に在庫が変わらないよう自動の再送は止めています(それ以降の在庫変動は通常どおり通知しています)。ネクストエンジンのアップロードキューと在庫を確認し、履歴の「要確認のアップロード」で「アップロード済みとして扱う」か「再アップロードする」を選んでください。手動でのアップロードは不要です。";

pub const TO_HELD_UPLOADS: &str = "要確認のアップロードへ";

pub fn queue_failed_rows_title(que_id: impl Display) -> String {
    format!("キューID {que_id} の処理に失敗した行があります")
}

pub const QUEUE_FAILED_ROWS_DETAIL: &str = "ネクストエンジンに未登録の商品などが含まれていました。履歴でエラーの行を確認し、商品をネクストエンジンに登録したうえで、失敗した行をネクストエンジンに手動でアップロードしてください。";

pub const TO_HISTORY_AND_CSV: &str = "履歴とCSVへ";

pub fn indistinguishable_changes_title(count: impl Display) -> String {
    format!("再送と区別できない在庫変動を {count} 件処理しました (要確認)")
}

pub const INDISTINGUISHABLE_CHANGES_DETAIL: &str = "変動日時も履歴IDもない在庫情報は、スマレジの再送と区別できないまま計上しています。二重に計上されていないか、ネクストエンジンの在庫数を確認してください。確実に一度ずつ通知するため、在庫変動履歴の読み取りをおすすめします。";

pub const TO_SETTINGS: &str = "設定へ";

pub const REPORT_NOT_SENT_TITLE: &str = "通知メールを送信できていません";

pub const REPORT_NOT_SENT_DETAIL: &str =
    "次回の実行で再送します。通知先メールアドレスが正しいか設定を確認してください。";

pub fn report_sent_at(sent_at: impl Display) -> String {
    format!("送信済み {sent_at}")
}

pub const REPORT_UNSENT: &str = "未送信";

pub fn failed_orders_title(count: impl Display) -> String {
    format!("スマレジに登録できなかった受注が {count} 件あります")
}

pub const FAILED_ORDERS_DETAIL: &str = "履歴の「受注取込」で商品と数量を確認し、スマレジ管理画面 在庫 > 在庫情報 > 出荷登録 から手動で登録してください。";

pub const TO_ORDER_HISTORY: &str = "受注取込の履歴へ";

pub const STOCK_HISTORY_OFF_TITLE: &str = "スマレジの在庫変動履歴を読み取っていません";

pub const STOCK_HISTORY_OFF_DETAIL: &str = "在庫の増減を順序どおり確実に通知するため、在庫変動履歴の読み取りをおすすめします (スマレジAPIの契約ID・アクセストークンを受注数取り込みの画面で登録し、機能設定で「在庫情報参照」も「利用する」にしてから、設定画面で読み取りを開始してください)。";

// ---- admin: history

pub const HISTORY_TITLE: &str = "履歴";

pub const BATCH_BUILDING: &str = "作成中";

pub const BATCH_BUILT: &str = "アップロード待ち";

pub const BATCH_EMPTY: &str = "対象なし";

pub const BATCH_UPLOADING: &str = "アップロード中";

pub const BATCH_UPLOADED: &str = "処理待ち";

pub const BATCH_SUCCEEDED: &str = "成功";

pub const BATCH_FAILED: &str = "失敗";

pub const BATCH_NEEDS_ATTENTION: &str = "要確認";

pub const QUEUE_SUCCEEDED: &str = "ネクストエンジンで処理されました";

pub fn row_error_line(line: impl Display) -> String {
    format!("{line}行目")
}

pub fn queue_overdue(minutes: impl Display) -> String {
    format!("ネクストエンジンでの処理が {minutes} 分以上終わっていません")
}

pub fn follow_up_uploaded(batch_id: impl Display, at: impl Display, by: impl Display) -> String {
    format!("未反映の行をファイル {batch_id} で再アップロードしました ({at}、{by})")
}

pub const ROW_FATES_UNRECORDED: &str =
    "どの行が反映されたかは記録されていません。ネクストエンジンで在庫数を確認してください";

pub fn rows_applied(count: impl Display) -> String {
    format!("反映済み {count} 行")
}

pub fn rows_unapplied(count: impl Display) -> String {
    format!("未反映 {count} 行")
}

pub fn rows_unknown(count: impl Display) -> String {
    format!("確認できず {count} 行 (ネクストエンジンで在庫数を確認してください)")
}

/// `parts` are the `rows_*` texts of one file.
pub fn row_fates(parts: &[String]) -> String {
    format!("入出庫履歴による確認: {}", parts.join("、"))
}

pub const ORDER_REGISTERING: &str = "登録中";

pub fn order_shipped(shipment_id: impl Display) -> String {
    format!("出荷登録済み (出荷ID {shipment_id})")
}

pub fn order_failed(reason: impl Display) -> String {
    format!("失敗: {reason}")
}

pub fn order_cancelled_after_import(shipment_id: impl Display) -> String {
    format!("取り込み後にキャンセル (出荷ID {shipment_id})")
}

pub const QUEUE_KIND_UNKNOWN: &str = "不明";

pub fn report_send_failed(attempts: impl Display) -> String {
    format!("送信失敗 ({attempts} 回)。次回の実行で再送します")
}

pub const REPORT_WAITING: &str = "送信待ち";

pub const RUN_ACCEPTED: &str = "実行を受け付けました";

pub const RUN_REFUSED: &str =
    "実行を受け付けられませんでした。時間をおいてもう一度お試しください。";

pub const HELD_CHOOSE_ACTION: &str = "操作を選んでください";

pub fn held_treated_as_uploaded(batch_id: impl Display, que_id: impl Display) -> String {
    format!(
        "ファイル {batch_id} をキューID {que_id} でアップロード済みとして扱います。処理結果は次回の通知メールでお知らせします"
    )
}

pub fn held_reuploading(batch_id: impl Display) -> String {
    format!("ファイル {batch_id} を再アップロードします。結果は次回の通知メールでお知らせします")
}

pub fn resend_accepted(rows: impl Display, batch_id: impl Display) -> String {
    format!(
        "未反映の {rows} 行をファイル {batch_id} としてアップロードします。結果は次回の通知メールでお知らせします"
    )
}

// ---- admin: settings

pub const SETTINGS_TITLE: &str = "設定";

pub const NOTIFY_EMAILS_MISSING: &str = "通知先メールアドレスを1件以上入力してください。";

pub fn notify_email_malformed(address: impl Display) -> String {
    format!("通知先メールアドレス「{address}」の形式が正しくありません。")
}

pub const NOTIFY_EMAILS_TOO_MANY: &str = "通知先メールアドレスは20件までです。";

pub fn counted_store_not_digits(store_id: impl Display) -> String {
    format!(
        "店舗ID「{store_id}」は半角数字で入力してください (スマレジ管理画面 店舗 > 店舗一覧 の店舗ID)。"
    )
}

pub const STOCK_MASTER_MISSING: &str = "在庫のマスターを選んでください。";

pub const MAPPING_MODE_MISSING: &str = "商品コードの対応方法を選んでください。";

pub const MAPPING_TABLE_MISSING: &str = "対応表がまだ登録されていません。先に下の「商品コード対応表」からCSVをアップロードしてください。";

pub const SETTINGS_SAVED: &str = "設定を保存しました。";

pub const PRODUCT_CODE_NEEDS_SMAREGI_API: &str = "スマレジの商品コードを参照するには、スマレジAPIの契約ID・アクセストークンの登録が必要です (受注数取り込みの画面で登録できます)。";

pub const CUSTOMER_CODE_NOT_CONFIRMED: &str =
    "お客様専用コードを再発行するには、確認のチェックを入れてください。";

pub const CUSTOMER_CODE_REGENERATED: &str = "お客様専用コードを再発行しました。";

pub const CUSTOMER_CODE_CHANGE_IN_SMAREGI: &str = "スマレジ管理画面 設定 > システム連携 > スマレジAPI設定 の個別設定 code を新しいコードに変更してください。変更するまで在庫の送信は code_mismatch で失敗します (変更後に「再送する」で送り直せます)。";

// ---- admin: mapping table

pub const MAPPING_ENCODING_UNKNOWN: &str = "ファイルの文字コードを判別できませんでした。UTF-8 または Shift_JIS のCSVファイルとして保存し直してください。";

pub const MAPPING_NOT_SAVED: &str = "対応表は保存されていません (これまでの対応表のままです)。";

pub const MAPPING_FORM_UNREADABLE: &str =
    "送信されたフォームを読み取れませんでした。画面を開き直してもう一度操作してください。";

pub const MAPPING_FILE_MISSING: &str = "CSVファイルを選んでください。";

pub fn mapping_unreadable(error: impl Display) -> String {
    format!("対応表を読み込めませんでした: {error}")
}

pub const MAPPING_EMPTY: &str = "対応表に商品の行がありません。1行目が見出し (商品ID,商品コード)、2行目から商品IDと商品コードの組になっているか確認してください。";

pub const MAPPING_PREVIEW_TITLE: &str = "対応表の確認";

pub const MAPPING_PREVIEW_EXPIRED: &str =
    "確認画面の有効期限が切れました。もう一度CSVファイルをアップロードしてください。";

pub fn mapping_saved(pairs: impl Display) -> String {
    format!("商品コード対応表を保存しました ({pairs} 件)。")
}

pub const MAPPING_MODE_NOT_TABLE: &str =
    "この対応表を使うには、「商品コードの対応方法」で「対応表」を選んで保存してください。";

// ---- admin: NextEngine token (再取得)

pub const NE_TOKEN_UPDATED: &str = "トークンを更新しました";

/// The closing sentence of most refusals below.
pub const NE_RETRY: &str = "管理画面の「再取得」からもう一度やり直してください。";

pub fn ne_login_incomplete(code: impl Display) -> String {
    format!(
        "ネクストエンジンからのログイン情報が不足していました (エラーコード {code})。{NE_RETRY}"
    )
}

pub fn ne_service_not_allowed(code: impl Display) -> String {
    format!(
        "ネクストエンジンにこのサービスが認められませんでした (エラーコード {code})。お手数ですがサービスの運営者にお問い合わせください。"
    )
}

pub fn ne_login_expired(code: impl Display) -> String {
    format!(
        "ネクストエンジンのログインの有効期限が切れているか、すでに使用済みです (エラーコード {code})。{NE_RETRY}"
    )
}

pub fn ne_login_mismatch(code: impl Display) -> String {
    format!("ネクストエンジンのログイン情報が一致しませんでした (エラーコード {code})。{NE_RETRY}")
}

pub fn ne_token_not_obtained(code: impl Display) -> String {
    format!("ネクストエンジンでトークンを取得できませんでした (エラーコード {code})。{NE_RETRY}")
}

pub fn ne_suspended(code: impl Display) -> String {
    format!(
        "ネクストエンジンのご利用が停止されているため、接続できませんでした (エラーコード {code})。ネクストエンジンのご契約の状況とアプリの利用状況を確認してください。"
    )
}

pub fn ne_busy() -> String {
    format!("ネクストエンジンが混み合っているか、メンテナンス中です。時間をおいて{NE_RETRY}")
}

pub fn ne_unreachable() -> String {
    format!("ネクストエンジンに接続できませんでした。時間をおいて{NE_RETRY}")
}

pub fn ne_token_not_saved() -> String {
    format!("トークンを保存できませんでした。時間をおいて{NE_RETRY}")
}

pub fn ne_token_not_saved_because(error: impl Display) -> String {
    format!("トークンを保存できませんでした ({error})。{NE_RETRY}")
}

pub const NE_REACQUIRE_NOT_STARTED: &str = "この画面からトークンの再取得は開始されていないか、有効期限が切れています。管理画面の「再取得」をクリックしてやり直してください。";

pub const NE_CALLBACK_INCOMPLETE: &str = "ネクストエンジンからのログイン情報が不足していました。管理画面の「再取得」からもう一度やり直してください。";

pub fn ne_connected_to(company_name: impl Display) -> String {
    format!("接続先: {company_name}")
}

// ---- admin: order import

pub const ORDER_IMPORT_TITLE: &str = "受注数取り込み";

pub const ORDER_IMPORT_CHOOSE: &str = "「実行する」か「実行しない」を選んでください。";

// ---------------------------------------------------------------- drift radar (在庫差異)

pub const DRIFT_NO_SMAREGI_API: &str = "在庫差異の確認にはスマレジAPIの設定 (契約ID・アクセストークン、在庫情報参照の権限) が必要です。設定画面で登録してください";

pub fn drift_smaregi_failed(error: impl Display) -> String {
    format!("スマレジの在庫を読み取れませんでした ({error})")
}

pub fn drift_nextengine_failed(error: impl Display) -> String {
    format!("ネクストエンジンの在庫を読み取れませんでした ({error})")
}

pub fn drift_store_failed(error: impl Display) -> String {
    format!("保存データを読み書きできませんでした ({error})")
}

pub fn drift_check_not_found(id: impl Display) -> String {
    format!("在庫差異の確認 {id} が見つかりません")
}

pub const DRIFT_NOT_LATEST: &str =
    "この確認の後に新しい確認があります。最新の確認結果から「揃える」を実行してください";
pub const DRIFT_TOO_OLD: &str =
    "確認から1時間以上経っています。もう一度「差異を確認」してから「揃える」を実行してください";
pub const DRIFT_REPORT_ONLY: &str =
    "在庫マスタがネクストエンジンのため、差異はお知らせのみです (補正は行いません)";
pub const DRIFT_NOTHING_TO_ALIGN: &str = "補正できる差異はありません";

pub fn drift_already_aligned(batch_id: impl Display) -> String {
    format!(
        "この確認の補正はすでに登録されています (バッチID: {batch_id})。アップロードは一度だけ行われます"
    )
}

pub fn drift_files_in_flight(goods: impl Display) -> String {
    format!(
        "処理中のファイルがある商品があるため、今は揃えられません ({goods})。ファイルの処理が終わった後に、もう一度「差異を確認」してください"
    )
}

pub fn drift_aligned(batch_id: impl Display, rows: usize) -> String {
    format!(
        "{rows}件の商品の補正を登録しました (バッチID: {batch_id})。次回の実行でネクストエンジンにアップロードします"
    )
}

pub const DRIFT_CHECK_ACCEPTED: &str = "在庫差異の確認を受け付けました。終わるとこの画面に結果が表示され、メールでもお知らせします (商品数によっては数分かかります)";
pub const DRIFT_TITLE: &str = "在庫差異";
pub const ALIGN_TITLE: &str = "在庫差異を揃える";
