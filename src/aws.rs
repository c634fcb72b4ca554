//! How kinesync reaches AWS: the SDK's default credential chain
//! (environment, shared profiles, web identity / IRSA, ECS and EC2 roles),
//! an optional region override, and an optional IAM role to assume on top.
//!
//! With `assume_role_arn` set, the default chain's credentials are only used
//! to call STS AssumeRole; every Kinesis or Data API call then runs as the
//! assumed role, whose temporary credentials the SDK refreshes before they
//! expire. Endpoints come from the SDK too (`AWS_ENDPOINT_URL_<SERVICE>`
//! points a service at a stand-in). docs/security.md documents the keys.

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};

/// The session name the assumed role's CloudTrail entries show.
pub const ASSUME_ROLE_SESSION_NAME: &str = "kinesync";

/// Region and identity for one AWS service's client.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsAccess<'a> {
    /// Overrides the default chain's region.
    pub region: Option<&'a str>,
    /// A role to assume on top of the default chain.
    pub assume_role_arn: Option<&'a str>,
    /// The external ID the role's trust policy asks for.
    pub external_id: Option<&'a str>,
}

fn loader(access: &AwsAccess<'_>) -> ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = access.region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader
}

/// The SDK configuration for `access`.
pub async fn sdk_config(access: AwsAccess<'_>) -> SdkConfig {
    let base = loader(&access).load().await;
    match access.assume_role_arn {
        None => base,
        Some(arn) => {
            let provider = assume_role_provider(&base, arn, access.external_id).await;
            loader(&access).credentials_provider(provider).load().await
        }
    }
}

/// A provider that assumes `arn` with the credentials of `base`.
async fn assume_role_provider(
    base: &SdkConfig,
    arn: &str,
    external_id: Option<&str>,
) -> AssumeRoleProvider {
    let mut builder = AssumeRoleProvider::builder(arn)
        .session_name(ASSUME_ROLE_SESSION_NAME)
        .configure(base);
    if let Some(id) = external_id {
        builder = builder.external_id(id);
    }
    builder.build().await
}

/// One AWS API call, as an error message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `Kinesis`, `Redshift Data API`.
    pub service: &'static str,
    /// The IAM action, e.g. `kinesis:PutRecords`.
    pub action: String,
    /// What the call is about, e.g. `stream "cdc"`.
    pub resource: String,
    /// The variable that overrides the service's endpoint.
    pub endpoint_variable: &'static str,
    /// The endpoint's host prefix (`kinesis`, `redshift-data`).
    pub endpoint_prefix: &'static str,
    /// The config key of the service's region.
    pub region_key: &'static str,
    /// The region the client uses, if any.
    pub region: Option<String>,
}

impl Call {
    /// A Kinesis call (`operation` as IAM names it, e.g. `PutRecords`).
    pub fn kinesis(operation: &str, stream: &str, region: Option<String>) -> Call {
        Call {
            service: "Kinesis",
            action: format!("kinesis:{operation}"),
            resource: format!("stream {stream:?}"),
            endpoint_variable: "AWS_ENDPOINT_URL_KINESIS",
            endpoint_prefix: "kinesis",
            region_key: "kinesis.region",
            region,
        }
    }

    /// A Redshift Data API call.
    pub fn redshift_data(operation: &str, target: &str, region: Option<String>) -> Call {
        Call {
            service: "Redshift Data API",
            action: format!("redshift-data:{operation}"),
            resource: target.to_owned(),
            endpoint_variable: "AWS_ENDPOINT_URL_REDSHIFT_DATA",
            endpoint_prefix: "redshift-data",
            region_key: "redshift.region",
            region,
        }
    }

    /// The URL the call goes to: the override variable's, else the public endpoint.
    pub fn endpoint(&self) -> String {
        [self.endpoint_variable, "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| {
                let region = self.region.as_deref().unwrap_or("<region>");
                format!("https://{}.{region}.amazonaws.com", self.endpoint_prefix)
            })
    }
}

