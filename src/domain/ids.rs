//! Identifiers that name what a change is about: which pair, which side, which kind of
//! record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The name of a pair: one CRM connection and one finance connection that sync with each
/// other, as declared in settings (`[pairs.acme]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PairId(pub String);

impl PairId {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    Crm,
    Finance,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::Crm => "crm",
            System::Finance => "finance",
        }
    }

    /// The side a change on this side is written to.
    pub fn opposite(self) -> System {
        match self {
            System::Crm => System::Finance,
            System::Finance => System::Crm,
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for System {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "crm" => Ok(System::Crm),
            "finance" => Ok(System::Finance),
            other => Err(format!(
                "unknown system `{other}` (expected `crm` or `finance`)"
            )),
        }
    }
}

/// The kinds of record Tandem keeps in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    Customer,
    Invoice,
}

impl EntityType {
    pub const ALL: [EntityType; 2] = [EntityType::Customer, EntityType::Invoice];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Customer => "customer",
            EntityType::Invoice => "invoice",
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntityType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(EntityType::Customer),
            "invoice" => Ok(EntityType::Invoice),
            other => Err(format!(
                "unknown entity type `{other}` (expected `customer` or `invoice`)"
            )),
        }
    }
}
