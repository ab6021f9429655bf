//! The committee directory: which people's mediation committee (调委会) serves which unit at which
//! tier. Parsed from the TOML text of `deploy/committees.toml` (format in `docs/deadlines.md`); the
//! escalation ladder uses it to find the next tier's committee when a deadline is breached. It
//! stands in for the organisation registry Fengqiao does not have yet.

use serde::Deserialize;

use crate::command::CommitteeRef;
use crate::event::pb;
use crate::values::{Ident, UnitCode};

/// The only directory format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a directory could not be loaded. Each message names the entry and field.
///
/// ### Handling
/// Fatal at start-up: the operator fixes the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Not TOML, a missing or unknown field, or a wrong type (the message has line and column).
    #[error("committee directory does not parse: {0}")]
    Toml(String),
    /// The `format` field names a version this build does not read.
    #[error("committee directory format {found} is not supported; this build reads format {FORMAT_VERSION}")]
    UnsupportedFormat { found: u32 },
    /// A field has a value that does not make sense.
    #[error("committee directory: {field}: {problem}")]
    Invalid { field: String, problem: String },
}

/// One committee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committee {
    pub id: Ident,
    pub name: String,
    pub unit: UnitCode,
    pub tier: pb::Tier,
}

impl Committee {
    /// The committee as commands name it.
    pub fn committee_ref(&self) -> CommitteeRef {
        CommitteeRef { id: self.id.clone(), unit: self.unit.clone() }
    }
}

/// Every committee the ladder can escalate to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directory {
    version: String,
    source: String,
    committees: Vec<Committee>,
}

impl Directory {
    /// Parses a directory file.
    ///
    /// # Errors
    /// [`DirectoryError::Toml`], [`DirectoryError::UnsupportedFormat`], or
    /// [`DirectoryError::Invalid`] for an empty version, a bad or duplicate committee id, an empty
    /// name, a bad unit code, an unknown tier, or two committees of one tier on the same unit.
    pub fn parse(text: &str) -> Result<Self, DirectoryError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            format: u32,
            version: String,
            source: String,
            #[serde(default)]
            committees: Vec<RawCommittee>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawCommittee {
            id: String,
            name: String,
            unit: String,
            tier: String,
        }
        let raw: Raw = toml::from_str(text).map_err(|e| DirectoryError::Toml(e.to_string()))?;
        if raw.format != FORMAT_VERSION {
            return Err(DirectoryError::UnsupportedFormat { found: raw.format });
        }
        let invalid = |field: String, problem: String| DirectoryError::Invalid { field, problem };
        for (field, value) in [("version", &raw.version), ("source", &raw.source)] {
            if value.trim().is_empty() {
                return Err(invalid(field.to_owned(), "must not be empty".to_owned()));
            }
        }
        let mut committees: Vec<Committee> = Vec::with_capacity(raw.committees.len());
        for (i, c) in raw.committees.iter().enumerate() {
            let field = |name: &str| format!("committees[{i}].{name}");
            let id = Ident::parse(&field("id"), &c.id).map_err(|e| invalid(e.field, e.problem))?;
            let unit = UnitCode::parse(&field("unit"), &c.unit).map_err(|e| invalid(e.field, e.problem))?;
            let tier = match pb::Tier::from_str_name(&format!("TIER_{}", c.tier.trim().to_ascii_uppercase())) {
                Some(t) if t != pb::Tier::Unspecified => t,
                _ => {
                    return Err(invalid(
                        field("tier"),
                        format!("unknown tier {:?}; expected grid, community, street or district", c.tier),
                    ));
                }
            };
            if c.name.trim().is_empty() {
                return Err(invalid(field("name"), "must not be empty".to_owned()));
            }
            if committees.iter().any(|k| k.id == id) {
                return Err(invalid(field("id"), format!("{id} is listed twice")));
            }
            if let Some(other) = committees.iter().find(|k| k.unit == unit && k.tier == tier) {
                return Err(invalid(
                    field("unit"),
                    format!("{unit} already has a {} committee ({})", c.tier.trim(), other.id),
                ));
            }
            committees.push(Committee { id, name: c.name.trim().to_owned(), unit, tier });
        }
        Ok(Self { version: raw.version, source: raw.source, committees })
    }

    /// The directory's version, as written in the file.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where the list comes from, as written in the file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every committee, in file order.
    pub fn committees(&self) -> &[Committee] {
        &self.committees
    }

    /// The committee of `tier` serving `unit`: among those whose unit subtree contains `unit`, the
    /// nearest (longest code prefix).
    pub fn serving(&self, unit: &str, tier: pb::Tier) -> Option<&Committee> {
        self.committees
            .iter()
            .filter(|c| c.tier == tier && unit.starts_with(c.unit.prefix()))
            .max_by_key(|c| c.unit.prefix().len())
    }
}
