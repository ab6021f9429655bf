//! Bearer-token authentication: every RPC carries `authorization: Bearer <JWT>`; the token says
//! who acts (`sub`), in which role and for which unit. The resulting [`Principal`] goes into the
//! event envelope of everything that caller commits.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use fengqiao_domain::event::pb;
use fengqiao_domain::values::{Ident, UnitCode};

use crate::settings::AuthSettings;

/// The claims of a Fengqiao token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    /// Unit the actor acts for (12-digit code or grid code).
    pub unit: String,
    /// Partner institution, for partner agents.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub partner: String,
    /// Mediation committee, for mediators and committee leads: when present, they reach only the
    /// cases that committee owns (see `authz`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub committee: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    #[serde(default)]
    pub nbf: i64,
    #[serde(default)]
    pub iat: i64,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: pb::Role,
    pub unit: UnitCode,
    pub partner_id: Option<Ident>,
    /// The committee a mediator or committee lead works in, when the token names it.
    pub committee_id: Option<Ident>,
}

impl Principal {
    /// The actor as recorded in event envelopes.
    pub fn actor(&self) -> pb::Actor {
        pb::Actor {
            subject: self.subject.clone(),
            role: self.role as i32,
            unit_code: self.unit.to_string(),
            partner_id: self.partner_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        }
    }
}

/// Role names as they appear in tokens and on the command line.
pub const ROLES: &[(&str, pb::Role)] = &[
    ("hotline", pb::Role::Hotline),
    ("grid_worker", pb::Role::GridWorker),
    ("mediator", pb::Role::Mediator),
    ("committee_lead", pb::Role::CommitteeLead),
    ("dispatcher", pb::Role::Dispatcher),
    ("partner_agent", pb::Role::PartnerAgent),
    ("supervisor", pb::Role::Supervisor),
    ("admin", pb::Role::Admin),
];

/// Parses a role name.
pub fn parse_role(name: &str) -> Option<pb::Role> {
    ROLES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// One verification key: its id, algorithm and key material.
#[derive(Clone)]
struct Key {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens against the configured keys: HMAC secrets (HS256) and Ed25519 public keys
/// (EdDSA), each under its own key id. A token is checked only against the key its `kid` names,
/// and only with that key's algorithm, so an HMAC secret can never verify a token that claims
/// another algorithm (nor the reverse).
#[derive(Clone)]
pub struct Authenticator {
    keys: Vec<Key>,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| format!("{} ({:?})", k.kid, k.algorithm)).collect();
        f.debug_struct("Authenticator").field("keys", &keys).finish()
    }
}

fn unauthenticated(why: &str) -> Status {
    Status::unauthenticated(format!("bearer token rejected: {why}"))
}

