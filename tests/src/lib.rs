//! notar-tests: end-to-end and interoperability tests for Notar.
//!
//! The library part holds what the tests share: [`repo::TestRepo`], a complete TUF
//! repository built and signed with notar-tuf; [`server`], a real notar-server on a
//! loopback port with a publisher that signs and uploads; and [`python`], which runs the
//! python-tuf scripts under `interop/`.

#![expect(
    clippy::expect_used,
    reason = "test support: a failed set-up step should stop the test with its message"
)]

pub mod notary_cli;
pub mod notary_repo;
pub mod process;
pub mod python;
pub mod registry;
pub mod repo;
pub mod server;
pub mod simrepo;
pub mod tls;
pub mod tmux;
pub mod tokens;
pub mod webdriver;
