//! HAProxy-syntax configuration: parsing into the validated [`model`].
pub mod model;
pub use model::*;
