//! What a command ends with when it does not succeed: the exit status scripts branch on,
//! a sentence for people and, where one helps, the fix.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | anything else: the API or network failed, credentials or endpoint are wrong |
//! | 2 | usage: a flag or value is wrong, or no endpoint is configured |
//! | 3 | refused by policy: the API said no (not eligible, too long, a missing ticket, …) |
//! | 4 | denied by an approver |
//! | 5 | expired: nobody decided in time, or the grant already ended |
//! | 130 | interrupted (Ctrl-C while waiting); the request stands |

use serde_json::Value;

/// The exit statuses of `pim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Anything else.
    Other = 1,
    /// A wrong flag or value, or no endpoint.
    Usage = 2,
    /// The API refused the call under policy.
    Refused = 3,
    /// An approver denied the request.
    Denied = 4,
    /// The request was not decided in time, or the grant has ended.
    Expired = 5,
    /// Ctrl-C while waiting.
    Interrupted = 130,
}

/// A command's failure.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub exit: Exit,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// What `--output json` prints: the API's problem document, or the request that ended
    /// this way.
    pub document: Option<Value>,
}

impl Failure {
    /// A failure with a message and no hint.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self { exit, message: message.into(), hint: None, document: None }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// Adds what to do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The problem code from the API, if this failure came from one.
    pub fn code(&self) -> Option<&str> {
        self.document.as_ref().and_then(|p| p["code"].as_str())
    }
}

/// The exit status for an API problem document with `status` and `code`.
pub fn exit_for_problem(status: u16, code: &str) -> Exit {
    match (status, code) {
        (_, "request_expired" | "link_expired") => Exit::Expired,
        (400 | 403 | 409 | 413 | 415 | 429, _) => Exit::Refused,
        _ => Exit::Other,
    }
}

/// An error and its causes, outermost first.
pub fn chain_of(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refusals_and_expiry_have_their_own_statuses() {
        assert_eq!(exit_for_problem(403, "not_eligible"), Exit::Refused);
        assert_eq!(exit_for_problem(400, "duration_over_maximum"), Exit::Refused);
        assert_eq!(exit_for_problem(409, "invalid_state"), Exit::Refused);
        assert_eq!(exit_for_problem(409, "request_expired"), Exit::Expired);
        assert_eq!(exit_for_problem(404, "request_not_found"), Exit::Other);
        assert_eq!(exit_for_problem(502, "upstream_failure"), Exit::Other);
    }
}