/// An AWS failure in one line, worded like the AWS CLI: what failed
/// ([`problem`](Self::problem)), then the fix ([`fix`](Self::fix)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsError {
    NoCredentials {
        service: &'static str,
    },
    BadCredentials {
        service: &'static str,
        code: String,
        message: String,
    },
    NoRegion {
        service: &'static str,
        region_key: &'static str,
    },
    Unreachable {
        service: &'static str,
        endpoint: String,
        detail: String,
        endpoint_variable: &'static str,
        region_key: &'static str,
    },
    AccessDenied {
        service: &'static str,
        action: String,
        resource: String,
        code: String,
        message: String,
    },
    NotFound {
        service: &'static str,
        resource: String,
        region: String,
        region_key: &'static str,
        code: String,
        message: String,
    },
    Throttled {
        service: &'static str,
        action: String,
        code: String,
    },
    Service {
        service: &'static str,
        action: String,
        code: String,
        message: String,
    },
    Other {
        service: &'static str,
        action: String,
        detail: String,
    },
}

impl AwsError {
    /// What failed.
    pub fn problem(&self) -> String {
        match self {
            AwsError::NoCredentials { service } => {
                format!("{service}: unable to locate AWS credentials")
            }
            AwsError::BadCredentials {
                service,
                code,
                message,
            } => {
                format!("{service}: the AWS credentials were rejected ({code}: {message})")
            }
            AwsError::NoRegion { service, .. } => format!("{service}: you must specify a region"),
            AwsError::Unreachable {
                service,
                endpoint,
                detail,
                ..
            } => {
                format!("{service}: could not connect to the endpoint URL {endpoint:?}: {detail}")
            }
            AwsError::AccessDenied {
                service,
                action,
                resource,
                code,
                message,
            } => format!(
                "{service}: not authorized to perform {action} on {resource} ({code}: {message})"
            ),
            AwsError::NotFound {
                service,
                resource,
                region,
                code,
                message,
                ..
            } => {
                format!("{service}: {resource} not found in region {region} ({code}: {message})")
            }
            AwsError::Throttled {
                service,
                action,
                code,
            } => {
                format!("{service}: {action} was throttled ({code}: rate exceeded)")
            }
            AwsError::Service {
                service,
                action,
                code,
                message,
            } => {
                format!("{service}: {action} failed ({code}: {message})")
            }
            AwsError::Other {
                service,
                action,
                detail,
            } => {
                format!("{service}: {action} failed: {detail}")
            }
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            AwsError::NoCredentials { .. } => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role (IRSA, ECS task role, EC2 instance profile)".to_owned(),
            AwsError::BadCredentials { .. } => "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or the role's session): they are unknown or expired".to_owned(),
            AwsError::NoRegion { region_key, .. } => format!("set {region_key} or AWS_REGION"),
            AwsError::Unreachable { endpoint_variable, region_key, .. } => {
                format!("check the network, {endpoint_variable} and {region_key}")
            }
            AwsError::AccessDenied { action, resource, .. } => {
                format!("allow {action} on {resource} for this process's IAM role (docs/security.md)")
            }
            AwsError::NotFound { region_key, .. } => {
                format!("create it, or fix its name and {region_key}")
            }
            AwsError::Throttled { .. } => "it is retried; if it persists, add shards (Kinesis) or lower the call rate".to_owned(),
            AwsError::Service { .. } | AwsError::Other { .. } => {
                "see the message; docs/operations.md lists the common failures".to_owned()
            }
        }
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.problem(), self.fix())
    }
}

impl std::error::Error for AwsError {}

/// Service error codes that mean throttling.
const THROTTLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ActiveStatementsExceededException",
];
/// Service error codes that mean the credentials themselves are bad.
const BAD_CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "SignatureDoesNotMatch",
];

impl AwsError {
    /// Whether trying the same call again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AwsError::Unreachable { .. } | AwsError::Throttled { .. } | AwsError::Other { .. }
        )
    }

    /// The service error code, if the service answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::BadCredentials { code, .. }
            | AwsError::AccessDenied { code, .. }
            | AwsError::NotFound { code, .. }
            | AwsError::Throttled { code, .. }
            | AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Classifies a failed call of either SDK.
