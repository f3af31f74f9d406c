//! Parsing of a Smaregi 在庫情報送信 (`proc_name=stock_send`, `params` JSON).
//! Tolerant of what Smaregi varies (string-typed numbers, missing optional fields,
//! several tables), strict where a wrong guess would corrupt stock.

use crate::change::push_fingerprint;
use crate::{ChangeKind, ChangeRow, StockDivision, StoreId};
use serde_json::{Map, Value};
use std::num::IntErrorKind;

/// Largest `params` accepted; larger pushes are refused before parsing.
pub const MAX_PARAMS_BYTES: usize = 8 * 1024 * 1024;
/// Most `Stock` rows accepted in one push.
pub const MAX_ROWS: usize = 50_000;
/// Largest absolute quantity accepted (Smaregi's own limit is 999,999,999).
pub const MAX_QUANTITY: i64 = 999_999_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("proc_name が stock_send ではありません: {0:?}")]
    WrongProcName(String),
    #[error("params がありません")]
    MissingParams,
    #[error("params が大きすぎます ({0} バイト)")]
    TooLarge(usize),
    #[error("params の JSON が不正です: {0}")]
    MalformedJson(String),
    #[error("Stock の行数が多すぎます ({0} 行)")]
    TooManyRows(usize),
    #[error("{row} 行目: {field} がありません")]
    MissingField { row: usize, field: &'static str },
    #[error("{row} 行目: {field} が整数ではありません: {value:?}")]
    NotAnInteger {
        row: usize,
        field: &'static str,
        value: String,
    },
    #[error("{row} 行目: {field} が範囲外です: {value}")]
    OutOfRange {
        row: usize,
        field: &'static str,
        value: String,
    },
    #[error(
        "{row} 行目: {field} が日時として読めません (YYYY-MM-DD HH:MM:SS または ISO 8601): {value:?}"
    )]
    NotATime {
        row: usize,
        field: &'static str,
        value: String,
    },
}

/// A parsed push: the `Stock` rows in order (other tables are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPush {
    pub rows: Vec<ChangeRow>,
    /// [`crate::change::push_fingerprint`] of `params`.
    pub fingerprint: String,
}

impl ParsedPush {
    /// The push's rows as ledger changes, each under its dedupe key, stamped
    /// with the moment the push was received.
    pub fn changes(&self, received_at: chrono::DateTime<chrono::Utc>) -> Vec<crate::StockChange> {
        crate::change::dedupe_keys(&self.rows, &self.fingerprint)
            .into_iter()
            .zip(&self.rows)
            .map(|(dedupe_key, row)| crate::StockChange {
                dedupe_key,
                source: crate::change::ChangeSource::Push,
                row: row.clone(),
                received_at,
            })
            .collect()
    }
}

/// Parses a push. `params` is the raw form field.
pub fn parse_stock_send(proc_name: &str, params: &str) -> Result<ParsedPush, PushError> {
    if proc_name.trim() != "stock_send" {
        return Err(PushError::WrongProcName(proc_name.to_string()));
    }
    if params.trim().is_empty() {
        return Err(PushError::MissingParams);
    }
    if params.len() > MAX_PARAMS_BYTES {
        return Err(PushError::TooLarge(params.len()));
    }
    let document = parse_json(params)?;
    let Value::Object(document) = document else {
        return Err(malformed("最上位が JSON オブジェクトではありません"));
    };
    let relative = is_relative(&document)?;
    let tables = match document.get("data") {
        Some(Value::Array(tables)) => tables,
        Some(_) => return Err(malformed("data が配列ではありません")),
        None => return Err(malformed("data がありません")),
    };

    let mut stock_tables = Vec::new();
    for (index, table) in tables.iter().enumerate() {
        let position = index + 1;
        let Value::Object(table) = table else {
            return Err(malformed(format!(
                "data の {position} 番目がオブジェクトではありません"
            )));
        };
        let name = match table.get("table_name") {
            Some(Value::String(name)) => name.as_str(),
            _ => {
                return Err(malformed(format!(
                    "data の {position} 番目に table_name (文字列) がありません"
                )));
            }
        };
        if name != "Stock" {
            continue;
        }
        match table.get("rows") {
            Some(Value::Array(rows)) => stock_tables.push(rows),
            _ => {
                return Err(malformed(format!(
                    "data の {position} 番目 (Stock) の rows が配列ではありません"
                )));
            }
        }
    }

    // Counted before any row is read so an oversized push costs no row parsing.
    let total_rows: usize = stock_tables.iter().map(|rows| rows.len()).sum();
    if total_rows > MAX_ROWS {
        return Err(PushError::TooManyRows(total_rows));
    }
    let rows = stock_tables
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, row)| parse_row(index + 1, row, relative))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(ParsedPush {
        rows,
        fingerprint: push_fingerprint(params),
    })
}

