//! The rules the admin API reads its parameters by, one per kind of input: counts,
//! time windows, times, record ids, pair names, search text and words from a fixed
//! list. Each takes the text as a caller sent it and gives the value within its range,
//! or a [`Refusal`] that names the range, so that no value outside it reaches a
//! handler, a query or a computation that could overflow.
//!
//! Kept apart from the engine (no I/O, no framework) so that the fuzz target and the
//! property tests exercise exactly what the server runs.

mod rules;
mod time;

pub use rules::{count, pair_name, record_id, search_text, word};
pub use time::{instant, span, window, Span, EARLIEST, LATEST};

use std::fmt;

/// Why a parameter was refused: the range it must be in, and what was sent, shortened
/// and escaped so that an answer never carries control characters or a megabyte back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What the value must be, e.g. `a whole number from 1 to 500`.
    pub allowed: String,
    /// The value sent, escaped and at most [`SHOWN`] characters.
    pub got: String,
}

/// The most characters of a refused value an answer repeats.
pub const SHOWN: usize = 40;

impl Refusal {
    pub fn new(allowed: impl Into<String>, got: &str) -> Self {
        Self {
            allowed: allowed.into(),
            got: shown(got),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "must be {}; got `{}`", self.allowed, self.got)
    }
}

/// `text` as an answer may repeat it: control characters and quotes escaped, at most
/// [`SHOWN`] characters, `…` where it was cut.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == SHOWN {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// The limits of the admin API, in one place for the handlers, the documentation
/// test and the README.
pub mod limits {
    /// Ids in one resync request.
    pub const RESYNC_IDS: usize = 1000;
    /// Days one replay may cover.
    pub const REPLAY_DAYS: i64 = 31;
    /// Longest `window` of `GET /api/stats`, in days.
    pub const STATS_WINDOW_DAYS: u64 = 90;
    /// Characters of a record id.
    pub const RECORD_ID_CHARS: usize = 255;
    /// Characters of a pair name.
    pub const PAIR_NAME_CHARS: usize = 64;
    /// Characters of a search text, at least and at most.
    pub const SEARCH_CHARS: (usize, usize) = (2, 200);
    /// Rows skipped by `offset`, at most.
    pub const OFFSET: u64 = 1_000_000;
}
