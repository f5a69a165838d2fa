//! Creates, in the emulator, the resources `infra/template.yaml` declares: the table (key
//! schema, indexes and TTL attribute read from the template), the link key (key spec and
//! usage from the template), the schedule group, the scheduler's role and the sender
//! identity; plus what the template leaves to the operator: the requesters' own IAM roles
//! named in the policy document.
//!
//! The schedules' dead-letter queue is named, not created: the stack has no SQS client and
//! the emulator never fires a schedule, so nothing could reach the queue here.
//!
//! The audit stream's resources (the audit log group with its retention, and the
//! checkpoint-signing key) are created by [`provision_audit`] with the properties
//! `docs/audit-records.md` asks the template to declare, with the event bus the shipper
//! puts lifecycle events on (`docs/events.md`).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use pim::adapters::AwsClients;
use pim::catalog::Catalog;
use pim::config::{AuditSettings, Settings};
use serde_yaml::Value;
use std::collections::BTreeMap;

/// The template, compiled in so the stack always matches the repository's.
pub const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The example policy document the local stack and the tests use.
pub const EXAMPLE_POLICY: &str = include_str!("../../infra/policy.example.yaml");

/// Names of the local stack's resources.
#[derive(Debug, Clone)]
pub struct StackNames {
    /// Table name.
    pub table: String,
    /// Schedule group name.
    pub schedule_group: String,
    /// Sender address.
    pub sender: String,
    /// Base URL the gateway is reachable at.
    pub public_url: String,
    /// Where the policy document is.
    pub policy_file: String,
    /// The account the emulator puts resources in.
    pub account: String,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The properties of the template's resource with this logical id and type.
fn resource<'a>(template: &'a Value, logical_id: &str, kind: &str) -> Result<&'a Value, Failure> {
    let resource = &template["Resources"][logical_id];
    if resource["Type"].as_str() != Some(kind) {
        return Err(format!("the template declares no {kind} named {logical_id}").into());
    }
    Ok(&resource["Properties"])
}

/// One resource of the template.
fn resource_of_type<'a>(template: &'a Value, kind: &str) -> Result<&'a Value, Failure> {
    let resources = template["Resources"].as_mapping().ok_or("the template has no Resources")?;
    resources
        .values()
        .find(|resource| resource["Type"].as_str() == Some(kind))
        .map(|resource| &resource["Properties"])
        .ok_or_else(|| format!("the template declares no {kind}").into())
}

/// The link key of the template: its KMS key for MACs (the template declares other keys
/// beside it, for the audit log group and the checkpoints).
fn mac_key(template: &Value) -> Result<&Value, Failure> {
    let resources = template["Resources"].as_mapping().ok_or("the template has no Resources")?;
    resources
        .values()
        .filter(|resource| resource["Type"].as_str() == Some("AWS::KMS::Key"))
        .map(|resource| &resource["Properties"])
        .find(|properties| properties["KeyUsage"].as_str() == Some("GENERATE_VERIFY_MAC"))
        .ok_or_else(|| "the template declares no KMS key for GENERATE_VERIFY_MAC".into())
}

fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, Failure> {
    value.as_str().ok_or_else(|| format!("the template's {what} is not a string").into())
}

