//! NextEngine reports a failed upload as free text in `que_message`. We turn it into
//! row errors where the text allows and always keep the raw text.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// File line number as NextEngine counts it (header = line 1).
    pub line: Option<u32>,
    pub goods_code: Option<String>,
    pub message: String,
}

/// NextEngine's refusal of a subtraction beyond free stock (在庫数 − 引当数);
/// manual 12616 quotes it, the reference's "Update" table has the source.
pub const FREE_STOCK_TEXT: &str = "フリー在庫数以上の在庫を減らすことはできません";

/// What a row error is about, as far as its text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowErrorKind {
    /// NextEngine wanted to register the goods anew and missed required
    /// fields (「…は必須です」): the goods code is not registered there.
    UnknownGoods,
    /// The subtraction would take more than the free stock: units are
    /// allocated (引当) to orders. The file itself is fine.
    FreeStock,
    Other,
}

impl RowError {
    pub fn kind(&self) -> RowErrorKind {
        let m = self.message.as_str();
        if m.contains(FREE_STOCK_TEXT) {
            RowErrorKind::FreeStock
        } else if m.contains("は必須です") && !m.trim_start().starts_with("商品コードは必須")
        {
            // An empty goods code also says 必須, but that is our file's
            // fault, not a missing registration.
            RowErrorKind::UnknownGoods
        } else {
            RowErrorKind::Other
        }
    }
}

/// Splits `que_message` into row errors. `uploaded` are the data lines of the file
/// that was uploaded (goods code, delta) so a line number can name its goods code.
pub fn parse_que_message(message: &str, uploaded: &[(String, i64)]) -> Vec<RowError> {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| match split_line_number(line) {
            Some((number, rest)) => {
                let text = if rest.is_empty() { line } else { rest };
                // NextEngine counts the header as line 1, so data line N is index N − 2.
                let uploaded_code = (number as usize)
                    .checked_sub(2)
                    .and_then(|index| uploaded.get(index))
                    .map(|(code, _)| code.clone());
                RowError {
                    line: Some(number),
                    goods_code: uploaded_code.or_else(|| goods_code_in_text(text)),
                    message: text.to_string(),
                }
            }
            None => RowError {
                line: None,
                goods_code: None,
                message: line.to_string(),
            },
        })
        .collect()
}

/// Reads a leading `N行目` (also `N 行目`, `[N行目]`, full-width digits) and returns
/// the number and the text after it and its separator.
fn split_line_number(line: &str) -> Option<(u32, &str)> {
    let rest = line
        .trim_start_matches(['[', '［', '【', '(', '（'])
        .trim_start();
    let digits_end = rest
        .char_indices()
        .find(|(_, c)| digit_value(*c).is_none())
        .map_or(rest.len(), |(at, _)| at);
    if digits_end == 0 {
        return None;
    }
    let number = rest[..digits_end].chars().try_fold(0u32, |number, c| {
        number.checked_mul(10)?.checked_add(digit_value(c)?)
    });
    let rest = rest[digits_end..].trim_start().strip_prefix("行目")?;
    let rest = rest
        .trim_start_matches([']', '］', '】', ')', '）'])
        .trim_start_matches(|c: char| c == ':' || c == '：' || c.is_whitespace());
    Some((number?, rest.trim()))
}

fn digit_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => c.to_digit(10),
        '０'..='９' => Some(c as u32 - '０' as u32),
        _ => None,
    }
}

