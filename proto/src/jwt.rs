//! HS256, the only token algorithm of the protocol, as the crypto backend of `jsonwebtoken`.
//!
//! `jsonwebtoken`'s built-in backends bring every JOSE algorithm: `rust_crypto` pulls in `rsa`
//! (RUSTSEC-2023-0071, a timing side channel with no fix) and `aws_lc_rs` a C library built with
//! cmake. The relay verifies HS256 only, so it installs this provider instead: the HMAC is
//! RustCrypto's `hmac` over `sha2`, and `jsonwebtoken` keeps doing everything else (parsing,
//! `exp`/`aud`/`iss` checks, algorithm pinning). Any other algorithm fails with
//! `InvalidAlgorithm`.
//!
//! Call [`install`] before the first `jsonwebtoken::encode` or `decode` of the process (the relay's
//! `Auth` does it when built; it is idempotent).

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;

/// An HMAC-SHA256 key, as signer and verifier.
struct Hs256(Hmac<Sha256>);

impl Hs256 {
    fn new(alg: &Algorithm, secret: Result<&[u8]>) -> Result<Hs256> {
        if *alg != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Hmac::new_from_slice(secret?)
            .map(Hs256)
            .map_err(|_| ErrorKind::InvalidKeyFormat.into())
    }
}

impl signature::Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl signature::Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // Constant-time comparison (`hmac`'s `verify_slice`).
        mac.verify_slice(sig).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(Hs256::new(alg, key.try_get_hmac_secret())?))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(Hs256::new(alg, key.try_get_hmac_secret())?))
}

/// The HS256-only provider.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes [`PROVIDER`] the process's `jsonwebtoken` backend (no-op after the first call).
pub fn install() {
    let _ = PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation};

    #[test]
    fn signs_and_verifies_hs256_only() {
        install();
        let claims = serde_json::json!({ "sub": "a", "exp": 4_000_000_000u64 });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"k"),
        )
        .expect("sign");
        // A reference HS256 token of the same claims (RFC 7515 shape) from another implementation
        // would verify the same way; here: the right key passes, a wrong one fails.
        let ok = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"k"),
            &Validation::new(Algorithm::HS256),
        );
        assert_eq!(ok.expect("verifies").claims, claims);
        let bad = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"other"),
            &Validation::new(Algorithm::HS256),
        );
        assert!(matches!(
            bad.map_err(|e| e.into_kind()),
            Err(ErrorKind::InvalidSignature)
        ));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"k"),
        );
        assert!(matches!(
            hs512.map_err(|e| e.into_kind()),
            Err(ErrorKind::InvalidAlgorithm)
        ));
    }

    #[test]
    fn matches_a_known_hs256_token() {
        install();
        // jwt.io's example token: HS256 over its header and payload with the key
        // "your-256-bit-secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_secret(b"your-256-bit-secret"),
            &v,
        )
        .expect("the reference token verifies");
        assert_eq!(data.claims["name"], "John Doe");
    }
}
