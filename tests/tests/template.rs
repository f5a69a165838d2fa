//! The SAM template read the way a security reviewer reads it. Each rule is a function that
//! lists what it finds wrong with a template; the real template must give no finding, and
//! a copy of it with one thing broken must give at least one, so no rule passes vacuously.
//! Needs no emulator: it reads `infra/template.yaml` only.

use pim::config::vars;
use serde_yaml::Value;
use serde_yaml::value::TaggedValue;
use std::collections::BTreeSet;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The three functions and their roles, as the rest of the system knows them.
const FUNCTIONS: [(&str, &str); 3] = [
    ("RequestFunction", "RequestRole"),
    ("ApprovalFunction", "ApprovalRole"),
    ("RevocationFunction", "RevocationRole"),
];

/// Every IAM action each role may be allowed, and no other: what its code calls. DynamoDB
/// checks a `TransactWriteItems` item by item, so its Puts need `dynamodb:PutItem`; the
/// `kms` data-key actions are only usable through DynamoDB (a condition the rules check).
fn expected_actions(role: &str) -> BTreeSet<&'static str> {
    let table_via_kms = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"];
    let logs = ["logs:CreateLogStream", "logs:PutLogEvents"];
    let own: &[&str] = match role {
        "RequestRole" => &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "kms:GenerateMac",
            "ses:SendEmail",
        ],
        "ApprovalRole" => &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "kms:VerifyMac",
            "iam:PutRolePolicy",
            "scheduler:CreateSchedule",
            "iam:PassRole",
            "ses:SendEmail",
        ],
        "RevocationRole" => &["dynamodb:GetItem", "dynamodb:PutItem", "iam:DeleteRolePolicy"],
        "SchedulerRole" => return BTreeSet::from(["lambda:InvokeFunction", "sqs:SendMessage"]),
        _ => &[],
    };
    own.iter().chain(&table_via_kms).chain(&logs).copied().collect()
}

/// The only resources an Allow statement may name with a wildcard: the eligible roles, and
/// the schedules of the stack's own group.
const ALLOWED_WILDCARD_RESOURCES: [&str; 2] = [
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role${EligibleRolePath}*",
    "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*",
];

