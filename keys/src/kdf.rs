//! Passphrase-based key derivation: argon2id with bounded parameters.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Bytes derived from a passphrase: 32 for the cipher key, 32 of which the first 16 are the
/// passphrase check stored in the header (see `FORMAT.md`).
pub(crate) const DERIVED_LEN: usize = 64;

/// argon2id cost parameters for a key file.
///
/// Built only through [`KdfParams::new`], [`KdfParams::default`] and
/// [`KdfParams::for_tests`], so a value of this type is always within the limits below,
/// which are also enforced on every file read: a key file that asks for more is refused
/// before any memory is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl KdfParams {
    /// Memory limit: 4 GiB, in KiB.
    pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
    /// Limit on the number of passes.
    pub const MAX_T_COST: u32 = 100;
    /// Limit on the degree of parallelism (lanes).
    pub const MAX_P_COST: u32 = 64;

    /// Parameters with memory `m_cost_kib` KiB, `t_cost` passes and `p_cost` lanes.
    ///
    /// Fails outside the limits above and argon2's own minimums (`t_cost` ≥ 1, `p_cost` ≥ 1,
    /// `m_cost_kib` ≥ 8 × `p_cost`).
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self> {
        check_limits(m_cost_kib, t_cost, p_cost)
            .map_err(|reason| Error::InvalidKdfParams { reason })?;
        Ok(KdfParams {
            m_cost_kib,
            t_cost,
            p_cost,
        })
    }

    /// Cheap parameters (8 MiB, one pass, one lane) so that tests run fast. Never use
    /// them for keys that protect anything.
    pub fn for_tests() -> Self {
        KdfParams {
            m_cost_kib: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// Memory cost in KiB.
    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    /// Number of passes over the memory.
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    /// Degree of parallelism (lanes).
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    /// Parameters read from a file: the same limits, reported as an unsafe file.
    pub(crate) fn from_file(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self> {
        check_limits(m_cost_kib, t_cost, p_cost)
            .map_err(|reason| Error::UnsafeKdfParams { path: None, reason })?;
        Ok(KdfParams {
            m_cost_kib,
            t_cost,
            p_cost,
        })
    }

    /// argon2id (version 0x13) of `passphrase` and `salt`, [`DERIVED_LEN`] bytes long.
    pub(crate) fn derive(
        &self,
        passphrase: &[u8],
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; DERIVED_LEN]>> {
        let kdf_error = |e: argon2::Error| Error::Kdf {
            reason: e.to_string(),
        };
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(DERIVED_LEN))
            .map_err(kdf_error)?;
        let mut out = Zeroizing::new([0u8; DERIVED_LEN]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(kdf_error)?;
        Ok(out)
    }
}

/// The recommended parameters, RFC 9106's second recommended option: 64 MiB, 3 passes,
/// and 4 lanes, or one per core on a machine with more (at most 16). The lanes of one
/// derivation run at once, one per core, so an unlock takes the machine's whole width
/// instead of one core's time: the work (memory × passes) an attacker pays per guess is
/// the same. Files keep the parameters they were written with; older ones have 1 lane.
impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: default_lanes(),
        }
    }
}

/// 4 lanes, or one per core where there are more than 4, up to 16.
pub fn default_lanes() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    u32::try_from(cores).unwrap_or(u32::MAX).clamp(4, 16)
}

fn check_limits(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<(), String> {
    if !(1..=KdfParams::MAX_P_COST).contains(&p_cost) {
        return Err(format!(
            "argon2id parallelism {p_cost} is outside 1..={}",
            KdfParams::MAX_P_COST
        ));
    }
    if !(1..=KdfParams::MAX_T_COST).contains(&t_cost) {
        return Err(format!(
            "argon2id passes {t_cost} is outside 1..={}",
            KdfParams::MAX_T_COST
        ));
    }
    let min_m_cost = 8 * p_cost;
    if !(min_m_cost..=KdfParams::MAX_M_COST_KIB).contains(&m_cost_kib) {
        return Err(format!(
            "argon2id memory {m_cost_kib} KiB is outside {min_m_cost}..={} KiB",
            KdfParams::MAX_M_COST_KIB
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn presets_are_within_limits() {
        for params in [KdfParams::default(), KdfParams::for_tests()] {
            let (m, t, p) = (params.m_cost_kib(), params.t_cost(), params.p_cost());
            assert_eq!(KdfParams::new(m, t, p).expect("preset is valid"), params);
        }
        assert_eq!(
            (
                KdfParams::default().m_cost_kib(),
                KdfParams::default().t_cost(),
                KdfParams::default().p_cost()
            ),
            (65536, 3, default_lanes())
        );
        assert!((4..=16).contains(&default_lanes()));
    }

    /// Lanes are part of the derivation: the same passphrase and salt with 1 lane (older
    /// files) and with 4 give different keys, each reproducible.
    #[test]
    fn lanes_change_the_derived_key() {
        let one = KdfParams::new(64, 1, 1).expect("valid");
        let four = KdfParams::new(64, 1, 4).expect("valid");
        let a = one
            .derive(b"passphrase", b"0123456789abcdef")
            .expect("derives");
        let b = four
            .derive(b"passphrase", b"0123456789abcdef")
            .expect("derives");
        assert_ne!(*a, *b);
        assert_eq!(
            *a,
            *one.derive(b"passphrase", b"0123456789abcdef")
                .expect("derives")
        );
        assert_eq!(
            *b,
            *four
                .derive(b"passphrase", b"0123456789abcdef")
                .expect("derives")
        );
    }

    #[test]
    fn absurd_or_degenerate_parameters_are_refused() {
        let too_much_memory = KdfParams::new(KdfParams::MAX_M_COST_KIB + 1, 1, 1);
        assert!(matches!(
            too_much_memory,
            Err(Error::InvalidKdfParams { .. })
        ));
        assert!(KdfParams::new(KdfParams::MAX_M_COST_KIB, 1, 1).is_ok());
        assert!(KdfParams::new(8192, KdfParams::MAX_T_COST + 1, 1).is_err());
        assert!(KdfParams::new(8192, 0, 1).is_err());
        assert!(KdfParams::new(8192, 1, 0).is_err());
        assert!(KdfParams::new(8192, 1, KdfParams::MAX_P_COST + 1).is_err());
        assert!(KdfParams::new(15, 1, 2).is_err());
        let err = KdfParams::from_file(8192, 1000, 1).expect_err("too many passes");
        assert_eq!(
            err.to_string(),
            "key file asks for unsafe key derivation parameters: argon2id passes 1000 is outside 1..=100"
        );
    }

    #[test]
    fn derivation_depends_on_passphrase_salt_and_every_parameter() {
        let base = KdfParams::new(64, 1, 1).expect("valid");
        let derive = |params: KdfParams, pass: &[u8], salt: &[u8]| {
            *params.derive(pass, salt).expect("derives")
        };
        let reference = derive(base, b"pass", &[1; 16]);
        assert_eq!(reference, derive(base, b"pass", &[1; 16]));
        assert_ne!(reference, derive(base, b"Pass", &[1; 16]));
        assert_ne!(reference, derive(base, b"pass", &[2; 16]));
        for other in [(72, 1, 1), (64, 2, 1), (64, 1, 2)] {
            let params = KdfParams::new(other.0, other.1, other.2).expect("valid");
            assert_ne!(reference, derive(params, b"pass", &[1; 16]), "{other:?}");
        }
    }
}
