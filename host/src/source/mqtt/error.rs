//! What ends an MQTT source: the failures reconnecting cannot mend.

/// Why an MQTT source cannot go on. None of these is retried by the source itself: lost
/// connections are (with backoff), these are what reconnecting cannot mend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    /// The broker refused the connection (client id, credentials, certificate policy).
    #[error("{url} refused the connection: {code} (check client_id, credentials and the certificate's policy)")]
    Refused {
        /// The broker.
        url: String,
        /// The broker's return code.
        code: String,
    },
    /// The first connection could not be made (no broker there, DNS, TLS, a firewall).
    #[error("cannot connect to {url}: {cause} ({attempts} attempts; connect_attempts sets how many)")]
    CannotConnect {
        /// The broker.
        url: String,
        /// The last attempt's error.
        cause: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The broker refused a subscription.
    #[error("the broker refused the subscription to \"{topic}\" (not allowed, or not a valid filter)")]
    SubscriptionRefused {
        /// The topic filter.
        topic: String,
    },
    /// Subscribing could not be requested.
    #[error("cannot subscribe: {0}")]
    Subscribe(String),
    /// The TLS material cannot be used.
    #[error("{0}")]
    Tls(String),
    /// The redelivery ledger a checkpoint saved cannot be read.
    #[error("{0}")]
    Ledger(String),
    /// The connection thread could not start.
    #[error("cannot start the MQTT thread: {0}")]
    Thread(String),
}

impl MqttError {
    /// Whether trying again later may succeed: a thread that could not start may, the
    /// broker's refusals and bad settings do not.
    pub fn retryable(&self) -> bool {
        matches!(self, MqttError::Thread(_))
    }
}
