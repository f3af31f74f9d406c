//! The identifiers that travel together as plain text — a Smaregi store and
//! product, a NextEngine goods code and upload queue — as types of their own,
//! so one is never passed where another belongs. Each is the exact text the API
//! sent (string-typed, never parsed as a number) and is stored as that text.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(text: impl Into<String>) -> Self {
                $name(text.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name(text.to_string())
            }
        }

        impl From<&String> for $name {
            fn from(text: &String) -> Self {
                $name(text.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

text_id!(
    /// Smaregi's 店舗ID (`storeId`).
    StoreId
);
text_id!(
    /// Smaregi's 商品ID (`productId`).
    ProductId
);
text_id!(
    /// NextEngine's 商品コード (`syohin_code`, `goods_id`).
    GoodsCode
);
text_id!(
    /// NextEngine's upload queue id (`que_id`).
    QueId
);

/// A Smaregi product and the NextEngine goods it is (a mapping row or a
/// looked-up 商品コード). Stored as the `[product id, goods code]` pair it was
/// before it had a name, so staged data written earlier still reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "(ProductId, GoodsCode)", into = "(ProductId, GoodsCode)")]
pub struct ProductPair {
    pub product_id: ProductId,
    pub goods_code: GoodsCode,
}

impl ProductPair {
    pub fn new(product_id: impl Into<ProductId>, goods_code: impl Into<GoodsCode>) -> Self {
        ProductPair {
            product_id: product_id.into(),
            goods_code: goods_code.into(),
        }
    }
}

impl From<(ProductId, GoodsCode)> for ProductPair {
    fn from((product_id, goods_code): (ProductId, GoodsCode)) -> Self {
        ProductPair {
            product_id,
            goods_code,
        }
    }
}

impl From<ProductPair> for (ProductId, GoodsCode) {
    fn from(pair: ProductPair) -> Self {
        (pair.product_id, pair.goods_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_stored_as_its_exact_text() {
        let id = StoreId::from("0012");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0012\"");
        assert_eq!(serde_json::from_str::<StoreId>("\"0012\"").unwrap(), id);
        assert_eq!(id, "0012");
        assert_ne!(id, "12");
    }

    #[test]
    fn a_pair_is_stored_as_the_two_texts() {
        let pair = ProductPair::new("8000001", "ABC-001");
        let text = serde_json::to_string(&pair).unwrap();
        assert_eq!(text, r#"["8000001","ABC-001"]"#);
        assert_eq!(serde_json::from_str::<ProductPair>(&text).unwrap(), pair);
    }

    #[test]
    fn a_map_keyed_by_an_id_is_found_by_its_text() {
        let map: std::collections::HashMap<GoodsCode, u32> = [(GoodsCode::from("A-1"), 3)].into();
        assert_eq!(map.get("A-1"), Some(&3));
    }
}
