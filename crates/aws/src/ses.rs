//! Run reports through SES v2 `SendEmail` with raw content: the exact MIME bytes
//! of `sne_ports::mail::to_mime`, the same the embedded mailer writes as `.eml`.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::DisplayErrorContext;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use sne_ports::mail::{Mail, MailError, Mailer, to_mime};

#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
}

impl SesMailer {
    pub fn new(client: Client) -> Self {
        SesMailer { client }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let mime = to_mime(mail)?;
        let raw = RawMessage::builder()
            .data(Blob::new(mime))
            .build()
            .map_err(|e| MailError::Invalid(e.to_string()))?;
        // Envelope sender and recipients given explicitly rather than left to
        // SES to read from the headers: they are exactly the Mail's.
        let out = self
            .client
            .send_email()
            .from_email_address(&mail.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(mail.to.clone()))
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await
            .map_err(|e| {
                let rejected = e.as_service_error().is_some_and(|s| {
                    s.is_message_rejected() || s.is_mail_from_domain_not_verified_exception()
                });
                let text = DisplayErrorContext(e).to_string();
                if rejected {
                    MailError::Invalid(text)
                } else {
                    MailError::Unavailable(text)
                }
            })?;
        out.message_id
            .ok_or_else(|| MailError::Unavailable("SES returned no message id".into()))
    }
}
