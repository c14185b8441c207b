//! Content digests. Only `sha256` is accepted: the digest a tag is signed with is the
//! sha256 in its TUF target, so a manifest or blob named by any other algorithm could not
//! be checked against a signature. (oci-spec's `Digest` admits every registered algorithm;
//! [`OciDigest::from_spec`] narrows one to this.)

use sha2::{Digest as _, Sha256};

use crate::Error;

/// A `sha256:<64 lower-case hex>` content digest, checked on construction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OciDigest(String);

impl OciDigest {
    pub fn parse(text: &str) -> Result<Self, Error> {
        parse_sha256(text)?;
        Ok(OciDigest(text.to_owned()))
    }

    /// A descriptor's digest, refused unless it is sha256.
    pub fn from_spec(digest: &oci_spec::image::Digest) -> Result<Self, Error> {
        Self::parse(digest.as_ref())
    }

    pub fn of(bytes: &[u8]) -> Self {
        Self::from_sha256(Sha256::digest(bytes).into())
    }

    pub fn from_sha256(digest: [u8; 32]) -> Self {
        OciDigest(format!("sha256:{}", hex::encode(digest)))
    }

    /// The 32 bytes, as a TUF target's sha256 hash holds them.
    pub fn sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // Checked on construction: 64 lower-case hex digits.
        let _ = hex::decode_to_slice(self.hex(), &mut out);
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl std::fmt::Display for OciDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `sha256:<64 lower-case hex>`, the only digest algorithm TUF targets carry here.
pub fn parse_sha256(text: &str) -> Result<[u8; 32], Error> {
    let bad = |reason: &str| Error::Usage(format!("invalid digest {text:?}: {reason}"));
    let hex_part = text
        .strip_prefix("sha256:")
        .ok_or_else(|| bad("expected sha256:<64 hex digits>"))?;
    if hex_part.len() != 64
        || !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("expected 64 lower-case hex digits after sha256:"));
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut digest).map_err(|_| bad("not hex"))?;
    Ok(digest)
}

/// A running sha256 over bytes as they stream past.
#[derive(Clone, Debug, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> OciDigest {
        OciDigest::from_sha256(self.0.finalize().into())
    }
}

/// So that `std::io::copy` can hash a file.
impl std::io::Write for Hasher {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let hex = "ab".repeat(32);
        assert_eq!(
            parse_sha256(&format!("sha256:{hex}")).expect("valid"),
            [0xab; 32]
        );
        for bad in [
            hex.clone(),
            format!("sha512:{hex}"),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            "sha256:".into(),
        ] {
            assert!(parse_sha256(&bad).is_err(), "{bad}");
        }
        let d = OciDigest::of(b"abc");
        assert_eq!(OciDigest::from_sha256(d.sha256()), d);
        let mut h = Hasher::default();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), d);
    }
}