/// Some PHP-era senders escaped every quote (magic quotes); such a body is read
/// unescaped, but only when it is not valid JSON as it stands, so a correct body
/// containing `\"` inside a string is never altered.
fn parse_json(params: &str) -> Result<Value, PushError> {
    match serde_json::from_str(params) {
        Ok(value) => Ok(value),
        Err(error) => {
            if params.contains("\\\"")
                && let Ok(value) = serde_json::from_str(&params.replace("\\\"", "\""))
            {
                return Ok(value);
            }
            Err(malformed(error.to_string()))
        }
    }
}

/// `proc_info.proc_detail_division`: `1` absolute, `2` relative, absent = absolute
/// (how public receivers read `stockAmount`). Any other value is refused: reading a
/// relative amount as a stock count, or the reverse, would corrupt the stock.
fn is_relative(document: &Map<String, Value>) -> Result<bool, PushError> {
    let proc_info = match document.get("proc_info") {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Object(proc_info)) => proc_info,
        Some(_) => return Err(malformed("proc_info がオブジェクトではありません")),
    };
    let division = match proc_info.get("proc_detail_division") {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::String(text)) => text.trim().to_string(),
        Some(Value::Number(number)) => number.to_string(),
        Some(other) => {
            return Err(malformed(format!(
                "proc_detail_division が不正です: {other}"
            )));
        }
    };
    match division.as_str() {
        "" | "1" => Ok(false),
        "2" => Ok(true),
        _ => Err(malformed(format!(
            "proc_detail_division が不明です (1 または 2): {division:?}"
        ))),
    }
}

fn parse_row(row: usize, value: &Value, relative: bool) -> Result<ChangeRow, PushError> {
    let Value::Object(fields) = value else {
        return Err(malformed(format!(
            "Stock {row} 行目がオブジェクトではありません"
        )));
    };
    let get = |name: &str| fields.get(name).filter(|v| !v.is_null());

    let store_id = required_id(row, "storeId", get("storeId"))?;
    let product_id = required_id(row, "productId", get("productId"))?;
    let stock_amount = match get("stockAmount") {
        Some(value) => quantity(row, "stockAmount", value)?,
        None => {
            return Err(PushError::MissingField {
                row,
                field: "stockAmount",
            });
        }
    };
    let amount = get("amount")
        .map(|value| quantity(row, "amount", value))
        .transpose()?;
    let layaway_stock_amount = get("layawayStockAmount")
        .map(|value| quantity(row, "layawayStockAmount", value))
        .transpose()?;
    let division = optional_text(row, "stockDivision", get("stockDivision"))?
        .map(|code| StockDivision::from_code(&code));
    let changed_at = optional_time(row, "updDateTime", get("updDateTime"))?;
    let history_id = history_id(row, get("id"))?;
    let from_store_id = optional_id(row, "fromStoreId", get("fromStoreId"))?;
    let to_store_id = optional_id(row, "toStoreId", get("toStoreId"))?;

    let (kind, amount, after) = match amount {
        Some(amount) => (ChangeKind::History, Some(amount), Some(stock_amount)),
        None if relative => (ChangeKind::Relative, Some(stock_amount), None),
        None => (ChangeKind::Absolute, None, Some(stock_amount)),
    };
    Ok(ChangeRow {
        store_id: store_id.into(),
        product_id: product_id.into(),
        kind,
        division,
        amount,
        after,
        changed_at,
        history_id,
        from_store_id: from_store_id.map(StoreId::from),
        to_store_id: to_store_id.map(StoreId::from),
        layaway_stock_amount,
    })
}

fn required_id(
    row: usize,
    field: &'static str,
    value: Option<&Value>,
) -> Result<String, PushError> {
    optional_id(row, field, value)?.ok_or(PushError::MissingField { row, field })
}

