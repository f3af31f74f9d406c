//! `parse_stock_send` faces whatever reaches the public webhook, so it must answer
//! every input with `Ok` or `Err`, never a panic, and what it accepts must be sane.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sne_domain::ChangeKind;
use sne_domain::push::{MAX_QUANTITY, ParsedPush, PushError, parse_stock_send};

fn check_accepted(parsed: &ParsedPush) -> Result<(), TestCaseError> {
    for row in &parsed.rows {
        prop_assert!(!row.store_id.is_empty() && !row.product_id.is_empty());
        for quantity in [row.amount, row.after].into_iter().flatten() {
            prop_assert!(quantity.abs() <= MAX_QUANTITY);
        }
        match row.kind {
            ChangeKind::History => prop_assert!(row.amount.is_some() && row.after.is_some()),
            ChangeKind::Absolute => prop_assert!(row.amount.is_none() && row.after.is_some()),
            ChangeKind::Relative => prop_assert!(row.amount.is_some() && row.after.is_none()),
            ChangeKind::Unresolved => prop_assert!(false, "a push row is never unresolved"),
        }
    }
    Ok(())
}

fn field_names() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("storeId".to_string()),
        Just("productId".to_string()),
        Just("stockAmount".to_string()),
        Just("amount".to_string()),
        Just("stockDivision".to_string()),
        Just("updDateTime".to_string()),
        Just("id".to_string()),
        Just("fromStoreId".to_string()),
        Just("toStoreId".to_string()),
        Just("table_name".to_string()),
        Just("rows".to_string()),
        Just("data".to_string()),
        Just("proc_info".to_string()),
        Just("proc_detail_division".to_string()),
        "[a-zA-Z_]{0,8}",
    ]
}

fn scalars() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        (-2_000_000_000i64..2_000_000_000).prop_map(|n| Value::String(n.to_string())),
        Just(Value::String("Stock".into())),
        Just(Value::String("2026-11-27 10:00:00".into())),
        Just(Value::String("2026-11-27T10:00:00.5+09:00".into())),
        Just(Value::String("2026-02-30T10:00:00Z".into())),
        (-2_000_000i64..2_000_000).prop_map(|n| Value::String(format!("{n}.000"))),
        (-2_000_000i64..2_000_000).prop_map(|n| json!(n as f64)),
        Just(Value::String("2".into())),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn json_values() -> impl Strategy<Value = Value> {
    scalars().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_names(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A row built only from the fields Smaregi uses, each with a value of any type.
fn stock_rows() -> impl Strategy<Value = Value> {
    prop::collection::vec((field_names(), scalars()), 0..10)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
}

fn pushes() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(stock_rows(), 0..6),
        prop::option::of(scalars()),
        prop::option::of(json_values()),
    )
        .prop_map(|(rows, division, other_table)| {
            let mut data = vec![json!({"table_name": "Stock", "rows": rows})];
            if let Some(table) = other_table {
                data.push(table);
            }
            let mut push = json!({ "data": data });
            if let Some(division) = division {
                push["proc_info"] = json!({ "proc_detail_division": division });
            }
            push
        })
}

/// The ways a sender may write an integer; all of them mean the same number.
#[derive(Debug, Clone, Copy)]
enum Style {
    Text,
    Number,
    /// `"3.000"`: a decimal string with a zero fraction.
    DecimalText,
    /// `3.0`: a JSON float with a zero fraction.
    Float,
}

fn styles() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Text),
        Just(Style::Number),
        Just(Style::DecimalText),
        Just(Style::Float)
    ]
}

/// Largest integer an `f64` holds exactly.
const MAX_EXACT_FLOAT: i128 = 1 << 53;

fn write_integer(n: i128, style: Style) -> Value {
    match style {
        Style::Text => Value::String(n.to_string()),
        Style::Number => json!(n),
        Style::DecimalText => Value::String(format!("{n}.000")),
        // Beyond exact floats a sender would not write a float for an id.
        Style::Float if n.abs() <= MAX_EXACT_FLOAT => json!(n as f64),
        Style::Float => json!(n),
    }
}

