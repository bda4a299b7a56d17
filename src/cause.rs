//! The part of an error a person can act on: the innermost cause ("Connection
//! refused", "password authentication failed"); the layers above it repeat it in
//! other words.

/// The last error in `err`'s chain of sources.
pub fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
