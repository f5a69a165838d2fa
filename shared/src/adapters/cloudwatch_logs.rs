//! [`AuditSink`] on one CloudWatch Logs stream: the audit log group security reviews with
//! Logs Insights. Each line is one log event; a batch is one `PutLogEvents` call, so a batch
//! of records and the checkpoint that covers it arrive together or not at all.
//!
//! Every event of a batch carries the same timestamp, the time it was shipped, because
//! CloudWatch requires timestamps in order within a call and records may be sealed in a
//! different order than their own `time` (a record's time is taken before it wins the
//! chain head). The record's own time is inside the JSON; Insights reads it from there.

use super::{aws_error, error_code};
use crate::error::{PimError, Result};
use crate::ports::AuditSink;
use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

/// The log stream audit records are written to, inside the audit log group.
pub const AUDIT_LOG_STREAM: &str = "records";

/// Ships audit lines to one log stream and reads them back.
#[derive(Debug, Clone)]
pub struct CloudWatchAuditSink {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    stream: String,
}

impl CloudWatchAuditSink {
    /// A sink on the stream [`AUDIT_LOG_STREAM`] of `group`.
    pub fn new(client: aws_sdk_cloudwatchlogs::Client, group: impl Into<String>) -> Self {
        Self { client, group: group.into(), stream: AUDIT_LOG_STREAM.into() }
    }

    async fn create_stream(&self) -> Result<()> {
        let created = self
            .client
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(err) if error_code(&err) == Some("ResourceAlreadyExistsException") => Ok(()),
            Err(err) => Err(aws_error("logs:CreateLogStream", err)),
        }
    }

    async fn put(&self, events: Vec<InputLogEvent>) -> Result<PutLogEventsOutput, PutError> {
        let output = self
            .client
            .put_log_events()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .set_log_events(Some(events))
            .send()
            .await?;
        Ok(output)
    }
}

type PutError = aws_sdk_cloudwatchlogs::error::SdkError<PutLogEventsError>;

fn accepted(output: PutLogEventsOutput) -> Result<()> {
    match output.rejected_log_events_info() {
        Some(rejected) => Err(PimError::aws(
            "logs:PutLogEvents",
            true,
            format!("the log group rejected events: {rejected:?}"),
        )),
        None => Ok(()),
    }
}

#[async_trait]
impl AuditSink for CloudWatchAuditSink {
    async fn append(&self, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_millis();
        let events = lines
            .iter()
            .map(|line| InputLogEvent::builder().timestamp(now).message(line).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|err| PimError::aws("logs:PutLogEvents", false, err))?;
        match self.put(events.clone()).await {
            Ok(output) => accepted(output),
            // The stream is created on first use, so the template need only declare the group.
            Err(err) if error_code(&err) == Some("ResourceNotFoundException") => {
                self.create_stream().await?;
                let output =
                    self.put(events).await.map_err(|err| aws_error("logs:PutLogEvents", err))?;
                accepted(output)
            }
            Err(err) => Err(aws_error("logs:PutLogEvents", err)),
        }
    }

    async fn read_all(&self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let output = self
                .client
                .get_log_events()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await;
            let output = match output {
                Ok(output) => output,
                Err(err) if error_code(&err) == Some("ResourceNotFoundException") => {
                    return Ok(lines);
                }
                Err(err) => return Err(aws_error("logs:GetLogEvents", err)),
            };
            lines.extend(output.events().iter().filter_map(|e| e.message().map(str::to_string)));
            // The forward token repeats once the end of the stream is reached.
            let next = output.next_forward_token().map(str::to_string);
            if next.is_none() || next == token || output.events().is_empty() {
                return Ok(lines);
            }
            token = next;
        }
    }
}
