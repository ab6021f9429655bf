//! Authentication and transport, end to end: every way a bearer token can be wrong is
//! `UNAUTHENTICATED` and changes nothing; HMAC and Ed25519 keys are accepted side by side and
//! rotated by key id; the gRPC listener serves TLS when configured.

use fengqiao::auth::{self, Claims};
use fengqiao::settings::{HmacKey, PublicKey, Settings, TlsSettings};
use fengqiao_tests::*;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// An Ed25519 key pair: (private key PEM, public key PEM).
fn ed25519_pair() -> (String, String) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
    (pair.serialize_pem(), pair.public_key_pem())
}

fn claims(settings: &Settings, role: &str) -> Claims {
    auth::claims(&settings.auth, &format!("test-{role}"), role, STREET, "", 600)
}

/// Reads an absent case with `token`: NOT_FOUND when the token is accepted, else its status.
async fn probe(app: &TestApp, token: &str) -> Code {
    let request = rpc::GetCaseRequest { case_id: uuid::Uuid::new_v4().to_string(), min_sequence: None };
    match app.query().await.get_case(req(token, request)).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Asserts that `token` is refused as unauthenticated, the message naming `why`.
async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let request = rpc::GetCaseRequest { case_id: uuid::Uuid::new_v4().to_string(), min_sequence: None };
    let status = app.query().await.get_case(req(token, request)).await.expect_err("token must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{why}: {status:?}");
    assert!(status.message().contains(why), "expected {why:?} in {:?}", status.message());
}

#[tokio::test]
async fn every_bad_token_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let s = &app.settings;
    let good = auth::mint(&s.auth, &claims(s, "dispatcher")).unwrap();
    assert_eq!(probe(&app, &good).await, Code::NotFound, "a good token reads (and finds nothing)");

    // Missing, or not a bearer token.
    let request = rpc::GetCaseRequest { case_id: uuid::Uuid::new_v4().to_string(), min_sequence: None };
    let status = app.query().await.get_case(tonic::Request::new(request.clone())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("no authorization header"), "{status:?}");
    let mut basic = tonic::Request::new(request);
    basic.metadata_mut().insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    let status = app.query().await.get_case(basic).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // Malformed.
    assert_refused(&app, "not.a.jwt", "malformed").await;
    assert_refused(&app, "", "malformed").await;

    // Wrong signature: another secret under the same key id, and a tampered payload.
    let mut other = s.auth.clone();
    other.hmac_keys[0].secret = "not-the-server-secret".to_owned();
    assert_refused(&app, &auth::mint(&other, &claims(s, "dispatcher")).unwrap(), "signature").await;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let admin = auth::mint(&s.auth, &claims(s, "admin")).unwrap();
    parts[1] = admin.split('.').nth(1).unwrap().to_owned();
    assert_refused(&app, &parts.join("."), "signature").await;

    // Wrong issuer and audience.
    let mut c = claims(s, "dispatcher");
    c.iss = "someone-else".to_owned();
    assert_refused(&app, &auth::mint(&s.auth, &c).unwrap(), "issuer").await;
    let mut c = claims(s, "dispatcher");
    c.aud = "another-api".to_owned();
    assert_refused(&app, &auth::mint(&s.auth, &c).unwrap(), "audience").await;

    // Expired; not yet valid (beyond the leeway).
    let expired = auth::claims(&s.auth, "x", "dispatcher", STREET, "", -3600);
    assert_refused(&app, &auth::mint(&s.auth, &expired).unwrap(), "expired").await;
    let mut early = claims(s, "dispatcher");
    early.nbf = jiff::Timestamp::now().as_second() + 600;
    early.exp = early.nbf + 600;
    assert_refused(&app, &auth::mint(&s.auth, &early).unwrap(), "not yet valid").await;

    // Unknown key id; bad claims.
    let mut unknown = s.auth.clone();
    unknown.hmac_keys[0].kid = "retired".to_owned();
    assert_refused(&app, &auth::mint(&unknown, &claims(s, "dispatcher")).unwrap(), "unknown key id").await;
    assert_refused(&app, &auth::mint(&s.auth, &claims(s, "janitor")).unwrap(), "role").await;
    let mut c = claims(s, "dispatcher");
    c.unit = "99".to_owned();
    assert_refused(&app, &auth::mint(&s.auth, &c).unwrap(), "unit").await;
    assert_refused(&app, &auth::mint(&s.auth, &claims(s, "partner_agent")).unwrap(), "partner").await;
    let mut c = claims(s, "dispatcher");
    c.committee = COMMITTEE.to_owned();
    assert_refused(&app, &auth::mint(&s.auth, &c).unwrap(), "committee").await;
    assert_eq!(app.stream_messages().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn hmac_and_ed25519_keys_rotate_by_key_id() {
    let (old_private, old_public) = ed25519_pair();
    let (new_private, new_public) = ed25519_pair();
    let (stranger_private, _) = ed25519_pair();
    let mut app = TestApp::spawn_with(|s| {
        s.auth.hmac_keys = vec![
            HmacKey { kid: "hs-2026a".to_owned(), secret: "old-secret-of-at-least-32-bytes-long".to_owned() },
            HmacKey { kid: "hs-2026b".to_owned(), secret: "new-secret-of-at-least-32-bytes-long".to_owned() },
        ];
        s.auth.ed25519_keys = vec![
            PublicKey { kid: "ed-2026a".to_owned(), pem: old_public.clone(), pem_file: None },
            PublicKey { kid: "ed-2026b".to_owned(), pem: new_public.clone(), pem_file: None },
        ];
    })
    .await;
    let s = app.settings.clone();
    let hmac = |kid: &str| {
        let mut one = s.auth.clone();
        one.hmac_keys.retain(|k| k.kid == kid);
        auth::mint(&one, &claims(&s, "dispatcher")).unwrap()
    };
    let eddsa =
        |kid: &str, private: &str| auth::mint_ed25519(kid, private.as_bytes(), &claims(&s, "dispatcher")).unwrap();

    // During the rotation both generations of both kinds are accepted.
    for token in [hmac("hs-2026a"), hmac("hs-2026b"), eddsa("ed-2026a", &old_private), eddsa("ed-2026b", &new_private)]
    {
        assert_eq!(probe(&app, &token).await, Code::NotFound);
    }
    // A key id does not lend its trust to another key, nor to another algorithm.
    assert_refused(&app, &eddsa("ed-2026b", &old_private), "signature").await;
    assert_refused(&app, &eddsa("ed-2026a", &stranger_private), "signature").await;
    assert_refused(&app, &eddsa("hs-2026a", &old_private), "algorithm").await;
    let mut confused = s.auth.clone();
    confused.hmac_keys = vec![HmacKey { kid: "ed-2026a".to_owned(), secret: old_public.clone() }];
    assert_refused(&app, &auth::mint(&confused, &claims(&s, "dispatcher")).unwrap(), "algorithm").await;
    // With several keys, a token must say which.
    let no_kid = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(&s, "dispatcher"),
        &jsonwebtoken::EncodingKey::from_secret(b"new-secret-of-at-least-32-bytes-long"),
    )
    .unwrap();
    assert_refused(&app, &no_kid, "key id").await;

    // The rotation ends: the old keys are removed, their tokens no longer work.
    let (old_hmac, old_ed) = (hmac("hs-2026a"), eddsa("ed-2026a", &old_private));
    app.settings.auth.hmac_keys.retain(|k| k.kid == "hs-2026b");
    app.settings.auth.ed25519_keys.retain(|k| k.kid == "ed-2026b");
    app.restart().await;
    assert_refused(&app, &old_hmac, "unknown key id").await;
    assert_refused(&app, &old_ed, "unknown key id").await;
    assert_eq!(probe(&app, &hmac("hs-2026b")).await, Code::NotFound);
    assert_eq!(probe(&app, &eddsa("ed-2026b", &new_private)).await, Code::NotFound);
    app.finish().await;
}