/// Actions no identity policy here may allow, as prefixes and suffixes of action names.
fn forbidden(action: &str) -> bool {
    let lower = action.to_ascii_lowercase();
    lower.contains('*')
        || lower.starts_with("iam:create")
        || lower.starts_with("iam:attach")
        || lower.starts_with("iam:update")
        || lower.ends_with("policyversion")
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

/// No Allow statement names every resource; the only wildcards are the eligible roles and
/// the stack's schedules.
fn no_wildcard_resources(template: &Value) -> Findings {
    let mut findings = Findings::new();
    for statement in all_statements(template).iter().filter(|s| s.allow) {
        if statement.resources.is_empty() {
            findings.push(format!("{}: {:?} has no resource", statement.role, statement.actions));
        }
        for resource in &statement.resources {
            let allowed = ALLOWED_WILDCARD_RESOURCES.contains(&resource.as_str());
            if resource.contains('*') && !allowed {
                findings.push(format!("{}: {:?} on {resource}", statement.role, statement.actions));
            }
        }
    }
    findings
}

/// Role creation, attachment, policy versions, boundaries, Organizations, the stack itself
/// and role assumption are allowed to no one.
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

/// Only approval writes role policies and only revocation deletes them; both only on roles
/// under the eligible path that carry the required boundary, and never on the stack's own.
fn role_policy_rights_are_split_and_bounded(template: &Value) -> Findings {
    let mut findings = Findings::new();
    for (action, owner) in
        [("iam:PutRolePolicy", "ApprovalRole"), ("iam:DeleteRolePolicy", "RevocationRole")]
    {
        let holding: Vec<Statement> = all_statements(template)
            .into_iter()
            .filter(|statement| statement.actions.iter().any(|a| a == action))
            .collect();
        let mut denied_on_system_roles = false;
        for statement in &holding {
            if statement.role != owner && statement.allow {
                findings.push(format!("{} may {action}", statement.role));
            }
            if !statement.allow {
                denied_on_system_roles |= statement.resources
                    == ["arn:${AWS::Partition}:iam::${AWS::AccountId}:role/pim-system/*"];
                continue;
            }
            if statement.resources != [ALLOWED_WILDCARD_RESOURCES[0]] {
                findings.push(format!("{action} is not limited to the eligible path"));
            }
            let boundary =
                condition_value(&statement.condition, "StringEquals", "iam:PermissionsBoundary");
            if boundary != ["Ref:PermissionsBoundaryArn"] {
                findings.push(format!("{action} does not require the permissions boundary"));
            }
        }
        if !denied_on_system_roles {
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
        if has("kms:Decrypt") || has("kms:Encrypt") || has("kms:GenerateDataKey") {
            let via = condition_value(&statement.condition, "StringEquals", "kms:ViaService");
            if via != ["dynamodb.${AWS::Region}.amazonaws.com"] {
                findings.push(format!("{} may use the data key outside DynamoDB", statement.role));
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

/// The functions' environment is exactly the settings the code reads.
fn environment_matches_the_code(template: &Value) -> Findings {
    let variables = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .cloned()
        .unwrap_or_default();
    let set: BTreeSet<String> =
        variables.keys().filter_map(|key| key.as_str().map(String::from)).collect();
    let read: BTreeSet<String> = vars::ALL.iter().map(|name| name.to_string()).collect();
    let mut findings = Findings::new();
    for missing in read.difference(&set) {
        findings.push(format!("{missing} is read but not set"));
    }
    for extra in set.difference(&read) {
        findings.push(format!("{extra} is set but not read"));
    }
    for (function, _) in FUNCTIONS {
        let own = &template["Resources"][function]["Properties"]["Environment"];
        if !own.is_null() {
            findings.push(format!("{function} overrides the shared environment"));
        }
    }
    findings
}

/// Each setting names a resource of the kind the code expects, and the names the code
/// builds on (index, TTL attribute, keys, schedule group, revocation function) agree.
fn settings_name_the_right_resources(template: &Value) -> Findings {
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    let resources = &template["Resources"];
    let mut findings = Findings::new();
    let mut expect = |variable: &str, reference: &str, kind: &str| {
        let target = reference.split(['.', ':']).nth(1).unwrap_or_default();
        let reference_ok = texts(&env[variable]) == [reference.to_string()];
        if !reference_ok || resources[target]["Type"].as_str() != Some(kind) {
            findings.push(format!("{variable} does not name the {kind} {target}"));
        }
    };
    expect(vars::TABLE, "Ref:Table", "AWS::DynamoDB::Table");
    expect(vars::LINK_KEY_ID, "GetAtt:LinkKey.Arn", "AWS::KMS::Key");
    expect(vars::SCHEDULE_GROUP, "Ref:ScheduleGroup", "AWS::Scheduler::ScheduleGroup");
    expect(vars::SCHEDULER_ROLE_ARN, "GetAtt:SchedulerRole.Arn", "AWS::IAM::Role");
    expect(vars::SCHEDULE_DLQ_ARN, "GetAtt:ScheduleDeadLetterQueue.Arn", "AWS::SQS::Queue");

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
    let revocation = texts(&env[vars::REVOCATION_ARN]);
    let name = texts(&resources["RevocationFunction"]["Properties"]["FunctionName"]);
    if name.len() != 1 || revocation.len() != 1 || !revocation[0].ends_with(&name[0]) {
        findings
            .push(format!("{} {revocation:?} is not the function {name:?}", vars::REVOCATION_ARN));
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
    let audit = &template["Resources"]["AuditLogGroup"]["Properties"];
    if audit["KmsKeyId"].is_null() || audit["RetentionInDays"].is_null() {
        findings.push("the audit log group lacks encryption or retention".into());
    }
    findings
}

/// The requester routes are authenticated (IAM, or JWT when configured); only the approval
/// routes, whose link is the credential, are open.
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
        let expected: (Vec<&str>, &str) = if key.contains(" /approvals/") {
            (vec!["NONE"], "integrations/${ApprovalIntegration}")
        } else if key.contains(" /requests") {
            (vec!["JWT", "AWS_IAM"], "integrations/${RequestIntegration}")
        } else {
            findings.push(format!("{id:?} is an unknown route {key}"));
            continue;
        };
        if auth != expected.0 || target != [expected.1] {
            findings.push(format!("{key} has authorization {auth:?} and target {target:?}"));
        }
    }
    if seen != 6 {
        findings.push(format!("{seen} routes where the API has 6"));
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
            let s = "{Effect: Allow, Action: dynamodb:Scan, Resource: !GetAtt Table.Arn}";
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
        ("request may put", "role policy rights are split and bounded", |t| {
            let statement = statement_mut(t, "ApprovalRole", "iam:PutRolePolicy").clone();
            statements_mut(t, "RequestRole").push(statement);
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
        ("the scheduler trust loses its source", "scheduler trust is conditioned", |t| {
            let trust = &mut t["Resources"]["SchedulerRole"]["Properties"];
            trust["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
                .as_mapping_mut()
                .unwrap()
                .remove("ArnLike");
        }),
        ("a setting is not set", "environment matches the code", |t| {
            let env = &mut t["Globals"]["Function"]["Environment"]["Variables"];
            env.as_mapping_mut().unwrap().remove(vars::SENDER);
        }),
        ("a setting nobody reads", "environment matches the code", |t| {
            let env = &mut t["Globals"]["Function"]["Environment"]["Variables"];
            env["PIM_UNUSED"] = yaml("x");
        }),
        ("a setting names the wrong resource", "settings name the right resources", |t| {
            let env = &mut t["Globals"]["Function"]["Environment"]["Variables"];
            env[vars::LINK_KEY_ID] = yaml("!GetAtt DataKey.Arn");
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
    ];
    for (breach, rule, mutate) in cases {
        let mut template = template();
        mutate(&mut template);
        let failing = failing_rules(&template);
        assert!(failing.contains(rule), "{breach}: expected '{rule}' to fail, got {failing:?}");
    }
}
