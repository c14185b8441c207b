//! The commands: one module each, thin. Arguments come in (each command owns its clap
//! `Args`; [`args`] has what several share), calls go into the [`crate::trust`] and
//! [`crate::oci`] layers, and results go out through [`crate::output`].

pub mod agent;
pub mod args;
pub mod backup;
pub mod inspect;
pub mod key;
pub mod key_import;
pub mod login;
pub mod offline_root;
pub mod pin;
pub mod pull;
pub mod push;
pub mod resolve;
pub mod revoke;
pub mod rotate;
pub mod sign;
pub mod signer;
