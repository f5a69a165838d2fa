//! The SAM template read the way a security reviewer reads it. Each rule is a function that
//! lists what it finds wrong with a template; the real template must give no finding, and
//! a copy of it with one thing broken must give at least one, so no rule passes vacuously.
//! Needs no emulator: it reads `infra/template.yaml` only.

use pim::config::vars;
use pim::metrics::{self, names};
use serde_yaml::Value;
use serde_yaml::value::TaggedValue;
use std::collections::BTreeSet;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The audit log group's queries and metric filters, which the template declares value for
/// value.
const AUDIT_QUERIES: &str = include_str!("../../infra/audit-queries.yaml");

/// The four functions and their roles, as the rest of the system knows them.
const FUNCTIONS: [(&str, &str); 4] = [
    ("RequestFunction", "RequestRole"),
    ("ApprovalFunction", "ApprovalRole"),
    ("RevocationFunction", "RevocationRole"),
    ("AuditShipperFunction", "AuditShipperRole"),
];

/// The functions that read [`vars::ALL`]; the audit shipper reads [`vars::AUDIT`].
const CORE_FUNCTIONS: [&str; 3] = ["RequestFunction", "ApprovalFunction", "RevocationFunction"];

/// Every IAM action each role may be allowed, and no other: what its code calls. DynamoDB
/// checks a `TransactWriteItems` item by item, so its Puts need `dynamodb:PutItem` (the
/// audit chain's records and head, the sweep's findings, are such Puts; the head is read
/// with `GetItem`, alone or beside a request in a `TransactGetItems`, which IAM also
/// authorizes as `GetItem`); the `kms` data-key actions are only usable through DynamoDB (a condition
/// the rules check). The audit shipper also puts lifecycle events on the stack's bus
/// (`events:PutEvents`, `docs/events.md`). Revocation also runs the sweep (`shared/src/service/sweep.rs`): Scan for
/// live grants, the IAM reads of eligible roles, ListSchedules, and CreateSchedule with
/// PassRole to recreate a missing expiry schedule. The granting functions attach and read
/// AWS managed policies a role names (`shared/src/service/attachments.rs`,
/// `shared/src/managed.rs`), the request function counts a role's attached policies for
/// the quota, and revocation detaches them. The request function also scans the table for
/// the administrators' views of every live grant and the report (`shared/src/service/
/// visibility.rs`, `report.rs`).
fn expected_actions(role: &str) -> BTreeSet<&'static str> {
    let table_via_kms = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"];
    let logs = ["logs:CreateLogStream", "logs:PutLogEvents"];
    let own: &[&str] = match role {
        "RequestRole" => &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            "dynamodb:UpdateItem",
            "kms:GenerateMac",
            "iam:PutRolePolicy",
            "iam:AttachRolePolicy",
            "iam:ListAttachedRolePolicies",
            "iam:GetPolicy",
            "iam:GetPolicyVersion",
            "scheduler:CreateSchedule",
            "scheduler:UpdateSchedule",
            "iam:PassRole",
            "ses:SendEmail",
        ],
        "ApprovalRole" => &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "kms:VerifyMac",
            "iam:PutRolePolicy",
            "iam:AttachRolePolicy",
            "iam:GetPolicy",
            "iam:GetPolicyVersion",
            "scheduler:CreateSchedule",
            "scheduler:UpdateSchedule",
            "iam:PassRole",
            "ses:SendEmail",
        ],
        "RevocationRole" => &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "iam:DeleteRolePolicy",
            "iam:DetachRolePolicy",
            "iam:ListRoles",
            "iam:ListRolePolicies",
            "iam:GetRolePolicy",
            "iam:ListAttachedRolePolicies",
            "scheduler:ListSchedules",
            "scheduler:CreateSchedule",
            "scheduler:DeleteSchedule",
            "iam:PassRole",
            "kms:GenerateMac",
            "ses:SendEmail",
        ],
        "AuditShipperRole" => &[
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "kms:Sign",
            "events:PutEvents",
        ],
        "SchedulerRole" => return BTreeSet::from(["lambda:InvokeFunction", "sqs:SendMessage"]),
        _ => &[],
    };
    own.iter().chain(&table_via_kms).chain(&logs).copied().collect()
}

/// The only resources an Allow statement may name with a wildcard: the eligible roles, the
/// schedules of the stack's own group, and AWS's own managed policies (read only).
const ALLOWED_WILDCARD_RESOURCES: [&str; 3] = [
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role${EligibleRolePath}*",
    "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*",
    AWS_MANAGED_POLICIES,
];

/// Every AWS managed policy: the only policies pim may attach, detach or read.
const AWS_MANAGED_POLICIES: &str = "arn:${AWS::Partition}:iam::aws:policy/*";

/// The only actions that may act on [`AWS_MANAGED_POLICIES`] as their resource.
const MANAGED_POLICY_READS: [&str; 2] = ["iam:GetPolicy", "iam:GetPolicyVersion"];

/// The only statements that may name every resource (`"*"`), each alone in its statement:
/// actions that support no resource-level permission (the IAM service authorization
/// reference lists no resource type for them). Both only list names, for the sweep.
const ALLOWED_ANY_RESOURCE: [(&str, &str); 2] =
    [("RevocationRole", "iam:ListRoles"), ("RevocationRole", "scheduler:ListSchedules")];

/// Actions no identity policy here may allow, as prefixes and suffixes of action names.
fn forbidden(action: &str) -> bool {
    let lower = action.to_ascii_lowercase();
    lower.contains('*')
        || lower.starts_with("iam:create")
        || (lower.starts_with("iam:attach") && lower != "iam:attachrolepolicy")
        || lower.starts_with("iam:update")
        || (lower.ends_with("policyversion") && lower != "iam:getpolicyversion")
        || lower.ends_with("permissionsboundary")
        || lower.starts_with("organizations:")
        || lower.starts_with("cloudformation:")
        || lower.starts_with("sts:")
}

// ---- Reading the template ---------------------------------------------------------------

fn template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("the template is YAML")
}

fn tag_of(tagged: &TaggedValue) -> String {
    tagged.tag.to_string().trim_start_matches('!').to_string()
}

/// A value as text a rule can compare: strings as they are, `!Sub` as its pattern, `!Ref X`
/// as `Ref:X`, `!GetAtt X.Y` as `GetAtt:X.Y`; `!If` and lists give every branch.
fn texts(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => vec![text.clone()],
        Value::Sequence(items) => items.iter().flat_map(texts).collect(),
        Value::Tagged(tagged) => match (tag_of(tagged).as_str(), &tagged.value) {
            ("Sub", Value::String(pattern)) => vec![pattern.clone()],
            ("If", Value::Sequence(branches)) => branches.iter().skip(1).flat_map(texts).collect(),
            (tag, inner) => texts(inner).into_iter().map(|text| format!("{tag}:{text}")).collect(),
        },
        _ => Vec::new(),
    }
}

/// One statement of a role's identity policies.
#[derive(Debug)]
struct Statement {
    role: String,
    allow: bool,
    actions: Vec<String>,
    resources: Vec<String>,
    condition: Value,
}

/// Every IAM role the template declares, by logical id.
fn roles(template: &Value) -> Vec<String> {
    let resources = template["Resources"].as_mapping().expect("Resources");
    resources
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::IAM::Role"))
        .filter_map(|(id, _)| id.as_str().map(String::from))
        .collect()
}

fn statements(template: &Value, role: &str) -> Vec<Statement> {
    let policies = template["Resources"][role]["Properties"]["Policies"].as_sequence();
    policies
        .into_iter()
        .flatten()
        .flat_map(|policy| policy["PolicyDocument"]["Statement"].as_sequence().cloned())
        .flatten()
        .map(|statement| Statement {
            role: role.to_string(),
            allow: statement["Effect"].as_str() == Some("Allow"),
            actions: texts(&statement["Action"]),
            resources: texts(&statement["Resource"]),
            condition: statement["Condition"].clone(),
        })
        .collect()
}

