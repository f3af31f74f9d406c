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

/// Splits `que_message` into row errors. `uploaded` are the data lines of the file
/// that was uploaded (goods code, delta) so a line number can name its goods code.
pub fn parse_que_message(message: &str, uploaded: &[(String, i64)]) -> Vec<RowError> {
    let _ = (message, uploaded);
    todo!("implemented by the domain helper")
}
