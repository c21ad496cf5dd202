//! The SDK client: the default credential and region chain, `region` and `endpoint_url`
//! from the settings, TLS by rustls with the ring provider (as MQTT).

use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls;

use super::KinesisError;
use crate::config::{KinesisSourceConfig, KinesisStream};

/// A client for the configured stream's region and endpoint.
pub(super) async fn connect(settings: &KinesisSourceConfig) -> Result<aws_sdk_kinesis::Client, KinesisError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    // `region`, else the stream ARN's (arn:aws:kinesis:REGION:account:stream/name), else the
    // default chain.
    let from_arn = match &settings.stream {
        KinesisStream::Arn(arn) => arn.split(':').nth(3).filter(|r| !r.is_empty()).map(str::to_owned),
        KinesisStream::Name(_) => None,
    };
    if let Some(region) = settings.region.clone().or(from_arn) {
        loader = loader.region(Region::new(region));
    }
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(KinesisError::NoRegion);
    }
    Ok(aws_sdk_kinesis::Client::new(&shared))
}
