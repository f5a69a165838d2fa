//! `pim mfa enroll`: issue a one-time code secret, show it as a QR code in the terminal (and
//! as its `otpauth://` URI and base32 secret, for apps that cannot scan), then confirm it
//! with the first code the app shows. Until confirmed, the secret counts for nothing.

use super::{Global, Output};
use crate::api::Api;
use crate::commands::access::read_code;
use crate::failure::{Exit, Failure};
use clap::Subcommand;
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use serde_json::{Value, json};

/// `pim mfa`.
#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Enrol an authenticator app: shows a QR code, then asks for the first code.
    #[command(after_help = "Examples:
  pim mfa enroll                 # scan the QR code, then type the code the app shows
  pim mfa enroll --code 123456   # confirm an enrolment already shown, without a prompt

The secret is shown once. An active enrolment is never replaced through the API.")]
    Enroll {
        /// Confirm the pending enrolment with this code instead of starting one.
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
}

/// Runs one `pim mfa` command.
pub async fn run(command: MfaCommand, global: &Global) -> Result<(), Failure> {
    let MfaCommand::Enroll { code } = command;
    let api = Api::connect(&global.target()).await?;
    let code = match code {
        Some(code) => code,
        None => {
            let issued = api.post("/mfa/enrollment", &json!({})).await?;
            show_enrollment(&issued, global.output)?;
            read_code("code shown by the app: ")?
        }
    };
    let confirmed = api.post("/mfa/enrollment/confirm", &json!({ "code": code.trim() })).await?;
    match global.output {
        Output::Json => println!("{confirmed}"),
        Output::Table => {
            println!("one-time codes are active: policy that asks for MFA takes them now")
        }
    }
    Ok(())
}

/// Prints the QR code, the URI and the secret (or, for scripts, the enrolment document).
fn show_enrollment(issued: &Value, output: Output) -> Result<(), Failure> {
    let uri = issued["otpauth_uri"].as_str().unwrap_or_default();
    if output == Output::Json {
        println!("{issued}");
        return Ok(());
    }
    println!("{}", qr_text(uri)?);
    println!("scan it with your authenticator app, or add this URI or secret by hand:");
    println!("  {uri}");
    println!("  secret: {}", issued["secret"].as_str().unwrap_or_default());
    Ok(())
}

/// The QR code of `content` drawn with Unicode half blocks, light on dark so phones read it
/// from a dark terminal, with its quiet zone.
pub fn qr_text(content: &str) -> Result<String, Failure> {
    let code = QrCode::new(content.as_bytes())
        .map_err(|err| Failure::new(Exit::Other, format!("cannot draw the QR code: {err}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_drawn_with_half_blocks_on_square_rows() {
        let drawn = qr_text("otpauth://totp/pim:alice?secret=JBSWY3DPEHPK3PXP&issuer=pim").unwrap();
        let lines: Vec<&str> = drawn.lines().collect();
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|line| line.chars().count() == width));
        // Two modules per character cell vertically: about half as many lines as columns.
        assert!(lines.len() * 2 >= width && lines.len() * 2 <= width + 2, "{drawn}");
        assert!(drawn.chars().all(|c| matches!(c, ' ' | '█' | '▀' | '▄' | '\n')));
    }
}