fn all_statements(template: &Value) -> Vec<Statement> {
    roles(template).iter().flat_map(|role| statements(template, role)).collect()
}

fn allowed_actions(template: &Value, role: &str) -> BTreeSet<String> {
    statements(template, role)
        .into_iter()
        .filter(|statement| statement.allow)
        .flat_map(|statement| statement.actions)
        .collect()
}

/// The text of a condition value, e.g. `condition_value(c, "StringEquals", "aws:SourceAccount")`.
fn condition_value(condition: &Value, operator: &str, key: &str) -> Vec<String> {
    texts(&condition[operator][key])
}

// ---- Rules ------------------------------------------------------------------------------

type Findings = Vec<String>;

/// Each function runs as its own declared role (no SAM-generated role, which would bring
/// a managed policy with `Resource: "*"`), and each role has only inline policies.
fn functions_run_as_declared_roles(template: &Value) -> Findings {
    let mut findings = Findings::new();
    for (function, role) in FUNCTIONS {
        let properties = &template["Resources"][function]["Properties"];
        if texts(&properties["Role"]) != [format!("GetAtt:{role}.Arn")] {
            findings.push(format!("{function} does not run as {role}"));
        }
        if !properties["Policies"].is_null() {
            findings.push(format!("{function} declares SAM Policies"));
        }
    }
    for role in roles(template) {
        let properties = &template["Resources"][role.as_str()]["Properties"];
        if !properties["ManagedPolicyArns"].is_null() {
            findings.push(format!("{role} has managed policies"));
        }
        if texts(&properties["Path"]) != ["/pim-system/"] {
            findings.push(format!("{role} is not under /pim-system/"));
        }
    }
    let functions = template["Resources"].as_mapping().unwrap().values();
    let count = functions
        .filter(|resource| resource["Type"].as_str() == Some("AWS::Serverless::Function"))
        .count();
    if count != FUNCTIONS.len() {
        findings.push(format!("{count} functions where {} are known", FUNCTIONS.len()));
    }
    findings
}

/// Every role allows exactly the actions its code calls, and the template has no role the
/// rules do not know.
fn each_role_allows_exactly_its_actions(template: &Value) -> Findings {
    let mut findings = Findings::new();
    for role in roles(template) {
        let expected: BTreeSet<String> =
            expected_actions(&role).into_iter().map(String::from).collect();
        if expected.is_empty() {
            findings.push(format!("{role} is a role the rules do not know"));
            continue;
        }
        let actual = allowed_actions(template, &role);
        for gained in actual.difference(&expected) {
            findings.push(format!("{role} gained {gained}"));
        }
        for lost in expected.difference(&actual) {
            findings.push(format!("{role} lost {lost}"));
        }
    }
    findings
}

/// No Allow statement names every resource but the two listing actions that cannot be
/// scoped; the only other wildcards are the eligible roles and the stack's schedules.
fn no_wildcard_resources(template: &Value) -> Findings {
    let mut findings = Findings::new();
    for statement in all_statements(template).iter().filter(|s| s.allow) {
        if statement.resources.is_empty() {
            findings.push(format!("{}: {:?} has no resource", statement.role, statement.actions));
        }
        for resource in &statement.resources {
            let unscopable = resource == "*"
                && statement.resources.len() == 1
                && statement.actions.len() == 1
                && ALLOWED_ANY_RESOURCE.contains(&(statement.role.as_str(), &statement.actions[0]));
            let reads_managed = resource == AWS_MANAGED_POLICIES
                && statement.actions.iter().all(|a| MANAGED_POLICY_READS.contains(&a.as_str()));
            let allowed = unscopable
                || (resource != AWS_MANAGED_POLICIES
                    && ALLOWED_WILDCARD_RESOURCES.contains(&resource.as_str()))
                || reads_managed;
            if resource.contains('*') && !allowed {
                findings.push(format!("{}: {:?} on {resource}", statement.role, statement.actions));
            }
        }
    }
    findings
}

