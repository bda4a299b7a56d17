//! A setting that must never be printed: tokens, client secrets, webhook keys.

use std::fmt;

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// A secret string. It has no `Display` and no `Serialize`, and its `Debug` prints `***`,
/// so it cannot reach a log line, an API response or the sync log by accident.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it (an HTTP header, a MAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares in constant time, so a caller cannot learn the secret byte by byte from
    /// how long a rejection takes.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(secret)), "Some(***)");
    }

    #[test]
    fn matches_only_the_exact_value() {
        let secret = Secret::new("token-123");
        assert!(secret.matches("token-123"));
        assert!(!secret.matches("token-12"));
        assert!(!secret.matches("token-1234"));
        assert!(!secret.matches(""));
    }
}