/// A goods code NextEngine wrote into the text as `商品コード[XXX]` or `商品コード:XXX`.
fn goods_code_in_text(text: &str) -> Option<String> {
    let (_, after) = text.split_once("商品コード")?;
    let after = after.trim_start();
    let code = if let Some(bracketed) = after.strip_prefix(['[', '［', '「']) {
        bracketed.split([']', '］', '」']).next()?
    } else {
        let value = after.strip_prefix([':', '：', '='])?.trim_start();
        let end = value
            .find(|c: char| c.is_whitespace() || "、。,，)）]］".contains(c))
            .unwrap_or(value.len());
        &value[..end]
    };
    let code = code.trim();
    (!code.is_empty()).then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uploaded() -> Vec<(String, i64)> {
        vec![
            ("ABC-001".to_string(), -2),
            ("ABC-002".to_string(), 5),
            ("ABC-003".to_string(), -1),
            ("ABC-004".to_string(), 3),
        ]
    }

    fn row(line: Option<u32>, goods_code: Option<&str>, message: &str) -> RowError {
        RowError {
            line,
            goods_code: goods_code.map(str::to_string),
            message: message.to_string(),
        }
    }

    #[test]
    fn an_empty_message_has_no_errors() {
        assert!(parse_que_message("", &uploaded()).is_empty());
        assert!(parse_que_message("\n \r\n", &uploaded()).is_empty());
    }

    #[test]
    fn simulator_lines_name_the_goods_of_their_file_line() {
        let message = "3行目: 仕入先コードは必須です。商品名は必須です。原価は必須です。売価は必須です。\n\
                       5行目: フリー在庫数以上の在庫を減らすことはできません。";
        assert_eq!(
            parse_que_message(message, &uploaded()),
            vec![
                row(
                    Some(3),
                    Some("ABC-002"),
                    "仕入先コードは必須です。商品名は必須です。原価は必須です。売価は必須です。"
                ),
                row(
                    Some(5),
                    Some("ABC-004"),
                    "フリー在庫数以上の在庫を減らすことはできません。"
                ),
            ]
        );
    }

    #[test]
    fn row_errors_know_their_kind() {
        let message = "2行目: フリー在庫数以上の在庫を減らすことはできません。\n\
                       3行目: 仕入先コードは必須です。商品名は必須です。原価は必須です。売価は必須です。\n\
                       4行目: 商品コードは必須です。\n\
                       5行目: 在庫数は整数で入力して下さい。";
        let kinds: Vec<RowErrorKind> = parse_que_message(message, &uploaded())
            .iter()
            .map(RowError::kind)
            .collect();
        assert_eq!(
            kinds,
            [
                RowErrorKind::FreeStock,
                RowErrorKind::UnknownGoods,
                RowErrorKind::Other,
                RowErrorKind::Other
            ]
        );
    }

    #[test]
    fn line_number_variants_are_understood() {
        for line in [
            "3 行目: 商品名は必須です。",
            "３行目：商品名は必須です。",
            "[3行目] 商品名は必須です。",
            "【３行目】商品名は必須です。",
            "  3行目 商品名は必須です。  ",
            "3行目:商品名は必須です。",
        ] {
            assert_eq!(
                parse_que_message(line, &uploaded()),
                vec![row(Some(3), Some("ABC-002"), "商品名は必須です。")],
                "{line}"
            );
        }
    }

    #[test]
    fn a_line_outside_the_file_takes_the_code_from_the_text() {
        for line in [
            "9行目: 商品コード[XYZ-9]は登録できません。",
            "9行目: 商品コード:XYZ-9 は登録できません。",
            "9行目: 商品コード：XYZ-9、登録できません。",
        ] {
            assert_eq!(
                parse_que_message(line, &uploaded())[0]
                    .goods_code
                    .as_deref(),
                Some("XYZ-9"),
                "{line}"
            );
        }
        assert_eq!(
            parse_que_message("9行目: 商品名は必須です。", &uploaded())[0].goods_code,
            None
        );
    }

    #[test]
    fn the_header_line_has_no_goods_code() {
        assert_eq!(
            parse_que_message("1行目: 見出しが不正です。", &uploaded()),
            vec![row(Some(1), None, "見出しが不正です。")]
        );
    }

    #[test]
    fn lines_without_a_row_number_are_kept_whole() {
        assert_eq!(
            parse_que_message("CSVの形式が不正です。\r\n行目が不明: 3", &uploaded()),
            vec![
                row(None, None, "CSVの形式が不正です。"),
                row(None, None, "行目が不明: 3"),
            ]
        );
    }

    #[test]
    fn a_bare_row_number_keeps_the_line_as_message() {
        assert_eq!(
            parse_que_message("4行目", &uploaded()),
            vec![row(Some(4), Some("ABC-003"), "4行目")]
        );
    }

    #[test]
    fn an_absurd_row_number_is_not_a_row_number() {
        let line = "99999999999行目: エラー";
        assert_eq!(
            parse_que_message(line, &uploaded()),
            vec![row(None, None, line)]
        );
    }
}