pub fn classify<E, R>(call: &Call, err: &SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let service = call.service;
    if let SdkError::ServiceError(service_error) = err {
        let e = service_error.err();
        let code = e.code().unwrap_or("Unknown").to_owned();
        let message = e.message().unwrap_or("").to_owned();
        return from_code(call, code, message);
    }
    let chain = error_chain(err);
    let unreachable = |detail: String| AwsError::Unreachable {
        service,
        endpoint: call.endpoint(),
        detail,
        endpoint_variable: call.endpoint_variable,
        region_key: call.region_key,
    };
    if chain.contains("MissingSigningRegion")
        || chain.contains("missing signing region")
        || chain.contains("field: \"region\"")
    {
        AwsError::NoRegion {
            service,
            region_key: call.region_key,
        }
    } else if chain.contains("CredentialsNotLoaded") || chain.contains("no credentials") {
        AwsError::NoCredentials { service }
    } else {
        match err {
            SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
                unreachable(root_cause(err))
            }
            SdkError::TimeoutError(_) => unreachable("no answer in time".to_owned()),
            _ => other(call, err),
        }
    }
}

fn from_code(call: &Call, code: String, message: String) -> AwsError {
    let service = call.service;
    let action = call.action.clone();
    if code.contains("AccessDenied") || code == "UnauthorizedOperation" {
        AwsError::AccessDenied {
            service,
            action,
            resource: call.resource.clone(),
            code,
            message,
        }
    } else if BAD_CREDENTIAL_CODES.contains(&code.as_str()) {
        AwsError::BadCredentials {
            service,
            code,
            message,
        }
    } else if code == "ResourceNotFoundException" {
        AwsError::NotFound {
            service,
            resource: call.resource.clone(),
            region: call
                .region
                .clone()
                .unwrap_or_else(|| "(default)".to_owned()),
            region_key: call.region_key,
            code,
            message,
        }
    } else if THROTTLE_CODES.contains(&code.as_str()) {
        AwsError::Throttled {
            service,
            action,
            code,
        }
    } else {
        AwsError::Service {
            service,
            action,
            code,
            message,
        }
    }
}

fn other<E: std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    call: &Call,
    err: &SdkError<E, R>,
) -> AwsError {
    AwsError::Other {
        service: call.service,
        action: call.action.clone(),
        detail: root_cause(err),
    }
}

/// Every cause's text and debug form, for recognising the SDK's errors.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{err:?}");
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(" | {cause} {cause:?}"));
        source = cause.source();
    }
    text
}

