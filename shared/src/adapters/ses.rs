//! [`Mailer`] on SES v2 `SendEmail`, with a plain-text and an HTML part.

use super::aws_error;
use crate::error::Result;
use crate::ports::{Mail, Mailer};
use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

/// Sends mail from one verified sender address.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    sender: String,
}

impl SesMailer {
    /// A mailer sending as `sender`.
    pub fn new(client: aws_sdk_sesv2::Client, sender: impl Into<String>) -> Self {
        Self { client, sender: sender.into() }
    }
}

fn content(text: &str) -> Result<Content> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|err| crate::PimError::aws("ses:SendEmail", false, err))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        let body = Body::builder().text(content(&mail.text)?).html(content(&mail.html)?).build();
        let message = Message::builder().subject(content(&mail.subject)?).body(body).build();
        self.client
            .send_email()
            .from_email_address(&self.sender)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|err| aws_error("ses:SendEmail", err))?;
        Ok(())
    }
}
