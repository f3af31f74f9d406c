use serde::{Deserialize, Serialize};
use std::fmt;

/// Smaregi 在庫区分 (`stockDivision`). Codes Smaregi may add later are kept as
/// [`StockDivision::Other`] and treated like any "other" reason, never rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum StockDivision {
    Master,
    Sale,
    PurchaseReceipt,
    TransferOut,
    TransferIn,
    Rental,
    Layaway,
    Stocktaking,
    Adjustment,
    Shipment,
    EcLink,
    Return,
    PromotionalGoods,
    Loss,
    ApiChange,
    SaleAllocation,
    TransferShortage,
    OrderAllocation,
    Other(String),
}

impl StockDivision {
    const KNOWN: [(&'static str, StockDivision, &'static str); 18] = [
        ("01", StockDivision::Master, "マスタ"),
        ("02", StockDivision::Sale, "売上"),
        ("03", StockDivision::PurchaseReceipt, "仕入"),
        ("04", StockDivision::TransferOut, "出庫"),
        ("05", StockDivision::TransferIn, "入庫"),
        ("06", StockDivision::Rental, "レンタル"),
        ("07", StockDivision::Layaway, "取置"),
        ("08", StockDivision::Stocktaking, "棚卸"),
        ("09", StockDivision::Adjustment, "調整"),
        ("10", StockDivision::Shipment, "出荷"),
        ("11", StockDivision::EcLink, "EC連携"),
        ("12", StockDivision::Return, "返品"),
        ("13", StockDivision::PromotionalGoods, "販促品"),
        ("14", StockDivision::Loss, "ロス"),
        ("15", StockDivision::ApiChange, "スマレジAPI連携"),
        ("16", StockDivision::SaleAllocation, "売上引当"),
        ("17", StockDivision::TransferShortage, "入庫欠品"),
        ("18", StockDivision::OrderAllocation, "受注在庫引当"),
    ];

    /// Reads a code as Smaregi sends it: `"8"`, `"08"` and `" 08 "` are the same reason.
    pub fn from_code(code: &str) -> Self {
        let trimmed = code.trim();
        let normalized = if trimmed.len() == 1 && trimmed.as_bytes()[0].is_ascii_digit() {
            format!("0{trimmed}")
        } else {
            trimmed.to_string()
        };
        Self::KNOWN
            .iter()
            .find(|(c, _, _)| *c == normalized)
            .map(|(_, d, _)| d.clone())
            .unwrap_or(StockDivision::Other(trimmed.to_string()))
    }

    pub fn code(&self) -> &str {
        match self {
            StockDivision::Other(code) => code,
            known => Self::KNOWN
                .iter()
                .find(|(_, d, _)| d == known)
                .map(|(c, _, _)| *c)
                .unwrap_or(""),
        }
    }

    /// Japanese label for reports and the admin screen.
    pub fn label(&self) -> &str {
        match self {
            StockDivision::Other(_) => "その他",
            known => Self::KNOWN
                .iter()
                .find(|(_, d, _)| d == known)
                .map(|(_, _, l)| *l)
                .unwrap_or("その他"),
        }
    }
}

impl From<String> for StockDivision {
    fn from(code: String) -> Self {
        StockDivision::from_code(&code)
    }
}

impl From<StockDivision> for String {
    fn from(d: StockDivision) -> Self {
        d.code().to_string()
    }
}

impl fmt::Display for StockDivision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.label(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips() {
        for (code, division, _) in StockDivision::KNOWN.iter() {
            assert_eq!(&StockDivision::from_code(code), division);
            assert_eq!(division.code(), *code);
        }
    }

    #[test]
    fn single_digit_codes_are_padded() {
        assert_eq!(StockDivision::from_code("8"), StockDivision::Stocktaking);
        assert_eq!(StockDivision::from_code(" 14 "), StockDivision::Loss);
    }

    #[test]
    fn unknown_codes_are_kept() {
        let d = StockDivision::from_code("99");
        assert_eq!(d, StockDivision::Other("99".into()));
        assert_eq!(d.code(), "99");
        assert_eq!(d.label(), "その他");
    }
}
