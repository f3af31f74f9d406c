//! `parse_stock_send` faces whatever reaches the public webhook, so it must answer
//! every input with `Ok` or `Err`, never a panic, and what it accepts must be sane.

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

/// A valid row with its values written as strings or numbers at random.
fn valid_rows() -> impl Strategy<Value = (Value, i64, Option<i64>, Option<u64>)> {
    (
        1u32..99_999,
        1u64..999_999_999_999_999,
        -MAX_QUANTITY..=MAX_QUANTITY,
        prop::option::of(-MAX_QUANTITY..=MAX_QUANTITY),
        prop::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(store, product, stock_amount, amount, id, as_strings)| {
            let number = |n: i128| {
                if as_strings {
                    Value::String(n.to_string())
                } else {
                    json!(n)
                }
            };
            let mut row = json!({
                "storeId": number(store.into()),
                "productId": number(product.into()),
                "stockAmount": number(stock_amount.into()),
            });
            if let Some(amount) = amount {
                row["amount"] = number(amount.into());
            }
            if let Some(id) = id {
                row["id"] = number(id.into());
            }
            (row, stock_amount, amount, id)
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
                                     "rows": rows.iter().map(|(row, ..)| row.clone()).collect::<Vec<_>>()}]});
        let parsed = parse_stock_send("stock_send", &push.to_string())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.rows.len(), rows.len());
        for (row, (_, stock_amount, amount, id)) in parsed.rows.iter().zip(&rows) {
            prop_assert_eq!(row.history_id, *id);
            match amount {
                Some(amount) => {
                    prop_assert_eq!(row.kind, ChangeKind::History);
                    prop_assert_eq!((row.amount, row.after), (Some(*amount), Some(*stock_amount)));
                }
                None => {
                    prop_assert_eq!(row.kind, ChangeKind::Absolute);
                    prop_assert_eq!((row.amount, row.after), (None, Some(*stock_amount)));
                }
            }
        }
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
