//! The `.eml` outbox of the embedded mailer, read back as a mail client would.

use mail_parser::MimeHeaders;
use std::path::Path;

/// Every mail in `<data_dir>/outbox`, oldest first, parsed.
pub fn mails_in(data_dir: &Path) -> Vec<SentMail> {
    let outbox = data_dir.join("outbox");
    let mut paths: Vec<_> = std::fs::read_dir(&outbox)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let raw = std::fs::read(&path).expect("eml");
            assert!(raw.is_ascii(), "mails are 7-bit");
            let message = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("parsable MIME");
            SentMail {
                subject: message.subject().unwrap_or_default().to_string(),
                body: message.body_text(0).unwrap_or_default().to_string(),
                attachments: message
                    .attachments()
                    .map(|a| {
                        (
                            a.attachment_name().unwrap_or_default().to_string(),
                            a.contents().to_vec(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub subject: String,
    pub body: String,
    pub attachments: Vec<(String, Vec<u8>)>,
}
