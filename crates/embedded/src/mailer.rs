//! Mail as `.eml` files: the local binary's outbox. The bytes are exactly those
//! SES would send ([`sne_ports::mail::to_mime`]), so what an operator opens in a
//! mail client is what the deployed service mails.

use crate::blob::write_atomically;
use async_trait::async_trait;
use sne_ports::mail::{Mail, MailError, Mailer, to_mime};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct EmlMailer {
    outbox: PathBuf,
}

impl EmlMailer {
    /// The directory is created on the first mail.
    pub fn new(outbox_dir: impl Into<PathBuf>) -> Self {
        EmlMailer {
            outbox: outbox_dir.into(),
        }
    }

    pub fn outbox(&self) -> &Path {
        &self.outbox
    }
}

#[async_trait]
impl Mailer for EmlMailer {
    /// Writes `<outbox>/<YYYYMMDD-HHMMSS.ffffff>-<uuid>.eml` (UTC, so names sort by time
    /// whatever the machine's zone) and returns the file name as the message id.
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let bytes = to_mime(mail)?;
        let name = format!(
            "{}-{}.eml",
            chrono::Utc::now().format("%Y%m%d-%H%M%S%.6f"),
            uuid::Uuid::new_v4()
        );
        let path = self.outbox.join(&name);
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| MailError::Unavailable(format!("mail task failed: {e}")))?
            .map_err(|e| MailError::Unavailable(e.to_string()))?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;
    use sne_ports::mail::Attachment;

    fn mail() -> Mail {
        Mail {
            from: "noreply@example.com".into(),
            to: vec!["shop@example.com".into(), "owner@example.com".into()],
            subject: "【スマレジtoネクストエンジン】アップロード:成功".into(),
            body: "在庫数を 3 件通知しました。".into(),
            attachments: vec![Attachment {
                file_name: "在庫_20261127.csv".into(),
                content_type: "text/csv".into(),
                bytes: b"syohin_code,zaiko_su\r\nA-1,3\r\n".to_vec(),
            }],
        }
    }

    #[tokio::test]
    async fn a_mail_becomes_a_seven_bit_eml_that_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = EmlMailer::new(dir.path().join("outbox"));
        let id = mailer.send(&mail()).await.unwrap();

        let (stamp, rest) = id.split_at(22);
        assert!(
            chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S%.6f").is_ok(),
            "{id}"
        );
        assert!(rest.starts_with('-') && rest.ends_with(".eml"), "{id}");
        let files: Vec<_> = std::fs::read_dir(mailer.outbox())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, vec![id.clone()], "no temp file is left behind");

        let bytes = std::fs::read(mailer.outbox().join(&id)).unwrap();
        assert!(bytes.is_ascii(), "an .eml must be 7-bit");
        let raw = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            raw.contains("Subject: =?utf-8?"),
            "subject is RFC 2047 encoded"
        );

        let parsed = mail_parser::MessageParser::default()
            .parse(&bytes)
            .expect("parses");
        assert_eq!(parsed.subject(), Some(mail().subject.as_str()));
        let to: Vec<_> = parsed
            .to()
            .unwrap()
            .iter()
            .filter_map(|a| a.address())
            .collect();
        assert_eq!(to, vec!["shop@example.com", "owner@example.com"]);
        assert_eq!(
            parsed.body_text(0).as_deref().map(str::trim_end),
            Some(mail().body.as_str())
        );
        assert_eq!(parsed.attachment_count(), 1);
        let attachment = parsed.attachment(0).unwrap();
        assert_eq!(attachment.attachment_name(), Some("在庫_20261127.csv"));
        assert_eq!(
            attachment.contents(),
            mail().attachments[0].bytes.as_slice()
        );
    }

    #[tokio::test]
    async fn each_mail_gets_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = EmlMailer::new(dir.path());
        let a = mailer.send(&mail()).await.unwrap();
        let b = mailer.send(&mail()).await.unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[tokio::test]
    async fn an_invalid_mail_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = EmlMailer::new(dir.path().join("outbox"));
        let mut bad = mail();
        bad.to.clear();
        assert!(matches!(
            mailer.send(&bad).await,
            Err(MailError::Invalid(_))
        ));
        assert!(!mailer.outbox().exists());
    }
}
