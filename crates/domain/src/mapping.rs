//! Product identity between Smaregi (商品ID) and NextEngine (商品コード), both ways.

use crate::ids::{GoodsCode, ProductId, ProductPair};
use crate::tenant::MappingMode;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("{line} 行目: 列が足りません (product_id,goods_code)")]
    MissingColumn { line: usize },
    #[error("{line} 行目: 商品ID {product_id} が重複しています")]
    DuplicateProduct { line: usize, product_id: String },
    #[error("{line} 行目: 商品コード {goods_code} が重複しています")]
    DuplicateGoodsCode { line: usize, goods_code: String },
    #[error("CSV を読めません: {0}")]
    Csv(String),
}

/// The mapping in force for one tenant. `Identity` is the default (商品ID = 商品コード);
/// the other modes hold explicit pairs (from `product_ref` or an uploaded table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductMap {
    Identity,
    Pairs {
        forward: HashMap<ProductId, GoodsCode>,
        reverse: HashMap<GoodsCode, ProductId>,
    },
}

impl ProductMap {
    pub fn for_mode(mode: MappingMode, pairs: impl IntoIterator<Item = ProductPair>) -> Self {
        match mode {
            MappingMode::ProductId => ProductMap::Identity,
            MappingMode::ProductCode | MappingMode::Table => {
                let mut forward = HashMap::new();
                let mut reverse = HashMap::new();
                for ProductPair {
                    product_id,
                    goods_code,
                } in pairs
                {
                    reverse.insert(goods_code.clone(), product_id.clone());
                    forward.insert(product_id, goods_code);
                }
                ProductMap::Pairs { forward, reverse }
            }
        }
    }

    /// Smaregi product → NextEngine goods code.
    pub fn goods_code<'a>(&'a self, product_id: &'a str) -> Option<&'a str> {
        match self {
            ProductMap::Identity => Some(product_id),
            ProductMap::Pairs { forward, .. } => forward.get(product_id).map(GoodsCode::as_str),
        }
    }

    /// NextEngine goods code → Smaregi product (the order import's direction).
    pub fn product_id<'a>(&'a self, goods_code: &'a str) -> Option<&'a str> {
        match self {
            ProductMap::Identity => Some(goods_code),
            ProductMap::Pairs { reverse, .. } => reverse.get(goods_code).map(ProductId::as_str),
        }
    }
}

/// Reads an uploaded mapping table: header `product_id,goods_code` (also accepted:
/// `商品ID,商品コード`), one pair per line. Both sides must be unique, otherwise
/// one direction of the mapping would be ambiguous.
pub fn parse_mapping_table(text: &str) -> Result<Vec<ProductPair>, MappingError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let mut pairs = Vec::new();
    let mut seen_products = HashMap::new();
    let mut seen_codes = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = record.map_err(|e| MappingError::Csv(e.to_string()))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let (Some(product_id), Some(goods_code)) = (record.get(0), record.get(1)) else {
            return Err(MappingError::MissingColumn { line });
        };
        if product_id.is_empty() || goods_code.is_empty() {
            return Err(MappingError::MissingColumn { line });
        }
        if seen_products.insert(product_id.to_string(), line).is_some() {
            return Err(MappingError::DuplicateProduct {
                line,
                product_id: product_id.into(),
            });
        }
        if seen_codes.insert(goods_code.to_string(), line).is_some() {
            return Err(MappingError::DuplicateGoodsCode {
                line,
                goods_code: goods_code.into(),
            });
        }
        pairs.push(ProductPair::new(product_id, goods_code));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_both_ways_unchanged() {
        let map = ProductMap::for_mode(MappingMode::ProductId, []);
        assert_eq!(map.goods_code("8000001"), Some("8000001"));
        assert_eq!(map.product_id("8000001"), Some("8000001"));
    }

    #[test]
    fn pairs_map_both_ways_and_unknowns_are_none() {
        let map =
            ProductMap::for_mode(MappingMode::Table, [ProductPair::new("8000001", "ABC-001")]);
        assert_eq!(map.goods_code("8000001"), Some("ABC-001"));
        assert_eq!(map.product_id("ABC-001"), Some("8000001"));
        assert_eq!(map.goods_code("9"), None);
        assert_eq!(map.product_id("8000001"), None);
    }

    #[test]
    fn parses_a_table_with_bom_and_blank_lines() {
        let pairs =
            parse_mapping_table("\u{feff}商品ID,商品コード\r\n1, A-1 \r\n\r\n2,B-2\r\n").unwrap();
        assert_eq!(
            pairs,
            vec![ProductPair::new("1", "A-1"), ProductPair::new("2", "B-2")]
        );
    }

    #[test]
    fn duplicates_are_refused_with_their_line() {
        assert_eq!(
            parse_mapping_table("product_id,goods_code\n1,A\n1,B\n"),
            Err(MappingError::DuplicateProduct {
                line: 3,
                product_id: "1".into()
            })
        );
        assert_eq!(
            parse_mapping_table("product_id,goods_code\n1,A\n2,A\n"),
            Err(MappingError::DuplicateGoodsCode {
                line: 3,
                goods_code: "A".into()
            })
        );
        assert!(matches!(
            parse_mapping_table("product_id,goods_code\n1\n"),
            Err(MappingError::MissingColumn { line: 2 })
        ));
    }
}
