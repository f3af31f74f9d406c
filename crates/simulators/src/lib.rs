mod common;
pub mod nextengine;
pub mod smaregi;
