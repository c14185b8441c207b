//! Token signers for auth tests: an ES256 and an RS256 key, each with a self-signed
//! certificate for the server's bundle, and a CA-signed ES256 leaf for `x5c` chains. A
//! [`TokenSpec`] says what to put in a token, so a test can break one claim at a time.

use std::path::{Path, PathBuf};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Keys that sign test tokens, and the PEM bundle that trusts them.
#[derive(Debug)]
pub struct TokenSigners {
    es256: (EncodingKey, String),
    rs256: (EncodingKey, String),
    /// A leaf certificate (DER) signed by `ca_pem`, and its key.
    chained: (EncodingKey, Vec<u8>),
    /// The bundle: the ES256 and RS256 certificates and the CA.
    pub bundle_pem: String,
    /// The public key of the ES256 signer as PEM, for the HS256 key-confusion attack.
    pub es256_public_pem: String,
}

impl TokenSigners {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let self_signed = |key: &KeyPair, name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.self_signed(key).expect("self-signed")
        };
        let es_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let es_cert = self_signed(&es_key, "test ES256 signer");
        let rsa = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
        let rsa_der = {
            use rsa::pkcs8::EncodePrivateKey;
            rsa.to_pkcs8_der().expect("PKCS#8").as_bytes().to_vec()
        };
        let rs_key = KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls_pki_types::PrivatePkcs8KeyDer::from(rsa_der.clone()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .expect("RSA key pair");
        let rs_cert = self_signed(&rs_key, "test RS256 signer");
        let rsa_pkcs1 = {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            rsa.to_pkcs1_der().expect("PKCS#1").as_bytes().to_vec()
        };

        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "test token CA");
        let ca = ca.self_signed(&ca_key).expect("CA");
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        leaf.distinguished_name
            .push(DnType::CommonName, "test chained signer");
        let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).expect("leaf");

        TokenSigners {
            es256: (
                EncodingKey::from_ec_der(&es_key.serialize_der()),
                notar_server::auth::libtrust_key_id(&es_key.public_key_der()),
            ),
            rs256: (
                EncodingKey::from_rsa_der(&rsa_pkcs1),
                notar_server::auth::libtrust_key_id(&rs_key.public_key_der()),
            ),
            chained: (
                EncodingKey::from_ec_der(&leaf_key.serialize_der()),
                leaf.der().to_vec(),
            ),
            bundle_pem: format!("{}{}{}", es_cert.pem(), rs_cert.pem(), ca.pem()),
            es256_public_pem: es_key.public_key_pem(),
        }
    }

    /// Writes the bundle to `dir/bundle.pem`.
    pub fn write_bundle(&self, dir: &Path) -> PathBuf {
        let path = dir.join("bundle.pem");
        std::fs::write(&path, &self.bundle_pem).expect("write bundle");
        path
    }

    /// A token as `spec` says.
    pub fn mint(&self, spec: &TokenSpec) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({
            "iss": spec.issuer,
            "sub": spec.subject,
            "aud": spec.audience,
            "exp": now.saturating_add_signed(spec.expires_in),
            "nbf": now.saturating_add_signed(spec.not_before_in),
            "iat": now,
            "jti": "test",
            "access": spec.access,
        });
        let signed = |alg, kid: Option<&str>, key: &EncodingKey, x5c: Option<&[u8]>| {
            let mut header = Header::new(alg);
            header.kid = kid.map(str::to_owned);
            header.x5c = x5c.map(|der| vec![base64::engine::general_purpose::STANDARD.encode(der)]);
            jsonwebtoken::encode(&header, &claims, key).expect("token signs")
        };
        let token = match spec.key {
            Signer::Es256 => signed(Algorithm::ES256, Some(&self.es256.1), &self.es256.0, None),
            Signer::Rs256 => signed(Algorithm::RS256, Some(&self.rs256.1), &self.rs256.0, None),
            Signer::Chain => signed(
                Algorithm::ES256,
                None,
                &self.chained.0,
                Some(&self.chained.1),
            ),
            Signer::UnknownKid => signed(Algorithm::ES256, Some("AAAA:BBBB"), &self.es256.0, None),
            Signer::None => {
                let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
                let body = base64url(claims.to_string().as_bytes());
                format!("{header}.{body}.")
            }
            Signer::HmacWithPublicKey => {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(self.es256.1.clone());
                jsonwebtoken::encode(
                    &header,
                    &claims,
                    &EncodingKey::from_secret(self.es256_public_pem.as_bytes()).expect("HMAC key"),
                )
                .expect("HS256 token")
            }
        };
        if spec.tamper {
            // Another subject in the body, the signature kept: it no longer verifies.
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let mut body: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&parts[1])
                    .expect("body"),
            )
            .expect("JSON body");
            body["sub"] = json!("mallory");
            parts[1] = base64url(body.to_string().as_bytes());
            return parts.join(".");
        }
        token
    }
}

impl Default for TokenSigners {
    fn default() -> Self {
        Self::new()
    }
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Which key signs, and how it is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    Es256,
    Rs256,
    /// A leaf signed by the bundled CA, carried in `x5c`.
    Chain,
    /// A trusted key's signature under a `kid` the bundle does not have.
    UnknownKid,
    /// `alg: none`, no signature.
    None,
    /// HS256 keyed with the ES256 signer's public key (key-confusion attack).
    HmacWithPublicKey,
}

/// What a test token says.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub key: Signer,
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    /// Seconds from now.
    pub expires_in: i64,
    pub not_before_in: i64,
    pub access: Value,
    /// Change the body after signing.
    pub tamper: bool,
}

impl TokenSpec {
    /// A valid token from `issuer` for `audience` granting `actions` on `gun`.
    pub fn grant(issuer: &str, audience: &str, gun: &str, actions: &[&str]) -> Self {
        TokenSpec {
            key: Signer::Es256,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            subject: "alice".to_owned(),
            expires_in: 300,
            not_before_in: -1,
            access: json!([{ "type": "repository", "name": gun, "actions": actions }]),
            tamper: false,
        }
    }
}