/// Creates every resource and returns the settings the functions would read from their
/// environment in AWS.
pub async fn provision(
    clients: &AwsClients,
    catalog: &Catalog,
    names: &StackNames,
) -> Result<Settings, Failure> {
    let template: Value = serde_yaml::from_str(TEMPLATE)?;
    create_table(clients, resource_of_type(&template, "AWS::DynamoDB::Table")?, &names.table)
        .await?;
    let link_key_id = create_key(clients, mac_key(&template)?, "approval link MAC").await?;
    let mfa_key = resource(&template, "MfaKey", "AWS::KMS::Key")?;
    let mfa_key_id = create_key(clients, mfa_key, "one-time code secrets").await?;
    resource(&template, "ScheduleDeadLetterQueue", "AWS::SQS::Queue")?;
    resource_of_type(&template, "AWS::Scheduler::ScheduleGroup")?;
    clients.scheduler.create_schedule_group().name(&names.schedule_group).send().await?;
    clients.ses.create_email_identity().email_identity(&names.sender).send().await?;
    let scheduler_role_arn =
        create_role(clients, "/pim-system/", "pim-scheduler", "scheduler.amazonaws.com").await?;
    for role in requester_roles(catalog) {
        let (path, name) = split_role_arn(&role);
        create_role(clients, &path, &name, "ec2.amazonaws.com").await?;
    }
    Ok(Settings {
        table: names.table.clone(),
        policy_file: names.policy_file.clone(),
        link_key_id,
        public_url: names.public_url.clone(),
        sender: names.sender.clone(),
        schedule_group: names.schedule_group.clone(),
        revocation_arn: format!(
            "arn:aws:lambda:us-east-1:{}:function:pim-revocation",
            names.account
        ),
        scheduler_role_arn,
        eligible_role_path: pim::config::DEFAULT_ELIGIBLE_ROLE_PATH.into(),
        schedule_dlq_arn: format!("arn:aws:sqs:us-east-1:{}:pim-schedule-dlq", names.account),
        mfa_key_id: Some(mfa_key_id),
    })
}

/// The environment variables the functions read (`pim::config::vars`) for `settings` and
/// `audit`: the request, approval and revocation functions take the first set, the audit
/// shipper the second, and both name the table.
pub fn function_environment(
    settings: &Settings,
    audit: &AuditSettings,
) -> BTreeMap<&'static str, String> {
    use pim::config::vars;
    let mut env = BTreeMap::from([
        (vars::TABLE, settings.table.clone()),
        (vars::POLICY_FILE, settings.policy_file.clone()),
        (vars::LINK_KEY_ID, settings.link_key_id.clone()),
        (vars::PUBLIC_URL, settings.public_url.clone()),
        (vars::SENDER, settings.sender.clone()),
        (vars::SCHEDULE_GROUP, settings.schedule_group.clone()),
        (vars::REVOCATION_ARN, settings.revocation_arn.clone()),
        (vars::SCHEDULER_ROLE_ARN, settings.scheduler_role_arn.clone()),
        (vars::SCHEDULE_DLQ_ARN, settings.schedule_dlq_arn.clone()),
        (vars::ELIGIBLE_ROLE_PATH, settings.eligible_role_path.clone()),
        (vars::AUDIT_LOG_GROUP, audit.log_group.clone()),
        (vars::CHECKPOINT_KEY_ID, audit.checkpoint_key_id.clone()),
        (vars::EVENT_BUS, audit.event_bus.clone()),
    ]);
    if let Some(key) = &settings.mfa_key_id {
        env.insert(vars::MFA_KEY_ID, key.clone());
    }
    env
}

/// The retention of the audit log group, in days (a value CloudWatch Logs accepts).
pub const AUDIT_RETENTION_DAYS: i32 = 400;

/// Creates the audit log group (with its retention), the checkpoint-signing key and the
/// event bus, and returns the audit shipper's settings.
pub async fn provision_audit(
    clients: &AwsClients,
    events: &aws_sdk_eventbridge::Client,
    table: &str,
    log_group: &str,
    event_bus: &str,
) -> Result<AuditSettings, Failure> {
    let template: Value = serde_yaml::from_str(TEMPLATE)?;
    resource_of_type(&template, "AWS::Events::EventBus")?;
    events.create_event_bus().name(event_bus).send().await?;
    clients.logs.create_log_group().log_group_name(log_group).send().await?;
    clients
        .logs
        .put_retention_policy()
        .log_group_name(log_group)
        .retention_in_days(AUDIT_RETENTION_DAYS)
        .send()
        .await?;
    let key = clients
        .kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description("pim audit checkpoint signing key (local)")
        .send()
        .await?;
    let metadata = key.key_metadata.ok_or("KMS returned no key metadata")?;
    Ok(AuditSettings {
        table: table.into(),
        log_group: log_group.into(),
        checkpoint_key_id: metadata.arn.unwrap_or(metadata.key_id),
        event_bus: event_bus.into(),
    })
}