/// A Japan-time instant and one of the writings a push may carry it in.
fn times() -> impl Strategy<Value = (String, NaiveDateTime)> {
    (
        0i64..20 * 365 * 24 * 3600,
        prop::option::of(0u32..1000),
        0usize..5,
    )
        .prop_map(|(seconds, millis, writing)| {
            let base = NaiveDate::from_ymd_opt(2015, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap();
            let jst = base
                + Duration::seconds(seconds)
                + Duration::milliseconds(millis.unwrap_or(0).into());
            let fraction = millis.map(|m| format!(".{m:03}")).unwrap_or_default();
            let utc = jst - Duration::hours(9);
            let text = match writing {
                0 => format!("{}{fraction}", jst.format("%Y-%m-%d %H:%M:%S")),
                1 => format!("{}{fraction}", jst.format("%Y-%m-%dT%H:%M:%S")),
                2 => format!("{}{fraction}+09:00", jst.format("%Y-%m-%dT%H:%M:%S")),
                3 => format!("{}{fraction}Z", utc.format("%Y-%m-%dT%H:%M:%S")),
                _ => format!(
                    "{}{fraction}-03:00",
                    (jst - Duration::hours(12)).format("%Y-%m-%dT%H:%M:%S")
                ),
            };
            (text, jst)
        })
}

/// What a valid row must be read back as.
#[derive(Debug, Clone)]
struct Expected {
    store: u32,
    product: u64,
    stock_amount: i64,
    amount: Option<i64>,
    id: Option<u64>,
    time: Option<NaiveDateTime>,
}

/// A valid row with each value written in any of the [`Style`]s and its time
/// (if any) in any accepted writing.
fn valid_rows() -> impl Strategy<Value = (Value, Expected)> {
    (
        1u32..99_999,
        1u64..999_999_999_999_999,
        -MAX_QUANTITY..=MAX_QUANTITY,
        prop::option::of(-MAX_QUANTITY..=MAX_QUANTITY),
        prop::option::of(any::<u64>()),
        prop::option::of(times()),
        prop::collection::vec(styles(), 5),
    )
        .prop_map(|(store, product, stock_amount, amount, id, time, styles)| {
            let mut row = json!({
                "storeId": write_integer(store.into(), styles[0]),
                "productId": write_integer(product.into(), styles[1]),
                "stockAmount": write_integer(stock_amount.into(), styles[2]),
            });
            if let Some(amount) = amount {
                row["amount"] = write_integer(amount.into(), styles[3]);
            }
            if let Some(id) = id {
                row["id"] = write_integer(id.into(), styles[4]);
            }
            if let Some((text, _)) = &time {
                row["updDateTime"] = Value::String(text.clone());
            }
            let expected = Expected {
                store,
                product,
                stock_amount,
                amount,
                id,
                time: time.map(|(_, at)| at),
            };
            (row, expected)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_text_never_panics(proc_name in prop_oneof![Just("stock_send".to_string()), ".{0,12}"],
                                   params in ".{0,400}") {
        if let Ok(parsed) = parse_stock_send(&proc_name, &params) {
            check_accepted(&parsed)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let params = String::from_utf8_lossy(&bytes);
        if let Ok(parsed) = parse_stock_send("stock_send", &params) {
            check_accepted(&parsed)?;
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_values()) {
        if let Ok(parsed) = parse_stock_send("stock_send", &value.to_string()) {
            check_accepted(&parsed)?;
        }
    }

    #[test]
    fn push_shaped_json_never_panics(push in pushes(), escape_quotes in any::<bool>()) {
        let mut params = push.to_string();
        if escape_quotes {
            params = params.replace('"', "\\\"");
        }
        match parse_stock_send("stock_send", &params) {
            Ok(parsed) => check_accepted(&parsed)?,
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn valid_rows_are_read_back_exactly(rows in prop::collection::vec(valid_rows(), 1..20)) {
        let push = json!({"data": [{"table_name": "Stock",
                                     "rows": rows.iter().map(|(row, _)| row.clone()).collect::<Vec<_>>()}]});
        let parsed = parse_stock_send("stock_send", &push.to_string())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.rows.len(), rows.len());
        for (row, (_, expected)) in parsed.rows.iter().zip(&rows) {
            prop_assert_eq!(&row.store_id, &expected.store.to_string());
            prop_assert_eq!(&row.product_id, &expected.product.to_string());
            prop_assert_eq!(row.history_id, expected.id);
            prop_assert_eq!(row.changed_at, expected.time);
            match expected.amount {
                Some(amount) => {
                    prop_assert_eq!(row.kind, ChangeKind::History);
                    prop_assert_eq!((row.amount, row.after), (Some(amount), Some(expected.stock_amount)));
                }
                None => {
                    prop_assert_eq!(row.kind, ChangeKind::Absolute);
                    prop_assert_eq!((row.amount, row.after), (None, Some(expected.stock_amount)));
                }
            }
        }
    }

    #[test]
    fn a_real_fraction_is_refused_naming_its_row_and_field(
        rows in prop::collection::vec(valid_rows(), 1..8),
        bad in any::<prop::sample::Index>(),
        field in prop_oneof![Just("stockAmount"), Just("amount")],
        integer in -MAX_QUANTITY..MAX_QUANTITY,
        fraction in 1u32..1000,
        as_text in any::<bool>(),
    ) {
        let mut rows: Vec<Value> = rows.into_iter().map(|(row, _)| row).collect();
        let bad = bad.index(rows.len());
        let decimal = format!("{integer}.{fraction:03}");
        rows[bad][field] = if as_text {
            Value::String(decimal)
        } else {
            serde_json::from_str(&decimal).unwrap()
        };
        let push = json!({"data": [{"table_name": "Stock", "rows": rows}]});
        let error = parse_stock_send("stock_send", &push.to_string());
        let names_the_row = matches!(
            &error,
            Err(PushError::NotAnInteger { row, field: named, .. }) if *row == bad + 1 && *named == field
        );
        prop_assert!(names_the_row, "{:?}", error);
    }

    #[test]
    fn an_impossible_time_is_refused_naming_its_row(
        rows in prop::collection::vec(valid_rows(), 1..8),
        bad in any::<prop::sample::Index>(),
        text in prop_oneof![
            Just("2026-02-30 10:00:00".to_string()),
            Just("2026-04-31T00:00:00+09:00".to_string()),
            Just("2026-01-01 24:00:00".to_string()),
            Just("2026-01-01T10:60:00Z".to_string()),
            "[a-z/]{1,12}",
        ],
    ) {
        let mut rows: Vec<Value> = rows.into_iter().map(|(row, _)| row).collect();
        let bad = bad.index(rows.len());
        rows[bad]["updDateTime"] = Value::String(text);
        let push = json!({"data": [{"table_name": "Stock", "rows": rows}]});
        let error = parse_stock_send("stock_send", &push.to_string());
        let names_the_row = matches!(
            &error,
            Err(PushError::NotATime { row, field: "updDateTime", .. }) if *row == bad + 1
        );
        prop_assert!(names_the_row, "{:?}", error);
    }

    #[test]
    fn out_of_range_quantities_are_refused(excess in 1i64..1_000_000, negative in any::<bool>()) {
        let value = (MAX_QUANTITY + excess) * if negative { -1 } else { 1 };
        let push = json!({"data": [{"table_name": "Stock",
                                     "rows": [{"storeId": "1", "productId": "2", "stockAmount": value.to_string()}]}]});
        let is_out_of_range = matches!(
            parse_stock_send("stock_send", &push.to_string()),
            Err(PushError::OutOfRange { row: 1, field: "stockAmount", .. })
        );
        prop_assert!(is_out_of_range);
    }
}