#[test]
fn keys_that_cannot_work_stop_the_service_from_starting() {
    let mut settings = Settings::default();
    settings.auth.ed25519_keys = vec![PublicKey { kid: "ed".to_owned(), pem: "not a key".to_owned(), pem_file: None }];
    assert!(auth::Authenticator::new(&settings.auth).unwrap_err().to_string().contains("Ed25519"));
    let mut settings = Settings::default();
    settings.auth.hmac_keys.push(settings.auth.hmac_keys[0].clone());
    assert!(auth::Authenticator::new(&settings.auth).unwrap_err().to_string().contains("twice"));
    let mut settings = Settings::default();
    settings.auth.hmac_keys.clear();
    assert!(auth::Authenticator::new(&settings.auth).unwrap_err().to_string().contains("no token verification key"));
}

#[tokio::test]
async fn grpc_listener_serves_tls_when_configured() {
    let dir = std::env::temp_dir().join(format!("fq-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let app = TestApp::spawn_with(|s| {
        s.tls = Some(TlsSettings { cert_file: dir.join("cert.pem"), key_file: dir.join("key.pem") });
    })
    .await;
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&cert_pem)).domain_name("localhost");
    let channel =
        Channel::from_shared(format!("https://{}", app.addr)).unwrap().tls_config(tls).unwrap().connect().await;
    let mut intake = rpc::intake_service_client::IntakeServiceClient::new(channel.expect("TLS connection"));
    let registered = intake
        .register_case(req(&app.token("hotline", COMMUNITY), hotline_order("GD-TLS-1")))
        .await
        .expect("register over TLS")
        .into_inner();
    assert_eq!(registered.version, 1);

    // Plaintext HTTP/2 to the TLS listener gets nowhere.
    let plain = Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await;
    if let Ok(plain) = plain {
        let result = rpc::intake_service_client::IntakeServiceClient::new(plain)
            .register_case(req(&app.token("hotline", COMMUNITY), hotline_order("GD-TLS-2")))
            .await;
        assert!(result.is_err(), "a plaintext call succeeded on the TLS listener");
    }
    assert_eq!(app.stream_messages().await, 1);
    app.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}
