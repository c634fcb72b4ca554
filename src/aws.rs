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
}
