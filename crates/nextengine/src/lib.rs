//! NextEngine API client: the HTTP implementation of
//! [`sne_ports::nextengine::NextEngineApi`].
//!
//! Tokens live in a [`sne_ports::TokenStore`] shared by every process of the
//! service, because NextEngine rotates them on use and only the first caller
//! with an expired access token gets the new pair.
//!
//! `wait_flag`: uploads never send `wait_flag=1`. With it NE may hold the
//! request for up to an hour before running it, so our timeout would fire on
//! a request NE may still execute, turning a harmless overload into an
//! unknown outcome. Without it NE answers `003002` at once, which proves it
//! did nothing, and the bounded retries take over. Searches may opt in with
//! [`NeClientConfig::wait_on_overload_for_reads`] where a runner can afford
//! to wait.
//!
//! Error codes: [`codes::CODES`] is the one table of what each NextEngine
//! message code means and how the client treats it.

mod client;
pub mod codes;

pub use client::{DEFAULT_API_BASE_URL, DEFAULT_SIGN_IN_BASE_URL, NeClient, NeClientConfig};
pub use sne_ports::RetryPolicy;
