/// NextEngine's rule for 商品コード: half-width letters, digits, `-` and `_`, 1 to 30 characters.
pub const MAX_LEN: usize = 30;

pub fn is_valid_goods_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_dash_underscore() {
        assert!(is_valid_goods_code("ABC-001_x"));
        assert!(is_valid_goods_code(&"a".repeat(30)));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "ABC 001",
            "商品1",
            "A/B",
            "ABC-001\r",
            "Ａ1",
            &"a".repeat(31),
        ] {
            assert!(!is_valid_goods_code(bad), "{bad:?} must be rejected");
        }
    }
}
