//! Parsing of a Smaregi 在庫情報送信 (`proc_name=stock_send`, `params` JSON).
//! Tolerant of what Smaregi varies (string-typed numbers, missing optional fields,
//! several tables), strict where a wrong guess would corrupt stock.

use crate::change::push_fingerprint;
use crate::{ChangeKind, PushRow, StockDivision};
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
}

/// A parsed push: the `Stock` rows in order, plus what was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPush {
    pub rows: Vec<PushRow>,
    /// Names of tables other than `Stock` that the push carried (ignored).
    pub ignored_tables: Vec<String>,
    /// [`crate::change::push_fingerprint`] of `params`.
    pub fingerprint: String,
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
    let mut ignored_tables = Vec::new();
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
            if !ignored_tables.iter().any(|known| known == name) {
                ignored_tables.push(name.to_string());
            }
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
        ignored_tables,
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

fn parse_row(row: usize, value: &Value, relative: bool) -> Result<PushRow, PushError> {
    let Value::Object(fields) = value else {
        return Err(malformed(format!("Stock {row} 行目がオブジェクトではありません")));
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
    let division = optional_text(row, "stockDivision", get("stockDivision"))?
        .map(|code| StockDivision::from_code(&code));
    let changed_at = match optional_text(row, "updDateTime", get("updDateTime"))? {
        Some(text) => Some(crate::time::parse_api_time(&text).ok_or_else(|| {
            malformed(format!(
                "Stock {row} 行目: updDateTime が YYYY-MM-DD HH:MM:SS ではありません: {text:?}"
            ))
        })?),
        None => None,
    };
    let history_id = history_id(row, get("id"))?;
    let from_store_id = optional_text(row, "fromStoreId", get("fromStoreId"))?;
    let to_store_id = optional_text(row, "toStoreId", get("toStoreId"))?;

    let (kind, amount, after) = match amount {
        Some(amount) => (ChangeKind::History, Some(amount), Some(stock_amount)),
        None if relative => (ChangeKind::Relative, Some(stock_amount), None),
        None => (ChangeKind::Absolute, None, Some(stock_amount)),
    };
    Ok(PushRow {
        store_id,
        product_id,
        kind,
        division,
        amount,
        after,
        changed_at,
        history_id,
        from_store_id,
        to_store_id,
    })
}

fn required_id(
    row: usize,
    field: &'static str,
    value: Option<&Value>,
) -> Result<String, PushError> {
    optional_text(row, field, value)?.ok_or(PushError::MissingField { row, field })
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
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => {
            Ok(Some(number.to_string()))
        }
        Some(other) => Err(PushError::NotAnInteger {
            row,
            field,
            value: other.to_string(),
        }),
    }
}

/// A stock quantity: an integer, as a JSON number or a string, within ±[`MAX_QUANTITY`].
fn quantity(row: usize, field: &'static str, value: &Value) -> Result<i64, PushError> {
    let not_an_integer = |value: String| PushError::NotAnInteger { row, field, value };
    let out_of_range = |value: String| PushError::OutOfRange { row, field, value };
    let parsed = match value {
        Value::Number(number) => match (number.as_i64(), number.is_u64()) {
            (Some(n), _) => n,
            (None, true) => return Err(out_of_range(number.to_string())),
            (None, false) => return Err(not_an_integer(number.to_string())),
        },
        Value::String(text) => match text.trim().parse::<i64>() {
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
    let Some(text) = optional_text(row, field, value)? else {
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
