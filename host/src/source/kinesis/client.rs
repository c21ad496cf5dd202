//! The SDK client: the project's shared AWS settings ([`crate::aws`]) for the stream's region
//! and endpoint.

use super::KinesisError;
use crate::config::{KinesisSourceConfig, KinesisStream};

/// A client for the configured stream's region and endpoint.
pub(super) async fn connect(settings: &KinesisSourceConfig) -> Result<aws_sdk_kinesis::Client, KinesisError> {
    Ok(aws_sdk_kinesis::Client::new(&shared_config(settings).await?))
}

/// The shared settings for the stream's region and endpoint (the lease table uses them too).
pub(super) async fn shared_config(settings: &KinesisSourceConfig) -> Result<aws_config::SdkConfig, KinesisError> {
    // `region`, else the stream ARN's (arn:aws:kinesis:REGION:account:stream/name), else the
    // default chain.
    let from_arn = match &settings.stream {
        KinesisStream::Arn(arn) => arn.split(':').nth(3).filter(|r| !r.is_empty()).map(str::to_owned),
        KinesisStream::Name(_) => None,
    };
    let shared = crate::aws::sdk_config(settings.region.clone().or(from_arn), settings.endpoint_url.as_deref()).await;
    if shared.region().is_none() {
        return Err(KinesisError::NoRegion);
    }
    Ok(shared)
}
