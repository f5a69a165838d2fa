//! The mail the emulator accepted, read back through the mailbox view that
//! `scripts/emulator.py` adds to it (`/pim-emulator/mail.json`: SES's sent messages only).
//!
//! The emulator keeps one body per message (the HTML part when there is one), and its
//! mailbox is shared by every account, so readers match by recipient and content.

use serde_json::Value;

/// One sent message as the emulator stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    /// The emulator's message id.
    pub id: String,
    /// The sender.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The body the emulator kept (HTML when the message had an HTML part).
    pub body: String,
}

impl SentMail {
    /// The `href` targets in the body, HTML entities decoded.
    pub fn links(&self) -> Vec<String> {
        self.body
            .split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|link| link.replace("&amp;", "&"))
            .collect()
    }
}

/// Every message the emulator accepted so far, oldest first.
pub async fn sent_mail(
    http: &reqwest::Client,
    emulator_url: &str,
) -> Result<Vec<SentMail>, String> {
    let url = format!("{emulator_url}/pim-emulator/mail.json");
    let data: Value = http
        .get(&url)
        .send()
        .await
        .map_err(|err| format!("cannot read the emulator's mailbox: {err}"))?
        .json()
        .await
        .map_err(|err| format!("the emulator's mailbox is not JSON: {err}"))?;
    let messages = data["messages"].as_array().cloned().unwrap_or_default();
    Ok(messages.iter().map(to_mail).collect())
}

fn to_mail(message: &Value) -> SentMail {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    let to = message["destinations"]["ToAddresses"]
        .as_array()
        .map(|list| list.iter().map(text).collect())
        .unwrap_or_default();
    SentMail {
        id: text(&message["id"]),
        from: text(&message["source"]),
        to,
        subject: text(&message["subject"]),
        body: text(&message["body"]),
    }
}
