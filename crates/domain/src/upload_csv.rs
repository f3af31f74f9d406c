//! The file NextEngine's `/api_v1_master_goods/upload` takes for stock deltas:
//! header `syohin_code,zaiko_su`, one row per goods code, signed deltas, CRLF;
//! and where each file is kept and what it is called.

use crate::time::to_jst;
use crate::upload_batch::UploadBatch;
use crate::{GoodsCode, TenantId};
use chrono::{DateTime, Utc};

/// One line of the upload: goods code and signed delta (never zero).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadLine {
    pub goods_code: GoodsCode,
    pub delta: i64,
}

pub fn render_upload_csv(lines: &[UploadLine]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(16 + lines.len() * 16));
    // Writing to a Vec cannot fail; goods codes were validated, so nothing needs quoting.
    writer
        .write_record(["syohin_code", "zaiko_su"])
        .expect("write to Vec");
    let mut number = itoa_buffer();
    for line in lines {
        writer
            .write_record([line.goods_code.as_bytes(), number.format(line.delta)])
            .expect("write to Vec");
    }
    writer.into_inner().expect("flush to Vec")
}

/// Reads back a file we wrote (for reports and the queue check), tolerant of LF.
pub fn parse_upload_csv(bytes: &[u8]) -> Result<Vec<UploadLine>, String> {
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let code_at = headers
        .iter()
        .position(|h| h == "syohin_code")
        .ok_or("syohin_code 列がありません")?;
    let delta_at = headers
        .iter()
        .position(|h| h == "zaiko_su")
        .ok_or("zaiko_su 列がありません")?;
    reader
        .records()
        .map(|record| {
            let record = record.map_err(|e| e.to_string())?;
            let code = record.get(code_at).unwrap_or_default().to_string();
            let delta = record
                .get(delta_at)
                .unwrap_or_default()
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("zaiko_su が整数ではありません: {code}"))?;
            Ok(UploadLine {
                goods_code: code.into(),
                delta,
            })
        })
        .collect()
}

/// A tiny integer formatter so rendering 20,000 lines allocates nothing per line.
struct IntBuffer([u8; 24], usize);

fn itoa_buffer() -> IntBuffer {
    IntBuffer([0; 24], 0)
}

impl IntBuffer {
    fn format(&mut self, value: i64) -> &[u8] {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(&mut self.0[..]);
        write!(cursor, "{value}").expect("24 bytes hold any i64");
        self.1 = cursor.position() as usize;
        &self.0[..self.1]
    }
}

/// Where a file's CSV is kept: per tenant and Japan-time day.
pub fn csv_key(tenant: &TenantId, batch_id: &str, at: DateTime<Utc>) -> String {
    let local = to_jst(at);
    format!(
        "tenants/{}/uploads/{}/{batch_id}.csv",
        tenant,
        local.format("%Y/%m/%d")
    )
}

/// The CSV's name in mails and downloads.
pub fn csv_file_name(batch: &UploadBatch) -> String {
    format!(
        "zaiko_{}_{}.csv",
        to_jst(batch.created_at).format("%Y%m%d%H%M%S"),
        batch.batch_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_header_and_signed_deltas_with_crlf() {
        let csv = render_upload_csv(&[
            UploadLine {
                goods_code: "ABC-001".into(),
                delta: -2,
            },
            UploadLine {
                goods_code: "ABC_002".into(),
                delta: 5,
            },
        ]);
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "syohin_code,zaiko_su\r\nABC-001,-2\r\nABC_002,5\r\n"
        );
    }

    #[test]
    fn round_trips() {
        let lines = vec![
            UploadLine {
                goods_code: "X1".into(),
                delta: i64::MIN + 1,
            },
            UploadLine {
                goods_code: "X2".into(),
                delta: 7,
            },
        ];
        assert_eq!(parse_upload_csv(&render_upload_csv(&lines)).unwrap(), lines);
    }

    #[test]
    fn rejects_files_without_the_columns() {
        assert!(parse_upload_csv(b"code,qty\r\nA,1\r\n").is_err());
    }
}