/// An identifier: like [`optional_text`], but an integer written with a zero
/// fraction (`"8000001.0"`) is the same id as the integer, so both key the same
/// store, product or history row.
fn optional_id(
    row: usize,
    field: &'static str,
    value: Option<&Value>,
) -> Result<Option<String>, PushError> {
    Ok(
        optional_text(row, field, value)?.map(|text| match integral_part(&text) {
            Some(integer) => integer.to_string(),
            None => text,
        }),
    )
}

/// The integer part of a decimal whose fraction is all zeros (`"3.000"`, `"-2.0"`);
/// `None` for anything else, including a plain integer. Some senders write every
/// number as a decimal, and such a value is an exact integer.
fn integral_part(text: &str) -> Option<&str> {
    let (integer, fraction) = text.split_once('.')?;
    let digits = integer.strip_prefix(['-', '+']).unwrap_or(integer);
    let is_integral = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b == b'0');
    is_integral.then_some(integer)
}

/// Largest integer an `f64` holds exactly: beyond it a JSON number like
/// `1e17` may not be the integer the sender meant.
const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

/// A JSON number as an exact integer: integers as they are, floats only when
/// their fraction is zero (`3.0`).
fn json_integer(
    row: usize,
    field: &'static str,
    number: &serde_json::Number,
) -> Result<i128, PushError> {
    if let Some(n) = number.as_i64() {
        return Ok(n.into());
    }
    if let Some(n) = number.as_u64() {
        return Ok(n.into());
    }
    let value = number.to_string();
    match number.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() <= MAX_EXACT_FLOAT => Ok(f as i128),
        Some(f) if f.is_finite() && f.fract() == 0.0 => {
            Err(PushError::OutOfRange { row, field, value })
        }
        _ => Err(PushError::NotAnInteger { row, field, value }),
    }
}

fn optional_time(
    row: usize,
    field: &'static str,
    value: Option<&Value>,
) -> Result<Option<chrono::NaiveDateTime>, PushError> {
    let not_a_time = |value: String| PushError::NotATime { row, field, value };
    match value {
        None => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => crate::time::parse_push_time(text)
            .map(Some)
            .ok_or_else(|| not_a_time(text.clone())),
        Some(other) => Err(not_a_time(other.to_string())),
    }
}

/// A scalar that Smaregi may send as a string or as a JSON integer, trimmed;
/// an empty string counts as absent.
fn optional_text(
    row: usize,
    field: &'static str,
    value: Option<&Value>,
) -> Result<Option<String>, PushError> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => {
            let text = text.trim();
            Ok((!text.is_empty()).then(|| text.to_string()))
        }
        Some(Value::Number(number)) => Ok(Some(json_integer(row, field, number)?.to_string())),
        Some(other) => Err(PushError::NotAnInteger {
            row,
            field,
            value: other.to_string(),
        }),
    }
}

/// A stock quantity: an integer, as a JSON number or a string (a zero fraction
/// allowed in either), within ±[`MAX_QUANTITY`].
fn quantity(row: usize, field: &'static str, value: &Value) -> Result<i64, PushError> {
    let not_an_integer = |value: String| PushError::NotAnInteger { row, field, value };
    let out_of_range = |value: String| PushError::OutOfRange { row, field, value };
    let parsed = match value {
        Value::Number(number) => {
            let n = json_integer(row, field, number)?;
            i64::try_from(n).map_err(|_| out_of_range(number.to_string()))?
        }
        Value::String(text) => match integral_part(text.trim())
            .unwrap_or(text.trim())
            .parse::<i64>()
        {
            Ok(n) => n,
            Err(error)
                if matches!(
                    error.kind(),
                    IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
                ) =>
            {
                return Err(out_of_range(text.clone()));
            }
            Err(_) => return Err(not_an_integer(text.clone())),
        },
        other => return Err(not_an_integer(other.to_string())),
    };
    if parsed.unsigned_abs() > MAX_QUANTITY.unsigned_abs() {
        return Err(out_of_range(parsed.to_string()));
    }
    Ok(parsed)
}