/// The innermost cause's message (e.g. `Connection refused (os error 111)`).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        last = cause.to_string();
        source = cause.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::meta::credentials::CredentialsProviderChain;
    use aws_sdk_kinesis::config::{Credentials, ProvideCredentials};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ROLE: &str = "arn:aws:iam::123456789012:role/kinesync-producer";

    #[tokio::test]
    async fn without_a_role_the_default_chain_is_kept() {
        let sdk = sdk_config(AwsAccess {
            region: Some("eu-west-1"),
            ..AwsAccess::default()
        })
        .await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let provider = format!("{:?}", sdk.credentials_provider());
        assert!(!provider.contains("AssumeRole"), "{provider}");
    }

    #[tokio::test]
    async fn with_a_role_every_client_uses_the_assume_role_provider() {
        let sdk = sdk_config(AwsAccess {
            region: Some("eu-west-1"),
            assume_role_arn: Some(ROLE),
            external_id: Some("ext-1"),
        })
        .await;
        let provider = format!("{:?}", sdk.credentials_provider());
        assert!(provider.contains("AssumeRoleProvider"), "{provider}");
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
    }

    /// The one STS call, answered by a listener on this machine: the
    /// provider asks for the configured role, session name and external ID
    /// with the base credentials, and hands out what STS returned.
    #[tokio::test]
    async fn the_provider_asks_sts_for_the_configured_role() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let sts = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then a Content-Length body.
            loop {
                let n = socket.read(&mut chunk).await.unwrap();
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length || n == 0 {
                        break;
                    }
                }
            }
            let body = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAASSUMED</AccessKeyId><SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA:kinesync</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/kinesync-producer/kinesync</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).to_string()
        });
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(CredentialsProviderChain::first_try(
                "base",
                Credentials::new("AKIABASE", "base-secret", None, None, "test"),
            ))
            .load()
            .await;
        let provider = assume_role_provider(&base, ROLE, Some("ext-1")).await;
        let credentials = provider.provide_credentials().await.unwrap();
        assert_eq!(credentials.access_key_id(), "ASIAASSUMED");
        let request = sts.await.unwrap();
        for needle in [
            "Action=AssumeRole",
            "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fkinesync-producer",
            "RoleSessionName=kinesync",
            "ExternalId=ext-1",
            "Credential=AKIABASE/",
        ] {
            assert!(request.contains(needle), "{needle} not in:\n{request}");
        }
    }

    async fn failed_call(region: Option<&str>, endpoint: &str) -> AwsError {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .empty_test_environment()
            .endpoint_url(endpoint);
        if let Some(region) = region {
            loader = loader.region(Region::new(region.to_owned()));
        }
        loader = loader.credentials_provider(Credentials::new("a", "b", None, None, "test"));
        let client = aws_sdk_kinesis::Client::new(&loader.load().await);
        let err = client
            .describe_stream_summary()
            .stream_name("cdc")
            .send()
            .await
            .unwrap_err();
        let call = Call::kinesis("DescribeStreamSummary", "cdc", region.map(str::to_owned));
        classify(&call, &err)
    }

    /// The SDK's real failures, without any server: a refused port, no
    /// region; each is one line with its fix (missing credentials: the
    /// binary's test in tests/bad_input.rs, which controls the environment).
    #[tokio::test]
    async fn sdk_failures_read_like_the_aws_cli() {
        let refused = failed_call(Some("eu-west-1"), "http://127.0.0.1:1").await;
        assert!(
            matches!(refused, AwsError::Unreachable { .. }),
            "{refused:?}"
        );
        let text = refused.to_string();
        assert!(
            text.contains("could not connect to the endpoint URL") && text.contains("refused"),
            "{text}"
        );
        assert!(!text.contains("create"), "{text}");
        let no_region = failed_call(None, "http://127.0.0.1:1").await;
        assert_eq!(
            no_region.to_string(),
            "Kinesis: you must specify a region: set kinesis.region or AWS_REGION"
        );
        for e in [&refused, &no_region] {
            let text = e.to_string();
            assert!(text.len() < 300 && !text.contains('\n'), "{text}");
            assert!(!text.contains("DispatchFailure"), "{text}");
        }
    }

    #[test]
    fn service_codes_name_the_iam_action_or_the_missing_resource() {
        let call = Call::kinesis("PutRecords", "cdc", Some("eu-west-1".into()));
        let denied = from_code(
            &call,
            "AccessDeniedException".into(),
            "User: x is not authorized".into(),
        );
        assert!(
            denied
                .to_string()
                .contains("not authorized to perform kinesis:PutRecords on stream \"cdc\""),
            "{denied}"
        );
        let missing = from_code(
            &call,
            "ResourceNotFoundException".into(),
            "Stream cdc not found".into(),
        );
        assert!(
            missing
                .to_string()
                .contains("stream \"cdc\" not found in region eu-west-1"),
            "{missing}"
        );
        let throttled = from_code(&call, "LimitExceededException".into(), String::new());
        assert!(throttled.is_transient() && throttled.to_string().contains("throttled"));
        let bad = from_code(
            &call,
            "UnrecognizedClientException".into(),
            "invalid token".into(),
        );
        assert!(
            bad.to_string().contains("credentials were rejected"),
            "{bad}"
        );
    }
}