/// Role creation, attaching policies to users or groups, changing policy versions, boundaries,
/// Organizations, the stack itself and role assumption are allowed to no one. (Attaching to
/// roles is held by [`role_policy_rights_are_split_and_bounded`].)
fn no_forbidden_actions(template: &Value) -> Findings {
    all_statements(template)
        .iter()
        .filter(|statement| statement.allow)
        .flat_map(|statement| {
            let role = statement.role.clone();
            statement
                .actions
                .iter()
                .filter(|action| forbidden(action))
                .map(move |action| format!("{role} may {action}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Only the granting functions (approval, and request for what the policy approves by
/// itself) write role policies and attach managed policies, and only revocation deletes and
/// detaches them; all only on roles under the eligible path that carry the required
/// boundary, each denied the stack's own, and attachments only of AWS managed policies.
fn role_policy_rights_are_split_and_bounded(template: &Value) -> Findings {
    let mut findings = Findings::new();
    let writers: &[&str] = &["RequestRole", "ApprovalRole"];
    let rights: [(&str, &[&str]); 4] = [
        ("iam:PutRolePolicy", writers),
        ("iam:DeleteRolePolicy", &["RevocationRole"]),
        ("iam:AttachRolePolicy", writers),
        ("iam:DetachRolePolicy", &["RevocationRole"]),
    ];
    for (action, owners) in rights {
        let holding: Vec<Statement> = all_statements(template)
            .into_iter()
            .filter(|statement| statement.actions.iter().any(|a| a == action))
            .collect();
        let mut denied_on_system_roles = BTreeSet::new();
        for statement in &holding {
            if !statement.allow {
                if statement.resources
                    == ["arn:${AWS::Partition}:iam::${AWS::AccountId}:role/pim-system/*"]
                {
                    denied_on_system_roles.insert(statement.role.clone());
                }
                continue;
            }
            if !owners.contains(&statement.role.as_str()) {
                findings.push(format!("{} may {action}", statement.role));
            }
            if statement.resources != [ALLOWED_WILDCARD_RESOURCES[0]] {
                findings.push(format!("{action} is not limited to the eligible path"));
            }
            let boundary =
                condition_value(&statement.condition, "StringEquals", "iam:PermissionsBoundary");
            if boundary != ["Ref:PermissionsBoundaryArn"] {
                findings.push(format!("{action} does not require the permissions boundary"));
            }
            let attaching = action.ends_with("tachRolePolicy");
            let policies = condition_value(&statement.condition, "ArnLike", "iam:PolicyARN");
            if attaching && policies != [AWS_MANAGED_POLICIES] {
                findings.push(format!("{action} is not limited to AWS managed policies"));
            }
        }
        for owner in owners.iter().filter(|owner| !denied_on_system_roles.contains(**owner)) {
            findings.push(format!("{owner} lacks the deny of {action} on /pim-system/"));
        }
    }
    findings
}

/// Only the scheduler's role is passed, and only to the scheduler.
fn pass_role_is_conditioned(template: &Value) -> Findings {
    let mut findings = Findings::new();
    for statement in all_statements(template) {
        if !statement.actions.iter().any(|action| action == "iam:PassRole") || !statement.allow {
            continue;
        }
        if statement.resources != ["GetAtt:SchedulerRole.Arn"] {
            findings.push(format!("{} may pass {:?}", statement.role, statement.resources));
        }
        let service = condition_value(&statement.condition, "StringEquals", "iam:PassedToService");
        if service != ["scheduler.amazonaws.com"] {
            findings.push(format!("{} may pass the role to {service:?}", statement.role));
        }
    }
    findings
}

/// Data-key use is limited to DynamoDB, and mail to the configured sender.
fn service_conditions_hold(template: &Value) -> Findings {
    let mut findings = Findings::new();
    for statement in all_statements(template).iter().filter(|s| s.allow) {
        let has = |action: &str| statement.actions.iter().any(|a| a == action);
        let on_mfa_key = statement.resources == ["GetAtt:MfaKey.Arn"];
        let kms_crypto = has("kms:Decrypt") || has("kms:Encrypt") || has("kms:GenerateDataKey");
        if kms_crypto && on_mfa_key {
            // One-time code secrets: only sealed and opened for that purpose, never a data key.
            let purpose = condition_value(
                &statement.condition,
                "StringEquals",
                "kms:EncryptionContext:pim:purpose",
            );
            if purpose != ["mfa-totp"] || has("kms:GenerateDataKey") {
                findings.push(format!("{} may use the MFA key for anything", statement.role));
            }
        } else if kms_crypto {
            let via = condition_value(&statement.condition, "StringEquals", "kms:ViaService");
            if via != ["dynamodb.${AWS::Region}.amazonaws.com"] {
                findings.push(format!("{} may use the data key outside DynamoDB", statement.role));
            }
        }
        if has("kms:Encrypt") && on_mfa_key && statement.role != "RequestRole" {
            findings.push(format!(
                "{} may seal MFA secrets (enrolment is the request function's)",
                statement.role
            ));
        }
        if has("dynamodb:UpdateItem") {
            let keys = condition_value(
                &statement.condition,
                "ForAllValues:StringLike",
                "dynamodb:LeadingKeys",
            );
            // Enrolments (a code's step); and, for the request function alone, the count
            // items of the flood limit.
            let counts = statement.role == "RequestRole" && keys == ["RATE#*"];
            if !(keys == ["MFA#*"] || counts) || statement.actions.len() != 1 {
                findings.push(format!(
                    "{} may update items other than enrolments and request counts",
                    statement.role
                ));
            }
        }
        if has("ses:SendEmail") {
            let from = condition_value(&statement.condition, "StringEquals", "ses:FromAddress");
            if from != ["Ref:SenderAddress"] {
                findings.push(format!("{} may send mail as anyone", statement.role));
            }
        }
    }
    findings
}

/// The scheduler's role can be assumed only by the scheduler, for this account's schedules
/// in the stack's group.
fn scheduler_trust_is_conditioned(template: &Value) -> Findings {
    let mut findings = Findings::new();
    let trust = &template["Resources"]["SchedulerRole"]["Properties"]["AssumeRolePolicyDocument"];
    let statements = trust["Statement"].as_sequence().cloned().unwrap_or_default();
    if statements.len() != 1 {
        findings.push(format!("the scheduler's trust has {} statements", statements.len()));
    }
    for statement in &statements {
        if texts(&statement["Principal"]["Service"]) != ["scheduler.amazonaws.com"] {
            findings.push("the scheduler's role trusts another principal".into());
        }
        let condition = &statement["Condition"];
        if condition_value(condition, "StringEquals", "aws:SourceAccount") != ["Ref:AWS::AccountId"]
        {
            findings.push("the scheduler's trust lacks aws:SourceAccount".into());
        }
        let source = condition_value(condition, "ArnLike", "aws:SourceArn");
        let group_schedules = "schedule/${AWS::StackName}-expiry/*";
        if source.len() != 1 || !source[0].ends_with(group_schedules) {
            findings.push(format!("the scheduler's trust has aws:SourceArn {source:?}"));
        }
    }
    findings
}

/// The environment a function declares, by variable name.
fn environment(template: &Value, function: &str) -> Value {
    template["Resources"][function]["Properties"]["Environment"]["Variables"].clone()
}

/// Each function's environment is exactly the settings its code reads: [`vars::ALL`] for
/// request, approval and revocation (revocation also the sweep's optional
/// [`vars::ELIGIBLE_ROLE_PATH`]), [`vars::AUDIT`] for the audit shipper. No global
/// environment, which SAM would give every function, the shipper included.
fn environment_matches_the_code(template: &Value) -> Findings {
    let mut findings = Findings::new();
    if !template["Globals"]["Function"]["Environment"].is_null() {
        findings.push("a global environment reaches every function".into());
    }
    for (function, _) in FUNCTIONS {
        let mut read: BTreeSet<String> = match function {
            "AuditShipperFunction" => vars::AUDIT.iter().map(|name| name.to_string()).collect(),
            _ => vars::ALL.iter().map(|name| name.to_string()).collect(),
        };
        if function == "RevocationFunction" {
            read.insert(vars::ELIGIBLE_ROLE_PATH.to_string());
        }
        // Only the functions that check one-time codes know the key of their secrets.
        if matches!(function, "RequestFunction" | "ApprovalFunction") {
            read.insert(vars::MFA_KEY_ID.to_string());
        }
        let variables = environment(template, function).as_mapping().cloned().unwrap_or_default();
        let set: BTreeSet<String> =
            variables.keys().filter_map(|key| key.as_str().map(String::from)).collect();
        for missing in read.difference(&set) {
            findings.push(format!("{function}: {missing} is read but not set"));
        }
        for extra in set.difference(&read) {
            findings.push(format!("{function}: {extra} is set but not read"));
        }
    }
    findings
}

/// Each setting names a resource of the kind the code expects, and the names the code
/// builds on (index, TTL attribute, keys, schedule group, revocation function) agree.
fn settings_name_the_right_resources(template: &Value) -> Findings {
    let resources = &template["Resources"];
    let mut findings = Findings::new();
    let mut expect = |function: &str, variable: &str, reference: &str, kind: &str| {
        let env = environment(template, function);
        let target = reference.split(['.', ':']).nth(1).unwrap_or_default();
        let reference_ok = texts(&env[variable]) == [reference.to_string()];
        if !reference_ok || resources[target]["Type"].as_str() != Some(kind) {
            findings.push(format!("{function}: {variable} does not name the {kind} {target}"));
        }
    };
    for function in CORE_FUNCTIONS {
        expect(function, vars::TABLE, "Ref:Table", "AWS::DynamoDB::Table");
        expect(function, vars::LINK_KEY_ID, "GetAtt:LinkKey.Arn", "AWS::KMS::Key");
        expect(
            function,
            vars::SCHEDULE_GROUP,
            "Ref:ScheduleGroup",
            "AWS::Scheduler::ScheduleGroup",
        );
        expect(function, vars::SCHEDULER_ROLE_ARN, "GetAtt:SchedulerRole.Arn", "AWS::IAM::Role");
        let dlq = "GetAtt:ScheduleDeadLetterQueue.Arn";
        expect(function, vars::SCHEDULE_DLQ_ARN, dlq, "AWS::SQS::Queue");
    }
    let shipper = "AuditShipperFunction";
    expect(shipper, vars::TABLE, "Ref:Table", "AWS::DynamoDB::Table");
    expect(shipper, vars::AUDIT_LOG_GROUP, "Ref:AuditLogGroup", "AWS::Logs::LogGroup");
    expect(shipper, vars::CHECKPOINT_KEY_ID, "GetAtt:CheckpointKey.Arn", "AWS::KMS::Key");
    expect(shipper, vars::EVENT_BUS, "Ref:EventBus", "AWS::Events::EventBus");
    let path = texts(&environment(template, "RevocationFunction")[vars::ELIGIBLE_ROLE_PATH]);
    if path != ["Ref:EligibleRolePath"] {
        findings.push(format!("{} is {path:?}, not EligibleRolePath", vars::ELIGIBLE_ROLE_PATH));
    }
    let signing = &resources["CheckpointKey"]["Properties"];
    if texts(&signing["KeySpec"]) != ["ECC_NIST_P256"]
        || texts(&signing["KeyUsage"]) != ["SIGN_VERIFY"]
    {
        findings.push("the checkpoint key is not an ECC_NIST_P256 signing key".into());
    }

    let table = &resources["Table"]["Properties"];
    let index = texts(&table["GlobalSecondaryIndexes"][0]["IndexName"]);
    if index != [pim::adapters::dynamodb::REQUESTER_INDEX] {
        findings.push(format!("the table's index is {index:?}"));
    }
    if texts(&table["TimeToLiveSpecification"]["AttributeName"]) != ["ttl"] {
        findings.push("the table's TTL attribute is not ttl".into());
    }
    let keys: Vec<String> = table["KeySchema"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|key| texts(&key["AttributeName"]))
        .collect();
    if keys != ["pk", "sk"] {
        findings.push(format!("the table's keys are {keys:?}"));
    }
    let key = &resources["LinkKey"]["Properties"];
    if texts(&key["KeySpec"]) != ["HMAC_256"] || texts(&key["KeyUsage"]) != ["GENERATE_VERIFY_MAC"]
    {
        findings.push("the link key is not an HMAC_256 MAC key".into());
    }
    if texts(&resources["ScheduleGroup"]["Properties"]["Name"]) != ["${AWS::StackName}-expiry"] {
        findings.push("the schedule group is not named ${AWS::StackName}-expiry".into());
    }
    let name = texts(&resources["RevocationFunction"]["Properties"]["FunctionName"]);
    for function in CORE_FUNCTIONS {
        let revocation = texts(&environment(template, function)[vars::REVOCATION_ARN]);
        if name.len() != 1 || revocation.len() != 1 || !revocation[0].ends_with(&name[0]) {
            findings.push(format!(
                "{function}: {} {revocation:?} is not the function {name:?}",
                vars::REVOCATION_ARN
            ));
        }
    }
    findings
}

/// The table is encrypted with the data key, recoverable, and its records expire by TTL.
fn state_is_protected(template: &Value) -> Findings {
    let table = &template["Resources"]["Table"];
    let properties = &table["Properties"];
    let mut findings = Findings::new();
    if properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool()
        != Some(true)
    {
        findings.push("the table has no point-in-time recovery".into());
    }
    if texts(&properties["SSESpecification"]["KMSMasterKeyId"]) != ["Ref:DataKey"] {
        findings.push("the table is not encrypted with the data key".into());
    }
    if table["DeletionPolicy"].as_str() != Some("Retain") {
        findings.push("the table is not retained on stack deletion".into());
    }
    let audit = &template["Resources"]["AuditLogGroup"];
    if texts(&audit["Properties"]["KmsKeyId"]) != ["GetAtt:AuditLogKey.Arn"] {
        findings.push("the audit log group is not encrypted with its own key".into());
    }
    if audit["DeletionPolicy"].as_str() != Some("Retain") {
        findings.push("the audit log group is not retained on stack deletion".into());
    }
    // Retention is a parameter: its default and every allowed value keep at least 400 days,
    // as long as closed requests stay in the table.
    let retention = texts(&audit["Properties"]["RetentionInDays"]);
    let parameter = &template["Parameters"]["AuditLogRetentionDays"];
    let days: Vec<u64> = parameter["AllowedValues"]
        .as_sequence()
        .into_iter()
        .flatten()
        .chain([&parameter["Default"]])
        .map(|value| value.as_u64().unwrap_or(0))
        .collect();
    if retention != ["Ref:AuditLogRetentionDays"] || days.len() < 2 || days.iter().any(|d| *d < 400)
    {
        findings.push(format!("the audit log group may keep records less than 400 days: {days:?}"));
    }
    // CloudWatch Logs may use the audit key for the audit log group only.
    let key = &template["Resources"]["AuditLogKey"]["Properties"]["KeyPolicy"]["Statement"];
    let audit_arn = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/pim/${AWS::StackName}/audit";
    for statement in key.as_sequence().into_iter().flatten() {
        if texts(&statement["Principal"]["Service"]) == ["logs.${AWS::Region}.amazonaws.com"] {
            let context =
                &statement["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"];
            if texts(context) != [audit_arn] {
                findings.push(format!("the audit key serves the logs service for {context:?}"));
            }
        }
    }
    findings
}

/// Only the audit shipper signs checkpoints and writes the audit log group; of the table it
/// writes only its cursor (leading key `AUDIT#SHIPPED`).
fn the_shipper_is_confined(template: &Value) -> Findings {
    let mut findings = Findings::new();
    let mut signs = 0;
    for statement in all_statements(template).iter().filter(|s| s.allow) {
        let has = |action: &str| statement.actions.iter().any(|a| a == action);
        let shipper = statement.role == "AuditShipperRole";
        if has("kms:Sign") {
            signs += 1;
            if !shipper || statement.resources != ["GetAtt:CheckpointKey.Arn"] {
                findings
                    .push(format!("{} may sign with {:?}", statement.role, statement.resources));
            }
        }
        if has("logs:PutLogEvents")
            && !shipper
            && statement.resources.iter().any(|r| r == "GetAtt:AuditLogGroup.Arn")
        {
            findings.push(format!("{} may write the audit log group", statement.role));
        }
        if shipper && has("dynamodb:PutItem") {
            let keys = condition_value(
                &statement.condition,
                "ForAllValues:StringEquals",
                "dynamodb:LeadingKeys",
            );
            if keys != ["AUDIT#SHIPPED"] || statement.actions.len() != 1 {
                findings.push(format!(
                    "the shipper may put {:?} with leading keys {keys:?}",
                    statement.actions
                ));
            }
        }
    }
    if signs == 0 {
        findings.push("no role may sign checkpoints".into());
    }
    findings
}

/// Only the audit shipper puts events, and only on the stack's bus; every rule of the
/// template listens on that bus to pim's events, by detail-types the code emits
/// (`pim::events::detail_types`), and delivers somewhere; a log group target lets
/// EventBridge write for that rule only; outputs name the bus.
fn events_go_to_the_stack_s_bus(template: &Value) -> Findings {
    let mut findings = Findings::new();
    let mut puts = 0;
    for statement in all_statements(template).iter().filter(|s| s.allow) {
        if !statement.actions.iter().any(|a| a == "events:PutEvents") {
            continue;
        }
        puts += 1;
        if statement.role != "AuditShipperRole" || statement.resources != ["GetAtt:EventBus.Arn"] {
            findings
                .push(format!("{} may put events on {:?}", statement.role, statement.resources));
        }
    }
    if puts == 0 {
        findings.push("no role may put events on the bus".into());
    }

    let resources = template["Resources"].as_mapping().unwrap();
    let rules: Vec<(String, &Value)> = resources
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Events::Rule"))
        .map(|(id, resource)| (id.as_str().unwrap_or_default().to_string(), resource))
        .collect();
    if rules.is_empty() {
        findings.push("no example rule on the bus".into());
    }
    for (id, rule) in &rules {
        let properties = &rule["Properties"];
        if texts(&properties["EventBusName"]) != ["Ref:EventBus"] {
            findings.push(format!("{id} is not on the stack's bus"));
        }
        let pattern = &properties["EventPattern"];
        if texts(&pattern["source"]) != [pim::events::EVENT_SOURCE] {
            findings.push(format!("{id} listens to {:?}", texts(&pattern["source"])));
        }
        let kinds = texts(&pattern["detail-type"]);
        if kinds.is_empty() {
            findings.push(format!("{id} matches no detail-type"));
        }
        for kind in kinds.iter().filter(|k| !pim::events::detail_types::ALL.contains(&k.as_str())) {
            findings.push(format!("{id} matches {kind}, which pim never emits"));
        }
        let targets = properties["Targets"].as_sequence().cloned().unwrap_or_default();
        if targets.is_empty() {
            findings.push(format!("{id} has no target"));
        }
        for target in targets {
            let arn = texts(&target["Arn"]).join("");
            let Some(group) = arn.split(":log-group:${").nth(1) else { continue };
            let group = group.trim_end_matches('}');
            let allowed = resources.values().any(|resource| {
                let policy = texts(&resource["Properties"]["PolicyDocument"]).join("");
                resource["Type"].as_str() == Some("AWS::Logs::ResourcePolicy")
                    && policy.contains(&format!("\"Resource\": \"${{{group}.Arn}}\""))
                    && policy.contains(&format!("\"aws:SourceArn\": \"${{{id}.Arn}}\""))
            });
            if !allowed {
                findings.push(format!("{id}: no resource policy lets it write {group}"));
            }
        }
    }

    let outputs = template["Outputs"].as_mapping().cloned().unwrap_or_default();
    for wanted in ["Ref:EventBus", "GetAtt:EventBus.Arn"] {
        if !outputs.values().any(|output| texts(&output["Value"]) == [wanted]) {
            findings.push(format!("no output gives {wanted}"));
        }
    }
    findings
}

/// The schedule event of a function that runs on a rate, as (expression, input).
fn schedules(template: &Value, function: &str) -> Vec<(String, Option<String>)> {
    let events = template["Resources"][function]["Properties"]["Events"].as_mapping();
    events
        .into_iter()
        .flatten()
        .filter(|(_, event)| event["Type"].as_str() == Some("Schedule"))
        .map(|(_, event)| {
            let properties = &event["Properties"];
            let enabled = properties["Enabled"].as_bool().unwrap_or(true);
            let expression = properties["Schedule"].as_str().unwrap_or_default();
            let expression = if enabled { expression.to_string() } else { "disabled".into() };
            (expression, properties["Input"].as_str().map(String::from))
        })
        .collect()
}

/// The sweep runs every five minutes in the revocation function with the input its handler
/// takes for a sweep, and the oversight (alerts, review campaigns) every hour; the shipper runs every minute, one at a time, within 60 seconds.
fn scheduled_work_is_declared(template: &Value) -> Findings {
    let mut findings = Findings::new();
    let revocation = schedules(template, "RevocationFunction");
    let parsed: Vec<(String, serde_json::Value)> = revocation
        .iter()
        .map(|(rate, input)| {
            let input = input.as_deref().unwrap_or_default();
            (rate.clone(), serde_json::from_str(input).unwrap_or_default())
        })
        .collect();
    let expected = [
        ("rate(5 minutes)".to_string(), serde_json::json!({"kind": "sweep"})),
        ("rate(1 hour)".to_string(), serde_json::json!({"kind": "oversight"})),
    ];
    if parsed != expected {
        findings.push(format!("the revocation function's schedules are {revocation:?}"));
    }
    let ship = schedules(template, "AuditShipperFunction");
    if ship.len() != 1 || ship[0].0 != "rate(1 minute)" {
        findings.push(format!("the shipper's schedule is {ship:?}"));
    }
    for (function, _) in FUNCTIONS {
        if function != "RevocationFunction"
            && function != "AuditShipperFunction"
            && !schedules(template, function).is_empty()
        {
            findings.push(format!("{function} runs on a schedule"));
        }
    }
    let shipper = &template["Resources"]["AuditShipperFunction"]["Properties"];
    if shipper["ReservedConcurrentExecutions"].as_u64() != Some(1) {
        findings.push("more than one shipper may run at a time".into());
    }
    if shipper["Timeout"].as_u64() != Some(60) {
        findings.push("the shipper's timeout is not 60 seconds".into());
    }
    findings
}

/// Every alarm of the template, as its properties.
fn alarms(template: &Value) -> Vec<Value> {
    let resources = template["Resources"].as_mapping().unwrap();
    resources
        .values()
        .filter(|resource| resource["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|resource| resource["Properties"].clone())
        .collect()
}

/// Whether one alarm watches `metric` in `namespace` with these dimensions, statistic,
/// comparison and threshold.
fn alarmed(
    template: &Value,
    (namespace, metric, dimensions): (&str, &str, Vec<(&str, String)>),
    (statistic, comparison, threshold): (&str, &str, f64),
) -> bool {
    alarms(template).iter().any(|alarm| {
        let declared: Vec<(String, Vec<String>)> = alarm["Dimensions"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|d| (d["Name"].as_str().unwrap_or_default().to_string(), texts(&d["Value"])))
            .collect();
        let wanted: Vec<(String, Vec<String>)> = dimensions
            .iter()
            .map(|(name, value)| (name.to_string(), vec![value.clone()]))
            .collect();
        texts(&alarm["Namespace"]) == [namespace]
            && texts(&alarm["MetricName"]) == [metric]
            && declared == wanted
            && texts(&alarm["Statistic"]) == [statistic]
            && texts(&alarm["ComparisonOperator"]) == [comparison]
            && alarm["Threshold"].as_f64() == Some(threshold)
            && texts(&alarm["TreatMissingData"]) == ["notBreaching"]
    })
}

/// Every function's errors, and the revocation function's own metrics (what the sweep and
/// expiry report, `shared/src/metrics.rs`), raise an alarm.
fn failures_are_alarmed(template: &Value) -> Findings {
    let mut findings = Findings::new();
    let above = "GreaterThanThreshold";
    for (function, _) in FUNCTIONS {
        let errors = ("AWS/Lambda", "Errors", vec![("FunctionName", format!("Ref:{function}"))]);
        if !alarmed(template, errors, ("Sum", above, 0.0)) {
            findings.push(format!("no alarm on {function}'s errors"));
        }
    }
    let revocation = || vec![("Function", "Ref:RevocationFunction".to_string())];
    for (metric, statistic, threshold) in [
        (names::REVOCATION_FAILURES, "Sum", 0.0),
        (names::SWEEP_FAILURES, "Sum", 0.0),
        (names::REVOCATION_LAG, "Maximum", 300.0),
        (names::MISSING_POLICIES, "Sum", 0.0),
        (names::ORPHANS_REMOVED, "Sum", 0.0),
        (names::STANDING_ACCESS, "Maximum", 0.0),
    ] {
        let watched = (metrics::NAMESPACE, metric, revocation());
        if !alarmed(template, watched, (statistic, above, threshold)) {
            findings.push(format!("no alarm on {metric} {statistic} > {threshold}"));
        }
    }
    findings
}

/// The template's resources of one type, as their properties.
fn of_type(template: &Value, kind: &str) -> Vec<Value> {
    let resources = template["Resources"].as_mapping().unwrap();
    resources
        .values()
        .filter(|resource| resource["Type"].as_str() == Some(kind))
        .map(|resource| resource["Properties"].clone())
        .collect()
}

/// One query definition per query of `infra/audit-queries.yaml`, one metric filter per
/// metric filter and one alarm per alarm there, each with the file's values, on the audit
/// log group: the file and the template cannot drift apart.
fn audit_queries_match_the_file(template: &Value) -> Findings {
    let file: Value = serde_yaml::from_str(AUDIT_QUERIES).expect("the audit queries file is YAML");
    let mut findings = Findings::new();
    let definitions = of_type(template, "AWS::Logs::QueryDefinition");
    let queries = file["queries"].as_sequence().cloned().unwrap_or_default();
    if definitions.len() != queries.len() {
        findings.push(format!(
            "{} query definitions for {} queries",
            definitions.len(),
            queries.len()
        ));
    }
    for query in &queries {
        let same = definitions.iter().any(|definition| {
            definition["Name"] == query["name"]
                && definition["QueryString"] == query["query"]
                && texts(&definition["LogGroupNames"]) == ["Ref:AuditLogGroup"]
        });
        if !same {
            findings.push(format!("no query definition equals {:?}", query["name"]));
        }
    }
    let filters = of_type(template, "AWS::Logs::MetricFilter");
    let wanted = file["metric_filters"].as_sequence().cloned().unwrap_or_default();
    if filters.len() != wanted.len() {
        findings.push(format!("{} metric filters for {} in the file", filters.len(), wanted.len()));
    }
    for filter in &wanted {
        let metric = &filter["metric"];
        let same = filters.iter().any(|declared| {
            let transformations = declared["MetricTransformations"].as_sequence();
            let transformation = transformations.and_then(|list| list.first()).cloned();
            let transformation = transformation.unwrap_or_default();
            declared["FilterName"] == filter["name"]
                && declared["FilterPattern"] == filter["pattern"]
                && texts(&declared["LogGroupName"]) == ["Ref:AuditLogGroup"]
                && transformations.map(Vec::len) == Some(1)
                && transformation["MetricNamespace"] == metric["namespace"]
                && transformation["MetricName"] == metric["name"]
                && transformation["MetricValue"] == metric["value"]
                && transformation["DefaultValue"].as_f64() == metric["default"].as_f64()
        });
        if !same {
            findings.push(format!("no metric filter equals {:?}", filter["name"]));
        }
        let alarm = &filter["alarm"];
        if alarm.is_null() {
            continue;
        }
        let same = alarms(template).iter().any(|declared| {
            texts(&declared["AlarmName"])
                == [format!("${{AWS::StackName}}-{}", alarm["name"].as_str().unwrap_or_default())]
                && declared["Namespace"] == metric["namespace"]
                && declared["MetricName"] == metric["name"]
                && declared["Statistic"] == alarm["statistic"]
                && declared["Period"] == alarm["period_seconds"]
                && declared["EvaluationPeriods"] == alarm["evaluation_periods"]
                && declared["ComparisonOperator"] == alarm["comparison"]
                && declared["Threshold"].as_f64() == alarm["threshold"].as_f64()
                && declared["TreatMissingData"] == alarm["treat_missing_data"]
        });
        if !same {
            findings.push(format!("no alarm equals {:?}", alarm["name"]));
        }
    }
    findings
}

/// The requester routes are authenticated (IAM, or JWT when configured); only the approval
/// and review pages, whose link is the credential, are open.
fn routes_are_authorized(template: &Value) -> Findings {
    let resources = template["Resources"].as_mapping().unwrap();
    let mut findings = Findings::new();
    let mut seen = 0;
    for (id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        seen += 1;
        let properties = &resource["Properties"];
        let key = properties["RouteKey"].as_str().unwrap_or_default();
        let auth = texts(&properties["AuthorizationType"]);
        let target = texts(&properties["Target"]);
        let expected: (Vec<&str>, &str) =
            if key.contains(" /approvals/") || key.contains(" /reviews/") {
                (vec!["NONE"], "integrations/${ApprovalIntegration}")
            } else if key.contains(" /grants/{id}/revoke") {
                (vec!["JWT", "AWS_IAM"], "integrations/${RevocationIntegration}")
            } else if key.contains(" /requests")
                || key.contains(" /mfa/")
                || key.contains(" /grants")
                || key.ends_with(" /eligibility")
                || key.ends_with(" /reports")
                || key.ends_with(" /reviews")
                || key == "GET /roles"
            {
                (vec!["JWT", "AWS_IAM"], "integrations/${RequestIntegration}")
            } else {
                findings.push(format!("{id:?} is an unknown route {key}"));
                continue;
            };
        if auth != expected.0 || target != [expected.1] {
            findings.push(format!("{key} has authorization {auth:?} and target {target:?}"));
        }
    }
    if seen != 18 {
        findings.push(format!("{seen} routes where the API has 18"));
    }
    findings
}

/// A rule: what it finds wrong with a template.
type Rule = fn(&Value) -> Findings;

const RULES: &[(&str, Rule)] = &[
    ("functions run as declared roles", functions_run_as_declared_roles),
    ("each role allows exactly its actions", each_role_allows_exactly_its_actions),
    ("no wildcard resources", no_wildcard_resources),
    ("no forbidden actions", no_forbidden_actions),
    ("role policy rights are split and bounded", role_policy_rights_are_split_and_bounded),
    ("pass role is conditioned", pass_role_is_conditioned),
    ("service conditions hold", service_conditions_hold),
    ("scheduler trust is conditioned", scheduler_trust_is_conditioned),
    ("environment matches the code", environment_matches_the_code),
    ("settings name the right resources", settings_name_the_right_resources),
    ("state is protected", state_is_protected),
    ("routes are authorized", routes_are_authorized),
    ("the shipper is confined", the_shipper_is_confined),
    ("events go to the stack's bus", events_go_to_the_stack_s_bus),
    ("scheduled work is declared", scheduled_work_is_declared),
    ("failures are alarmed", failures_are_alarmed),
    ("audit queries match the file", audit_queries_match_the_file),
];

// ---- Mutations --------------------------------------------------------------------------

/// The statement list of a role's first inline policy.
fn statements_mut<'a>(template: &'a mut Value, role: &str) -> &'a mut Vec<Value> {
    template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_sequence_mut()
        .expect("the role has statements")
}

/// The first statement of `role` that names `action`.
fn statement_mut<'a>(template: &'a mut Value, role: &str, action: &str) -> &'a mut Value {
    statements_mut(template, role)
        .iter_mut()
        .find(|statement| texts(&statement["Action"]).iter().any(|a| a == action))
        .expect("the role has a statement with the action")
}

/// The environment variables of `function`.
fn env_mut<'a>(template: &'a mut Value, function: &str) -> &'a mut Value {
    &mut template["Resources"][function]["Properties"]["Environment"]["Variables"]
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("mutation YAML")
}

fn add_statement(template: &mut Value, role: &str, statement: &str) {
    statements_mut(template, role).push(yaml(statement));
}

/// Runs every rule on `template` and returns the names of those that found something.
fn failing_rules(template: &Value) -> Vec<&'static str> {
    RULES.iter().filter(|(_, rule)| !rule(template).is_empty()).map(|(name, _)| *name).collect()
}