async fn create_table(
    clients: &AwsClients,
    properties: &Value,
    table: &str,
) -> Result<(), Failure> {
    let attributes =
        properties["AttributeDefinitions"].as_sequence().ok_or("no AttributeDefinitions")?;
    let mut request =
        clients.dynamodb.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest);
    for attribute in attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(&attribute["AttributeName"], "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(text(
                    &attribute["AttributeType"],
                    "AttributeType",
                )?))
                .build()?,
        );
    }
    for key in key_schema(&properties["KeySchema"])? {
        request = request.key_schema(key);
    }
    for index in properties["GlobalSecondaryIndexes"].as_sequence().into_iter().flatten() {
        let projection = Projection::builder().projection_type(ProjectionType::All).build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(text(&index["IndexName"], "IndexName")?)
                .set_key_schema(Some(key_schema(&index["KeySchema"])?))
                .projection(projection)
                .build()?,
        );
    }
    request.send().await?;

    let ttl = &properties["TimeToLiveSpecification"];
    if ttl["Enabled"].as_bool() == Some(true) {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(text(&ttl["AttributeName"], "TTL AttributeName")?)
            .enabled(true)
            .build()?;
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await?;
    }
    Ok(())
}

fn key_schema(value: &Value) -> Result<Vec<KeySchemaElement>, Failure> {
    let keys = value.as_sequence().ok_or("no KeySchema")?;
    keys.iter()
        .map(|key| {
            Ok(KeySchemaElement::builder()
                .attribute_name(text(&key["AttributeName"], "AttributeName")?)
                .key_type(KeyType::from(text(&key["KeyType"], "KeyType")?))
                .build()?)
        })
        .collect()
}

/// Creates a KMS key of the spec and usage the template declares.
async fn create_key(
    clients: &AwsClients,
    properties: &Value,
    purpose: &str,
) -> Result<String, Failure> {
    let output = clients
        .kms
        .create_key()
        .key_spec(KeySpec::from(text(&properties["KeySpec"], "KeySpec")?))
        .key_usage(KeyUsageType::from(text(&properties["KeyUsage"], "KeyUsage")?))
        .description(format!("pim {purpose} key (local)"))
        .send()
        .await?;
    let metadata = output.key_metadata.ok_or("KMS returned no key metadata")?;
    Ok(metadata.arn.unwrap_or(metadata.key_id))
}

async fn create_role(
    clients: &AwsClients,
    path: &str,
    name: &str,
    service: &str,
) -> Result<String, Failure> {
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": { "Service": service }, "Action": "sts:AssumeRole" }]
    });
    let output = clients
        .iam
        .create_role()
        .path(path)
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await?;
    Ok(output.role.map(|role| role.arn).unwrap_or_default())
}

/// Every requester role the policy document names, once each.
pub fn requester_roles(catalog: &Catalog) -> Vec<String> {
    let mut roles: Vec<String> =
        catalog.people().iter().map(|person| person.role_arn.clone()).collect();
    roles.sort();
    roles.dedup();
    roles
}

