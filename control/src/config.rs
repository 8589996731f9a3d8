//! The configuration wing: reading the filter's configuration from a file, the changes
//! operators make to it, what a change does to users, the decision explained for one request,
//! and the feature flags. Everything here is pure: it reads and returns configurations, and
//! writes nothing to a mesh (that is [`crate::mesh`]).

pub mod edit;
pub mod explanation;
pub mod file;
pub mod flags;
pub mod movement;
