//! The Fengqiao mediation domain, pure: deciding a command is a function of
//! (case state, command, clock) → events or a rejection. No I/O, no async, no SQL, no tonic.
//!
//! - [`values`]: newtypes that parse, not validate (a bad unit code or ID number cannot exist here);
//! - [`command`]: what actors ask for;
//! - [`case`]: the case state folded from events, and [`case::decide`];
//! - [`event`]: the past-tense events (protobuf messages from `proto/`) and their type names;
//! - [`clock`]: injected time;
//! - [`sla`]: the SLA policy as data (clock lengths, warnings, the escalation ladder);
//! - [`deadlines`]: a case's deadline clocks folded from its events, and their due times;
//! - [`directory`]: the committees the escalation ladder escalates to;
//! - [`privacy`]: masking of names, phone numbers, ID numbers and addresses.

pub mod case;
pub mod clock;
pub mod command;
pub mod deadlines;
pub mod directory;
pub mod event;
pub mod privacy;
pub mod sla;
pub mod values;

pub use case::{Case, Rejection, decide};
pub use clock::Clock;
pub use command::Command;
pub use values::FieldError;
