//! Notary-dialect repositories built in code, as the stock `notary` client builds them: a
//! self-signed ECDSA root certificate naming the GUN, ECDSA targets and snapshot keys, the
//! server's timestamp key in Notary form, targets and snapshot at version 2. For the
//! refusals the stock client never lets one send (an expired root certificate, a mixed
//! upload), since it checks its own root first.

use base64::Engine as _;
use notar_tuf::key::KeyVal;
use notar_tuf::notary;
use notar_tuf::{
    Expiry, MetaFile, PublicKey, RoleType, Root, Signed, Signer, Snapshot, TargetFile, TargetName,
    Targets, Version,
};

/// An ECDSA P-256 key as the Notary client holds one, with its Notary key object: bare
/// (`ecdsa`, base64 DER) or certified (`ecdsa-x509`, base64 of a PEM certificate).
pub struct NotarySigner {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl NotarySigner {
    fn new_key() -> (rcgen::KeyPair, p256::ecdsa::SigningKey) {
        use p256::pkcs8::DecodePrivateKey;
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&pair.serialize_der()).expect("P-256");
        (pair, key)
    }

    fn object(keytype: &str, public: &[u8]) -> PublicKey {
        PublicKey {
            keytype: keytype.into(),
            scheme: String::new(),
            keyval: KeyVal {
                public: base64::engine::general_purpose::STANDARD.encode(public),
                extra: [("private".to_owned(), serde_json::Value::Null)].into(),
            },
            extra: Default::default(),
        }
    }

    /// A bare `ecdsa` key (targets, snapshot, delegations).
    pub fn generate() -> Self {
        use p256::pkcs8::EncodePublicKey;
        let (_, key) = Self::new_key();
        let der = key.verifying_key().to_public_key_der().expect("SPKI");
        NotarySigner {
            public: Self::object("ecdsa", der.as_bytes()),
            key,
        }
    }

    /// A key in a self-signed certificate naming `common_name`, valid over the period.
    pub fn certified(
        common_name: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Self {
        let (pair, key) = Self::new_key();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.self_signed(&pair).expect("certificate");
        NotarySigner {
            public: Self::object("ecdsa-x509", cert.pem().as_bytes()),
            key,
        }
    }
}

impl std::fmt::Debug for NotarySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NotarySigner({})", self.public.key_id().short())
    }
}

impl Signer for NotarySigner {
    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        signature.to_bytes().to_vec()
    }
}

/// The server's timestamp key for `publisher`'s repository, as a stock Notary client gets
/// it (no `Accept`: Notary's form while the repository has no root).
pub async fn notary_timestamp_key(publisher: &crate::server::Publisher) -> PublicKey {
    publisher
        .http
        .get(publisher.url("timestamp.key"))
        .send()
        .await
        .expect("GET key")
        .json()
        .await
        .expect("key JSON")
}

/// A root certificate's validity period.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
}

impl Validity {
    /// From a day ago for ten years.
    pub fn current() -> Self {
        let now = time::OffsetDateTime::now_utc();
        Validity {
            not_before: now - time::Duration::days(1),
            not_after: now + time::Duration::days(3650),
        }
    }
}

/// The keys of one Notary repository, and the metadata they sign.
#[derive(Debug)]
pub struct NotaryRepo {
    pub gun: String,
    pub root: NotarySigner,
    pub targets: NotarySigner,
    pub snapshot: NotarySigner,
    pub timestamp: PublicKey,
}

fn later() -> Expiry {
    Expiry::after(time::OffsetDateTime::now_utc(), time::Duration::days(365))
}

impl NotaryRepo {
    /// Keys for `gun`, the root certificate naming `common_name` over `validity`;
    /// `timestamp` is the server's key as `GET …/timestamp.key` gave it.
    pub fn new(gun: &str, common_name: &str, validity: Validity, timestamp: PublicKey) -> Self {
        NotaryRepo {
            gun: gun.to_owned(),
            root: NotarySigner::certified(common_name, validity.not_before, validity.not_after),
            targets: NotarySigner::generate(),
            snapshot: NotarySigner::generate(),
            timestamp,
        }
    }

    /// Root `version`: the root certificate, targets and snapshot keys, the server's
    /// timestamp key; signed by the root key.
    pub fn root(&self, version: u64) -> Signed<Root> {
        let mut root = Root::new(Version::new(version).expect("version"), later());
        root.consistent_snapshot = Some(false);
        root.add_key(RoleType::Root, self.root.public_key());
        root.add_key(RoleType::Targets, self.targets.public_key());
        root.add_key(RoleType::Snapshot, self.snapshot.public_key());
        root.add_key(RoleType::Timestamp, self.timestamp.clone());
        notary::sign(root, &[&self.root]).expect("sign root")
    }

    /// Targets `version` holding `tags`, each pointing at its own name's bytes.
    pub fn targets(&self, version: u64, tags: &[&str]) -> Signed<Targets> {
        let mut targets = Targets::new(Version::new(version).expect("version"), later());
        for tag in tags {
            use sha2::Digest as _;
            targets.targets.insert(
                TargetName::new(*tag).expect("tag"),
                TargetFile::sha256(
                    tag.len() as u64,
                    sha2::Sha256::digest(tag.as_bytes()).into(),
                ),
            );
        }
        notary::sign(targets, &[&self.targets]).expect("sign targets")
    }

    /// Snapshot `version` pinning `root` and `targets` as Notary does (sha256 and sha512).
    pub fn snapshot(&self, version: u64, root: &[u8], targets: &[u8]) -> Signed<Snapshot> {
        let mut snapshot = Snapshot::new(Version::new(version).expect("version"), later());
        snapshot.meta.insert(
            "root.json".into(),
            MetaFile::sha256_sha512(Version::ONE, root),
        );
        snapshot.meta.insert(
            "targets.json".into(),
            MetaFile::sha256_sha512(Version::ONE, targets),
        );
        notary::sign(snapshot, &[&self.snapshot]).expect("sign snapshot")
    }

    /// The three files of a first publish: root v1, targets v2 with `tags`, snapshot v2.
    pub fn first_publish(&self, tags: &[&str]) -> Vec<(String, Vec<u8>)> {
        let root = self.root(1);
        let targets = self.targets(2, tags);
        let snapshot = self.snapshot(2, root.as_bytes(), targets.as_bytes());
        vec![
            ("root".into(), root.as_bytes().to_vec()),
            ("targets".into(), targets.as_bytes().to_vec()),
            ("snapshot".into(), snapshot.as_bytes().to_vec()),
        ]
    }
}
