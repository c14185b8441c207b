//! notar-tests: end-to-end and interoperability tests for Notar.
//!
//! The library part holds what the tests share: [`repo::TestRepo`], a complete TUF
//! repository built and signed with notar-tuf, and [`python`], which runs the python-tuf
//! scripts under `interop/`.

pub mod python;
pub mod repo;