fn history_id(row: usize, value: Option<&Value>) -> Result<Option<u64>, PushError> {
    let field = "id";
    let Some(text) = optional_id(row, field, value)? else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(id) => Ok(Some(id)),
        Err(error) if matches!(error.kind(), IntErrorKind::PosOverflow) => {
            Err(PushError::OutOfRange {
                row,
                field,
                value: text,
            })
        }
        Err(_) if text.parse::<i64>().is_ok() => Err(PushError::OutOfRange {
            row,
            field,
            value: text,
        }),
        Err(_) => Err(PushError::NotAnInteger {
            row,
            field,
            value: text,
        }),
    }
}

fn malformed(message: impl Into<String>) -> PushError {
    PushError::MalformedJson(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_api_time;
    use chrono::NaiveDateTime;

    fn push(rows: &str) -> String {
        format!(r#"{{"data":[{{"table_name":"Stock","rows":[{rows}]}}]}}"#)
    }

    fn parse(params: &str) -> Result<ParsedPush, PushError> {
        parse_stock_send("stock_send", params)
    }

    fn single_row(row: &str) -> Result<ChangeRow, PushError> {
        parse(&push(row)).map(|parsed| parsed.rows.into_iter().next().unwrap())
    }

    #[test]
    fn reads_a_minimal_absolute_row() {
        let parsed = parse(&push(
            r#"{"storeId":"1","productId":"8000001","stockAmount":"4"}"#,
        ))
        .unwrap();
        assert_eq!(
            parsed.rows,
            vec![ChangeRow {
                store_id: "1".into(),
                product_id: "8000001".into(),
                kind: ChangeKind::Absolute,
                division: None,
                amount: None,
                after: Some(4),
                changed_at: None,
                history_id: None,
                from_store_id: None,
                to_store_id: None,
                layaway_stock_amount: None,
            }]
        );
    }

    #[test]
    fn fingerprint_is_that_of_the_raw_params() {
        let params = push(r#"{"storeId":"1","productId":"2","stockAmount":"4"}"#);
        assert_eq!(
            parse(&params).unwrap().fingerprint,
            push_fingerprint(&params)
        );
    }

    #[test]
    fn history_shaped_rows_keep_amount_and_after() {
        let row = single_row(
            r#"{"id":"123","storeId":"1","productId":"8000001","amount":"-2","stockAmount":"3",
                "stockDivision":"02","updDateTime":"2026-11-27 10:00:00",
                "fromStoreId":null,"toStoreId":""}"#,
        )
        .unwrap();
        assert_eq!(row.kind, ChangeKind::History);
        assert_eq!((row.amount, row.after), (Some(-2), Some(3)));
        assert_eq!(row.division, Some(StockDivision::Sale));
        assert_eq!(row.changed_at, parse_api_time("2026-11-27 10:00:00"));
        assert_eq!(row.history_id, Some(123));
        assert_eq!((row.from_store_id, row.to_store_id), (None, None));
    }

    #[test]
    fn the_full_row_shape_keeps_its_layaway_stock() {
        let row = single_row(
            r#"{"storeId":"1","productId":"8000001","amount":"-1","stockAmount":"3","layawayStockAmount":"2",
                "stockDivision":"02","fromStoreId":null,"toStoreId":null,"updDateTime":"2026-11-27 10:00:00"}"#,
        )
        .unwrap();
        assert_eq!(row.layaway_stock_amount, Some(2));
        assert!(matches!(
            single_row(
                r#"{"storeId":"1","productId":"2","stockAmount":"3","layawayStockAmount":"x"}"#
            ),
            Err(PushError::NotAnInteger {
                row: 1,
                field: "layawayStockAmount",
                ..
            })
        ));
    }

    #[test]
    fn numbers_may_be_json_numbers_or_strings() {
        let from_strings = single_row(
            r#"{"id":"7","storeId":"1","productId":"2","amount":" 4 ","stockAmount":"-2","stockDivision":"8"}"#,
        )
        .unwrap();
        let from_numbers = single_row(
            r#"{"id":7,"storeId":1,"productId":2,"amount":4,"stockAmount":-2,"stockDivision":8}"#,
        )
        .unwrap();
        assert_eq!(from_strings, from_numbers);
        assert_eq!(from_numbers.division, Some(StockDivision::Stocktaking));
        assert_eq!(from_numbers.amount, Some(4));
    }

    #[test]
    fn transfers_keep_their_stores() {
        let row = single_row(
            r#"{"storeId":"2","productId":"9","stockAmount":"3","stockDivision":"05","fromStoreId":"1","toStoreId":2}"#,
        )
        .unwrap();
        assert_eq!(row.from_store_id.as_deref(), Some("1"));
        assert_eq!(row.to_store_id.as_deref(), Some("2"));
    }

    #[test]
    fn empty_or_null_optional_fields_are_absent() {
        let row = single_row(
            r#"{"storeId":"1","productId":"2","stockAmount":"4","stockDivision":"","updDateTime":null,"id":"","amount":null}"#,
        )
        .unwrap();
        assert_eq!(row.kind, ChangeKind::Absolute);
        assert_eq!(row.division, None);
        assert_eq!(row.changed_at, None);
        assert_eq!(row.history_id, None);
    }

    #[test]
    fn proc_detail_division_2_makes_stock_amount_relative() {
        for division in [r#""2""#, "2", r#"" 2 ""#] {
            let params = format!(
                r#"{{"proc_info":{{"proc_detail_division":{division}}},"data":[{{"table_name":"Stock","rows":[{{"storeId":"1","productId":"2","stockAmount":"-3","stockDivision":"02"}}]}}]}}"#
            );
            let row = parse(&params).unwrap().rows.remove(0);
            assert_eq!(row.kind, ChangeKind::Relative, "{division}");
            assert_eq!((row.amount, row.after), (Some(-3), None));
        }
    }

    #[test]
    fn proc_detail_division_1_or_absent_means_absolute() {
        for proc_info in [
            r#""proc_info":{"proc_detail_division":"1"},"#,
            r#""proc_info":{},"#,
            "",
        ] {
            let params = format!(
                r#"{{{proc_info}"data":[{{"table_name":"Stock","rows":[{{"storeId":"1","productId":"2","stockAmount":"5"}}]}}]}}"#
            );
            let row = parse(&params).unwrap().rows.remove(0);
            assert_eq!(row.kind, ChangeKind::Absolute, "{proc_info}");
            assert_eq!((row.amount, row.after), (None, Some(5)));
        }
    }

    #[test]
    fn an_unknown_proc_detail_division_is_refused() {
        let params = r#"{"proc_info":{"proc_detail_division":"3"},"data":[]}"#;
        assert!(
            matches!(parse(params), Err(PushError::MalformedJson(m)) if m.contains("proc_detail_division"))
        );
    }

    #[test]
    fn history_rows_win_over_a_relative_push() {
        let params = r#"{"proc_info":{"proc_detail_division":2},"data":[{"table_name":"Stock","rows":[{"storeId":"1","productId":"2","amount":"1","stockAmount":"5"}]}]}"#;
        assert_eq!(parse(params).unwrap().rows[0].kind, ChangeKind::History);
    }

    #[test]
    fn other_tables_are_skipped_and_several_stock_tables_are_joined() {
        let params = r#"{"data":[
            {"table_name":"Product","rows":[{"productId":"1"}]},
            {"table_name":"Stock","rows":[{"storeId":"1","productId":"A","stockAmount":"1"}]},
            {"table_name":"ProductPrice","rows":"not even rows"},
            {"table_name":"Product","rows":[]},
            {"table_name":"Stock","rows":[{"storeId":"1","productId":"B","stockAmount":"2"}]}
        ]}"#;
        let parsed = parse(params).unwrap();
        let products: Vec<_> = parsed.rows.iter().map(|r| r.product_id.as_str()).collect();
        assert_eq!(products, ["A", "B"]);
    }

    #[test]
    fn row_numbers_count_stock_rows_across_tables() {
        let params = r#"{"data":[
            {"table_name":"Stock","rows":[{"storeId":"1","productId":"A","stockAmount":"1"}]},
            {"table_name":"Product","rows":[{}]},
            {"table_name":"Stock","rows":[{"storeId":"1","stockAmount":"2"}]}
        ]}"#;
        assert_eq!(
            parse(params),
            Err(PushError::MissingField {
                row: 2,
                field: "productId"
            })
        );
    }

    #[test]
    fn an_empty_push_has_no_rows() {
        let parsed = parse(r#"{"data":[]}"#).unwrap();
        assert!(parsed.rows.is_empty());
    }

    #[test]
    fn backslash_escaped_quotes_are_tolerated() {
        let escaped =
            push(r#"{"storeId":"1","productId":"2","stockAmount":"4"}"#).replace('"', "\\\"");
        let parsed = parse(&escaped).unwrap();
        assert_eq!(parsed.rows[0].after, Some(4));
        assert_eq!(parsed.fingerprint, push_fingerprint(&escaped));
    }

    #[test]
    fn escaped_quotes_inside_valid_json_are_left_alone() {
        let row = single_row(
            r#"{"storeId":"1","productId":"2","stockAmount":"4","stockDivision":"a\"b"}"#,
        )
        .unwrap();
        assert_eq!(row.division, Some(StockDivision::Other("a\"b".into())));
    }

    #[test]
    fn proc_name_must_be_stock_send() {
        assert!(parse_stock_send(" stock_send\n", r#"{"data":[]}"#).is_ok());
        assert_eq!(
            parse_stock_send("product_send", r#"{"data":[]}"#),
            Err(PushError::WrongProcName("product_send".into()))
        );
        assert!(matches!(
            parse_stock_send("", "{}"),
            Err(PushError::WrongProcName(_))
        ));
    }

    #[test]
    fn params_must_be_present() {
        assert_eq!(parse(""), Err(PushError::MissingParams));
        assert_eq!(parse(" \n"), Err(PushError::MissingParams));
    }

    #[test]
    fn oversized_params_are_refused_before_parsing() {
        let huge = "x".repeat(MAX_PARAMS_BYTES + 1);
        assert_eq!(parse(&huge), Err(PushError::TooLarge(MAX_PARAMS_BYTES + 1)));
    }

    #[test]
    fn too_many_rows_are_refused() {
        let rows = vec!["{}"; MAX_ROWS + 1].join(",");
        assert_eq!(
            parse(&push(&rows)),
            Err(PushError::TooManyRows(MAX_ROWS + 1))
        );
    }

    #[test]
    fn malformed_json_and_wrong_shapes_are_named() {
        let cases = [
            ("{", "EOF"),
            ("[]", "最上位"),
            (r#"{"rows":[]}"#, "data がありません"),
            (r#"{"data":{}}"#, "data が配列ではありません"),
            (r#"{"data":[1]}"#, "1 番目がオブジェクト"),
            (r#"{"data":[{"rows":[]}]}"#, "table_name"),
            (
                r#"{"data":[{"table_name":"Stock"}]}"#,
                "rows が配列ではありません",
            ),
            (
                r#"{"data":[{"table_name":"Stock","rows":[[]]}]}"#,
                "Stock 1 行目がオブジェクト",
            ),
            (r#"{"proc_info":[],"data":[]}"#, "proc_info"),
        ];
        for (params, expected) in cases {
            match parse(params) {
                Err(PushError::MalformedJson(message)) => {
                    assert!(message.contains(expected), "{params}: {message}")
                }
                other => panic!("{params}: {other:?}"),
            }
        }
    }

    #[test]
    fn required_fields_must_be_present_and_non_empty() {
        for (row, field) in [
            (r#"{"productId":"2","stockAmount":"1"}"#, "storeId"),
            (
                r#"{"storeId":" ","productId":"2","stockAmount":"1"}"#,
                "storeId",
            ),
            (
                r#"{"storeId":"1","productId":null,"stockAmount":"1"}"#,
                "productId",
            ),
            (r#"{"storeId":"1","productId":"2"}"#, "stockAmount"),
            (
                r#"{"storeId":"1","productId":"2","amount":"1"}"#,
                "stockAmount",
            ),
        ] {
            assert_eq!(
                single_row(row),
                Err(PushError::MissingField { row: 1, field }),
                "{row}"
            );
        }
    }

    #[test]
    fn quantities_must_be_integers() {
        for value in [r#""3.5""#, "3.5", r#""abc""#, r#""""#, "true", "[1]"] {
            let row = format!(r#"{{"storeId":"1","productId":"2","stockAmount":{value}}}"#);
            assert!(
                matches!(
                    single_row(&row),
                    Err(PushError::NotAnInteger {
                        row: 1,
                        field: "stockAmount",
                        ..
                    })
                ),
                "{value}"
            );
        }
        let row = r#"{"storeId":"1","productId":"2","stockAmount":"1","amount":"x"}"#;
        assert!(matches!(
            single_row(row),
            Err(PushError::NotAnInteger {
                field: "amount",
                ..
            })
        ));
    }

    #[test]
    fn quantities_beyond_the_limit_are_out_of_range() {
        let limit = MAX_QUANTITY;
        for value in [
            format!("{}", limit + 1),
            format!("\"-{}\"", limit + 1),
            "\"99999999999999999999\"".to_string(),
            "18446744073709551615".to_string(),
        ] {
            let row = format!(r#"{{"storeId":"1","productId":"2","stockAmount":{value}}}"#);
            assert!(
                matches!(
                    single_row(&row),
                    Err(PushError::OutOfRange {
                        field: "stockAmount",
                        ..
                    })
                ),
                "{value}"
            );
        }
        let at_limit = format!(r#"{{"storeId":"1","productId":"2","stockAmount":"-{limit}"}}"#);
        assert_eq!(single_row(&at_limit).unwrap().after, Some(-limit));
    }

    #[test]
    fn ids_must_be_strings_or_integers() {
        assert!(matches!(
            single_row(r#"{"storeId":1.5,"productId":"2","stockAmount":"1"}"#),
            Err(PushError::NotAnInteger {
                field: "storeId",
                ..
            })
        ));
        assert!(matches!(
            single_row(r#"{"storeId":"1","productId":{},"stockAmount":"1"}"#),
            Err(PushError::NotAnInteger {
                field: "productId",
                ..
            })
        ));
        assert!(matches!(
            single_row(r#"{"storeId":"1","productId":"2","stockAmount":"1","id":"x"}"#),
            Err(PushError::NotAnInteger { field: "id", .. })
        ));
        assert!(matches!(
            single_row(r#"{"storeId":"1","productId":"2","stockAmount":"1","id":-4}"#),
            Err(PushError::OutOfRange { field: "id", .. })
        ));
    }

    #[test]
    fn an_unreadable_time_is_refused_with_its_row_and_field() {
        let err = parse(&push(
            r#"{"storeId":"1","productId":"2","stockAmount":"1"},{"storeId":"1","productId":"2","stockAmount":"1","updDateTime":"2026/11/27"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            err,
            PushError::NotATime {
                row: 2,
                field: "updDateTime",
                value: "2026/11/27".into()
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("2 行目") && message.contains("updDateTime"),
            "{message}"
        );
    }

    fn time_of(value: &str) -> Result<Option<NaiveDateTime>, PushError> {
        single_row(&format!(
            r#"{{"storeId":"1","productId":"2","stockAmount":"1","updDateTime":{value}}}"#
        ))
        .map(|row| row.changed_at)
    }

    #[test]
    fn iso_8601_and_rfc_3339_times_are_read_as_japan_time() {
        let expected = parse_api_time("2026-01-02 03:04:05");
        for value in [
            r#""2026-01-02 03:04:05""#,
            r#""2026-01-02T03:04:05+09:00""#,
            r#""2026-01-01T18:04:05Z""#,
            r#""2026-01-02T03:04:05""#,
        ] {
            assert_eq!(time_of(value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn fractional_seconds_are_kept() {
        let expected =
            NaiveDateTime::parse_from_str("2026-01-02 03:04:05.5", "%Y-%m-%d %H:%M:%S%.f").ok();
        for value in [
            r#""2026-01-02 03:04:05.500""#,
            r#""2026-01-02T03:04:05.5+09:00""#,
            r#""2026-01-01T18:04:05.500Z""#,
        ] {
            assert_eq!(time_of(value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn impossible_or_unreadable_times_are_refused_with_row_and_field() {
        for value in [
            r#""2026-02-30 10:00:00""#,
            r#""2026-01-02 25:00:00""#,
            r#""2026-01-02""#,
            r#""abc""#,
            "20260102",
            "true",
        ] {
            assert!(
                matches!(
                    time_of(value),
                    Err(PushError::NotATime {
                        row: 1,
                        field: "updDateTime",
                        ..
                    })
                ),
                "{value}: {:?}",
                time_of(value)
            );
        }
    }

    fn amounts_of(
        stock_amount: &str,
        amount: &str,
    ) -> Result<(Option<i64>, Option<i64>), PushError> {
        single_row(&format!(
            r#"{{"storeId":"1","productId":"2","stockAmount":{stock_amount},"amount":{amount}}}"#
        ))
        .map(|row| (row.amount, row.after))
    }

    #[test]
    fn quantities_with_a_zero_fraction_are_integers() {
        for (stock_amount, amount, expected) in [
            (r#""3.000""#, r#""-2.0""#, (Some(-2), Some(3))),
            ("3.0", "-2.0", (Some(-2), Some(3))),
            ("3.000", r#"" -2.00 ""#, (Some(-2), Some(3))),
            (r#""-0.0""#, r#""+4.0""#, (Some(4), Some(0))),
            ("3e0", "-2", (Some(-2), Some(3))),
        ] {
            assert_eq!(
                amounts_of(stock_amount, amount),
                Ok(expected),
                "{stock_amount} {amount}"
            );
        }
    }

    #[test]
    fn a_large_id_written_as_a_float_reads_back_exactly() {
        // Found by the property test: without serde_json's float_roundtrip this
        // read as 1870874632809944.75 and the whole push was refused.
        let row = single_row(
            r#"{"storeId":"1","productId":"2","stockAmount":"0","id":1870874632809945.0}"#,
        )
        .unwrap();
        assert_eq!(row.history_id, Some(1_870_874_632_809_945));
    }

    #[test]
    fn quantities_with_a_real_fraction_are_refused_with_row_and_field() {
        for value in [
            r#""3.5""#,
            "3.5",
            r#""3.""#,
            r#"".0""#,
            r#""3.0.0""#,
            r#""3,0""#,
            r#""1e3""#,
        ] {
            let err = amounts_of("1", value).unwrap_err();
            assert!(
                matches!(
                    &err,
                    PushError::NotAnInteger {
                        row: 1,
                        field: "amount",
                        ..
                    }
                ),
                "{value}: {err:?}"
            );
            assert!(err.to_string().contains("1 行目: amount"), "{err}");
        }
        let far = format!("{}.0", MAX_QUANTITY + 1);
        assert!(matches!(
            amounts_of(&far, "1"),
            Err(PushError::OutOfRange {
                field: "stockAmount",
                ..
            })
        ));
    }

    #[test]
    fn ids_with_a_zero_fraction_are_the_integer_id() {
        let plain = single_row(
            r#"{"id":"17","storeId":"1","productId":"8000001","amount":"-1","stockAmount":"4","fromStoreId":"3","toStoreId":"1"}"#,
        )
        .unwrap();
        for row in [
            r#"{"id":"17.0","storeId":"1.000","productId":"8000001.0","amount":"-1.0","stockAmount":"4.0","fromStoreId":"3.0","toStoreId":1.0}"#,
            r#"{"id":17.0,"storeId":1.0,"productId":8000001.0,"amount":-1.0,"stockAmount":4.0,"fromStoreId":3,"toStoreId":"1"}"#,
        ] {
            assert_eq!(single_row(row).unwrap(), plain, "{row}");
        }
    }

    #[test]
    fn ids_with_a_real_fraction_or_beyond_exact_floats_are_refused() {
        assert!(matches!(
            single_row(r#"{"storeId":"1","productId":2.5,"stockAmount":"1"}"#),
            Err(PushError::NotAnInteger {
                row: 1,
                field: "productId",
                ..
            })
        ));
        assert!(matches!(
            single_row(r#"{"storeId":"1","productId":"2","stockAmount":"1","id":"17.5"}"#),
            Err(PushError::NotAnInteger { field: "id", .. })
        ));
        assert!(matches!(
            single_row(r#"{"storeId":"1","productId":1e300,"stockAmount":"1"}"#),
            Err(PushError::OutOfRange {
                field: "productId",
                ..
            })
        ));
    }

    #[test]
    fn one_bad_row_names_its_position_among_good_ones() {
        let err = parse(&push(
            r#"{"storeId":"1","productId":"2","stockAmount":"3.000"},
               {"storeId":"1","productId":"2","stockAmount":"1","updDateTime":"2026-01-02T03:04:05Z"},
               {"storeId":"1","productId":"2","stockAmount":"abc"}"#,
        ))
        .unwrap_err();
        assert!(
            matches!(&err, PushError::NotAnInteger { row: 3, field: "stockAmount", value } if value == "abc"),
            "{err:?}"
        );
    }
}