#[test]
fn the_template_satisfies_every_rule() {
    let template = template();
    let findings: Vec<String> = RULES
        .iter()
        .flat_map(|(name, rule)| rule(&template).into_iter().map(move |f| format!("{name}: {f}")))
        .collect();
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn each_rule_catches_its_breach() {
    type Mutation = fn(&mut Value);
    let cases: &[(&str, &str, Mutation)] = &[
        ("a function gains an action", "each role allows exactly its actions", |t| {
            let s = "{Effect: Allow, Action: dynamodb:DeleteItem, Resource: !GetAtt Table.Arn}";
            add_statement(t, "RequestRole", s);
        }),
        ("a function loses an action", "each role allows exactly its actions", |t| {
            statements_mut(t, "RevocationRole").retain(|s| {
                !texts(&s["Action"]).contains(&"iam:DeleteRolePolicy".to_string())
                    || s["Effect"].as_str() == Some("Deny")
            });
        }),
        ("a wildcard resource", "no wildcard resources", |t| {
            statement_mut(t, "RequestRole", "kms:GenerateMac")["Resource"] = yaml("'*'");
        }),
        ("a role may create roles", "no forbidden actions", |t| {
            let s = "{Effect: Allow, Action: iam:CreateRole, Resource: arn:aws:iam::1:role/x}";
            add_statement(t, "ApprovalRole", s);
        }),
        ("a policy version change", "no forbidden actions", |t| {
            let s = "{Effect: Allow, Action: iam:CreatePolicyVersion, Resource: arn:aws:iam::1:policy/x}";
            add_statement(t, "RevocationRole", s);
        }),
        ("an Organizations action", "no forbidden actions", |t| {
            let s = "{Effect: Allow, Action: organizations:LeaveOrganization, Resource: arn:x}";
            add_statement(t, "RequestRole", s);
        }),
        ("approval may delete", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:PutRolePolicy");
            statement["Action"] = yaml("[iam:PutRolePolicy, iam:DeleteRolePolicy]");
        }),
        ("revocation may put", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:PutRolePolicy").clone();
            statements_mut(t, "RevocationRole").push(statement);
        }),
        ("request may delete", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "RevocationRole", "iam:DeleteRolePolicy").clone();
            statements_mut(t, "RequestRole").push(statement);
        }),
        ("request may put on pim's own roles", "role policy rights are split and bounded", |t| {
            statements_mut(t, "RequestRole").retain(|s| {
                !texts(&s["Action"]).contains(&"iam:PutRolePolicy".to_string())
                    || s["Effect"].as_str() == Some("Allow")
            });
        }),
        ("approval may detach", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:AttachRolePolicy");
            statement["Action"] = yaml("[iam:AttachRolePolicy, iam:DetachRolePolicy]");
        }),
        ("revocation may attach", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:AttachRolePolicy").clone();
            statements_mut(t, "RevocationRole").push(statement);
        }),
        ("any policy may be attached", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:AttachRolePolicy");
            statement["Condition"].as_mapping_mut().unwrap().remove("ArnLike");
        }),
        ("customer policies may be detached", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "RevocationRole", "iam:DetachRolePolicy");
            statement["Condition"]["ArnLike"]["iam:PolicyARN"] =
                yaml("!Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/*");
        }),
        ("attach without the boundary", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "RequestRole", "iam:AttachRolePolicy");
            statement["Condition"].as_mapping_mut().unwrap().remove("StringEquals");
        }),
        ("attach to pim's own roles", "role policy rights are split and bounded", |t| {
            statements_mut(t, "ApprovalRole").retain(|s| {
                !texts(&s["Action"]).contains(&"iam:AttachRolePolicy".to_string())
                    || s["Effect"].as_str() == Some("Allow")
            });
        }),
        ("a user may get policies attached", "no forbidden actions", |t| {
            let s =
                "{Effect: Allow, Action: iam:AttachUserPolicy, Resource: arn:aws:iam::1:user/x}";
            add_statement(t, "ApprovalRole", s);
        }),
        ("managed policies are written, not read", "no wildcard resources", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:GetPolicy");
            statement["Action"] = yaml("[iam:GetPolicy, iam:GetPolicyVersion, iam:TagPolicy]");
        }),
        ("the boundary condition is gone", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "RevocationRole", "iam:DeleteRolePolicy");
            statement.as_mapping_mut().unwrap().remove("Condition");
        }),
        ("the path restriction is gone", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:PutRolePolicy");
            statement["Resource"] =
                yaml("!Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*");
        }),
        ("the deny on system roles is gone", "role policy rights are split and bounded", |t| {
            statements_mut(t, "ApprovalRole").retain(|s| s["Effect"].as_str() != Some("Deny"));
        }),
        ("pass role unconditioned", "pass role is conditioned", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:PassRole");
            statement.as_mapping_mut().unwrap().remove("Condition");
        }),
        ("pass role of another role", "pass role is conditioned", |t| {
            statement_mut(t, "ApprovalRole", "iam:PassRole")["Resource"] =
                yaml("!GetAtt ApprovalRole.Arn");
        }),
        ("mail from anyone", "service conditions hold", |t| {
            let statement = statement_mut(t, "RequestRole", "ses:SendEmail");
            statement.as_mapping_mut().unwrap().remove("Condition");
        }),
        ("the data key outside DynamoDB", "service conditions hold", |t| {
            let statement = statement_mut(t, "ApprovalRole", "kms:Decrypt");
            statement.as_mapping_mut().unwrap().remove("Condition");
        }),
        ("the MFA key for any purpose", "service conditions hold", |t| {
            let statement = statement_mut(t, "ApprovalRole", "kms:Decrypt");
            statement["Resource"] = yaml("!GetAtt MfaKey.Arn");
            statement.as_mapping_mut().unwrap().remove("Condition");
        }),
        ("approval may seal MFA secrets", "service conditions hold", |t| {
            let s = "{Effect: Allow, Action: kms:Encrypt, Resource: !GetAtt MfaKey.Arn, Condition: {StringEquals: {'kms:EncryptionContext:pim:purpose': mfa-totp}}}";
            add_statement(t, "ApprovalRole", s);
        }),
        ("updates beyond enrolments", "service conditions hold", |t| {
            let statement = statement_mut(t, "RequestRole", "dynamodb:UpdateItem");
            statement.as_mapping_mut().unwrap().remove("Condition");
        }),
        ("approval may touch the request counts", "service conditions hold", |t| {
            let s = "{Effect: Allow, Action: dynamodb:UpdateItem, Resource: !GetAtt Table.Arn, Condition: {'ForAllValues:StringLike': {'dynamodb:LeadingKeys': ['RATE#*']}}}";
            add_statement(t, "ApprovalRole", s);
        }),
        ("the scheduler trust loses its source", "scheduler trust is conditioned", |t| {
            let trust = &mut t["Resources"]["SchedulerRole"]["Properties"];
            trust["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
                .as_mapping_mut()
                .unwrap()
                .remove("ArnLike");
        }),
        ("a setting is not set", "environment matches the code", |t| {
            env_mut(t, "ApprovalFunction").as_mapping_mut().unwrap().remove(vars::SENDER);
        }),
        ("a setting nobody reads", "environment matches the code", |t| {
            env_mut(t, "RequestFunction")["PIM_UNUSED"] = yaml("x");
        }),
        ("the sweep loses its role path", "environment matches the code", |t| {
            let env = env_mut(t, "RevocationFunction").as_mapping_mut().unwrap();
            env.remove(vars::ELIGIBLE_ROLE_PATH);
        }),
        ("the shipper gets the link key", "environment matches the code", |t| {
            env_mut(t, "AuditShipperFunction")[vars::LINK_KEY_ID] = yaml("!GetAtt LinkKey.Arn");
        }),
        ("a global environment", "environment matches the code", |t| {
            t["Globals"]["Function"]["Environment"] = yaml("{Variables: {PIM_TABLE: !Ref Table}}");
        }),
        ("a setting names the wrong resource", "settings name the right resources", |t| {
            env_mut(t, "RevocationFunction")[vars::LINK_KEY_ID] = yaml("!GetAtt DataKey.Arn");
        }),
        ("the shipper signs with the data key", "settings name the right resources", |t| {
            env_mut(t, "AuditShipperFunction")[vars::CHECKPOINT_KEY_ID] =
                yaml("!GetAtt DataKey.Arn");
        }),
        ("the sweep inspects another path", "settings name the right resources", |t| {
            env_mut(t, "RevocationFunction")[vars::ELIGIBLE_ROLE_PATH] = yaml("/");
        }),
        ("the checkpoint key is symmetric", "settings name the right resources", |t| {
            t["Resources"]["CheckpointKey"]["Properties"]["KeySpec"] = yaml("SYMMETRIC_DEFAULT");
        }),
        ("the sweep loses its scan", "each role allows exactly its actions", |t| {
            statement_mut(t, "RevocationRole", "dynamodb:Scan")["Action"] =
                yaml("[dynamodb:GetItem, dynamodb:PutItem]");
        }),
        ("the shipper may delete items", "each role allows exactly its actions", |t| {
            let s = "{Effect: Allow, Action: dynamodb:DeleteItem, Resource: !GetAtt Table.Arn}";
            add_statement(t, "AuditShipperRole", s);
        }),
        ("approval may list every role", "no wildcard resources", |t| {
            add_statement(
                t,
                "ApprovalRole",
                "{Effect: Allow, Action: iam:ListRoles, Resource: '*'}",
            );
        }),
        ("an unscopable statement gains an action", "no wildcard resources", |t| {
            statement_mut(t, "RevocationRole", "iam:ListRoles")["Action"] =
                yaml("[iam:ListRoles, iam:GetRole]");
        }),
        ("the sweep reads every role's policies", "no wildcard resources", |t| {
            statement_mut(t, "RevocationRole", "iam:GetRolePolicy")["Resource"] = yaml("'*'");
        }),
        ("the sweep passes its role anywhere", "pass role is conditioned", |t| {
            let statement = statement_mut(t, "RevocationRole", "iam:PassRole");
            statement["Condition"] =
                yaml("{StringEquals: {iam:PassedToService: lambda.amazonaws.com}}");
        }),
        ("the shipper puts any item", "the shipper is confined", |t| {
            let statement = statement_mut(t, "AuditShipperRole", "dynamodb:PutItem");
            statement.as_mapping_mut().unwrap().remove("Condition");
        }),
        ("the shipper puts request items", "the shipper is confined", |t| {
            let statement = statement_mut(t, "AuditShipperRole", "dynamodb:PutItem");
            statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] =
                yaml("[AUDIT#SHIPPED, 'REQUEST#*']");
        }),
        ("approval may sign checkpoints", "the shipper is confined", |t| {
            let s = "{Effect: Allow, Action: kms:Sign, Resource: !GetAtt CheckpointKey.Arn}";
            add_statement(t, "ApprovalRole", s);
        }),
        ("request writes the audit log group", "the shipper is confined", |t| {
            statement_mut(t, "RequestRole", "logs:PutLogEvents")["Resource"] =
                yaml("[!GetAtt RequestLogGroup.Arn, !GetAtt AuditLogGroup.Arn]");
        }),
        ("request puts events", "events go to the stack's bus", |t| {
            let s = "{Effect: Allow, Action: events:PutEvents, Resource: !GetAtt EventBus.Arn}";
            add_statement(t, "RequestRole", s);
        }),
        ("the shipper puts events on the default bus", "events go to the stack's bus", |t| {
            statement_mut(t, "AuditShipperRole", "events:PutEvents")["Resource"] = yaml(
                "!Sub arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default",
            );
        }),
        ("nobody may put events", "events go to the stack's bus", |t| {
            statements_mut(t, "AuditShipperRole")
                .retain(|s| !texts(&s["Action"]).contains(&"events:PutEvents".to_string()));
        }),
        ("the example rule misspells a detail-type", "events go to the stack's bus", |t| {
            let pattern = &mut t["Resources"]["AlertEventsRule"]["Properties"]["EventPattern"];
            pattern["detail-type"] = yaml("[Grant Faild]");
        }),
        ("the example rule listens to IAM", "events go to the stack's bus", |t| {
            let pattern = &mut t["Resources"]["AlertEventsRule"]["Properties"]["EventPattern"];
            pattern["source"] = yaml("[aws.iam]");
        }),
        ("the example rule is on the default bus", "events go to the stack's bus", |t| {
            let properties = &mut t["Resources"]["AlertEventsRule"]["Properties"];
            properties.as_mapping_mut().unwrap().remove("EventBusName");
        }),
        ("the log group lets any rule write", "events go to the stack's bus", |t| {
            let policy = &mut t["Resources"]["AlertEventsLogPolicy"]["Properties"];
            let text = texts(&policy["PolicyDocument"]).join("");
            let opened = text.replace("${AlertEventsRule.Arn}", "arn:aws:events:*:*:rule/*");
            policy["PolicyDocument"] = Value::String(opened);
        }),
        ("no output names the bus", "events go to the stack's bus", |t| {
            t["Outputs"].as_mapping_mut().unwrap().remove("EventBusName");
        }),
        ("the shipper loses its bus", "environment matches the code", |t| {
            env_mut(t, "AuditShipperFunction").as_mapping_mut().unwrap().remove(vars::EVENT_BUS);
        }),
        ("the shipper names the default bus", "settings name the right resources", |t| {
            env_mut(t, "AuditShipperFunction")[vars::EVENT_BUS] = yaml("default");
        }),
        ("the sweep's input is not a sweep", "scheduled work is declared", |t| {
            let events = &mut t["Resources"]["RevocationFunction"]["Properties"]["Events"];
            events["Sweep"]["Properties"]["Input"] = yaml(r#"'{"kind":"grant_expiry"}'"#);
        }),
        ("the sweep runs hourly", "scheduled work is declared", |t| {
            let events = &mut t["Resources"]["RevocationFunction"]["Properties"]["Events"];
            events["Sweep"]["Properties"]["Schedule"] = yaml("rate(1 hour)");
        }),
        ("the shipping rule is disabled", "scheduled work is declared", |t| {
            let events = &mut t["Resources"]["AuditShipperFunction"]["Properties"]["Events"];
            events["Ship"]["Properties"]["Enabled"] = Value::Bool(false);
        }),
        ("two shippers at once", "scheduled work is declared", |t| {
            let shipper = &mut t["Resources"]["AuditShipperFunction"]["Properties"];
            shipper.as_mapping_mut().unwrap().remove("ReservedConcurrentExecutions");
        }),
        ("the lag alarm waits ten minutes", "failures are alarmed", |t| {
            t["Resources"]["RevocationLagAlarm"]["Properties"]["Threshold"] = yaml("600");
        }),
        ("no alarm on standing access", "failures are alarmed", |t| {
            t["Resources"].as_mapping_mut().unwrap().remove("StandingAccessPoliciesAlarm");
        }),
        ("a sweep alarm watches another function", "failures are alarmed", |t| {
            t["Resources"]["SweepFailuresAlarm"]["Properties"]["Dimensions"] =
                yaml("[{Name: Function, Value: !Ref ApprovalFunction}]");
        }),
        ("no alarm on the shipper's errors", "failures are alarmed", |t| {
            t["Resources"].as_mapping_mut().unwrap().remove("AuditShipperErrorsAlarm");
        }),
        ("a query drifts from the file", "audit queries match the file", |t| {
            let query = &mut t["Resources"]["OpenGrantsQuery"]["Properties"]["QueryString"];
            *query = yaml("'filter action = \"grant.activated\"'");
        }),
        ("a query is dropped", "audit queries match the file", |t| {
            t["Resources"].as_mapping_mut().unwrap().remove("BreakGlassUseQuery");
        }),
        ("a metric filter pattern drifts", "audit queries match the file", |t| {
            t["Resources"]["RefusalsFilter"]["Properties"]["FilterPattern"] = yaml("'refused'");
        }),
        ("a metric filter alarm drifts", "audit queries match the file", |t| {
            t["Resources"]["RepeatedRefusalsAlarm"]["Properties"]["Threshold"] = yaml("50");
        }),
        ("the audit log group on the data key", "state is protected", |t| {
            t["Resources"]["AuditLogGroup"]["Properties"]["KmsKeyId"] = yaml("!GetAtt DataKey.Arn");
        }),
        ("the audit log kept a year", "state is protected", |t| {
            t["Resources"]["AuditLogGroup"]["Properties"]["RetentionInDays"] = yaml("365");
        }),
        ("the audit key serves every log group", "state is protected", |t| {
            let statements = &mut t["Resources"]["AuditLogKey"]["Properties"]["KeyPolicy"];
            statements["Statement"][1]["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"] =
                yaml("!Sub arn:aws:logs:*:*:log-group:*");
        }),
        ("the shipper gets a SAM role", "functions run as declared roles", |t| {
            let properties = &mut t["Resources"]["AuditShipperFunction"]["Properties"];
            properties.as_mapping_mut().unwrap().remove("Role");
        }),
        ("the index is renamed", "settings name the right resources", |t| {
            let table = &mut t["Resources"]["Table"]["Properties"];
            table["GlobalSecondaryIndexes"][0]["IndexName"] = yaml("by-person");
        }),
        ("a function gets a SAM role", "functions run as declared roles", |t| {
            let properties = &mut t["Resources"]["RevocationFunction"]["Properties"];
            properties.as_mapping_mut().unwrap().remove("Role");
        }),
        ("a role gets a managed policy", "functions run as declared roles", |t| {
            t["Resources"]["RequestRole"]["Properties"]["ManagedPolicyArns"] =
                yaml("[arn:aws:iam::aws:policy/AdministratorAccess]");
        }),
        ("point-in-time recovery is off", "state is protected", |t| {
            let table = &mut t["Resources"]["Table"]["Properties"];
            table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] =
                Value::Bool(false);
        }),
        ("a requester route is open", "routes are authorized", |t| {
            t["Resources"]["CreateRequestRoute"]["Properties"]["AuthorizationType"] = yaml("NONE");
        }),
        ("the report is open", "routes are authorized", |t| {
            t["Resources"]["ShowReportRoute"]["Properties"]["AuthorizationType"] = yaml("NONE");
        }),
        ("starting a review goes to the approval function", "routes are authorized", |t| {
            t["Resources"]["StartReviewRoute"]["Properties"]["Target"] =
                yaml("!Sub integrations/${ApprovalIntegration}");
        }),
        ("the oversight stops", "scheduled work is declared", |t| {
            t["Resources"]["RevocationFunction"]["Properties"]["Events"]["Oversight"]["Properties"]
                ["Enabled"] = Value::Bool(false);
        }),
    ];
    for (breach, rule, mutate) in cases {
        let mut template = template();
        mutate(&mut template);
        let failing = failing_rules(&template);
        assert!(failing.contains(rule), "{breach}: expected '{rule}' to fail, got {failing:?}");
    }
}
