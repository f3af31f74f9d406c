//! The mail port and the one MIME encoding every mailer uses (the `.eml` files of
//! the embedded mailer and the raw message SES sends are the same bytes).

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail: {0}")]
    Invalid(String),
    #[error("mail could not be sent: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one mail; returns the transport's message id.
    async fn send(&self, mail: &Mail) -> Result<String, MailError>;
}

/// RFC 5322 bytes, 7-bit clean: Japanese subject and file names are RFC 2047
/// encoded, the body is base64 or quoted-printable, attachments base64.
pub fn to_mime(mail: &Mail) -> Result<Vec<u8>, MailError> {
    let parse = |addr: &str| {
        addr.parse::<Mailbox>()
            .map_err(|e| MailError::Invalid(format!("{addr}: {e}")))
    };
    let mut builder = lettre::Message::builder()
        .from(parse(&mail.from)?)
        .subject(mail.subject.clone());
    if mail.to.is_empty() {
        return Err(MailError::Invalid("no recipient".into()));
    }
    for to in &mail.to {
        builder = builder.to(parse(to)?);
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone());
    let message = if mail.attachments.is_empty() {
        builder.singlepart(text)
    } else {
        let mut parts = MultiPart::mixed().singlepart(text);
        for attachment in &mail.attachments {
            let content_type = ContentType::parse(&attachment.content_type)
                .map_err(|e| MailError::Invalid(e.to_string()))?;
            parts = parts.singlepart(
                MimeAttachment::new(attachment.file_name.clone())
                    .body(attachment.bytes.clone(), content_type),
            );
        }
        builder.multipart(parts)
    }
    .map_err(|e| MailError::Invalid(e.to_string()))?;
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_is_seven_bit_and_carries_the_attachment() {
        let mail = Mail {
            from: "noreply@example.com".into(),
            to: vec!["shop@example.com".into()],
            subject: "【スマレジtoネクストエンジン】アップロード:成功".into(),
            body: "本文です".into(),
            attachments: vec![Attachment {
                file_name: "在庫_20261127.csv".into(),
                content_type: "text/csv".into(),
                bytes: b"syohin_code,zaiko_su\r\nA,1\r\n".to_vec(),
            }],
        };
        let bytes = to_mime(&mail).unwrap();
        assert!(bytes.iter().all(|b| b.is_ascii()), "MIME must be 7-bit");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Subject: =?utf-8?"));
        assert!(text.contains("multipart/mixed"));
        assert!(text.contains("Content-Disposition: attachment"));
    }

    #[test]
    fn a_mail_without_recipient_is_refused() {
        let mail = Mail {
            from: "noreply@example.com".into(),
            to: vec![],
            subject: "x".into(),
            body: "y".into(),
            attachments: vec![],
        };
        assert!(matches!(to_mime(&mail), Err(MailError::Invalid(_))));
    }
}
