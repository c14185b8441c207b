//! The trust side: the trust server client ([`server`]), each repository's verified
//! metadata in the trust directory ([`cache`]) brought up to date by the TUF workflow
//! ([`repo`]), private keys ([`keyring`]), and publishing: tags into targets
//! ([`publish`]), into signer roles ([`signers`]), and delegations that wait for their
//! signer ([`pending`]).

pub mod agent;
pub mod cache;
pub mod context;
pub mod keyring;
pub mod pending;
pub mod publish;
pub mod repo;
pub mod server;
pub mod signers;
pub mod targets;
