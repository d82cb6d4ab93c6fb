//! A credential that cannot leak through formatting.

use std::fmt;

/// An API key or bearer token: `Debug` and `Display` print `***`. Read it only with
/// [`Secret::expose`], in the one place that puts it into a request header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The credential itself, for the request header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when blank, which is a configuration mistake and never a valid key.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_redacts_the_value() {
        let s = Secret::new("pplx-live-abc123");
        let shown = format!("{s} {s:?} {s:#?}");
        assert!(!shown.contains("abc123"), "{shown}");
        assert_eq!(s.expose(), "pplx-live-abc123");
        assert!(Secret::new("  ").is_blank());
    }
}