/// `(path, name)` of a role ARN: `arn:aws:iam::1:role/pim/alice` → `("/pim/", "alice")`.
pub fn split_role_arn(arn: &str) -> (String, String) {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let after_role = resource.strip_prefix("role").unwrap_or(resource);
    match after_role.rfind('/') {
        Some(slash) => (after_role[..=slash].to_string(), after_role[slash + 1..].to_string()),
        None => ("/".into(), after_role.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_environment_reads_back_as_the_same_settings() {
        let settings = Settings {
            table: "table".into(),
            policy_file: "/var/task/policy.yaml".into(),
            link_key_id: "arn:aws:kms:us-east-1:123456789012:key/link".into(),
            public_url: "https://pim.example.com".into(),
            sender: "pim@example.com".into(),
            schedule_group: "expiry".into(),
            revocation_arn: "arn:aws:lambda:us-east-1:123456789012:function:revocation".into(),
            scheduler_role_arn: "arn:aws:iam::123456789012:role/scheduler".into(),
            eligible_role_path: "/eligible/".into(),
            schedule_dlq_arn: "arn:aws:sqs:us-east-1:123456789012:dlq".into(),
            mfa_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/mfa".into()),
        };
        let audit = AuditSettings {
            table: "table".into(),
            log_group: "audit".into(),
            checkpoint_key_id: "arn:aws:kms:us-east-1:123456789012:key/checkpoint".into(),
            event_bus: "events".into(),
        };
        let env = function_environment(&settings, &audit);
        let lookup = |name: &str| env.get(name).cloned();
        assert_eq!(Settings::from_lookup(lookup).unwrap(), settings);
        assert_eq!(AuditSettings::from_lookup(lookup).unwrap(), audit);
        let names = pim::config::vars::ALL.iter().chain(pim::config::vars::AUDIT);
        assert!(names.clone().all(|name| env.contains_key(name)));
        // Beyond the required ones: the eligible role path and the MFA key.
        assert_eq!(env.len(), names.collect::<std::collections::HashSet<_>>().len() + 2);
    }

    #[test]
    fn role_arns_split_into_path_and_name() {
        assert_eq!(
            split_role_arn("arn:aws:iam::123456789012:role/pim/alice"),
            ("/pim/".into(), "alice".into())
        );
        assert_eq!(
            split_role_arn("arn:aws:iam::123456789012:role/bob"),
            ("/".into(), "bob".into())
        );
    }

    #[test]
    fn the_template_declares_what_the_stack_creates() {
        let template: Value = serde_yaml::from_str(TEMPLATE).unwrap();
        let kinds = [
            "AWS::DynamoDB::Table",
            "AWS::KMS::Key",
            "AWS::Scheduler::ScheduleGroup",
            "AWS::Events::EventBus",
        ];
        for kind in kinds {
            assert!(resource_of_type(&template, kind).is_ok(), "{kind}");
        }
        let key = resource(&template, "LinkKey", "AWS::KMS::Key").unwrap();
        assert_eq!(key["KeyUsage"].as_str(), Some("GENERATE_VERIFY_MAC"));
        assert!(resource(&template, "LinkKey", "AWS::SQS::Queue").is_err());
        let table = resource_of_type(&template, "AWS::DynamoDB::Table").unwrap();
        let index = &table["GlobalSecondaryIndexes"][0]["IndexName"];
        assert_eq!(index.as_str(), Some(pim::adapters::dynamodb::REQUESTER_INDEX));
        assert_eq!(table["TimeToLiveSpecification"]["AttributeName"].as_str(), Some("ttl"));
        let link_key = mac_key(&template).unwrap();
        assert_eq!(link_key["KeySpec"].as_str(), Some("HMAC_256"));
    }

    #[test]
    fn audit_metric_filters_name_fields_records_and_checkpoints_have() {
        let file: Value = serde_yaml::from_str(include_str!("../../infra/audit-queries.yaml"))
            .expect("the audit queries file is YAML");
        let time = "2026-12-03T10:00:00Z".parse().unwrap();
        let mut record = pim::audit::AuditRecord::new(
            pim::audit::AuditAction::GrantActivated,
            pim::audit::Outcome::Success,
            pim::audit::Actor::system("grant"),
            pim::audit::Source::Link,
            time,
        )
        .because("code", "reason")
        .with("break_glass", true);
        record.role = Some("prod-admin".into());
        let record = serde_json::to_value(record).unwrap();
        let head = pim::audit::chain::ChainHead::genesis();
        let checkpoint =
            serde_json::to_value(pim::audit::chain::Checkpoint::of(&head, "key", time)).unwrap();

        let filters = file["metric_filters"].as_sequence().unwrap();
        assert!(filters.len() >= 2);
        for filter in filters {
            let pattern = filter["pattern"].as_str().unwrap();
            let fields: Vec<&str> = pattern
                .split("$.")
                .skip(1)
                .map(|rest| rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap())
                .collect();
            assert!(!fields.is_empty(), "{pattern}");
            for field in fields {
                let known = record.get(field).is_some() || checkpoint.get(field).is_some();
                assert!(known, "{field} of {pattern} is in no record or checkpoint");
            }
        }
        let queries = file["queries"].as_sequence().unwrap();
        assert!(queries.iter().all(|q| q["name"].as_str().unwrap().starts_with("pim/")));
        assert_eq!(queries.len(), 6);
    }
}