impl Authenticator {
    /// Builds the verifier from settings.
    ///
    /// # Errors
    /// No key at all, a key id used twice or empty, an empty HMAC secret, or a public key that
    /// cannot be read or is no Ed25519 key.
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.validate_nbf = true;
        validation.leeway = settings.leeway_secs;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut keys = Vec::new();
        for k in &settings.hmac_keys {
            anyhow::ensure!(!k.secret.is_empty(), "HMAC key {:?} has an empty secret", k.kid);
            keys.push(Key {
                kid: k.kid.clone(),
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(k.secret.as_bytes()),
            });
        }
        for k in &settings.ed25519_keys {
            let pem = k.pem_text()?;
            let key = DecodingKey::from_ed_pem(pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("key {:?} is no Ed25519 public key in PEM: {e}", k.kid))?;
            keys.push(Key { kid: k.kid.clone(), algorithm: Algorithm::EdDSA, key });
        }
        anyhow::ensure!(!keys.is_empty(), "no token verification key is configured");
        for (i, k) in keys.iter().enumerate() {
            anyhow::ensure!(!k.kid.trim().is_empty(), "a token key has an empty key id");
            anyhow::ensure!(keys[..i].iter().all(|o| o.kid != k.kid), "key id {:?} is configured twice", k.kid);
        }
        Ok(Self { keys, validation })
    }

    /// Authenticates a request's bearer token.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` naming what is wrong: missing, malformed, unknown key, bad signature,
    /// expired, not yet valid, wrong issuer or audience, bad role or unit claim.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| unauthenticated("no authorization header; send `authorization: Bearer <token>`"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("the authorization header is not `Bearer <token>`"))?;
        self.verify(token)
    }

    /// Verifies a raw token.
    ///
    /// # Errors
    /// As [`Authenticator::authenticate`].
    pub fn verify(&self, token: &str) -> Result<Principal, Status> {
        use jsonwebtoken::errors::ErrorKind as K;
        let header = decode_header(token).map_err(|_| unauthenticated("malformed token"))?;
        let key = match (header.kid.as_deref(), self.keys.as_slice()) {
            (Some(kid), keys) => keys.iter().find(|k| k.kid == kid).ok_or_else(|| unauthenticated("unknown key id"))?,
            // Without a key id the token is accepted only when there is no choice to make.
            (None, [only]) => only,
            (None, _) => return Err(unauthenticated("the token names no key id (`kid`)")),
        };
        if header.alg != key.algorithm {
            return Err(unauthenticated("the token's algorithm is not its key's"));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.algorithm];
        let data = decode::<Claims>(token, &key.key, &validation).map_err(|e| match e.kind() {
            K::ExpiredSignature => unauthenticated("token expired"),
            K::ImmatureSignature => unauthenticated("token not yet valid"),
            K::InvalidSignature => unauthenticated("bad signature"),
            K::InvalidIssuer => unauthenticated("wrong issuer"),
            K::InvalidAudience => unauthenticated("wrong audience"),
            K::MissingRequiredClaim(c) => unauthenticated(&format!("missing claim {c}")),
            _ => unauthenticated("malformed token"),
        })?;
        let claims = data.claims;
        let role = parse_role(&claims.role).ok_or_else(|| unauthenticated("unknown role claim"))?;
        let unit = UnitCode::parse("unit", &claims.unit).map_err(|_| unauthenticated("bad unit claim"))?;
        let partner_id =
            Ident::parse_optional("partner", &claims.partner).map_err(|_| unauthenticated("bad partner claim"))?;
        if role == pb::Role::PartnerAgent && partner_id.is_none() {
            return Err(unauthenticated("a partner agent's token must name its partner institution"));
        }
        let committee_id = Ident::parse_optional("committee", &claims.committee)
            .map_err(|_| unauthenticated("bad committee claim"))?;
        if committee_id.is_some() && !matches!(role, pb::Role::Mediator | pb::Role::CommitteeLead) {
            return Err(unauthenticated("only mediators and committee leads belong to a committee"));
        }
        Ok(Principal { subject: claims.sub, role, unit, partner_id, committee_id })
    }
}

/// Mints a token with the first HMAC key (for `fengqiao token` and tests).
///
/// # Errors
/// No HMAC key configured; signing failures.
pub fn mint(settings: &AuthSettings, claims: &Claims) -> anyhow::Result<String> {
    let key = settings.hmac_keys.first().ok_or_else(|| anyhow::anyhow!("no HMAC signing key configured"))?;
    let header = Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::HS256) };
    Ok(encode(&header, claims, &EncodingKey::from_secret(key.secret.as_bytes()))?)
}

/// Mints an EdDSA token with an Ed25519 private key in PEM (PKCS#8), naming key id `kid` (for
/// `fengqiao token --ed25519-key` and tests; in production the identity provider signs).
///
/// # Errors
/// The key is no Ed25519 private key; signing failures.
pub fn mint_ed25519(kid: &str, private_pem: &[u8], claims: &Claims) -> anyhow::Result<String> {
    let key = EncodingKey::from_ed_pem(private_pem)?;
    let header = Header { kid: Some(kid.to_owned()), ..Header::new(Algorithm::EdDSA) };
    Ok(encode(&header, claims, &key)?)
}

/// Claims for `sub` acting as `role` for `unit`, valid for `ttl_secs` from now.
pub fn claims(settings: &AuthSettings, sub: &str, role: &str, unit: &str, partner: &str, ttl_secs: i64) -> Claims {
    let now = jiff::Timestamp::now().as_second();
    Claims {
        sub: sub.to_owned(),
        role: role.to_owned(),
        unit: unit.to_owned(),
        partner: partner.to_owned(),
        committee: String::new(),
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        exp: now + ttl_secs,
        nbf: now - 1,
        iat: now,
    }
}
