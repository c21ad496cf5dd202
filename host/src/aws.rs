//! What every AWS SDK client of the project shares: the default credential and region chain,
//! `region` and `endpoint_url` from the settings, and TLS by rustls with the ring provider (as
//! MQTT: no cmake/aws-lc build). The Kinesis source builds its client from this; the S3
//! checkpoint store and the S3 sinks share [`s3`].

pub mod s3;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;

/// The shared SDK settings: `region` (else the default chain), `endpoint_url` (an emulator or a
/// VPC endpoint), over rustls with ring. `None` in [`SdkConfig::region`] when no region was
/// given or found; the caller says which setting is missing.
pub async fn sdk_config(region: Option<String>, endpoint_url: Option<&str>) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(endpoint) = endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}
