//! The X.509 certificates that stand for keys in the Notary dialect (`ecdsa-x509`,
//! `rsa-x509`): a root key of a Notary repository is a self-signed certificate whose common
//! name is the GUN, and the key value is the base64 of the PEM text.
//!
//! Only what the rules need is read: the public key, the common name, the validity period
//! and whether the certificate was signed with SHA-1 (which Notary refuses for roots).

use ::time::OffsetDateTime;
use x509_parser::prelude::{FromDer, Pem, X509Certificate};

/// The parts of one certificate the rules read.
#[derive(Clone, Debug)]
pub struct Certificate {
    spki: Vec<u8>,
    common_name: Option<String>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    sha1_signed: bool,
    /// A CA certificate cannot be the leaf, which Notary wants first in a bundle.
    is_ca: bool,
}

/// OIDs of the SHA-1 signature algorithms (RSA, ECDSA, DSA).
const SHA1_SIGNATURES: [&str; 3] = [
    "1.2.840.113549.1.1.5",
    "1.2.840.10045.4.1",
    "1.2.840.10040.4.3",
];

impl Certificate {
    /// Reads the leaf certificate of a Notary key value (base64 of PEM text).
    pub fn from_key_value(public: &str) -> Result<Self, String> {
        let pem_text = crate::key::base64_decode(public)
            .ok_or_else(|| "the certificate is not base64".to_owned())?;
        Self::from_pem(&pem_text)
    }

    /// Reads the first certificate of a PEM bundle.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, String> {
        let mut blocks = Pem::iter_from_buffer(pem_text);
        // Intermediates after the leaf are allowed and not read: the leaf alone certifies.
        let leaf = blocks
            .next()
            .ok_or_else(|| "no PEM certificate in the key value".to_owned())?
            .map_err(|e| format!("bad PEM: {e}"))?;
        if leaf.label != "CERTIFICATE" {
            return Err(format!(
                "a PEM {:?} block where a CERTIFICATE was expected",
                leaf.label
            ));
        }
        let (_, cert) = X509Certificate::from_der(&leaf.contents)
            .map_err(|e| format!("bad certificate: {e}"))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let validity = cert.validity();
        Ok(Certificate {
            spki: cert.public_key().raw.to_vec(),
            common_name,
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            sha1_signed: SHA1_SIGNATURES
                .contains(&cert.signature_algorithm.algorithm.to_id_string().as_str()),
            is_ca: cert.is_ca(),
        })
    }

    /// The DER SubjectPublicKeyInfo of the certified key.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// Why this certificate cannot certify a root key of `gun` at `now`, if it cannot: it
    /// must name the GUN (or a prefix of it ending in `/*`), be within its validity period,
    /// not be signed with SHA-1, and be a leaf (the first of its bundle).
    pub fn unfit_for_root(&self, gun: &str, now: OffsetDateTime) -> Option<String> {
        let cn = self.common_name.as_deref().unwrap_or("");
        let names_gun = cn == gun
            || cn
                .strip_suffix('*')
                .is_some_and(|prefix| prefix.ends_with('/') && gun.starts_with(prefix));
        if !names_gun {
            return Some(format!(
                "its common name {cn:?} is not the repository {gun:?}"
            ));
        }
        if now < self.not_before {
            return Some(format!("it is not valid before {}", self.not_before));
        }
        if now >= self.not_after {
            return Some(format!("it expired at {}", self.not_after));
        }
        if self.sha1_signed {
            return Some("it is signed with SHA-1".into());
        }
        if self.is_ca {
            return Some("it is a CA certificate, not a leaf".into());
        }
        None
    }
}
