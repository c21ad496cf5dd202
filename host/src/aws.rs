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

/// Whether a request that got no answer may get one next time: the connection failed, timed
/// out or broke off (a reset, an answer cut short), as opposed to a bad endpoint or TLS setup.
pub fn dispatch_may_pass<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> bool {
    use aws_smithy_types::retry::ErrorKind;
    match e {
        aws_sdk_s3::error::SdkError::DispatchFailure(d) => {
            d.is_io()
                || d.is_timeout()
                || matches!(
                    d.as_other(),
                    Some(ErrorKind::TransientError | ErrorKind::ThrottlingError | ErrorKind::ServerError)
                )
        }
        _ => false,
    }
}
