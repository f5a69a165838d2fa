//! The functions' SDK configuration, built from the variables Lambda sets and nothing else.

use aws_sdk_dynamodb::config::ProvideCredentials;
use pim::adapters::lambda_sdk_config_from;
use pim_tests::emulator_url;
use std::collections::HashMap;

fn lambda_environment() -> HashMap<&'static str, String> {
    HashMap::from([
        ("AWS_REGION", "eu-central-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEKEY".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "example-secret".to_string()),
        ("AWS_SESSION_TOKEN", "example-session".to_string()),
        ("AWS_ENDPOINT_URL", emulator_url()),
    ])
}

#[tokio::test]
async fn a_functions_configuration_comes_from_lambdas_variables_and_reaches_the_endpoint() {
    let env = lambda_environment();
    let config = lambda_sdk_config_from(|name| env.get(name).cloned()).unwrap();
    assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-central-1"));
    assert_eq!(config.endpoint_url(), Some(emulator_url().as_str()));
    let credentials = config.credentials_provider().unwrap().provide_credentials().await.unwrap();
    assert_eq!(credentials.access_key_id(), "ASIAEXAMPLEKEY");
    assert_eq!(credentials.secret_access_key(), "example-secret");
    assert_eq!(credentials.session_token(), Some("example-session"));

    // The whole client stack (HTTPS client, signing, endpoint) answers a real call.
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    dynamodb.list_tables().send().await.expect("the emulator answers");
}

#[tokio::test]
async fn a_functions_configuration_names_the_missing_variable() {
    for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let mut env = lambda_environment();
        env.remove(missing);
        let err = lambda_sdk_config_from(|name| env.get(name).cloned()).unwrap_err();
        assert_eq!(err.to_string(), format!("configuration: {missing} is not set"), "{missing}");
    }

    // Without an endpoint override the SDK resolves AWS's own endpoints.
    let mut env = lambda_environment();
    env.remove("AWS_ENDPOINT_URL");
    let config = lambda_sdk_config_from(|name| env.get(name).cloned()).unwrap();
    assert_eq!(config.endpoint_url(), None);
}
